//! Retrieval under a causal mask, `y = softmax(scale q k^T) v` where query `i` reads the keys
//! of a [`Band`], as one operation with its own backward pass on the `flex` CPU backend. The
//! contextual memories' retrievals are `scale` 1 and [`Band::PAST`] (v1; row 0 reads key 0, as
//! [`crate::retrieval`]'s explicit form does before it zeroes that row of the output) or the
//! v2 short- and long-term bands; GPT's attention is `scale` `1/sqrt(hs)`, [`Band::CAUSAL`].
//!
//! This is the training path, where Burn would record the scores, the masked softmax and the
//! product as separate `(B, H, T, T)` tensors each way. Each (batch, head) runs one
//! [`Head`]: its weights in one buffer, kept for the backward pass.

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
use crate::head_retrieval::Head;
use crate::matrix::{contiguous, mat, tensor};
use crate::row_kernels::Visible;

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
}

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
        });
    (tensor(y, d.clone()), tensor(w, vec![b, h, t, t]))
}

/// The gradients of the query, keys and values from the weights and the output's gradient.
fn causal_backward(
    qkv: &[FlexTensor; 3],
    weights: &FlexTensor,
    grad: &FlexTensor,
    scale: f64,
) -> [FlexTensor; 3] {
    let [(q, d), (k, _), (v, _)] = qkv.each_ref().map(contiguous);
    let ((w, _), (dy, _)) = (contiguous(weights), contiguous(grad));
    let [t, hs] = [d[2], d[3]];
    let qkv = [q.storage::<f32>(), k.storage::<f32>(), v.storage::<f32>()];
    let (w, dy) = (w.storage::<f32>(), dy.storage::<f32>());
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

impl<C: CheckpointStrategy> CausalBackend for Autodiff<Flex, C> {
    fn causal_retrieval(
        query: FloatTensor<Self>,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
        scale: f64,
        band: Band,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct CausalRetrieval;

        impl Backward<Flex, 3> for CausalRetrieval {
            /// The inputs, the weights and the scores' scale.
            type State = ([FlexTensor; 3], FlexTensor, f64);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let (qkv, w, scale) = ops.state;
                let grad = grads.consume::<Flex>(&ops.node);
                let [dq, dk, dv] = causal_backward(&qkv, &w, &grad, scale);
                register!(Flex, ops.parents, [dq, dk, dv], grads);
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
                let qkv = [q, k, v];
                let (y, w) = causal_forward(&qkv, scale, band);
                prep.finish((qkv, w, scale), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::causal_retrieval(q, k, v, scale, band)),
        }
    }
}
