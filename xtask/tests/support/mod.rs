//! What xtask's command tests share: the workspace helpers and running the binary.

#![allow(dead_code)]

#[path = "../../../crates/mosaic-data/tests/common/mod.rs"]
pub mod common;

use std::process::{Command, Output};

/// `cargo xtask ARGS`, from the workspace root.
pub fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(common::workspace_root())
        .output()
        .unwrap()
}
