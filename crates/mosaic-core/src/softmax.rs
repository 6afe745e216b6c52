//! Softmax over the last axis as one operation with its own backward pass.
//!
//! Burn's autodiff records a softmax as five operations (max, subtract, exp, sum, divide), each
//! writing a tensor of the input's size and each with its own backward, and the CPU backend
//! computes their `exp` one float at a time. The retrievals' softmaxes are over `(B, H, T, T)`
//! and `(B, H, T, pmem_size)` scores, the largest tensors of a training step. Here the forward
//! pass is the CPU backend's fused row kernel (vectorised `exp`, rows in parallel) and the
//! backward pass is one sweep over the rows: `dx = y * (dy - sum(dy * y))`, from the saved
//! output `y` alone.
//!
//! Only Burn's `flex` CPU backend (with or without gradients) takes this path; other backends
//! keep Burn's softmax, whose GPU kernels are fused already.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{DType, Device, Tensor, TensorData, activation};
use rayon::prelude::*;

/// `softmax(x, D - 1)`, fused on the CPU backend.
pub fn softmax_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    match fused(&x.device(), x.dtype()) {
        true => Tensor::from_dispatch(Dispatch::softmax_last(x.into_dispatch())),
        false => activation::softmax(x, D - 1),
    }
}

/// Whether `device` is the `flex` CPU backend (gradients or not) and `dtype` one the kernels
/// take.
fn fused(device: &Device, dtype: DType) -> bool {
    dtype == DType::F32 && device.clone().inner() == Device::flex()
}

#[backend_extension(Flex, Autodiff)]
pub trait SoftmaxBackend: Backend {
    /// Softmax over the last axis.
    fn softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// The input's gradient from the softmax's output `y` and the output's gradient.
    fn softmax_last_backward(y: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl SoftmaxBackend for Flex {
    fn softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let last = x.layout().shape().num_dims() - 1;
        burn::backend::flex::ops::activation::softmax(x, last)
    }

    fn softmax_last_backward(y: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        let shape = y.layout().shape().clone();
        let row = *shape.last().expect("a softmax has an axis");
        let (y, grad) = (y.to_contiguous(), grad.to_contiguous());
        let (ys, gs): (&[f32], &[f32]) = (y.storage(), grad.storage());
        let mut out = vec![0.0f32; ys.len()];
        // Rows in parallel, a few at a time so that a task is worth scheduling.
        let chunk = row * 16;
        out.par_chunks_mut(chunk)
            .zip(ys.par_chunks(chunk).zip(gs.par_chunks(chunk)))
            .for_each(|(o, (y, g))| {
                for ((o, y), g) in o
                    .chunks_exact_mut(row)
                    .zip(y.chunks_exact(row))
                    .zip(g.chunks_exact(row))
                {
                    let dot: f32 = y.iter().zip(g).map(|(y, g)| y * g).sum();
                    for ((o, y), g) in o.iter_mut().zip(y).zip(g) {
                        *o = y * (g - dot);
                    }
                }
            });
        FlexTensor::from_data(TensorData::new(out, shape))
    }
}

impl<B: SoftmaxBackend, C: CheckpointStrategy> SoftmaxBackend for Autodiff<B, C> {
    fn softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct SoftmaxLast;

        impl<B: SoftmaxBackend> Backward<B, 1> for SoftmaxLast {
            /// The forward pass's output: all the backward pass needs.
            type State = FloatTensor<B>;

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let y = ops.state;
                unary::<B, _>(ops.parents, ops.node, grads, |grad| {
                    B::softmax_last_backward(y, grad)
                });
            }
        }

        let (x, node) = x.into_parts();
        match SoftmaxLast.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = B::softmax_last(x);
                prep.finish(y.clone(), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::softmax_last(x)),
        }
    }

    fn softmax_last_backward(_: FloatTensor<Self>, _: FloatTensor<Self>) -> FloatTensor<Self> {
        unreachable!("called by the backward pass of softmax_last only, on the inner backend")
    }
}
