//! `cargo xtask experiment <name>`: one command per paper table or figure, each writing its
//! report under `docs/results/`.

mod plot;
mod regbench;
mod three_moons;

use anyhow::{Result, bail};

pub struct Experiment {
    pub name: &'static str,
    pub about: &'static str,
    /// Measured on the project's 2-core CPU machines.
    pub cpu_time: &'static str,
}

pub const EXPERIMENTS: &[Experiment] = &[
    Experiment {
        name: "three-moons",
        about: "paper section 3: one memory vs three on the three-moons toy (error vs context, attention maps, weights)",
        cpu_time: "about 35 minutes on 2 CPU cores (500 training steps for each model: 9 and 25 minutes; then 512 sequences x 163 context lengths: 2 minutes)",
    },
    Experiment {
        name: "regbench",
        about: "paper section 5.3: Memory Mosaic vs a GPT of the same size on RegBench, N training automata (--sizes)",
        cpu_time: "about 2 hours on 2 CPU cores for N = 100 (800 steps of 32 sequences: Memory Mosaic 1 hour, GPT 35 minutes at each of 2 learning rates); N = 500 about 9 hours: use a GPU (--device cuda); finished runs are kept and skipped",
    },
];

pub fn list() {
    for e in EXPERIMENTS {
        println!(
            "{:<14} {}\n{:<14} expected time: {}",
            e.name, e.about, "", e.cpu_time
        );
    }
}

pub fn run(name: &str, options: &Options) -> Result<()> {
    match name {
        "three-moons" => three_moons::run(options),
        "regbench" => regbench::run(options),
        other => bail!(
            "unknown experiment `{other}`; `cargo xtask experiment --list` shows them ({})",
            EXPERIMENTS
                .iter()
                .map(|e| e.name)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Knobs shared by experiments; each documents which it reads.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Training steps (three-moons) or epochs (regbench); default: the paper's.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Training set sizes N (regbench), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,500")]
    pub sizes: Vec<usize>,
    /// Measure every this many context lengths (three-moons).
    #[arg(long, default_value_t = 5)]
    pub stride: usize,
    /// Sequences averaged per measurement (three-moons).
    #[arg(long, default_value_t = 512)]
    pub sequences: usize,
    /// Where the report goes.
    #[arg(long, default_value = "docs/results")]
    pub out: std::path::PathBuf,
    /// flex (the CPU), wgpu or cuda (built with that cargo feature).
    #[arg(long, default_value = "flex")]
    pub device: String,
}
