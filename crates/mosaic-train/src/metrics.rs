//! `metrics.jsonl`: one JSON record a line, of two kinds, written and read back as these
//! types. On resume, records past the checkpoint's step (from the run that died) are dropped,
//! so that the file reads as one uninterrupted run.

use std::io::Write;
use std::path::{Path, PathBuf};

use mosaic_models::LayerHeads;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

pub const METRICS_FILE: &str = "metrics.jsonl";

/// An evaluation: losses estimated on `eval_iters` random batches of each split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    pub step: usize,
    #[serde(deserialize_with = "float")]
    pub lr: f64,
    #[serde(deserialize_with = "float")]
    pub train_loss: f64,
    #[serde(deserialize_with = "float")]
    pub val_loss: f64,
    /// The Memory Mosaic's learned per-head scalars; none for GPT.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub heads: Vec<LayerHeads>,
}

/// A training step, every `log_interval` steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: usize,
    #[serde(deserialize_with = "float")]
    pub lr: f64,
    #[serde(deserialize_with = "float")]
    pub train_loss: f64,
    /// The global gradient norm before clipping; `None` without clipping.
    pub grad_norm: Option<f64>,
    #[serde(deserialize_with = "float")]
    pub tokens_per_sec: f64,
}

/// JSON writes a NaN or an infinity (a diverging run's loss) as `null`: read it back as NaN.
fn float<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Record {
    Eval(EvalRecord),
    Step(StepRecord),
}

impl Record {
    pub fn step(&self) -> usize {
        match self {
            Self::Eval(r) => r.step,
            Self::Step(r) => r.step,
        }
    }
}

/// Every record of a metrics file, in order.
pub fn read(path: &Path) -> Result<Vec<Record>> {
    let text = std::fs::read_to_string(path).map_err(TrainError::io(path, "read"))?;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| TrainError::Checkpoint {
                path: path.to_path_buf(),
                reason: format!("line {}: not a metrics record: {e}", i + 1),
            })
        })
        .collect()
}

/// The evaluations of a metrics file: `(step, train loss, validation loss)`.
pub fn curve(path: &Path) -> Result<Vec<(usize, f64, f64)>> {
    Ok(read(path)?
        .into_iter()
        .filter_map(|r| match r {
            Record::Eval(e) => Some((e.step, e.train_loss, e.val_loss)),
            Record::Step(_) => None,
        })
        .collect())
}

/// An open `metrics.jsonl`, appended to.
pub(crate) struct MetricsLog {
    file: std::fs::File,
    path: PathBuf,
}

impl MetricsLog {
    /// Opens the log of a run at `step`: records before it are kept (an evaluation at `step`
    /// itself is made again), the rest dropped; a fresh run (`step` 0) starts it empty.
    pub(crate) fn open(path: &Path, step: usize) -> Result<Self> {
        let kept: Vec<Record> = match step {
            0 => Vec::new(),
            _ if !path.is_file() => Vec::new(),
            _ => read(path)?
                .into_iter()
                .filter(|r| match r {
                    Record::Eval(e) => e.step < step,
                    Record::Step(s) => s.step <= step,
                })
                .collect(),
        };
        let mut text = String::new();
        for record in &kept {
            text += &serde_json::to_string(record)?;
            text.push('\n');
        }
        std::fs::write(path, text).map_err(TrainError::io(path, "write"))?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(TrainError::io(path, "open"))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    pub(crate) fn write(&mut self, record: Record) -> Result<()> {
        let line = serde_json::to_string(&record)?;
        writeln!(self.file, "{line}").map_err(TrainError::io(&self.path, "write"))
    }
}
