//! The keys' scan, `kbar_t = a_t kbar_{t-1} + g_t u_t`, as one operation with its own backward
//! pass: a sequential scan over time, parallel over batch, heads (and on a GPU, features), O(T)
//! work and one pass over memory each way. It takes the decay in either of the two forms the
//! memories use:
//!
//! - [`Decay::PerStep`]: v2's gated keys, a log-decay for every step (`a_t = exp(l_t)`) and no
//!   gain (`g_t = 1`, the input gate is already in `u`): `dl_t = a_t r_t . kbar_{t-1}`;
//! - [`Decay::Leaky`]: v1's leaky average, a rate per head (`a = lambda = exp(-b)`) and the
//!   tied gain `g = 1 - lambda`: `db = -lambda sum_t r_t . (kbar_{t-1} - u_t)`.
//!
//! Both run the adjoint recurrence backwards, `r_t = dy_t + a_{t+1} r_{t+1}`, and
//! `du_t = g_t r_t`. The leaky form is the gated one with a constant decay; it is kept apart
//! only in how the decay's gradient is summed, so that a leaky average trains to the same
//! bits whichever way it is called.
//!
//! Two implementations: [`cpu`] on the `flex` backend (per (batch, head), the decay's gradient
//! summed in f64) and, with a GPU feature, [`gpu`]: CubeCL kernels for WGPU and CUDA, one
//! thread per (batch, head, feature), registered with Burn's fusion as custom operations so
//! that they queue with the fused elementwise work around them. One autodiff wrapper serves
//! both.

mod cpu;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod gpu;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, backend_extension};
use burn::tensor::Tensor;

use crate::backward::register;

/// How the decay of [`fused_scan`] is given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decay {
    /// `(B, H, T, 1)` log-decays, gain 1.
    PerStep,
    /// `(H,)` rates `b`, `lambda = exp(-b)`, gain `1 - lambda`.
    Leaky,
}

/// The scan of `u` `(B, H, T, hs)` with `decay` as `form` says; only where
/// [`crate::dispatch::fused_kernels`] says so.
pub fn fused_scan<const D: usize>(u: Tensor<4>, decay: Tensor<D>, form: Decay) -> Tensor<4> {
    Tensor::from_dispatch(Dispatch::key_scan(
        u.into_dispatch(),
        decay.into_dispatch(),
        form == Decay::Leaky,
    ))
}

#[backend_extension(
    Flex,
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    Autodiff,
    Fusion: cfg(any(feature = "wgpu", feature = "cuda"))
)]
pub trait ScanBackend: Backend {
    /// `leaky`: `decay` holds per-head rates ([`Decay::Leaky`]), else per-step log-decays.
    #[fusion(dtype = u, shape = u)]
    fn key_scan(u: FloatTensor<Self>, decay: FloatTensor<Self>, leaky: bool) -> FloatTensor<Self>;
}

/// The scan's backward pass, an operation of its own so that on a GPU it queues lazily like
/// the forward pass.
#[backend_extension(
    Flex,
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    Fusion: cfg(any(feature = "wgpu", feature = "cuda"))
)]
pub trait ScanGradBackend: Backend {
    /// The gradients of `u` and of `decay` from the input `u` (only read in the leaky form),
    /// the decay, the output `kbar` and its gradient `grad`.
    #[fusion(meta = |u, decay, _kbar, _grad, _leaky| (u.clone(), decay.clone()))]
    fn key_scan_backward(
        u: FloatTensor<Self>,
        decay: FloatTensor<Self>,
        kbar: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        leaky: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
}

#[derive(Debug)]
struct KeyScan;

impl<B: ScanGradBackend> Backward<B, 2> for KeyScan {
    /// The input (leaky form), the decay, the output and the decay's form.
    type State = ([FloatTensor<B>; 3], bool);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let ([u, decay, kbar], leaky) = ops.state;
        let grad = grads.consume::<B>(&ops.node);
        let (du, dd) = B::key_scan_backward(u, decay, kbar, grad, leaky);
        register!(B, ops.parents, [du, dd], grads);
    }
}

impl<B, C> ScanBackend for Autodiff<B, C>
where
    B: ScanBackend + ScanGradBackend,
    C: CheckpointStrategy,
{
    fn key_scan(u: FloatTensor<Self>, decay: FloatTensor<Self>, leaky: bool) -> FloatTensor<Self> {
        let (u, u_node) = u.into_parts();
        let (decay, decay_node) = decay.into_parts();
        match KeyScan
            .prepare::<C>([u_node, decay_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let kbar = B::key_scan(u.clone(), decay.clone(), leaky);
                // The per-step form needs no `u`: keep the output in its place rather than
                // holding on to the input.
                let u = if leaky { u } else { kbar.clone() };
                prep.finish(([u, decay, kbar.clone()], leaky), kbar)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::key_scan(u, decay, leaky)),
        }
    }
}
