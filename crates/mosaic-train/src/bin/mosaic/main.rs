//! The `mosaic` command: prepare data, train, evaluate, sample. Each command is a file here;
//! what they compute is the `mosaic-train` library's.

mod eval;
mod explain;
mod export;
mod progress;
mod sample;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use mosaic_data::{DataError, PrepareOptions, TokenizerKind, prepare};
use mosaic_models::DEVICE_ENV;

use crate::progress::bytes_bar;

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
pub(crate) fn path(value: &str) -> Result<PathBuf, String> {
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
        /// Set aside 2 of every N stories of INPUT before training: story i = 0 (mod N) goes
        /// to the selection part (the validation split, where settings are chosen), i = 1
        /// (mod N) to the test part (test.bin, where results are reported). Not with --valid.
        #[arg(long, value_name = "N")]
        holdout: Option<usize>,
    },
    /// Train a model as a TOML config describes (see experiments/configs/).
    Train {
        /// The run's config: `[model]`, `[data]` and `[train]` tables.
        #[arg(long, value_parser = path)]
        config: PathBuf,
        /// Override a config key, e.g. `--set train.max_iters=100` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// flex (the CPU), wgpu or `cuda[:N]` (built with that cargo feature); the default is
        /// $MOSAIC_DEVICE, else flex.
        #[arg(long, env = DEVICE_ENV, default_value = "flex")]
        device: String,
        /// Continue from the checkpoint in the config's out_dir.
        #[arg(long)]
        resume: bool,
    },
    /// Evaluate a checkpoint on the whole validation split.
    Eval(eval::EvalArgs),
    /// Generate text from a checkpoint, printing tokens as they come.
    Sample(sample::SampleArgs),
    /// Write a checkpoint in the official PyTorch code's format (v1 Memory Mosaics and GPT).
    Export(export::ExportArgs),
    /// Write a page (HTML, opens offline) of what a checkpoint's model reads in a text.
    Explain(explain::ExplainArgs),
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
            holdout,
        } => prepare_data(
            &PrepareOptions {
                tokenizer,
                input,
                valid,
                vocab_size,
                out,
                force,
                holdout,
            },
            cli.quiet,
        ),
        Command::Train {
            config,
            overrides,
            device,
            resume,
        } => train::train(&config, &overrides, &device, resume, cli.quiet),
        Command::Eval(args) => eval::eval(&args),
        Command::Sample(args) => sample::sample(&args),
        Command::Export(args) => export::export(&args),
        Command::Explain(args) => explain::explain(&args),
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
    let held = match meta.test_tokens {
        Some(test) => format!("{} selection and {test} test", meta.val_tokens),
        None => format!("{} validation", meta.val_tokens),
    };
    println!(
        "{}: {} tokenizer, vocabulary {}, {} train and {held} tokens ({}), {:.1} s",
        opts.out.display(),
        meta.tokenizer,
        meta.vocab_size,
        meta.train_tokens,
        meta.dtype,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
