//! LayerNorm over the last axis without bias, `y = (x - mean) / sqrt(var + eps) * gain`, as
//! one operation with its own backward pass on the `flex` CPU backend. Burn records it as
//! about ten elementwise operations and reductions each way; here each row is normalised in one
//! pass, and the backward pass recomputes the row's mean and spread from the saved input:
//!
//! ```text
//! g = dy * gain;  dx = (g - mean(g) - xhat * mean(g * xhat)) / sqrt(var + eps);  dgain = sum_rows dy * xhat
//! ```
//!
//! The models' `LayerNorm` module calls it; it lives beside the other fused operations because
//! it shares their plumbing.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{Tensor, module};
use rayon::prelude::*;

use crate::backward::register;
use crate::dispatch::cpu_kernels;
use crate::matrix::{contiguous, tensor};

/// LayerNorm of `x` over its last axis with `gain` `(d,)` and no bias.
pub fn layer_norm<const D: usize>(x: Tensor<D>, gain: Tensor<1>, eps: f64) -> Tensor<D> {
    match cpu_kernels(&x.device(), x.dtype()) {
        true => Tensor::from_dispatch(Dispatch::fused_layer_norm(
            x.into_dispatch(),
            gain.into_dispatch(),
            eps,
        )),
        false => module::layer_norm(x, gain, None, eps),
    }
}

#[backend_extension(Flex, Autodiff)]
pub trait LayerNormBackend: Backend {
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gain: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self>;
}

/// Rows per parallel task.
const ROWS: usize = 64;

/// The row's mean and `1 / sqrt(var + eps)`.
fn stats(x: &[f32], eps: f64) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + eps as f32).sqrt())
}

impl LayerNormBackend for Flex {
    fn fused_layer_norm(x: FlexTensor, gain: FlexTensor, eps: f64) -> FlexTensor {
        let (x, shape) = contiguous(&x);
        let (gain, _) = contiguous(&gain);
        let (xs, gs) = (x.storage::<f32>(), gain.storage::<f32>());
        let d = gs.len();
        let mut out = vec![0.0f32; xs.len()];
        out.par_chunks_mut(d * ROWS)
            .zip(xs.par_chunks(d * ROWS))
            .for_each(|(o, x)| {
                for (o, x) in o.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
                    let (mean, rstd) = stats(x, eps);
                    for ((o, x), g) in o.iter_mut().zip(x).zip(gs) {
                        *o = (x - mean) * rstd * g;
                    }
                }
            });
        tensor(out, shape)
    }
}

/// The gradients of `x` and `gain`.
fn fused_layer_norm_backward(
    x: FlexTensor,
    gain: FlexTensor,
    grad: FlexTensor,
    eps: f64,
) -> (FlexTensor, FlexTensor) {
    let (x, shape) = contiguous(&x);
    let ((gain, _), (grad, _)) = (contiguous(&gain), contiguous(&grad));
    let (xs, gs, dys) = (
        x.storage::<f32>(),
        gain.storage::<f32>(),
        grad.storage::<f32>(),
    );
    let d = gs.len();
    let mut dx = vec![0.0f32; xs.len()];
    // Each task's share of dgain, summed below.
    let partial: Vec<Vec<f32>> = dx
        .par_chunks_mut(d * ROWS)
        .zip(xs.par_chunks(d * ROWS).zip(dys.par_chunks(d * ROWS)))
        .map(|(dx, (x, dy))| {
            let mut dgain = vec![0.0f32; d];
            let mut xhat = vec![0.0f32; d];
            for ((dx, x), dy) in dx
                .chunks_exact_mut(d)
                .zip(x.chunks_exact(d))
                .zip(dy.chunks_exact(d))
            {
                let (mean, rstd) = stats(x, eps);
                let (mut mean_g, mut mean_gx) = (0.0f32, 0.0f32);
                for ((((h, x), dy), g), dg) in
                    xhat.iter_mut().zip(x).zip(dy).zip(gs).zip(dgain.iter_mut())
                {
                    *h = (x - mean) * rstd;
                    *dg += dy * *h;
                    mean_g += dy * g;
                    mean_gx += dy * g * *h;
                }
                let (mean_g, mean_gx) = (mean_g / d as f32, mean_gx / d as f32);
                for (((dx, h), dy), g) in dx.iter_mut().zip(&xhat).zip(dy).zip(gs) {
                    *dx = (dy * g - mean_g - h * mean_gx) * rstd;
                }
            }
            dgain
        })
        .collect();
    let mut dgain = vec![0.0f32; d];
    for p in partial {
        dgain.iter_mut().zip(p).for_each(|(s, v)| *s += v);
    }
    (tensor(dx, shape), tensor(dgain, vec![d]))
}

impl<C: CheckpointStrategy> LayerNormBackend for Autodiff<Flex, C> {
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gain: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct LayerNorm;

        impl Backward<Flex, 2> for LayerNorm {
            /// The input, the gain and `eps`.
            type State = (FlexTensor, FlexTensor, f64);

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let (x, gain, eps) = ops.state;
                let grad = grads.consume::<Flex>(&ops.node);
                let (dx, dgain) = fused_layer_norm_backward(x, gain, grad, eps);
                register!(Flex, ops.parents, [dx, dgain], grads);
            }
        }

        let (x, x_node) = x.into_parts();
        let (gain, gain_node) = gain.into_parts();
        match LayerNorm
            .prepare::<C>([x_node, gain_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = Flex::fused_layer_norm(x.clone(), gain.clone(), eps);
                prep.finish((x, gain, eps), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::fused_layer_norm(x, gain, eps)),
        }
    }
}
