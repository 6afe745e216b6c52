//! `cargo xtask bench generate`: tokens per second of greedy generation after a long context,
//! with each layer's memory kept between tokens (cached) and with the whole window recomputed
//! for every token. Two rates each: the whole call as a user sees it (the prompt's pass
//! included), and decoding alone, from the time of `new` tokens less the time of one (the
//! prompt's pass and the first token).

use std::time::Instant;

use anyhow::Result;
use mosaic_train::sample::{SampleOptions, generate};

use super::{ModelArgs, RunArgs};

#[derive(clap::Args)]
pub struct Options {
    #[command(flatten)]
    model: ModelArgs,
    /// Prompt length.
    #[arg(long, default_value_t = 512)]
    context: usize,
    /// Tokens generated (at least 2).
    #[arg(long, default_value_t = 64, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(2..))]
    new: usize,
    #[command(flatten)]
    run: RunArgs,
}

pub fn run(opts: &Options) -> Result<()> {
    let (device, threads) = opts.run.open()?;
    // Room for the whole text, so the cache serves every step.
    let block = opts.context + opts.new;
    let config = opts.model.config(block);
    let model = config.init(&device);
    let prompt: Vec<u32> = (0..opts.context)
        .map(|i| ((i * 7919) % opts.model.vocab) as u32)
        .collect();
    let run = |cache: bool, new: usize| -> Result<(f64, Vec<u32>)> {
        let options = SampleOptions {
            max_new_tokens: new,
            temperature: 1.0,
            top_k: Some(1),
            seed: 0,
            cache,
        };
        let start = Instant::now();
        let out = generate(&model, &prompt, &options)?;
        Ok((start.elapsed().as_secs_f64(), out))
    };
    // (whole-call tokens/s, decoding tokens/s, tokens)
    let rates = |cache: bool| -> Result<(f64, f64, Vec<u32>)> {
        let (first, _) = run(cache, 1)?;
        let (all, out) = run(cache, opts.new)?;
        // Too small a model to tell the two apart on a noisy machine: no rate rather than a
        // wild one.
        let decode = match all - first {
            d if d > 0.0 => (opts.new - 1) as f64 / d,
            _ => f64::NAN,
        };
        Ok((opts.new as f64 / all, decode, out))
    };
    let (cached, cached_decode, a) = rates(true)?;
    let (recomputed, recomputed_decode, b) = rates(false)?;
    let same = a == b;
    let name = opts.model.name(model.kind().as_str());
    if opts.run.json {
        println!(
            "{}",
            serde_json::json!({
                "model": name,
                "context": opts.context,
                "new": opts.new,
                "threads": threads,
                "cached_tokens_per_second": cached,
                "recomputed_tokens_per_second": recomputed,
                "speedup": cached / recomputed,
                "cached_decode_tokens_per_second": cached_decode,
                "recomputed_decode_tokens_per_second": recomputed_decode,
                "decode_speedup": cached_decode / recomputed_decode,
                "same_tokens": same,
            })
        );
    } else {
        println!(
            "{name}: {} new tokens after {} of context, {threads} threads: whole call cached \
             {cached:.1} tokens/s, recomputed {recomputed:.1} ({:.1}x); decoding cached \
             {cached_decode:.1} tokens/s, recomputed {recomputed_decode:.1} ({:.1}x); same \
             tokens: {same}",
            opts.new,
            opts.context,
            cached / recomputed,
            cached_decode / recomputed_decode,
        );
    }
    Ok(())
}
