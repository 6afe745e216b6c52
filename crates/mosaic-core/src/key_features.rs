//! Key feature extractor: `k_t = s_h * kbar_t / |kbar_t|`, where `kbar` is the leaky average of
//! `W_k x`. Keys look back: `k_t` depends on `x_t, x_{t-1}, ...` only.

use burn::module::{Module, Param};
use burn::tensor::module::linear;
use burn::tensor::{Device, Tensor, TensorData};

use crate::EXP_PARAM_SCALE;
use crate::heads::{l2_normalize, normal_weight, per_head, split_heads};
use crate::leaky_average::LeakyAverage;
use crate::weights::Weights;

/// The reference caps `10 * kappa` at 5 so that `s^2` stays inside fp16 range.
pub const KERNEL_SCALE_CAP: f64 = 5.0;

#[derive(Module, Debug)]
pub struct KeyFeatures {
    /// `W_k`, stored `(d_in, d_out)` (the reference's `k_featurizer.conv.weight`, a
    /// kernel-size-1 convolution).
    weight: Param<Tensor<2>>,
    leaky: LeakyAverage,
    /// `kappa_h`, stored divided by 10 (the reference's `kernel_beta`).
    kappa: Param<Tensor<1>>,
    n_head: usize,
    /// The key is scaled by `s_h^scale_power`: 1 in a contextual memory, where the kernel
    /// `k_t . k_i` gets `s_h` from both sides, 2 in a persistent memory, whose stored keys have
    /// no scale of their own.
    scale_power: usize,
}

impl KeyFeatures {
    pub fn new(n_embd: usize, n_head: usize, scale_power: usize, device: &Device) -> Self {
        let kappa = vec![(1.0 / EXP_PARAM_SCALE) as f32; n_head];
        Self {
            weight: normal_weight(n_embd, n_embd, 1.0 / (n_embd as f64).sqrt(), device),
            leaky: LeakyAverage::new(n_head, device),
            kappa: Param::from_data(TensorData::new(kappa, [n_head]), device),
            n_head,
            scale_power,
        }
    }

    /// The official parameters of the memory unit under `prefix`: its key map
    /// `k_featurizer.conv.weight` (a kernel-size-1 convolution), the leaky average's
    /// `leaky_key_beta` and the bandwidth's `kernel_beta`.
    pub fn load<W: Weights>(&mut self, weights: &W, prefix: &str) -> Result<(), W::Error> {
        let [d_in, d_out] = self.weight.dims();
        self.weight = weights.conv1(&format!("{prefix}k_featurizer.conv.weight"), d_out, d_in)?;
        self.leaky
            .load(weights, &format!("{prefix}leaky_key_beta"))?;
        self.kappa = weights.param(&format!("{prefix}kernel_beta"), self.kappa.dims())?;
        Ok(())
    }

    /// The leaky average's decay rates `b_h` (`lambda_h = exp(-b_h)`), shape `(H,)`.
    pub fn leaky_decay(&self) -> Tensor<1> {
        self.leaky.decay()
    }

    /// `s_h^scale_power` with `s_h = exp(min(10 kappa_h, 5))`, shape `(H,)`.
    pub fn scale(&self) -> Tensor<1> {
        let s = (self.kappa.val() * EXP_PARAM_SCALE)
            .clamp_max(KERNEL_SCALE_CAP)
            .exp();
        match self.scale_power {
            1 => s,
            2 => s.square(),
            p => s.powi_scalar(p as i32),
        }
    }

    /// `x`: `(B, T, d)` -> keys `(B, H, T, hs)`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<4> {
        self.finish(self.leaky.forward(self.project(x)))
    }

    /// Like [`KeyFeatures::forward`], also returning the leaky average at the last step
    /// `(B, H, 1, hs)`: what [`KeyFeatures::step`] continues from.
    pub fn forward_with_state(&self, x: Tensor<3>) -> (Tensor<4>, Tensor<4>) {
        let kbar = self.leaky.forward(self.project(x));
        let t = kbar.dims()[2];
        let state = kbar.clone().narrow(2, t - 1, 1);
        (self.finish(kbar), state)
    }

    /// The key of one new step `x` `(B, 1, d)` given the leaky average up to the step before;
    /// returns the key `(B, H, 1, hs)` and the new average.
    pub fn step(&self, state: Option<Tensor<4>>, x: Tensor<3>) -> (Tensor<4>, Tensor<4>) {
        let kbar = self.leaky.step(state, self.project(x));
        (self.finish(kbar.clone()), kbar)
    }

    fn project(&self, x: Tensor<3>) -> Tensor<4> {
        split_heads(linear(x, self.weight.val(), None), self.n_head)
    }

    fn finish(&self, kbar: Tensor<4>) -> Tensor<4> {
        l2_normalize(kbar) * per_head(self.scale())
    }
}
