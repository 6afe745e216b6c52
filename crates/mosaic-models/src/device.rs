//! Choosing a backend by name, as command lines do: `flex` (the CPU, always there), `wgpu` and
//! `cuda` (when built with the cargo feature of that name).

use burn::tensor::Device;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeviceError {
    #[error("unknown device `{0}` (known: flex, wgpu, cuda)")]
    Unknown(String),
    #[error("the `{0}` backend is not compiled in; rebuild with `--features {0}`")]
    NotCompiled(&'static str),
}

/// `flex` (alias `cpu`), `wgpu` (the best adapter WGPU finds, possibly a software one such as
/// lavapipe), `cuda` (GPU 0) or `cuda:N`.
pub fn device_from_name(name: &str) -> Result<Device, DeviceError> {
    match name {
        "flex" | "cpu" => Ok(Device::flex()),
        "wgpu" => wgpu(),
        "cuda" => cuda(0),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(index)) => cuda(index),
            _ => Err(DeviceError::Unknown(other.to_string())),
        },
    }
}

#[cfg(feature = "wgpu")]
fn wgpu() -> Result<Device, DeviceError> {
    Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu() -> Result<Device, DeviceError> {
    Err(DeviceError::NotCompiled("wgpu"))
}

#[cfg(feature = "cuda")]
fn cuda(index: usize) -> Result<Device, DeviceError> {
    Ok(Device::cuda(index))
}

#[cfg(not(feature = "cuda"))]
fn cuda(_index: usize) -> Result<Device, DeviceError> {
    Err(DeviceError::NotCompiled("cuda"))
}
