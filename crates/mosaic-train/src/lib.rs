//! Training and evaluation of the models of `mosaic-models` with the paper's recipes, and the
//! `mosaic` command.
//!
//! - [`engine`]: the training step every driver shares; [`schedule`] its learning rates,
//!   [`optim`] AdamW with decay groups and global-norm clipping, [`precision`] mixed precision.
//! - [`trainer`]: `mosaic train` (nanoGPT's loop: evaluation, metrics, checkpoints, summary),
//!   configured by [`config`]; [`checkpoint`]: atomic checkpoints and exact resume.
//! - [`regbench`] and [`three_moons`]: the drivers of the paper's other experiments.
//! - [`evaluate`]: what a trained model is measured on (validation, per position, out of
//!   distribution, extrapolation, a continuation); [`sample`]: generation.
//! - [`metrics`]: the records of `metrics.jsonl`, written and read back typed.
//! - [`batch`]: token batches as tensors; [`error`]: what can go wrong.

pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod engine;
pub mod error;
pub mod evaluate;
pub mod metrics;
pub mod optim;
pub mod precision;
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
