//! `mosaic export`: a checkpoint in the official PyTorch implementation's format.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use mosaic_models::{EXPORT_CONFIG, EXPORT_WEIGHTS, export_official};
use mosaic_train::Checkpoint;

use crate::path;

/// Formats a checkpoint can be written in.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// The official code's: `model.safetensors` (its `state_dict`) and `config.json` (the
    /// model's constructor arguments).
    Official,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// A run's out_dir, or its checkpoint directory.
    #[arg(long, value_parser = path)]
    checkpoint: PathBuf,
    #[arg(long, value_enum, default_value = "official")]
    format: Format,
    /// The directory to write; files of the same names there are replaced.
    #[arg(long, value_parser = path)]
    out: PathBuf,
}

pub fn export(args: &ExportArgs) -> Result<()> {
    if args.out.is_file() {
        bail!(
            "{}: a file, not a directory: give a directory for --out",
            args.out.display()
        );
    }
    let checkpoint = Checkpoint::open(&args.checkpoint, &Device::flex())?;
    let Format::Official = args.format;
    export_official(checkpoint.model(), &checkpoint.config().model, &args.out)
        .with_context(|| format!("exporting {}", args.checkpoint.display()))?;
    println!(
        "{}: {} and {} (the official {} at step {})",
        args.out.display(),
        EXPORT_WEIGHTS,
        EXPORT_CONFIG,
        checkpoint.model().kind(),
        checkpoint.state().step
    );
    Ok(())
}
