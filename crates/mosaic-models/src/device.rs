//! Choosing a backend by name, as command lines do: `flex` (the CPU, always there), `wgpu` and
//! `cuda` (when built with the cargo feature of that name). A GPU device is looked for before it
//! is handed out, so that a missing driver is one clear error here instead of a panic inside the
//! backend at the first tensor.

use burn::tensor::Device;

/// The environment variable a command reads when no `--device` is given.
pub const DEVICE_ENV: &str = "MOSAIC_DEVICE";

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeviceError {
    #[error("unknown device `{0}` (known: flex, wgpu, cuda, cuda:N)")]
    Unknown(String),
    #[error(
        "the `{0}` backend is not compiled in; rebuild with `--features {0}` \
         (e.g. `cargo build --release --features {0}`)"
    )]
    NotCompiled(&'static str),
    #[error("{backend}: no device found; {fix}")]
    NotFound {
        backend: &'static str,
        fix: &'static str,
    },
    #[error("cuda:{index}: this machine has {found} CUDA device(s)")]
    NoSuchIndex { index: usize, found: usize },
}

/// `flex` (alias `cpu`), `wgpu` (the best adapter WGPU finds, possibly a software one such as
/// lavapipe), `cuda` (GPU 0) or `cuda:N`.
pub fn device_from_name(name: &str) -> Result<Device, DeviceError> {
    match name.trim() {
        "flex" | "cpu" => Ok(Device::flex()),
        "wgpu" => wgpu(),
        "cuda" => cuda(0),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(index)) => cuda(index),
            _ => Err(DeviceError::Unknown(other.to_string())),
        },
    }
}

/// The device's backend and, for a GPU backend, the adapter's own name (`wgpu (llvmpipe (LLVM
/// 15.0.6, 256 bits))`), for reports.
pub fn describe(device: &Device) -> String {
    let device = device.clone().inner();
    if device == Device::flex() {
        return "flex (CPU)".to_string();
    }
    gpu_name(&device).unwrap_or_else(|| format!("{device:?}"))
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn gpu_name(device: &Device) -> Option<String> {
    let identity = quietly(|| device.identity()).flatten()?;
    let backend = if cfg!(feature = "cuda") && format!("{device:?}").contains("Cuda") {
        "cuda"
    } else {
        "wgpu"
    };
    Some(format!("{backend} ({})", identity.name))
}

#[cfg(not(any(feature = "wgpu", feature = "cuda")))]
fn gpu_name(_device: &Device) -> Option<String> {
    None
}

/// Runs `f`, turning a panic into `None` without printing it: the GPU runtimes panic when a
/// driver is missing, and the caller reports that in its own words.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn quietly<T>(f: impl FnOnce() -> T) -> Option<T> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok();
    std::panic::set_hook(hook);
    result
}

#[cfg(feature = "wgpu")]
fn wgpu() -> Result<Device, DeviceError> {
    use burn::tensor::{DeviceKind, DeviceType};
    let found = quietly(|| Device::enumerate(DeviceType::Wgpu).into_vec().len()).unwrap_or(0);
    match found {
        0 => Err(DeviceError::NotFound {
            backend: "wgpu",
            fix: "WGPU needs a GPU driver (Vulkan, Metal, DirectX 12 or OpenGL ES); on Linux \
                  without a GPU, Mesa's lavapipe runs Vulkan on the CPU (Debian/Ubuntu: \
                  `apt install mesa-vulkan-drivers libvulkan1`)",
        }),
        _ => Ok(Device::wgpu(DeviceKind::DefaultDevice)),
    }
}

#[cfg(not(feature = "wgpu"))]
fn wgpu() -> Result<Device, DeviceError> {
    Err(DeviceError::NotCompiled("wgpu"))
}

#[cfg(feature = "cuda")]
fn cuda(index: usize) -> Result<Device, DeviceError> {
    use burn::tensor::DeviceType;
    let found = quietly(|| Device::enumerate(DeviceType::Cuda).into_vec().len()).unwrap_or(0);
    match found {
        0 => Err(DeviceError::NotFound {
            backend: "cuda",
            fix: "CUDA needs an NVIDIA GPU with its driver installed (`nvidia-smi` lists the \
                  GPUs); `--device wgpu` runs on other GPUs",
        }),
        n if index >= n => Err(DeviceError::NoSuchIndex { index, found: n }),
        _ => Ok(Device::cuda(index)),
    }
}

#[cfg(not(feature = "cuda"))]
fn cuda(_index: usize) -> Result<Device, DeviceError> {
    Err(DeviceError::NotCompiled("cuda"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(device_from_name("flex"), Ok(Device::flex()));
        assert_eq!(device_from_name("cpu"), Ok(Device::flex()));
        assert_eq!(
            device_from_name("tpu"),
            Err(DeviceError::Unknown("tpu".into()))
        );
        assert_eq!(
            device_from_name("cuda:x"),
            Err(DeviceError::Unknown("cuda:x".into()))
        );
        assert_eq!(describe(&Device::flex().autodiff()), "flex (CPU)");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_not_compiled() {
        let err = device_from_name("cuda:1").unwrap_err();
        assert_eq!(err, DeviceError::NotCompiled("cuda"));
        assert!(err.to_string().contains("--features cuda"), "{err}");
    }
}
