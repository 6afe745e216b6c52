//! A `runs` experiment: check every run's inputs, prepare the data once, train each run
//! (skipping those whose result was made from the same inputs, resuming interrupted ones),
//! measure it (validation loss over the whole split, per position, out of distribution, a
//! generated continuation), plot, and write the report from the measured results only.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use burn::module::Module;
use burn::tensor::Device;
use mosaic_data::{Meta, PrepareOptions, Split, TokenFile, load_tokenizer, prepare};
use mosaic_models::device_from_name;
use mosaic_train::evaluate::{losses, tokenize_file};
use mosaic_train::sample::{SampleOptions, generate};
use mosaic_train::{RunConfig, TrainError, Trainer};
use serde::{Deserialize, Serialize};

use super::Options;
use super::provenance::{self, Inputs};
use super::report;
use super::spec::{RunSpec, Spec};

/// What a finished run measured: `<out>/<name>/runs/<run>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub name: String,
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
    /// Mean loss over the whole validation split.
    pub val_loss: f64,
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
    /// Validation losses in windows longer than the training block.
    #[serde(default)]
    pub extrapolation: Vec<Extrapolation>,
    /// What produced this result; `None` in results made before it was recorded.
    #[serde(default)]
    pub inputs: Option<Inputs>,
}

/// The validation split in windows of `factor` training blocks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Extrapolation {
    pub factor: usize,
    pub length: usize,
    /// `None` where the model cannot read such windows (`note` says why).
    pub loss: Option<f64>,
    pub per_position: Vec<f64>,
    #[serde(default)]
    pub note: Option<String>,
}

impl RunResult {
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

    fn result(&self, run: &str) -> PathBuf {
        self.results.join("runs").join(format!("{run}.json"))
    }
}

/// One run as it stands: its resolved configuration and what its result must record.
struct Plan<'a> {
    run: &'a RunSpec,
    config: RunConfig,
    inputs: Inputs,
}

pub fn run(name: &str, spec: &Spec, opts: &Options) -> Result<()> {
    let started = Instant::now();
    let layout = Layout::new(name, opts);
    let plans = plan(spec, &layout, opts)?;
    let device = device_from_name(&opts.device)?;
    std::fs::create_dir_all(layout.results.join("runs"))
        .with_context(|| format!("{}: cannot create", layout.results.display()))?;
    for plan in &plans {
        let old = load_result(&layout.result(&plan.run.name))?;
        let why = match (&old, opts.fresh) {
            (_, true) => "--fresh".to_string(),
            (None, false) => "no result yet".to_string(),
            (Some(old), false) => match plan.inputs.changed_since(old.inputs.as_ref()) {
                Some(why) => why,
                None => {
                    eprintln!(
                        "{}: done before, validation loss {:.4} (same config, data and \
                         evaluation)",
                        plan.run.name, old.val_loss
                    );
                    continue;
                }
            },
        };
        eprintln!("{}: training ({why})", plan.run.name);
        if opts.fresh {
            let dir = &plan.config.train.out_dir;
            if dir.exists() {
                std::fs::remove_dir_all(dir)
                    .with_context(|| format!("{}: cannot remove", dir.display()))?;
            }
        }
        let result = train_and_measure(spec, plan, &layout, &device, opts)?;
        let json = serde_json::to_vec_pretty(&result)?;
        mosaic_data::files::write_atomically(&layout.result(&plan.run.name), &json)?;
        println!(
            "{}: validation loss {:.4} ({} parameters, {} steps, {:.0} s)\n{}\n",
            plan.run.name,
            result.val_loss,
            result.params,
            result.steps,
            result.train_seconds,
            result.sample
        );
    }
    let results = spec
        .runs
        .iter()
        .map(|r| load_result(&layout.result(&r.name)))
        .collect::<Result<Option<Vec<_>>>>()?
        .context("a run's result is missing")?;
    report::write(
        name,
        spec,
        &results,
        &layout,
        started.elapsed().as_secs_f64(),
    )
}

