//! A `runs` experiment: check every run's inputs, prepare the data once, train each run
//! (skipping those whose result was made from the same inputs, resuming interrupted ones),
//! measure it (validation loss over the whole split, per position, out of distribution, a
//! generated continuation), plot, and write the report from the measured results only.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::module::Module;
use burn::tensor::Device;
use mosaic_data::{Meta, PrepareOptions, Split, TokenFile, load_tokenizer, prepare_once};
use mosaic_models::{LanguageModel, device_from_name};
use mosaic_train::evaluate::{Continuation, EvalOptions, Evaluation, evaluate};
use mosaic_train::sample::SampleOptions;
use mosaic_train::trainer::Summary;
use mosaic_train::{RunConfig, Start, TrainError, Trainer};

use super::Options;
use super::compare::{best, groups};
use super::provenance::{self, Inputs};
use super::report;
use super::results::{Layout, RunResult, load_result};
use super::seeds;
use super::spec::{Choice, Instance, Spec};

/// One training as it stands: its run and seed, its resolved configuration and what its
/// result must record.
struct Plan<'a> {
    instance: Instance<'a>,
    /// Its name in file names and progress lines ([`Instance::id`]).
    id: String,
    config: RunConfig,
    inputs: Inputs,
}

pub fn run(name: &str, spec: &Spec, opts: &Options) -> Result<()> {
    let started = Instant::now();
    let layout = Layout::new(name, opts);
    let inputs = Shared::resolve(spec)?;
    let plans = plan(spec, spec.instances(), &inputs, &layout, opts)?;
    let device = device_from_name(&opts.device)?;
    std::fs::create_dir_all(layout.results.join("runs"))
        .with_context(|| format!("{}: cannot create", layout.results.display()))?;
    for plan in &plans {
        train_once(spec, plan, &layout, &device, opts)?;
    }
    let mut results = load_all(&plans, &layout)?;
    // Then the chosen run of each model in each group at the extra seeds, once the rates are
    // chosen: the protocol is one command, and resumes as the rest.
    if let Some(seeds) = &spec.chosen_seeds {
        let chosen = chosen_instances(spec, &results, seeds);
        let more = plan(spec, chosen, &inputs, &layout, opts)?;
        for plan in &more {
            train_once(spec, plan, &layout, &device, opts)?;
        }
        results.extend(load_all(&more, &layout)?);
    }
    report::write(
        name,
        spec,
        &results,
        &layout,
        started.elapsed().as_secs_f64(),
    )
}

/// Trains and measures one training, unless its result was made from the same inputs.
fn train_once(
    spec: &Spec,
    plan: &Plan,
    layout: &Layout,
    device: &Device,
    opts: &Options,
) -> Result<()> {
    let id = &plan.id;
    let old = load_result(&layout.result(id))?;
    let why = match (&old, opts.fresh) {
        (_, true) => "--fresh".to_string(),
        (None, false) => "no result yet".to_string(),
        (Some(old), false) => match plan.inputs.changed_since(old.inputs.as_ref()) {
            Some(why) => why,
            None => {
                eprintln!(
                    "{id}: done before, loss {:.4} (same config, data and evaluation)",
                    old.val_loss
                );
                return Ok(());
            }
        },
    };
    eprintln!("{id}: training ({why})");
    let result = train_and_measure(spec, plan, layout, device, opts)?;
    let json = serde_json::to_vec_pretty(&result)?;
    mosaic_data::atomic::write_atomically(&layout.result(id), &json)?;
    let what = match result.selection_loss {
        Some(_) => "test",
        None => "validation",
    };
    println!(
        "{id}: {what} loss {:.4} ({} parameters, {} steps, {:.0} s)\n{}\n",
        result.val_loss, result.params, result.steps, result.train_seconds, result.sample
    );
    Ok(())
}

fn load_all(plans: &[Plan], layout: &Layout) -> Result<Vec<RunResult>> {
    plans
        .iter()
        .map(|p| load_result(&layout.result(&p.id)))
        .collect::<Result<Option<Vec<_>>>>()?
        .context("a run's result is missing")
}

/// The best run of each model in each group (by the selection loss, as the report chooses),
/// and each run a claim compares with as the best out-of-distribution one, at each of `seeds`
/// it has no result for in `results` already.
fn chosen_instances<'a>(spec: &'a Spec, results: &[RunResult], seeds: &[u64]) -> Vec<Instance<'a>> {
    let runs = seeds::average(results);
    let mut names: Vec<&str> = Vec::new();
    for group in groups(&runs) {
        names.extend(group.best.iter().map(|b| b.name.as_str()));
    }
    for c in spec
        .claims
        .iter()
        .filter(|c| c.against_choice == Choice::Ood)
    {
        names.extend(best(&runs, &c.group, &c.against, Choice::Ood).map(|b| b.name.as_str()));
    }
    let mut out = Vec::new();
    for run in spec
        .runs
        .iter()
        .filter(|r| names.contains(&r.name.as_str()))
    {
        let trained: Vec<u64> = seeds::of_run(results, &run.name)
            .iter()
            .filter_map(|r| r.seed)
            .collect();
        out.extend(
            seeds
                .iter()
                .filter(|s| !trained.contains(s))
                .map(|&seed| Instance {
                    run,
                    seed: Some(seed),
                }),
        );
    }
    out
}

