//! `mosaic train`: a run from its config, or resumed from its checkpoint.

use std::path::Path;

use anyhow::Result;
use mosaic_data::Meta;
use mosaic_models::device_from_name;
use mosaic_train::{RunConfig, Start, TrainError, Trainer};

use crate::progress::step_bar;

pub fn train(
    config_path: &Path,
    overrides: &[String],
    device: &str,
    resume: bool,
    quiet: bool,
) -> Result<()> {
    let config = RunConfig::load(config_path, overrides, |dir| {
        Meta::read(dir).map(|m| m.vocab_size)
    })?;
    let device = device_from_name(device)?;
    let start = match resume {
        true => Start::Resume,
        false => Start::Fresh,
    };
    let mut trainer = Trainer::open(config, &device, start).map_err(|e| match e {
        TrainError::CheckpointExists { path } => anyhow::anyhow!(
            "{}: holds a checkpoint already; pass --resume to continue it, or choose another \
             train.out_dir",
            path.display()
        ),
        e => e.into(),
    })?;
    let bar = step_bar(trainer.config().train.max_iters as u64, quiet);
    bar.set_position(trainer.step() as u64);
    let tokens = trainer.tokens_per_step() as f64;
    let log_interval = trainer.config().train.log_interval;
    // Without a bar (output to a file, or --quiet) a line every log_interval steps instead.
    let lines = bar.is_hidden();
    let summary = trainer.run(
        &mut |s| {
            bar.set_position(s.step as u64);
            let status = format!("loss {:.4}, {:.0} tok/s", s.loss, tokens / s.seconds);
            if lines && s.step.is_multiple_of(log_interval) {
                println!("step {}: {status}", s.step);
            }
            bar.set_message(status);
        },
        &mut |line| match bar.is_hidden() {
            true => println!("{line}"),
            false => bar.println(line),
        },
    )?;
    bar.finish_and_clear();
    println!(
        "{}: {} steps, val loss {:.4} (whole split; last estimate {:.4}, best {:.4}), {:.0} s, {:.0} tokens/s; {}",
        summary.model,
        summary.steps,
        summary.val_loss,
        summary.val_loss_estimate,
        summary.best_val_loss_estimate,
        summary.wall_seconds,
        summary.tokens_per_second,
        trainer.config().train.out_dir.display()
    );
    Ok(())
}
