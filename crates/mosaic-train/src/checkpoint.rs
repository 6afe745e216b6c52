//! Checkpoints: `DIR/checkpoint/` holds the model (`model.bpk`), the optimiser state
//! (`optim.bpk`), and `state.json` (step, sampler RNG, configuration). A new checkpoint is
//! written beside the old one and swapped in by renames, so a run that dies while writing keeps
//! the previous checkpoint whole.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use mosaic_models::LanguageModel;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::RunConfig;

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
    std::fs::create_dir_all(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?;
    let written = (|| -> Result<()> {
        model
            .clone()
            .save_file(tmp.join(MODEL_FILE))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        optim
            .save(tmp.join(OPTIM_FILE))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        std::fs::write(tmp.join(STATE_FILE), serde_json::to_vec_pretty(state)?)?;
        std::fs::write(tmp.join("config.toml"), toml::to_string(&state.config)?)?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e.context(format!("{}: cannot write the checkpoint", tmp.display())));
    }
    if final_dir.exists() {
        std::fs::rename(&final_dir, &old)
            .with_context(|| format!("{}: cannot move aside", final_dir.display()))?;
    }
    std::fs::rename(&tmp, &final_dir)
        .with_context(|| format!("{}: cannot rename into place", final_dir.display()))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

pub fn read_state(dir: &Path) -> Result<State> {
    let path = dir.join(STATE_FILE);
    if !dir.is_dir() {
        bail!(
            "{}: no checkpoint directory (train a model first, or give the run's out_dir)",
            dir.display()
        );
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{}: not a checkpoint state", path.display()))
}

/// Loads the weights into `model`, which must have the checkpoint's configuration.
pub fn load_model(dir: &Path, model: LanguageModel) -> Result<LanguageModel> {
    let path = required(dir, MODEL_FILE)?;
    model
        .try_load_file(&path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

pub fn load_optim(dir: &Path, optim: ModuleOptimizer) -> Result<ModuleOptimizer> {
    let path = required(dir, OPTIM_FILE)?;
    optim
        .load(&path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn required(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if !path.is_file() {
        bail!("{}: missing from the checkpoint", path.display());
    }
    Ok(path)
}
