//! Mixed precision: a training step computes in bf16 or f16 while the parameters, their
//! gradients and AdamW's moments stay f32 (the master weights).
//!
//! Each step casts a copy of the model's parameters to the compute type; the cast is an
//! operation of the graph, so the backward pass casts each parameter's gradient back to f32 on
//! its way to the master weight. The loss is taken in f32 (`mosaic_models::cross_entropy` casts
//! the logits). No loss scaling: bf16 has f32's range, and f16 gradients of these small models
//! stay inside f16's range (checked by the WGPU test's finite losses).

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Device, FloatDType, Tensor};
use serde::{Deserialize, Serialize};

/// The type a training step computes in: `train.precision` in a run's config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    Bf16,
    F16,
}

impl Precision {
    pub fn dtype(self) -> FloatDType {
        match self {
            Self::F32 => FloatDType::F32,
            Self::Bf16 => FloatDType::BF16,
            Self::F16 => FloatDType::F16,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
        }
    }

    /// Whether `device` computes in this type (bf16 has no arithmetic on Vulkan, for one).
    pub fn supported_on(self, device: &Device) -> bool {
        self == Self::F32 || device.supports_dtype(self.dtype())
    }

    /// [`Precision::supported_on`], as the error a user reads when it is not.
    pub fn check(self, device: &Device) -> Result<(), UnsupportedPrecision> {
        match self.supported_on(device) {
            true => Ok(()),
            false => Err(UnsupportedPrecision {
                device: mosaic_models::describe(device),
                precision: self,
            }),
        }
    }

    /// The model a step computes with: `None` in f32 (the model itself), else a copy of its
    /// float parameters cast to this type (their ids kept, so the gradients reach the f32
    /// originals).
    pub fn compute_model<M: Module>(self, model: &M) -> Option<M> {
        (self != Self::F32).then(|| model.clone().map(&mut Cast(self.dtype())))
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            "f16" => Ok(Self::F16),
            other => Err(format!(
                "unknown precision `{other}` (known: f32, bf16, f16)"
            )),
        }
    }
}

struct Cast(FloatDType);

impl ModuleMapper for Cast {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let dtype = self.0;
        param.map(|t| t.cast(dtype))
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{DType, Int, Tensor};
    use mosaic_models::{GptConfig, LanguageModel, MemoryMosaicConfig, ModelConfig, cross_entropy};

    use super::*;
    use crate::optim::AdamW;
    use crate::schedule::Schedule;
    use crate::{Engine, Recipe};

    /// Eight steps of `model` at `precision` on the CPU backend, learning `ids` from `ids`: the
    /// losses, and the updated model.
    fn eight_steps(
        model: &LanguageModel,
        precision: Precision,
        ids: &Tensor<2, Int>,
    ) -> (Vec<f64>, LanguageModel) {
        let recipe = Recipe {
            schedule: Schedule::Constant(1e-2),
            optimizer: AdamW::new(0.0),
            grad_clip: 1.0,
            seed: 0,
            precision,
        };
        let mut engine = Engine::new(model.clone(), recipe, &ids.device());
        let loss =
            |m: &LanguageModel, _| Ok(cross_entropy(m.forward(ids.clone())?.logits, ids.clone()));
        let losses = (0..8)
            .map(|_| engine.train_step(&[1.0], loss).unwrap().loss)
            .collect();
        (losses, engine.into_model())
    }

    /// On the CPU backend (f16 arithmetic, emulated): the step computes in f16, the weights it
    /// updates stay f32, and the first loss is f32's to f16 accuracy.
    #[test]
    fn a_step_computes_low_and_keeps_f32_weights() {
        let device = Device::flex().autodiff();
        assert!(Precision::F16.supported_on(&device));
        device.seed(3);
        let model = ModelConfig::Gpt(GptConfig {
            vocab_size: 16,
            n_layer: 1,
            n_head: 2,
            n_embd: 16,
            block_size: 8,
            dropout: 0.0,
        })
        .init(&device);
        let ids = Tensor::<2, Int>::from_ints([[1, 2, 3, 4, 5, 6, 7, 8]], &device);
        assert!(Precision::F32.compute_model(&model).is_none());
        let low = Precision::F16.compute_model(&model).unwrap();
        assert_eq!(low.forward(ids.clone()).unwrap().logits.dtype(), DType::F16);

        let mut first = Vec::new();
        for precision in [Precision::F32, Precision::F16] {
            let (losses, after) = eight_steps(&model, precision, &ids);
            let after = after.forward(ids.clone()).unwrap().logits;
            assert_eq!(after.dtype(), DType::F32, "{precision:?}: weights stay f32");
            assert!(losses[7] < losses[0] - 0.1, "{precision:?}: {losses:?}");
            first.push(losses[0]);
        }
        assert!((first[0] - first[1]).abs() < 1e-2, "{first:?}");
    }

    /// v2 in f16 (its memories' kernels in f32 between casts, as on a GPU; the adaptive
    /// bandwidth and SwiGLU as tensor forms): finite losses that fall, the first close to
    /// f32's.
    #[test]
    fn v2_trains_in_f16() {
        let device = Device::flex().autodiff();
        device.seed(5);
        let config = MemoryMosaicConfig {
            short_window: 4,
            long_offset: [4, 4],
            ..MemoryMosaicConfig::v2(16, 1, 2, 16, 16)
        };
        let model = ModelConfig::MemoryMosaic(config).init(&device);
        let ids = Tensor::<2, Int>::from_ints(
            [[3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3]],
            &device,
        );
        let low = Precision::F16.compute_model(&model).unwrap();
        assert_eq!(low.forward(ids.clone()).unwrap().logits.dtype(), DType::F16);
        let (f32_losses, _) = eight_steps(&model, Precision::F32, &ids);
        let (losses, _) = eight_steps(&model, Precision::F16, &ids);
        for run in [&f32_losses, &losses] {
            assert!(run.iter().all(|l| l.is_finite()), "{run:?}");
            assert!(run[7] < run[0] - 0.1, "{run:?}");
        }
        assert!(
            (losses[0] - f32_losses[0]).abs() < 1e-2,
            "{f32_losses:?} {losses:?}"
        );
    }
}

/// A precision the device cannot compute in.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "this device ({device}) cannot compute in {}: choose f32{} (`train.precision` in a run's \
     config)",
    .precision.name(),
    if *.precision == Precision::Bf16 { " or f16" } else { "" }
)]
pub struct UnsupportedPrecision {
    pub device: String,
    pub precision: Precision,
}
