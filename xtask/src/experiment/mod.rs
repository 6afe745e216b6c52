//! `cargo xtask experiment <name>`: runs what `experiments/<name>.toml` describes (see
//! [`spec`]), one command per paper table or figure, each writing its report under
//! `docs/results/`.

mod claims;
mod compare;
mod extrapolation;
mod plot;
mod provenance;
mod recall;
mod regbench;
mod report;
mod results;
mod runs;
mod seeds;
pub mod spec;
mod three_moons;
mod window;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use spec::{Kind, Spec};

/// Where the experiment files are.
pub const EXPERIMENTS_DIR: &str = "experiments";

/// Every experiment file, by name, sorted.
fn experiment_files() -> Result<Vec<(String, PathBuf)>> {
    let dir = Path::new(EXPERIMENTS_DIR);
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("{}: cannot read", dir.display()))?;
    let mut files: Vec<(String, PathBuf)> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .filter_map(|p| Some((p.file_stem()?.to_str()?.to_string(), p)))
        .collect();
    files.sort();
    Ok(files)
}

pub fn list() -> Result<()> {
    for (name, path) in experiment_files()? {
        let spec = Spec::read(&path)?;
        println!(
            "{name:<17} {}\n{:<17} expected time: {}",
            spec.about, "", spec.cpu_time
        );
    }
    Ok(())
}

/// `name` is an experiment under `experiments/`, or the path of an experiment file.
pub fn run(name: &str, options: &Options) -> Result<()> {
    let (name, path) = match name.ends_with(".toml") {
        true => {
            let path = PathBuf::from(name);
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("experiment");
            (stem.to_string(), path)
        }
        false => experiment_files()?
            .into_iter()
            .find(|(n, _)| n == name)
            .with_context(|| {
                format!("unknown experiment `{name}`; `cargo xtask experiment --list` shows them")
            })?,
    };
    let spec = Spec::read(&path)?;
    match spec.kind {
        Kind::Runs => runs::run(&name, &spec, options),
        Kind::Recall => recall::run(&name, &spec, options),
        Kind::ThreeMoons => three_moons::run(options),
        Kind::Regbench => regbench::run(options),
    }
}

/// Knobs shared by experiments; each documents which it reads.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Training steps (three-moons, runs) or epochs (regbench); default: the file's. Part of
    /// a run's config: results made with another count are not reused.
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub steps: Option<usize>,
    /// Train every run again from scratch, ignoring results and checkpoints already there
    /// (runs).
    #[arg(long)]
    pub fresh: bool,
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
    #[arg(long, default_value = "docs/results", value_parser = non_empty_path)]
    pub out: PathBuf,
    /// Where a `runs` experiment keeps its checkpoints (`<runs-dir>/<name>/<run>/`).
    #[arg(long, default_value = "runs/experiments", value_parser = non_empty_path)]
    pub runs_dir: PathBuf,
    /// flex (the CPU), wgpu or cuda[:N] (built with that cargo feature).
    #[arg(long, env = mosaic_models::DEVICE_ENV, default_value = "flex")]
    pub device: String,
}

/// A path option: an empty one would name the working directory.
fn non_empty_path(value: &str) -> Result<PathBuf, String> {
    match value.is_empty() {
        true => Err("an empty path; give a directory".into()),
        false => Ok(PathBuf::from(value)),
    }
}
