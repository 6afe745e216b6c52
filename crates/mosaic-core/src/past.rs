//! The contextual memory's retrieval, `y = softmax_past(q k^T) v` with the strictly-past mask,
//! as one operation with its own backward pass on the `flex` CPU backend: the training path,
//! where Burn would record the scores, the masked softmax and the product as separate
//! `(B, H, T, T)` tensors each way. Each (batch, head) computes its scores into one buffer,
//! turns them into weights in place (the masked entries are never exponentiated) and keeps them
//! for the backward pass:
//!
//! ```text
//! dW = dy v^T;  dS = W * (dW - rowsum(dW * W));  dq = dS k;  dk = dS^T q;  dv = W^T dy
//! ```
//!
//! Row 0 reads key 0 here, as [`crate::retrieval`]'s explicit form does before it zeroes that
//! row of the output.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::Tensor;
use rayon::prelude::*;

use crate::matrix::{contiguous, mat, matmul, tensor};
use crate::row_kernels::{Visible, softmax_backward_in_place, softmax_in_place};

/// Row `i` of a `t x t` matrix reads keys `j < max(i, 1)`.
fn past(t: usize) -> Visible {
    Visible::Causal {
        queries: t,
        shift: 0,
    }
}

/// `softmax(q k^T)` over the strict past (row 0: key 0) times `values`, all `(B, H, T, hs)`;
/// only where [`crate::bank::fused`] says the CPU kernels run.
pub fn past_retrieval(query: Tensor<4>, keys: Tensor<4>, values: Tensor<4>) -> Tensor<4> {
    Tensor::from_dispatch(Dispatch::past_retrieval(
        query.into_dispatch(),
        keys.into_dispatch(),
        values.into_dispatch(),
    ))
}

#[backend_extension(Flex, Autodiff)]
pub trait PastBackend: Backend {
    /// The retrieval `(B, H, T, hs)`.
    fn past_retrieval(
        query: FloatTensor<Self>,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// The retrieval and its weights `(B, H, T, T)`, for the backward pass.
    fn past_forward(
        query: FloatTensor<Self>,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// The gradients of the query, keys and values from the weights and the output's gradient.
    fn past_backward(
        query: FloatTensor<Self>,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

impl PastBackend for Flex {
    fn past_retrieval(query: FlexTensor, keys: FlexTensor, values: FlexTensor) -> FlexTensor {
        Self::past_forward(query, keys, values).0
    }

    fn past_forward(
        query: FlexTensor,
        keys: FlexTensor,
        values: FlexTensor,
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
                matmul(w, mat(&q[at..], t, hs), kb.t(), false);
                softmax_in_place(w, t, past(t));
                matmul(y, mat(w, t, t), mat(&v[at..], t, hs), false);
            });
        (tensor(y, d.clone()), tensor(w, vec![b, h, t, t]))
    }

    fn past_backward(
        query: FlexTensor,
        keys: FlexTensor,
        values: FlexTensor,
        weights: FlexTensor,
        grad: FlexTensor,
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
                matmul(&mut ds, dyb, mat(&v[at..], t, hs).t(), false);
                softmax_backward_in_place(wb, &mut ds, t);
                let dsb = mat(&ds, t, t);
                matmul(dq, dsb, mat(&k[at..], t, hs), false);
                matmul(dk, dsb.t(), mat(&q[at..], t, hs), false);
                matmul(dv, mat(wb, t, t).t(), dyb, false);
            });
        (tensor(dq, d.clone()), tensor(dk, d.clone()), tensor(dv, d))
    }
}

impl<B: PastBackend, C: CheckpointStrategy> PastBackend for Autodiff<B, C> {
    fn past_retrieval(
        query: FloatTensor<Self>,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct PastRetrieval;

        impl<B: PastBackend> Backward<B, 3> for PastRetrieval {
            /// The inputs and the weights.
            type State = [FloatTensor<B>; 4];

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [q, k, v, w] = ops.state;
                let grad = grads.consume::<B>(&ops.node);
                let (dq, dk, dv) = B::past_backward(q, k, v, w, grad);
                // The same tensor as query and keys gets the sum: `register` adds.
                for (parent, g) in ops.parents.into_iter().zip([dq, dk, dv]) {
                    if let Some(node) = parent {
                        grads.register::<B>(node.id, g);
                    }
                }
            }
        }

        let (q, q_node) = query.into_parts();
        let (k, k_node) = keys.into_parts();
        let (v, v_node) = values.into_parts();
        match PastRetrieval
            .prepare::<C>([q_node, k_node, v_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (y, w) = B::past_forward(q.clone(), k.clone(), v.clone());
                prep.finish([q, k, v, w], y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::past_retrieval(q, k, v)),
        }
    }

    fn past_forward(
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        unreachable!("called by past_retrieval on the inner backend only")
    }

    fn past_backward(
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        unreachable!("called by the backward pass of past_retrieval only, on the inner backend")
    }
}
