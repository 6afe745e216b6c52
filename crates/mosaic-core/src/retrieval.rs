//! Kernel-regression retrieval: a memory answers a query with the Gaussian-kernel average of
//! its values. Keys are L2-normalised (times a per-head scale), so the kernel is a softmax of
//! dot products and no `1/sqrt(hs)` factor appears.

use burn::nn::Dropout;
use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Device, Tensor, TensorData};

/// Attention weights of a contextual memory, `(B, H, T, T)`: row `t` is
/// `softmax_i(q_t . k_i)` over the strictly-past positions `i <= t - 1`, and row 0 is all zeros
/// (an empty memory answers zero, not a softmax over nothing).
pub fn past_weights(query: Tensor<4>, keys: Tensor<4>) -> Tensor<4> {
    let [b, h, t, _] = query.dims();
    let device = query.device();
    let scores = query.matmul(keys.swap_dims(2, 3));
    let (not_past, first_row) = past_masks(t, &device);
    let weights = softmax(
        scores.mask_fill(not_past.expand([b, h, t, t]), f32::NEG_INFINITY),
        3,
    );
    weights.mask_fill(first_row.expand([b, h, t, t]), 0.0)
}

/// `y_t = sum_{i <= t-1} softmax_i(q_t . k_i) v_i` and `y_0 = 0`, with dropout on the weights.
/// All tensors `(B, H, T, hs)`.
pub fn past_retrieval(
    query: Tensor<4>,
    keys: Tensor<4>,
    values: Tensor<4>,
    dropout: &Dropout,
) -> Tensor<4> {
    dropout.forward(past_weights(query, keys)).matmul(values)
}

/// Retrieval from a fixed bank, no mask: `y_t = sum_j softmax_j(q_t . K_j) V_j`.
/// `query` `(B, H, T, hs)`, `bank_keys` and `bank_values` `(H, P, hs)`.
pub fn bank_retrieval(
    query: Tensor<4>,
    bank_keys: Tensor<3>,
    bank_values: Tensor<3>,
    dropout: &Dropout,
) -> Tensor<4> {
    let scores = query.matmul(bank_keys.swap_dims(1, 2).unsqueeze::<4>());
    dropout
        .forward(softmax(scores, 3))
        .matmul(bank_values.unsqueeze::<4>())
}

/// `(not_past, first_row)`, each `(1, 1, T, T)`. `not_past` marks `j >= i`, except `(0, 0)`,
/// left open so that row 0 has something to softmax over before `first_row` zeroes it: a row
/// of -inf would give NaN, and NaN survives the zeroing in the backward pass.
fn past_masks(t: usize, device: &Device) -> (Tensor<4, Bool>, Tensor<4, Bool>) {
    let not_past: Vec<bool> = (0..t)
        .flat_map(|i| (0..t).map(move |j| j >= i && !(i == 0 && j == 0)))
        .collect();
    let first_row: Vec<bool> = (0..t).flat_map(|i| (0..t).map(move |_| i == 0)).collect();
    (
        Tensor::from_data(TensorData::new(not_past, [1, 1, t, t]), device),
        Tensor::from_data(TensorData::new(first_row, [1, 1, t, t]), device),
    )
}
