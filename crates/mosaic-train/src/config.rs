//! Run configuration: a TOML file with three tables, `[model]`, `[data]` and `[train]`,
//! overridable key by key (`--set train.max_iters=100`). An unknown key is an error naming it.

use std::path::{Path, PathBuf};

pub use mosaic_models::ModelConfig;
use serde::{Deserialize, Serialize};

use crate::precision::Precision;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub model: ModelConfig,
    pub data: DataConfig,
    pub train: TrainConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// A directory written by `mosaic prepare`.
    pub dir: PathBuf,
}

/// The optimisation recipe, nanoGPT's names and defaults where it has them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub batch_size: usize,
    pub max_iters: usize,
    pub learning_rate: f64,
    #[serde(default)]
    pub min_lr: f64,
    #[serde(default)]
    pub warmup_iters: usize,
    /// Iteration at which the cosine reaches `min_lr`; `max_iters` when left out.
    #[serde(default)]
    pub lr_decay_iters: Option<usize>,
    #[serde(default = "defaults::weight_decay")]
    pub weight_decay: f64,
    #[serde(default = "defaults::beta1")]
    pub beta1: f64,
    #[serde(default = "defaults::beta2")]
    pub beta2: f64,
    #[serde(default = "defaults::eps")]
    pub eps: f64,
    /// Clip the global gradient norm to this; 0 turns clipping off.
    #[serde(default = "defaults::grad_clip")]
    pub grad_clip: f64,
    #[serde(default = "defaults::one")]
    pub gradient_accumulation_steps: usize,
    #[serde(default = "defaults::eval_interval")]
    pub eval_interval: usize,
    #[serde(default = "defaults::eval_iters")]
    pub eval_iters: usize,
    /// Write a checkpoint every this many iterations (and at the end); 0: at the end only.
    #[serde(default)]
    pub checkpoint_interval: usize,
    #[serde(default = "defaults::log_interval")]
    pub log_interval: usize,
    #[serde(default = "defaults::seed")]
    pub seed: u64,
    /// `f32` (the default), or `bf16`/`f16` compute with f32 master weights (GPUs).
    #[serde(default)]
    pub precision: Precision,
    pub out_dir: PathBuf,
}

mod defaults {
    pub fn weight_decay() -> f64 {
        0.1
    }
    pub fn beta1() -> f64 {
        0.9
    }
    pub fn beta2() -> f64 {
        0.95
    }
    pub fn eps() -> f64 {
        1e-8
    }
    pub fn grad_clip() -> f64 {
        1.0
    }
    pub fn one() -> usize {
        1
    }
    pub fn eval_interval() -> usize {
        250
    }
    pub fn eval_iters() -> usize {
        200
    }
    pub fn log_interval() -> usize {
        10
    }
    pub fn seed() -> u64 {
        1337
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunConfigError {
    #[error("{}: cannot read: {error}", .path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: {reason}", .path.display())]
    Invalid { path: PathBuf, reason: String },
    /// A setting out of range, not yet tied to a file.
    #[error("{0}")]
    Value(String),
    #[error("override `{arg}`: {reason}")]
    Override { arg: String, reason: String },
}

impl RunConfig {
    /// Reads `path`, applies the `key=value` overrides, fills `model.vocab_size` from
    /// `vocab_size` when the file leaves it out, and checks the result. An error the
    /// configuration has only with one override is that override's, named as written.
    pub fn load<E: std::fmt::Display>(
        path: &Path,
        overrides: &[String],
        vocab_size: impl Fn(&Path) -> Result<usize, E>,
    ) -> Result<Self, RunConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| RunConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let invalid = |reason: String| RunConfigError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let base: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| invalid(one_line(&e.to_string())))?;
        let with = |skip: Option<usize>| -> Result<Result<Self, String>, RunConfigError> {
            let mut table = base.clone();
            for (i, arg) in overrides.iter().enumerate() {
                if Some(i) != skip {
                    apply_override(&mut table, arg)?;
                }
            }
            Ok(Self::from_table(table, &vocab_size))
        };
        let reason = match with(None)? {
            Ok(config) => return Ok(config),
            Err(reason) => reason,
        };
        for (i, arg) in overrides.iter().enumerate() {
            if with(Some(i))?.is_ok() {
                return Err(RunConfigError::Override {
                    arg: arg.clone(),
                    reason,
                });
            }
        }
        Err(invalid(reason))
    }

