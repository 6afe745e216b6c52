//! Moving between `(batch, time, channels)` and `(batch, head, time, head_size)`, plus the
//! small helpers every unit shares.

use burn::module::Param;
use burn::tensor::{DType, Device, Distribution, Tensor};

use crate::dispatch::via_f32;

/// `(B, T, H * hs)` -> `(B, H, T, hs)`.
pub fn split_heads(x: Tensor<3>, n_head: usize) -> Tensor<4> {
    let [b, t, c] = x.dims();
    x.reshape([b, t, n_head, c / n_head]).swap_dims(1, 2)
}

/// `(B, H, T, hs)` -> `(B, T, H * hs)`.
pub fn merge_heads(x: Tensor<4>) -> Tensor<3> {
    let [b, h, t, hs] = x.dims();
    x.swap_dims(1, 2).reshape([b, t, h * hs])
}

/// `x` one step ahead along `dim`: position `t` holds `x_{t+1}`, the last position zero (past
/// the end there is nothing). A sequence of one step becomes all zeros.
pub fn next_step<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    let mut shape = x.dims();
    let t = shape[dim];
    shape[dim] = 1;
    let zero = Tensor::zeros(shape, (&x.device(), x.dtype()));
    match t {
        1 => zero,
        _ => Tensor::cat(vec![x.narrow(dim, 1, t - 1), zero], dim),
    }
}

/// A per-head scalar `(H,)` shaped to broadcast against `(B, H, T, hs)`.
pub fn per_head(s: Tensor<1>) -> Tensor<4> {
    let [h] = s.dims();
    s.reshape([1, h, 1, 1])
}

/// Divides each vector along the last axis by its Euclidean norm. No epsilon, as the reference:
/// a zero vector becomes NaN rather than silently zero. One fused operation on a GPU in f32
/// (`l2_norm`), the tensor form elsewhere. A half-precision `x` is normalised in f32: the
/// backward divides by the squared norm, which f16 flushes to zero for norms below about 2e-4
/// (the leaky average's first key, `(1 - lambda) u_0`, of a slowly decaying head), and the
/// gradient would be inf.
pub fn l2_normalize(x: Tensor<4>) -> Tensor<4> {
    if let Some(dtype) = via_f32(x.dtype(), true) {
        return l2_normalize(x.cast(DType::F32)).cast(dtype);
    }
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    if crate::dispatch::gpu_kernels(&x.device(), x.dtype()) {
        return crate::l2_norm::fused_l2_normalize(x);
    }
    let norm = x.clone().square().sum_dim(3).sqrt();
    x / norm
}

/// [`l2_normalize`] times a per-head `scale` `(H,)`: one fused operation on a GPU in f32
/// (`l2_norm`), the tensor form elsewhere.
pub fn scaled_l2_normalize(x: Tensor<4>, scale: Tensor<1>) -> Tensor<4> {
    if let Some(dtype) = via_f32(x.dtype(), true) {
        let scale = scale.cast(DType::F32);
        return scaled_l2_normalize(x.cast(DType::F32), scale).cast(dtype);
    }
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    if crate::dispatch::gpu_kernels(&x.device(), x.dtype()) {
        return crate::l2_norm::fused_scaled_l2_normalize(x, scale);
    }
    l2_normalize(x) * per_head(scale)
}

/// A weight matrix stored `(d_in, d_out)` (PyTorch stores `(d_out, d_in)`), drawn from
/// N(0, std^2).
pub fn normal_weight(d_in: usize, d_out: usize, std: f64, device: &Device) -> Param<Tensor<2>> {
    Param::from_tensor(Tensor::random(
        [d_in, d_out],
        Distribution::Normal(0.0, std),
        device,
    ))
}

/// `torch.linspace(start, end, n)`.
pub(crate) fn linspace(start: f64, end: f64, n: usize) -> Vec<f32> {
    if n == 1 {
        return vec![start as f32];
    }
    let step = (end - start) / (n - 1) as f64;
    (0..n).map(|i| (start + step * i as f64) as f32).collect()
}
