//! Kernel launches per training step on a CubeCL backend (WGPU, CUDA), counted with CubeCL's
//! launch observer: every kernel the process issues while it is installed, fused ones
//! included. The device is synchronised before and after, so that work queued by fusion is
//! counted in the step that issued it.

use anyhow::Result;
use burn::tensor::Device;

/// Runs `step` once and returns how many kernels it launched; `None` on the CPU backend,
/// whose operations are not kernels.
pub fn count(device: &Device, step: impl FnOnce() -> Result<()>) -> Result<Option<usize>> {
    if *device == Device::flex() {
        step()?;
        return Ok(None);
    }
    observe(device, step)
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn observe(device: &Device, step: impl FnOnce() -> Result<()>) -> Result<Option<usize>> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use burn::cubecl::logging::{LaunchObservation, LaunchObserver};

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl LaunchObserver for Count {
        fn launched(&self, _kernel: &'static str) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    device.sync().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let count = Arc::new(Count::default());
    let watching = LaunchObservation::new(count.clone());
    step()?;
    device.sync().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    drop(watching);
    Ok(Some(count.0.load(Ordering::Relaxed)))
}

#[cfg(not(any(feature = "wgpu", feature = "cuda")))]
fn observe(_device: &Device, step: impl FnOnce() -> Result<()>) -> Result<Option<usize>> {
    step()?;
    Ok(None)
}
