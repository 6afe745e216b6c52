//! The retrieval as CubeCL kernels, written once for WGPU and CUDA, in the manner of
//! FlashAttention: the forward pass streams over a row's keys with a running maximum (an
//! online softmax), writing the output and the row's log-sum-exp `lse`; the backward pass
//! computes each weight again as `exp(scale q.k - lse)`. Three launches in all, and nothing of
//! size `(T, T)`:
//!
//! ```text
//! forward, per query row i:  y_i, lse_i
//! backward, per query row i: D_i = dy_i . y_i;  dq_i = scale sum_j W_ij (dy_i . v_j - D_i) k_j
//! backward, per key row j:   dv_j = sum_i W_ij dy_i;  dk_j = scale sum_i W_ij (dy_i . v_j - D_i) q_i
//! ```
//!
//! One thread per row, its `hs` accumulators in registers (`hs` is a compile-time size: one
//! kernel per head size). Simple rather than tiled: no shared memory, each thread reads its
//! keys from global memory. f32 only: in f16/bf16 the callers cast
//! (`crate::dispatch::via_f32`).

use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::{DType, Shape};
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;

use crate::cube_launch::{empty_like, threads};

use super::{CausalBackend, CausalGradBackend};
use crate::band::Band;

/// A running maximum's start: below any score (WGSL has no infinity literal).
const FLOOR: f32 = -1.0e30;

/// [`Band::pairs`] of row `i` of `t` (the window clamped to at most `t + 1`); empty for a row
/// with nothing to read, which answers zero.
#[cube]
fn row_keys(i: usize, t: usize, offset: usize, window: usize) -> (usize, usize) {
    let mut end = 0;
    if i + 1 > offset {
        end = i + 1 - offset;
    }
    let mut start = 0;
    if i + 1 > window {
        start = i + 1 - window;
    }
    if start > end {
        start = end;
    }
    if end > t {
        end = t;
    }
    if start >= end {
        start = 0;
        end = 0;
    }
    (start, end)
}

/// The keys query row `row` (row `i` of `t`) reads: where they start in `k` and the range of
/// them. Banded: its (batch, head)'s `t` keys, [`row_keys`]; a bank (`bank`, `k` `(H, P, hs)`):
/// all `P` of its head's.
#[cube]
fn keys_of<F: Float>(
    k: &Tensor<F>,
    row: usize,
    t: usize,
    offset: usize,
    window: usize,
    #[comptime] hs: usize,
    #[comptime] bank: bool,
) -> (usize, usize, usize) {
    let i = row % t;
    let mut base = (row - i) * hs;
    let (mut start, mut end) = row_keys(i, t, offset, window);
    if bank {
        let slots = k.shape(1);
        base = (row / t) % k.shape(0) * slots * hs;
        start = 0;
        end = slots;
    }
    (base, start, end)
}

/// Where row `row` (of the `B H T` rows) of `x` `(B, H, T, hs)` starts, through its strides;
/// its features are adjacent (see [`rows_in_place`]).
#[cube]
fn row_at<F: Float>(x: &Tensor<F>, row: usize) -> usize {
    let (heads, t) = (x.shape(1), x.shape(2));
    let (i, bh) = (row % t, row / t);
    (bh / heads) * x.stride(0) + (bh % heads) * x.stride(1) + i * x.stride(2)
}

/// `x` as it is when each row's features are adjacent (the gradient of heads about to be
/// merged is such a view), read in place through its strides; else a contiguous copy.
fn rows_in_place(x: CubeTensor) -> CubeTensor {
    match x.meta.strides()[3] == 1 {
        true => x,
        false => into_contiguous(x),
    }
}

/// `sum_d a[a0 + d] b[b0 + d]`.
#[cube]
fn dot<F: Float>(a: &Tensor<F>, a0: usize, b: &Tensor<F>, b0: usize, #[comptime] hs: usize) -> F {
    let mut sum = F::new(0.0);
    for d in 0..hs {
        sum += a[a0 + d] * b[b0 + d];
    }
    sum
}

#[cube(launch)]
fn retrieval_forward<F: Float>(
    q: &Tensor<F>,
    k: &Tensor<F>,
    v: &Tensor<F>,
    y: &mut Tensor<F>,
    lse: &mut Tensor<F>,
    scale: f32,
    offset: u32,
    window: u32,
    #[comptime] hs: usize,
    #[comptime] bank: bool,
    #[define(F)] _dtype: ElemType,
) {
    let t = q.shape(2);
    let row = ABSOLUTE_POS;
    if row >= q.shape(0) * q.shape(1) * t {
        terminate!();
    }
    let (head, start, end) = keys_of::<F>(k, row, t, offset as usize, window as usize, hs, bank);
    let scale = F::cast_from(scale);
    let mut acc = Array::<F>::new(hs);
    for d in 0..hs {
        acc[d] = F::new(0.0);
    }
    let mut max = F::new(FLOOR);
    let mut sum = F::new(0.0);
    for j in start..end {
        let s = scale * dot::<F>(q, row * hs, k, head + j * hs, hs);
        let new_max = F::max(max, s);
        let shrink = F::exp(max - new_max);
        let p = F::exp(s - new_max);
        sum = sum * shrink + p;
        for d in 0..hs {
            acc[d] = acc[d] * shrink + p * v[head + j * hs + d];
        }
        max = new_max;
    }
    // A row that read nothing answers zero (its sum is 0; any other's is at least 1).
    let mut inv = F::new(0.0);
    let mut row_lse = F::new(0.0);
    if end > start {
        inv = F::new(1.0) / sum;
        row_lse = max + F::ln(sum);
    }
    for d in 0..hs {
        y[row * hs + d] = acc[d] * inv;
    }
    lse[row] = row_lse;
}

