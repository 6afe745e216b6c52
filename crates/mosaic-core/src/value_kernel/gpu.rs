//! The values as CubeCL kernels: one thread per `(batch, head, step)` row of `hs` features.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::ops::FloatTensorOps;
use burn::tensor::{DType, Shape};
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;

use crate::EXP_PARAM_SCALE;
use crate::cube_launch::{empty_like, threads};

use super::{ValuesBackend, ValuesGradBackend};

/// Where a row `(b, h, t)` of `w` starts, through its strides.
#[cube]
fn start_of<F: Float>(w: &Tensor<F>, b: usize, h: usize, t: usize) -> usize {
    b * w.stride(0) + h * w.stride(1) + t * w.stride(2)
}

/// Feature `j` of `vbar_t = (1 - c) w_{t+1} + c w_t`, with `w_T = 0`.
#[cube]
fn mixed<F: Float>(w: &Tensor<F>, now: usize, next: usize, last: bool, c: F, j: usize) -> F {
    let step = w.stride(3);
    let mut ahead = F::new(0.0);
    if !last {
        ahead = w[next + j * step];
    }
    (F::new(1.0) - c) * ahead + c * w[now + j * step]
}

/// `|vbar_t|` of row `t`.
#[cube]
fn norm<F: Float>(w: &Tensor<F>, now: usize, next: usize, last: bool, c: F) -> F {
    let mut sum = F::new(0.0);
    for j in 0..w.shape(3) {
        let m = mixed::<F>(w, now, next, last, c, j);
        sum += m * m;
    }
    F::sqrt(sum)
}

#[cube(launch)]
fn values_forward<F: Float>(
    w: &Tensor<F>,
    mix: &Tensor<F>,
    nu: &Tensor<F>,
    v: &mut Tensor<F>,
    factor: f32,
    #[define(F)] _dtype: ElemType,
) {
    let (heads, steps, hs) = (w.shape(1), w.shape(2), w.shape(3));
    let row = ABSOLUTE_POS;
    if row >= w.shape(0) * heads * steps {
        terminate!();
    }
    let t = row % steps;
    let h = (row / steps) % heads;
    let b = row / (steps * heads);
    let c = mix[h];
    let s = F::exp(F::cast_from(factor) * nu[h]);
    let now = start_of::<F>(w, b, h, t);
    let next = now + w.stride(2);
    let last = t + 1 == steps;
    let n = norm::<F>(w, now, next, last, c);
    for j in 0..hs {
        v[row * hs + j] = s * mixed::<F>(w, now, next, last, c, j) / n;
    }
}

/// Feature `j` of the gradient of `vbar_t`, `s (dv - u (u . dv)) / |vbar|` with
/// `u = vbar / |vbar|`, given `u . dv` and `|vbar|`.
#[cube]
#[allow(clippy::too_many_arguments)]
fn dvbar<F: Float>(
    w: &Tensor<F>,
    dv: &Tensor<F>,
    now: usize,
    next: usize,
    last: bool,
    at: usize,
    c: F,
    s: F,
    dot: F,
    n: F,
    j: usize,
) -> F {
    let u = mixed::<F>(w, now, next, last, c, j) / n;
    s * (dv[at + j] - u * dot) / n
}

/// `u . dv` of a row, `u = vbar / |vbar|`.
#[cube]
fn u_dot<F: Float>(
    w: &Tensor<F>,
    dv: &Tensor<F>,
    now: usize,
    next: usize,
    last: bool,
    at: usize,
    c: F,
    n: F,
) -> F {
    let mut dot = F::new(0.0);
    for j in 0..w.shape(3) {
        dot += mixed::<F>(w, now, next, last, c, j) / n * dv[at + j];
    }
    dot
}

