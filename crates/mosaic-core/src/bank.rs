//! The persistent memory's retrieval, `y = softmax(q K^T) V` against a bank shared by the
//! batch, as one operation with its own backward pass on the `flex` CPU backend.
//!
//! Its `(B, H, T, pmem_size)` scores are the largest tensors of a Memory Mosaic training step
//! (3.5 times the width per query). Written as tensor operations, every step of it allocates,
//! clears and writes such a tensor: the scores, the weights, and in the backward pass the
//! weights' gradient, the scores' gradient and the softmax's intermediates. Here each
//! (batch, head) runs one [`Head`] against its head's bank, its weights kept for the backward
//! pass, which reuses one scratch buffer per head and sums the bank's gradients over the batch.

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
use crate::head_retrieval::Head;
use crate::matrix::{contiguous, mat, tensor};
use crate::row_kernels::Visible;

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
}

impl BankBackend for Flex {
    fn bank_retrieval(query: FlexTensor, keys: FlexTensor, values: FlexTensor) -> FlexTensor {
        bank_forward(&[query, keys, values]).0
    }
}

/// Sizes: batch, heads, queries per head, head size, bank slots.
#[derive(Clone, Copy)]
struct Sizes {
    b: usize,
    h: usize,
    t: usize,
    hs: usize,
    p: usize,
}

impl Sizes {
    fn of(query: &[usize], keys: &[usize]) -> Sizes {
        let [b, h, t, hs] = [query[0], query[1], query[2], query[3]];
        Sizes {
            b,
            h,
            t,
            hs,
            p: keys[1],
        }
    }

    /// The queries of `(batch, head)` against that head's bank, as one [`Head`].
    fn head<'a>(self, qkv: [&'a [f32]; 3], batch: usize, head: usize) -> Head<'a> {
        let Sizes { h, t, hs, p, .. } = self;
        Head {
            q: mat(&qkv[0][(batch * h + head) * t * hs..], t, hs),
            k: mat(&qkv[1][head * p * hs..], p, hs),
            v: mat(&qkv[2][head * p * hs..], p, hs),
            scale: 1.0,
        }
    }
}

/// The retrieval and its weights `(B, H, T, P)`, for the backward pass.
fn bank_forward(qkv: &[FlexTensor; 3]) -> (FlexTensor, FlexTensor) {
    let [(q, qd), (k, kd), (v, _)] = qkv.each_ref().map(contiguous);
    let n = Sizes::of(&qd, &kd);
    let Sizes { b, h, t, hs, p } = n;
    let qkv = [q.storage::<f32>(), k.storage::<f32>(), v.storage::<f32>()];
    let mut w = vec![0.0f32; b * h * t * p];
    let mut y = vec![0.0f32; b * h * t * hs];
    // One (batch, head) pair a task.
    w.par_chunks_mut(t * p)
        .zip(y.par_chunks_mut(t * hs))
        .enumerate()
        .for_each(|(bh, (w, y))| {
            n.head(qkv, bh / h, bh % h).forward(Visible::All, w, y);
        });
    (tensor(y, qd), tensor(w, vec![b, h, t, p]))
}

/// The gradients of the query, keys and values from the weights and the output's gradient.
fn bank_backward(
    qkv: &[FlexTensor; 3],
    weights: &FlexTensor,
    grad: &FlexTensor,
) -> [FlexTensor; 3] {
    let [(q, qd), (k, kd), (v, _)] = qkv.each_ref().map(contiguous);
    let ((w, _), (dy, _)) = (contiguous(weights), contiguous(grad));
    let n = Sizes::of(&qd, &kd);
    let Sizes { b, h, t, hs, p } = n;
    let qkv = [q.storage::<f32>(), k.storage::<f32>(), v.storage::<f32>()];
    let (w, dy) = (w.storage::<f32>(), dy.storage::<f32>());
    // One head a task: it sums its bank's gradients over the batch without sharing them.
    let per_head: Vec<[Vec<f32>; 3]> = (0..h)
        .into_par_iter()
        .map(|head| {
            let mut ds = vec![0.0f32; t * p];
            let mut dq = vec![0.0f32; b * t * hs];
            let (mut dk, mut dv) = (vec![0.0f32; p * hs], vec![0.0f32; p * hs]);
            for batch in 0..b {
                let at = (batch * h + head) * t;
                let dyb = mat(&dy[at * hs..], t, hs);
                let dqb = &mut dq[batch * t * hs..];
                n.head(qkv, batch, head).backward(
                    &w[at * p..(at + t) * p],
                    dyb,
                    &mut ds,
                    dqb,
                    &mut dk,
                    &mut dv,
                    batch > 0,
                );
            }
            [dq, dk, dv]
        })
        .collect();
    let mut dq = vec![0.0f32; b * h * t * hs];
    let (mut dk, mut dv) = (
        Vec::with_capacity(h * p * hs),
        Vec::with_capacity(h * p * hs),
    );
    for (head, [dqh, dkh, dvh]) in per_head.into_iter().enumerate() {
        for batch in 0..b {
            let at = (batch * h + head) * t * hs;
            dq[at..at + t * hs].copy_from_slice(&dqh[batch * t * hs..(batch + 1) * t * hs]);
        }
        dk.extend(dkh);
        dv.extend(dvh);
    }
    [
        tensor(dq, qd),
        tensor(dk, vec![h, p, hs]),
        tensor(dv, vec![h, p, hs]),
    ]
}

impl<C: CheckpointStrategy> BankBackend for Autodiff<Flex, C> {
    fn bank_retrieval(
        query: FloatTensor<Self>,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct BankRetrieval;

        impl Backward<Flex, 3> for BankRetrieval {
            /// The inputs and the weights.
            type State = ([FlexTensor; 3], FlexTensor);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let (qkv, w) = ops.state;
                let grad = grads.consume::<Flex>(&ops.node);
                let [dq, dk, dv] = bank_backward(&qkv, &w, &grad);
                register!(Flex, ops.parents, [dq, dk, dv], grads);
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
                let qkv = [q, k, v];
                let (y, w) = bank_forward(&qkv);
                prep.finish((qkv, w), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::bank_retrieval(q, k, v)),
        }
    }
}
