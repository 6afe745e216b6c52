//! The prepared-data format: a directory holding `train.bin` and `val.bin` (token ids,
//! little-endian, u16 when the vocabulary fits, else u32), `test.bin` when stories were held
//! out for a test part, and `meta.json`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::tokenizer::TokenizerKind;

pub const META_FILE: &str = "meta.json";
pub const TRAIN_FILE: &str = "train.bin";
pub const VAL_FILE: &str = "val.bin";
pub const TEST_FILE: &str = "test.bin";

/// Width of the ids in a token file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenWidth {
    U16,
    U32,
}

impl std::fmt::Display for TokenWidth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Self::U16 => "u16",
            Self::U32 => "u32",
        })
    }
}

impl TokenWidth {
    pub fn for_vocab(vocab_size: usize) -> Result<Self, DataError> {
        match vocab_size {
            0..=65536 => Ok(Self::U16),
            n if n as u64 <= 1 << 32 => Ok(Self::U32),
            n => Err(DataError::VocabTooLarge {
                vocab_size: n,
                bits: 32,
            }),
        }
    }

    pub fn bytes(self) -> usize {
        match self {
            Self::U16 => 2,
            Self::U32 => 4,
        }
    }

    pub fn max_vocab(self) -> u64 {
        match self {
            Self::U16 => 1 << 16,
            Self::U32 => 1 << 32,
        }
    }
}

/// `meta.json`: what was prepared, from what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub tokenizer: TokenizerKind,
    pub vocab_size: usize,
    pub dtype: TokenWidth,
    pub train_tokens: u64,
    pub val_tokens: u64,
    /// The id that ends each story, when the corpus has several.
    pub end_of_text: Option<u32>,
    /// File name of the corpus.
    pub source: String,
    pub source_sha256: String,
    /// File name of the separate validation corpus, if one was given.
    #[serde(default)]
    pub valid_source: Option<String>,
    /// With stories held out of the corpus ([`crate::Corpus::hold_out`]): their period, and
    /// the tokens of the test part (`test.bin`); `val.bin` is then the selection part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_tokens: Option<u64>,
}

impl Meta {
    pub fn read(dir: &Path) -> Result<Meta, DataError> {
        let path = dir.join(META_FILE);
        let text = std::fs::read_to_string(&path).map_err(|error| DataError::Read {
            path: path.clone(),
            error,
        })?;
        let meta: Meta = serde_json::from_str(&text).map_err(|e| DataError::Meta {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if meta.vocab_size as u64 > meta.dtype.max_vocab() {
            return Err(DataError::VocabTooLarge {
                vocab_size: meta.vocab_size,
                bits: 8 * meta.dtype.bytes() as u32,
            });
        }
        Ok(meta)
    }
}

pub(crate) fn token_bytes(ids: &[u32], width: TokenWidth) -> Vec<u8> {
    match width {
        TokenWidth::U16 => ids.iter().flat_map(|&i| (i as u16).to_le_bytes()).collect(),
        TokenWidth::U32 => ids.iter().flat_map(|&i| i.to_le_bytes()).collect(),
    }
}
