//! `cargo xtask bench leaky`: the leaky average in O(T) (the CPU's fused scan, and the chunked
//! tensor form other backends use) against the reference's O(T^2) matrix form, forward only,
//! at several sequence lengths.

use anyhow::Result;
use burn::tensor::{Distribution, Tensor};
use mosaic_core::LeakyAverage;
use mosaic_core::test_support::{leaky_average, leaky_average_chunked, leaky_average_quadratic};

use super::{RunArgs, median, times};

#[derive(clap::Args)]
pub struct Options {
    /// Sequence lengths, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "256,1024,2048")]
    t: Vec<usize>,
    #[arg(long, default_value_t = 8)]
    batch: usize,
    #[arg(long, default_value_t = 8)]
    heads: usize,
    #[arg(long, default_value_t = 32)]
    head_size: usize,
    /// Timed runs per form (the median is reported), after one untimed one.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    #[command(flatten)]
    run: RunArgs,
}

pub fn run(opts: &Options) -> Result<()> {
    let (device, threads) = opts.run.open()?;
    let decay = LeakyAverage::new(opts.heads, &device).decay();
    for &t in &opts.t {
        let u = Tensor::<4>::random(
            [opts.batch, opts.heads, t, opts.head_size],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let time = |f: fn(Tensor<4>, Tensor<1>) -> Tensor<4>| -> Result<f64> {
            Ok(median(times(1, opts.runs, || {
                let y = f(u.clone(), decay.clone());
                let _ = y.sum().into_scalar::<f32>();
                Ok(())
            })?))
        };
        let scan = time(leaky_average)?;
        let chunked = time(leaky_average_chunked)?;
        let matrix = time(leaky_average_quadratic)?;
        if opts.run.json {
            println!(
                "{}",
                serde_json::json!({
                    "t": t,
                    "batch": opts.batch,
                    "heads": opts.heads,
                    "head_size": opts.head_size,
                    "threads": threads,
                    "scan_ms": scan * 1e3,
                    "chunked_ms": chunked * 1e3,
                    "matrix_ms": matrix * 1e3,
                    "ratio": scan / matrix,
                })
            );
        } else {
            println!(
                "T {t:>5}  (B {}, H {}, hs {}, {threads} threads)  O(T) scan {:>9.2} ms   \
                 chunked tensor form {:>9.2} ms   O(T^2) matrix {:>9.2} ms   scan / matrix {:.3}",
                opts.batch,
                opts.heads,
                opts.head_size,
                scan * 1e3,
                chunked * 1e3,
                matrix * 1e3,
                scan / matrix
            );
        }
    }
    Ok(())
}
