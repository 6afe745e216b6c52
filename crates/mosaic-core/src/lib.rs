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

mod backward;
pub mod band;
pub mod bandwidth;
pub mod bank;
pub mod causal;
pub mod context_memory;
pub mod dispatch;
pub mod gated_scan;
pub mod gelu;
pub mod heads;
pub mod key_features;
pub mod layer_norm;
pub mod leaky_average;
pub mod leaky_scan;
pub mod linear;
mod matrix;
pub mod persistent_memory;
pub mod retrieval;
mod row_kernels;
pub mod softmax;
pub mod swiglu;
pub mod value_features;
pub mod weights;

pub use band::Band;
pub use bandwidth::AdaptiveBandwidth;
pub use context_memory::{ContextCache, ContextMemory, ContextMemoryConfig};
pub use key_features::KeyFeatures;
pub use leaky_average::LeakyAverage;
pub use persistent_memory::{PersistentMemory, PersistentMemoryConfig};
pub use swiglu::SwiGlu;
pub use value_features::ValueFeatures;
pub use weights::Weights;

/// The reference stores every per-head scalar divided by this factor and uses it multiplied by
/// it, a learning-rate reparameterisation: the scalars then move ten times faster under AdamW.
pub const EXP_PARAM_SCALE: f64 = 10.0;
