//! `cargo xtask reference`: run each recorded input through our model, on the CPU backend (or
//! the one `--device` names) in eval mode, and compare with what the official PyTorch code
//! produced.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use burn::tensor::{Device, Tensor};
use mosaic_models::{TensorFile, cross_entropy, describe, device_from_name, load_official};

/// Largest accepted absolute error of any logit, by default (`--tolerance` changes it: GPU
/// backends sum in other orders, and the GPU check accepts 1e-3).
pub const LOGITS_TOLERANCE: f32 = 1e-4;
/// Largest accepted absolute error of the mean loss, as a fraction of the logits' tolerance.
const LOSS_FRACTION: f32 = 0.1;

const SHIPPED_DIR: &str = "datasets/reference";

enum Outcome {
    Match,
    Mismatch,
    /// The file could not be used; the message says why.
    Unusable,
}

pub fn run(files: Vec<PathBuf>, device: &str, tolerance: f32) -> ExitCode {
    let files = if files.is_empty() {
        shipped()
    } else {
        Ok(files)
    };
    let files = match files {
        Ok(files) => files,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let device = match device_from_name(device) {
        Ok(device) => device,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if tolerance.is_nan() || tolerance <= 0.0 {
        eprintln!("error: --tolerance must be a positive number, got {tolerance}");
        return ExitCode::from(2);
    }
    println!("device: {}", describe(&device));
    let mut worst = 0u8;
    for file in &files {
        let outcome = match check(file, &device, tolerance) {
            Ok(true) => Outcome::Match,
            Ok(false) => Outcome::Mismatch,
            Err(e) => {
                eprintln!("error: {e:#}");
                Outcome::Unusable
            }
        };
        worst = worst.max(match outcome {
            Outcome::Match => 0,
            Outcome::Mismatch => 1,
            Outcome::Unusable => 2,
        });
    }
    ExitCode::from(worst)
}

fn shipped() -> Result<Vec<PathBuf>> {
    // Relative to the workspace root when run from there (as `cargo xtask` usually is), so the
    // report shows short paths.
    let dir = match Path::new(SHIPPED_DIR).is_dir() {
        true => PathBuf::from(SHIPPED_DIR),
        false => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(SHIPPED_DIR),
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("{}: cannot list the shipped reference files", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    anyhow::ensure!(
        !files.is_empty(),
        "{}: no .safetensors files",
        dir.display()
    );
    Ok(files)
}

/// Prints the comparison for one file; `Ok(false)` when an error exceeds its tolerance.
fn check(path: &Path, device: &Device, tolerance: f32) -> Result<bool> {
    let loss_tolerance = tolerance * LOSS_FRACTION;
    let model = load_official(path, device)?;
    let file = TensorFile::open(path)?;
    let ids = file.int::<2>("ref.input_ids", device)?;
    let targets = file.int::<2>("ref.targets", device)?;
    let expected_logits = file.float_any::<3>("ref.logits", device)?;
    let expected_loss = file.float_any::<1>("ref.loss", device)?;

    let out = model
        .forward(ids.clone())
        .with_context(|| format!("{}: ref.input_ids", path.display()))?;
    anyhow::ensure!(
        out.logits.dims() == expected_logits.dims(),
        "{}: tensor `ref.logits` has shape {:?}, the model gives {:?}",
        path.display(),
        expected_logits.dims(),
        out.logits.dims()
    );
    let [b, t] = ids.dims();
    println!(
        "{} ({}, batch {b}, {t} tokens)",
        path.display(),
        model.kind()
    );

    let mut first_divergent = None;
    for (i, hidden) in out.hidden.iter().enumerate() {
        let name = format!("ref.hidden.{i}");
        if !file.contains(&name) {
            continue;
        }
        let err = max_abs_err(hidden.clone(), file.float_any::<3>(&name, device)?);
        println!("  {name:<14} max |err| {err:.3e}");
        if err > tolerance && first_divergent.is_none() {
            first_divergent = Some(i);
        }
    }
    let logits_err = max_abs_err(out.logits.clone(), expected_logits);
    let loss_err = max_abs_err(cross_entropy(out.logits, targets), expected_loss);
    println!(
        "  {:<14} max |err| {logits_err:.3e}  (tolerance {tolerance:.0e})",
        "ref.logits"
    );
    println!(
        "  {:<14}     |err| {loss_err:.3e}  (tolerance {loss_tolerance:.0e})",
        "ref.loss"
    );

    let ok = logits_err <= tolerance && loss_err <= loss_tolerance;
    if ok {
        println!("  ok");
    } else {
        let place = match first_divergent {
            Some(i) => format!("block {i} is the first to diverge (ref.hidden.{i})"),
            None if out
                .hidden
                .iter()
                .enumerate()
                .any(|(i, _)| file.contains(&format!("ref.hidden.{i}"))) =>
            {
                "every recorded block matches: the divergence is in the final LayerNorm or the head"
                    .into()
            }
            None => "the file records no hidden states to locate the divergence".into(),
        };
        println!("  MISMATCH in {}: {place}", path.display());
    }
    Ok(ok)
}

fn max_abs_err<const D: usize>(ours: Tensor<D>, theirs: Tensor<D>) -> f32 {
    let err: f32 = (ours - theirs).abs().max().into_scalar();
    if err.is_nan() { f32::INFINITY } else { err }
}
