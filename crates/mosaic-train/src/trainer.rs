//! The training loop: nanoGPT's, on any Burn device.

use std::time::Instant;

use burn::module::Module;
use burn::tensor::Device;
use mosaic_data::{Meta, RandomWindows, Split, TokenFile};
use mosaic_models::{LanguageModel, cross_entropy};
use serde::Serialize;

use crate::batch::tensors;
use crate::checkpoint::{self, DataFiles, State};
use crate::config::RunConfig;
use crate::engine::{Engine, Recipe, StepStats};
use crate::error::{Result, TrainError};
use crate::metrics::{EvalRecord, METRICS_FILE, MetricsLog, Record, StepRecord};
use crate::optim::AdamW;
use crate::schedule::Schedule;

pub const SUMMARY_FILE: &str = "summary.json";

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub model: String,
    pub num_params: usize,
    pub steps: usize,
    /// The last estimate of the training loss (`eval_iters` random batches).
    pub train_loss_estimate: f64,
    /// The validation loss over the whole split, as `mosaic eval` reports it.
    pub val_loss: f64,
    /// The last estimate of the validation loss (`eval_iters` random batches), and the best.
    pub val_loss_estimate: f64,
    pub best_val_loss_estimate: f64,
    pub wall_seconds: f64,
    pub tokens_per_second: f64,
}

/// nanoGPT's recipe as a run's `[train]` table gives it.
pub fn recipe(config: &RunConfig) -> Recipe {
    let t = &config.train;
    Recipe {
        schedule: Schedule::nanogpt(
            t.learning_rate,
            t.min_lr,
            t.warmup_iters,
            config.lr_decay_iters(),
        ),
        optimizer: AdamW {
            beta1: t.beta1,
            beta2: t.beta2,
            eps: t.eps,
            weight_decay: t.weight_decay,
            bias_correction: true,
        },
        grad_clip: t.grad_clip,
        seed: t.seed,
        precision: t.precision,
    }
}

/// How [`Trainer::open`] starts a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// From the initialisation; a checkpoint already in `out_dir` is an error, never
    /// overwritten.
    Fresh,
    /// From the checkpoint in `out_dir`, exactly where it stopped.
    Resume,
}

pub struct Trainer {
    config: RunConfig,
    engine: Engine<LanguageModel>,
    sampler: RandomWindows,
    train_tokens: TokenFile,
    val_tokens: TokenFile,
    best_val_loss: Option<f64>,
    data: DataFiles,
}

impl Trainer {
    /// The run `config` describes, started as `start` says: the one way `mosaic train` and
    /// `cargo xtask experiment` begin training.
    pub fn open(config: RunConfig, device: &Device, start: Start) -> Result<Self> {
        let checkpoint = config.train.out_dir.join(checkpoint::CHECKPOINT_DIR);
        match start {
            Start::Resume => Self::resume(config, device),
            Start::Fresh if checkpoint.exists() => Err(TrainError::CheckpointExists {
                path: config.train.out_dir.clone(),
            }),
            Start::Fresh => Self::new(config, device),
        }
    }

    /// A fresh run. `device` is any Burn device; gradients are switched on here.
    pub fn new(config: RunConfig, device: &Device) -> Result<Self> {
        let data = DataFiles::read(&config.data.dir)?;
        Self::with_data(config, device, data)
    }

    /// [`Trainer::new`] with what the checkpoints keep of the data already read.
    fn with_data(config: RunConfig, device: &Device, data: DataFiles) -> Result<Self> {
        let dir = &config.data.dir;
        let meta = Meta::read(dir)?;
        if config.model.vocab_size() != meta.vocab_size {
            return Err(TrainError::Invalid(format!(
                "model.vocab_size is {}, but the data in {} has a vocabulary of {}; remove the key to take the data's",
                config.model.vocab_size(),
                dir.display(),
                meta.vocab_size
            )));
        }
        let train_tokens = TokenFile::open(dir, Split::Train)?;
        let val_tokens = TokenFile::open(dir, Split::Val)?;
        let device = device.clone().autodiff();
        device.seed(config.train.seed);
        let engine = Engine::new(config.model.init(&device), recipe(&config), &device);
        let sampler = RandomWindows::new(
            train_tokens.clone(),
            config.model.block_size(),
            config.train.batch_size,
            config.train.seed,
        )?;
        Ok(Self {
            config,
            engine,
            sampler,
            train_tokens,
            val_tokens,
            best_val_loss: None,
            data,
        })
    }

