//! The scan on the `flex` CPU backend: one sequential scan per (batch, head) over all its
//! features, the leaky decay's gradient summed per (batch, head) in f64.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use rayon::prelude::*;

use super::{ScanBackend, ScanGradBackend};
use crate::matrix::{contiguous, tensor};

/// The decay and gain of each step of one (batch, head).
#[derive(Clone, Copy)]
enum Steps<'a> {
    Logs(&'a [f32]),
    Constant { decay: f32, gain: f32 },
}

impl Steps<'_> {
    fn of(decay: &[f32], leaky: bool, bh: usize, t: usize) -> Steps<'_> {
        match leaky {
            true => {
                let lambda = (-decay[bh % decay.len()]).exp();
                Steps::Constant {
                    decay: lambda,
                    gain: 1.0 - lambda,
                }
            }
            false => Steps::Logs(&decay[bh * t..(bh + 1) * t]),
        }
    }

    /// `(a_t, g_t)`.
    fn at(self, step: usize) -> (f32, f32) {
        match self {
            Steps::Logs(l) => (l[step].exp(), 1.0),
            Steps::Constant { decay, gain } => (decay, gain),
        }
    }
}

impl ScanBackend for Flex {
    fn key_scan(u: FlexTensor, decay: FlexTensor, leaky: bool) -> FlexTensor {
        let (u, shape) = contiguous(&u);
        let (decay, _) = contiguous(&decay);
        let [t, hs] = [shape[2], shape[3]];
        let (us, ds) = (u.storage::<f32>(), decay.storage::<f32>());
        let mut out = vec![0.0f32; us.len()];
        out.par_chunks_mut(t * hs)
            .zip(us.par_chunks(t * hs))
            .enumerate()
            .for_each(|(bh, (out, u))| {
                let steps = Steps::of(ds, leaky, bh, t);
                let mut state = vec![0.0f32; hs];
                for (step, (o, u)) in out.chunks_exact_mut(hs).zip(u.chunks_exact(hs)).enumerate() {
                    let (a, g) = steps.at(step);
                    for ((s, o), u) in state.iter_mut().zip(o.iter_mut()).zip(u) {
                        *s = a * *s + g * u;
                        *o = *s;
                    }
                }
            });
        tensor(out, shape)
    }
}

/// One (batch, head) backwards over `t` steps of `hs` features: writes `du`, and each step's
/// `dl_t` into `dlog` (per-step decays), or returns `sum_t r_t . (kbar_{t-1} - u_t)` in f64
/// (leaky).
fn adjoint(
    steps: Steps,
    [u, k, dy]: [&[f32]; 3],
    du: &mut [f32],
    mut dlog: Option<&mut [f32]>,
    hs: usize,
) -> f64 {
    let t = du.len() / hs;
    let leaky = dlog.is_none();
    let mut r = vec![0.0f32; hs];
    let mut total = 0.0f64;
    // a_{t+1}, carried back from the step after; none after the last.
    let mut next = 0.0f32;
    for step in (0..t).rev() {
        let (a, g) = steps.at(step);
        let at = step * hs;
        let mut dot = 0.0f32;
        for (i, r) in r.iter_mut().enumerate() {
            *r = dy[at + i] + next * *r;
            du[at + i] = g * *r;
            let before = if step > 0 { k[at - hs + i] } else { 0.0 };
            dot += *r * if leaky { before - u[at + i] } else { before };
        }
        match dlog.as_deref_mut() {
            Some(d) => d[step] = a * dot,
            None => total += dot as f64,
        }
        next = a;
    }
    total
}

/// The gradients of `u` and of `decay` from the inputs, the output `kbar` and its gradient.
fn key_scan_backward(
    [u, decay, kbar, grad]: [&FlexTensor; 4],
    leaky: bool,
) -> (FlexTensor, FlexTensor) {
    let (kbar, shape) = contiguous(kbar);
    let ((grad, _), (decay, decay_shape)) = (contiguous(grad), contiguous(decay));
    let (u, _) = contiguous(u);
    let [t, hs] = [shape[2], shape[3]];
    let (us, ks, gs, ds) = (
        u.storage::<f32>(),
        kbar.storage::<f32>(),
        grad.storage::<f32>(),
        decay.storage::<f32>(),
    );
    let mut du = vec![0.0f32; ks.len()];
    let mut dd = vec![0.0f32; ds.len()];
    let slices = |bh: usize| {
        let at = bh * t * hs..(bh + 1) * t * hs;
        [&us[at.clone()], &ks[at.clone()], &gs[at]]
    };
    if leaky {
        // d lambda of each (batch, head), summed per head below: db = -lambda d lambda.
        let partial: Vec<f64> = du
            .par_chunks_mut(t * hs)
            .enumerate()
            .map(|(bh, du)| adjoint(Steps::of(ds, true, bh, t), slices(bh), du, None, hs))
            .collect();
        let h = ds.len();
        for (bh, dl) in partial.iter().enumerate() {
            let lambda = (-ds[bh % h]).exp();
            dd[bh % h] += (-(lambda as f64) * dl) as f32;
        }
    } else {
        du.par_chunks_mut(t * hs)
            .zip(dd.par_chunks_mut(t))
            .enumerate()
            .for_each(|(bh, (du, dlog))| {
                adjoint(Steps::of(ds, false, bh, t), slices(bh), du, Some(dlog), hs);
            });
    }
    (tensor(du, shape), tensor(dd, decay_shape))
}

impl ScanGradBackend for Flex {
    fn key_scan_backward(
        u: FlexTensor,
        decay: FlexTensor,
        kbar: FlexTensor,
        grad: FlexTensor,
        leaky: bool,
    ) -> (FlexTensor, FlexTensor) {
        key_scan_backward([&u, &decay, &kbar, &grad], leaky)
    }
}
