//! Pooled accuracy and total-variation distance: at each input position the true next-token
//! distribution is uniform over the letters the automaton defines in its current state.

use super::automaton::Automaton;
use super::sequence::{SEP, VOCAB};

/// Sums over positions, to pool across sequences.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Score {
    pub positions: usize,
    pub correct: usize,
    pub tvd_sum: f64,
}

impl Score {
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.positions.max(1) as f64
    }

    pub fn tvd(&self) -> f64 {
        self.tvd_sum / self.positions.max(1) as f64
    }

    pub fn add(&mut self, other: Score) {
        self.positions += other.positions;
        self.correct += other.correct;
        self.tvd_sum += other.tvd_sum;
    }
}

/// The true next-token distribution after each input position.
pub fn truth(automaton: &Automaton, inputs: &[u32]) -> Vec<[f64; VOCAB]> {
    let mut s = 0usize;
    inputs
        .iter()
        .map(|&tok| {
            s = match tok {
                SEP => 0,
                l => automaton.next[s][l as usize - 1].expect("the input follows the automaton")
                    as usize,
            };
            let letters: Vec<usize> = automaton.letters(s).collect();
            let mut q = [0.0; VOCAB];
            for l in &letters {
                q[l + 1] = 1.0 / letters.len() as f64;
            }
            q
        })
        .collect()
}

/// Scores `predictions` (one distribution over the 20 ids per input position) against the
/// automaton: the argmax (lowest id on ties) must be a defined letter; TVD = 0.5 L1.
pub fn score(automaton: &Automaton, inputs: &[u32], predictions: &[[f64; VOCAB]]) -> Score {
    assert_eq!(inputs.len(), predictions.len());
    let mut out = Score::default();
    for (q, p) in truth(automaton, inputs).iter().zip(predictions) {
        let argmax = (0..VOCAB).fold(0, |best, i| if p[i] > p[best] { i } else { best });
        out.positions += 1;
        out.correct += usize::from(q[argmax] > 0.0);
        out.tvd_sum += 0.5 * q.iter().zip(p).map(|(a, b)| (a - b).abs()).sum::<f64>();
    }
    out
}
