//! `cargo xtask bench train`: what a training step costs, side by side with the official code's
//! `bench_official.py` (same configuration, same keys).
//!
//! Model FLOPs per token follow nanoGPT's `estimate_mfu` (the PaLM appendix): `6 N + 12 L d T`,
//! where `N` counts the parameters that multiply every token (all weights, the persistent
//! banks, the tied head; not GPT's position table) and `12 L d T` is the attention (or
//! contextual-memory) score and value products of a `T`-token window, forward and backward.
//! Elementwise work, softmaxes and the leaky average are left out, as nanoGPT leaves them out,
//! so both implementations are measured against the same count.

use anyhow::Result;
use burn::module::Module;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use mosaic_models::{ModelConfig, cross_entropy, describe};
use mosaic_train::optim::AdamW;
use mosaic_train::schedule::Schedule;
use mosaic_train::{Engine, Precision, Recipe};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{ModelArgs, RunArgs, launches, median, peak_rss_mib, times};

#[derive(clap::Args)]
pub struct Options {
    #[command(flatten)]
    model: ModelArgs,
    #[arg(long, default_value_t = 256)]
    block: usize,
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Timed steps (the median is reported), after 3 untimed ones.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Compute type of the steps: f32, or bf16/f16 with f32 master weights (GPUs).
    #[arg(long, default_value = "f32")]
    precision: Precision,
    #[command(flatten)]
    run: RunArgs,
}

/// `6 N + 12 L d T` (see the module's documentation).
pub fn flops_per_token(config: &ModelConfig) -> f64 {
    let (n, layers, d, t) = match config {
        ModelConfig::MemoryMosaic(c) => {
            let d = c.n_embd;
            // v2's three-level memory: the same contextual maps, a SwiGLU for the bank.
            let block = match c.has_swiglu() {
                true => 3 * d * d + 3 * d * c.swiglu_width(),
                false => 5 * d * d + 2 * c.pmem_count * c.pmem_size * d,
            };
            (
                c.n_layer * block + c.vocab_size * d,
                c.n_layer,
                d,
                c.block_size,
            )
        }
        ModelConfig::Gpt(c) => {
            let d = c.n_embd;
            (
                c.n_layer * 12 * d * d + c.vocab_size * d,
                c.n_layer,
                d,
                c.block_size,
            )
        }
    };
    6.0 * n as f64 + 12.0 * (layers * d * t) as f64
}

pub fn run(opts: &Options) -> Result<()> {
    let config = opts.model.config(opts.block);
    config.validate()?;
    let (base, threads) = opts.run.open()?;
    let backend = describe(&base);
    // Before the matmul peak, which would already compute in that type.
    opts.precision.check(&base)?;
    let device = base.clone().autodiff();
    let mut engine = Engine::new(config.init(&device), recipe(opts.precision), &device);
    let params = engine.model().num_params();
    let ids = random_tokens(opts.batch, opts.block, opts.model.vocab, 1, &device);
    let targets = random_tokens(opts.batch, opts.block, opts.model.vocab, 2, &device);
    let step = || -> Result<()> {
        engine.train_step(&[1.0], |m, _| {
            Ok(cross_entropy(
                m.forward(ids.clone())?.logits,
                targets.clone(),
            ))
        })?;
        Ok(())
    };
    let mut step = step;
    let step_s = median(times(3, opts.steps, &mut step)?);
    let launches = launches::count(&base, step)?;
    let memory = base.memory_pool_usage().map(DeviceMemory::of);
    // After the steps, so that the device memory read above is the steps' alone.
    let gemm = gemm_gflops(&base, opts.precision)?;

    let tokens_per_second = (opts.batch * opts.block) as f64 / step_s;
    let flops = flops_per_token(&config);
    let mfu = flops * tokens_per_second / (gemm * 1e9);
    let rss = peak_rss_mib();
    let name = opts.model.name(engine.model().kind().as_str());
    if opts.run.json {
        println!(
            "{}",
            serde_json::json!({
                "model": name,
                "backend": backend,
                "precision": opts.precision.name(),
                "threads": threads,
                "params": params,
                "median_step_ms": step_s * 1e3,
                "tokens_per_second": tokens_per_second,
                "flops_per_token": flops,
                "gemm_gflops": gemm,
                "mfu": mfu,
                "peak_rss_mib": rss,
                "kernel_launches_per_step": launches,
                "device_memory_reserved_mib": memory.map(|m| m.reserved_mib),
                "device_memory_in_use_mib": memory.map(|m| m.in_use_mib),
            })
        );
    } else {
        println!(
            "{name} ({params} parameters), batch {} x {} tokens, {threads} threads, {backend}, \
             {}: {:.0} ms/step, {tokens_per_second:.0} tokens/s; matmul peak {gemm:.1} GFLOP/s, \
             MFU {:.1} %, peak RSS {}{}{}",
            opts.batch,
            opts.block,
            opts.precision.name(),
            step_s * 1e3,
            mfu * 100.0,
            rss.map_or("unknown".into(), |r| format!("{r:.0} MiB")),
            launches.map_or(String::new(), |n| format!(", {n} kernel launches a step")),
            memory.map_or(String::new(), |m| format!(
                ", device memory {:.0} MiB reserved ({:.0} MiB in use between steps)",
                m.reserved_mib, m.in_use_mib
            )),
        );
    }
    Ok(())
}