/// Per query row: `D_i` into `delta` and `dq_i`.
#[cube(launch)]
fn retrieval_backward_queries<F: Float>(
    q: &Tensor<F>,
    k: &Tensor<F>,
    v: &Tensor<F>,
    y: &Tensor<F>,
    lse: &Tensor<F>,
    dy: &Tensor<F>,
    dq: &mut Tensor<F>,
    delta: &mut Tensor<F>,
    scale: f32,
    offset: u32,
    window: u32,
    #[comptime] hs: usize,
    #[comptime] bank: bool,
    #[define(F)] _dtype: ElemType,
) {
    let t = q.shape(2);
    let row = ABSOLUTE_POS;
    if row >= q.shape(0) * q.shape(1) * t {
        terminate!();
    }
    let (head, start, end) = keys_of::<F>(k, row, t, offset as usize, window as usize, hs, bank);
    let scale = F::cast_from(scale);
    let dy_row = row_at::<F>(dy, row);
    let d_i = dot::<F>(dy, dy_row, y, row * hs, hs);
    let mut acc = Array::<F>::new(hs);
    for d in 0..hs {
        acc[d] = F::new(0.0);
    }
    for j in start..end {
        let w = F::exp(scale * dot::<F>(q, row * hs, k, head + j * hs, hs) - lse[row]);
        let ds = w * (dot::<F>(dy, dy_row, v, head + j * hs, hs) - d_i);
        for d in 0..hs {
            acc[d] += ds * k[head + j * hs + d];
        }
    }
    for d in 0..hs {
        dq[row * hs + d] = scale * acc[d];
    }
    delta[row] = d_i;
}

/// Per key row `j`: `dk_j` and `dv_j`, over the query rows that read it: of its own
/// (batch, head) in a band (rows `i >= j` only: a row reads keys up to itself at most), of its
/// head in every batch for a bank.
#[cube(launch)]
fn retrieval_backward_keys<F: Float>(
    q: &Tensor<F>,
    k: &Tensor<F>,
    v: &Tensor<F>,
    lse: &Tensor<F>,
    delta: &Tensor<F>,
    dy: &Tensor<F>,
    dk: &mut Tensor<F>,
    dv: &mut Tensor<F>,
    scale: f32,
    offset: u32,
    window: u32,
    #[comptime] hs: usize,
    #[comptime] bank: bool,
    #[define(F)] _dtype: ElemType,
) {
    let t = q.shape(2);
    let key = ABSOLUTE_POS;
    // Banded: one key row per query row, (batch, head, j); a bank: (head, slot).
    let mut slots = t;
    let mut batches = 1;
    let mut keys = q.shape(0) * q.shape(1) * t;
    if bank {
        slots = k.shape(1);
        batches = q.shape(0);
        keys = k.shape(0) * slots;
    }
    if key >= keys {
        terminate!();
    }
    let j = key % slots;
    let mut first = key - j;
    let mut earliest = j;
    if bank {
        first = key / slots * t;
        earliest = 0;
    }
    let batch_rows = q.shape(1) * t;
    let scale = F::cast_from(scale);
    let mut dk_acc = Array::<F>::new(hs);
    let mut dv_acc = Array::<F>::new(hs);
    for d in 0..hs {
        dk_acc[d] = F::new(0.0);
        dv_acc[d] = F::new(0.0);
    }
    for batch in 0..batches {
        for i in earliest..t {
            let (start, end) = row_keys(i, t, offset as usize, window as usize);
            if bank || (j >= start && j < end) {
                let row = first + batch * batch_rows + i;
                let dy_row = row_at::<F>(dy, row);
                let w = F::exp(scale * dot::<F>(q, row * hs, k, key * hs, hs) - lse[row]);
                let ds = w * (dot::<F>(dy, dy_row, v, key * hs, hs) - delta[row]);
                for d in 0..hs {
                    dv_acc[d] += w * dy[dy_row + d];
                    dk_acc[d] += ds * q[row * hs + d];
                }
            }
        }
    }
    for d in 0..hs {
        dk[key * hs + d] = scale * dk_acc[d];
        dv[key * hs + d] = dv_acc[d];
    }
}

