//! `cargo xtask regbench-selftest`: the RegBench generator and metrics checked without
//! training, by the oracle and the in-context n-gram predictors.

use std::time::Instant;

use mosaic_data::regbench::metrics::truth;
use mosaic_data::regbench::{NGram, Score, score};
use mosaic_train::regbench::examples;

pub fn selftest(sequences: usize, seed: u64) {
    let start = Instant::now();
    let examples = examples(sequences, seed);
    let tokens: usize = examples.iter().map(|e| e.inputs().len()).sum();
    println!(
        "{sequences} test sequences (seed {seed}), {tokens} positions, {:.1} tokens each, generated in {:.2} s",
        tokens as f64 / sequences as f64,
        start.elapsed().as_secs_f64()
    );
    let predictors: [(&str, Option<NGram>); 3] = [
        ("oracle", None),
        ("2-gram", Some(NGram { n: 2 })),
        ("3-gram", Some(NGram { n: 3 })),
    ];
    for (name, predictor) in predictors {
        let t = Instant::now();
        let total = match predictor {
            Some(ngram) => ngram.score_on(&examples),
            None => examples.iter().fold(Score::default(), |mut total, e| {
                total.add(score(
                    &e.automaton,
                    e.inputs(),
                    &truth(&e.automaton, e.inputs()),
                ));
                total
            }),
        };
        println!(
            "{name:<7} accuracy {:.4}  TVD {:.4}  ({:.2} s)",
            total.accuracy(),
            total.tvd(),
            t.elapsed().as_secs_f64()
        );
    }
}
