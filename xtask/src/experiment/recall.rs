//! A `recall` experiment: the in-context recall probe on the trained models of another `runs`
//! experiment (each group's best run of each model, its first seed's checkpoint), at several
//! window lengths, on the source's test part. Nothing trains: the source must have run.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use mosaic_data::{Meta, Split, TokenFile};
use mosaic_models::device_from_name;
use mosaic_train::Checkpoint;
use mosaic_train::recall::{Recall, RecallOptions, recall_probe};
use plotters::style::RGBColor;
use serde::Serialize;

use super::compare::{color, display, groups};
use super::plot::{Line, lines_chart};
use super::results::{Layout, RunResult, load_result};
use super::spec::{RecallSpec, Spec};
use super::{EXPERIMENTS_DIR, Options, seeds};

/// One probed model: which run, and what the probe measured at each length.
#[derive(Debug, Serialize)]
struct Probed {
    group: String,
    model: String,
    run: String,
    checkpoint: String,
    learning_rate: f64,
    recall: Vec<Recall>,
}

pub fn run(name: &str, spec: &Spec, opts: &Options) -> Result<()> {
    let recall = spec.recall.as_ref().context("no [recall] table")?;
    // An experiment's name, or the path of its file (named by its stem).
    let (source_name, source_path) = match recall.source.ends_with(".toml") {
        true => {
            let path = Path::new(&recall.source).to_path_buf();
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("source");
            (stem.to_string(), path)
        }
        false => (
            recall.source.clone(),
            Path::new(EXPERIMENTS_DIR).join(format!("{}.toml", recall.source)),
        ),
    };
    let source = Spec::read(&source_path)?;
    let source_layout = Layout::new(&source_name, opts);
    let (results, ids) = source_results(&source, &source_layout, &source_name)?;
    let data = &source
        .data
        .as_ref()
        .context("the source has no [data] table")?
        .dir;
    let split = match Meta::read(data)?.test_tokens {
        Some(_) => Split::Test,
        None => Split::Val,
    };
    let tokens = TokenFile::open(data, split)?;
    let device = device_from_name(&opts.device)?;
    let runs = seeds::average(&results);
    let mut probed = Vec::new();
    for g in groups(&runs) {
        for best in &g.best {
            let id = &ids[results
                .iter()
                .position(|r| r.name == best.name)
                .unwrap_or(0)];
            let dir = source_layout.checkpoints.join(id);
            let checkpoint = Checkpoint::open(&dir, &device).with_context(|| {
                format!("the checkpoint of `{id}`: run `cargo xtask experiment {source_name}`")
            })?;
            let mut found = Vec::new();
            for &factor in &recall.factors {
                eprintln!("{id}: probing windows of {factor} blocks");
                found.push(recall_probe(
                    checkpoint.model(),
                    &tokens,
                    &options(recall, factor),
                )?);
            }
            probed.push(Probed {
                group: g.name.clone(),
                model: display(best).to_string(),
                run: id.clone(),
                checkpoint: dir.display().to_string(),
                learning_rate: best.learning_rate,
                recall: found,
            });
        }
    }
    let layout = Layout::new(name, opts);
    std::fs::create_dir_all(&layout.results)
        .with_context(|| format!("{}: cannot create", layout.results.display()))?;
    let json = serde_json::to_vec_pretty(&probed)?;
    mosaic_data::atomic::write_atomically(&layout.results.join("recall.json"), &json)?;
    report(name, spec, recall, &probed, &runs, &layout, split)
}

fn options(recall: &RecallSpec, factor: usize) -> RecallOptions {
    RecallOptions {
        factor,
        span: recall.span,
        windows: recall.windows,
        seed: recall.seed,
        batch_size: 8,
    }
}

/// The source's results of every training, and each one's name (its checkpoint's folder).
fn source_results(
    source: &Spec,
    layout: &Layout,
    name: &str,
) -> Result<(Vec<RunResult>, Vec<String>)> {
    let data = source
        .data
        .as_ref()
        .context("the source has no [data] table")?;
    if Meta::read(&data.dir).is_err() {
        bail!(
            "`{name}` has not prepared its data ({}) yet: run `cargo xtask experiment {name}` first",
            data.dir.display()
        );
    }
    let (mut results, mut ids) = (Vec::new(), Vec::new());
    for instance in source.instances() {
        let (id, _) = source.instance_config(instance, &layout.checkpoints)?;
        match load_result(&layout.result(&id))? {
            Some(r) => results.push(r),
            None => bail!(
                "`{name}` has no result for `{id}` yet: run `cargo xtask experiment {name}` first"
            ),
        }
        ids.push(id);
    }
    Ok((results, ids))
}

