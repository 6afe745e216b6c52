//! The training step every driver shares (`mosaic train`, RegBench, the three-moons toy, the
//! benchmark): reseed, weighted micro-batches, global-norm clipping, an AdamW update at the
//! scheduled learning rate, and the step's numbers.

use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};

use crate::error::{Result, TrainError};
use crate::optim::{AdamW, clip_global_norm};
use crate::precision::Precision;
use crate::schedule::Schedule;

/// How a model is optimised: the schedule, the optimiser, clipping, the seed and the precision.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    pub schedule: Schedule,
    pub optimizer: AdamW,
    /// Clip the global gradient norm to this; 0 turns clipping off.
    pub grad_clip: f64,
    /// Step `s` reseeds the device with `seed + s + 1`, so that dropout masks depend on the step
    /// alone and a resumed run draws the ones it would have drawn.
    pub seed: u64,
    /// The type the forward and backward passes compute in; the weights stay f32.
    pub precision: Precision,
}

impl Recipe {
    /// The learning rate of step `step` (0-based), with the optimiser's correction.
    pub fn lr(&self, step: usize) -> f64 {
        self.schedule.at(step) * self.optimizer.lr_factor(step + 1)
    }
}

/// What one step did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepStats {
    /// Steps completed, this one included.
    pub step: usize,
    pub lr: f64,
    /// The weighted sum of the micro-batches' losses.
    pub loss: f64,
    /// The global gradient norm before clipping; measured only when clipping is on.
    pub grad_norm: Option<f64>,
    pub seconds: f64,
}

/// A model, its optimiser state and its step count.
pub struct Engine<M> {
    /// Always present between calls; taken only while the optimiser consumes it.
    model: Option<M>,
    optim: ModuleOptimizer,
    recipe: Recipe,
    device: Device,
    step: usize,
}

impl<M: Module> Engine<M> {
    /// `model` lives on `device`, which has gradients on.
    pub fn new(model: M, recipe: Recipe, device: &Device) -> Self {
        Self {
            optim: recipe.optimizer.init(&model),
            model: Some(model),
            recipe,
            device: device.clone(),
            step: 0,
        }
    }

    pub fn model(&self) -> &M {
        self.model
            .as_ref()
            .expect("the engine holds its model between steps")
    }

    pub fn into_model(self) -> M {
        self.model
            .expect("the engine holds its model between steps")
    }

    pub fn optimizer(&self) -> &ModuleOptimizer {
        &self.optim
    }

    pub fn recipe(&self) -> &Recipe {
        &self.recipe
    }

    /// Steps completed.
    pub fn step(&self) -> usize {
        self.step
    }

    /// The learning rate of the next step.
    pub fn lr(&self) -> f64 {
        self.recipe.lr(self.step)
    }

    /// Continues from a saved state: the model's weights, the optimiser's moments, the step.
    pub fn restore(&mut self, model: M, optim: ModuleOptimizer, step: usize) {
        self.model = Some(model);
        self.optim = optim;
        self.step = step;
    }

    /// One update from `weights.len()` micro-batches: `loss(model, i)` is micro-batch `i`'s
    /// loss, which enters the gradient times `weights[i]`.
    pub fn train_step(
        &mut self,
        weights: &[f64],
        loss: impl FnMut(&M, usize) -> Result<Tensor<1>>,
    ) -> Result<StepStats> {
        let start = Instant::now();
        let lr = self.lr();
        let seed = self.recipe.seed.wrapping_add(self.step as u64 + 1);
        self.device.seed(seed);
        // The host's generator too (the same one when training on the CPU): what a model
        // draws on the host, as v2's long-term offset, follows the step on any device.
        Device::flex().seed(seed);
        let model = self
            .model
            .take()
            .expect("the engine holds its model between steps");
        let precision = self.recipe.precision;
        if let Err(e) = precision.check(&self.device) {
            self.model = Some(model);
            return Err(e.into());
        }
        let (mut grads, loss_sum) = match gradients_in(precision, &model, weights, loss) {
            Ok(g) => g,
            Err(e) => {
                self.model = Some(model);
                return Err(e);
            }
        };
        if !loss_sum.is_finite() {
            self.model = Some(model);
            return Err(TrainError::NonFiniteLoss {
                step: self.step,
                loss: loss_sum,
            });
        }
        let clip = self.recipe.grad_clip;
        let grad_norm = (clip > 0.0).then(|| clip_global_norm(&model, &mut grads, clip));
        self.model = Some(self.optim.step(lr, model, grads));
        self.step += 1;
        Ok(StepStats {
            step: self.step,
            lr,
            loss: loss_sum,
            grad_norm,
            seconds: start.elapsed().as_secs_f64(),
        })
    }
}

/// The gradients of `sum_i weights[i] * loss(model, i)` and that sum's value. A weight of 1
/// leaves the loss as it is.
pub fn gradients<M: Module>(
    model: &M,
    weights: &[f64],
    loss: impl FnMut(&M, usize) -> Result<Tensor<1>>,
) -> Result<(GradientsParams, f64)> {
    gradients_in(Precision::F32, model, weights, loss)
}

/// [`gradients`] with the passes computed in `precision`; the gradients are f32, for `model`'s
/// own parameters.
fn gradients_in<M: Module>(
    precision: Precision,
    model: &M,
    weights: &[f64],
    mut loss: impl FnMut(&M, usize) -> Result<Tensor<1>>,
) -> Result<(GradientsParams, f64)> {
    let mut accumulator = GradientsAccumulator::<M>::new();
    let mut sum = 0.0;
    let compute = precision.compute_model(model);
    for (i, &w) in weights.iter().enumerate() {
        let l = loss(compute.as_ref().unwrap_or(model), i)?;
        let l = if w == 1.0 { l } else { l * w };
        sum += l.clone().into_scalar::<f64>();
        accumulator.accumulate(model, GradientsParams::from_grads(l.backward(), model));
    }
    Ok((accumulator.grads(), sum))
}
