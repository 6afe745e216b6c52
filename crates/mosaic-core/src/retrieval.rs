//! Kernel-regression retrieval: a memory answers a query with the Gaussian-kernel average of
//! its values. Keys are L2-normalised (times a per-head scale), so the kernel is a softmax of
//! dot products and no `1/sqrt(hs)` factor appears.

use burn::nn::Dropout;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, DType, Device, Tensor, TensorData};

use crate::band::Band;
use crate::dispatch::{fused_attention, fused_kernels, via_f32};
use crate::softmax::{hidden_mask, masked_softmax, softmax_last};
use crate::{bank, causal};

/// Attention weights of a contextual memory, `(B, H, T, T)`: row `t` is
/// `softmax_i(q_t . k_i)` over the pairs `band` gives position `t`, and a row with none is all
/// zeros (an empty memory answers zero, not a softmax over nothing).
pub fn band_weights(query: Tensor<4>, keys: Tensor<4>, band: Band) -> Tensor<4> {
    let [b, h, t, _] = query.dims();
    let empty = empty_rows_mask(t, band, &query.device());
    masked_softmax(query.matmul(keys.swap_dims(2, 3)), band)
        .mask_fill(empty.expand([b, h, t, t]), 0.0)
}

/// `y_t = sum_{i in band(t)} softmax_i(q_t . k_i) v_i`, and 0 where the band holds nothing,
/// with dropout on the weights. All tensors `(B, H, T, hs)`. The empty rows are zeroed in `y`
/// rather than in the `(T, T)` weights: the same numbers and gradients, one pass over the
/// weights fewer each way.
pub fn band_retrieval(
    query: Tensor<4>,
    keys: Tensor<4>,
    values: Tensor<4>,
    band: Band,
    dropout: &Dropout,
) -> Tensor<4> {
    let device = query.device();
    if let Some(half) = via_f32(query.dtype(), our_kernel(&device, DType::F32, dropout)) {
        let [q, k, v] = [query, keys, values].map(|x| x.cast(DType::F32));
        return band_retrieval(q, k, v, band, dropout).cast(half);
    }
    if our_kernel(&device, query.dtype(), dropout) {
        // It answers zero on the rows with nothing to read itself: no zeroed copy each way.
        return causal::causal_retrieval(query, keys, values, 1.0, band);
    }
    let [b, h, t, _] = query.dims();
    let hs = values.dims()[3];
    let y = masked_retrieval(query, keys, values, 1.0, band, dropout);
    let empty = band.empty_rows().min(t);
    if empty == 0 {
        return y;
    }
    let zero = Tensor::zeros([b, h, empty, hs], (&y.device(), y.dtype()));
    match t - empty {
        0 => zero,
        rest => Tensor::cat(vec![zero, y.narrow(2, empty, rest)], 2),
    }
}

/// `y_t = sum_i softmax_i(scale q_t . k_i) v_i` over the keys `band` gives query `t`, with
/// dropout on the weights: [`Band::CAUSAL`] is a transformer's causal attention, the other
/// bands a contextual memory's (whose rows with nothing to read answer zero in our kernels and
/// read key 0 in the other forms, for [`band_retrieval`] to zero). All tensors `(B, H, T, hs)`.
/// The one attention of every model here: on the CPU backend a fused operation that never
/// writes the `(B, H, T, T)` weights (Burn's without gradients, ours with them when dropout is
/// off), on a GPU in f32 without dropout ours (CubeCL), elsewhere the explicit form the
/// reference tests check.
pub fn masked_retrieval(
    query: Tensor<4>,
    keys: Tensor<4>,
    values: Tensor<4>,
    scale: f64,
    band: Band,
    dropout: &Dropout,
) -> Tensor<4> {
    let [_, _, t, _] = query.dims();
    let device = query.device();
    if fused_attention(&device) {
        let options = AttentionModuleOptions {
            scale: Some(scale),
            softcap: None,
            is_causal: band == Band::CAUSAL,
        };
        let mask = (band != Band::CAUSAL).then(|| hidden_mask(t, t, band, &device));
        return attention(query, keys, values, mask, None, options);
    }
    if let Some(half) = via_f32(query.dtype(), our_kernel(&device, DType::F32, dropout)) {
        let [q, k, v] = [query, keys, values].map(|x| x.cast(DType::F32));
        return masked_retrieval(q, k, v, scale, band, dropout).cast(half);
    }
    if our_kernel(&device, query.dtype(), dropout) {
        return causal::causal_retrieval(query, keys, values, scale, band);
    }
    let scores = query.matmul(keys.swap_dims(2, 3));
    let scores = if scale == 1.0 { scores } else { scores * scale };
    dropout.forward(masked_softmax(scores, band)).matmul(values)
}

/// Whether [`masked_retrieval`] runs [`causal::causal_retrieval`]: our kernels, where Burn's
/// fused attention does not serve (no dropout).
fn our_kernel(device: &Device, dtype: DType, dropout: &Dropout) -> bool {
    !fused_attention(device) && fused_kernels(device, dtype) && dropout.prob == 0.0
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
/// `query` `(B, H, T, hs)`, `bank_keys` and `bank_values` `(H, P, hs)`. On the CPU backend and
/// on a GPU in f32, without active dropout, one fused operation (the crate's `bank` kernels).
pub fn bank_retrieval(
    query: Tensor<4>,
    bank_keys: Tensor<3>,
    bank_values: Tensor<3>,
    dropout: &Dropout,
) -> Tensor<4> {
    let device = query.device();
    let ours =
        |dtype| fused_kernels(&device, dtype) && (dropout.prob == 0.0 || !device.is_autodiff());
    if let Some(half) = via_f32(query.dtype(), ours(DType::F32)) {
        let (k, v) = (bank_keys.cast(DType::F32), bank_values.cast(DType::F32));
        return bank_retrieval(query.cast(DType::F32), k, v, dropout).cast(half);
    }
    if ours(query.dtype()) {
        return bank::bank_retrieval(query, bank_keys, bank_values);
    }
    let scores = query.matmul(bank_keys.swap_dims(1, 2).unsqueeze::<4>());
    dropout
        .forward(softmax_last(scores))
        .matmul(bank_values.unsqueeze::<4>())
}

/// `(1, 1, T, T)`, true on the rows `band` gives nothing to read.
fn empty_rows_mask(t: usize, band: Band, device: &Device) -> Tensor<4, Bool> {
    let empty: Vec<bool> = (0..t)
        .flat_map(|i| (0..t).map(move |_| band.count(i) == 0))
        .collect();
    Tensor::from_data(TensorData::new(empty, [1, 1, t, t]), device)
}
