//! LayerNorm without bias (nanoGPT's), `eps = 1e-5` as the reference.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};
use mosaic_core::Weights;
use mosaic_core::ops::layer_norm;

pub const LAYER_NORM_EPS: f64 = 1e-5;

#[derive(Module, Debug)]
pub struct LayerNorm {
    gain: Param<Tensor<1>>,
}

impl LayerNorm {
    pub fn new(d: usize, device: &Device) -> Self {
        Self {
            gain: Param::from_tensor(Tensor::ones([d], device)),
        }
    }

    /// The gain as the official parameter `name`.
    pub fn visit_official<W: Weights>(&mut self, weights: &W, name: &str) -> Result<(), W::Error> {
        weights.param(name, &mut self.gain)
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        layer_norm(x, self.gain.val(), LAYER_NORM_EPS)
    }
}
