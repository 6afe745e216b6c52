//! Retrieval under a causal mask, `y = softmax(scale q k^T) v` where query `i` reads the keys
//! of a [`Band`], as one operation with its own backward pass on the `flex` CPU backend. The
//! contextual memories' retrievals are `scale` 1 and [`Band::PAST`] (v1; row 0 reads key 0, as
//! [`crate::retrieval`]'s explicit form does before it zeroes that row of the output) or the
//! v2 short- and long-term bands; GPT's attention is `scale` `1/sqrt(hs)`, [`Band::CAUSAL`].
//!
//! This is the training path, where Burn would record the scores, the masked softmax and the
//! product as separate `(B, H, T, T)` tensors each way. Each (batch, head) computes its scores
//! into one buffer, turns them into weights in place (the masked entries are never
//! exponentiated) and keeps them for the backward pass:
//!
//! ```text
//! dW = dy v^T;  dS = W * (dW - rowsum(dW * W));  dq = scale dS k;  dk = scale dS^T q;  dv = W^T dy
//! ```

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::Tensor;
use rayon::prelude::*;

use crate::backward::register;
use crate::band::Band;
use crate::matrix::{contiguous, mat, matmul, tensor};
use crate::row_kernels::{Visible, softmax_backward_in_place, softmax_in_place};

/// `softmax(scale q k^T)` over the keys `band` gives each query ([`Band::softmax_range`]),
/// times `values`; all `(B, H, T, hs)`. Only where [`crate::dispatch::cpu_kernels`] says so.
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

#[backend_extension(Flex, Autodiff)]
pub trait CausalBackend: Backend {
    /// The retrieval `(B, H, T, hs)`.
    fn causal_retrieval(
        query: FloatTensor<Self>,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
        scale: f64,
        band: Band,
    ) -> FloatTensor<Self>;

    /// The retrieval and its weights `(B, H, T, T)`, for the backward pass.
    fn causal_forward(
        query: FloatTensor<Self>,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
        scale: f64,
        band: Band,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// The gradients of the query, keys and values from the weights and the output's gradient.
    fn causal_backward(
        query: FloatTensor<Self>,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

impl CausalBackend for Flex {
    fn causal_retrieval(
        query: FlexTensor,
        keys: FlexTensor,
        values: FlexTensor,
        scale: f64,
        band: Band,
    ) -> FlexTensor {
        Self::causal_forward(query, keys, values, scale, band).0
    }

    fn causal_forward(
        query: FlexTensor,
        keys: FlexTensor,
        values: FlexTensor,
        scale: f64,
        band: Band,
    ) -> (FlexTensor, FlexTensor) {
        let ((q, d), (k, _), (v, _)) = (contiguous(&query), contiguous(&keys), contiguous(&values));
        let [b, h, t, hs] = [d[0], d[1], d[2], d[3]];
        let (q, k, v) = (q.storage::<f32>(), k.storage::<f32>(), v.storage::<f32>());
        let mut w = vec![0.0f32; b * h * t * t];
        let mut y = vec![0.0f32; b * h * t * hs];
        w.par_chunks_mut(t * t)
            .zip(y.par_chunks_mut(t * hs))
            .enumerate()
            .for_each(|(bh, (w, y))| {
                let at = bh * t * hs;
                let kb = mat(&k[at..], t, hs);
                matmul(w, mat(&q[at..], t, hs), kb.t(), scale as f32, false);
                let visible = Visible::Band { queries: t, band };
                softmax_in_place(w, t, 0, visible);
                matmul(y, mat(w, t, t), mat(&v[at..], t, hs), 1.0, false);
            });
        (tensor(y, d.clone()), tensor(w, vec![b, h, t, t]))
    }

    fn causal_backward(
        query: FlexTensor,
        keys: FlexTensor,
        values: FlexTensor,
        weights: FlexTensor,
        grad: FlexTensor,
        scale: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let ((q, d), (k, _), (v, _)) = (contiguous(&query), contiguous(&keys), contiguous(&values));
        let ((w, _), (dy, _)) = (contiguous(&weights), contiguous(&grad));
        let t = d[2];
        let hs = d[3];
        let (q, k, v) = (q.storage::<f32>(), k.storage::<f32>(), v.storage::<f32>());
        let (w, dy) = (w.storage::<f32>(), dy.storage::<f32>());
        let n = q.len();
        let (mut dq, mut dk, mut dv) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
        dq.par_chunks_mut(t * hs)
            .zip(dk.par_chunks_mut(t * hs))
            .zip(dv.par_chunks_mut(t * hs))
            .enumerate()
            .for_each(|(bh, ((dq, dk), dv))| {
                let at = bh * t * hs;
                let wb = &w[bh * t * t..(bh + 1) * t * t];
                let dyb = mat(&dy[at..], t, hs);
                let mut ds = vec![0.0f32; t * t];
                matmul(&mut ds, dyb, mat(&v[at..], t, hs).t(), 1.0, false);
                softmax_backward_in_place(wb, &mut ds, t);
                let dsb = mat(&ds, t, t);
                let scale = scale as f32;
                matmul(dq, dsb, mat(&k[at..], t, hs), scale, false);
                matmul(dk, dsb.t(), mat(&q[at..], t, hs), scale, false);
                matmul(dv, mat(wb, t, t).t(), dyb, 1.0, false);
            });
        (tensor(dq, d.clone()), tensor(dk, d.clone()), tensor(dv, d))
    }
}

impl<B: CausalBackend, C: CheckpointStrategy> CausalBackend for Autodiff<B, C> {
    fn causal_retrieval(
        query: FloatTensor<Self>,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
        scale: f64,
        band: Band,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct CausalRetrieval;

        impl<B: CausalBackend> Backward<B, 3> for CausalRetrieval {
            /// The inputs, the weights and the scores' scale.
            type State = ([FloatTensor<B>; 4], f64);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let ([q, k, v, w], scale) = ops.state;
                let grad = grads.consume::<B>(&ops.node);
                let (dq, dk, dv) = B::causal_backward(q, k, v, w, grad, scale);
                register!(B, ops.parents, [dq, dk, dv], grads);
            }
        }

        let (q, q_node) = query.into_parts();
        let (k, k_node) = keys.into_parts();
        let (v, v_node) = values.into_parts();
        match CausalRetrieval
            .prepare::<C>([q_node, k_node, v_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (y, w) = B::causal_forward(q.clone(), k.clone(), v.clone(), scale, band);
                prep.finish(([q, k, v, w], scale), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::causal_retrieval(q, k, v, scale, band)),
        }
    }

    fn causal_forward(
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: f64,
        _: Band,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        unreachable!("called by causal_retrieval on the inner backend only")
    }

    fn causal_backward(
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        unreachable!("called by the backward pass of causal_retrieval only, on the inner backend")
    }
}
