//! The persistent memory's retrieval, `y = softmax(q K^T) V` against a bank shared by the
//! batch, as one operation with its own backward pass.
//!
//! Its `(B, H, T, pmem_size)` scores are the largest tensors of a Memory Mosaic training step
//! (3.5 times the width per query). Written as tensor operations, every step of it allocates,
//! clears and writes such a tensor: the scores, the weights, and in the backward pass the
//! weights' gradient, the scores' gradient and the softmax's intermediates. Two
//! implementations: [`cpu`] on the `flex` backend keeps the weights for the backward pass; with
//! a GPU feature, the retrieval's CubeCL kernels ([`crate::causal`]) with every slot of the
//! head's bank visible, keeping each row's log-sum-exp. One autodiff wrapper serves both.

mod cpu;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod gpu;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, backend_extension};
use burn::tensor::Tensor;

use crate::backward::register;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
use crate::causal::row_spec;

/// `softmax(query bank_keys^T) bank_values` per head: `query` `(B, H, T, hs)`, `bank_keys` and
/// `bank_values` `(H, P, hs)`. Only where [`crate::dispatch::fused_kernels`] says so.
pub fn bank_retrieval(query: Tensor<4>, bank_keys: Tensor<3>, bank_values: Tensor<3>) -> Tensor<4> {
    Tensor::from_dispatch(Dispatch::bank_retrieval(
        query.into_dispatch(),
        bank_keys.into_dispatch(),
        bank_values.into_dispatch(),
    ))
}

#[backend_extension(
    Flex,
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    Autodiff,
    Fusion: cfg(any(feature = "wgpu", feature = "cuda"))
)]
pub trait BankBackend: Backend {
    /// The retrieval `(B, H, T, hs)`.
    #[fusion(dtype = query, shape = query)]
    fn bank_retrieval(
        query: FloatTensor<Self>,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// The two halves of the retrieval with gradients: the forward pass with what the backward
/// pass keeps (the weights `(B, H, T, P)` on the CPU, each row's log-sum-exp `(B, H, T, 1)` on
/// a GPU), and the backward pass from it.
#[backend_extension(
    Flex,
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    Fusion: cfg(any(feature = "wgpu", feature = "cuda"))
)]
pub trait BankGradBackend: Backend {
    /// The retrieval and what its backward pass keeps.
    #[fusion(meta = |query, _keys, _values| (query.clone(), row_spec(query)))]
    fn bank_forward(
        query: FloatTensor<Self>,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// The gradients of the query and of the bank's keys and values.
    #[fusion(meta = |query, keys, values, _output, _kept, _grad| {
        (query.clone(), keys.clone(), values.clone())
    })]
    fn bank_backward(
        query: FloatTensor<Self>,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
        output: FloatTensor<Self>,
        kept: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

#[derive(Debug)]
struct BankRetrieval;

impl<B: BankGradBackend> Backward<B, 3> for BankRetrieval {
    /// The inputs, the output and what the forward pass kept.
    type State = [FloatTensor<B>; 5];

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [q, k, v, y, kept] = ops.state;
        let grad = grads.consume::<B>(&ops.node);
        let (dq, dk, dv) = B::bank_backward(q, k, v, y, kept, grad);
        register!(B, ops.parents, [dq, dk, dv], grads);
    }
}

impl<B, C> BankBackend for Autodiff<B, C>
where
    B: BankBackend + BankGradBackend,
    C: CheckpointStrategy,
{
    fn bank_retrieval(
        query: FloatTensor<Self>,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let (q, q_node) = query.into_parts();
        let (k, k_node) = keys.into_parts();
        let (v, v_node) = values.into_parts();
        match BankRetrieval
            .prepare::<C>([q_node, k_node, v_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (y, kept) = B::bank_forward(q.clone(), k.clone(), v.clone());
                prep.finish([q, k, v, y.clone(), kept], y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::bank_retrieval(q, k, v)),
        }
    }
}