/// What every training's result records besides its config: the data's hash, the
/// evaluation's, the commit. Computed once, after the files are checked and the data prepared.
struct Shared {
    data_sha256: String,
    eval_sha256: String,
    commit: String,
}

impl Shared {
    fn resolve(spec: &Spec) -> Result<Self> {
        spec.check_files()?;
        prepare_data(spec)?;
        let data = spec.data.as_ref().context("no [data] table")?;
        Ok(Self {
            data_sha256: mosaic_data::data_sha256(&data.dir)?,
            eval_sha256: provenance::eval_sha256(&spec.eval)?,
            commit: provenance::commit(Path::new(".")),
        })
    }
}

/// Every training of `instances` resolved and checked before the first trains: each run's
/// config with its `set` entries and seed.
fn plan<'a>(
    spec: &'a Spec,
    instances: Vec<Instance<'a>>,
    shared: &Shared,
    layout: &Layout,
    opts: &Options,
) -> Result<Vec<Plan<'a>>> {
    instances
        .into_iter()
        .map(|instance| {
            let (id, mut config) = spec.instance_config(instance, &layout.checkpoints)?;
            if let Some(steps) = opts.steps {
                config.train.max_iters = steps;
                config.train.lr_decay_iters = Some(steps);
                config
                    .validate()
                    .with_context(|| format!("run `{id}` with --steps {steps}"))?;
            }
            let inputs = Inputs::new(
                &config,
                &shared.data_sha256,
                &shared.eval_sha256,
                &shared.commit,
            );
            Ok(Plan {
                instance,
                id,
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
    let opts = PrepareOptions {
        tokenizer: data.tokenizer,
        input: data.input.clone(),
        valid: data.valid.clone(),
        vocab_size: data.vocab_size,
        out: data.dir.clone(),
        force: false,
        holdout: data.holdout,
    };
    let (meta, now) = prepare_once(&opts, &|_, _| {}).context("the experiment's [data] table")?;
    if now {
        eprintln!(
            "prepared {} ({} tokenizer, vocabulary {})",
            data.dir.display(),
            meta.tokenizer,
            meta.vocab_size
        );
    }
    Ok(())
}

fn train_and_measure(
    spec: &Spec,
    plan: &Plan,
    layout: &Layout,
    device: &Device,
    opts: &Options,
) -> Result<RunResult> {
    let config = &plan.config;
    let out_dir = &config.train.out_dir;
    let start = match resumable(out_dir, &plan.inputs, opts.fresh)? {
        true => Start::Resume,
        false => Start::Fresh,
    };
    let mut trainer = Trainer::open(config.clone(), device, start)?;
    let resumed_at = Some(trainer.step()).filter(|&s| s > 0);
    let name = plan.id.clone();
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
            let start = if saved { Start::Resume } else { Start::Fresh };
            trainer = Trainer::open(config.clone(), device, start)?;
            (None, Some(step))
        }
        Err(e) => return Err(e.into()),
    };
    let metrics = out_dir.join(mosaic_train::metrics::METRICS_FILE);
    let kept = layout
        .results
        .join("runs")
        .join(format!("{name}.metrics.jsonl"));
    std::fs::copy(&metrics, &kept)
        .with_context(|| format!("{}: cannot copy", metrics.display()))?;
    let model = trainer.model().valid();
    let training = Training {
        steps: trainer.step(),
        tokens: trainer.step() * trainer.tokens_per_step(),
        seconds: started.elapsed().as_secs_f64(),
        summary,
        diverged_at,
        resumed_at,
        curve: mosaic_train::metrics::curve(&metrics)?,
    };
    let measured = measure(spec, config, &model)?;
    Ok(RunResult::new(plan, &model, training, measured, opts))
}

/// How a run trained, as its result records it.
struct Training {
    steps: usize,
    tokens: usize,
    /// Wall time of this invocation, used where the run did not finish (diverged).
    seconds: f64,
    summary: Option<Summary>,
    diverged_at: Option<usize>,
    /// The step this invocation started from, when it resumed a checkpoint.
    resumed_at: Option<usize>,
    curve: Vec<(usize, f64, f64)>,
}

impl RunResult {
    fn new(
        plan: &Plan,
        model: &LanguageModel,
        training: Training,
        measured: Measured,
        opts: &Options,
    ) -> Self {
        let evaluation = measured.evaluation;
        let (run, config) = (plan.instance.run, &plan.config);
        let summary = training.summary.as_ref();
        Self {
            name: run.name.clone(),
            seed: Some(config.train.seed),
            group: run.group.clone(),
            label: run.label.clone().unwrap_or_default(),
            model: model.kind().to_string(),
            params: model.num_params(),
            n_layer: config.model.n_layer(),
            learning_rate: config.train.learning_rate,
            steps: training.steps,
            tokens: training.tokens,
            val_loss: evaluation.val.loss,
            selection_loss: measured.selection_loss,
            val_per_position: evaluation.val.per_position,
            ood_loss: evaluation.ood.as_ref().map(|o| o.loss),
            ood_per_position: evaluation.ood.map(|o| o.per_position).unwrap_or_default(),
            curve: training.curve,
            sample: evaluation.continuation.unwrap_or_default(),
            train_seconds: summary.map_or(training.seconds, |s| s.wall_seconds),
            tokens_per_second: summary.map_or(0.0, |s| s.tokens_per_second),
            device: opts.device.clone(),
            diverged_at: training.diverged_at,
            resumed_at: training.resumed_at,
            extrapolation: evaluation.extrapolation,
            inputs: Some(plan.inputs.clone()),
            ood_choice: None,
        }
    }
}

/// Whether `out_dir` holds a checkpoint of this very run to continue. One trained from other
/// inputs (another config, other data), whose inputs are unknown, or any with `fresh`, is
/// removed, and `inputs.json` records the inputs of the run that starts there.
fn resumable(out_dir: &Path, inputs: &Inputs, fresh: bool) -> Result<bool> {
    let checkpoint = out_dir.join(mosaic_train::checkpoint::CHECKPOINT_DIR);
    let recorded = out_dir.join(INPUTS_FILE);
    let same = std::fs::read_to_string(&recorded)
        .ok()
        .and_then(|t| serde_json::from_str::<Inputs>(&t).ok())
        .is_some_and(|old| inputs.trains_as(&old));
    if checkpoint.is_dir() && same && !fresh {
        return Ok(true);
    }
    if out_dir.exists() {
        let why = match fresh {
            true => "--fresh",
            false => "of other inputs (config or data)",
        };
        eprintln!("{}: removing a checkpoint {why}", out_dir.display());
        std::fs::remove_dir_all(out_dir)
            .with_context(|| format!("{}: cannot remove", out_dir.display()))?;
    }
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("{}: cannot create", out_dir.display()))?;
    mosaic_data::atomic::write_atomically(&recorded, &serde_json::to_vec_pretty(inputs)?)?;
    Ok(false)
}

