//! The L2 normalisation as CubeCL kernels, with or without a per-head scale: one thread per
//! vector (a head's `hs` features).

use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::ops::FloatTensorOps;
use burn::tensor::{DType, Shape};
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;

use crate::cube_launch::{empty_like, threads};

use super::{L2NormBackend, L2NormGradBackend};

/// `|x|` of the `d` values from `start`.
#[cube]
fn norm<F: Float>(x: &Tensor<F>, start: usize, d: usize) -> F {
    let mut sum = F::new(0.0);
    for j in 0..d {
        sum += x[start + j] * x[start + j];
    }
    F::sqrt(sum)
}

/// The head's scale of row `row` of `x` `(B, H, T, hs)`, 1 unscaled.
#[cube]
fn scale_of<F: Float>(x: &Tensor<F>, scale: &Tensor<F>, row: usize, #[comptime] scaled: bool) -> F {
    let mut s = F::new(1.0);
    if scaled {
        s = scale[(row / x.shape(2)) % x.shape(1)];
    }
    s
}

/// `y = s_h x / |x|` (`s_h = 1` unscaled; `scale` is then not read).
#[cube(launch)]
fn l2_forward<F: Float>(
    x: &Tensor<F>,
    scale: &Tensor<F>,
    y: &mut Tensor<F>,
    #[comptime] scaled: bool,
    #[define(F)] _dtype: ElemType,
) {
    let d = x.shape(x.rank() - 1);
    let start = ABSOLUTE_POS * d;
    if start >= x.len() {
        terminate!();
    }
    let n = norm::<F>(x, start, d);
    let s = scale_of::<F>(x, scale, ABSOLUTE_POS, scaled);
    for j in 0..d {
        y[start + j] = s * x[start + j] / n;
    }
}

/// `dx = s (dy - u (u . dy)) / |x|` with `u = x / |x|`, and scaled, the row's term of the
/// scale's gradient, `u . dy`, laid out `(H, B T)` for one sum (`terms` is not written
/// unscaled).
#[cube(launch)]
fn l2_backward<F: Float>(
    x: &Tensor<F>,
    scale: &Tensor<F>,
    dy: &Tensor<F>,
    dx: &mut Tensor<F>,
    terms: &mut Tensor<F>,
    #[comptime] scaled: bool,
    #[define(F)] _dtype: ElemType,
) {
    let d = x.shape(x.rank() - 1);
    let row = ABSOLUTE_POS;
    let start = row * d;
    if start >= x.len() {
        terminate!();
    }
    let n = norm::<F>(x, start, d);
    let s = scale_of::<F>(x, scale, row, scaled);
    let mut dot = F::new(0.0);
    for j in 0..d {
        dot += x[start + j] / n * dy[start + j];
    }
    for j in 0..d {
        dx[start + j] = s * (dy[start + j] - x[start + j] / n * dot) / n;
    }
    if scaled {
        let (heads, steps) = (x.shape(1), x.shape(2));
        let (t, h, b) = (row % steps, (row / steps) % heads, row / (steps * heads));
        terms[(h * x.shape(0) + b) * steps + t] = dot;
    }
}

/// One thread per vector of `x`.
fn grid(x: &CubeTensor) -> (CubeCount, CubeDim) {
    let shape = x.meta.shape();
    threads(shape.num_elements() / shape[shape.num_dims() - 1].max(1))
}

/// `x / |x|`, times `scale`'s head where given.
fn forward(x: CubeTensor, scale: Option<CubeTensor>) -> CubeTensor {
    assert_eq!(x.dtype, DType::F32, "the GPU L2 normalisation runs in f32");
    let x = into_contiguous(x);
    let y = empty_like(&x, x.meta.shape().clone());
    let (count, dim) = grid(&x);
    let scaled = scale.is_some();
    // Unscaled, the kernel reads no scale: `x` stands in for the argument.
    let scale = scale.map_or_else(|| x.clone(), into_contiguous);
    l2_forward::launch(
        &x.client.clone(),
        count,
        dim,
        x.into_tensor_arg(),
        scale.into_tensor_arg(),
        y.clone().into_tensor_arg(),
        scaled,
        dtype_to_storage_type(DType::F32),
    );
    y
}

/// The gradient of `x` and, scaled, the per-row terms `(H, B T)` of the scale's.
fn backward(
    x: CubeTensor,
    scale: Option<CubeTensor>,
    grad: CubeTensor,
) -> (CubeTensor, CubeTensor) {
    let [x, dy] = [x, grad].map(into_contiguous);
    let shape = x.meta.shape().clone();
    let dx = empty_like(&x, shape.clone());
    let scaled = scale.is_some();
    let terms = match scaled {
        true => empty_like(&x, Shape::new([shape[1], shape[0] * shape[2]])),
        // Not written: one element stands in for the argument.
        false => empty_like(&x, Shape::new([1])),
    };
    let scale = scale.map_or_else(|| x.clone(), into_contiguous);
    let (count, dim) = grid(&x);
    l2_backward::launch(
        &x.client.clone(),
        count,
        dim,
        x.into_tensor_arg(),
        scale.into_tensor_arg(),
        dy.into_tensor_arg(),
        dx.clone().into_tensor_arg(),
        terms.clone().into_tensor_arg(),
        scaled,
        dtype_to_storage_type(DType::F32),
    );
    (dx, terms)
}

impl L2NormBackend for CubeBackend {
    fn l2_normalize(x: CubeTensor) -> CubeTensor {
        forward(x, None)
    }

    fn scaled_l2_normalize(x: CubeTensor, scale: CubeTensor) -> CubeTensor {
        forward(x, Some(scale))
    }
}

impl L2NormGradBackend for CubeBackend {
    fn l2_normalize_backward(x: CubeTensor, grad: CubeTensor) -> CubeTensor {
        backward(x, None, grad).0
    }

    fn scaled_l2_normalize_backward(
        x: CubeTensor,
        scale: CubeTensor,
        grad: CubeTensor,
    ) -> (CubeTensor, CubeTensor) {
        let heads = x.meta.shape()[1];
        let (dx, terms) = backward(x, Some(scale), grad);
        let dscale = Self::float_reshape(Self::float_sum_dim(terms, 1), Shape::new([heads]));
        (dx, dscale)
    }
}
