//! The training loop: nanoGPT's, on any Burn device.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::Device;
use mosaic_data::{Meta, RandomWindows, Split, TokenFile};
use mosaic_models::{LanguageModel, cross_entropy};
use serde::Serialize;

use crate::checkpoint::{self, State};
use crate::config::RunConfig;
use crate::model::{LayerHeads, build, head_summary, tensors};
use crate::optim::{adamw, clip_global_norm};
use crate::schedule::learning_rate;

pub const METRICS_FILE: &str = "metrics.jsonl";
pub const SUMMARY_FILE: &str = "summary.json";

/// A loss that is NaN or infinite: the run stops, the last checkpoint stays as it was.
#[derive(Debug, thiserror::Error)]
#[error(
    "the training loss became {loss} at step {step}; stopping (the last checkpoint is kept). \
     Try a lower learning rate or stronger gradient clipping"
)]
pub struct NonFiniteLoss {
    pub step: usize,
    pub loss: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepStats {
    pub step: usize,
    pub lr: f64,
    pub loss: f64,
    pub grad_norm: f64,
    pub seconds: f64,
    pub tokens: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub step: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub val_loss: f64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub heads: Vec<LayerHeads>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub model: String,
    pub num_params: usize,
    pub steps: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub best_val_loss: f64,
    pub wall_seconds: f64,
    pub tokens_per_second: f64,
}

pub struct Trainer {
    pub config: RunConfig,
    device: Device,
    model: LanguageModel,
    optim: ModuleOptimizer,
    sampler: RandomWindows,
    train_tokens: TokenFile,
    val_tokens: TokenFile,
    pub step: usize,
    best_val_loss: Option<f64>,
}

impl Trainer {
    /// A fresh run. `device` is any Burn device; gradients are switched on here.
    pub fn new(config: RunConfig, device: &Device) -> Result<Self> {
        let dir = &config.data.dir;
        let meta = Meta::read(dir)?;
        if config.model.vocab_size() != meta.vocab_size {
            bail!(
                "model.vocab_size is {}, but the data in {} has a vocabulary of {}; remove the key to take the data's",
                config.model.vocab_size(),
                dir.display(),
                meta.vocab_size
            );
        }
        let train_tokens = TokenFile::open(dir, Split::Train)?;
        let val_tokens = TokenFile::open(dir, Split::Val)?;
        let device = device.clone().autodiff();
        device.seed(config.train.seed);
        let model = build(&config.model, &device);
        let optim = adamw(&model, &config.train);
        let sampler = RandomWindows::new(
            train_tokens.clone(),
            config.model.block_size(),
            config.train.batch_size,
            config.train.seed,
        )?;
        Ok(Self {
            config,
            device,
            model,
            optim,
            sampler,
            train_tokens,
            val_tokens,
            step: 0,
            best_val_loss: None,
        })
    }

    /// Continues the run whose checkpoint is in `config.train.out_dir`: same model, optimiser
    /// state, step and sampler position, so the losses are those of an uninterrupted run.
    pub fn resume(config: RunConfig, device: &Device) -> Result<Self> {
        let dir = config.train.out_dir.join(checkpoint::CHECKPOINT_DIR);
        let state = checkpoint::read_state(&dir)?;
        if state.config.model != config.model {
            bail!(
                "{}: the checkpoint's model ({:?}) is not the one the config asks for ({:?})",
                dir.display(),
                state.config.model,
                config.model
            );
        }
        let mut trainer = Self::new(config, device)?;
        trainer.model = checkpoint::load_model(&dir, trainer.model)?;
        trainer.optim = checkpoint::load_optim(&dir, adamw(&trainer.model, &trainer.config.train))?;
        trainer.sampler.set_rng(state.rng);
        trainer.step = state.step;
        trainer.best_val_loss = state.best_val_loss;
        Ok(trainer)
    }

    pub fn model(&self) -> &LanguageModel {
        &self.model
    }

    pub fn lr(&self) -> f64 {
        let t = &self.config.train;
        learning_rate(
            self.step,
            t.learning_rate,
            t.min_lr,
            t.warmup_iters,
            self.config.lr_decay_iters(),
        )
    }

    /// One iteration: `gradient_accumulation_steps` micro-batches, clipping, an AdamW step.
    pub fn train_step(&mut self) -> Result<StepStats> {
        let start = Instant::now();
        let t = &self.config.train;
        let lr = self.lr();
        // Dropout masks depend on the step alone, so a resumed run draws the same ones.
        self.device.seed(t.seed.wrapping_add(self.step as u64 + 1));
        let micro = t.gradient_accumulation_steps;
        let mut accumulator = GradientsAccumulator::<LanguageModel>::new();
        let mut loss_sum = 0.0;
        for _ in 0..micro {
            let batch = self.sampler.next_batch();
            let (ids, targets) = tensors(&batch, &self.device);
            let logits = self.model.forward(ids)?.logits;
            let loss = cross_entropy(logits, targets) / micro as f64;
            loss_sum += loss.clone().into_scalar::<f64>();
            let grads = GradientsParams::from_grads(loss.backward(), &self.model);
            accumulator.accumulate(&self.model, grads);
        }
        if !loss_sum.is_finite() {
            return Err(NonFiniteLoss {
                step: self.step,
                loss: loss_sum,
            }
            .into());
        }
        let mut grads = accumulator.grads();
        let grad_norm = clip_global_norm(&self.model, &mut grads, t.grad_clip);
        self.model = self.optim.step(lr, self.model.clone(), grads);
        self.step += 1;
        Ok(StepStats {
            step: self.step,
            lr,
            loss: loss_sum,
            grad_norm,
            seconds: start.elapsed().as_secs_f64(),
            tokens: micro * t.batch_size * self.config.model.block_size(),
        })
    }