/// The official script's optimiser: AdamW, weight decay 0.1, a constant rate, no clipping.
fn recipe(precision: Precision) -> Recipe {
    Recipe {
        schedule: Schedule::Constant(1e-3),
        optimizer: AdamW::new(0.1),
        grad_clip: 0.0,
        seed: 0,
        precision,
    }
}

/// The GPU allocator after the steps: what its pools reserve (they only grow, so this is the
/// most any step needed at once, the peak) and what is in use between steps (weights, optimiser
/// state). CubeCL keeps no running count of bytes allocated, so no per-step total is given.
#[derive(Clone, Copy)]
struct DeviceMemory {
    reserved_mib: f64,
    in_use_mib: f64,
}

impl DeviceMemory {
    fn of(usage: burn::backend::MemoryPoolUsage) -> Self {
        let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        DeviceMemory {
            reserved_mib: mib(usage.bytes_reserved),
            in_use_mib: mib(usage.bytes_in_use),
        }
    }
}

/// Uniform token ids in `0..vocab` from the seeded generator the data sampler uses.
fn random_tokens(
    batch: usize,
    block: usize,
    vocab: usize,
    seed: u64,
    device: &Device,
) -> Tensor<2, Int> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let ids: Vec<i64> = (0..batch * block)
        .map(|_| rng.random_range(0..vocab as i64))
        .collect();
    Tensor::from_data(TensorData::new(ids, [batch, block]), device)
}

/// The backend's matmul rate in the step's compute type, GFLOP/s (median of 5): a 2048 x 2048
/// product on the CPU; on a GPU the first size from 512 (doubled up to 8192) where one product
/// takes 20 ms or more, so that launch overhead does not hide the peak.
fn gemm_gflops(device: &Device, precision: Precision) -> Result<f64> {
    let cpu = *device == Device::flex();
    let mut n: usize = if cpu { 2048 } else { 512 };
    loop {
        let seconds = gemm_seconds(device, precision, n)?;
        if cpu || seconds >= 0.02 || n >= 8192 {
            return Ok(2.0 * (n * n * n) as f64 / seconds / 1e9);
        }
        n *= 2;
    }
}

fn gemm_seconds(device: &Device, precision: Precision, n: usize) -> Result<f64> {
    let operand = || {
        let x = Tensor::<2>::random([n, n], Distribution::Normal(0.0, 1.0), device);
        match precision {
            Precision::F32 => x,
            p => x.cast(p.dtype()),
        }
    };
    let (a, b) = (operand(), operand());
    Ok(median(times(1, 5, || {
        // Reading one value makes sure the product is done on any backend.
        let c = a.clone().matmul(b.clone());
        let _ = c.narrow(0, 0, 1).narrow(1, 0, 1).into_scalar::<f32>();
        Ok(())
    })?))
}
