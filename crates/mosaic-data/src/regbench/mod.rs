//! RegBench (Akyurek et al., ICML 2024): in-context learning of languages of random
//! automata, the benchmark of the Memory Mosaics paper's largest win (its protocol is
//! summarised in `docs/results/regbench.md`).
//!
//! - [`automaton`]: random deterministic automata with partial transitions, minimised and
//!   trimmed; a sequence walks them uniformly at random;
//! - [`sequence`]: one sequence of example strings per automaton, the 20-token vocabulary;
//! - [`metrics`]: pooled accuracy and total-variation distance against the automaton;
//! - [`ngram`]: in-context n-gram predictors, the baselines and the generator's self-test.

pub mod automaton;
pub mod metrics;
pub mod ngram;
pub mod sequence;

pub use automaton::Automaton;
pub use metrics::{Score, score};
pub use ngram::NGram;
pub use sequence::{Example, PAD, SEP, VOCAB, example};

/// Letters are ids 1..=18 (`a`..`r`).
pub const LETTERS: usize = 18;
