//! Checkpoints: `DIR/checkpoint/` holds the model (`model.bpk`), the optimiser state
//! (`optim.bpk`), and `state.json` (step, sampler RNG, configuration). A new checkpoint is
//! written beside the old one and swapped in by renames, so a run that dies while writing keeps
//! the previous checkpoint whole.

use std::path::{Path, PathBuf};

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
}

/// `DIR` itself when it holds a checkpoint, else `DIR/checkpoint`.
pub fn locate(dir: &Path) -> PathBuf {
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
) -> Result<()> {
    let final_dir = out_dir.join(CHECKPOINT_DIR);
    let pid = std::process::id();
    let tmp = out_dir.join(format!(".{CHECKPOINT_DIR}.tmp-{pid}"));
    let old = out_dir.join(format!(".{CHECKPOINT_DIR}.old-{pid}"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(TrainError::io(&tmp, "create"))?;
    if let Err(e) = write_files(&tmp, model, optim, state) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if final_dir.exists() {
        std::fs::rename(&final_dir, &old).map_err(TrainError::io(&final_dir, "move aside"))?;
    }
    std::fs::rename(&tmp, &final_dir).map_err(TrainError::io(&final_dir, "rename into place"))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

fn write_files(
    dir: &Path,
    model: &LanguageModel,
    optim: &ModuleOptimizer,
    state: &State,
) -> Result<()> {
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
    model
        .try_load_file(&path)
        .map_err(|error| TrainError::Record { path, error })
}

pub fn load_optim(dir: &Path, optim: ModuleOptimizer) -> Result<ModuleOptimizer> {
    let path = required(dir, OPTIM_FILE)?;
    optim
        .load(&path)
        .map_err(|error| TrainError::Record { path, error })
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
