//! Three tokenizers behind one trait: character level (nanoGPT's shakespeare_char), byte-level
//! BPE trained on the corpus (Hugging Face `tokenizers`), and GPT-2's exact BPE, the paper's
//! (`tiktoken-rs`, whose ranks ship inside the crate).

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, TokenizerBuilder};

use crate::END_OF_TEXT;
use crate::atomic::write_atomically;
use crate::corpus::Corpus;
use crate::error::DataError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenizerKind {
    Char,
    Bpe,
    Gpt2,
}

impl std::fmt::Display for TokenizerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Self::Char => "char",
            Self::Bpe => "bpe",
            Self::Gpt2 => "gpt2",
        })
    }
}

impl std::str::FromStr for TokenizerKind {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self, DataError> {
        match s {
            "char" => Ok(Self::Char),
            "bpe" => Ok(Self::Bpe),
            "gpt2" => Ok(Self::Gpt2),
            _ => Err(DataError::Invalid(format!(
                "unknown tokenizer `{s}` (known: char, bpe, gpt2)"
            ))),
        }
    }
}

pub trait Tokenizer: Send + Sync {
    fn kind(&self) -> TokenizerKind;
    fn vocab_size(&self) -> usize;
    fn encode(&self, text: &str) -> Result<Vec<u32>, DataError>;
    fn decode(&self, ids: &[u32]) -> Result<String, DataError>;
    /// The id that separates stories, if the vocabulary has one.
    fn end_of_text(&self) -> Option<u32>;
    /// Writes into `dir` what [`load_tokenizer`] needs to rebuild this tokenizer.
    fn save(&self, dir: &Path) -> Result<(), DataError>;
}

/// The file a trained BPE tokenizer is saved to, beside the prepared data.
pub const BPE_FILE: &str = "tokenizer.json";
/// The file a character vocabulary is saved to.
pub const CHAR_FILE: &str = "vocab.json";

/// The file a tokenizer of `kind` is saved to; GPT-2's ships in the code and needs none.
pub fn tokenizer_file(kind: TokenizerKind) -> Option<&'static str> {
    match kind {
        TokenizerKind::Char => Some(CHAR_FILE),
        TokenizerKind::Bpe => Some(BPE_FILE),
        TokenizerKind::Gpt2 => None,
    }
}

/// Rebuilds the tokenizer `mosaic prepare` saved in `dir`.
pub fn load_tokenizer(dir: &Path, kind: TokenizerKind) -> Result<Box<dyn Tokenizer>, DataError> {
    Ok(match kind {
        TokenizerKind::Char => Box::new(CharTokenizer::load(&dir.join(CHAR_FILE))?),
        TokenizerKind::Bpe => Box::new(BpeTokenizer::load(&dir.join(BPE_FILE))?),
        TokenizerKind::Gpt2 => Box::new(Gpt2Tokenizer::new()?),
    })
}

/// One id per character: the sorted set of the corpus' characters, plus `<|endoftext|>` as
/// the last id when asked for (a corpus of several stories).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CharTokenizer {
    chars: Vec<char>,
    end_of_text: bool,
    #[serde(skip)]
    index: HashMap<char, u32>,
}

impl CharTokenizer {
    /// The corpus' characters; `end_of_text` adds the separator id.
    pub fn from_corpus(corpus: &Corpus, end_of_text: bool) -> Self {
        let mut chars: Vec<char> = corpus.stories.iter().flat_map(|s| s.chars()).collect();
        chars.sort_unstable();
        chars.dedup();
        Self::new(chars, end_of_text)
    }

    pub fn new(chars: Vec<char>, end_of_text: bool) -> Self {
        let index = chars
            .iter()
            .enumerate()
            .map(|(i, &c)| (c, i as u32))
            .collect();
        Self {
            chars,
            end_of_text,
            index,
        }
    }

