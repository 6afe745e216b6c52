//! Checkpoints: `DIR/checkpoint/` holds the model (`model.bpk`), the optimiser state
//! (`optim.bpk`), `state.json` (step, sampler RNG, configuration, the data it trained on) and
//! a copy of the data's `meta.json` and tokenizer file, so that a checkpoint samples and
//! evaluates with its own tokenizer whatever happens to the data directory since. A new
//! checkpoint is written beside the old one and swapped in by renames, so a run that dies
//! while writing keeps the previous checkpoint whole.

use std::path::{Path, PathBuf};

use mosaic_data::files::META_FILE;
use mosaic_data::{Meta, Tokenizer, load_tokenizer, tokenizer_sha256};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use mosaic_models::LanguageModel;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::error::{Result, TrainError};

pub const CHECKPOINT_DIR: &str = "checkpoint";
const MODEL_FILE: &str = "model.bpk";
const OPTIM_FILE: &str = "optim.bpk";
const STATE_FILE: &str = "state.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// Iterations completed.
    pub step: usize,
    /// The training sampler's generator, positioned where the next batch starts.
    pub rng: ChaCha8Rng,
    pub config: RunConfig,
    pub best_val_loss: Option<f64>,
    /// The prepared data the run trained on; `None` in checkpoints written before it was kept.
    #[serde(default)]
    pub data: Option<DataRecord>,
}

/// Which prepared data a run trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataRecord {
    /// The data directory, absolute, as it was when the run started.
    pub dir: PathBuf,
    /// [`mosaic_data::tokenizer_sha256`] of that directory then.
    pub tokenizer_sha256: String,
}

/// The data a checkpoint carries: `meta.json` and the tokenizer's file, as read when the run
/// started (the token files stay in the data directory).
#[derive(Debug, Clone)]
pub struct DataFiles {
    pub record: DataRecord,
    files: Vec<(String, Vec<u8>)>,
}

impl DataFiles {
    /// Reads what a checkpoint keeps of the prepared directory `dir`.
    pub fn read(dir: &Path) -> Result<Self> {
        let meta = Meta::read(dir)?;
        let mut names = vec![META_FILE];
        names.extend(mosaic_data::tokenizer::tokenizer_file(meta.tokenizer));
        let files = names
            .into_iter()
            .map(|name| {
                let path = dir.join(name);
                let bytes = std::fs::read(&path).map_err(TrainError::io(&path, "read"))?;
                Ok((name.to_string(), bytes))
            })
            .collect::<Result<_>>()?;
        let absolute = std::path::absolute(dir).map_err(TrainError::io(dir, "resolve"))?;
        Ok(Self {
            record: DataRecord {
                dir: absolute,
                tokenizer_sha256: tokenizer_sha256(dir, meta.tokenizer)?,
            },
            files,
        })
    }
}

/// A checkpoint opened for use: its state and its model, in eval mode.
pub struct Checkpoint {
    dir: PathBuf,
    state: State,
    model: LanguageModel,
}

impl Checkpoint {
    /// Opens the checkpoint in `dir` (a run's out_dir, or its checkpoint directory) with the
    /// model on `device` (without gradients).
    pub fn open(dir: &Path, device: &burn::tensor::Device) -> Result<Self> {
        let dir = locate(dir);
        let state = read_state(&dir)?;
        let model = load_model(&dir, state.config.model.init(device))?;
        Ok(Self { dir, state, model })
    }

    /// The checkpoint directory itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn config(&self) -> &RunConfig {
        &self.state.config
    }

    pub fn model(&self) -> &LanguageModel {
        &self.model
    }

    /// The checkpoint's tokenizer and data metadata: its own copy, or, in a checkpoint
    /// written before it kept one, those of the data directory its configuration names.
    pub fn tokenizer(&self) -> Result<(Meta, Box<dyn Tokenizer>)> {
        let dir = self.dir.as_path();
        let source = match dir.join(META_FILE).is_file() {
            true => dir,
            false => self.state.config.data.dir.as_path(),
        };
        let read = || -> Result<(Meta, Box<dyn Tokenizer>)> {
            let meta = Meta::read(source)?;
            let tokenizer = load_tokenizer(source, meta.tokenizer)?;
            Ok((meta, tokenizer))
        };
        read().map_err(|e| match source == dir {
            true => e,
            false => TrainError::Checkpoint {
                path: dir.to_path_buf(),
                reason: format!(
                    "an older checkpoint, without its own tokenizer; its data directory `{}` \
                     (data.dir of its config, from the working directory) cannot give it: {e}",
                    source.display()
                ),
            },
        })
    }

    /// The prepared directory to evaluate on: `other` if given, else the one the run trained
    /// on. Either must hold the checkpoint's tokenizer (by hash), or its ids would mean other
    /// tokens to the model.
    pub fn eval_data(&self, other: Option<&Path>) -> Result<PathBuf> {
        let Some(record) = &self.state.data else {
            // An older checkpoint: nothing to check against.
            return Ok(other.unwrap_or(&self.state.config.data.dir).to_path_buf());
        };
        let data = other.unwrap_or(&record.dir);
        if other.is_none() && !data.join(META_FILE).is_file() {
            return Err(TrainError::Checkpoint {
                path: self.dir.clone(),
                reason: format!(
                    "the data it trained on, `{}`, is gone; evaluate on another directory \
                     prepared with the same tokenizer",
                    data.display()
                ),
            });
        }
        let meta = Meta::read(data)?;
        if tokenizer_sha256(data, meta.tokenizer)? != record.tokenizer_sha256 {
            return Err(TrainError::Checkpoint {
                path: data.to_path_buf(),
                reason: format!(
                    "its tokenizer ({} {}) is not the one the checkpoint `{}` trained with (the \
                     directory was prepared again, or from other text): the model would read \
                     other tokens; evaluate on data prepared with the checkpoint's tokenizer",
                    meta.tokenizer,
                    meta.vocab_size,
                    self.dir.display()
                ),
            });
        }
        Ok(data.to_path_buf())
    }
}

