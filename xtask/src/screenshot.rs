//! `cargo xtask screenshot`: the README's picture of `mosaic explain`, regenerated from the
//! quickstart model (`cargo xtask experiment quickstart` first) through headless Chromium.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use mosaic_train::Checkpoint;
use mosaic_train::explain::{ModelInfo, explain, render};

/// The quickstart's checkpoint, where the experiment writes it.
const CHECKPOINT: &str = "runs/experiments/quickstart/mosaic";
/// The text the picture shows.
pub const PROMPT: &str = "Once upon a time, there was a little girl named Lily. She loved to \
    play with her ball. One day, Lily saw a big dog. The dog wanted to play with Lily's ball \
    too. Lily was happy to share her ball with the dog.";

pub fn run(out: &Path) -> Result<()> {
    if !Path::new(CHECKPOINT).is_dir() {
        bail!("no quickstart model in {CHECKPOINT}: run `cargo xtask experiment quickstart` first");
    }
    let checkpoint = Checkpoint::open(Path::new(CHECKPOINT), &Device::flex())?;
    let (_, tokenizer) = checkpoint.tokenizer()?;
    let model = checkpoint.model();
    let info = ModelInfo::of(&checkpoint)?;
    let ids = tokenizer.encode(PROMPT)?;
    let page = render(&explain(model, &ids, tokenizer.as_ref(), info)?);
    let html = std::env::temp_dir().join(format!("mosaic-screenshot-{}.html", std::process::id()));
    std::fs::write(&html, page).with_context(|| format!("{}: cannot write", html.display()))?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    let absolute = std::env::current_dir()?.join(out);
    let status = Command::new("chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .args(["--window-size=1100,1050", "--virtual-time-budget=3000"])
        .arg(format!("--screenshot={}", absolute.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .context("cannot run chromium: install it (Debian: apt install chromium)")?;
    let _ = std::fs::remove_file(&html);
    if !absolute.is_file() {
        bail!(
            "chromium wrote no screenshot: {}",
            String::from_utf8_lossy(&status.stderr)
        );
    }
    println!("wrote {}", out.display());
    Ok(())
}