/// Beside a run's checkpoint: the inputs it trains with.
const INPUTS_FILE: &str = "inputs.json";

/// What a finished model measured: the experiment's evaluation (on the test part where the
/// data holds one, else the validation split) and, with a test part, the loss over the whole
/// selection part, where learning rates are chosen.
struct Measured {
    evaluation: Evaluation,
    selection_loss: Option<f64>,
}

/// The finished model's losses (validation or test, out of distribution, longer windows) and a
/// continuation, as the experiment's `[eval]` table asks.
fn measure(spec: &Spec, config: &RunConfig, model: &LanguageModel) -> Result<Measured> {
    let dir = &config.data.dir;
    let meta = Meta::read(dir)?;
    let tokenizer = load_tokenizer(dir, meta.tokenizer)?;
    let eval = &spec.eval;
    let opts = EvalOptions {
        batch_size: eval.batch_size,
        ood: eval.ood.clone(),
        extrapolate: eval.extrapolate.clone(),
        continuation: Some(Continuation {
            prompt: eval.prompt.clone(),
            options: SampleOptions {
                max_new_tokens: eval.max_new_tokens,
                temperature: 0.8,
                top_k: Some(40),
                seed: 0,
                cache: true,
            },
        }),
    };
    let separate = meta.end_of_text.is_some();
    let mut log = |line: &str| eprintln!("{line}");
    let selection_loss = match meta.test_tokens {
        Some(_) => {
            let selection = TokenFile::open(dir, Split::Val)?;
            let only = EvalOptions {
                batch_size: eval.batch_size,
                ood: None,
                extrapolate: Vec::new(),
                continuation: None,
            };
            let e = evaluate(
                model,
                &selection,
                tokenizer.as_ref(),
                separate,
                &only,
                &mut log,
            )?;
            Some(e.val.loss)
        }
        None => None,
    };
    let split = match meta.test_tokens {
        Some(_) => Split::Test,
        None => Split::Val,
    };
    let data = TokenFile::open(dir, split)?;
    let evaluation = evaluate(model, &data, tokenizer.as_ref(), separate, &opts, &mut log)?;
    Ok(Measured {
        evaluation,
        selection_loss,
    })
}
