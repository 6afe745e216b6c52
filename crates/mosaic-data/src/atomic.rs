//! Writes that a crash cannot leave half done: a file is the old one or the complete new one
//! ([`write_atomically`], [`Staged`] for several renamed together), a directory the old one or
//! the complete new one ([`replace_dir`]). Prepared data, checkpoints and results all write
//! through here.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::DataError;

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so
/// that `path` is either the old file or the complete new one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    let mut staged = Staged::default();
    staged.write(path, bytes)?;
    staged.commit()
}

/// Files written under temporary names, renamed into place together by `commit`; dropped
/// uncommitted, the temporaries are removed.
#[derive(Default)]
pub struct Staged {
    files: Vec<(PathBuf, PathBuf)>,
}

impl Staged {
    pub fn write(&mut self, path: &Path, bytes: &[u8]) -> Result<(), DataError> {
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        let err = |error| DataError::Write {
            path: path.to_path_buf(),
            error,
        };
        self.files.push((tmp.clone(), path.to_path_buf()));
        let mut file = std::fs::File::create(&tmp).map_err(err)?;
        file.write_all(bytes).map_err(err)?;
        file.sync_all().map_err(err)
    }

    pub fn commit(mut self) -> Result<(), DataError> {
        for (tmp, path) in std::mem::take(&mut self.files) {
            std::fs::rename(&tmp, &path).map_err(|error| DataError::Write { path, error })?;
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        for (tmp, _) in &self.files {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// Replaces the directory `dir` (or creates it) by one `fill` writes: built beside it, then
/// swapped in by two renames, so that `dir` is the old directory or the complete new one (a
/// crash between the renames leaves the old one under `.NAME.old-PID` beside it).
pub fn replace_dir<E: From<DataError>>(
    dir: &Path,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let name = dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let pid = std::process::id();
    let new = dir.with_file_name(format!(".{name}.new-{pid}"));
    let old = dir.with_file_name(format!(".{name}.old-{pid}"));
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |error| DataError::Write { path, error }
    };
    let _ = std::fs::remove_dir_all(&new);
    if let Err(e) = fill(&new) {
        let _ = std::fs::remove_dir_all(&new);
        return Err(e);
    }
    let existed = dir.exists();
    if existed {
        std::fs::rename(dir, &old).map_err(write_err(dir))?;
    }
    if let Err(e) = std::fs::rename(&new, dir) {
        if existed {
            let _ = std::fs::rename(&old, dir);
        }
        let _ = std::fs::remove_dir_all(&new);
        return Err(write_err(dir)(e).into());
    }
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}