/// How the kernels are launched for a query of `shape` `(B, H, T, hs)`: the band as they take
/// it (its window clamped to `T + 1`) and whether the keys are a bank `(H, P, hs)`.
#[derive(Clone, Copy)]
pub(crate) struct Reads {
    pub scale: f64,
    pub band: Band,
    pub bank: bool,
}

impl Reads {
    fn offset(self, t: usize) -> u32 {
        self.band.offset.min(t + 1) as u32
    }

    fn window(self, t: usize) -> u32 {
        self.band.window.min(t + 1) as u32
    }
}

/// `(B, H, T, 1)` of a `(B, H, T, hs)` shape.
fn rows(shape: &Shape) -> Shape {
    Shape::new([shape[0], shape[1], shape[2], 1])
}

/// The retrieval and each row's log-sum-exp.
pub(crate) fn forward([q, k, v]: [CubeTensor; 3], reads: Reads) -> (CubeTensor, CubeTensor) {
    assert_eq!(q.dtype, DType::F32, "the GPU retrieval runs in f32");
    let [q, k, v] = [q, k, v].map(into_contiguous);
    let shape = q.meta.shape().clone();
    let (y, lse) = (empty_like(&q, shape.clone()), empty_like(&q, rows(&shape)));
    let (count, dim) = threads(shape[0] * shape[1] * shape[2]);
    retrieval_forward::launch(
        &q.client.clone(),
        count,
        dim,
        q.into_tensor_arg(),
        k.into_tensor_arg(),
        v.into_tensor_arg(),
        y.clone().into_tensor_arg(),
        lse.clone().into_tensor_arg(),
        reads.scale as f32,
        reads.offset(shape[2]),
        reads.window(shape[2]),
        shape[3],
        reads.bank,
        dtype_to_storage_type(DType::F32),
    );
    (y, lse)
}

/// The gradients of the query, keys and values from the inputs, the output `y`, the
/// log-sum-exps and the output's gradient `dy`.
pub(crate) fn backward(
    [q, k, v, y, lse, dy]: [CubeTensor; 6],
    reads: Reads,
) -> (CubeTensor, CubeTensor, CubeTensor) {
    let [q, k, v, y, lse] = [q, k, v, y, lse].map(into_contiguous);
    let dy = rows_in_place(dy);
    let shape = q.meta.shape().clone();
    let [t, hs] = [shape[2], shape[3]];
    let dq = empty_like(&q, shape.clone());
    let [dk, dv] = [0; 2].map(|_| empty_like(&k, k.meta.shape().clone()));
    let delta = empty_like(&q, rows(&shape));
    let client = q.client.clone();
    let (count, dim) = threads(shape[0] * shape[1] * t);
    retrieval_backward_queries::launch(
        &client,
        count,
        dim,
        q.clone().into_tensor_arg(),
        k.clone().into_tensor_arg(),
        v.clone().into_tensor_arg(),
        y.into_tensor_arg(),
        lse.clone().into_tensor_arg(),
        dy.clone().into_tensor_arg(),
        dq.clone().into_tensor_arg(),
        delta.clone().into_tensor_arg(),
        reads.scale as f32,
        reads.offset(t),
        reads.window(t),
        hs,
        reads.bank,
        dtype_to_storage_type(DType::F32),
    );
    let (count, dim) = threads(k.meta.shape().num_elements() / hs);
    retrieval_backward_keys::launch(
        &client,
        count,
        dim,
        q.into_tensor_arg(),
        k.into_tensor_arg(),
        v.into_tensor_arg(),
        lse.into_tensor_arg(),
        delta.into_tensor_arg(),
        dy.into_tensor_arg(),
        dk.clone().into_tensor_arg(),
        dv.clone().into_tensor_arg(),
        reads.scale as f32,
        reads.offset(t),
        reads.window(t),
        hs,
        reads.bank,
        dtype_to_storage_type(DType::F32),
    );
    (dq, dk, dv)
}

/// The retrieval within a band of the query's own keys.
fn banded(scale: f64, band: Band) -> Reads {
    Reads {
        scale,
        band,
        bank: false,
    }
}

impl CausalBackend for CubeBackend {
    fn causal_retrieval(
        query: CubeTensor,
        keys: CubeTensor,
        values: CubeTensor,
        scale: f64,
        band: Band,
    ) -> CubeTensor {
        forward([query, keys, values], banded(scale, band)).0
    }
}

impl CausalGradBackend for CubeBackend {
    fn causal_forward(
        query: CubeTensor,
        keys: CubeTensor,
        values: CubeTensor,
        scale: f64,
        band: Band,
    ) -> (CubeTensor, CubeTensor) {
        forward([query, keys, values], banded(scale, band))
    }

    fn causal_backward(
        query: CubeTensor,
        keys: CubeTensor,
        values: CubeTensor,
        output: CubeTensor,
        lse: CubeTensor,
        grad: CubeTensor,
        scale: f64,
        band: Band,
    ) -> (CubeTensor, CubeTensor, CubeTensor) {
        let inputs = [query, keys, values, output, lse, grad];
        backward(inputs, banded(scale, band))
    }
}
