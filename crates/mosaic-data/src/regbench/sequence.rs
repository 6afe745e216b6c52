//! One sequence per automaton: 10-19 example strings of 1-49 letters, each a uniform random
//! walk from the initial state, joined by `|`.

use rand::Rng;

use super::automaton::Automaton;

/// Vocabulary size: `.` (padding) 0, letters `a`..`r` 1..=18, `|` 19.
pub const VOCAB: usize = 20;
pub const PAD: u32 = 0;
pub const SEP: u32 = 19;

/// A training or test example: `inputs = sequence[..-1]`, `targets = sequence[1..]`, with
/// `|` targets masked (-1) out of the loss.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub automaton: Automaton,
    pub sequence: Vec<u32>,
}

impl Example {
    pub fn inputs(&self) -> &[u32] {
        &self.sequence[..self.sequence.len().saturating_sub(1)]
    }

    /// Targets, -1 where the loss ignores them (separators).
    pub fn targets(&self) -> Vec<i64> {
        self.sequence
            .iter()
            .skip(1)
            .map(|&t| if t == SEP || t == PAD { -1 } else { t as i64 })
            .collect()
    }
}

/// Samples an automaton and its sequence.
pub fn example(rng: &mut impl Rng) -> Example {
    let automaton = Automaton::random(rng);
    let k = rng.random_range(10..=19);
    let mut sequence = Vec::new();
    for i in 0..k {
        if i > 0 {
            sequence.push(SEP);
        }
        let len = rng.random_range(1..=49);
        let mut s = 0usize;
        for _ in 0..len {
            let letters: Vec<usize> = automaton.letters(s).collect();
            let l = letters[rng.random_range(0..letters.len())];
            sequence.push(l as u32 + 1);
            s = automaton.next[s][l].expect("a defined letter") as usize;
        }
    }
    Example {
        automaton,
        sequence,
    }
}

/// Letters as text, `|` and `.` as themselves.
pub fn to_text(ids: &[u32]) -> String {
    ids.iter()
        .map(|&i| match i {
            PAD => '.',
            SEP => '|',
            l => (b'a' + (l - 1) as u8) as char,
        })
        .collect()
}
