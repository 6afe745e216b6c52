//! The persistent memory's retrieval, `y = softmax(q K^T) V` against a bank shared by the
//! batch, as one operation with its own backward pass on the `flex` CPU backend.
//!
//! Its `(B, H, T, pmem_size)` scores are the largest tensors of a Memory Mosaic training step
//! (3.5 times the width per query). Written as tensor operations, every step of it allocates,
//! clears and writes such a tensor: the scores, the weights, and in the backward pass the
//! weights' gradient, the scores' gradient and the softmax's intermediates. Here each head
//! computes its scores into one buffer, turns them into weights in place and keeps them for the
//! backward pass, which reuses one scratch buffer per head:
//!
//! ```text
//! dW = dy V^T;  dS = W * (dW - rowsum(dW * W));  dq = dS K;  dK = sum_b dS^T q;  dV = sum_b W^T dy
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
use crate::matrix::{contiguous, mat, matmul, tensor};
use crate::row_kernels::{Visible, softmax_backward_in_place, softmax_in_place};

/// `softmax(query bank_keys^T) bank_values` per head: `query` `(B, H, T, hs)`, `bank_keys` and
/// `bank_values` `(H, P, hs)`. Only where [`crate::dispatch::cpu_kernels`] says so.
pub fn bank_retrieval(query: Tensor<4>, bank_keys: Tensor<3>, bank_values: Tensor<3>) -> Tensor<4> {
    Tensor::from_dispatch(Dispatch::bank_retrieval(
        query.into_dispatch(),
        bank_keys.into_dispatch(),
        bank_values.into_dispatch(),
    ))
}

#[backend_extension(Flex, Autodiff)]
pub trait BankBackend: Backend {
    /// The retrieval `(B, H, T, hs)`.
    fn bank_retrieval(
        query: FloatTensor<Self>,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// The retrieval and its weights `(B, H, T, P)`, for the backward pass.
    fn bank_forward(
        query: FloatTensor<Self>,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// The gradients of the query, keys and values from the weights and the output's gradient.
    fn bank_backward(
        query: FloatTensor<Self>,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

impl BankBackend for Flex {
    fn bank_retrieval(query: FlexTensor, keys: FlexTensor, values: FlexTensor) -> FlexTensor {
        Self::bank_forward(query, keys, values).0
    }

    fn bank_forward(
        query: FlexTensor,
        keys: FlexTensor,
        values: FlexTensor,
    ) -> (FlexTensor, FlexTensor) {
        let ((q, qd), (k, kd), (v, _)) =
            (contiguous(&query), contiguous(&keys), contiguous(&values));
        let [b, h, t, hs] = [qd[0], qd[1], qd[2], qd[3]];
        let p = kd[1];
        let (q, k, v) = (q.storage::<f32>(), k.storage::<f32>(), v.storage::<f32>());
        let mut w = vec![0.0f32; b * h * t * p];
        let mut y = vec![0.0f32; b * h * t * hs];
        // One (batch, head) pair a task.
        w.par_chunks_mut(t * p)
            .zip(y.par_chunks_mut(t * hs))
            .enumerate()
            .for_each(|(bh, (w, y))| {
                let head = bh % h;
                let kh = mat(&k[head * p * hs..], p, hs);
                let vh = mat(&v[head * p * hs..], p, hs);
                matmul(w, mat(&q[bh * t * hs..], t, hs), kh.t(), 1.0, false);
                softmax_in_place(w, p, 0, Visible::All);
                matmul(y, mat(w, t, p), vh, 1.0, false);
            });
        (tensor(y, vec![b, h, t, hs]), tensor(w, vec![b, h, t, p]))
    }

    fn bank_backward(
        query: FlexTensor,
        keys: FlexTensor,
        values: FlexTensor,
        weights: FlexTensor,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let ((q, qd), (k, kd)) = (contiguous(&query), contiguous(&keys));
        let ((v, _), (w, _), (dy, _)) =
            (contiguous(&values), contiguous(&weights), contiguous(&grad));
        let [b, h, t, hs] = [qd[0], qd[1], qd[2], qd[3]];
        let p = kd[1];
        let (q, k, v) = (q.storage::<f32>(), k.storage::<f32>(), v.storage::<f32>());
        let (w, dy) = (w.storage::<f32>(), dy.storage::<f32>());
        // One head a task: it sums its bank's gradients over the batch without sharing them.
        let per_head: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = (0..h)
            .into_par_iter()
            .map(|head| {
                let kh = mat(&k[head * p * hs..], p, hs);
                let vh = mat(&v[head * p * hs..], p, hs);
                let mut ds = vec![0.0f32; t * p];
                let mut dq = vec![0.0f32; b * t * hs];
                let (mut dk, mut dv) = (vec![0.0f32; p * hs], vec![0.0f32; p * hs]);
                for batch in 0..b {
                    let at = (batch * h + head) * t;
                    let (qb, wb) = (mat(&q[at * hs..], t, hs), mat(&w[at * p..], t, p));
                    let dyb = mat(&dy[at * hs..], t, hs);
                    matmul(&mut ds, dyb, vh.t(), 1.0, false);
                    softmax_backward_in_place(&w[at * p..(at + t) * p], &mut ds, p);
                    let dsb = mat(&ds, t, p);
                    matmul(&mut dq[batch * t * hs..], dsb, kh, 1.0, false);
                    matmul(&mut dk, dsb.t(), qb, 1.0, batch > 0);
                    matmul(&mut dv, wb.t(), dyb, 1.0, batch > 0);
                }
                (dq, dk, dv)
            })
            .collect();
        let mut dq = vec![0.0f32; b * h * t * hs];
        let (mut dk, mut dv) = (
            Vec::with_capacity(h * p * hs),
            Vec::with_capacity(h * p * hs),
        );
        for (head, (dqh, dkh, dvh)) in per_head.into_iter().enumerate() {
            for batch in 0..b {
                let at = (batch * h + head) * t * hs;
                dq[at..at + t * hs].copy_from_slice(&dqh[batch * t * hs..(batch + 1) * t * hs]);
            }
            dk.extend(dkh);
            dv.extend(dvh);
        }
        (
            tensor(dq, vec![b, h, t, hs]),
            tensor(dk, vec![h, p, hs]),
            tensor(dv, vec![h, p, hs]),
        )
    }
}

impl<B: BankBackend, C: CheckpointStrategy> BankBackend for Autodiff<B, C> {
    fn bank_retrieval(
        query: FloatTensor<Self>,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct BankRetrieval;

        impl<B: BankBackend> Backward<B, 3> for BankRetrieval {
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
                let (dq, dk, dv) = B::bank_backward(q, k, v, w, grad);
                register!(B, ops.parents, [dq, dk, dv], grads);
            }
        }

        let (q, q_node) = query.into_parts();
        let (k, k_node) = keys.into_parts();
        let (v, v_node) = values.into_parts();
        match BankRetrieval
            .prepare::<C>([q_node, k_node, v_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (y, w) = B::bank_forward(q.clone(), k.clone(), v.clone());
                prep.finish([q, k, v, w], y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::bank_retrieval(q, k, v)),
        }
    }

    fn bank_forward(
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        unreachable!("called by bank_retrieval on the inner backend only")
    }

    fn bank_backward(
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        unreachable!("called by the backward pass of bank_retrieval only, on the inner backend")
    }
}
