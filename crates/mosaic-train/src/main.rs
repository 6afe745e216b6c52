//! The `mosaic` command: prepare data, train, evaluate, sample.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use burn::tensor::Device;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use mosaic_data::{Meta, PrepareOptions, Split, TokenFile, TokenizerKind, load_tokenizer, prepare};
use mosaic_models::{DEVICE_ENV, LanguageModel, device_from_name};
use mosaic_train::checkpoint;
use mosaic_train::evaluate::{losses, tokenize_file};
use mosaic_train::progress::{bytes_bar, is_shown};
use mosaic_train::sample::{SampleOptions, generate};
use mosaic_train::{RunConfig, Trainer};

/// mimalloc keeps freed memory for reuse: a training step allocates and frees its tensors every
/// step, and glibc's allocator handed the large ones back to the kernel each time, so every
/// step paid page faults and zeroing again (measured in docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "mosaic",
    version,
    about = "Memory Mosaics: prepare data, train, evaluate, sample"
)]
struct Cli {
    /// No progress bars.
    #[arg(long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Tokenize a text corpus into DIR/train.bin, DIR/val.bin and DIR/meta.json.
    Prepare {
        /// char (one id per character), bpe (byte-level BPE trained on the corpus) or gpt2.
        #[arg(long)]
        tokenizer: TokenizerKind,
        /// The corpus: plain text (stories separated by `<|endoftext|>` lines) or .jsonl.
        #[arg(long)]
        input: PathBuf,
        /// A separate validation corpus; without it, the last 10 % of the input.
        #[arg(long)]
        valid: Option<PathBuf>,
        /// Vocabulary size of the bpe tokenizer (default 4096).
        #[arg(long)]
        vocab_size: Option<usize>,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Train a model as a TOML config describes (see experiments/configs/).
    Train {
        #[arg(long)]
        config: PathBuf,
        /// Override a config key, e.g. `--set train.max_iters=100` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// flex (the CPU), wgpu or cuda[:N] (built with that cargo feature); the default is
        /// $MOSAIC_DEVICE, else flex.
        #[arg(long, env = DEVICE_ENV, default_value = "flex")]
        device: String,
        /// Continue from the checkpoint in the config's out_dir.
        #[arg(long)]
        resume: bool,
    },
    /// Evaluate a checkpoint on the whole validation split.
    Eval {
        /// A run's out_dir, or its checkpoint directory.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Also report the mean loss at each position of the window.
        #[arg(long)]
        per_position: bool,
        /// Also evaluate on this out-of-distribution text file.
        #[arg(long)]
        ood: Option<PathBuf>,
        /// Write the per-position losses (validation, and out-of-distribution with --ood) to
        /// this CSV file: `position,val_loss[,ood_loss]`.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// Print the whole result as one JSON line too.
        #[arg(long)]
        json: bool,
        /// As `mosaic train --device`.
        #[arg(long, env = DEVICE_ENV, default_value = "flex")]
        device: String,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
    },
    /// Generate text from a checkpoint.
    Sample {
        #[arg(long)]
        checkpoint: PathBuf,
        #[arg(long)]
        prompt: String,
        #[arg(long, default_value_t = 200)]
        max_new_tokens: usize,
        #[arg(long, default_value_t = 0.8)]
        temperature: f64,
        #[arg(long)]
        top_k: Option<usize>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// As `mosaic train --device`.
        #[arg(long, env = DEVICE_ENV, default_value = "flex")]
        device: String,
        /// Recompute the whole window for every token instead of keeping each layer's memory
        /// (the same tokens, slower; for checking the cache).
        #[arg(long)]
        no_cache: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Prepare {
            tokenizer,
            input,
            valid,
            vocab_size,
            out,
        } => prepare_data(
            &PrepareOptions {
                tokenizer,
                input,
                valid,
                vocab_size,
                out,
            },
            cli.quiet,
        ),
        Command::Train {
            config,
            overrides,
            device,
            resume,
        } => train(&config, &overrides, &device, resume, cli.quiet),
        Command::Eval {
            checkpoint,
            per_position,
            ood,
            csv,
            json,
            device,
            batch_size,
        } => {
            let outputs = EvalOutputs {
                per_position,
                csv,
                json,
            };
            eval(&checkpoint, ood.as_deref(), &outputs, &device, batch_size)
        }
        Command::Sample {
            checkpoint,
            prompt,
            max_new_tokens,
            temperature,
            top_k,
            seed,
            device,
            no_cache,
        } => {
            let opts = SampleOptions {
                max_new_tokens,
                temperature,
                top_k,
                seed,
                cache: !no_cache,
            };
            sample(&checkpoint, &prompt, &opts, &device)
        }
    }
}

fn prepare_data(opts: &PrepareOptions, quiet: bool) -> Result<()> {
    let bar = bytes_bar("encoding", quiet);
    let start = std::time::Instant::now();
    let meta = prepare(opts, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    println!(
        "{}: {} tokenizer, vocabulary {}, {} train and {} validation tokens ({}), {:.1} s",
        opts.out.display(),
        meta.tokenizer,
        meta.vocab_size,
        meta.train_tokens,
        meta.val_tokens,
        meta.dtype,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// What `mosaic eval` shows besides the mean losses.
struct EvalOutputs {
    per_position: bool,
    csv: Option<PathBuf>,
    json: bool,
}

fn eval(
    checkpoint: &Path,
    ood: Option<&Path>,
    outputs: &EvalOutputs,
    device: &str,
    batch_size: usize,
) -> Result<()> {
    let (model, config) = load(checkpoint, device)?;
    let block = config.model.block_size();
    let val = TokenFile::open(&config.data.dir, Split::Val)?;
    let report = losses(&model, &val, block, batch_size)?;
    println!(
        "val loss {:.4} over {} windows of {block} tokens",
        report.loss, report.windows
    );
    let ood_report = match ood {
        Some(path) => {
            let meta = Meta::read(&config.data.dir)?;
            let tokenizer = load_tokenizer(&config.data.dir, meta.tokenizer)?;
            let tokens = tokenize_file(path, tokenizer.as_ref(), meta.end_of_text.is_some())?;
            let r = losses(&model, &tokens, block, batch_size)?;
            println!(
                "{}: loss {:.4} over {} windows",
                path.display(),
                r.loss,
                r.windows
            );
            Some(r)
        }
        None => None,
    };
    if outputs.per_position {
        print_per_position("val", &report.per_position);
        if let Some(r) = &ood_report {
            print_per_position("out-of-distribution", &r.per_position);
        }
    }
    if let Some(path) = &outputs.csv {
        let ood = ood_report.as_ref().map(|r| r.per_position.as_slice());
        write_csv(path, &report.per_position, ood)?;
        println!("wrote {}", path.display());
    }
    if outputs.json {
        let json = serde_json::json!({
            "val": report,
            "ood": ood_report,
            "ood_file": ood.map(|p| p.display().to_string()),
        });
        println!("{json}");
    }
    Ok(())
}

/// The loss at positions 0, 1, 3, 7, ... and the last of the window, on one line.
fn print_per_position(what: &str, values: &[f64]) {
    let last = values.len().saturating_sub(1);
    let mut marks: Vec<usize> = (0..usize::BITS)
        .map(|k| (1usize << k) - 1)
        .take_while(|&p| p < last)
        .collect();
    marks.push(last);
    let shown: Vec<String> = marks
        .iter()
        .filter_map(|&p| values.get(p).map(|v| format!("{p}: {v:.3}")))
        .collect();
    println!("per-position {what} loss ({})", shown.join(", "));
}

fn write_csv(path: &Path, val: &[f64], ood: Option<&[f64]>) -> Result<()> {
    let mut text = String::from(match ood {
        Some(_) => "position,val_loss,ood_loss\n",
        None => "position,val_loss\n",
    });
    for (p, v) in val.iter().enumerate() {
        text += &match ood.and_then(|o| o.get(p)) {
            Some(o) => format!("{p},{v},{o}\n"),
            None => format!("{p},{v}\n"),
        };
    }
    mosaic_data::files::write_atomically(path, text.as_bytes())?;
    Ok(())
}

fn sample(checkpoint: &Path, prompt: &str, opts: &SampleOptions, device: &str) -> Result<()> {
    let (model, config) = load(checkpoint, device)?;
    let meta = Meta::read(&config.data.dir)?;
    let tokenizer = load_tokenizer(&config.data.dir, meta.tokenizer)?;
    let ids = tokenizer.encode(prompt).context("the prompt")?;
    let out = generate(&model, &ids, opts)?;
    println!("{}", tokenizer.decode(&out)?);
    Ok(())
}

fn train(
    config_path: &Path,
    overrides: &[String],
    device: &str,
    resume: bool,
    quiet: bool,
) -> Result<()> {
    let config = RunConfig::load(config_path, overrides, |dir| {
        Meta::read(dir).map(|m| m.vocab_size)
    })?;
    let device = device_from_name(device)?;
    if !resume
        && config
            .train
            .out_dir
            .join(checkpoint::CHECKPOINT_DIR)
            .exists()
    {
        anyhow::bail!(
            "{}: holds a checkpoint already; pass --resume to continue it, or choose another train.out_dir",
            config.train.out_dir.display()
        );
    }
    let mut trainer = match resume {
        true => Trainer::resume(config, &device)?,
        false => Trainer::new(config, &device)?,
    };
    let bar = step_bar(trainer.config().train.max_iters as u64, quiet);
    bar.set_position(trainer.step() as u64);
    let tokens = trainer.tokens_per_step() as f64;
    let summary = trainer.run(
        &mut |s| {
            bar.set_position(s.step as u64);
            bar.set_message(format!(
                "loss {:.4}, {:.0} tok/s",
                s.loss,
                tokens / s.seconds
            ));
        },
        &mut |line| match bar.is_hidden() {
            true => println!("{line}"),
            false => bar.println(line),
        },
    )?;
    bar.finish_and_clear();
    println!(
        "{}: {} steps, val loss {:.4} (best {:.4}), {:.0} s, {:.0} tokens/s; {}",
        summary.model,
        summary.steps,
        summary.val_loss,
        summary.best_val_loss,
        summary.wall_seconds,
        summary.tokens_per_second,
        trainer.config().train.out_dir.display()
    );
    Ok(())
}

fn step_bar(len: u64, quiet: bool) -> ProgressBar {
    if !is_shown(quiet) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("[{elapsed_precise}] {bar:40} {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}

/// The model of a checkpoint, in eval mode on `device`, with its run configuration.
fn load(dir: &Path, device: &str) -> Result<(LanguageModel, RunConfig)> {
    let dir = checkpoint::locate(dir);
    let state = checkpoint::read_state(&dir)?;
    let device: Device = device_from_name(device)?;
    let model = checkpoint::load_model(&dir, state.config.model.build(&device))?;
    Ok((model, state.config))
}
