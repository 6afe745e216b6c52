//! Helpers every crate's tests use; the other crates include this file by path (`#[path]`),
//! so that it is written once.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

/// The workspace root, found from the running test crate's manifest directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|dir| dir.join("datasets").is_dir() && dir.join("crates").is_dir())
        .expect("the tests run inside the workspace")
        .to_path_buf()
}

/// A shipped corpus under `datasets/text/`.
pub fn corpus_path(name: &str) -> PathBuf {
    workspace_root().join("datasets/text").join(name)
}

/// An empty directory of its own for one test, under the system's temporary directory.
pub fn scratch(name: &str) -> PathBuf {
    let crate_name = env!("CARGO_PKG_NAME");
    let dir = std::env::temp_dir().join(format!("{crate_name}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A command refused bad input as a user should see it: exit status 2, `expected` in its
/// message, no panic.
pub fn assert_refused(output: &Output, expected: &str) {
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains(expected), "expected `{expected}` in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}
