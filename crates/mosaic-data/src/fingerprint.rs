//! Hashes that say what a prepared directory holds: its tokenizer (a checkpoint keeps it, and
//! other data is accepted for the checkpoint only with the same one) and all of its token ids
//! (an experiment's result records it, so that a result made from other data is not reused).

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::DataError;
use crate::files::{Meta, TEST_FILE, TRAIN_FILE, VAL_FILE};
use crate::tokenizer::{TokenizerKind, tokenizer_file};

/// SHA-256 of `bytes`, in hex: how every hash of this crate and of the experiments' results is
/// written.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// SHA-256 of the tokenizer's kind and its saved file (GPT-2's ships in the code: its kind).
pub fn tokenizer_sha256(dir: &Path, kind: TokenizerKind) -> Result<String, DataError> {
    let mut hash = Sha256::new();
    hash.update(format!("{kind}\n"));
    if let Some(name) = tokenizer_file(kind) {
        hash_file(&mut hash, &dir.join(name))?;
    }
    Ok(format!("{:x}", hash.finalize()))
}

/// SHA-256 of the tokenizer's hash and every token file: equal for two directories exactly
/// when a model would see the same ids, with the same meaning, from either.
pub fn data_sha256(dir: &Path) -> Result<String, DataError> {
    let meta = Meta::read(dir)?;
    let mut hash = Sha256::new();
    hash.update(tokenizer_sha256(dir, meta.tokenizer)?);
    for name in [TRAIN_FILE, VAL_FILE] {
        hash_file(&mut hash, &dir.join(name))?;
    }
    if meta.test_tokens.is_some() {
        hash_file(&mut hash, &dir.join(TEST_FILE))?;
    }
    Ok(format!("{:x}", hash.finalize()))
}

/// Streams the file through `hash`: token files can be larger than memory.
fn hash_file(hash: &mut Sha256, path: &Path) -> Result<(), DataError> {
    let err = |error| DataError::Read {
        path: path.to_path_buf(),
        error,
    };
    let mut file = std::fs::File::open(path).map_err(err)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf).map_err(err)? {
            0 => return Ok(()),
            n => hash.update(&buf[..n]),
        }
    }
}
