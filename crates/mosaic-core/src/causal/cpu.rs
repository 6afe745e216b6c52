//! The retrieval on the `flex` CPU backend: each (batch, head) runs one [`Head`], its weights
//! `(T, T)` in one buffer, kept for the backward pass.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use rayon::prelude::*;

use super::{CausalBackend, CausalGradBackend};
use crate::band::Band;
use crate::head_retrieval::Head;
use crate::matrix::{contiguous, mat, tensor};
use crate::row_kernels::Visible;

impl CausalBackend for Flex {
    fn causal_retrieval(
        query: FlexTensor,
        keys: FlexTensor,
        values: FlexTensor,
        scale: f64,
        band: Band,
    ) -> FlexTensor {
        causal_forward(&[query, keys, values], scale, band).0
    }
}

/// The slices of (batch, head) `bh` of `q, k, v` `(B, H, T, hs)`, as one [`Head`].
fn head<'a>(qkv: [&'a [f32]; 3], bh: usize, t: usize, hs: usize, scale: f64) -> Head<'a> {
    let [q, k, v] = qkv.map(|x| mat(&x[bh * t * hs..], t, hs));
    Head {
        q,
        k,
        v,
        scale: scale as f32,
    }
}

/// The retrieval and its weights `(B, H, T, T)`, for the backward pass.
fn causal_forward(qkv: &[FlexTensor; 3], scale: f64, band: Band) -> (FlexTensor, FlexTensor) {
    let [(q, d), (k, _), (v, _)] = qkv.each_ref().map(contiguous);
    let [b, h, t, hs] = [d[0], d[1], d[2], d[3]];
    let qkv = [q.storage::<f32>(), k.storage::<f32>(), v.storage::<f32>()];
    let mut w = vec![0.0f32; b * h * t * t];
    let mut y = vec![0.0f32; b * h * t * hs];
    w.par_chunks_mut(t * t)
        .zip(y.par_chunks_mut(t * hs))
        .enumerate()
        .for_each(|(bh, (w, y))| {
            let visible = Visible::Band { queries: t, band };
            head(qkv, bh, t, hs, scale).forward(visible, w, y);
            // The rows with nothing to read, which read key 0 above, answer zero.
            y[..band.empty_rows().min(t) * hs].fill(0.0);
        });
    (tensor(y, d.clone()), tensor(w, vec![b, h, t, t]))
}

/// The gradients of the query, keys and values from the weights and the output's gradient.
fn causal_backward(
    qkv: &[FlexTensor; 3],
    weights: &FlexTensor,
    grad: &FlexTensor,
    scale: f64,
    band: Band,
) -> [FlexTensor; 3] {
    let [(q, d), (k, _), (v, _)] = qkv.each_ref().map(contiguous);
    let ((w, _), (dy, _)) = (contiguous(weights), contiguous(grad));
    let [t, hs] = [d[2], d[3]];
    let qkv = [q.storage::<f32>(), k.storage::<f32>(), v.storage::<f32>()];
    let w = w.storage::<f32>();
    let dy = without_empty_rows(dy.storage::<f32>(), t * hs, band.empty_rows().min(t) * hs);
    let n = qkv[0].len();
    let (mut dq, mut dk, mut dv) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
    dq.par_chunks_mut(t * hs)
        .zip(dk.par_chunks_mut(t * hs))
        .zip(dv.par_chunks_mut(t * hs))
        .enumerate()
        .for_each(|(bh, ((dq, dk), dv))| {
            let wb = &w[bh * t * t..(bh + 1) * t * t];
            let dyb = mat(&dy[bh * t * hs..], t, hs);
            let mut ds = vec![0.0f32; t * t];
            head(qkv, bh, t, hs, scale).backward(wb, dyb, &mut ds, dq, dk, dv, false);
        });
    [dq, dk, dv].map(|g| tensor(g, d.clone()))
}

/// `dy` with the first `empty` values of every `head`-long block zeroed: the rows whose output
/// is a constant zero pass no gradient back.
fn without_empty_rows(dy: &[f32], head: usize, empty: usize) -> std::borrow::Cow<'_, [f32]> {
    if empty == 0 {
        return dy.into();
    }
    let mut dy = dy.to_vec();
    dy.chunks_mut(head).for_each(|h| h[..empty].fill(0.0));
    dy.into()
}

impl CausalGradBackend for Flex {
    fn causal_forward(
        query: FlexTensor,
        keys: FlexTensor,
        values: FlexTensor,
        scale: f64,
        band: Band,
    ) -> (FlexTensor, FlexTensor) {
        causal_forward(&[query, keys, values], scale, band)
    }

    fn causal_backward(
        query: FlexTensor,
        keys: FlexTensor,
        values: FlexTensor,
        _output: FlexTensor,
        weights: FlexTensor,
        grad: FlexTensor,
        scale: f64,
        band: Band,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let [dq, dk, dv] = causal_backward(&[query, keys, values], &weights, &grad, scale, band);
        (dq, dk, dv)
    }
}