/// `DIR` itself when it holds a checkpoint, else `DIR/checkpoint`.
fn locate(dir: &Path) -> PathBuf {
    match dir.join(STATE_FILE).is_file() {
        true => dir.to_path_buf(),
        false => dir.join(CHECKPOINT_DIR),
    }
}

pub fn save(
    out_dir: &Path,
    model: &LanguageModel,
    optim: &ModuleOptimizer,
    state: &State,
    data: &DataFiles,
) -> Result<()> {
    mosaic_data::atomic::replace_dir(&out_dir.join(CHECKPOINT_DIR), |dir| {
        std::fs::create_dir_all(dir).map_err(TrainError::io(dir, "create"))?;
        write_files(dir, model, optim, state, data)
    })
}

fn write_files(
    dir: &Path,
    model: &LanguageModel,
    optim: &ModuleOptimizer,
    state: &State,
    data: &DataFiles,
) -> Result<()> {
    for (name, bytes) in &data.files {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(TrainError::io(&path, "write"))?;
    }
    let record = |path: PathBuf| move |error| TrainError::Record { path, error };
    let path = dir.join(MODEL_FILE);
    model.clone().save_file(&path).map_err(record(path))?;
    let path = dir.join(OPTIM_FILE);
    optim.save(&path).map_err(record(path))?;
    let path = dir.join(STATE_FILE);
    std::fs::write(&path, serde_json::to_vec_pretty(state)?)
        .map_err(TrainError::io(&path, "write"))?;
    let path = dir.join("config.toml");
    let text = toml::to_string(&state.config).map_err(|e| TrainError::Invalid(e.to_string()))?;
    std::fs::write(&path, text).map_err(TrainError::io(&path, "write"))
}

pub fn read_state(dir: &Path) -> Result<State> {
    let path = dir.join(STATE_FILE);
    if !dir.is_dir() {
        return Err(TrainError::Checkpoint {
            path: dir.to_path_buf(),
            reason: "no checkpoint directory (train a model first, or give the run's out_dir)"
                .into(),
        });
    }
    let text = std::fs::read_to_string(&path).map_err(TrainError::io(&path, "read"))?;
    serde_json::from_str(&text).map_err(|e| TrainError::Checkpoint {
        path,
        reason: format!("not a checkpoint state: {e}"),
    })
}

/// Loads the weights into `model`, which must have the checkpoint's configuration.
pub fn load_model(dir: &Path, model: LanguageModel) -> Result<LanguageModel> {
    let path = required(dir, MODEL_FILE)?;
    let kind = model.kind();
    model
        .try_load_file(&path)
        .map_err(|error| unreadable(path, &format!("the {kind} model's weights"), &error))
}

pub fn load_optim(dir: &Path, optim: ModuleOptimizer) -> Result<ModuleOptimizer> {
    let path = required(dir, OPTIM_FILE)?;
    optim
        .load(&path)
        .map_err(|error| unreadable(path, "the optimiser state", &error))
}

/// One line for a record Burn cannot read (its own message can list every tensor name).
fn unreadable(path: PathBuf, what: &str, error: &burn::store::RecordError) -> TrainError {
    let detail: String = error
        .to_string()
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(160)
        .collect();
    TrainError::Checkpoint {
        path,
        reason: format!(
            "does not hold {what} this checkpoint's state.json describes ({detail}); the file is \
             truncated or from another run: restore it, or train the run again"
        ),
    }
}

fn required(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if !path.is_file() {
        return Err(TrainError::Checkpoint {
            path,
            reason: "missing from the checkpoint".into(),
        });
    }
    Ok(path)
}
