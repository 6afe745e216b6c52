//! What a `runs` experiment keeps of each run, and where: the data types the runner writes
//! and the report reads.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
pub use mosaic_train::evaluate::Extrapolation;
use serde::{Deserialize, Serialize};

use super::Options;
use super::provenance::Inputs;

/// What a finished run measured: `<out>/<name>/runs/<run>.json` (`<run>.seed<seed>.json` at
/// each of the experiment's seeds).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// The run's name in the experiment file.
    pub name: String,
    /// The seed this result trained at, where the experiment gives seeds.
    #[serde(default)]
    pub seed: Option<u64>,
    pub group: String,
    /// The run's label in comparisons (empty: its model kind).
    #[serde(default)]
    pub label: String,
    pub model: String,
    pub params: usize,
    pub n_layer: usize,
    pub learning_rate: f64,
    pub steps: usize,
    pub tokens: usize,
    /// Mean loss over the whole validation split, or over the test part where the data holds
    /// stories out (as every loss below).
    pub val_loss: f64,
    /// With held-out stories, the mean loss over the whole selection part: what chooses a
    /// model's learning rate.
    #[serde(default)]
    pub selection_loss: Option<f64>,
    pub val_per_position: Vec<f64>,
    pub ood_loss: Option<f64>,
    pub ood_per_position: Vec<f64>,
    /// `(step, train loss, validation loss)` of each evaluation during training.
    pub curve: Vec<(usize, f64, f64)>,
    pub sample: String,
    pub train_seconds: f64,
    pub tokens_per_second: f64,
    pub device: String,
    /// The step at which the loss became NaN or infinite; the losses above are then those of
    /// the last checkpoint before it.
    #[serde(default)]
    pub diverged_at: Option<usize>,
    /// The step its training resumed from (an interrupted run): `train_seconds` then covers
    /// only the steps after it.
    #[serde(default)]
    pub resumed_at: Option<usize>,
    /// Validation losses in windows longer than the training block.
    #[serde(default)]
    pub extrapolation: Vec<Extrapolation>,
    /// What produced this result; `None` in results made before it was recorded.
    #[serde(default)]
    pub inputs: Option<Inputs>,
    /// In a mean over seeds, the out-of-distribution loss at the run's first seed: what
    /// chooses a model's best out-of-distribution rate, so that seeds added to the chosen
    /// runs leave the choice as it was (as [`RunResult::selection_loss`] does).
    #[serde(skip)]
    pub ood_choice: Option<f64>,
}

impl RunResult {
    /// The loss a learning rate is chosen by: the selection part's where there is one.
    pub fn choice_loss(&self) -> f64 {
        self.selection_loss.unwrap_or(self.val_loss)
    }

    /// The name comparisons use: the label, or the model kind.
    pub fn key(&self) -> &str {
        match self.label.is_empty() {
            true => &self.model,
            false => &self.label,
        }
    }
}

/// Where an experiment's files go.
pub struct Layout {
    /// `<out>/<name>/`: results, metrics and plots (committed).
    pub results: PathBuf,
    /// `<out>/<name>.md`.
    pub report: PathBuf,
    /// `<runs_dir>/<name>/`: checkpoints (ignored by git).
    pub checkpoints: PathBuf,
}

impl Layout {
    pub fn new(name: &str, opts: &Options) -> Self {
        Self {
            results: opts.out.join(name),
            report: opts.out.join(format!("{name}.md")),
            checkpoints: opts.runs_dir.join(name),
        }
    }

    pub fn result(&self, run: &str) -> PathBuf {
        self.results.join("runs").join(format!("{run}.json"))
    }
}

/// The result stored at `path`, if there is one.
pub fn load_result(path: &Path) -> Result<Option<RunResult>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let result = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not a run result; delete it to run again",
            path.display()
        )
    })?;
    Ok(Some(result))
}
