//! The model registry: which models exist ([`ModelConfig`], as a run's `[model]` table names
//! them), building one, and [`LanguageModel`], either model behind one type for code that
//! handles both (training, evaluation, generation).

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, GptConfig, MemoryMosaicConfig};
use crate::gpt::{Gpt, GptCache};
use crate::memory_mosaic::{LayerHeads, MemoryMosaic, MosaicCache};
use crate::{Forward, InputError};

/// Which model, and its shape. `kind = "memory_mosaic"` or `"gpt"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelConfig {
    MemoryMosaic(MemoryMosaicConfig),
    Gpt(GptConfig),
}

impl ModelConfig {
    /// A fresh model with the paper's initialisation, on `device`.
    pub fn init(&self, device: &Device) -> LanguageModel {
        match self {
            Self::MemoryMosaic(c) => LanguageModel::MemoryMosaic(c.init(device)),
            Self::Gpt(c) => LanguageModel::Gpt(c.init(device)),
        }
    }

    pub fn kind(&self) -> ModelKind {
        match self {
            Self::MemoryMosaic(_) => ModelKind::MemoryMosaic,
            Self::Gpt(_) => ModelKind::Gpt,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            Self::MemoryMosaic(c) => c.validate(),
            Self::Gpt(c) => c.validate(),
        }
    }

    pub fn num_params(&self) -> usize {
        match self {
            Self::MemoryMosaic(c) => c.num_params(),
            Self::Gpt(c) => c.num_params(),
        }
    }

    pub fn block_size(&self) -> usize {
        match self {
            Self::MemoryMosaic(c) => c.block_size,
            Self::Gpt(c) => c.block_size,
        }
    }

    pub fn n_layer(&self) -> usize {
        match self {
            Self::MemoryMosaic(c) => c.n_layer,
            Self::Gpt(c) => c.n_layer,
        }
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            Self::MemoryMosaic(c) => c.vocab_size,
            Self::Gpt(c) => c.vocab_size,
        }
    }
}

/// What generation keeps between tokens, for either model.
#[derive(Debug, Clone)]
pub enum Cache {
    MemoryMosaic(MosaicCache),
    Gpt(GptCache),
}

impl Cache {
    /// Tokens stored.
    pub fn len(&self) -> usize {
        match self {
            Self::MemoryMosaic(c) => c.len(),
            Self::Gpt(c) => c.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Either model, as one type for code that handles both.
#[derive(Module, Debug)]
pub enum LanguageModel {
    MemoryMosaic(MemoryMosaic),
    Gpt(Gpt),
}

impl LanguageModel {
    pub fn forward(&self, ids: Tensor<2, Int>) -> Result<Forward, InputError> {
        match self {
            Self::MemoryMosaic(m) => m.forward(ids),
            Self::Gpt(m) => m.forward(ids),
        }
    }

    /// The logits of a prompt and the cache that [`LanguageModel::step`] continues from.
    pub fn prefill(&self, ids: Tensor<2, Int>) -> Result<(Tensor<3>, Cache), InputError> {
        Ok(match self {
            Self::MemoryMosaic(m) => {
                let (logits, cache) = m.prefill(ids)?;
                (logits, Cache::MemoryMosaic(cache))
            }
            Self::Gpt(m) => {
                let (logits, cache) = m.prefill(ids)?;
                (logits, Cache::Gpt(cache))
            }
        })
    }

    /// The logits `(B, 1, vocab)` of one more token per row after those in `cache`; the
    /// total may not pass `block_size`.
    pub fn step(&self, ids: Tensor<2, Int>, cache: &mut Cache) -> Result<Tensor<3>, InputError> {
        match (self, cache) {
            (Self::MemoryMosaic(m), Cache::MemoryMosaic(c)) => m.step(ids, c),
            (Self::Gpt(m), Cache::Gpt(c)) => m.step(ids, c),
            _ => Err(InputError::CacheMismatch),
        }
    }

    /// The model reading sequences of up to `len` tokens, for length extrapolation. A Memory
    /// Mosaic has no position table (its block size is where training stopped, not a limit of
    /// the model), so any length; GPT's learned positions end at its block size.
    pub fn with_context(self, len: usize) -> Result<Self, InputError> {
        match self {
            Self::MemoryMosaic(m) => Ok(Self::MemoryMosaic(m.with_block_size(len))),
            Self::Gpt(m) if len <= m.block_size() => Ok(Self::Gpt(m)),
            Self::Gpt(m) => Err(InputError::NoPositions {
                len,
                block_size: m.block_size(),
            }),
        }
    }

    /// The device the parameters live on.
    pub fn device(&self) -> Device {
        match self {
            Self::MemoryMosaic(m) => m.device(),
            Self::Gpt(m) => m.device(),
        }
    }

    pub fn block_size(&self) -> usize {
        match self {
            Self::MemoryMosaic(m) => m.block_size(),
            Self::Gpt(m) => m.block_size(),
        }
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            Self::MemoryMosaic(m) => m.vocab_size(),
            Self::Gpt(m) => m.vocab_size(),
        }
    }

    /// Token ids as the model takes them, `(rows, ids.len() / rows)` on its device; an id
    /// outside the vocabulary is an error here rather than an out-of-bounds gather inside the
    /// backend.
    pub fn tokens(&self, ids: &[u32], rows: usize) -> Result<Tensor<2, Int>, InputError> {
        let vocab_size = self.vocab_size();
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab_size) {
            return Err(InputError::OutOfVocabulary { id, vocab_size });
        }
        let data: Vec<i64> = ids.iter().map(|&x| x as i64).collect();
        let shape = [rows, ids.len() / rows.max(1)];
        Ok(Tensor::from_data(
            TensorData::new(data, shape),
            &self.device(),
        ))
    }

    /// The learned per-head scalars of each layer (none for GPT).
    pub fn head_scalars(&self) -> Vec<LayerHeads> {
        match self {
            Self::MemoryMosaic(m) => m.head_scalars(),
            Self::Gpt(_) => Vec::new(),
        }
    }

    pub fn kind(&self) -> ModelKind {
        match self {
            Self::MemoryMosaic(_) => ModelKind::MemoryMosaic,
            Self::Gpt(_) => ModelKind::Gpt,
        }
    }
}

/// Which model: its one spelling, `memory_mosaic` or `gpt`, is the `kind` of a run's
/// `[model]` table, of the official metadata and of every result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelKind {
    MemoryMosaic,
    Gpt,
}

impl ModelKind {
    pub const ALL: [ModelKind; 2] = [Self::MemoryMosaic, Self::Gpt];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MemoryMosaic => "memory_mosaic",
            Self::Gpt => "gpt",
        }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for ModelKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown model kind `{s}` (known: memory_mosaic, gpt)"))
    }
}
