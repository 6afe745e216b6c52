//! Data for Memory Mosaics experiments: text corpora, tokenizers, token files and samplers,
//! as nanoGPT's `prepare.py` and data loader provide them for the paper's runs.
//!
//! - [`corpus`]: text files as a list of stories (plain text, `<|endoftext|>`-separated,
//!   JSON lines).
//! - [`tokenizer`]: the [`Tokenizer`] trait and its three kinds (character, trained byte-level
//!   BPE, exact GPT-2 BPE).
//! - [`prepare`]: corpus -> `train.bin`, `val.bin`, `meta.json`.
//! - [`fingerprint`]: hashes of a prepared directory's tokenizer and token ids.
//! - [`files`]: the prepared-data format (`meta.json`, token files).
//! - [`atomic`]: writes a crash cannot leave half done, of files and directories.
//! - [`token_file`]: memory-mapped token files.
//! - [`sampler`]: seeded random windows for training, sequential windows for evaluation.
//! - [`three_moons`]: the paper's three-moons toy.
//!
//! ```
//! use mosaic_data::tokenizer::CharTokenizer;
//! use mosaic_data::{Corpus, Tokenizer};
//!
//! // nanoGPT's character tokenizer: the sorted characters of the corpus.
//! let corpus = Corpus::from_separated_text("to be or not to be");
//! let tokenizer = CharTokenizer::from_corpus(&corpus, false);
//! assert_eq!(tokenizer.vocab_size(), 7); // ' ', b, e, n, o, r, t
//! let ids = tokenizer.encode("be not")?;
//! assert_eq!(ids, [1, 2, 0, 3, 4, 6]);
//! assert_eq!(tokenizer.decode(&ids)?, "be not");
//! // Text outside the vocabulary is an error that names the characters.
//! assert!(tokenizer.encode("xyz").is_err());
//! # Ok::<(), mosaic_data::DataError>(())
//! ```

pub mod atomic;
pub mod corpus;
pub mod error;
pub mod files;
pub mod fingerprint;
pub mod prepare;
pub mod regbench;
pub mod sampler;
pub mod three_moons;
pub mod token_file;
pub mod tokenizer;

pub use corpus::{Corpus, HeldOut};
pub use error::DataError;
pub use files::Meta;
pub use fingerprint::{data_sha256, sha256_hex, tokenizer_sha256};
pub use prepare::{PrepareOptions, prepare, prepare_once};
pub use sampler::{Batch, RandomWindows, SequentialWindows};
pub use token_file::{Split, TokenFile};
pub use tokenizer::{Tokenizer, TokenizerKind, load_tokenizer};

/// The separator between stories, GPT-2's end-of-text token.
pub const END_OF_TEXT: &str = "<|endoftext|>";
