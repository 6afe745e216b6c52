//! Project tasks, run as `cargo xtask <task>`.

mod reference;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.task {
        Task::Reference { files } => reference::run(files),
    }
}
