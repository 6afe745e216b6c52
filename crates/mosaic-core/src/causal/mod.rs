//! Retrieval under a causal mask, `y = softmax(scale q k^T) v` where query `i` reads the keys
//! of a [`Band`], as one operation with its own backward pass. The contextual memories'
//! retrievals are `scale` 1 and [`Band::PAST`] (v1; row 0 reads nothing and answers zero, as
//! [`crate::retrieval::band_retrieval`] does) or the v2 short- and long-term bands; GPT's
//! attention is `scale` `1/sqrt(hs)`, [`Band::CAUSAL`].
//!
//! This is the training path, where Burn would record the scores, the masked softmax and the
//! product as separate `(B, H, T, T)` tensors each way. Two implementations: [`cpu`] on the
//! `flex` backend keeps each head's weights for the backward pass; with a GPU feature, [`gpu`]
//! (CubeCL kernels for WGPU and CUDA) keeps only each row's log-sum-exp and computes the
//! weights again, so nothing of size `(T, T)` is ever written. One autodiff wrapper serves both.

mod cpu;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub(crate) mod gpu;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, backend_extension};
use burn::tensor::Tensor;

use crate::backward::register;
use crate::band::Band;

/// `softmax(scale q k^T)` over the keys `band` gives each query ([`Band::pairs`]), times
/// `values`, and zero for a query with none; all `(B, H, T, hs)`. Only where
/// [`crate::dispatch::fused_kernels`] says so.
pub fn causal_retrieval(
    query: Tensor<4>,
    keys: Tensor<4>,
    values: Tensor<4>,
    scale: f64,
    band: Band,
) -> Tensor<4> {
    Tensor::from_dispatch(Dispatch::causal_retrieval(
        query.into_dispatch(),
        keys.into_dispatch(),
        values.into_dispatch(),
        scale,
        band,
    ))
}

#[backend_extension(
    Flex,
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    Autodiff,
    Fusion: cfg(any(feature = "wgpu", feature = "cuda"))
)]
pub trait CausalBackend: Backend {
    /// The retrieval `(B, H, T, hs)`.
    #[fusion(dtype = query, shape = query)]
    fn causal_retrieval(
        query: FloatTensor<Self>,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
        scale: f64,
        band: Band,
    ) -> FloatTensor<Self>;
}

/// The two halves of the retrieval with gradients: the forward pass with what the backward
/// pass keeps (the weights `(B, H, T, T)` on the CPU, each row's log-sum-exp `(B, H, T, 1)` on
/// a GPU), and the backward pass from it.
#[backend_extension(
    Flex,
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    Fusion: cfg(any(feature = "wgpu", feature = "cuda"))
)]
pub trait CausalGradBackend: Backend {
    /// The retrieval and what its backward pass keeps.
    #[fusion(meta = |query, _keys, _values, _scale, _band| (query.clone(), row_spec(query)))]
    fn causal_forward(
        query: FloatTensor<Self>,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
        scale: f64,
        band: Band,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// The gradients of the query, keys and values.
    #[allow(clippy::too_many_arguments)]
    #[fusion(meta = |query, keys, values, _output, _kept, _grad, _scale, _band| {
        (query.clone(), keys.clone(), values.clone())
    })]
    fn causal_backward(
        query: FloatTensor<Self>,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
        output: FloatTensor<Self>,
        kept: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f64,
        band: Band,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// `(B, H, T, 1)` for a query `(B, H, T, hs)`: one number per row.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub(crate) fn row_spec(
    query: &burn::backend::fusion::custom::TensorSpec,
) -> burn::backend::fusion::custom::TensorSpec {
    let mut shape = query.shape.clone();
    shape[3] = 1;
    burn::backend::fusion::custom::TensorSpec::new(shape, query.dtype)
}

#[derive(Debug)]
struct CausalRetrieval;

impl<B: CausalGradBackend> Backward<B, 3> for CausalRetrieval {
    /// The inputs, the output, what the forward pass kept, the scale and the band.
    type State = ([FloatTensor<B>; 5], f64, Band);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let ([q, k, v, y, kept], scale, band) = ops.state;
        let grad = grads.consume::<B>(&ops.node);
        let (dq, dk, dv) = B::causal_backward(q, k, v, y, kept, grad, scale, band);
        register!(B, ops.parents, [dq, dk, dv], grads);
    }
}

impl<B, C> CausalBackend for Autodiff<B, C>
where
    B: CausalBackend + CausalGradBackend,
    C: CheckpointStrategy,
{
    fn causal_retrieval(
        query: FloatTensor<Self>,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
        scale: f64,
        band: Band,
    ) -> FloatTensor<Self> {
        let (q, q_node) = query.into_parts();
        let (k, k_node) = keys.into_parts();
        let (v, v_node) = values.into_parts();
        match CausalRetrieval
            .prepare::<C>([q_node, k_node, v_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (y, kept) = B::causal_forward(q.clone(), k.clone(), v.clone(), scale, band);
                prep.finish(([q, k, v, y.clone(), kept], scale, band), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::causal_retrieval(q, k, v, scale, band)),
        }
    }
}