/// Every run resolved and checked before the first trains: the files the experiment names,
/// the data (prepared if missing), each run's config with its `set` entries.
fn plan<'a>(spec: &'a Spec, layout: &Layout, opts: &Options) -> Result<Vec<Plan<'a>>> {
    spec.check_files()?;
    prepare_data(spec)?;
    let data = spec.data.as_ref().context("no [data] table")?;
    let data_sha256 = mosaic_data::data_sha256(&data.dir)?;
    let eval_sha256 = provenance::eval_sha256(&spec.eval)?;
    let commit = provenance::commit(Path::new("."));
    spec.runs
        .iter()
        .map(|run| {
            let out_dir = layout.checkpoints.join(&run.name);
            let mut config = spec.run_config(run, &out_dir)?;
            if let Some(steps) = opts.steps {
                config.train.max_iters = steps;
                config.train.lr_decay_iters = Some(steps);
                config
                    .validate()
                    .with_context(|| format!("run `{}` with --steps {steps}", run.name))?;
            }
            let inputs = Inputs::new(&config, &data_sha256, &eval_sha256, &commit);
            Ok(Plan {
                run,
                config,
                inputs,
            })
        })
        .collect()
}

/// `mosaic prepare` for the experiment's data, unless it is there; prepared data from other
/// inputs than the experiment names is refused, never used or replaced silently.
fn prepare_data(spec: &Spec) -> Result<()> {
    let data = spec.data.as_ref().context("no [data] table")?;
    if data.dir.join(mosaic_data::files::META_FILE).is_file() {
        let meta = Meta::read(&data.dir)?;
        if let Some(differs) = data.differs_from(&meta)? {
            anyhow::bail!(
                "{}: prepared from other inputs than this experiment's [data] table ({differs}); \
                 remove it (checkpoints keep their own tokenizer) or set another [data] dir",
                data.dir.display()
            );
        }
        return Ok(());
    }
    eprintln!(
        "preparing {} ({:?} tokenizer)",
        data.dir.display(),
        data.tokenizer
    );
    let opts = PrepareOptions {
        tokenizer: data.tokenizer,
        input: data.input.clone(),
        valid: data.valid.clone(),
        vocab_size: data.vocab_size,
        out: data.dir.clone(),
        force: false,
    };
    prepare(&opts, &|_, _| {})?;
    Ok(())
}

fn load_result(path: &Path) -> Result<Option<RunResult>> {
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

fn train_and_measure(
    spec: &Spec,
    plan: &Plan,
    layout: &Layout,
    device: &Device,
    opts: &Options,
) -> Result<RunResult> {
    let (run, config) = (plan.run, plan.config.clone());
    let out_dir = &config.train.out_dir;
    let resume = resumable(out_dir, &plan.inputs)?;
    let mut trainer = match resume {
        true => Trainer::resume(config.clone(), device)?,
        false => Trainer::new(config.clone(), device)?,
    };
    let name = run.name.clone();
    let started = Instant::now();
    let outcome = trainer.run(
        &mut |s| {
            if s.step.is_multiple_of(50) {
                eprintln!(
                    "{name}: step {} loss {:.4} ({:.2} s/step)",
                    s.step, s.loss, s.seconds
                );
            }
        },
        &mut |line| eprintln!("{name}: {line}"),
    );
    // A run that diverges is a result (the learning rate is too high for the model), not
    // the end of the experiment: it is measured at its last checkpoint and marked.
    let (summary, diverged_at) = match outcome {
        Ok(summary) => (Some(summary), None),
        Err(TrainError::NonFiniteLoss { step, .. }) => {
            eprintln!("{name}: diverged at step {step}; measuring its last checkpoint");
            let saved = out_dir
                .join(mosaic_train::checkpoint::CHECKPOINT_DIR)
                .is_dir();
            trainer = match saved {
                true => Trainer::resume(config.clone(), device)?,
                false => Trainer::new(config.clone(), device)?,
            };
            (None, Some(step))
        }
        Err(e) => return Err(e.into()),
    };
    let metrics = out_dir.join(mosaic_train::trainer::METRICS_FILE);
    let kept = layout
        .results
        .join("runs")
        .join(format!("{}.metrics.jsonl", run.name));
    std::fs::copy(&metrics, &kept)
        .with_context(|| format!("{}: cannot copy", metrics.display()))?;
    let mut result = measure(spec, &config, trainer.model(), opts)?;
    result.name = run.name.clone();
    result.group = run.group.clone();
    result.label = run.label.clone().unwrap_or_default();
    result.curve = curve(&metrics)?;
    result.steps = trainer.step();
    result.tokens = trainer.step() * trainer.tokens_per_step();
    result.train_seconds = summary
        .as_ref()
        .map_or(started.elapsed().as_secs_f64(), |s| s.wall_seconds);
    result.tokens_per_second = summary.map_or(0.0, |s| s.tokens_per_second);
    result.diverged_at = diverged_at;
    result.inputs = Some(plan.inputs.clone());
    Ok(result)
}

/// Whether `out_dir` holds a checkpoint of this very run to continue. One trained from other
/// inputs (another config, other data), or whose inputs are unknown, is removed, and
/// `inputs.json` records those of the run that starts there.
fn resumable(out_dir: &Path, inputs: &Inputs) -> Result<bool> {
    let checkpoint = out_dir.join(mosaic_train::checkpoint::CHECKPOINT_DIR);
    let recorded = out_dir.join(INPUTS_FILE);
    let same = std::fs::read_to_string(&recorded)
        .ok()
        .and_then(|t| serde_json::from_str::<Inputs>(&t).ok())
        .is_some_and(|old| inputs.trains_as(&old));
    if checkpoint.is_dir() && same {
        return Ok(true);
    }
    if out_dir.exists() {
        eprintln!(
            "{}: removing a checkpoint of other inputs (config or data)",
            out_dir.display()
        );
        std::fs::remove_dir_all(out_dir)
            .with_context(|| format!("{}: cannot remove", out_dir.display()))?;
    }
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("{}: cannot create", out_dir.display()))?;
    mosaic_data::files::write_atomically(&recorded, &serde_json::to_vec_pretty(inputs)?)?;
    Ok(false)
}

