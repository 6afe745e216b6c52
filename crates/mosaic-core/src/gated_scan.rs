//! The gated key recurrence of Memory Mosaics v2 (eq. 8), `kbar_t = u_t + a_t kbar_{t-1}` with
//! `u_t = g_t ktilde_t` and a decay `a_t = exp(log_decay_t)` that changes with every step: the
//! v1 leaky average is the case of constant `a` and `u_t = (1 - a) ktilde_t`.
//!
//! Three forms compute it. [`gated_scan_sequential`] is the recurrence as written, one step at
//! a time (the test oracle). [`gated_scan_chunked`] runs on any backend in O(T): within a chunk
//! of [`CHUNK`] steps the coefficients `prod_{j < s <= t} a_s = exp(L_t - L_j)` come from the
//! cumulative log-decays `L` (never a ratio of small products), and the state at each chunk's
//! end carries into the next. On the `flex` CPU backend, one fused operation: a sequential scan
//! per (batch, head), whose backward pass runs the adjoint recurrence backwards,
//! `r_t = dy_t + a_{t+1} r_{t+1}`; then `du_t = r_t` and `dlog_decay_t = a_t r_t . kbar_{t-1}`.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{Bool, Tensor};
use rayon::prelude::*;

use crate::backward::register;
use crate::dispatch::cpu_kernels;
use crate::leaky_average::CHUNK;
use crate::matrix::{contiguous, tensor};

/// `kbar_t = u_t + exp(log_decay_t) kbar_{t-1}`, `kbar_{-1} = 0`. `u`: `(B, H, T, hs)`,
/// `log_decay`: `(B, H, T, 1)`, at most 0. The fused scan on the CPU backend,
/// [`gated_scan_chunked`] elsewhere.
pub fn gated_scan(u: Tensor<4>, log_decay: Tensor<4>) -> Tensor<4> {
    match cpu_kernels(&u.device(), u.dtype()) {
        true => Tensor::from_dispatch(Dispatch::gated_scan(
            u.into_dispatch(),
            log_decay.into_dispatch(),
        )),
        false => gated_scan_chunked(u, log_decay),
    }
}

/// One step of the recurrence, for generation: the new step's `u` and `log_decay`
/// (`(B, H, 1, hs)`, `(B, H, 1, 1)`) and the state before it (`None` at the first step).
pub fn gated_step(previous: Option<Tensor<4>>, u: Tensor<4>, log_decay: Tensor<4>) -> Tensor<4> {
    match previous {
        Some(p) => u + p * log_decay.exp(),
        None => u,
    }
}

/// The recurrence one step at a time with tensor operations: slow and obviously right.
pub fn gated_scan_sequential(u: Tensor<4>, log_decay: Tensor<4>) -> Tensor<4> {
    let t = u.dims()[2];
    let mut state = None;
    let mut steps = Vec::with_capacity(t);
    for s in 0..t {
        let next = gated_step(
            state,
            u.clone().narrow(2, s, 1),
            log_decay.clone().narrow(2, s, 1),
        );
        steps.push(next.clone());
        state = Some(next);
    }
    Tensor::cat(steps, 2)
}

/// The recurrence in O(T) with tensor operations, for any backend: within each chunk the
/// matrix of coefficients `exp(L_t - L_j)` (`j <= t`, `L` the inclusive cumulative sum of the
/// log-decays), across chunks the state at the chunk's end, kept with `exp(L_t)`.
pub fn gated_scan_chunked(u: Tensor<4>, log_decay: Tensor<4>) -> Tensor<4> {
    let [b, h, t, _] = u.dims();
    let device = u.device();
    let mut state: Option<Tensor<4>> = None;
    let mut chunks = Vec::with_capacity(t.div_ceil(CHUNK));
    for start in (0..t).step_by(CHUNK) {
        let n = CHUNK.min(t - start);
        let u = u.clone().narrow(2, start, n);
        let lower = Tensor::<2, Bool>::tril_mask([n, n], 0, &device);
        // tril_mask is true above the diagonal: the entries to drop.
        let ones = Tensor::<2>::ones([n, n], (&device, u.dtype())).mask_fill(lower.clone(), 0.0);
        let cumulative = ones
            .unsqueeze::<4>()
            .expand([b, h, n, n])
            .matmul(log_decay.clone().narrow(2, start, n));
        // The future entries are filled before `exp`: their differences are positive and could
        // overflow, and an inf there would make NaN gradients even once masked.
        let coef = (cumulative.clone() - cumulative.clone().swap_dims(2, 3))
            .mask_fill(
                lower.unsqueeze::<4>().expand([b, h, n, n]),
                f32::NEG_INFINITY,
            )
            .exp();
        let mut out = coef.matmul(u);
        if let Some(s) = state {
            out = out + cumulative.exp() * s;
        }
        state = Some(out.clone().narrow(2, n - 1, 1));
        chunks.push(out);
    }
    Tensor::cat(chunks, 2)
}

