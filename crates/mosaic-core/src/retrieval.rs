//! Kernel-regression retrieval: a memory answers a query with the Gaussian-kernel average of
//! its values. Keys are L2-normalised (times a per-head scale), so the kernel is a softmax of
//! dot products and no `1/sqrt(hs)` factor appears.

use burn::nn::Dropout;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, DType, Device, Tensor, TensorData};

use crate::softmax::{hidden_mask, masked_softmax, softmax_last};
use crate::{bank, causal};

/// Whether to use Burn's fused attention: on the CPU backend without gradients, where its
/// tiled kernel never writes the `(B, H, T, T)` weights (dropout is off there anyway). With
/// gradients Burn decomposes it into the same operations as ours; other backends keep the
/// explicit form that the reference tests check.
pub fn fused_attention(device: &Device) -> bool {
    !device.is_autodiff() && *device == Device::flex()
}

/// Whether this crate's fused CPU operations run (softmaxes, retrievals, the leaky scan,
/// LayerNorm, GELU): Burn's `flex` backend, with or without gradients, in f32. The one switch
/// they all use.
pub fn cpu_kernels(device: &Device, dtype: DType) -> bool {
    dtype == DType::F32 && device.clone().inner() == Device::flex()
}

/// Attention weights of a contextual memory, `(B, H, T, T)`: row `t` is
/// `softmax_i(q_t . k_i)` over the strictly-past positions `i <= t - 1`, and row 0 is all zeros
/// (an empty memory answers zero, not a softmax over nothing).
pub fn past_weights(query: Tensor<4>, keys: Tensor<4>) -> Tensor<4> {
    let [b, h, t, _] = query.dims();
    let first_row = first_row_mask(t, &query.device());
    open_past_weights(query, keys).mask_fill(first_row.expand([b, h, t, t]), 0.0)
}

/// The weights of [`past_weights`] before row 0 is zeroed: row 0 reads key 0 only.
fn open_past_weights(query: Tensor<4>, keys: Tensor<4>) -> Tensor<4> {
    masked_softmax(query.matmul(keys.swap_dims(2, 3)), 0)
}

/// `y_t = sum_{i <= t-1} softmax_i(q_t . k_i) v_i` and `y_0 = 0`, with dropout on the weights.
/// All tensors `(B, H, T, hs)`. Row 0 is zeroed in `y` rather than in the `(T, T)` weights:
/// the same numbers and gradients, one pass over the weights fewer each way.
pub fn past_retrieval(
    query: Tensor<4>,
    keys: Tensor<4>,
    values: Tensor<4>,
    dropout: &Dropout,
) -> Tensor<4> {
    let [b, h, t, _] = query.dims();
    let hs = values.dims()[3];
    let y = masked_retrieval(query, keys, values, 1.0, 0, dropout);
    let zero = Tensor::zeros([b, h, 1, hs], (&y.device(), y.dtype()));
    match t {
        1 => zero,
        _ => Tensor::cat(vec![zero, y.narrow(2, 1, t - 1)], 2),
    }
}

/// `y_t = sum_{i < t + shift} softmax_i(scale q_t . k_i) v_i`, with dropout on the weights:
/// `shift` 1 is a transformer's causal attention, 0 the strictly-past retrieval of a
/// contextual memory (whose row 0, with nothing in the past, reads key 0). All tensors
/// `(B, H, T, hs)`. The one attention of every model here: on the CPU backend a fused
/// operation that never writes the `(B, H, T, T)` weights (Burn's without gradients, ours
/// with them when dropout is off), elsewhere the explicit form the reference tests check.
pub fn masked_retrieval(
    query: Tensor<4>,
    keys: Tensor<4>,
    values: Tensor<4>,
    scale: f64,
    shift: usize,
    dropout: &Dropout,
) -> Tensor<4> {
    let [_, _, t, _] = query.dims();
    let device = query.device();
    if fused_attention(&device) {
        let options = AttentionModuleOptions {
            scale: Some(scale),
            softcap: None,
            is_causal: shift == 1,
        };
        let mask = (shift != 1).then(|| hidden_mask(t, t, shift, &device));
        return attention(query, keys, values, mask, None, options);
    }
    if cpu_kernels(&device, query.dtype()) && dropout.prob == 0.0 {
        return causal::causal_retrieval(query, keys, values, scale, shift);
    }
    let scores = query.matmul(keys.swap_dims(2, 3));
    let scores = if scale == 1.0 { scores } else { scores * scale };
    dropout
        .forward(masked_softmax(scores, shift))
        .matmul(values)
}

/// `y = softmax(scale q . K^T) V` with no mask: new positions `q` `(B, H, n, hs)` reading
/// every stored key and value `(B, H, m, hs)`, as generation does with a cache.
pub fn open_retrieval(
    query: Tensor<4>,
    keys: Tensor<4>,
    values: Tensor<4>,
    scale: f64,
) -> Tensor<4> {
    let scores = query.matmul(keys.swap_dims(2, 3));
    let scores = if scale == 1.0 { scores } else { scores * scale };
    softmax_last(scores).matmul(values)
}

/// Retrieval from a fixed bank, no mask: `y_t = sum_j softmax_j(q_t . K_j) V_j`.
/// `query` `(B, H, T, hs)`, `bank_keys` and `bank_values` `(H, P, hs)`. On the CPU backend
/// without active dropout, one fused operation ([`crate::bank`]).
pub fn bank_retrieval(
    query: Tensor<4>,
    bank_keys: Tensor<3>,
    bank_values: Tensor<3>,
    dropout: &Dropout,
) -> Tensor<4> {
    let device = query.device();
    if cpu_kernels(&device, query.dtype()) && (dropout.prob == 0.0 || !device.is_autodiff()) {
        return bank::bank_retrieval(query, bank_keys, bank_values);
    }
    let scores = query.matmul(bank_keys.swap_dims(1, 2).unsqueeze::<4>());
    dropout
        .forward(softmax_last(scores))
        .matmul(bank_values.unsqueeze::<4>())
}

/// `(1, 1, T, T)`, true on row 0.
fn first_row_mask(t: usize, device: &Device) -> Tensor<4, Bool> {
    let first_row: Vec<bool> = (0..t).flat_map(|i| (0..t).map(move |_| i == 0)).collect();
    Tensor::from_data(TensorData::new(first_row, [1, 1, t, t]), device)
}
