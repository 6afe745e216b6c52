//! LayerNorm over the last axis without bias, `y = (x - mean) / sqrt(var + eps) * gain`, as
//! one operation with its own backward pass. Burn records it as about ten elementwise
//! operations and reductions each way (about 25 kernel launches on a GPU); here each row is
//! normalised in one pass, and the backward pass recomputes the row's mean and spread from the
//! saved input:
//!
//! ```text
//! g = dy * gain;  dx = (g - mean(g) - xhat * mean(g * xhat)) / sqrt(var + eps);  dgain = sum_rows dy * xhat
//! ```
//!
//! Two implementations, [`cpu`] on `flex` and, with a GPU feature, [`gpu`] (CubeCL, one
//! thread per row); one autodiff wrapper. The models' `LayerNorm` module calls it; it lives
//! beside the other fused operations because it shares their plumbing.

mod cpu;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod gpu;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, backend_extension};
use burn::tensor::{DType, Tensor, module};

use crate::backward::register;
use crate::dispatch::{fused_kernels, via_f32};

/// LayerNorm of `x` over its last axis with `gain` `(d,)` and no bias.
pub fn layer_norm<const D: usize>(x: Tensor<D>, gain: Tensor<1>, eps: f64) -> Tensor<D> {
    let (device, dtype) = (x.device(), x.dtype());
    if let Some(half) = via_f32(dtype, fused_kernels(&device, DType::F32)) {
        return layer_norm(x.cast(DType::F32), gain.cast(DType::F32), eps).cast(half);
    }
    match fused_kernels(&device, dtype) {
        true => Tensor::from_dispatch(Dispatch::fused_layer_norm(
            x.into_dispatch(),
            gain.into_dispatch(),
            eps,
        )),
        false => module::layer_norm(x, gain, None, eps),
    }
}

#[backend_extension(
    Flex,
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    Autodiff,
    Fusion: cfg(any(feature = "wgpu", feature = "cuda"))
)]
pub trait LayerNormBackend: Backend {
    #[fusion(dtype = x, shape = x)]
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gain: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self>;
}

/// The backward pass, an operation of its own so that on a GPU it queues lazily.
#[backend_extension(
    Flex,
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    Fusion: cfg(any(feature = "wgpu", feature = "cuda"))
)]
pub trait LayerNormGradBackend: Backend {
    /// The gradients of `x` and `gain` from the input, the gain and the output's gradient.
    #[fusion(meta = |x, gain, _grad, _eps| (x.clone(), gain.clone()))]
    fn fused_layer_norm_backward(
        x: FloatTensor<Self>,
        gain: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
}

#[derive(Debug)]
struct LayerNorm;

impl<B: LayerNormGradBackend> Backward<B, 2> for LayerNorm {
    /// The input, the gain and `eps`.
    type State = (FloatTensor<B>, FloatTensor<B>, f64);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, gain, eps) = ops.state;
        let grad = grads.consume::<B>(&ops.node);
        let (dx, dgain) = B::fused_layer_norm_backward(x, gain, grad, eps);
        register!(B, ops.parents, [dx, dgain], grads);
    }
}

impl<B, C> LayerNormBackend for Autodiff<B, C>
where
    B: LayerNormBackend + LayerNormGradBackend,
    C: CheckpointStrategy,
{
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gain: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (gain, gain_node) = gain.into_parts();
        match LayerNorm
            .prepare::<C>([x_node, gain_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::fused_layer_norm(x.clone(), gain.clone(), eps);
                prep.finish((x, gain, eps), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_layer_norm(x, gain, eps)),
        }
    }
}