/// Per row: `dw_t = c dvbar_t + (1 - c) dvbar_{t-1}` (each row writes only its own), and the
/// row's terms of the mix's gradient, `dvbar_t . (w_t - w_{t+1})`, and of the log-scale's,
/// `factor s (u . dv)`, laid out `(H, B T)` for one sum each.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn values_backward<F: Float>(
    w: &Tensor<F>,
    mix: &Tensor<F>,
    nu: &Tensor<F>,
    dv: &Tensor<F>,
    dw: &mut Tensor<F>,
    dmix: &mut Tensor<F>,
    dnu: &mut Tensor<F>,
    factor: f32,
    #[define(F)] _dtype: ElemType,
) {
    let (batch, heads, steps, hs) = (w.shape(0), w.shape(1), w.shape(2), w.shape(3));
    let row = ABSOLUTE_POS;
    if row >= batch * heads * steps {
        terminate!();
    }
    let t = row % steps;
    let h = (row / steps) % heads;
    let b = row / (steps * heads);
    let c = mix[h];
    let s = F::exp(F::cast_from(factor) * nu[h]);
    let now = start_of::<F>(w, b, h, t);
    let next = now + w.stride(2);
    let last = t + 1 == steps;
    let at = row * hs;
    let n = norm::<F>(w, now, next, last, c);
    let dot = u_dot::<F>(w, dv, now, next, last, at, c, n);
    // The previous row, whose `vbar` read this row's `w` as its step ahead.
    let first = t == 0;
    let mut before = now;
    let mut n_before = F::new(1.0);
    let mut dot_before = F::new(0.0);
    if !first {
        before = now - w.stride(2);
        n_before = norm::<F>(w, before, now, false, c);
        dot_before = u_dot::<F>(w, dv, before, now, false, at - hs, c, n_before);
    }
    let step = w.stride(3);
    let mut dc = F::new(0.0);
    for j in 0..hs {
        let g = dvbar::<F>(w, dv, now, next, last, at, c, s, dot, n, j);
        let mut grad = c * g;
        if !first {
            let g_before = dvbar::<F>(
                w,
                dv,
                before,
                now,
                false,
                at - hs,
                c,
                s,
                dot_before,
                n_before,
                j,
            );
            grad += (F::new(1.0) - c) * g_before;
        }
        dw[at + j] = grad;
        let mut ahead = F::new(0.0);
        if !last {
            ahead = w[next + j * step];
        }
        dc += g * (w[now + j * step] - ahead);
    }
    let column = h * batch * steps + b * steps + t;
    dmix[column] = dc;
    dnu[column] = F::cast_from(factor) * s * dot;
}

impl ValuesBackend for CubeBackend {
    fn values(w: CubeTensor, mix: CubeTensor, nu: CubeTensor) -> CubeTensor {
        assert_eq!(w.dtype, DType::F32, "the GPU values run in f32");
        let [mix, nu] = [mix, nu].map(into_contiguous);
        let shape = w.meta.shape().clone();
        let v = empty_like(&w, shape.clone());
        let (count, dim) = threads(shape.num_elements() / shape[3].max(1));
        values_forward::launch(
            &w.client.clone(),
            count,
            dim,
            w.into_tensor_arg(),
            mix.into_tensor_arg(),
            nu.into_tensor_arg(),
            v.clone().into_tensor_arg(),
            EXP_PARAM_SCALE as f32,
            dtype_to_storage_type(DType::F32),
        );
        v
    }
}

impl ValuesGradBackend for CubeBackend {
    fn values_backward(
        w: CubeTensor,
        mix: CubeTensor,
        nu: CubeTensor,
        grad: CubeTensor,
    ) -> (CubeTensor, CubeTensor, CubeTensor) {
        let [mix, nu, dv] = [mix, nu, grad].map(into_contiguous);
        let shape = w.meta.shape().clone();
        let [b, h, t] = [shape[0], shape[1], shape[2]];
        let dw = empty_like(&w, shape.clone());
        let terms = || empty_like(&w, Shape::new([h, b * t]));
        let (dmix, dnu) = (terms(), terms());
        let (count, dim) = threads(b * h * t);
        values_backward::launch(
            &w.client.clone(),
            count,
            dim,
            w.into_tensor_arg(),
            mix.into_tensor_arg(),
            nu.into_tensor_arg(),
            dv.into_tensor_arg(),
            dw.clone().into_tensor_arg(),
            dmix.clone().into_tensor_arg(),
            dnu.clone().into_tensor_arg(),
            EXP_PARAM_SCALE as f32,
            dtype_to_storage_type(DType::F32),
        );
        let per_head = |terms| Self::float_reshape(Self::float_sum_dim(terms, 1), Shape::new([h]));
        (dw, per_head(dmix), per_head(dnu))
    }
}
