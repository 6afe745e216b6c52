//! Which implementation of an operation runs where: the crate's fused CPU kernels, its GPU
//! kernels, Burn's fused attention, or the tensor forms every backend has. Every operation asks here.

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

/// Whether this crate's CubeCL kernels run (scan, retrievals, LayerNorm, L2 normalisation): in
/// f32 on a CubeCL device (WGPU, CUDA), when the crate is built with that feature.
pub fn gpu_kernels(device: &Device, dtype: DType) -> bool {
    dtype == DType::F32 && cube(device)
}

/// Whether an operation that has both a CPU and a GPU kernel (the keys' scan, the masked and
/// bank retrievals, LayerNorm) runs fused: [`cpu_kernels`] or [`gpu_kernels`]. Elsewhere it
/// runs as its tensor form.
pub fn fused_kernels(device: &Device, dtype: DType) -> bool {
    cpu_kernels(device, dtype) || gpu_kernels(device, dtype)
}

/// In half precision (f16, bf16), where the operation's fused kernel runs in f32
/// (`fused_in_f32`): the half type, to cast the result back to. Such an operation casts its
/// inputs to f32, runs the f32 kernel and casts its result back, as PyTorch's autocast runs
/// normalisations and softmaxes in f32: the kernels accumulate in f32, and in mixed precision
/// each operation stays one kernel rather than its tensor form's dozens.
pub fn via_f32(dtype: DType, fused_in_f32: bool) -> Option<DType> {
    (matches!(dtype, DType::F16 | DType::BF16) && fused_in_f32).then_some(dtype)
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn cube(device: &Device) -> bool {
    matches!(
        device.clone().inner().as_dispatch(),
        burn::backend::DispatchDevice::Cube(_)
    )
}

#[cfg(not(any(feature = "wgpu", feature = "cuda")))]
fn cube(_device: &Device) -> bool {
    false
}
