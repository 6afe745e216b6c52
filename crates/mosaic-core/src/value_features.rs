//! Value feature extractor: values peek one step ahead,
//! `vbar_t = (1 - c_h) w_{t+1} + c_h w_t` with `w = W_v x` and `w_T = 0` past the end, then
//! `v_t = exp(10 nu_h) vbar_t / |vbar_t|`. A value stored at `t` has seen `x_{t+1}`: the
//! strictly-past mask of retrieval is what keeps it from leaking the future.

use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor, TensorData};

use crate::EXP_PARAM_SCALE;
use crate::heads::{l2_normalize, next_step, normal_weight, per_head, split_heads};
use crate::linear::linear;
use crate::weights::Weights;

/// Initial `nu_h` (stored value); the value scale starts at `exp(-0.5)`.
pub const VALUE_SCALE_INIT: f32 = -0.05;

#[derive(Module, Debug)]
pub struct ValueFeatures {
    /// `W_v`, stored `(d_in, d_out)` (the reference's `v_featurizer.linear.weight`).
    weight: Param<Tensor<2>>,
    /// `c_h`, the weight of the present against the next step (the reference's
    /// `v_featurizer.coef`), used as is.
    mix: Param<Tensor<1>>,
    /// `nu_h`, stored divided by 10 (the reference's `value_beta`).
    nu: Param<Tensor<1>>,
    n_head: usize,
}

impl ValueFeatures {
    pub fn new(n_embd: usize, n_head: usize, head_size: usize, device: &Device) -> Self {
        Self {
            weight: normal_weight(
                n_embd,
                n_head * head_size,
                1.0 / (n_embd as f64).sqrt(),
                device,
            ),
            mix: Param::from_tensor(Tensor::random(
                [n_head],
                Distribution::Uniform(0.0, 1.0),
                device,
            )),
            nu: Param::from_data(
                TensorData::new(vec![VALUE_SCALE_INIT; n_head], [n_head]),
                device,
            ),
            n_head,
        }
    }

    /// The official parameters: `linear` the value map, `coef` the mix `c_h`, `beta` the
    /// `value_beta`.
    pub fn visit_official<W: Weights>(
        &mut self,
        weights: &W,
        linear: &str,
        coef: &str,
        beta: &str,
    ) -> Result<(), W::Error> {
        weights.linear(linear, &mut self.weight)?;
        weights.param(coef, &mut self.mix)?;
        weights.param(beta, &mut self.nu)
    }

    /// The mix `c_h` of the present step against the next, shape `(H,)`.
    pub fn mix(&self) -> Tensor<1> {
        self.mix.val()
    }

    /// `exp(10 nu_h)`, shape `(H,)`.
    pub fn scale(&self) -> Tensor<1> {
        (self.nu.val() * EXP_PARAM_SCALE).exp()
    }

    /// `x`: `(B, T, d)` -> values `(B, H, T, hs)`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<4> {
        self.of_projection(self.project(x))
    }

    /// The values of a whole sequence from its projection `w` (the last one with nothing
    /// ahead): one fused operation on a GPU in f32 (`value_kernel`), [`Self::combine`] with
    /// the shifted projection elsewhere.
    pub fn of_projection(&self, w: Tensor<4>) -> Tensor<4> {
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        {
            use crate::dispatch::{gpu_kernels, via_f32};
            use burn::tensor::DType::F32;
            let (mix, nu) = (self.mix.val(), self.nu.val());
            if let Some(half) = via_f32(w.dtype(), gpu_kernels(&w.device(), F32)) {
                let (w, mix, nu) = (w.cast(F32), mix.cast(F32), nu.cast(F32));
                return crate::value_kernel::fused_values(w, mix, nu).cast(half);
            }
            if gpu_kernels(&w.device(), w.dtype()) {
                return crate::value_kernel::fused_values(w, mix, nu);
            }
        }
        self.combine(w.clone(), next_step(w, 2))
    }

    /// `w = W_v x` in heads, `(B, H, T, hs)`: a value needs the `w` of its own step and of the
    /// next, so generation keeps the last one until the next token arrives.
    pub fn project(&self, x: Tensor<3>) -> Tensor<4> {
        split_heads(linear(x, self.weight.val()), self.n_head)
    }

    /// The values from `w` and the `w` one step ahead (`next`), same shapes.
    pub fn combine(&self, w: Tensor<4>, next: Tensor<4>) -> Tensor<4> {
        let c = per_head(self.mix.val());
        let vbar = next * (c.clone().neg() + 1.0) + w * c;
        l2_normalize(vbar) * per_head(self.scale())
    }
}
