//! The `mosaic` command: prepare data, train, evaluate, sample.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use burn::tensor::Device;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use mosaic_data::{
    DataError, Meta, PrepareOptions, SequentialWindows, Split, TokenFile, Tokenizer, TokenizerKind,
    prepare,
};
use mosaic_models::{DEVICE_ENV, LanguageModel, device_from_name};
use mosaic_train::checkpoint;
use mosaic_train::evaluate::{losses, tokenize_file};
use mosaic_train::progress::{bytes_bar, is_shown};
use mosaic_train::sample::{SampleOptions, generate_streaming};
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

/// A path given on the command line: an empty one would name the working directory.
fn path(value: &str) -> Result<PathBuf, String> {
    match value.is_empty() {
        true => Err("an empty path; give a file or directory".into()),
        false => Ok(PathBuf::from(value)),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Tokenize a text corpus into DIR/train.bin, DIR/val.bin and DIR/meta.json.
    Prepare {
        /// char (one id per character), bpe (byte-level BPE trained on the corpus) or gpt2.
        #[arg(long)]
        tokenizer: TokenizerKind,
        /// The corpus: plain text (stories separated by `<|endoftext|>` lines) or .jsonl.
        #[arg(long, value_parser = path)]
        input: PathBuf,
        /// A separate validation corpus; without it, the last 10 % of the input.
        #[arg(long, value_parser = path)]
        valid: Option<PathBuf>,
        /// Vocabulary size of the bpe tokenizer [default: 4096].
        #[arg(long)]
        vocab_size: Option<usize>,
        /// Output directory.
        #[arg(long, value_parser = path)]
        out: PathBuf,
        /// Replace OUT when it holds prepared data already (whole, by renames). Checkpoints
        /// trained on the old data keep their own tokenizer; their token files are gone.
        #[arg(long)]
        force: bool,
    },
    /// Train a model as a TOML config describes (see experiments/configs/).
    Train {
        /// The run's config: `[model]`, `[data]` and `[train]` tables.
        #[arg(long, value_parser = path)]
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
    Eval(EvalArgs),
    /// Generate text from a checkpoint, printing tokens as they come.
    Sample(SampleArgs),
}

#[derive(clap::Args)]
struct EvalArgs {
    /// A run's out_dir, or its checkpoint directory.
    #[arg(long, value_parser = path)]
    checkpoint: PathBuf,
    /// Evaluate on this prepared directory's validation split instead of the one the run
    /// trained on; it must hold the checkpoint's tokenizer.
    #[arg(long, value_parser = path)]
    data: Option<PathBuf>,
    /// Also report the mean loss at each position of the window.
    #[arg(long)]
    per_position: bool,
    /// Also evaluate on this out-of-distribution text file.
    #[arg(long, value_parser = path)]
    ood: Option<PathBuf>,
    /// Write the per-position losses (validation, and out-of-distribution with --ood) to
    /// this CSV file: `position,val_loss[,ood_loss]`.
    #[arg(long, value_parser = path)]
    csv: Option<PathBuf>,
    /// Print the result as one JSON object on stdout, and nothing else there.
    #[arg(long)]
    json: bool,
    /// As `mosaic train --device`.
    #[arg(long, env = DEVICE_ENV, default_value = "flex")]
    device: String,
    /// Windows evaluated together.
    #[arg(long, default_value_t = 32, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    batch_size: usize,
}

#[derive(clap::Args)]
struct SampleArgs {
    /// A run's out_dir, or its checkpoint directory.
    #[arg(long, value_parser = path)]
    checkpoint: PathBuf,
    /// The text to continue (at least one token, at most the model's block_size).
    #[arg(long)]
    prompt: String,
    /// Tokens to generate.
    #[arg(long, default_value_t = 200)]
    max_new_tokens: usize,
    /// Divides the logits before sampling: lower is more conservative; 0 is greedy decoding
    /// (always the most likely token).
    #[arg(long, default_value_t = 0.8)]
    temperature: f64,
    /// Sample among the K most likely tokens only; 0: among all.
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Seed of the sampling generator: the same seed gives the same text.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// As `mosaic train --device`.
    #[arg(long, env = DEVICE_ENV, default_value = "flex")]
    device: String,
    /// Recompute the whole window for every token instead of keeping each layer's memory
    /// (the same tokens, slower; for checking the cache).
    #[arg(long)]
    no_cache: bool,
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
            force,
        } => prepare_data(
            &PrepareOptions {
                tokenizer,
                input,
                valid,
                vocab_size,
                out,
                force,
            },
            cli.quiet,
        ),
        Command::Train {
            config,
            overrides,
            device,
            resume,
        } => train(&config, &overrides, &device, resume, cli.quiet),
        Command::Eval(args) => eval(&args),
        Command::Sample(args) => sample(&args),
    }
}

