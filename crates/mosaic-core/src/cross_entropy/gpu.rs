//! The cross-entropy of each row as CubeCL kernels: one thread per row of logits.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::DType;
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;

use crate::cube_launch::{empty_like, threads};

use super::{CrossEntropyBackend, CrossEntropyGradBackend};

/// `log(sum(exp(x)))` of the `v` values from `start`, from their maximum.
#[cube]
fn log_sum_exp<F: Float>(x: &Tensor<F>, start: usize, v: usize) -> F {
    let mut max = x[start];
    for j in 1..v {
        max = F::max(max, x[start + j]);
    }
    let mut sum = F::new(0.0);
    for j in 0..v {
        sum += F::exp(x[start + j] - max);
    }
    max + F::ln(sum)
}

#[cube(launch)]
fn cross_entropy_forward<F: Float>(
    logits: &Tensor<F>,
    targets: &Tensor<F>,
    loss: &mut Tensor<F>,
    #[define(F)] _dtype: ElemType,
) {
    let row = ABSOLUTE_POS;
    if row >= targets.len() {
        terminate!();
    }
    let v = logits.shape(1);
    let start = row * v;
    let target = targets[row];
    if target < F::new(0.0) {
        loss[row] = F::new(0.0);
    } else {
        let at = u32::cast_from(target) as usize;
        loss[row] = log_sum_exp::<F>(logits, start, v) - logits[start + at];
    }
}

#[cube(launch)]
fn cross_entropy_backward<F: Float>(
    logits: &Tensor<F>,
    targets: &Tensor<F>,
    grad: &Tensor<F>,
    dx: &mut Tensor<F>,
    #[define(F)] _dtype: ElemType,
) {
    let row = ABSOLUTE_POS;
    if row >= targets.len() {
        terminate!();
    }
    let v = logits.shape(1);
    let start = row * v;
    let target = targets[row];
    if target < F::new(0.0) {
        for j in 0..v {
            dx[start + j] = F::new(0.0);
        }
    } else {
        let lse = log_sum_exp::<F>(logits, start, v);
        let g = grad[row];
        for j in 0..v {
            dx[start + j] = g * F::exp(logits[start + j] - lse);
        }
        let at = start + u32::cast_from(target) as usize;
        dx[at] -= g;
    }
}

impl CrossEntropyBackend for CubeBackend {
    fn cross_entropy_rows(logits: CubeTensor, targets: CubeTensor) -> CubeTensor {
        assert_eq!(
            logits.dtype,
            DType::F32,
            "the GPU cross-entropy runs in f32"
        );
        let [logits, targets] = [logits, targets].map(into_contiguous);
        let loss = empty_like(&logits, targets.meta.shape().clone());
        let (count, dim) = threads(targets.meta.shape().num_elements());
        cross_entropy_forward::launch(
            &logits.client.clone(),
            count,
            dim,
            logits.into_tensor_arg(),
            targets.into_tensor_arg(),
            loss.clone().into_tensor_arg(),
            dtype_to_storage_type(DType::F32),
        );
        loss
    }
}

impl CrossEntropyGradBackend for CubeBackend {
    fn cross_entropy_rows_backward(
        logits: CubeTensor,
        targets: CubeTensor,
        grad: CubeTensor,
    ) -> CubeTensor {
        let [logits, targets, grad] = [logits, targets, grad].map(into_contiguous);
        let dx = empty_like(&logits, logits.meta.shape().clone());
        let (count, dim) = threads(targets.meta.shape().num_elements());
        cross_entropy_backward::launch(
            &logits.client.clone(),
            count,
            dim,
            logits.into_tensor_arg(),
            targets.into_tensor_arg(),
            grad.into_tensor_arg(),
            dx.clone().into_tensor_arg(),
            dtype_to_storage_type(DType::F32),
        );
        dx
    }
}
