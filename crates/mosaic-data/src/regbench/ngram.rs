//! In-context n-gram predictors with back-off, counted over the prefix only (section 5 of the
//! protocol): the benchmark's own baselines, and a check of the generator and the metrics
//! that needs no training.

use std::collections::HashMap;

use super::metrics::{Score, score};
use super::sequence::{Example, SEP, VOCAB};

/// The padding symbol of the counts, distinct from every token id.
const START: u8 = 31;

#[derive(Debug, Clone, Copy)]
pub struct NGram {
    pub n: usize,
}

impl NGram {
    /// Pooled accuracy and TVD of this predictor over every input position of `examples`.
    pub fn score_on(&self, examples: &[Example]) -> Score {
        let mut total = Score::default();
        for e in examples {
            total.add(score(&e.automaton, e.inputs(), &self.predict(e.inputs())));
        }
        total
    }

    /// The predicted distribution after every input position.
    pub fn predict(&self, inputs: &[u32]) -> Vec<[f64; VOCAB]> {
        let n = self.n;
        let mut counts: HashMap<Vec<u8>, u32> = HashMap::new();
        let mut seen = [false; VOCAB];
        // The current string, left-padded with n-1 start symbols.
        let mut current: Vec<u8> = Vec::new();
        let start_string = |current: &mut Vec<u8>, counts: &mut HashMap<Vec<u8>, u32>| {
            current.clear();
            for _ in 0..n - 1 {
                current.push(START);
                add_suffixes(current, n, counts);
            }
        };
        start_string(&mut current, &mut counts);
        let mut out = Vec::with_capacity(inputs.len());
        for &tok in inputs {
            if tok == SEP {
                start_string(&mut current, &mut counts);
            } else {
                seen[tok as usize] = true;
                current.push(tok as u8);
                add_suffixes(&current, n, &mut counts);
            }
            let context = &current[current.len() - (n - 1)..];
            let mut p = [0.0; VOCAB];
            let letters: Vec<usize> = (1..SEP as usize).filter(|&c| seen[c]).collect();
            let probs = backoff(context, &letters, &counts);
            for (c, v) in letters.iter().zip(probs) {
                p[*c] = v;
            }
            out.push(p);
        }
        out
    }
}

/// Counts the substrings (of length 1..=n) that end at the last symbol of `s`.
fn add_suffixes(s: &[u8], n: usize, counts: &mut HashMap<Vec<u8>, u32>) {
    for len in 1..=n.min(s.len()) {
        *counts.entry(s[s.len() - len..].to_vec()).or_default() += 1;
    }
}

/// `P(c | h)` for the letters `c`: count(h c) / count(h) where seen; the rest of the mass to
/// the unseen-after-h letters in proportion to `P(c | h[1..])`.
fn backoff(h: &[u8], letters: &[usize], counts: &HashMap<Vec<u8>, u32>) -> Vec<f64> {
    let count = |s: &[u8]| *counts.get(s).unwrap_or(&0) as f64;
    if h.is_empty() {
        let total: f64 = counts
            .iter()
            .filter(|(k, _)| k.len() == 1)
            .map(|(_, &v)| v as f64)
            .sum();
        return letters.iter().map(|&c| count(&[c as u8]) / total).collect();
    }
    let ch = count(h);
    let with = |c: usize| {
        let mut key = h.to_vec();
        key.push(c as u8);
        count(&key)
    };
    let direct: Vec<f64> = letters
        .iter()
        .map(|&c| if ch > 0.0 { with(c) / ch } else { 0.0 })
        .collect();
    let rest = 1.0 - direct.iter().sum::<f64>();
    let lower = backoff(&h[1..], letters, counts);
    let zero_mass: f64 = direct
        .iter()
        .zip(&lower)
        .filter(|(d, _)| **d == 0.0)
        .map(|(_, l)| l)
        .sum();
    direct
        .iter()
        .zip(&lower)
        .map(|(&d, &l)| match d > 0.0 {
            true => d,
            false if zero_mass > 0.0 => rest * l / zero_mass,
            false => 0.0,
        })
        .collect()
}
