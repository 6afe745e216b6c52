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
//! chunks, carry into the next chunk. On the `flex` CPU backend and on a GPU, one fused operation
//! ([`crate::scan_kernel`]), which runs the leaky average too.

use burn::tensor::{Bool, DType, Tensor};

use crate::dispatch::{fused_kernels, via_f32};
use crate::scan_kernel::{Decay, fused_scan};

/// Chunk length of [`gated_scan_chunked`]: the work is `O(T * CHUNK + (T / CHUNK)^2)`.
pub const CHUNK: usize = 64;

/// `kbar_t = u_t + exp(log_decay_t) kbar_{t-1}`, `kbar_{-1} = 0`. `u`: `(B, H, T, hs)`,
/// `log_decay`: `(B, H, T, 1)`, at most 0. The fused scan on the CPU backend and GPUs,
/// [`gated_scan_chunked`] elsewhere.
pub fn gated_scan(u: Tensor<4>, log_decay: Tensor<4>) -> Tensor<4> {
    if let Some(half) = via_f32(u.dtype(), fused_kernels(&u.device(), DType::F32)) {
        return gated_scan(u.cast(DType::F32), log_decay.cast(DType::F32)).cast(half);
    }
    match fused_kernels(&u.device(), u.dtype()) {
        true => fused_scan(u, log_decay, Decay::PerStep),
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
