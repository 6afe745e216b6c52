//! `cargo xtask bench <what>`: measured speed, never asserted by tests. Each prints a line a
//! person reads, or with `--json` one JSON object per measurement (the keys of the official
//! code's `bench_official.py` where it measures the same thing).

mod generate;
mod launches;
mod leaky;
mod prepare;
mod train;

use std::time::Instant;

use anyhow::{Context, Result};
use burn::tensor::Device;
use clap::{Subcommand, ValueEnum};
use mosaic_models::{DEVICE_ENV, GptConfig, MemoryMosaicConfig, device_from_name};
use mosaic_train::config::ModelConfig;

#[derive(Subcommand)]
pub enum Bench {
    /// `mosaic prepare` throughput (MB of text per second) for the bpe and gpt2 tokenizers.
    Prepare {
        /// Corpus to prepare.
        #[arg(long, default_value = "datasets/text/tinystories-train.txt")]
        input: std::path::PathBuf,
        /// Runs of each measurement; the best is reported.
        #[arg(long, default_value_t = 3)]
        repeats: usize,
    },
    /// Full training steps (forward, backward, AdamW) on random tokens: median step time,
    /// tokens/s, the backend's f32 matmul peak and the model FLOP utilisation.
    Train(train::Options),
    /// Greedy generation after a long context: cached against recomputed tokens/s.
    Generate(generate::Options),
    /// The O(T) leaky average against the O(T^2) matrix form, forward only.
    Leaky(leaky::Options),
}

/// The language model a bench builds, with the official benchmark script's default shape.
#[derive(clap::Args)]
pub struct ModelArgs {
    #[arg(long, value_enum, default_value = "memory_mosaic")]
    model: Model,
    #[arg(long, default_value_t = 4)]
    layers: usize,
    #[arg(long, default_value_t = 8)]
    heads: usize,
    #[arg(long, default_value_t = 256)]
    width: usize,
    #[arg(long, default_value_t = 4096)]
    vocab: usize,
    /// Memory Mosaics v2's changes to turn on, comma-separated (the three-level memory scaled
    /// to the block as `MemoryMosaicConfig::scaled_three_level` says).
    #[arg(long, value_enum, value_delimiter = ',')]
    v2: Vec<V2Change>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum V2Change {
    AdaptiveBandwidth,
    GatedKeys,
    ThreeLevel,
}

impl ModelArgs {
    /// The model's configuration for windows of `block` tokens (no dropout).
    fn config(&self, block: usize) -> ModelConfig {
        match self.model {
            Model::MemoryMosaic => ModelConfig::MemoryMosaic(
                MemoryMosaicConfig {
                    adaptive_bandwidth: self.v2.contains(&V2Change::AdaptiveBandwidth),
                    gated_keys: self.v2.contains(&V2Change::GatedKeys),
                    three_level: self.v2.contains(&V2Change::ThreeLevel),
                    ..MemoryMosaicConfig::new(
                        self.vocab,
                        self.layers,
                        self.heads,
                        self.width,
                        block,
                    )
                }
                .scaled_three_level(),
            ),
            Model::Gpt => ModelConfig::Gpt(GptConfig {
                vocab_size: self.vocab,
                n_layer: self.layers,
                n_head: self.heads,
                n_embd: self.width,
                block_size: block,
                dropout: 0.0,
            }),
        }
    }
}

impl ModelArgs {
    /// The model's name in the output: its kind, and the v2 changes turned on.
    fn name(&self, kind: &str) -> String {
        let changes: Vec<String> = self
            .v2
            .iter()
            .filter_map(|c| c.to_possible_value().map(|v| v.get_name().to_string()))
            .collect();
        match changes.is_empty() {
            true => kind.to_string(),
            false => format!("{kind}+{}", changes.join("+")),
        }
    }
}

/// How a bench runs and prints.
#[derive(clap::Args)]
pub struct RunArgs {
    /// Backend: flex (the CPU), wgpu or cuda[:N] (built with that cargo feature).
    #[arg(long, env = DEVICE_ENV, default_value = "flex")]
    device: String,
    /// Threads of the CPU backend; default one per core.
    #[arg(long)]
    threads: Option<usize>,
    /// One JSON line per measurement instead of text.
    #[arg(long)]
    json: bool,
}

/// The two language models, as `bench_official.py` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Model {
    MemoryMosaic,
    Gpt,
}

pub fn run(bench: Bench) -> Result<()> {
    match bench {
        Bench::Prepare { input, repeats } => prepare::prepare_throughput(input, repeats),
        Bench::Train(opts) => train::run(&opts),
        Bench::Generate(opts) => generate::run(&opts),
        Bench::Leaky(opts) => leaky::run(&opts),
    }
}

impl RunArgs {
    /// The device, seeded with 0, and the CPU threads.
    fn open(&self) -> Result<(Device, usize)> {
        let threads = set_threads(self.threads)?;
        let device = device_from_name(&self.device)?;
        device.seed(0);
        Ok((device, threads))
    }
}

/// Sizes the CPU backend's thread pool (its matmuls and reductions run on rayon's global
/// pool; a GPU backend's host side too); `None` keeps rayon's default of one per core.
fn set_threads(threads: Option<usize>) -> Result<usize> {
    if let Some(n) = threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("sizing the thread pool")?;
    }
    Ok(rayon::current_num_threads())
}

/// Seconds of each of `runs` calls of `f`, after `warmup` untimed ones.
fn times(warmup: usize, runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    for _ in 0..warmup {
        f()?;
    }
    (0..runs.max(1))
        .map(|_| {
            let start = Instant::now();
            f()?;
            Ok(start.elapsed().as_secs_f64())
        })
        .collect()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    match n % 2 {
        1 => xs[n / 2],
        _ => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// The process's peak resident memory so far, in MiB (`VmHWM`; Linux only, else `None`).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
