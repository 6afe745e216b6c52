//! The L2 normalisation as CubeCL kernels: one thread per vector (a head's `hs` features).

use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::DType;
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

#[cube(launch)]
fn l2_forward<F: Float>(x: &Tensor<F>, y: &mut Tensor<F>, #[define(F)] _dtype: ElemType) {
    let d = x.shape(x.rank() - 1);
    let start = ABSOLUTE_POS * d;
    if start >= x.len() {
        terminate!();
    }
    let n = norm::<F>(x, start, d);
    for j in 0..d {
        y[start + j] = x[start + j] / n;
    }
}

#[cube(launch)]
fn l2_backward<F: Float>(
    x: &Tensor<F>,
    dy: &Tensor<F>,
    dx: &mut Tensor<F>,
    #[define(F)] _dtype: ElemType,
) {
    let d = x.shape(x.rank() - 1);
    let start = ABSOLUTE_POS * d;
    if start >= x.len() {
        terminate!();
    }
    let n = norm::<F>(x, start, d);
    let mut dot = F::new(0.0);
    for j in 0..d {
        dot += x[start + j] / n * dy[start + j];
    }
    for j in 0..d {
        dx[start + j] = (dy[start + j] - x[start + j] / n * dot) / n;
    }
}

/// One thread per vector of `x`.
fn grid(x: &CubeTensor) -> (CubeCount, CubeDim) {
    let shape = x.meta.shape();
    threads(shape.num_elements() / shape[shape.num_dims() - 1].max(1))
}

impl L2NormBackend for CubeBackend {
    fn l2_normalize(x: CubeTensor) -> CubeTensor {
        assert_eq!(x.dtype, DType::F32, "the GPU L2 normalisation runs in f32");
        let x = into_contiguous(x);
        let y = empty_like(&x, x.meta.shape().clone());
        let (count, dim) = grid(&x);
        l2_forward::launch(
            &x.client.clone(),
            count,
            dim,
            x.into_tensor_arg(),
            y.clone().into_tensor_arg(),
            dtype_to_storage_type(DType::F32),
        );
        y
    }
}

impl L2NormGradBackend for CubeBackend {
    fn l2_normalize_backward(x: CubeTensor, grad: CubeTensor) -> CubeTensor {
        let [x, dy] = [x, grad].map(into_contiguous);
        let dx = empty_like(&x, x.meta.shape().clone());
        let (count, dim) = grid(&x);
        l2_backward::launch(
            &x.client.clone(),
            count,
            dim,
            x.into_tensor_arg(),
            dy.into_tensor_arg(),
            dx.clone().into_tensor_arg(),
            dtype_to_storage_type(DType::F32),
        );
        dx
    }
}
