//! The bank retrieval on the `flex` CPU backend: each (batch, head) runs one [`Head`] against
//! its head's bank, its weights kept for the backward pass, which reuses one scratch buffer per
//! head and sums the bank's gradients over the batch.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use rayon::prelude::*;

use super::{BankBackend, BankGradBackend};
use crate::head_retrieval::Head;
use crate::matrix::{contiguous, mat, tensor};
use crate::row_kernels::Visible;

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

impl BankGradBackend for Flex {
    fn bank_forward(
        query: FlexTensor,
        keys: FlexTensor,
        values: FlexTensor,
    ) -> (FlexTensor, FlexTensor) {
        bank_forward(&[query, keys, values])
    }

    fn bank_backward(
        query: FlexTensor,
        keys: FlexTensor,
        values: FlexTensor,
        _output: FlexTensor,
        weights: FlexTensor,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let [dq, dk, dv] = bank_backward(&[query, keys, values], &weights, &grad);
        (dq, dk, dv)
    }
}
