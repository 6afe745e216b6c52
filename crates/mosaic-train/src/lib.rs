//! Training and evaluation of the models of `mosaic-models` with the paper's recipe (nanoGPT's
//! loop), and the `mosaic` command.
//!
//! - [`config`]: the run's TOML configuration.
//! - [`trainer`]: the loop, evaluation, metrics, summary.
//! - [`optim`]: AdamW with decay groups, global-norm clipping; [`schedule`]: the learning rate.
//! - [`checkpoint`]: atomic checkpoints and exact resume.
//! - [`evaluate`]: per-position and out-of-distribution losses; [`sample`]: generation.

pub mod checkpoint;
pub mod config;
pub mod evaluate;
pub mod model;
pub mod optim;
pub mod progress;
pub mod regbench;
pub mod sample;
pub mod schedule;
pub mod three_moons;
pub mod trainer;

pub use config::RunConfig;
pub use trainer::Trainer;