/// Beside a run's checkpoint: the inputs it trains with.
const INPUTS_FILE: &str = "inputs.json";

/// The finished model's losses (validation, out of distribution) and a continuation.
fn measure(
    spec: &Spec,
    config: &RunConfig,
    model: &mosaic_models::LanguageModel,
    opts: &Options,
) -> Result<RunResult> {
    let model = model.valid();
    let block = config.model.block_size();
    let batch = spec.eval.batch_size;
    let val = losses(
        &model,
        &TokenFile::open(&config.data.dir, Split::Val)?,
        block,
        batch,
    )?;
    let meta = Meta::read(&config.data.dir)?;
    let tokenizer = load_tokenizer(&config.data.dir, meta.tokenizer)?;
    let ood = match &spec.eval.ood {
        Some(path) => {
            let tokens = tokenize_file(path, tokenizer.as_ref(), meta.end_of_text.is_some())?;
            Some(losses(&model, &tokens, block, batch)?)
        }
        None => None,
    };
    let val_tokens = TokenFile::open(&config.data.dir, Split::Val)?;
    let mut extrapolation = Vec::new();
    for &factor in &spec.eval.extrapolate {
        let length = factor * block;
        let measured = match model.clone().with_context(length) {
            Ok(long) => {
                eprintln!("evaluating windows of {length} tokens");
                let l = losses(&long, &val_tokens, length, (batch / factor).max(1))?;
                Extrapolation {
                    factor,
                    length,
                    loss: Some(l.loss),
                    per_position: l.per_position,
                    note: None,
                }
            }
            Err(e) => Extrapolation {
                factor,
                length,
                loss: None,
                per_position: Vec::new(),
                note: Some(e.to_string()),
            },
        };
        extrapolation.push(measured);
    }
    let prompt = tokenizer.encode(&spec.eval.prompt)?;
    let sample_opts = SampleOptions {
        max_new_tokens: spec
            .eval
            .max_new_tokens
            .min(block.saturating_sub(prompt.len())),
        temperature: 0.8,
        top_k: Some(40),
        seed: 0,
        cache: true,
    };
    let sample = tokenizer.decode(&generate(&model, &prompt, &sample_opts)?)?;
    Ok(RunResult {
        name: String::new(),
        group: String::new(),
        label: String::new(),
        model: model.kind().into(),
        params: model.num_params(),
        n_layer: config.model.n_layer(),
        learning_rate: config.train.learning_rate,
        steps: 0,
        tokens: 0,
        val_loss: val.loss,
        val_per_position: val.per_position,
        ood_loss: ood.as_ref().map(|o| o.loss),
        ood_per_position: ood.map(|o| o.per_position).unwrap_or_default(),
        curve: Vec::new(),
        sample,
        train_seconds: 0.0,
        tokens_per_second: 0.0,
        device: opts.device.clone(),
        diverged_at: None,
        extrapolation,
        inputs: None,
    })
}

/// The evaluations in a run's `metrics.jsonl`.
fn curve(metrics: &Path) -> Result<Vec<(usize, f64, f64)>> {
    let text = std::fs::read_to_string(metrics)
        .with_context(|| format!("{}: cannot read", metrics.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            let step = v.get("step")?.as_u64()? as usize;
            Some((
                step,
                v.get("train_loss")?.as_f64()?,
                v.get("val_loss")?.as_f64()?,
            ))
        })
        .collect())
}
