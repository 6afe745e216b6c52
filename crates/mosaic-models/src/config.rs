//! Model configurations. Both deserialise from TOML or JSON; an unknown key is an error.

use serde::{Deserialize, Serialize};

/// A Memory Mosaic language model (the reference's `StackAssoMem`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryMosaicConfig {
    pub vocab_size: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    /// Longest sequence the model accepts.
    pub block_size: usize,
    /// Key/value pairs per head in each persistent memory bank; the paper uses `3.5 * n_embd`.
    pub pmem_size: usize,
    #[serde(default = "one")]
    pub pmem_count: usize,
    /// Dropout on retrieval weights (`ic_dropout`).
    #[serde(default)]
    pub attn_dropout: f64,
    /// Dropout on each unit's output (`hd_dropout`).
    #[serde(default)]
    pub resid_dropout: f64,
}

/// nanoGPT's GPT-2, without biases and with tied embeddings, as the reference's baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GptConfig {
    pub vocab_size: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    pub block_size: usize,
    #[serde(default)]
    pub dropout: f64,
}

fn one() -> usize {
    1
}

/// A configuration no model can be built from; the message names the key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("model config: {0}")]
pub struct ConfigError(pub String);

fn check_shape(
    vocab_size: usize,
    n_layer: usize,
    n_head: usize,
    n_embd: usize,
    block_size: usize,
) -> Result<(), ConfigError> {
    for (key, value) in [
        ("vocab_size", vocab_size),
        ("n_layer", n_layer),
        ("n_head", n_head),
        ("n_embd", n_embd),
        ("block_size", block_size),
    ] {
        if value == 0 {
            return Err(ConfigError(format!("`{key}` must be at least 1")));
        }
    }
    if !n_embd.is_multiple_of(n_head) {
        return Err(ConfigError(format!(
            "`n_embd` ({n_embd}) must be a multiple of `n_head` ({n_head})"
        )));
    }
    Ok(())
}

fn check_dropout(key: &str, p: f64) -> Result<(), ConfigError> {
    match (0.0..1.0).contains(&p) {
        true => Ok(()),
        false => Err(ConfigError(format!("`{key}` must be in [0, 1), found {p}"))),
    }
}

impl MemoryMosaicConfig {
    /// The paper's proportions: `pmem_size = 3.5 d`, one bank, so a block has `12 d^2` weights.
    pub fn new(
        vocab_size: usize,
        n_layer: usize,
        n_head: usize,
        n_embd: usize,
        block_size: usize,
    ) -> Self {
        Self {
            vocab_size,
            n_layer,
            n_head,
            n_embd,
            block_size,
            pmem_size: n_embd * 7 / 2,
            pmem_count: 1,
            attn_dropout: 0.0,
            resid_dropout: 0.0,
        }
    }

    /// Checks what [`MemoryMosaicConfig::init`] would otherwise assert.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_shape(
            self.vocab_size,
            self.n_layer,
            self.n_head,
            self.n_embd,
            self.block_size,
        )?;
        if self.pmem_size == 0 || self.pmem_count == 0 {
            return Err(ConfigError(
                "`pmem_size` and `pmem_count` must be at least 1".into(),
            ));
        }
        check_dropout("attn_dropout", self.attn_dropout)?;
        check_dropout("resid_dropout", self.resid_dropout)
    }

    /// The exact number of parameters: per block `12 d^2` when `pmem_size = 3.5 d` (three
    /// `d x d` maps in the contextual memory, two plus `2 pmem_size d` bank entries in the
    /// persistent one), plus two LayerNorm gains and seven per-head scalars; then the tied
    /// embedding and the final LayerNorm.
    pub fn num_params(&self) -> usize {
        let d = self.n_embd;
        let block = 3 * d * d
            + 2 * d * d
            + 2 * self.pmem_count * self.pmem_size * d
            + 2 * d
            + 7 * self.n_head;
        self.n_layer * block + self.vocab_size * d + d
    }
}

impl GptConfig {
    /// Checks what [`GptConfig::init`] would otherwise assert.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_shape(
            self.vocab_size,
            self.n_layer,
            self.n_head,
            self.n_embd,
            self.block_size,
        )?;
        check_dropout("dropout", self.dropout)
    }

    /// `12 d^2` per block (attention `4 d^2`, MLP `8 d^2`) plus two LayerNorm gains; then token
    /// and position embeddings (the head is tied) and the final LayerNorm.
    pub fn num_params(&self) -> usize {
        let d = self.n_embd;
        self.n_layer * (12 * d * d + 2 * d) + (self.vocab_size + self.block_size) * d + d
    }
}
