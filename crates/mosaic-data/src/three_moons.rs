//! The three-moons toy of the paper's section 3: the (sin, cos) positions of three moons with
//! different periods, observed together as one vector of R^6. A predictor that treats the six
//! numbers as one must wait for the whole system to repeat (the joint period); one that keys
//! each moon separately needs only each moon's own period.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Observations per time unit: a context of 800 steps holds three of the longest joint
/// periods among the selected triples (6 time units), 800 / 6 / 3.
pub const STEPS_PER_UNIT: f64 = 800.0 / 6.0 / 3.0;
/// Length of the timeline examples are cut from.
pub const TIMELINE: usize = 10_000;
/// Phase offset of every moon.
pub const PHASE: f64 = 0.3;
/// Observation size: (sin, cos) of three moons.
pub const DIM: usize = 6;

/// The training period triples (time units): of all 3-subsets of {0.5, 1, ..., 3.5}, the
/// nine with the smallest joint period, as the reference code selects them, less the last.
pub const TRAIN_TRIPLES: [[f64; 3]; 8] = [
    [0.5, 1.0, 2.0],
    [0.5, 1.0, 1.5],
    [0.5, 1.0, 3.0],
    [0.5, 1.5, 3.0],
    [1.0, 1.5, 3.0],
    [0.5, 1.0, 2.5],
    [1.0, 1.5, 2.0],
    [0.5, 1.5, 2.0],
];
/// The held-out triple: periods of 44.4, 88.9 and 133.3 steps, joint period 266.7 steps.
pub const VAL_TRIPLE: [f64; 3] = [1.0, 2.0, 3.0];

/// Least common multiple of periods given at 0.1 precision, in time units.
pub fn joint_period(periods: &[f64]) -> f64 {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    let tenths: Vec<u64> = periods.iter().map(|p| (p * 10.0).round() as u64).collect();
    let lcm = tenths.iter().fold(1u64, |l, &p| l / gcd(l, p) * p);
    lcm as f64 / 10.0
}

/// A period in observation steps.
pub fn in_steps(period: f64) -> f64 {
    period * STEPS_PER_UNIT
}

/// The observation at step `t` of the timeline.
pub fn observation(t: usize, periods: &[f64; 3]) -> [f32; DIM] {
    let time = t as f64 / STEPS_PER_UNIT;
    let mut x = [0.0f32; DIM];
    for (i, p) in periods.iter().enumerate() {
        let angle = 2.0 * std::f64::consts::PI * time / p + PHASE;
        x[2 * i] = angle.sin() as f32;
        x[2 * i + 1] = angle.cos() as f32;
    }
    x
}

/// `len` consecutive observations from step `start`, flat `(len, 6)`.
pub fn sequence(start: usize, len: usize, periods: &[f64; 3]) -> Vec<f32> {
    (start..start + len)
        .flat_map(|t| observation(t, periods))
        .collect()
}

/// Batches of sequences: `inputs` are steps `s..s + block`, `targets` the same shifted by one,
/// each `(batch, block, 6)` flat.
#[derive(Debug, Clone, PartialEq)]
pub struct MoonBatch {
    pub inputs: Vec<f32>,
    pub targets: Vec<f32>,
    pub batch_size: usize,
    pub block_size: usize,
}

/// Random examples: a triple drawn from `triples` and a start drawn uniformly, per sequence.
pub struct MoonSampler {
    triples: Vec<[f64; 3]>,
    block_size: usize,
    rng: ChaCha8Rng,
}

impl MoonSampler {
    pub fn new(triples: &[[f64; 3]], block_size: usize, seed: u64) -> Self {
        assert!(!triples.is_empty() && 2 * block_size + 1 < TIMELINE);
        Self {
            triples: triples.to_vec(),
            block_size,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// Starts range over `0..TIMELINE - 2 block - 1`, as the reference's.
    pub fn next_batch(&mut self, batch_size: usize) -> MoonBatch {
        let mut batch = MoonBatch {
            inputs: Vec::with_capacity(batch_size * self.block_size * DIM),
            targets: Vec::with_capacity(batch_size * self.block_size * DIM),
            batch_size,
            block_size: self.block_size,
        };
        for _ in 0..batch_size {
            let triple = self.triples[self.rng.random_range(0..self.triples.len())];
            let start = self.rng.random_range(0..TIMELINE - 2 * self.block_size - 1);
            let seq = sequence(start, self.block_size + 1, &triple);
            batch
                .inputs
                .extend_from_slice(&seq[..self.block_size * DIM]);
            batch.targets.extend_from_slice(&seq[DIM..]);
        }
        batch
    }
}