fn report(
    name: &str,
    spec: &Spec,
    recall: &RecallSpec,
    probed: &[Probed],
    runs: &[RunResult],
    layout: &Layout,
    split: Split,
) -> Result<()> {
    let text = match split {
        Split::Test => "test part",
        _ => "validation split",
    };
    let mut md = String::new();
    writeln!(md, "# {name}\n\n{}\n", spec.about)?;
    writeln!(
        md,
        "Written by `cargo xtask experiment {name}` from `experiments/{name}.toml`, on the \
         models of `{}` (each group's best run of each model, its first seed) and its {text}. \
         In each window (the first {} of each length) a span of {} tokens from a random place \
         is repeated at the end; the loss is the mean over the copy's tokens but its first \
         (nats per token). \"Whole\" reads the whole window (GPT cannot past its block), \"last \
         block\" only the window's last training block (a one-block sliding window: a source \
         further back is out of reach), \"without the copy\" the same positions of the \
         unchanged window.\n",
        recall.source, recall.windows, recall.span
    )?;
    writeln!(
        md,
        "| group | model | run | window (tokens) | whole | last block | without the copy |\n|---|---|---|---:|---:|---:|---:|"
    )?;
    for p in probed {
        for r in &p.recall {
            let whole = r
                .whole
                .map_or("cannot read it".into(), |v| format!("{v:.4}"));
            writeln!(
                md,
                "| {} | {} | `{}` | {} | {whole} | {:.4} | {:.4} |",
                p.group, p.model, p.run, r.length, r.last_block, r.unrepeated
            )?;
        }
    }
    let mut group_names: Vec<&str> = probed.iter().map(|p| p.group.as_str()).collect();
    group_names.dedup();
    for (i, g) in group_names.iter().enumerate() {
        let file = format!("recall-{i}.svg");
        plot(&layout.results.join(&file), g, probed, runs)?;
        writeln!(md, "\n![{g} recall]({name}/{file})")?;
    }
    std::fs::write(&layout.report, md)
        .with_context(|| format!("{}: cannot write", layout.report.display()))?;
    println!("wrote {}", layout.report.display());
    Ok(())
}

/// Loss on the repeated part against the window length: whole (thick), last block (thin), and
/// the same positions without the copy (faint), which a model that recalls nothing scores.
fn plot(path: &Path, group: &str, probed: &[Probed], runs: &[RunResult]) -> Result<()> {
    let groups = groups(runs);
    let g = groups
        .iter()
        .find(|g| g.name == group)
        .context("a probed group")?;
    let mut lines = Vec::new();
    for p in probed.iter().filter(|p| p.group == group) {
        let run = g
            .best
            .iter()
            .find(|r| display(r) == p.model)
            .context("a best run")?;
        let points = |f: &dyn Fn(&Recall) -> Option<f64>| -> Vec<(f64, f64)> {
            p.recall
                .iter()
                .filter_map(|r| Some((r.length as f64, f(r)?)))
                .collect()
        };
        let whole = points(&|r| r.whole);
        // GPT reads whole windows of one block only: one point, no line.
        if whole.len() > 1 {
            lines.push(Line {
                label: format!("{}, whole window", p.model),
                points: whole,
                color: color(run, g),
                thin: false,
            });
        }
        lines.push(Line {
            label: format!("{}, last block", p.model),
            points: points(&|r| Some(r.last_block)),
            color: color(run, g),
            thin: true,
        });
        lines.push(Line {
            label: format!("{}, without the copy", p.model),
            points: points(&|r| Some(r.unrepeated)),
            color: faint(color(run, g)),
            thin: true,
        });
    }
    let title = format!("{group}: loss on a repeated span, by window length");
    lines_chart(
        path,
        &title,
        ("window length (tokens)", "loss on the copy"),
        &lines,
    )
}

/// `c` two thirds of the way to white: a baseline drawn under the model's own lines.
fn faint(c: RGBColor) -> RGBColor {
    let towards_white = |x: u8| ((u16::from(x) + 2 * 255) / 3) as u8;
    RGBColor(towards_white(c.0), towards_white(c.1), towards_white(c.2))
}
