//! The scan as CubeCL kernels, written once for WGPU and CUDA: one thread per
//! (batch, head, feature) runs the recurrence over time, so a step reads and writes one element
//! per thread and neighbouring threads touch neighbouring features (coalesced). The input is
//! read through its strides (the heads' split of a projection is a view). f32 only: in
//! f16/bf16 the callers cast (`crate::dispatch::via_f32`).
//!
//! The backward kernel leaves the decay's gradient as per-thread terms: for per-step decays
//! `a_t r_t,i kbar_{t-1},i` at every step (summed over features after), for the leaky form
//! `-lambda sum_t r_t,i (kbar_{t-1},i - u_t,i)` (summed over batch and features after), since
//! threads of different features cannot add into one element without atomics.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::ops::FloatTensorOps;
use burn::tensor::{DType, Shape};
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;

use crate::cube_launch::{empty_like, threads};

use super::{ScanBackend, ScanGradBackend};

/// `kbar_t = a_t kbar_{t-1} + g_t u_t` for one (batch, head, feature).
#[cube(launch)]
fn scan_forward<F: Float>(
    u: &Tensor<F>,
    decay: &Tensor<F>,
    kbar: &mut Tensor<F>,
    #[comptime] leaky: bool,
    #[define(F)] _dtype: ElemType,
) {
    let heads = u.shape(1);
    let steps = u.shape(2);
    let width = u.shape(3);
    let lane = ABSOLUTE_POS;
    let bh = lane / width;
    if bh >= u.shape(0) * heads {
        terminate!();
    }
    let start = bh * steps * width + lane % width;
    let from = strided_start::<F>(u, bh, lane % width);
    let (lambda, gain) = leaky_rates::<F>(decay, bh % heads, leaky);
    let mut state = F::new(0.0);
    for step in 0..steps {
        let a = step_decay::<F>(decay, bh * steps + step, lambda, leaky);
        let at = start + step * width;
        state = a * state + gain * u[from + step * u.stride(2)];
        kbar[at] = state;
    }
}

/// The adjoint recurrence backwards for one (batch, head, feature): `du`, and the decay's
/// gradient terms into `terms` (`(B, H, T, hs)` per step, `(H, B hs)` leaky).
#[cube(launch)]
fn scan_backward<F: Float>(
    u: &Tensor<F>,
    decay: &Tensor<F>,
    kbar: &Tensor<F>,
    grad: &Tensor<F>,
    du: &mut Tensor<F>,
    terms: &mut Tensor<F>,
    #[comptime] leaky: bool,
    #[define(F)] _dtype: ElemType,
) {
    let heads = u.shape(1);
    let steps = u.shape(2);
    let width = u.shape(3);
    let lane = ABSOLUTE_POS;
    let bh = lane / width;
    if bh >= u.shape(0) * heads {
        terminate!();
    }
    let start = bh * steps * width + lane % width;
    let from = strided_start::<F>(u, bh, lane % width);
    let (lambda, gain) = leaky_rates::<F>(decay, bh % heads, leaky);
    let mut r = F::new(0.0);
    let mut next = F::new(0.0);
    let mut total = F::new(0.0);
    for back in 0..steps {
        let step = steps - 1 - back;
        let a = step_decay::<F>(decay, bh * steps + step, lambda, leaky);
        let at = start + step * width;
        r = grad[at] + next * r;
        du[at] = gain * r;
        let mut before = F::new(0.0);
        if step > 0 {
            before = kbar[at - width];
        }
        if leaky {
            total += r * (before - u[from + step * u.stride(2)]);
        } else {
            terms[at] = a * r * before;
        }
        next = a;
    }
    if leaky {
        // Laid out `(H, B hs)`: one sum over the batch and features after.
        let (batch, head) = (bh / heads, bh % heads);
        terms[(head * u.shape(0) + batch) * width + lane % width] = F::new(0.0) - lambda * total;
    }
}

/// Where the (batch and head `bh`, feature `j`) lane of `u` starts, through its strides: the
/// heads' split leaves `u` a view, read in place rather than copied.
#[cube]
fn strided_start<F: Float>(u: &Tensor<F>, bh: usize, j: usize) -> usize {
    let heads = u.shape(1);
    (bh / heads) * u.stride(0) + (bh % heads) * u.stride(1) + j * u.stride(3)
}

/// `(lambda, 1 - lambda)` of `head` in the leaky form, `(0, 1)` otherwise.
#[cube]
fn leaky_rates<F: Float>(decay: &Tensor<F>, head: usize, #[comptime] leaky: bool) -> (F, F) {
    let mut lambda = F::new(0.0);
    let mut gain = F::new(1.0);
    if leaky {
        lambda = F::exp(F::new(0.0) - decay[head]);
        gain = F::new(1.0) - lambda;
    }
    (lambda, gain)
}

/// `a_t`: the head's `lambda` in the leaky form, `exp` of the step's log-decay otherwise.
#[cube]
fn step_decay<F: Float>(decay: &Tensor<F>, at: usize, lambda: F, #[comptime] leaky: bool) -> F {
    let mut a = lambda;
    if !leaky {
        a = F::exp(decay[at]);
    }
    a
}

/// One thread per (batch, head, feature) of `shape` `(B, H, T, hs)`.
fn grid(shape: &Shape) -> (CubeCount, CubeDim) {
    threads(shape[0] * shape[1] * shape[3])
}

impl ScanBackend for CubeBackend {
    fn key_scan(u: CubeTensor, decay: CubeTensor, leaky: bool) -> CubeTensor {
        assert_eq!(u.dtype, DType::F32, "the GPU scan runs in f32");
        let decay = into_contiguous(decay);
        let shape = u.meta.shape().clone();
        let kbar = empty_like(&u, shape.clone());
        let (count, dim) = grid(&shape);
        scan_forward::launch(
            &u.client.clone(),
            count,
            dim,
            u.into_tensor_arg(),
            decay.into_tensor_arg(),
            kbar.clone().into_tensor_arg(),
            leaky,
            dtype_to_storage_type(DType::F32),
        );
        kbar
    }
}

impl ScanGradBackend for CubeBackend {
    fn key_scan_backward(
        u: CubeTensor,
        decay: CubeTensor,
        kbar: CubeTensor,
        grad: CubeTensor,
        leaky: bool,
    ) -> (CubeTensor, CubeTensor) {
        let [decay, kbar, grad] = [decay, kbar, grad].map(into_contiguous);
        let shape = kbar.meta.shape().clone();
        let [b, h, _, hs] = [shape[0], shape[1], shape[2], shape[3]];
        let du = empty_like(&kbar, shape.clone());
        let terms = match leaky {
            true => empty_like(&kbar, Shape::new([h, b * hs])),
            false => empty_like(&kbar, shape.clone()),
        };
        let (count, dim) = grid(&shape);
        scan_backward::launch(
            &kbar.client.clone(),
            count,
            dim,
            u.into_tensor_arg(),
            decay.clone().into_tensor_arg(),
            kbar.into_tensor_arg(),
            grad.into_tensor_arg(),
            du.clone().into_tensor_arg(),
            terms.clone().into_tensor_arg(),
            leaky,
            dtype_to_storage_type(DType::F32),
        );
        let dd = match leaky {
            true => Self::float_reshape(Self::float_sum_dim(terms, 1), Shape::new([h])),
            false => Self::float_sum_dim(terms, 3),
        };
        (du, dd)
    }
}
