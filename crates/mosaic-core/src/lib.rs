//! The memory units of Memory Mosaics (Zhang et al., ICLR 2025).
//!
//! Each paper concept lives in one file: [`LeakyAverage`] (the key's decaying sum over the
//! past), [`KeyFeatures`] and [`ValueFeatures`] (what a memory stores and looks up),
//! [`retrieval`] (Gaussian-kernel regression with the strictly-past mask), and the two units
//! built from them, [`ContextMemory`] and [`PersistentMemory`]. Memory Mosaics v2 (Zhang and
//! Bottou, 2025) adds [`gated_scan`] (gated keys), [`AdaptiveBandwidth`], the [`Band`]s of its
//! short- and long-term memories and the [`SwiGlu`] persistent memory.
//!
//! Tensors are laid out `(batch, time, channels)` at the boundaries of a unit and
//! `(batch, head, time, head_size)` inside.
//!
//! ```
//! use burn::tensor::{Device, Distribution, Tensor};
//! use mosaic_core::ContextMemoryConfig;
//!
//! let device = Device::flex();
//! // A contextual memory of width 32 with 4 heads, in a stack of 2 blocks.
//! let memory = ContextMemoryConfig::new(32, 4, 2).init(&device);
//! let x = Tensor::<3>::random([1, 10, 32], Distribution::Normal(0.0, 1.0), &device);
//! // Each position answers from the (key, value) pairs stored strictly before it: the first
//! // has nothing to read, so the memory's answer there is zero.
//! let y = memory.forward(x);
//! assert_eq!(y.dims(), [1, 10, 32]);
//! let first = y.narrow(1, 0, 1).abs().max().into_scalar::<f32>();
//! assert_eq!(first, 0.0);
//! ```

mod backward;
pub mod band;
mod bandwidth;
mod bank;
mod causal;
mod context_memory;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod cross_entropy;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod cube_launch;
mod dispatch;
mod gated_scan;
mod gelu;
mod head_retrieval;
pub mod heads;
mod key_features;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod l2_norm;
mod layer_norm;
mod leaky_average;
mod linear;
mod matrix;
mod persistent_memory;
pub mod retrieval;
mod row_kernels;
mod scan_kernel;
mod softmax;
mod swiglu;
mod value_features;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod value_kernel;
mod weights;

pub use band::Band;
pub use bandwidth::AdaptiveBandwidth;
pub use context_memory::{ContextCache, ContextMemory, ContextMemoryConfig};
pub use gated_scan::{gated_scan, gated_step};
pub use key_features::{KeyFeatures, KeyScale};
pub use leaky_average::LeakyAverage;
pub use persistent_memory::{PersistentMemory, PersistentMemoryConfig};
pub use swiglu::SwiGlu;
pub use value_features::ValueFeatures;
pub use weights::Weights;

/// The operations the models build on besides the memories: each runs as one fused operation
/// on the CPU backend in f32 and as Burn's tensor operations elsewhere.
pub mod ops {
    pub use crate::gelu::gelu_tanh;
    pub use crate::layer_norm::layer_norm;
    pub use crate::linear::linear;
    pub use crate::softmax::{cross_entropy_rows, log_softmax_last, masked_softmax, softmax_last};
}

/// For this crate's tests and benchmarks only, not a stable interface: the fused kernels by
/// themselves, the switch that chooses them, and the slow obvious forms they are checked
/// against.
#[doc(hidden)]
pub mod test_support {
    pub use crate::bank::bank_retrieval;
    pub use crate::causal::causal_retrieval;
    pub use crate::dispatch::{cpu_kernels, fused_kernels};
    pub use crate::gated_scan::{CHUNK, gated_scan_chunked, gated_scan_sequential};
    pub use crate::leaky_average::{leaky_average, leaky_average_chunked, leaky_average_quadratic};
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    pub use crate::value_kernel::fused_values;
}

/// The reference stores every per-head scalar divided by this factor and uses it multiplied by
/// it, a learning-rate reparameterisation: the scalars then move ten times faster under AdamW.
pub const EXP_PARAM_SCALE: f64 = 10.0;
