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
    /// Memory Mosaics v2 (arXiv 2507.03285), eq. 6: each contextual memory's bandwidth grows
    /// with the pairs it holds, `beta1 n^alpha + beta0`, in place of v1's fixed `s_h^2`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub adaptive_bandwidth: bool,
    /// v2, eq. 8: every key extractor is gated, `kbar_t = g_t ktilde_t + lambda_t kbar_{t-1}`
    /// with `g_t` and `lambda_t` computed from `x_t`, in place of v1's fixed leaky average.
    #[serde(default, skip_serializing_if = "is_false")]
    pub gated_keys: bool,
    /// v2, eq. 10: half the heads in a short-term memory (the last `short_window` positions),
    /// half in a long-term memory (the pairs older than `long_offset` steps), and a SwiGLU
    /// layer as the persistent memory.
    #[serde(default, skip_serializing_if = "is_false")]
    pub three_level: bool,
    /// v2's persistent part alone: a SwiGLU layer in place of the persistent memory, the
    /// contextual memory left as v1's (the three-level memory implies it). For an ablation
    /// that separates the memory hierarchy from the feed-forward change.
    #[serde(default, skip_serializing_if = "is_false")]
    pub swiglu: bool,
    /// The short-term memory's window `h`: position `t` reads pairs `t - h + 1 ... t - 1`.
    #[serde(default = "short_window")]
    pub short_window: usize,
    /// The long-term memory's offset `m`: position `t` reads pairs `0 ... t - m`; drawn
    /// uniformly from `[low, high]` at each training step, `low` otherwise.
    #[serde(default = "long_offset")]
    pub long_offset: [usize; 2],
    /// Hidden width of the SwiGLU layer; `3 n_embd` by default, which gives a block `12 d^2`
    /// weights as v1 and GPT-2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swiglu_hidden: Option<usize>,
}

/// The paper's `h` at a 4k context.
fn short_window() -> usize {
    256
}

/// The paper's range of `m` at a 4k context.
fn long_offset() -> [usize; 2] {
    [64, 256]
}

fn is_false(b: &bool) -> bool {
    !b
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
            adaptive_bandwidth: false,
            gated_keys: false,
            three_level: false,
            swiglu: false,
            short_window: short_window(),
            long_offset: long_offset(),
            swiglu_hidden: None,
        }
    }

    /// Memory Mosaics v2: all three changes on, the short- and long-term memories scaled to
    /// the block as [`MemoryMosaicConfig::scaled_three_level`] says.
    pub fn v2(
        vocab_size: usize,
        n_layer: usize,
        n_head: usize,
        n_embd: usize,
        block_size: usize,
    ) -> Self {
        Self {
            adaptive_bandwidth: true,
            gated_keys: true,
            three_level: true,
            ..Self::new(vocab_size, n_layer, n_head, n_embd, block_size)
        }
        .scaled_three_level()
    }

    /// The paper's short- and long-term memories scaled down to this block: it trains at 4k
    /// tokens with `h` 256 and `m` in [64, 256], a sixteenth of the context and less; at the
    /// block sizes of a CPU that would leave a window of a few words, so here `h` is a quarter
    /// of the block and `m` ranges from a sixteenth of it to `h` (the paper's `h = 4 m_low`
    /// and `m_high = h` kept), never below 2 and 1.
    pub fn scaled_three_level(self) -> Self {
        let h = (self.block_size / 4).max(2);
        Self {
            short_window: h,
            long_offset: [(self.block_size / 16).max(1), h],
            ..self
        }
    }

    /// Whether the persistent part is a SwiGLU layer (`swiglu`, or the three-level memory).
    pub fn has_swiglu(&self) -> bool {
        self.swiglu || self.three_level
    }

    /// The SwiGLU layer's hidden width.
    pub fn swiglu_width(&self) -> usize {
        self.swiglu_hidden.unwrap_or(3 * self.n_embd)
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
        check_dropout("resid_dropout", self.resid_dropout)?;
        if self.three_level {
            if !self.n_head.is_multiple_of(2) {
                return Err(ConfigError(format!(
                    "`three_level` splits the heads between a short- and a long-term memory: \
                     `n_head` ({}) must be even",
                    self.n_head
                )));
            }
            if self.short_window < 2 {
                return Err(ConfigError(format!(
                    "`short_window` ({}) must be at least 2: a window of h positions holds the \
                     h - 1 pairs before the present",
                    self.short_window
                )));
            }
            let [low, high] = self.long_offset;
            if low == 0 || low > high {
                return Err(ConfigError(format!(
                    "`long_offset` [{low}, {high}] must be a range [low, high] with \
                     1 <= low <= high"
                )));
            }
        }
        if self.has_swiglu() && self.swiglu_hidden == Some(0) {
            return Err(ConfigError("`swiglu_hidden` must be at least 1".into()));
        }
        Ok(())
    }

    /// The exact number of parameters. v1: per block `12 d^2` when `pmem_size = 3.5 d` (three
    /// `d x d` maps in the contextual memory, two plus `2 pmem_size d` bank entries in the
    /// persistent one), plus two LayerNorm gains and seven per-head scalars; then the tied
    /// embedding and the final LayerNorm. Gated keys replace each key extractor's decay (one
    /// scalar per head) with `W_g` and `W_lambda` (`d` each per head); the adaptive bandwidth
    /// replaces `kappa` with three scalars per head; the three-level memory splits the same
    /// `3 d^2` of the contextual memory's maps between its two memories and replaces the
    /// persistent memory with a SwiGLU layer of `3 d hidden` weights.
    pub fn num_params(&self) -> usize {
        let (d, h) = (self.n_embd, self.n_head);
        let key_average = match self.gated_keys {
            true => 2 * d * h,
            false => h,
        };
        let bandwidth = match self.adaptive_bandwidth {
            true => 3 * h,
            false => h,
        };
        // Maps, key average, bandwidth, value mix and value scale.
        let context = 3 * d * d + key_average + bandwidth + 2 * h;
        let persistent = match self.has_swiglu() {
            true => 3 * d * self.swiglu_width(),
            // Key map and output, banks, key average, key scale, value scale.
            false => 2 * d * d + 2 * self.pmem_count * self.pmem_size * d + key_average + 2 * h,
        };
        let block = context + persistent + 2 * d;
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
