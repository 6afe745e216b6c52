//! Project tasks, run as `cargo xtask <task>`.

mod bench;
mod experiment;
mod reference;
mod regbench;
mod screenshot;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mosaic_models::DEVICE_ENV;

/// mimalloc keeps freed memory for reuse: a training step allocates and frees its tensors every
/// step, and glibc's allocator handed the large ones back to the kernel each time, so every
/// step paid page faults and zeroing again (measured in docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Tasks of the mosaic workspace")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Check our models against outputs recorded from the official PyTorch implementation.
    ///
    /// Each FILE is a safetensors file with an official state_dict, `ref.*` inputs and
    /// outputs, and the model configuration as JSON in its metadata key `config`. Exit status:
    /// 0 all match, 1 a mismatch, 2 a file that cannot be used.
    Reference {
        /// Files to check; by default the ones shipped in datasets/reference/.
        files: Vec<std::path::PathBuf>,
        /// Backend to run on: flex (the CPU), wgpu or cuda (built with that cargo feature).
        #[arg(long, env = DEVICE_ENV, default_value = "flex")]
        device: String,
        /// Largest accepted error of a logit (the loss's: a tenth of it).
        #[arg(long, default_value_t = reference::LOGITS_TOLERANCE)]
        tolerance: f32,
    },
    /// Measure speed: `prepare` (data), `train` (training steps), `generate` (cached
    /// generation), `leaky` (leaky average).
    #[command(subcommand)]
    Bench(bench::Bench),
    /// Check the RegBench generator and metrics with the oracle and n-gram predictors.
    RegbenchSelftest {
        /// Sequences generated and scored.
        #[arg(long, default_value_t = 500)]
        sequences: usize,
        /// Seed of the generator.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Regenerate the README's picture of `mosaic explain` from the quickstart model, through
    /// headless Chromium.
    Screenshot {
        /// The picture to write.
        #[arg(long, default_value = "docs/images/explain.png")]
        out: std::path::PathBuf,
    },
    /// Reproduce a paper experiment; `--list` shows them with their expected CPU time.
    Experiment {
        /// Experiment name (see --list), or the path of an experiment file.
        name: Option<String>,
        /// List the experiments with their measured CPU time, and run none.
        #[arg(long)]
        list: bool,
        #[command(flatten)]
        options: experiment::Options,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.task {
        Task::Reference {
            files,
            device,
            tolerance,
        } => reference::run(files, &device, tolerance),
        Task::Experiment {
            name,
            list,
            options,
        } => exit_code(match (list, name) {
            (true, _) => experiment::list(),
            (false, Some(name)) => experiment::run(&name, &options),
            (false, None) => Err(anyhow::anyhow!("name an experiment, or pass --list")),
        }),
        Task::RegbenchSelftest { sequences, seed } => {
            regbench::selftest(sequences, seed);
            ExitCode::SUCCESS
        }
        Task::Bench(what) => exit_code(bench::run(what)),
        Task::Screenshot { out } => exit_code(screenshot::run(&out)),
    }
}

/// Success, or the error on one line and exit status 2.
fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