    /// Mean loss over `eval_iters` random batches of `split`, in eval mode (no dropout, no
    /// gradients). The batches depend on the step only.
    pub fn estimate_loss(&self, split: Split) -> Result<f64> {
        let t = &self.config.train;
        let tokens = match split {
            Split::Train => &self.train_tokens,
            Split::Val => &self.val_tokens,
        };
        let model = self.model.valid();
        let device = model.device();
        let seed = t.seed
            ^ (self.step as u64 * 2 + (split == Split::Val) as u64)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut sampler = RandomWindows::new(
            tokens.clone(),
            self.config.model.block_size(),
            t.batch_size,
            seed,
        )?;
        let mut sum = 0.0;
        for _ in 0..t.eval_iters {
            let (ids, targets) = tensors(&sampler.next_batch(), &device);
            sum += cross_entropy(model.forward(ids)?.logits, targets).into_scalar::<f64>();
        }
        Ok(sum / t.eval_iters as f64)
    }

    pub fn evaluate(&mut self) -> Result<Evaluation> {
        let val_loss = self.estimate_loss(Split::Val)?;
        self.best_val_loss = Some(self.best_val_loss.map_or(val_loss, |b| b.min(val_loss)));
        Ok(Evaluation {
            step: self.step,
            lr: self.lr(),
            train_loss: self.estimate_loss(Split::Train)?,
            val_loss,
            heads: head_summary(&self.model),
        })
    }

    pub fn checkpoint(&self) -> Result<()> {
        let state = State {
            step: self.step,
            rng: self.sampler.rng().clone(),
            config: self.config.clone(),
            best_val_loss: self.best_val_loss,
        };
        checkpoint::save(&self.config.train.out_dir, &self.model, &self.optim, &state)
    }

    /// Trains to `max_iters`, evaluating, logging and checkpointing on the way; `report`
    /// receives each line worth showing a person.
    pub fn run(
        &mut self,
        on_step: &mut dyn FnMut(&StepStats),
        report: &mut dyn FnMut(&str),
    ) -> Result<Summary> {
        let out = self.config.train.out_dir.clone();
        std::fs::create_dir_all(&out)
            .with_context(|| format!("{}: cannot create", out.display()))?;
        let mut metrics = MetricsLog::open(&out.join(METRICS_FILE), self.step)?;
        let t = self.config.train.clone();
        let started = Instant::now();
        let (mut train_seconds, mut train_tokens) = (0.0, 0usize);
        while self.step < t.max_iters {
            if self.step.is_multiple_of(t.eval_interval) {
                let eval = self.evaluate()?;
                report(&format!(
                    "step {}: train loss {:.4}, val loss {:.4}",
                    eval.step, eval.train_loss, eval.val_loss
                ));
                metrics.write(&eval)?;
            }
            let stats = self.train_step()?;
            on_step(&stats);
            train_seconds += stats.seconds;
            train_tokens += stats.tokens;
            if stats.step.is_multiple_of(t.log_interval) {
                metrics.write(&serde_json::json!({
                    "step": stats.step,
                    "lr": stats.lr,
                    "train_loss": stats.loss,
                    "grad_norm": stats.grad_norm,
                    "tokens_per_sec": stats.tokens as f64 / stats.seconds,
                }))?;
            }
            if t.checkpoint_interval > 0 && self.step.is_multiple_of(t.checkpoint_interval) {
                self.checkpoint()?;
            }
        }
        let eval = self.evaluate()?;
        report(&format!(
            "step {}: train loss {:.4}, val loss {:.4}",
            eval.step, eval.train_loss, eval.val_loss
        ));
        metrics.write(&eval)?;
        self.checkpoint()?;
        let summary = Summary {
            model: self.model.kind().to_string(),
            num_params: self.model.num_params(),
            steps: self.step,
            train_loss: eval.train_loss,
            val_loss: eval.val_loss,
            best_val_loss: self.best_val_loss.unwrap_or(eval.val_loss),
            wall_seconds: started.elapsed().as_secs_f64(),
            tokens_per_second: match train_seconds > 0.0 {
                true => train_tokens as f64 / train_seconds,
                false => 0.0,
            },
        };
        let path = out.join(SUMMARY_FILE);
        mosaic_data::prepare::write_atomically(&path, &serde_json::to_vec_pretty(&summary)?)?;
        Ok(summary)
    }
}

/// `metrics.jsonl`, one JSON object a line. On resume, lines past the checkpoint's step (from
/// the run that died) are dropped so the file reads as one uninterrupted run.
struct MetricsLog {
    file: std::fs::File,
    path: PathBuf,
}

impl MetricsLog {
    fn open(path: &Path, step: usize) -> Result<Self> {
        let kept: String = match std::fs::read_to_string(path) {
            Ok(text) if step > 0 => text
                .lines()
                .filter(|l| {
                    serde_json::from_str::<serde_json::Value>(l)
                        .ok()
                        .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                        .is_some_and(|s| {
                            (s as usize) < step || (s as usize == step && !l.contains("val_loss"))
                        })
                })
                .map(|l| format!("{l}\n"))
                .collect(),
            _ => String::new(),
        };
        std::fs::write(path, kept).with_context(|| format!("{}: cannot write", path.display()))?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .with_context(|| format!("{}: cannot open", path.display()))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    fn write(&mut self, record: &impl Serialize) -> Result<()> {
        let line = serde_json::to_string(record)?;
        writeln!(self.file, "{line}")
            .with_context(|| format!("{}: cannot write", self.path.display()))
    }
}
