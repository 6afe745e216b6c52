//! `mosaic eval`: a checkpoint on the whole validation split (or test part), and what else is
//! asked.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mosaic_data::{Split, TokenFile};
use mosaic_models::{DEVICE_ENV, device_from_name};
use mosaic_train::{Checkpoint, EvalOptions, evaluate};

use crate::path;

#[derive(clap::Args)]
pub struct EvalArgs {
    /// A run's out_dir, or its checkpoint directory.
    #[arg(long, value_parser = path)]
    checkpoint: PathBuf,
    /// Evaluate on this prepared directory's validation split instead of the one the run
    /// trained on; it must hold the checkpoint's tokenizer.
    #[arg(long, value_parser = path)]
    data: Option<PathBuf>,
    /// Evaluate on the test part (data prepared with `--holdout`) instead of the validation
    /// (selection) split.
    #[arg(long)]
    test: bool,
    /// Also report the mean loss at each position of the window.
    #[arg(long)]
    per_position: bool,
    /// Also evaluate on this out-of-distribution text file.
    #[arg(long, value_parser = path)]
    ood: Option<PathBuf>,
    /// Write the per-position losses (validation, and out-of-distribution with --ood) to
    /// this CSV file: `position,val_loss[,ood_loss]`.
    #[arg(long, value_parser = path)]
    csv: Option<PathBuf>,
    /// Print the result as one JSON object on stdout, and nothing else there.
    #[arg(long)]
    json: bool,
    /// As `mosaic train --device`.
    #[arg(long, env = DEVICE_ENV, default_value = "flex")]
    device: String,
    /// Windows evaluated together.
    #[arg(long, default_value_t = 32, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    batch_size: usize,
}

/// Every argument is checked (the output file writable, the out-of-distribution text read
/// and tokenized) before the validation pass.
pub fn eval(args: &EvalArgs) -> Result<()> {
    let checkpoint = Checkpoint::open(&args.checkpoint, &device_from_name(&args.device)?)?;
    if let Some(csv) = &args.csv {
        check_writable(csv)?;
    }
    let data = checkpoint.eval_data(args.data.as_deref())?;
    let split = if args.test { Split::Test } else { Split::Val };
    let val = TokenFile::open(&data, split)?;
    let (meta, tokenizer) = checkpoint.tokenizer()?;
    let opts = EvalOptions {
        batch_size: args.batch_size,
        ood: args.ood.clone(),
        extrapolate: Vec::new(),
        continuation: None,
    };
    let separate = meta.end_of_text.is_some();
    let model = checkpoint.model();
    let result = evaluate(
        model,
        &val,
        tokenizer.as_ref(),
        separate,
        &opts,
        &mut |_| {},
    )?;
    // With --json, stdout carries the JSON object alone.
    let say = |line: String| match args.json {
        true => eprintln!("{line}"),
        false => println!("{line}"),
    };
    let (report, ood) = (&result.val, &result.ood);
    say(format!(
        "val loss {:.4} over {} windows of {} tokens ({})",
        report.loss,
        report.windows,
        model.block_size(),
        data.display()
    ));
    if let (Some(r), Some(path)) = (ood, &args.ood) {
        let shown = path.display();
        say(format!(
            "{shown}: loss {:.4} over {} windows",
            r.loss, r.windows
        ));
    }
    if args.per_position {
        say(per_position_line("val", &report.per_position));
        if let Some(r) = ood {
            say(per_position_line("out-of-distribution", &r.per_position));
        }
    }
    if let Some(path) = &args.csv {
        let ood = ood.as_ref().map(|r| r.per_position.as_slice());
        write_csv(path, &report.per_position, ood)?;
        say(format!("wrote {}", path.display()));
    }
    if args.json {
        let json = serde_json::json!({
            "data": data.display().to_string(),
            "val": report,
            "ood": ood,
            "ood_file": args.ood.as_ref().map(|p| p.display().to_string()),
        });
        println!("{json}");
    }
    Ok(())
}

/// Fails unless a file can be created beside `path` (the directory exists and is writable):
/// checked before a long computation whose result would go there.
fn check_writable(path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if path.is_dir() {
        anyhow::bail!("{}: is a directory; give a file name", path.display());
    }
    let probe = parent.join(format!(".mosaic-probe-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .with_context(|| format!("{}: cannot write there", path.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// The loss at positions 0, 1, 3, 7, ... and the last of the window, on one line.
fn per_position_line(what: &str, values: &[f64]) -> String {
    let last = values.len().saturating_sub(1);
    let mut marks: Vec<usize> = (0..usize::BITS)
        .map(|k| (1usize << k) - 1)
        .take_while(|&p| p < last)
        .collect();
    marks.push(last);
    let shown: Vec<String> = marks
        .iter()
        .filter_map(|&p| values.get(p).map(|v| format!("{p}: {v:.3}")))
        .collect();
    format!("per-position {what} loss ({})", shown.join(", "))
}

fn write_csv(path: &Path, val: &[f64], ood: Option<&[f64]>) -> Result<()> {
    let mut text = String::from(match ood {
        Some(_) => "position,val_loss,ood_loss\n",
        None => "position,val_loss\n",
    });
    for (p, v) in val.iter().enumerate() {
        text += &match ood.and_then(|o| o.get(p)) {
            Some(o) => format!("{p},{v},{o}\n"),
            None => format!("{p},{v}\n"),
        };
    }
    mosaic_data::atomic::write_atomically(path, text.as_bytes())?;
    Ok(())
}
