//! Training the three-moons toy as the paper does, and measuring how fast it predicts in
//! context: the error of 25 generated steps as a function of how much context it was given.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use mosaic_data::three_moons::{DIM, MoonBatch, MoonSampler, TIMELINE, sequence};
use mosaic_models::{ToyMosaic, ToyMosaicConfig, clipped_mse};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::engine::{Engine, Recipe};
use crate::error::Result;
use crate::optim::AdamW;
use crate::precision::Precision;
use crate::schedule::Schedule;

#[derive(Debug, Clone)]
pub struct ToyTraining {
    pub steps: usize,
    pub batch_size: usize,
    pub block_size: usize,
    /// The learning rate falls linearly from `lr_start` to `lr_end` over `steps`.
    pub lr_start: f64,
    pub lr_end: f64,
    pub seed: u64,
}

impl Default for ToyTraining {
    /// The paper's recipe: 500 steps of 64 sequences of 800 observations, lr 1e-2 -> 5e-6.
    fn default() -> Self {
        Self {
            steps: 500,
            batch_size: 64,
            block_size: 800,
            lr_start: 1e-2,
            lr_end: 5e-6,
            seed: 100,
        }
    }
}

pub fn batch_tensors(batch: &MoonBatch, device: &Device) -> (Tensor<3>, Tensor<3>) {
    let shape = [batch.batch_size, batch.block_size, DIM];
    (
        Tensor::from_data(TensorData::new(batch.inputs.clone(), shape), device),
        Tensor::from_data(TensorData::new(batch.targets.clone(), shape), device),
    )
}

impl ToyTraining {
    /// The optimisation: the learning rate falls linearly, AdamW (0.9, 0.999) with no weight
    /// decay and MLX's uncorrected moments, as the reference trains (see
    /// [`AdamW::lr_factor`]); no clipping.
    pub fn recipe(&self) -> Recipe {
        Recipe {
            schedule: Schedule::Linear {
                start: self.lr_start,
                end: self.lr_end,
                steps: self.steps,
            },
            optimizer: AdamW {
                bias_correction: false,
                ..AdamW::new(0.0)
            },
            grad_clip: 0.0,
            seed: self.seed,
            precision: Precision::F32,
        }
    }
}

/// Trains a fresh toy on the training triples with [`ToyTraining::recipe`]; `on_step(step,
/// loss)` after each step. Returns the model in eval mode.
pub fn train_toy(
    config: &ToyMosaicConfig,
    triples: &[[f64; 3]],
    opts: &ToyTraining,
    device: &Device,
    on_step: &mut dyn FnMut(usize, f64),
) -> Result<ToyMosaic> {
    let device = device.clone().autodiff();
    device.seed(opts.seed);
    let mut engine = Engine::new(config.init(&device), opts.recipe(), &device);
    let mut sampler = MoonSampler::new(triples, opts.block_size, opts.seed);
    for step in 0..opts.steps {
        let (x, y) = batch_tensors(&sampler.next_batch(opts.batch_size), &device);
        let stats = engine.train_step(&[1.0], |model, _| {
            Ok(clipped_mse(model.forward(x.clone()).0, y.clone()))
        })?;
        on_step(step, stats.loss);
    }
    Ok(engine.into_model().valid())
}

/// Mean absolute error of `gen_steps` generated observations after each context length in
/// `contexts`, over `sequences` sequences of `triple` with random starts. A context of 0 has
/// nothing to continue and is left out of the curve.
pub fn context_curve(
    model: &ToyMosaic,
    triple: &[f64; 3],
    sequences: usize,
    contexts: &[usize],
    gen_steps: usize,
    seed: u64,
    device: &Device,
) -> Vec<(usize, f64)> {
    let longest = contexts.iter().max().copied().unwrap_or(1) + gen_steps;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let data: Vec<f32> = (0..sequences)
        .flat_map(|_| sequence(rng.random_range(0..TIMELINE - longest), longest, triple))
        .collect();
    let all = Tensor::<3>::from_data(TensorData::new(data, [sequences, longest, DIM]), device);
    contexts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let prompt = all.clone().narrow(1, 0, c);
            let truth = all.clone().narrow(1, c, gen_steps);
            let err = (model.generate(prompt, gen_steps) - truth)
                .abs()
                .mean()
                .into_scalar::<f64>();
            (c, err)
        })
        .collect()
}

/// Mean of the curve's errors over contexts in `lo..=hi`.
pub fn mean_over(curve: &[(usize, f64)], lo: usize, hi: usize) -> f64 {
    let inside: Vec<f64> = curve
        .iter()
        .filter(|(c, _)| (lo..=hi).contains(c))
        .map(|(_, e)| *e)
        .collect();
    inside.iter().sum::<f64>() / inside.len().max(1) as f64
}

/// The error at the context length nearest to `c`.
pub fn at(curve: &[(usize, f64)], c: usize) -> f64 {
    curve
        .iter()
        .min_by_key(|(x, _)| x.abs_diff(c))
        .map_or(f64::NAN, |(_, e)| *e)
}

/// Whether every weight of `model` is made of complex-multiplication blocks.
pub fn is_complex(model: &ToyMosaic) -> bool {
    model.maps().iter().all(|(_, m)| {
        let w: Vec<f32> = m
            .weight()
            .into_data()
            .try_to_vec_as::<f32>()
            .unwrap_or_default();
        let [rows, cols] = m.weight().dims();
        (0..rows / 2).all(|r| {
            (0..cols / 2).all(|c| {
                let at = |i: usize, j: usize| w[(2 * r + i) * cols + 2 * c + j];
                at(0, 0) == at(1, 1) && at(0, 1) == -at(1, 0)
            })
        })
    })
}
