//! `mosaic explain`: a page that shows what a trained model reads in a text.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use mosaic_train::Checkpoint;
use mosaic_train::explain::{ModelInfo, explain as read_text, render};

use crate::path;

#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("input").required(true).args(["prompt", "text"]))]
pub struct ExplainArgs {
    /// A run's out_dir, or its checkpoint directory.
    #[arg(long, value_parser = path)]
    checkpoint: PathBuf,
    /// The text to read.
    #[arg(long)]
    prompt: Option<String>,
    /// A file holding the text to read (its first block of tokens is shown).
    #[arg(long, value_parser = path)]
    text: Option<PathBuf>,
    /// The page to write: one HTML file that opens offline.
    #[arg(long, value_parser = path)]
    out: PathBuf,
}

/// The output is checked writable, the text read and tokenized, before the model runs.
pub fn explain(args: &ExplainArgs) -> Result<()> {
    check_writable(&args.out)?;
    let text = match (&args.prompt, &args.text) {
        (Some(p), _) => p.clone(),
        (None, Some(file)) => std::fs::read_to_string(file)
            .with_context(|| format!("{}: cannot read the text (UTF-8)", file.display()))?,
        (None, None) => bail!("give --prompt TEXT or --text FILE"),
    };
    let checkpoint = Checkpoint::open(&args.checkpoint, &Device::flex())?;
    let (_, tokenizer) = checkpoint.tokenizer()?;
    let ids = tokenizer.encode(&text).with_context(|| {
        format!(
            "the text cannot be read with this checkpoint's {} tokenizer",
            tokenizer.kind()
        )
    })?;
    let model = checkpoint.model();
    let info = ModelInfo::of(&checkpoint)?;
    let explanation = read_text(model, &ids, tokenizer.as_ref(), info)?;
    mosaic_data::atomic::write_atomically(&args.out, render(&explanation).as_bytes())?;
    if let Some(note) = &explanation.windowed {
        eprintln!("note: {note}");
    }
    println!(
        "{}: {} tokens, {} layers; open it in a browser",
        args.out.display(),
        explanation.tokens.len(),
        explanation.layers.len()
    );
    Ok(())
}

/// The page's directory exists and takes a new file: found before the model runs.
fn check_writable(out: &Path) -> Result<()> {
    if out.is_dir() {
        bail!(
            "{}: a directory; give the page's file name (page.html)",
            out.display()
        );
    }
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let probe = dir.join(format!(".mosaic-explain-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .with_context(|| format!("{}: cannot write the page there", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}
