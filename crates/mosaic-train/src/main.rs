//! The `mosaic` command.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use mosaic_data::{PrepareOptions, TokenizerKind, prepare};
use mosaic_train::progress::bytes_bar;

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
        } => {
            let opts = PrepareOptions {
                tokenizer,
                input,
                valid,
                vocab_size,
                out,
            };
            let bar = bytes_bar("encoding", cli.quiet);
            let start = std::time::Instant::now();
            let meta = prepare(&opts, &|done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })?;
            bar.finish_and_clear();
            let secs = start.elapsed().as_secs_f64();
            println!(
                "{}: {} tokenizer, vocabulary {}, {} train and {} validation tokens ({}), {:.1} s",
                opts.out.display(),
                meta.tokenizer,
                meta.vocab_size,
                meta.train_tokens,
                meta.val_tokens,
                meta.dtype,
                secs
            );
            Ok(())
        }
    }
}
