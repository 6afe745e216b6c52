//! The language-modelling loss.

use burn::tensor::{DType, FloatDType, Int, Tensor};
use mosaic_core::ops::cross_entropy_rows;

/// Cross-entropy of every position, `(B, T)`, of `logits` `(B, T, V)` against `targets`
/// `(B, T)` (no target may be negative here).
pub fn cross_entropy_per_token(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<2> {
    let [b, t, v] = logits.dims();
    cross_entropy_rows(in_f32(logits).reshape([b * t, v]), targets.reshape([b * t])).reshape([b, t])
}

/// Mean cross-entropy of `logits` `(B, T, V)` against `targets` `(B, T)`; targets equal to -1
/// are ignored, as PyTorch's `ignore_index=-1`. Returns a one-element tensor.
pub fn cross_entropy(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<1> {
    let [b, t, v] = logits.dims();
    let n = b * t;
    let targets = targets.reshape([n]);
    let count = targets.clone().greater_equal_elem(0).float().sum();
    cross_entropy_rows(in_f32(logits).reshape([n, v]), targets).sum() / count
}

/// Logits computed in a lower precision (mixed-precision training) are taken to f32 before the
/// softmax: the loss and its gradient at the logits stay exact to f32.
fn in_f32(logits: Tensor<3>) -> Tensor<3> {
    match logits.dtype() {
        DType::F32 => logits,
        _ => logits.cast(FloatDType::F32),
    }
}