fn prepare_data(opts: &PrepareOptions, quiet: bool) -> Result<()> {
    let bar = bytes_bar("encoding", quiet);
    let start = std::time::Instant::now();
    let meta = prepare(opts, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .map_err(|e| match e {
        DataError::Exists { path } => anyhow::anyhow!(
            "{}: holds prepared data already; pass --force to replace it (checkpoints keep \
             their own tokenizer, but runs that read its token files would read the new ones), \
             or choose another --out",
            path.display()
        ),
        e => e.into(),
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

/// `mosaic eval`: every argument is checked (the output file writable, the out-of-distribution
/// text read and tokenized) before the validation pass.
fn eval(args: &EvalArgs) -> Result<()> {
    let loaded = load(&args.checkpoint, &args.device)?;
    let model = &loaded.model;
    if let Some(csv) = &args.csv {
        check_writable(csv)?;
    }
    let data = checkpoint::eval_data(&loaded.dir, &loaded.state, args.data.as_deref())?;
    let val = TokenFile::open(&data, Split::Val)?;
    let ood_tokens = match &args.ood {
        Some(path) => {
            let (meta, tokenizer) = checkpoint::tokenizer(&loaded.dir, &loaded.state)?;
            let tokens = tokenize_file(path, tokenizer.as_ref(), meta.end_of_text.is_some())?;
            // Long enough for one window, found now rather than after the validation pass.
            SequentialWindows::new(tokens.clone(), model.block_size(), 1)?;
            Some(tokens)
        }
        None => None,
    };
    // With --json, stdout carries the JSON object alone.
    let say = |line: String| match args.json {
        true => eprintln!("{line}"),
        false => println!("{line}"),
    };
    let block = model.block_size();
    let report = losses(model, &val, block, args.batch_size)?;
    say(format!(
        "val loss {:.4} over {} windows of {block} tokens ({})",
        report.loss,
        report.windows,
        data.display()
    ));
    let ood_report = match (&ood_tokens, &args.ood) {
        (Some(tokens), Some(path)) => {
            let r = losses(model, tokens, block, args.batch_size)?;
            say(format!(
                "{}: loss {:.4} over {} windows",
                path.display(),
                r.loss,
                r.windows
            ));
            Some(r)
        }
        _ => None,
    };
    if args.per_position {
        say(per_position_line("val", &report.per_position));
        if let Some(r) = &ood_report {
            say(per_position_line("out-of-distribution", &r.per_position));
        }
    }
    if let Some(path) = &args.csv {
        let ood = ood_report.as_ref().map(|r| r.per_position.as_slice());
        write_csv(path, &report.per_position, ood)?;
        say(format!("wrote {}", path.display()));
    }
    if args.json {
        let json = serde_json::json!({
            "data": data.display().to_string(),
            "val": report,
            "ood": ood_report,
            "ood_file": args.ood.as_ref().map(|p| p.display().to_string()),
        });
        println!("{json}");
    }
    Ok(())
}

/// Fails unless a file can be created beside `path` (the directory exists and is writable):
/// checked before a long computation whose result would go there.
fn check_writable(path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if path.is_dir() {
        anyhow::bail!("{}: is a directory; give a file name", path.display());
    }
    let probe = parent.join(format!(".mosaic-probe-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .with_context(|| format!("{}: cannot write there", path.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// The loss at positions 0, 1, 3, 7, ... and the last of the window, on one line.
fn per_position_line(what: &str, values: &[f64]) -> String {
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
    format!("per-position {what} loss ({})", shown.join(", "))
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

/// `mosaic sample`: the prompt, then each token as it is drawn.
fn sample(args: &SampleArgs) -> Result<()> {
    let loaded = load(&args.checkpoint, &args.device)?;
    let (_, tokenizer) = checkpoint::tokenizer(&loaded.dir, &loaded.state)?;
    let ids = tokenizer.encode(&args.prompt).context("the prompt")?;
    let opts = SampleOptions {
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_k: Some(args.top_k).filter(|&k| k > 0),
        seed: args.seed,
        cache: !args.no_cache,
    };
    let mut stdout = std::io::stdout();
    let mut text = Streamed::new(tokenizer.as_ref(), &ids);
    write!(stdout, "{}", text.printed)?;
    let mut failed = None;
    generate_streaming(&loaded.model, &ids, &opts, &mut |id| {
        if failed.is_none()
            && let Err(e) = text.push(id).and_then(|new| Ok(write!(stdout, "{new}")?))
        {
            failed = Some(e);
        }
        let _ = stdout.flush();
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    writeln!(stdout, "{}", text.rest()?)?;
    Ok(())
}

/// Text decoded as ids arrive: a byte-level token can end inside a character, so what is
/// printed is the decoded text up to its last complete character.
struct Streamed<'a> {
    tokenizer: &'a dyn Tokenizer,
    ids: Vec<u32>,
    printed: String,
}

impl<'a> Streamed<'a> {
    fn new(tokenizer: &'a dyn Tokenizer, prompt: &[u32]) -> Self {
        let printed = tokenizer.decode(prompt).unwrap_or_default();
        Self {
            tokenizer,
            ids: prompt.to_vec(),
            printed: printed.trim_end_matches('\u{FFFD}').to_string(),
        }
    }

    /// The text `id` completes, held back while it ends in an unfinished character.
    fn push(&mut self, id: u32) -> Result<String> {
        self.ids.push(id);
        let text = self.tokenizer.decode(&self.ids)?;
        let stable = text.trim_end_matches('\u{FFFD}');
        Ok(self.advance(stable))
    }

    /// What is left once generation ends, unfinished characters included.
    fn rest(&mut self) -> Result<String> {
        let text = self.tokenizer.decode(&self.ids)?;
        Ok(self.advance(&text))
    }

    fn advance(&mut self, text: &str) -> String {
        match text.strip_prefix(self.printed.as_str()) {
            Some(new) => {
                let new = new.to_string();
                self.printed.push_str(&new);
                new
            }
            // Decoding is not always prefix-stable (a merge across the boundary): print nothing
            // until it is again.
            None => String::new(),
        }
    }
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
    let log_interval = trainer.config().train.log_interval;
    // Without a bar (output to a file, or --quiet) a line every log_interval steps instead.
    let lines = bar.is_hidden();
    let summary = trainer.run(
        &mut |s| {
            bar.set_position(s.step as u64);
            let status = format!("loss {:.4}, {:.0} tok/s", s.loss, tokens / s.seconds);
            if lines && s.step.is_multiple_of(log_interval) {
                println!("step {}: {status}", s.step);
            }
            bar.set_message(status);
        },
        &mut |line| match bar.is_hidden() {
            true => println!("{line}"),
            false => bar.println(line),
        },
    )?;
    bar.finish_and_clear();
    println!(
        "{}: {} steps, val loss {:.4} (whole split; last estimate {:.4}, best {:.4}), {:.0} s, {:.0} tokens/s; {}",
        summary.model,
        summary.steps,
        summary.val_loss,
        summary.val_loss_estimate,
        summary.best_val_loss_estimate,
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

/// A checkpoint opened for use.
struct Loaded {
    /// The checkpoint directory itself.
    dir: PathBuf,
    state: checkpoint::State,
    /// In eval mode, on the device asked for.
    model: LanguageModel,
}

fn load(dir: &Path, device: &str) -> Result<Loaded> {
    let dir = checkpoint::locate(dir);
    let state = checkpoint::read_state(&dir)?;
    let device: Device = device_from_name(device)?;
    let model = checkpoint::load_model(&dir, state.config.model.build(&device))?;
    Ok(Loaded { dir, state, model })
}