#[backend_extension(Flex, Autodiff)]
pub trait GatedScanBackend: Backend {
    fn gated_scan(u: FloatTensor<Self>, log_decay: FloatTensor<Self>) -> FloatTensor<Self>;

    /// The gradients of `u` and of `log_decay` from the output `kbar` and its gradient.
    fn gated_scan_backward(
        log_decay: FloatTensor<Self>,
        kbar: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
}

impl GatedScanBackend for Flex {
    fn gated_scan(u: FlexTensor, log_decay: FlexTensor) -> FlexTensor {
        let (u, shape) = contiguous(&u);
        let (log_decay, _) = contiguous(&log_decay);
        let [t, hs] = [shape[2], shape[3]];
        let (us, ls) = (u.storage::<f32>(), log_decay.storage::<f32>());
        let mut out = vec![0.0f32; us.len()];
        out.par_chunks_mut(t * hs)
            .zip(us.par_chunks(t * hs))
            .zip(ls.par_chunks(t))
            .for_each(|((out, u), l)| {
                let mut state = vec![0.0f32; hs];
                for ((o, u), l) in out.chunks_exact_mut(hs).zip(u.chunks_exact(hs)).zip(l) {
                    let a = l.exp();
                    for ((s, o), u) in state.iter_mut().zip(o.iter_mut()).zip(u) {
                        *s = u + a * *s;
                        *o = *s;
                    }
                }
            });
        tensor(out, shape)
    }

    fn gated_scan_backward(
        log_decay: FlexTensor,
        kbar: FlexTensor,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor) {
        let (kbar, shape) = contiguous(&kbar);
        let ((grad, _), (log_decay, decay_shape)) = (contiguous(&grad), contiguous(&log_decay));
        let [t, hs] = [shape[2], shape[3]];
        let (ks, gs, ls) = (
            kbar.storage::<f32>(),
            grad.storage::<f32>(),
            log_decay.storage::<f32>(),
        );
        let mut du = vec![0.0f32; ks.len()];
        let mut dlog = vec![0.0f32; ls.len()];
        du.par_chunks_mut(t * hs)
            .zip(dlog.par_chunks_mut(t))
            .enumerate()
            .for_each(|(bh, (du, dlog))| {
                let (k, g) = (&ks[bh * t * hs..][..t * hs], &gs[bh * t * hs..][..t * hs]);
                let l = &ls[bh * t..][..t];
                // r_t = dy_t + a_{t+1} r_{t+1}, with r and a_{t+1} of the step after.
                let mut r = vec![0.0f32; hs];
                let mut next_decay = 0.0f32;
                for step in (0..t).rev() {
                    let at = step * hs;
                    let mut dot = 0.0f32;
                    for (i, r) in r.iter_mut().enumerate() {
                        *r = g[at + i] + next_decay * *r;
                        du[at + i] = *r;
                        if step > 0 {
                            dot += *r * k[at - hs + i];
                        }
                    }
                    let decay = l[step].exp();
                    dlog[step] = decay * dot;
                    next_decay = decay;
                }
            });
        (tensor(du, shape), tensor(dlog, decay_shape))
    }
}

impl<B: GatedScanBackend, C: CheckpointStrategy> GatedScanBackend for Autodiff<B, C> {
    fn gated_scan(u: FloatTensor<Self>, log_decay: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct GatedScan;

        impl<B: GatedScanBackend> Backward<B, 2> for GatedScan {
            /// The log-decays and the output.
            type State = [FloatTensor<B>; 2];

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [log_decay, kbar] = ops.state;
                let grad = grads.consume::<B>(&ops.node);
                let (du, dlog) = B::gated_scan_backward(log_decay, kbar, grad);
                register!(B, ops.parents, [du, dlog], grads);
            }
        }

        let (u, u_node) = u.into_parts();
        let (log_decay, decay_node) = log_decay.into_parts();
        match GatedScan
            .prepare::<C>([u_node, decay_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let kbar = B::gated_scan(u, log_decay.clone());
                prep.finish([log_decay, kbar.clone()], kbar)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::gated_scan(u, log_decay)),
        }
    }

    fn gated_scan_backward(
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        unreachable!("called by the backward pass of gated_scan only, on the inner backend")
    }
}
