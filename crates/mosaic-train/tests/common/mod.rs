//! A tiny run on tiny-shakespeare, shared by the training tests.

#![allow(dead_code, unused_imports)]

#[path = "../../../mosaic-data/tests/common/mod.rs"]
mod workspace;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use mosaic_data::{Meta, PrepareOptions, TokenizerKind, prepare};
use mosaic_models::LanguageModel;
use mosaic_train::RunConfig;
pub use workspace::{assert_refused, corpus_path, scratch, workspace_root};

/// Loads a run config as `mosaic train` does, with `--set` overrides.
pub fn load(path: &Path, overrides: &[&str]) -> RunConfig {
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    RunConfig::load(path, &overrides, |d| Meta::read(d).map(|m| m.vocab_size)).unwrap()
}

/// Runs the `mosaic` binary from the workspace root.
pub fn mosaic(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mosaic"))
        .args(args)
        .current_dir(workspace_root())
        .output()
        .unwrap()
}

/// `mosaic train --config CONFIG --quiet` with a `--set` for each of `sets`.
pub fn train(config: &Path, sets: &[&str], more: &[&str]) -> Output {
    let mut args = vec!["train", "--config", config.to_str().unwrap(), "--quiet"];
    for set in sets {
        args.extend(["--set", set]);
    }
    args.extend(more);
    mosaic(&args)
}

/// `mosaic ARGS` refuses as a user should see it (see [`assert_refused`]).
pub fn refused(args: &[&str], expected: &str) {
    assert_refused(&mosaic(args), expected);
}

/// The largest `|a - b|` over every parameter's gradient, and the largest `|a|`.
pub fn gradient_difference(
    model: &LanguageModel,
    a: &GradientsParams,
    b: &GradientsParams,
) -> (f64, f64) {
    struct Diff<'a> {
        a: &'a GradientsParams,
        b: &'a GradientsParams,
        diff: f64,
        size: f64,
        seen: usize,
    }
    impl ModuleVisitor for Diff<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let x = self.a.get::<D>(param.id).expect("a gradient in a");
            let y = self.b.get::<D>(param.id).expect("a gradient in b");
            self.diff = self
                .diff
                .max((x.clone() - y).abs().max().into_scalar::<f64>());
            self.size = self.size.max(x.abs().max().into_scalar::<f64>());
            self.seen += 1;
        }
    }
    let mut diff = Diff {
        a,
        b,
        diff: 0.0,
        size: 0.0,
        seen: 0,
    };
    model.visit(&mut diff);
    assert!(diff.seen > 3, "only {} gradients compared", diff.seen);
    (diff.diff, diff.size)
}

/// tiny-shakespeare prepared by character into `dir/data`.
pub fn shakespeare(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    let input = corpus_path("tinyshakespeare.txt");
    prepare(
        &PrepareOptions {
            tokenizer: TokenizerKind::Char,
            input,
            valid: None,
            vocab_size: None,
            out: data.clone(),
            force: false,
            holdout: None,
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
