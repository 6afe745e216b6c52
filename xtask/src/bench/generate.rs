//! `cargo xtask bench generate`: tokens per second of greedy generation after a long context,
//! with each layer's memory kept between tokens (cached) and with the whole window recomputed
//! for every token.

use std::time::Instant;

use anyhow::Result;
use burn::tensor::Device;
use mosaic_models::{GptConfig, MemoryMosaicConfig};
use mosaic_train::config::ModelConfig;
use mosaic_train::model::build;
use mosaic_train::sample::{SampleOptions, generate};

use super::{Model, set_threads};

#[derive(clap::Args)]
pub struct Options {
    #[arg(long, value_enum, default_value = "memory_mosaic")]
    model: Model,
    /// Prompt length.
    #[arg(long, default_value_t = 512)]
    context: usize,
    /// Tokens generated.
    #[arg(long, default_value_t = 64)]
    new: usize,
    #[arg(long, default_value_t = 4)]
    layers: usize,
    #[arg(long, default_value_t = 8)]
    heads: usize,
    #[arg(long, default_value_t = 256)]
    width: usize,
    #[arg(long, default_value_t = 4096)]
    vocab: usize,
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long)]
    json: bool,
}

pub fn run(opts: &Options) -> Result<()> {
    let threads = set_threads(opts.threads)?;
    // Room for the whole text, so the cache serves every step.
    let block = opts.context + opts.new;
    let config = match opts.model {
        Model::MemoryMosaic => ModelConfig::MemoryMosaic(MemoryMosaicConfig::new(
            opts.vocab,
            opts.layers,
            opts.heads,
            opts.width,
            block,
        )),
        Model::Gpt => ModelConfig::Gpt(GptConfig {
            vocab_size: opts.vocab,
            n_layer: opts.layers,
            n_head: opts.heads,
            n_embd: opts.width,
            block_size: block,
            dropout: 0.0,
        }),
    };
    let device = Device::flex();
    device.seed(0);
    let model = build(&config, &device);
    let prompt: Vec<u32> = (0..opts.context)
        .map(|i| ((i * 7919) % opts.vocab) as u32)
        .collect();
    let rate = |cache: bool| -> Result<(f64, Vec<u32>)> {
        let options = SampleOptions {
            max_new_tokens: opts.new,
            temperature: 1.0,
            top_k: Some(1),
            seed: 0,
            cache,
        };
        let start = Instant::now();
        let out = generate(&model, &prompt, &options)?;
        Ok((opts.new as f64 / start.elapsed().as_secs_f64(), out))
    };
    let (cached, a) = rate(true)?;
    let (recomputed, b) = rate(false)?;
    let same = a == b;
    let name = model.kind();
    if opts.json {
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
                "same_tokens": same,
            })
        );
    } else {
        println!(
            "{name}: {} new tokens after {} of context, {threads} threads: cached {cached:.1} \
             tokens/s, recomputed {recomputed:.1} tokens/s ({:.1}x), same tokens: {same}",
            opts.new,
            opts.context,
            cached / recomputed
        );
    }
    Ok(())
}
