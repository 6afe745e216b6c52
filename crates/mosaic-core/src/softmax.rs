//! Softmaxes over the last axis as single operations with their own backward passes.
//!
//! Burn's autodiff records a softmax as five operations (max, subtract, exp, sum, divide), each
//! writing a tensor of the input's size and each with its own backward, and the CPU backend
//! computes `exp` one float at a time; a mask before it is two more passes each way. The
//! retrievals' softmaxes are over `(B, H, T, T)` and `(B, H, T, pmem_size)` scores and the
//! loss's log-softmax over `(B T, vocab)` logits, the largest tensors of a training step. Here
//! each is one sweep over its rows forward (vectorised `exp`, rows in parallel, masked entries
//! skipped) and one backward, from the saved output alone: `dx = y * (dy - sum(dy * y))` for
//! the softmax, `dx = dy - exp(y) * sum(dy)` for the log-softmax.
//!
//! Only Burn's `flex` CPU backend (with or without gradients) in f32 takes this path; other
//! backends and dtypes keep Burn's operations, whose GPU kernels are fused already.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData, activation};
use rayon::prelude::*;

use crate::band::Band;
use crate::dispatch::cpu_kernels;
use crate::row_kernels::{Visible, backward_rows, softmax_rows};

/// `softmax(x, D - 1)`.
pub fn softmax_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    match cpu_kernels(&x.device(), x.dtype()) {
        true => Tensor::from_dispatch(Dispatch::fused_softmax(x.into_dispatch(), false, None)),
        false => activation::softmax(x, D - 1),
    }
}

/// `log_softmax(x, D - 1)`.
pub fn log_softmax_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    match cpu_kernels(&x.device(), x.dtype()) {
        true => Tensor::from_dispatch(Dispatch::fused_softmax(x.into_dispatch(), true, None)),
        false => activation::log_softmax(x, D - 1),
    }
}

/// The cross-entropy of each row of `logits` `(N, V)` against `targets` `(N)`,
/// `-log_softmax(logits)[i, targets[i]]`, and 0 where a target is negative (ignored). One fused
/// operation each way on a GPU in f32 (`cross_entropy`), the tensor form over the log-softmax
/// elsewhere.
pub fn cross_entropy_rows(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    if crate::dispatch::gpu_kernels(&logits.device(), logits.dtype()) {
        return crate::cross_entropy::fused_cross_entropy_rows(logits, targets);
    }
    let [n, _] = logits.dims();
    let ignored = targets.clone().lower_elem(0);
    log_softmax_last(logits)
        .gather(1, targets.clamp_min(0).reshape([n, 1]))
        .reshape([n])
        .mask_fill(ignored, 0.0)
        .neg()
}

/// The softmax of scores `(B, H, Tq, Tk)` where query `i` reads the keys `band` gives it
/// ([`Band::softmax_range`]) and gives the others weight exactly 0. A row with nothing to read
/// reads key 0 alone, for the caller to zero.
pub fn masked_softmax(scores: Tensor<4>, band: Band) -> Tensor<4> {
    let [_, _, tq, tk] = scores.dims();
    if cpu_kernels(&scores.device(), scores.dtype()) {
        let visible = Some([tq, band.offset, band.window]);
        return Tensor::from_dispatch(Dispatch::fused_softmax(
            scores.into_dispatch(),
            false,
            visible,
        ));
    }
    let hidden = hidden_mask(tq, tk, band, &scores.device());
    let [b, h, _, _] = scores.dims();
    activation::softmax(
        scores.mask_fill(hidden.expand([b, h, tq, tk]), f32::NEG_INFINITY),
        3,
    )
}

/// `(1, 1, Tq, Tk)`, true on the keys query `i` may not read: outside
/// [`Band::softmax_range`], which keeps key 0 in a row with nothing to read.
pub fn hidden_mask(tq: usize, tk: usize, band: Band, device: &Device) -> Tensor<4, Bool> {
    let hidden: Vec<bool> = (0..tq)
        .flat_map(|i| {
            let visible = band.softmax_range(i, tk);
            (0..tk).map(move |j| !visible.contains(&j))
        })
        .collect();
    Tensor::from_data(TensorData::new(hidden, [1, 1, tq, tk]), device)
}

#[backend_extension(Flex, Autodiff)]
pub trait SoftmaxBackend: Backend {
    /// Softmax (`log`: log-softmax) over the last axis; with
    /// `causal = Some([queries, offset, window])`, the masked softmax of [`masked_softmax`].
    fn fused_softmax(
        x: FloatTensor<Self>,
        log: bool,
        causal: Option<[usize; 3]>,
    ) -> FloatTensor<Self>;
}

impl SoftmaxBackend for Flex {
    fn fused_softmax(
        x: FloatTensor<Self>,
        log: bool,
        causal: Option<[usize; 3]>,
    ) -> FloatTensor<Self> {
        let visible = match causal {
            Some([queries, offset, window]) => Visible::Band {
                queries,
                band: Band { offset, window },
            },
            None => Visible::All,
        };
        map_rows(&[x], |rows, out, row, first| {
            softmax_rows(rows[0], out, row, log, first, visible)
        })
    }
}

/// The input's gradient from the output `y` and the output's gradient.
fn fused_softmax_backward(y: FlexTensor, grad: FlexTensor, log: bool) -> FlexTensor {
    // Masked entries have y = 0, so the softmax formula gives them no gradient as it is.
    map_rows(&[y, grad], |rows, out, row, _| {
        backward_rows(rows[0], rows[1], out, row, log)
    })
}

/// Runs `kernel(inputs' rows, output rows, row length, index of the first row)` over groups of
/// whole rows of `inputs` (same shape, the last axis the row) in parallel, into a new tensor.
fn map_rows(
    inputs: &[FlexTensor],
    kernel: impl Fn(&[&[f32]], &mut [f32], usize, usize) + Sync,
) -> FlexTensor {
    let shape = inputs[0].layout().shape().clone();
    let row = *shape.last().expect("a softmax has an axis");
    let inputs: Vec<FlexTensor> = inputs.iter().map(|x| x.to_contiguous()).collect();
    let slices: Vec<&[f32]> = inputs.iter().map(|x| x.storage::<f32>()).collect();
    let mut out = vec![0.0f32; slices[0].len()];
    // A few rows a task, so that a task is worth scheduling.
    if let Some(rows) = 4096usize.checked_div(row) {
        let rows = rows.max(1);
        let chunk = row * rows;
        out.par_chunks_mut(chunk).enumerate().for_each(|(i, o)| {
            let at = i * chunk;
            let parts: Vec<&[f32]> = slices.iter().map(|s| &s[at..at + o.len()]).collect();
            kernel(&parts, o, row, i * rows);
        });
    }
    FlexTensor::from_data(TensorData::new(out, shape))
}

#[derive(Debug)]
struct FusedSoftmax;

impl Backward<Flex, 1> for FusedSoftmax {
    /// The forward pass's output and whether it is a log-softmax: all the backward
    /// pass needs.
    type State = (FlexTensor, bool);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (y, log) = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            fused_softmax_backward(y, grad, log)
        });
    }
}

impl<C: CheckpointStrategy> SoftmaxBackend for Autodiff<Flex, C> {
    fn fused_softmax(
        x: FloatTensor<Self>,
        log: bool,
        causal: Option<[usize; 3]>,
    ) -> FloatTensor<Self> {
        let (x, node) = x.into_parts();
        match FusedSoftmax.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = Flex::fused_softmax(x, log, causal);
                prep.finish((y.clone(), log), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::fused_softmax(x, log, causal)),
        }
    }
}