    /// Continues the run whose checkpoint is in `config.train.out_dir`: same model, optimiser
    /// state, step and sampler position, so the losses are those of an uninterrupted run.
    pub fn resume(config: RunConfig, device: &Device) -> Result<Self> {
        let dir = config.train.out_dir.join(checkpoint::CHECKPOINT_DIR);
        let state = checkpoint::read_state(&dir)?;
        let data = DataFiles::read(&config.data.dir)?;
        if let Some(record) = &state.data
            && data.record.tokenizer_sha256 != record.tokenizer_sha256
        {
            return Err(TrainError::Checkpoint {
                path: dir,
                reason: format!(
                    "the data directory `{}` holds another tokenizer than the one this run \
                     trained with (it was prepared again since): resuming would train on other \
                     ids; point data.dir at the data the run started on",
                    config.data.dir.display()
                ),
            });
        }
        if state.config.model != config.model {
            return Err(TrainError::Checkpoint {
                path: dir,
                reason: format!(
                    "the checkpoint's model is not the one the config asks for ({})",
                    differences(&state.config.model, &config.model)
                ),
            });
        }
        let mut trainer = Self::with_data(config, device, data)?;
        let model = checkpoint::load_model(&dir, trainer.engine.model().clone())?;
        let optim = checkpoint::load_optim(&dir, trainer.engine.recipe().optimizer.init(&model))?;
        trainer.engine.restore(model, optim, state.step);
        trainer.sampler.set_rng(state.rng);
        trainer.best_val_loss = state.best_val_loss;
        Ok(trainer)
    }

    pub fn model(&self) -> &LanguageModel {
        self.engine.model()
    }

    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// Iterations completed.
    pub fn step(&self) -> usize {
        self.engine.step()
    }

    /// Tokens one iteration trains on.
    pub fn tokens_per_step(&self) -> usize {
        let t = &self.config.train;
        t.gradient_accumulation_steps * t.batch_size * self.config.model.block_size()
    }

    /// One iteration: `gradient_accumulation_steps` micro-batches of equal weight.
    pub fn train_step(&mut self) -> Result<StepStats> {
        let micro = self.config.train.gradient_accumulation_steps;
        let sampler = &mut self.sampler;
        self.engine
            .train_step(&vec![1.0 / micro as f64; micro], |model, _| {
                let (ids, targets) = tensors(&sampler.next_batch(), model)?;
                Ok(cross_entropy(model.forward(ids)?.logits, targets))
            })
    }

    /// Mean loss over `eval_iters` random batches of `split`, in eval mode (no dropout, no
    /// gradients). The batches depend on the step only.
    pub fn estimate_loss(&self, split: Split) -> Result<f64> {
        let t = &self.config.train;
        let tokens = match split {
            Split::Train => &self.train_tokens,
            Split::Val => &self.val_tokens,
            Split::Test => {
                return Err(TrainError::Invalid(
                    "training never reads the test part: it is kept for the reported numbers"
                        .into(),
                ));
            }
        };
        let model = self.engine.model().valid();
        let seed = t.seed
            ^ (self.step() as u64 * 2 + (split == Split::Val) as u64)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut sampler = RandomWindows::new(
            tokens.clone(),
            self.config.model.block_size(),
            t.batch_size,
            seed,
        )?;
        let mut sum = 0.0;
        for _ in 0..t.eval_iters {
            let (ids, targets) = tensors(&sampler.next_batch(), &model)?;
            sum += cross_entropy(model.forward(ids)?.logits, targets).into_scalar::<f64>();
        }
        Ok(sum / t.eval_iters as f64)
    }

    pub fn evaluate(&mut self) -> Result<EvalRecord> {
        let val_loss = self.estimate_loss(Split::Val)?;
        self.best_val_loss = Some(self.best_val_loss.map_or(val_loss, |b| b.min(val_loss)));
        Ok(EvalRecord {
            step: self.step(),
            lr: self.engine.lr(),
            train_loss: self.estimate_loss(Split::Train)?,
            val_loss,
            heads: self.model().head_scalars(),
        })
    }

