//! Training and evaluation of the models of `mosaic-models` with the paper's recipes, and the
//! `mosaic` command.
//!
//! - [`engine`]: the training step every driver shares; [`schedule`] its learning rates,
//!   [`optim`] AdamW with decay groups and global-norm clipping, [`precision`] mixed precision.
//! - [`trainer`]: `mosaic train` (nanoGPT's loop: evaluation, metrics, checkpoints, summary),
//!   configured by [`config`]; [`checkpoint`]: atomic checkpoints and exact resume.
//! - [`regbench`] and [`three_moons`]: the drivers of the paper's other experiments.
//! - [`mod@evaluate`]: what a trained model is measured on (validation, per position, out of
//!   distribution, extrapolation, a continuation); [`sample`]: generation.
//! - [`metrics`]: the records of `metrics.jsonl`, written and read back typed.
//! - [`batch`]: token batches as tensors; [`error`]: what can go wrong.
//!
//! A run as `mosaic train` and `mosaic eval` make it, from a program (with
//! `default-features = false`, no command-line dependencies come along):
//!
//! ```no_run
//! use burn::tensor::Device;
//! use mosaic_data::{Meta, Split, TokenFile};
//! use mosaic_train::{Checkpoint, EvalOptions, RunConfig, Start, Trainer, evaluate};
//!
//! # fn main() -> Result<(), mosaic_train::TrainError> {
//! let vocab = |dir: &std::path::Path| Meta::read(dir).map(|m| m.vocab_size);
//! let overrides = ["train.max_iters=100".to_string()];
//! let config = RunConfig::load("run.toml".as_ref(), &overrides, vocab)?;
//! let device = Device::flex();
//! let mut trainer = Trainer::open(config.clone(), &device, Start::Fresh)?;
//! let summary = trainer.run(&mut |_step| {}, &mut |line| println!("{line}"))?;
//! println!("whole-split validation loss {:.4}", summary.val_loss);
//!
//! let checkpoint = Checkpoint::open(&config.train.out_dir, &device)?;
//! let (meta, tokenizer) = checkpoint.tokenizer()?;
//! let val = TokenFile::open(&checkpoint.eval_data(None)?, Split::Val)?;
//! let opts = EvalOptions {
//!     batch_size: 16,
//!     ood: None,
//!     extrapolate: vec![2],
//!     continuation: None,
//! };
//! let separate = meta.end_of_text.is_some();
//! let result = evaluate(checkpoint.model(), &val, tokenizer.as_ref(), separate, &opts, &mut |_| {})?;
//! println!("loss at each position: {:?}", result.val.per_position);
//! # Ok(())
//! # }
//! ```

pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod engine;
pub mod error;
pub mod evaluate;
pub mod explain;
pub mod metrics;
pub mod optim;
pub mod precision;
pub mod recall;
pub mod regbench;
pub mod sample;
pub mod schedule;
pub mod three_moons;
pub mod trainer;

pub use checkpoint::Checkpoint;
pub use config::RunConfig;
pub use engine::{Engine, Recipe, StepStats};
pub use error::TrainError;
pub use evaluate::{EvalOptions, Evaluation, evaluate};
pub use precision::Precision;
pub use trainer::{Start, Trainer};