    /// The configuration a table describes, checked; the reason it is not one otherwise.
    fn from_table<E: std::fmt::Display>(
        mut table: toml::Table,
        vocab_size: &impl Fn(&Path) -> Result<usize, E>,
    ) -> Result<Self, String> {
        if let Some(toml::Value::Table(model)) = table.get("model")
            && !model.contains_key("vocab_size")
        {
            let dir = table
                .get("data")
                .and_then(|d| d.get("dir"))
                .and_then(|d| d.as_str())
                .map(PathBuf::from);
            if let Some(dir) = dir {
                let v = vocab_size(&dir).map_err(|e| {
                    format!("`model.vocab_size` is not set and the data cannot give it: {e}")
                })?;
                if let Some(toml::Value::Table(model)) = table.get_mut("model") {
                    model.insert("vocab_size".into(), toml::Value::Integer(v as i64));
                }
            }
        }
        let config: RunConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| one_line(&e.to_string()))?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    /// The first setting no run can use, named.
    pub fn validate(&self) -> Result<(), RunConfigError> {
        let bad = |reason: &str| Err(RunConfigError::Value(reason.to_string()));
        self.model
            .validate()
            .map_err(|e| RunConfigError::Value(e.to_string()))?;
        let t = &self.train;
        for (key, value) in [
            ("train.batch_size", t.batch_size),
            ("train.max_iters", t.max_iters),
            (
                "train.gradient_accumulation_steps",
                t.gradient_accumulation_steps,
            ),
            ("train.eval_interval", t.eval_interval),
            ("train.eval_iters", t.eval_iters),
            ("train.log_interval", t.log_interval),
        ] {
            if value == 0 {
                return Err(RunConfigError::Value(format!("`{key}` must be at least 1")));
            }
        }
        if !(t.learning_rate > 0.0 && t.min_lr >= 0.0 && t.min_lr <= t.learning_rate) {
            return bad(
                "need 0 <= `train.min_lr` <= `train.learning_rate` and a positive learning rate",
            );
        }
        for (key, path) in [("data.dir", &self.data.dir), ("train.out_dir", &t.out_dir)] {
            if path.as_os_str().is_empty() {
                return Err(RunConfigError::Value(format!(
                    "`{key}` is empty; name a directory"
                )));
            }
        }
        if !(0.0..1.0).contains(&t.beta1) || !(0.0..1.0).contains(&t.beta2) {
            return bad("`train.beta1` and `train.beta2` must be in [0, 1)");
        }
        Ok(())
    }

    pub fn lr_decay_iters(&self) -> usize {
        self.train.lr_decay_iters.unwrap_or(self.train.max_iters)
    }
}

/// toml's messages quote the offending line over several lines; keep the first.
fn one_line(message: &str) -> String {
    let mut lines = message.lines().filter(|l| !l.trim().is_empty());
    let first = lines.next().unwrap_or_default().trim().to_string();
    // The reason ("unknown field `x`, expected ...") is on the last line.
    match lines.next_back() {
        Some(last) if !last.trim_start().starts_with('|') => format!("{first} {}", last.trim()),
        _ => first,
    }
}

/// `section.key=value`: the value is read as TOML (`100`, `1e-3`, `true`, `"text"`), or as
/// a bare string when it does not parse.
fn apply_override(table: &mut toml::Table, arg: &str) -> Result<(), RunConfigError> {
    let err = |reason: &str| RunConfigError::Override {
        arg: arg.to_string(),
        reason: reason.to_string(),
    };
    let (key, raw) = arg
        .split_once('=')
        .ok_or_else(|| err("expected KEY=VALUE"))?;
    let value = match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").expect("parsed a `v` key"),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let mut parts: Vec<&str> = key.trim().split('.').collect();
    let last = parts
        .pop()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| err("empty key"))?;
    let mut node = table;
    for part in parts {
        node = match node
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()))
        {
            toml::Value::Table(t) => t,
            _ => return Err(err(&format!("`{part}` is not a table"))),
        };
    }
    node.insert(last.to_string(), value);
    Ok(())
}