    pub fn load(path: &Path) -> Result<Self, DataError> {
        let text = std::fs::read_to_string(path).map_err(|error| DataError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let t: CharTokenizer =
            serde_json::from_str(&text).map_err(|e| DataError::TokenizerFile {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        Ok(Self::new(t.chars, t.end_of_text))
    }
}

impl Tokenizer for CharTokenizer {
    fn kind(&self) -> TokenizerKind {
        TokenizerKind::Char
    }

    fn vocab_size(&self) -> usize {
        self.chars.len() + usize::from(self.end_of_text)
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>, DataError> {
        let ids: Vec<Option<u32>> = text.chars().map(|c| self.index.get(&c).copied()).collect();
        if ids.iter().any(Option::is_none) {
            let mut unknown: Vec<char> = text
                .chars()
                .filter(|c| !self.index.contains_key(c))
                .collect();
            unknown.sort_unstable();
            unknown.dedup();
            return Err(DataError::UnknownChars(unknown.into_iter().collect()));
        }
        Ok(ids.into_iter().flatten().collect())
    }

    fn decode(&self, ids: &[u32]) -> Result<String, DataError> {
        ids.iter()
            .map(|&id| match self.chars.get(id as usize) {
                Some(c) => Ok(c.to_string()),
                None if self.end_of_text && id as usize == self.chars.len() => {
                    Ok(END_OF_TEXT.to_string())
                }
                None => Err(DataError::Tokenizer(format!(
                    "id {id} is outside the vocabulary of {}",
                    self.vocab_size()
                ))),
            })
            .collect()
    }

    fn end_of_text(&self) -> Option<u32> {
        self.end_of_text.then_some(self.chars.len() as u32)
    }

    fn save(&self, dir: &Path) -> Result<(), DataError> {
        let json = serde_json::to_vec(self).map_err(|e| DataError::Invalid(e.to_string()))?;
        write_atomically(&dir.join(CHAR_FILE), &json)
    }
}

/// Byte-level BPE trained on the corpus; `<|endoftext|>` is id 0. Every byte is in the base
/// alphabet, so any text encodes.
pub struct BpeTokenizer {
    inner: tokenizers::Tokenizer,
    end_of_text: u32,
}

impl BpeTokenizer {
    /// Trains a vocabulary of `vocab_size` tokens (at least 257: the end-of-text token and
    /// the 256 bytes) on the corpus.
    pub fn train(corpus: &Corpus, vocab_size: usize) -> Result<Self, DataError> {
        if vocab_size < 257 {
            return Err(DataError::Invalid(format!(
                "a byte-level BPE vocabulary needs at least 257 tokens, asked for {vocab_size}"
            )));
        }
        let err = |e: tokenizers::Error| DataError::Tokenizer(e.to_string());
        let mut trainer = BpeTrainerBuilder::new()
            .show_progress(false)
            .vocab_size(vocab_size)
            .min_frequency(0)
            .special_tokens(vec![AddedToken::from(END_OF_TEXT, true)])
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build();
        // No prefix space, so that decode(encode(text)) == text.
        let byte_level = ByteLevel::new(false, true, true);
        let mut tokenizer =
            TokenizerBuilder::<BPE, NormalizerWrapper, ByteLevel, ByteLevel, ByteLevel>::new()
                .with_model(BPE::default())
                .with_normalizer(None)
                .with_pre_tokenizer(Some(byte_level))
                .with_post_processor(Some(byte_level))
                .with_decoder(Some(byte_level))
                .build()
                .map_err(err)?;
        tokenizer
            .train(&mut trainer, corpus.stories.iter())
            .map_err(err)?;
        let json = tokenizer.to_string(false).map_err(err)?;
        let inner: tokenizers::Tokenizer = json.parse().map_err(err)?;
        Self::wrap(inner).map_err(DataError::Tokenizer)
    }

    pub fn load(path: &Path) -> Result<Self, DataError> {
        let bad = |reason: String| DataError::TokenizerFile {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|error| DataError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let inner: tokenizers::Tokenizer = text
            .parse()
            .map_err(|e: tokenizers::Error| bad(e.to_string()))?;
        Self::wrap(inner).map_err(bad)
    }

    fn wrap(inner: tokenizers::Tokenizer) -> Result<Self, String> {
        let end_of_text = inner
            .token_to_id(END_OF_TEXT)
            .ok_or_else(|| format!("no `{END_OF_TEXT}` token in the vocabulary"))?;
        Ok(Self { inner, end_of_text })
    }
}

impl Tokenizer for BpeTokenizer {
    fn kind(&self) -> TokenizerKind {
        TokenizerKind::Bpe
    }

    fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>, DataError> {
        let encoding = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| DataError::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    fn decode(&self, ids: &[u32]) -> Result<String, DataError> {
        self.inner
            .decode(ids, false)
            .map_err(|e| DataError::Tokenizer(e.to_string()))
    }

    fn end_of_text(&self) -> Option<u32> {
        Some(self.end_of_text)
    }

    fn save(&self, dir: &Path) -> Result<(), DataError> {
        let json = self
            .inner
            .to_string(false)
            .map_err(|e| DataError::Tokenizer(e.to_string()))?;
        write_atomically(&dir.join(BPE_FILE), json.as_bytes())
    }
}

/// GPT-2's BPE (tiktoken's `r50k_base`): 50257 ids, 50256 is `<|endoftext|>`.
pub struct Gpt2Tokenizer {
    bpe: tiktoken_rs::CoreBPE,
}

pub const GPT2_VOCAB_SIZE: usize = 50257;
pub const GPT2_END_OF_TEXT: u32 = 50256;

impl Gpt2Tokenizer {
    pub fn new() -> Result<Self, DataError> {
        let bpe = tiktoken_rs::r50k_base().map_err(|e| DataError::Tokenizer(e.to_string()))?;
        Ok(Self { bpe })
    }
}

impl Tokenizer for Gpt2Tokenizer {
    fn kind(&self) -> TokenizerKind {
        TokenizerKind::Gpt2
    }

    fn vocab_size(&self) -> usize {
        GPT2_VOCAB_SIZE
    }

    /// Ordinary text only: a literal `<|endoftext|>` in the text is encoded as characters,
    /// story boundaries are the caller's to mark.
    fn encode(&self, text: &str) -> Result<Vec<u32>, DataError> {
        Ok(self.bpe.encode_ordinary(text))
    }

    /// Bytes that do not form UTF-8 (a sample cut inside a character) become U+FFFD.
    fn decode(&self, ids: &[u32]) -> Result<String, DataError> {
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= GPT2_VOCAB_SIZE) {
            return Err(DataError::Tokenizer(format!(
                "id {bad} is outside GPT-2's vocabulary of {GPT2_VOCAB_SIZE}"
            )));
        }
        let bytes = self
            .bpe
            .decode_bytes(ids)
            .map_err(|e| DataError::Tokenizer(e.to_string()))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn end_of_text(&self) -> Option<u32> {
        Some(GPT2_END_OF_TEXT)
    }

    fn save(&self, _dir: &Path) -> Result<(), DataError> {
        Ok(())
    }
}
