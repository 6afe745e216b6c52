//! `cargo xtask bench prepare`: data preparation throughput, MB of text per second.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use mosaic_data::prepare::encode_corpus;
use mosaic_data::tokenizer::{BpeTokenizer, Gpt2Tokenizer};
use mosaic_data::{Corpus, PrepareOptions, Tokenizer, TokenizerKind, prepare};

pub fn prepare_throughput(input: PathBuf, repeats: usize) -> Result<()> {
    let corpus = Corpus::read(&input)?;
    let mb = corpus.num_bytes() as f64 / 1e6;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{}: {mb:.2} MB of text, {threads} threads, best of {repeats}",
        input.display()
    );
    let out = std::env::temp_dir().join(format!("mosaic-bench-{}", std::process::id()));
    for kind in [TokenizerKind::Bpe, TokenizerKind::Gpt2] {
        let opts = PrepareOptions {
            tokenizer: kind,
            input: input.clone(),
            valid: None,
            vocab_size: None,
            out: out.clone(),
            force: true,
            holdout: None,
        };
        let whole = best_of(repeats, || prepare(&opts, &|_, _| {}).map(drop))?;
        let tokenizer: Box<dyn Tokenizer> = match kind {
            TokenizerKind::Bpe => Box::new(BpeTokenizer::train(
                &corpus,
                mosaic_data::prepare::DEFAULT_BPE_VOCAB,
            )?),
            _ => Box::new(Gpt2Tokenizer::new()?),
        };
        let encode = best_of(repeats, || {
            encode_corpus(
                tokenizer.as_ref(),
                &corpus,
                tokenizer.end_of_text(),
                &|_| {},
            )
            .map(drop)
        })?;
        println!(
            "  {kind:<5} prepare (read, {}tokenize, write) {:>6.2} MB/s ({whole:.2} s)   encode only {:>6.2} MB/s ({encode:.2} s)",
            if kind == TokenizerKind::Bpe {
                "train BPE, "
            } else {
                ""
            },
            mb / whole,
            mb / encode
        );
    }
    let _ = std::fs::remove_dir_all(&out);
    Ok(())
}

fn best_of<E>(repeats: usize, mut f: impl FnMut() -> Result<(), E>) -> Result<f64, E> {
    let mut best = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        let start = Instant::now();
        f()?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok(best)
}
