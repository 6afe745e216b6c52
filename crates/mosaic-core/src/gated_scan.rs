//! The one scan of the memories' keys, `kbar_t = u_t + a_t kbar_{t-1}` with a decay
//! `a_t = exp(log_decay_t)` per step: Memory Mosaics v2's gated keys (eq. 8, `u_t = g_t ktilde_t`
//! and `a_t` from the input) and, with a constant decay `a = lambda` and `u_t = (1 - lambda)
//! ktilde_t`, the v1 [`crate::LeakyAverage`].
//!
//! Three forms compute it. [`gated_scan_sequential`] is the recurrence as written, one step at
//! a time (the test oracle). [`gated_scan_chunked`] runs on any backend in O(T) with a fixed
//! number of tensor operations: within chunks of [`CHUNK`] steps the coefficients
//! `prod_{j < s <= t} a_s = exp(L_t - L_j)` come from the cumulative log-decays `L` (never a
//! ratio of small products), and the states at the chunk ends, themselves a gated scan over the
//! chunks, carry into the next chunk. On the `flex` CPU backend, one fused operation: a
//! sequential scan per (batch, head), whose backward pass runs the adjoint recurrence backwards,
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
use crate::matrix::{contiguous, tensor};

/// Chunk length of [`gated_scan_chunked`]: the work is `O(T * CHUNK + (T / CHUNK)^2)`.
pub const CHUNK: usize = 64;

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
/// (`(B, H, 1, hs)`, `(B, H, 1, 1)`, or anything that broadcasts to them) and the state before
/// it (`None` at the first step).
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

/// The recurrence in O(T) with tensor operations, for any backend. The sequence is cut into
/// chunks of [`CHUNK`] steps (the last padded with `u = 0`, which changes no earlier step);
/// every chunk is scanned as if the past before it were empty, all in one matmul; the state at
/// each chunk's end is then a gated scan over the chunks (decay: the chunk's summed
/// log-decays), and position `r` of chunk `c` adds `exp(L_r)` of the state before it.
pub fn gated_scan_chunked(u: Tensor<4>, log_decay: Tensor<4>) -> Tensor<4> {
    let [b, h, t, hs] = u.dims();
    if t <= CHUNK {
        return gated_scan_quadratic(u, log_decay);
    }
    let n = t.div_ceil(CHUNK);
    let pad = |x: Tensor<4>, width: usize| match n * CHUNK - t {
        0 => x,
        extra => {
            let zeros = Tensor::zeros([b, h, extra, width], (&x.device(), x.dtype()));
            Tensor::cat(vec![x, zeros], 2)
        }
    };
    let u = pad(u, hs).reshape([b * h, n, CHUNK, hs]);
    let cumulative = pad(log_decay, 1).reshape([b * h, n, CHUNK, 1]).cumsum(2);
    let local = decay_coefficients(cumulative.clone()).matmul(u);
    let ends = local.clone().narrow(2, CHUNK - 1, 1).reshape([b, h, n, hs]);
    let totals = cumulative
        .clone()
        .narrow(2, CHUNK - 1, 1)
        .reshape([b, h, n, 1]);
    let ends = gated_scan_quadratic(ends, totals).reshape([b * h, n, 1, hs]);
    let before = Tensor::cat(
        vec![
            Tensor::zeros([b * h, 1, 1, hs], (&ends.device(), ends.dtype())),
            ends.narrow(1, 0, n - 1),
        ],
        1,
    );
    let out = local + cumulative.exp() * before;
    out.reshape([b, h, n * CHUNK, hs]).narrow(2, 0, t)
}

/// The scan as one `(T x T)` matrix of coefficients, O(T^2): for short sequences, and for the
/// chunk ends of [`gated_scan_chunked`].
fn gated_scan_quadratic(u: Tensor<4>, log_decay: Tensor<4>) -> Tensor<4> {
    decay_coefficients(log_decay.cumsum(2)).matmul(u)
}

/// `C[.., i, j] = exp(L_i - L_j)` for `j <= i`, else 0, from the cumulative log-decays `L`
/// `(.., T, 1)`.
fn decay_coefficients(cumulative: Tensor<4>) -> Tensor<4> {
    let [b, h, t, _] = cumulative.dims();
    // tril_mask is true above the diagonal: the entries to drop. They are filled before `exp`:
    // their differences are positive and could overflow, and an inf there would make NaN
    // gradients even once masked.
    let future = Tensor::<2, Bool>::tril_mask([t, t], 0, &cumulative.device());
    (cumulative.clone() - cumulative.swap_dims(2, 3))
        .mask_fill(
            future.unsqueeze::<4>().expand([b, h, t, t]),
            f32::NEG_INFINITY,
        )
        .exp()
}

#[backend_extension(Flex, Autodiff)]
pub trait GatedScanBackend: Backend {
    fn gated_scan(u: FloatTensor<Self>, log_decay: FloatTensor<Self>) -> FloatTensor<Self>;
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
}

/// The gradients of `u` and of `log_decay` from the output `kbar` and its gradient.
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

impl<C: CheckpointStrategy> GatedScanBackend for Autodiff<Flex, C> {
    fn gated_scan(u: FloatTensor<Self>, log_decay: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct GatedScan;

        impl Backward<Flex, 2> for GatedScan {
            /// The log-decays and the output.
            type State = [FlexTensor; 2];

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [log_decay, kbar] = ops.state;
                let grad = grads.consume::<Flex>(&ops.node);
                let (du, dlog) = gated_scan_backward(log_decay, kbar, grad);
                register!(Flex, ops.parents, [du, dlog], grads);
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
                let kbar = Flex::gated_scan(u, log_decay.clone());
                prep.finish([log_decay, kbar.clone()], kbar)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::gated_scan(u, log_decay)),
        }
    }
}
