use std::path::PathBuf;

/// Everything that can go wrong turning text into batches. Each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{}: cannot read: {error}", .path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: cannot write: {error}", .path.display())]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: the corpus is empty", .path.display())]
    Empty { path: PathBuf },
    #[error("{}: not UTF-8 text (invalid byte at offset {offset}); convert it to UTF-8 first", .path.display())]
    NotUtf8 { path: PathBuf, offset: usize },
    #[error("{}: line {line}: {reason}", .path.display())]
    JsonLine {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{}: tokenizer file does not parse: {reason}", .path.display())]
    TokenizerFile { path: PathBuf, reason: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("text has characters outside the character vocabulary: {0:?}")]
    UnknownChars(String),
    #[error(
        "vocabulary of {vocab_size} tokens does not fit the token file format ({bits}-bit ids)"
    )]
    VocabTooLarge { vocab_size: usize, bits: u32 },
    #[error(
        "{}: holds {bytes} bytes, but meta.json says {tokens} tokens of {width} bytes; \
         the data directory is inconsistent, run `mosaic prepare` again",
        .path.display()
    )]
    SizeMismatch {
        path: PathBuf,
        bytes: u64,
        tokens: u64,
        width: u64,
    },
    #[error("{}: {reason}", .path.display())]
    Meta { path: PathBuf, reason: String },
    #[error(
        "{}: holds prepared data already; it is kept unless replacing it is asked for (force)",
        .path.display()
    )]
    Exists { path: PathBuf },
    #[error("{0}")]
    Invalid(String),
}
