//! A prepared split, memory-mapped: a corpus of hundreds of millions of tokens is paged in as
//! the sampler touches it, never loaded whole.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use crate::error::DataError;
use crate::files::{META_FILE, Meta, TEST_FILE, TRAIN_FILE, TokenWidth, VAL_FILE};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    /// The validation split; with stories held out, the selection part.
    Val,
    /// The test part of held-out stories, where the data has one.
    Test,
}

/// The token ids of one split; cheap to clone (the mapping is shared).
#[derive(Clone)]
pub struct TokenFile {
    storage: Storage,
    len: usize,
    path: PathBuf,
}

#[derive(Clone)]
enum Storage {
    Mapped {
        map: Arc<Mmap>,
        width: TokenWidth,
    },
    /// Ids held in memory: text tokenized on the spot (an out-of-distribution corpus).
    Owned(Arc<Vec<u32>>),
}

impl TokenFile {
    /// Opens `split` of the data directory `dir`, checking the file against `meta.json`.
    pub fn open(dir: &Path, split: Split) -> Result<TokenFile, DataError> {
        let meta = Meta::read(dir)?;
        let (name, tokens) = match split {
            Split::Train => (TRAIN_FILE, meta.train_tokens),
            Split::Val => (VAL_FILE, meta.val_tokens),
            Split::Test => match meta.test_tokens {
                Some(tokens) => (TEST_FILE, tokens),
                None => {
                    return Err(DataError::Meta {
                        path: dir.join(META_FILE),
                        reason: "no test part: the data was prepared without held-out stories \
                                 (prepare it with a holdout)"
                            .into(),
                    });
                }
            },
        };
        let path = dir.join(name);
        let file = std::fs::File::open(&path).map_err(|error| DataError::Read {
            path: path.clone(),
            error,
        })?;
        // Safety: the file is only read; a concurrent writer replaces it by rename, which
        // leaves this mapping on the old inode.
        let map = unsafe { Mmap::map(&file) }.map_err(|error| DataError::Read {
            path: path.clone(),
            error,
        })?;
        let width = meta.dtype.bytes() as u64;
        if map.len() as u64 != tokens * width {
            return Err(DataError::SizeMismatch {
                path,
                bytes: map.len() as u64,
                tokens,
                width,
            });
        }
        if tokens == 0 {
            return Err(DataError::Meta {
                path: dir.join(META_FILE),
                reason: format!("the {name} split holds no tokens"),
            });
        }
        Ok(TokenFile {
            storage: Storage::Mapped {
                map: Arc::new(map),
                width: meta.dtype,
            },
            len: tokens as usize,
            path,
        })
    }

    /// Ids already in memory; `origin` names them in messages.
    pub fn from_ids(ids: Vec<u32>, origin: &Path) -> TokenFile {
        TokenFile {
            len: ids.len(),
            storage: Storage::Owned(Arc::new(ids)),
            path: origin.to_path_buf(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The ids `start..start + n`. Panics past the end: callers (the samplers) keep in range.
    pub fn read(&self, start: usize, n: usize, out: &mut Vec<u32>) {
        assert!(
            start + n <= self.len,
            "window {start}..{} past the end {}",
            start + n,
            self.len
        );
        match &self.storage {
            Storage::Owned(ids) => out.extend_from_slice(&ids[start..start + n]),
            Storage::Mapped {
                map,
                width: TokenWidth::U16,
            } => out.extend(
                map[2 * start..2 * (start + n)]
                    .chunks_exact(2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]) as u32),
            ),
            Storage::Mapped {
                map,
                width: TokenWidth::U32,
            } => out.extend(
                map[4 * start..4 * (start + n)]
                    .chunks_exact(4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            ),
        }
    }
}
