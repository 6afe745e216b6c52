//! Stacked, transformer-comparable language models: the Memory Mosaic
//! ([`MemoryMosaic`], the reference's `StackAssoMem`) and its GPT-2 baseline ([`Gpt`]); the
//! registry of both ([`ModelConfig`], [`LanguageModel`], [`ModelKind`]); [`load_official`],
//! which turns a safetensors file holding an official PyTorch `state_dict` into one of them;
//! and the three-moons toy ([`ToyMosaic`]).
//!
//! ```
//! use burn::tensor::{Device, Int, Tensor};
//! use mosaic_models::{InputError, MemoryMosaicConfig};
//!
//! let device = Device::flex();
//! // Vocabulary 100, 2 layers, 4 heads, width 32, 16 tokens of context.
//! let model = MemoryMosaicConfig::new(100, 2, 4, 32, 16).init(&device);
//! let ids = Tensor::<2, Int>::from_ints([[1, 2, 3, 4, 5]], &device);
//! let out = model.forward(ids)?;
//! assert_eq!(out.logits.dims(), [1, 5, 100]);
//! assert_eq!(out.hidden.len(), 2); // the residual stream after each block
//! // Bad input is an error, not a panic.
//! let long = Tensor::<2, Int>::zeros([1, 17], &device);
//! assert!(matches!(model.forward(long), Err(InputError::TooLong { len: 17, .. })));
//! # Ok::<(), InputError>(())
//! ```

mod config;
mod device;
mod export;
mod gpt;
mod layer_norm;
mod loss;
mod memory_mosaic;
mod model;
mod official;
mod reading;
mod tensor_file;
mod toy;

pub use config::{ConfigError, GptConfig, MemoryMosaicConfig};
pub use device::{DEVICE_ENV, DeviceError, describe, device_from_name};
pub use export::{EXPORT_CONFIG, EXPORT_WEIGHTS, ExportError, export_official};
pub use gpt::{Gpt, GptCache};
pub use loss::{cross_entropy, cross_entropy_per_token};
pub use memory_mosaic::{LayerHeads, MemoryMosaic, MosaicCache};
pub use model::{Cache, LanguageModel, ModelConfig, ModelKind};
pub use official::{OfficialError, load_official};
pub use reading::{LayerReading, MemoryReading, Reading};
pub use tensor_file::{TensorFile, TensorFileError};
pub use toy::{ComplexLinear, ToyMosaic, ToyMosaicConfig, clipped_mse};

use burn::tensor::Tensor;

/// A copy of `x` laid out contiguously in its logical order: a transposed view that is read
/// many times (the tied head, token after token) is cheaper copied once.
pub(crate) fn laid_out<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    let dtype = x.dtype();
    Tensor::from_data(x.into_data(), (&device, dtype))
}

/// What a forward pass returns: the logits `(B, T, vocab)` and the residual stream after each
/// block, `(B, T, d)` each.
#[derive(Debug, Clone)]
pub struct Forward {
    pub logits: Tensor<3>,
    pub hidden: Vec<Tensor<3>>,
}

/// Input a model cannot take.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    #[error(
        "a sequence of {len} tokens is longer than the model's block_size {block_size}; \
         keep only the last {block_size} tokens"
    )]
    TooLong { len: usize, block_size: usize },
    #[error("an empty sequence: give the model at least one token")]
    Empty,
    #[error("a generation cache from the other kind of model; start it with this model's prefill")]
    CacheMismatch,
    #[error(
        "GPT's learned position embedding ends at its block_size {block_size}: it cannot read \
         {len} tokens (a Memory Mosaic can)"
    )]
    NoPositions { len: usize, block_size: usize },
    #[error(
        "token id {id} is outside the model's vocabulary of {vocab_size}: the ids come from \
         another tokenizer than the one the model was trained with"
    )]
    OutOfVocabulary { id: u32, vocab_size: usize },
}

impl InputError {
    pub(crate) fn check_length(len: usize, block_size: usize) -> Result<(), InputError> {
        match len {
            0 => Err(InputError::Empty),
            len if len > block_size => Err(InputError::TooLong { len, block_size }),
            _ => Ok(()),
        }
    }
}
