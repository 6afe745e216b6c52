//! Division of each vector along the last axis by its Euclidean norm, optionally times a
//! per-head scale (the keys' `s_h`), as one operation with its own backward pass,
//! `dx = s (dy - u (u . dy)) / |x|` with `u = x / |x|` and `ds_h = sum u . dy`, on a GPU: as
//! tensor operations it is a square, a sum, a square root and a division each way, and the
//! scale a product with a reduction per broadcast axis back (about 19 launches with its
//! backward, 23 scaled). CubeCL kernels only
//! ([`gpu`], one thread per vector): on the CPU the tensor form stays, whose numbers the
//! official code's are checked against.

mod gpu;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, backend_extension};
use burn::tensor::Tensor;

use crate::backward::register;

/// `x / |x|` along the last axis; only where [`crate::dispatch::gpu_kernels`] says so.
pub fn fused_l2_normalize(x: Tensor<4>) -> Tensor<4> {
    Tensor::from_dispatch(Dispatch::l2_normalize(x.into_dispatch()))
}

/// `s_h x / |x|` for `x` `(B, H, T, hs)` and a per-head `scale` `(H)` (the keys' `s_h`); only
/// where [`crate::dispatch::gpu_kernels`] says so.
pub fn fused_scaled_l2_normalize(x: Tensor<4>, scale: Tensor<1>) -> Tensor<4> {
    Tensor::from_dispatch(Dispatch::scaled_l2_normalize(
        x.into_dispatch(),
        scale.into_dispatch(),
    ))
}

#[backend_extension(Cube, Autodiff, Fusion)]
pub trait L2NormBackend: Backend {
    #[fusion(dtype = x, shape = x)]
    fn l2_normalize(x: FloatTensor<Self>) -> FloatTensor<Self>;

    #[fusion(dtype = x, shape = x)]
    fn scaled_l2_normalize(x: FloatTensor<Self>, scale: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// The backward passes, operations of their own so that they queue lazily.
#[backend_extension(Cube, Fusion)]
pub trait L2NormGradBackend: Backend {
    /// The gradient of `x` from the input and the output's gradient.
    #[fusion(dtype = x, shape = x)]
    fn l2_normalize_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self>;

    /// The gradients of `x` and of the scale.
    #[fusion(meta = |x, scale, _grad| (x.clone(), scale.clone()))]
    fn scaled_l2_normalize_backward(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
}

#[derive(Debug)]
struct L2Normalize;

impl<B: L2NormGradBackend> Backward<B, 1> for L2Normalize {
    /// The input.
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let dx = B::l2_normalize_backward(ops.state, grad);
        register!(B, ops.parents, [dx], grads);
    }
}

#[derive(Debug)]
struct ScaledL2Normalize;

impl<B: L2NormGradBackend> Backward<B, 2> for ScaledL2Normalize {
    /// The input and the scale.
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (x, scale) = ops.state;
        let (dx, dscale) = B::scaled_l2_normalize_backward(x, scale, grad);
        register!(B, ops.parents, [dx, dscale], grads);
    }
}

impl<B, C> L2NormBackend for Autodiff<B, C>
where
    B: L2NormBackend + L2NormGradBackend,
    C: CheckpointStrategy,
{
    fn l2_normalize(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        match L2Normalize
            .prepare::<C>([x_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::l2_normalize(x.clone());
                prep.finish(x, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::l2_normalize(x)),
        }
    }

    fn scaled_l2_normalize(x: FloatTensor<Self>, scale: FloatTensor<Self>) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (scale, scale_node) = scale.into_parts();
        match ScaledL2Normalize
            .prepare::<C>([x_node, scale_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::scaled_l2_normalize(x.clone(), scale.clone());
                prep.finish((x, scale), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::scaled_l2_normalize(x, scale)),
        }
    }
}
