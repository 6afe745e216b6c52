//! A tiny run on tiny-shakespeare, shared by the training tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use std::process::{Command, Output};

use mosaic_data::{Meta, PrepareOptions, TokenizerKind, prepare};
use mosaic_train::RunConfig;

/// Loads a run config as `mosaic train` does, with `--set` overrides.
pub fn load(path: &Path, overrides: &[&str]) -> RunConfig {
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    RunConfig::load(path, &overrides, |d| {
        Meta::read(d)
            .map(|m| m.vocab_size)
            .map_err(|e| e.to_string())
    })
    .unwrap()
}

/// Runs the `mosaic` binary from the workspace root.
pub fn mosaic(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mosaic"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .output()
        .unwrap()
}

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mosaic-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// tiny-shakespeare prepared by character into `dir/data`.
pub fn shakespeare(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    let input =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/text/tinyshakespeare.txt");
    prepare(
        &PrepareOptions {
            tokenizer: TokenizerKind::Char,
            input,
            valid: None,
            vocab_size: None,
            out: data.clone(),
        },
        &|_, _| {},
    )
    .unwrap();
    data
}

/// A config file for a small model of `kind` on `data`, writing to `dir/run`.
pub fn config_file(dir: &Path, data: &Path, kind: &str, extra: &str) -> PathBuf {
    let model = match kind {
        "gpt" => {
            "kind = \"gpt\"\nn_layer = 2\nn_head = 2\nn_embd = 32\nblock_size = 16\ndropout = 0.1"
        }
        _ => {
            "kind = \"memory_mosaic\"\nn_layer = 2\nn_head = 2\nn_embd = 32\nblock_size = 16\npmem_size = 112\nattn_dropout = 0.05\nresid_dropout = 0.05"
        }
    };
    let text = format!(
        "[model]\n{model}\n\n[data]\ndir = {data:?}\n\n[train]\nbatch_size = 4\nmax_iters = 30\nlearning_rate = 3e-3\nmin_lr = 3e-4\nwarmup_iters = 5\neval_interval = 10\neval_iters = 4\nlog_interval = 5\nout_dir = {out:?}\n{extra}",
        out = dir.join("run"),
    );
    let path = dir.join(format!("{kind}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}