    pub fn checkpoint(&self) -> Result<()> {
        let state = State {
            step: self.step(),
            rng: self.sampler.rng().clone(),
            config: self.config.clone(),
            best_val_loss: self.best_val_loss,
            data: Some(self.data.record.clone()),
        };
        checkpoint::save(
            &self.config.train.out_dir,
            self.engine.model(),
            self.engine.optimizer(),
            &state,
            &self.data,
        )
    }

    /// Trains to `max_iters`, evaluating, logging and checkpointing on the way; `report`
    /// receives each line worth showing a person.
    pub fn run(
        &mut self,
        on_step: &mut dyn FnMut(&StepStats),
        report: &mut dyn FnMut(&str),
    ) -> Result<Summary> {
        let out = self.config.train.out_dir.clone();
        std::fs::create_dir_all(&out).map_err(TrainError::io(&out, "create"))?;
        let mut metrics = MetricsLog::open(&out.join(METRICS_FILE), self.step())?;
        let t = self.config.train.clone();
        let started = Instant::now();
        let mut train_seconds = 0.0;
        let first_step = self.step();
        while self.step() < t.max_iters {
            if self.step().is_multiple_of(t.eval_interval) {
                self.evaluate_and_log(&mut metrics, report)?;
            }
            let stats = self.train_step()?;
            on_step(&stats);
            train_seconds += stats.seconds;
            if stats.step.is_multiple_of(t.log_interval) {
                metrics.write(Record::Step(StepRecord {
                    step: stats.step,
                    lr: stats.lr,
                    train_loss: stats.loss,
                    grad_norm: stats.grad_norm,
                    tokens_per_sec: self.tokens_per_step() as f64 / stats.seconds,
                }))?;
            }
            if t.checkpoint_interval > 0 && self.step().is_multiple_of(t.checkpoint_interval) {
                self.checkpoint()?;
            }
        }
        let eval = self.evaluate_and_log(&mut metrics, report)?;
        self.checkpoint()?;
        let wall_seconds = started.elapsed().as_secs_f64();
        let whole = crate::evaluate::losses(
            &self.model().valid(),
            &self.val_tokens,
            self.config.model.block_size(),
            t.batch_size,
        )?;
        report(&format!(
            "val loss {:.4} over the whole split ({} windows)",
            whole.loss, whole.windows
        ));
        let trained_tokens = (self.step() - first_step) * self.tokens_per_step();
        let summary = Summary {
            model: self.model().kind().to_string(),
            num_params: self.model().num_params(),
            steps: self.step(),
            train_loss_estimate: eval.train_loss,
            val_loss: whole.loss,
            val_loss_estimate: eval.val_loss,
            best_val_loss_estimate: self.best_val_loss.unwrap_or(eval.val_loss),
            wall_seconds,
            tokens_per_second: match train_seconds > 0.0 {
                true => trained_tokens as f64 / train_seconds,
                false => 0.0,
            },
        };
        let path = out.join(SUMMARY_FILE);
        mosaic_data::atomic::write_atomically(&path, &serde_json::to_vec_pretty(&summary)?)?;
        Ok(summary)
    }

    fn evaluate_and_log(
        &mut self,
        metrics: &mut MetricsLog,
        report: &mut dyn FnMut(&str),
    ) -> Result<EvalRecord> {
        let eval = self.evaluate()?;
        report(&format!(
            "step {}: train loss {:.4}, val loss {:.4}",
            eval.step, eval.train_loss, eval.val_loss
        ));
        metrics.write(Record::Eval(eval.clone()))?;
        Ok(eval)
    }
}

/// The settings in which two model configs differ, as `key: checkpoint's -> config's`.
fn differences(old: &mosaic_models::ModelConfig, new: &mosaic_models::ModelConfig) -> String {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return format!("{old:?} against {new:?}");
    };
    let null = serde_json::Value::Null;
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            let (x, y) = (a.get(k).unwrap_or(&null), b.get(k).unwrap_or(&null));
            format!("{k}: {x} -> {y}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}
