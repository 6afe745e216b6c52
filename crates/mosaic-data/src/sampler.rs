//! Batches of windows: random ones for training (seeded, so the same seed gives the same
//! batches on every machine), sequential non-overlapping ones for evaluation.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::DataError;
use crate::token_file::TokenFile;

/// `batch_size` windows of `block_size` inputs, each with its targets (the inputs shifted by
/// one), row-major `(batch_size, block_size)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub inputs: Vec<u32>,
    pub targets: Vec<u32>,
    pub batch_size: usize,
    pub block_size: usize,
}

impl Batch {
    fn new(block_size: usize) -> Self {
        Batch {
            inputs: Vec::new(),
            targets: Vec::new(),
            batch_size: 0,
            block_size,
        }
    }

    fn push(&mut self, tokens: &TokenFile, start: usize, scratch: &mut Vec<u32>) {
        scratch.clear();
        tokens.read(start, self.block_size + 1, scratch);
        self.inputs.extend_from_slice(&scratch[..self.block_size]);
        self.targets.extend_from_slice(&scratch[1..]);
        self.batch_size += 1;
    }
}

fn check_length(tokens: &TokenFile, block_size: usize) -> Result<(), DataError> {
    if block_size == 0 || tokens.len() < block_size + 1 {
        return Err(DataError::Invalid(format!(
            "{}: {} tokens cannot hold a window of block_size {block_size} + 1",
            tokens.path().display(),
            tokens.len()
        )));
    }
    Ok(())
}

/// Windows of `block_size + 1` tokens starting at uniformly random positions.
pub struct RandomWindows {
    tokens: TokenFile,
    block_size: usize,
    batch_size: usize,
    rng: ChaCha8Rng,
}

impl RandomWindows {
    pub fn new(
        tokens: TokenFile,
        block_size: usize,
        batch_size: usize,
        seed: u64,
    ) -> Result<Self, DataError> {
        check_length(&tokens, block_size)?;
        Ok(Self {
            tokens,
            block_size,
            batch_size,
            rng: ChaCha8Rng::seed_from_u64(seed),
        })
    }

    pub fn next_batch(&mut self) -> Batch {
        let last_start = self.tokens.len() - (self.block_size + 1);
        let mut batch = Batch::new(self.block_size);
        let mut scratch = Vec::with_capacity(self.block_size + 1);
        for _ in 0..self.batch_size {
            let start = self.rng.random_range(0..=last_start);
            batch.push(&self.tokens, start, &mut scratch);
        }
        batch
    }

    /// The generator's state, to save in a checkpoint and restore with [`Self::set_rng`].
    pub fn rng(&self) -> &ChaCha8Rng {
        &self.rng
    }

    pub fn set_rng(&mut self, rng: ChaCha8Rng) {
        self.rng = rng;
    }
}

/// Consecutive windows starting at `0, block_size, 2 block_size, ...` (inputs do not
/// overlap; each window's last target is the next one's first input), in batches of up to
/// `batch_size`; the tail shorter than a window is left out.
pub struct SequentialWindows {
    tokens: TokenFile,
    block_size: usize,
    batch_size: usize,
    next: usize,
}

impl SequentialWindows {
    pub fn new(tokens: TokenFile, block_size: usize, batch_size: usize) -> Result<Self, DataError> {
        check_length(&tokens, block_size)?;
        Ok(Self {
            tokens,
            block_size,
            batch_size,
            next: 0,
        })
    }

    /// How many windows the whole pass yields.
    pub fn num_windows(&self) -> usize {
        (self.tokens.len() - 1) / self.block_size
    }
}

impl Iterator for SequentialWindows {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let mut batch = Batch::new(self.block_size);
        let mut scratch = Vec::with_capacity(self.block_size + 1);
        while batch.batch_size < self.batch_size && self.next + self.block_size < self.tokens.len()
        {
            batch.push(&self.tokens, self.next, &mut scratch);
            self.next += self.block_size;
        }
        (batch.batch_size > 0).then_some(batch)
    }
}
