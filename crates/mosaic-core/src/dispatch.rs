//! Which implementation of an operation runs where: the crate's fused CPU kernels, Burn's
//! fused attention, or the tensor forms every backend has. Every operation asks here.

use burn::tensor::{DType, Device};

/// Whether to use Burn's fused attention: on the CPU backend without gradients, where its
/// tiled kernel never writes the `(B, H, T, T)` weights (dropout is off there anyway). With
/// gradients Burn decomposes it into the same operations as ours; other backends keep the
/// explicit form that the reference tests check.
pub fn fused_attention(device: &Device) -> bool {
    !device.is_autodiff() && *device == Device::flex()
}

/// Whether this crate's fused CPU operations run (projections, softmaxes, retrievals, the
/// leaky scan, LayerNorm, GELU): Burn's `flex` backend, with or without gradients, in f32. The
/// one switch they all use.
pub fn cpu_kernels(device: &Device, dtype: DType) -> bool {
    dtype == DType::F32 && device.clone().inner() == Device::flex()
}
