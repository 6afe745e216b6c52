//! LayerNorm as CubeCL kernels for WGPU and CUDA: one thread per row (rows are short, the
//! width of the model), two launches backward (the rows, then the gain's gradient summed over
//! them). f32 only: in f16/bf16 the callers cast (`crate::dispatch::via_f32`).

use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::ops::FloatTensorOps;
use burn::tensor::{DType, Shape};
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;

use crate::cube_launch::{empty_like, threads};

use super::{LayerNormBackend, LayerNormGradBackend};

/// The mean and `1 / sqrt(var + eps)` of the `d` values from `start`.
#[cube]
fn stats<F: Float>(x: &Tensor<F>, start: usize, d: usize, eps: F) -> (F, F) {
    let n = F::cast_from(d as u32);
    let mut sum = F::new(0.0);
    for j in 0..d {
        sum += x[start + j];
    }
    let mean = sum / n;
    let mut var = F::new(0.0);
    for j in 0..d {
        let c = x[start + j] - mean;
        var += c * c;
    }
    (mean, F::new(1.0) / F::sqrt(var / n + eps))
}

#[cube(launch)]
fn layer_norm_forward<F: Float>(
    x: &Tensor<F>,
    gain: &Tensor<F>,
    y: &mut Tensor<F>,
    eps: f32,
    #[define(F)] _dtype: ElemType,
) {
    let d = gain.len();
    let row = ABSOLUTE_POS;
    if row * d >= x.len() {
        terminate!();
    }
    let start = row * d;
    let (mean, rstd) = stats::<F>(x, start, d, F::cast_from(eps));
    for j in 0..d {
        y[start + j] = (x[start + j] - mean) * rstd * gain[j];
    }
}

/// Per row: `dx`, and the row's terms `dy * xhat` of the gain's gradient into `terms`.
#[cube(launch)]
fn layer_norm_backward<F: Float>(
    x: &Tensor<F>,
    gain: &Tensor<F>,
    dy: &Tensor<F>,
    dx: &mut Tensor<F>,
    terms: &mut Tensor<F>,
    eps: f32,
    #[define(F)] _dtype: ElemType,
) {
    let d = gain.len();
    let row = ABSOLUTE_POS;
    if row * d >= x.len() {
        terminate!();
    }
    let start = row * d;
    let (mean, rstd) = stats::<F>(x, start, d, F::cast_from(eps));
    let mut mean_g = F::new(0.0);
    let mut mean_gx = F::new(0.0);
    for j in 0..d {
        let h = (x[start + j] - mean) * rstd;
        let g = dy[start + j] * gain[j];
        terms[start + j] = dy[start + j] * h;
        mean_g += g;
        mean_gx += g * h;
    }
    let n = F::cast_from(d as u32);
    mean_g /= n;
    mean_gx /= n;
    for j in 0..d {
        let h = (x[start + j] - mean) * rstd;
        dx[start + j] = (dy[start + j] * gain[j] - mean_g - h * mean_gx) * rstd;
    }
}

/// One thread per row of `x` (rows of `d`).
fn grid(x: &CubeTensor, d: usize) -> (CubeCount, CubeDim) {
    threads(x.meta.shape().num_elements() / d.max(1))
}

impl LayerNormBackend for CubeBackend {
    fn fused_layer_norm(x: CubeTensor, gain: CubeTensor, eps: f64) -> CubeTensor {
        assert_eq!(x.dtype, DType::F32, "the GPU LayerNorm runs in f32");
        let (x, gain) = (into_contiguous(x), into_contiguous(gain));
        let y = empty_like(&x, x.meta.shape().clone());
        let (count, dim) = grid(&x, gain.meta.shape()[0]);
        layer_norm_forward::launch(
            &x.client.clone(),
            count,
            dim,
            x.into_tensor_arg(),
            gain.into_tensor_arg(),
            y.clone().into_tensor_arg(),
            eps as f32,
            dtype_to_storage_type(DType::F32),
        );
        y
    }
}

impl LayerNormGradBackend for CubeBackend {
    fn fused_layer_norm_backward(
        x: CubeTensor,
        gain: CubeTensor,
        grad: CubeTensor,
        eps: f64,
    ) -> (CubeTensor, CubeTensor) {
        let [x, gain, dy] = [x, gain, grad].map(into_contiguous);
        let shape = x.meta.shape().clone();
        let d = gain.meta.shape()[0];
        let dx = empty_like(&x, shape.clone());
        let terms = empty_like(&x, Shape::new([shape.num_elements() / d, d]));
        let (count, dim) = grid(&x, d);
        layer_norm_backward::launch(
            &x.client.clone(),
            count,
            dim,
            x.into_tensor_arg(),
            gain.into_tensor_arg(),
            dy.into_tensor_arg(),
            dx.clone().into_tensor_arg(),
            terms.clone().into_tensor_arg(),
            eps as f32,
            dtype_to_storage_type(DType::F32),
        );
        let dgain = Self::float_reshape(Self::float_sum_dim(terms, 0), Shape::new([d]));
        (dx, dgain)
    }
}
