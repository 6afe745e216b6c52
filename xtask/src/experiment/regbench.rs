//! RegBench (paper section 5.3): Memory Mosaic against a GPT of the same size, trained on N
//! automata, scored by pooled accuracy and TVD on 500 test automata.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use burn::tensor::Device;
use mosaic_data::regbench::Example;
use mosaic_data::regbench::{NGram, Score};
use mosaic_models::device_from_name;
use mosaic_models::{GptConfig, ModelConfig};
use mosaic_train::regbench::{
    Protocol, evaluate, examples, gpt_config_matching, mosaic_config, mosaic_v2_config, train,
};
use plotters::style::RGBColor;
use serde::{Deserialize, Serialize};

use super::Options;
use super::plot::{Line, versus_n};

/// Read from the paper's figure: accuracy and TVD of the Memory Mosaic and the transformer.
struct Published {
    n: usize,
    mm: (f64, f64),
    transformer: (f64, f64),
}

const PAPER: [Published; 5] = [
    Published {
        n: 100,
        mm: (0.925, 0.569),
        transformer: (0.523, 0.685),
    },
    Published {
        n: 500,
        mm: (0.929, 0.254),
        transformer: (0.543, 0.64),
    },
    Published {
        n: 1000,
        mm: (0.934, 0.215),
        transformer: (0.531, 0.63),
    },
    Published {
        n: 2500,
        mm: (0.941, 0.185),
        transformer: (0.925, 0.232),
    },
    Published {
        n: 40000,
        mm: (0.959, 0.122),
        transformer: (0.951, 0.144),
    },
];

/// One finished training run, kept under `<out>/regbench/runs/` so that an interrupted
/// experiment resumes where it stopped and a report can gather runs made on other machines.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunResult {
    n: usize,
    model: String,
    lr: f64,
    epochs: usize,
    accuracy: f64,
    tvd: f64,
    best_val_loss: f64,
    best_epoch: usize,
    seconds: f64,
    device: String,
}

struct Row {
    n: usize,
    mm: Option<RunResult>,
    /// Memory Mosaics v2 (adaptive bandwidth, gated keys, three-level memory).
    v2: Option<RunResult>,
    /// The GPT run with the best validation loss, and the learning rates that were run.
    gpt: Option<RunResult>,
    gpt_lrs: Vec<f64>,
}

const MODELS: [(&str, f64); 4] = [
    ("memory-mosaic", 5e-4),
    ("gpt", 2.5e-4),
    ("gpt", 5e-4),
    ("memory-mosaic-v2", 5e-4),
];

fn run_path(dir: &Path, n: usize, model: &str, lr: f64) -> PathBuf {
    dir.join("runs").join(format!("n{n}-{model}-lr{lr:e}.json"))
}

fn load_run(path: &Path, epochs: usize) -> Result<Option<RunResult>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let run: RunResult = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not a RegBench run result; delete it to run again",
            path.display()
        )
    })?;
    Ok((run.epochs == epochs).then_some(run))
}

/// What every run of one invocation shares.
struct Setup<'a> {
    opts: &'a Options,
    device: Device,
    dir: PathBuf,
    epochs: usize,
    gpt: GptConfig,
    val: Vec<Example>,
    test: Vec<Example>,
    ngrams: Vec<(usize, Score)>,
    started: Instant,
}

pub fn run(opts: &Options) -> Result<()> {
    let dir = opts.out.join("regbench");
    std::fs::create_dir_all(dir.join("runs"))
        .with_context(|| format!("{}: cannot create", dir.display()))?;
    let test = examples(500, 3);
    let setup = Setup {
        opts,
        device: device_from_name(&opts.device)?,
        dir,
        epochs: opts.steps.unwrap_or(200),
        gpt: gpt_config_matching(mosaic_config().num_params()),
        val: examples(500, 2),
        ngrams: [2, 3]
            .into_iter()
            .map(|n| (n, NGram { n }.score_on(&test)))
            .collect(),
        test,
        started: Instant::now(),
    };
    for &n in &opts.sizes {
        let train_set = examples(n, 1000 + n as u64);
        for (model, lr) in MODELS {
            let path = run_path(&setup.dir, n, model, lr);
            if let Some(done) = load_run(&path, setup.epochs)? {
                eprintln!(
                    "N={n} {model} lr {lr:e}: done before ({}), accuracy {:.4} TVD {:.4}",
                    path.display(),
                    done.accuracy,
                    done.tvd
                );
                continue;
            }
            let result = train_one(&setup, &train_set, model, lr)?;
            println!(
                "N={n} {model} lr {lr:e}: accuracy {:.4} TVD {:.4} (best epoch {}, {:.0} s)",
                result.accuracy, result.tvd, result.best_epoch, result.seconds
            );
            mosaic_data::atomic::write_atomically(
                &path,
                serde_json::to_string_pretty(&result)?.as_bytes(),
            )
            .with_context(|| format!("{}: cannot write", path.display()))?;
            report(&setup)?;
        }
    }
    report(&setup)
}

/// Trains `model` at `lr` on `train_set` and scores it on the test automata.
fn train_one(setup: &Setup, train_set: &[Example], model: &str, lr: f64) -> Result<RunResult> {
    let n = train_set.len();
    let t = Instant::now();
    let config = match model {
        "gpt" => ModelConfig::Gpt(setup.gpt.clone()),
        "memory-mosaic-v2" => ModelConfig::MemoryMosaic(mosaic_v2_config()),
        _ => ModelConfig::MemoryMosaic(mosaic_config()),
    };
    let protocol = Protocol {
        epochs: setup.epochs,
        ..Protocol::paper(lr)
    };
    let trained = train(
        &config,
        train_set,
        &setup.val,
        &protocol,
        &setup.device,
        &mut |epoch, loss, [train, val]| {
            eprintln!(
                "N={n} {model} lr {lr:e}: epoch {epoch:>3}  val loss {loss:.4}  \
                 (training {train:.0} s, validation {val:.0} s, {:.0} s in all)",
                t.elapsed().as_secs_f64()
            )
        },
    )?;
    let s = evaluate(&trained.model, &setup.test, 32)?;
    Ok(RunResult {
        n,
        model: model.into(),
        lr,
        epochs: setup.epochs,
        accuracy: s.accuracy(),
        tvd: s.tvd(),
        best_val_loss: trained.best_val_loss,
        best_epoch: trained.best_epoch,
        seconds: t.elapsed().as_secs_f64(),
        device: setup.opts.device.clone(),
    })
}

/// Writes `regbench.md` and its plots from every run result found for the requested sizes.
fn report(setup: &Setup) -> Result<()> {
    let rows = gather(setup)?;
    plot(setup, &rows)?;
    let md = write_report(setup, &rows)?;
    let path = setup.opts.out.join("regbench.md");
    std::fs::write(&path, md).with_context(|| format!("{}: cannot write", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

/// The finished runs of each requested size: the Memory Mosaic's, and the GPT's with the best
/// validation loss.
fn gather(setup: &Setup) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for &n in &setup.opts.sizes {
        let runs = |model: &str| -> Result<Vec<RunResult>> {
            MODELS
                .iter()
                .filter(|(m, _)| *m == model)
                .filter_map(|&(m, lr)| {
                    load_run(&run_path(&setup.dir, n, m, lr), setup.epochs).transpose()
                })
                .collect()
        };
        let mm = runs("memory-mosaic")?.pop();
        let v2 = runs("memory-mosaic-v2")?.pop();
        let gpts = runs("gpt")?;
        let gpt_lrs = gpts.iter().map(|g| g.lr).collect();
        let gpt = gpts
            .into_iter()
            .min_by(|a, b| a.best_val_loss.total_cmp(&b.best_val_loss));
        if mm.is_some() || gpt.is_some() || v2.is_some() {
            rows.push(Row {
                n,
                mm,
                v2,
                gpt,
                gpt_lrs,
            });
        }
    }
    Ok(rows)
}

/// Accuracy and TVD against N: ours, the paper's, and the n-gram baselines.
fn plot(setup: &Setup, rows: &[Row]) -> Result<()> {
    type Metric = fn(f64, f64) -> f64;
    let metrics: [(&str, &str, Metric); 2] = [
        ("accuracy", "accuracy.svg", |acc, _| acc),
        ("TVD", "tvd.svg", |_, tvd| tvd),
    ];
    for (metric, file, pick) in metrics {
        let ours = |pick_run: fn(&Row) -> &Option<RunResult>| -> Vec<(f64, f64)> {
            rows.iter()
                .filter_map(|r| {
                    let run = pick_run(r);
                    run.as_ref()
                        .map(|run| (r.n as f64, pick(run.accuracy, run.tvd)))
                })
                .collect()
        };
        let paper = |tf: bool| -> Vec<(f64, f64)> {
            PAPER
                .iter()
                .map(|p| {
                    let (acc, tvd) = if tf { p.transformer } else { p.mm };
                    (p.n as f64, pick(acc, tvd))
                })
                .collect()
        };
        let blue = RGBColor(31, 119, 180);
        let red = RGBColor(214, 39, 40);
        let line = |label: &str, points, color, thin| Line {
            label: label.into(),
            points,
            color,
            thin,
        };
        let green = RGBColor(44, 160, 44);
        let mut lines = vec![
            line("Memory Mosaic (ours)", ours(|r| &r.mm), blue, false),
            line("Memory Mosaic v2 (ours)", ours(|r| &r.v2), green, false),
            line("GPT (ours)", ours(|r| &r.gpt), red, false),
            line("Memory Mosaic (paper)", paper(false), blue, true),
            line("Transformer (paper)", paper(true), red, true),
        ];
        for (n, s) in &setup.ngrams {
            let shade = if *n == 2 { 170 } else { 90 };
            let v = pick(s.accuracy(), s.tvd());
            lines.push(Line {
                label: format!("{n}-gram (no training)"),
                points: vec![(100.0, v), (40000.0, v)],
                color: RGBColor(shade, shade, shade),
                thin: true,
            });
        }
        let title = format!("RegBench {metric} on 500 test automata");
        versus_n(&setup.dir.join(file), &title, metric, &lines)?;
    }
    Ok(())
}

fn write_report(setup: &Setup, rows: &[Row]) -> Result<String> {
    let mut md = String::new();
    writeln!(md, "# RegBench: in-context language learning\n")?;
    writeln!(
        md,
        "Written by `cargo xtask experiment regbench` (this invocation {:.0} s on `{}`; each run's own time and \
         device are in the table). Memory Mosaic: d 128, 8 heads, 2 layers, pmem_size 448, dropout 0.05, lr 5e-4 \
         ({} parameters); GPT: 2 layers, 8 heads, d {} ({} parameters), lr 2.5e-4 and 5e-4, the better by \
         validation loss; Memory Mosaic v2: the same with adaptive bandwidth, gated keys and the three-level \
         memory (short-term window {}, long-term offsets {:?}, SwiGLU of width {}; {} parameters), lr 5e-4. \
         AdamW (0.9, 0.999), weight decay 0.1, batch 32, {} epochs, warm-up from 1e-6 over \
         10 % of the steps then cosine to 0.1 lr, gradient clip 1, the checkpoint with the best loss on 500 \
         validation automata (checked every 10 epochs); scores pooled over every input position of 500 test \
         automata. Each run's result is in `regbench/runs/`; the command skips runs already there.\n",
        setup.started.elapsed().as_secs_f64(),
        setup.opts.device,
        mosaic_config().num_params(),
        setup.gpt.n_embd,
        setup.gpt.num_params(),
        mosaic_v2_config().short_window,
        mosaic_v2_config().long_offset,
        mosaic_v2_config().swiglu_width(),
        mosaic_v2_config().num_params(),
        setup.epochs,
    )?;
    writeln!(
        md,
        "| N | Memory Mosaic acc / TVD | Memory Mosaic v2 acc / TVD | GPT acc / TVD | paper MM | paper Transformer |"
    )?;
    writeln!(md, "|---:|---|---|---|---|---|")?;
    for r in rows {
        writeln!(md, "{}", table_row(r))?;
    }
    writeln!(
        md,
        "\nIn-context n-gram predictors on the same test automata (no training):\n"
    )?;
    for (n, s) in &setup.ngrams {
        writeln!(
            md,
            "- {n}-gram: accuracy {:.4}, TVD {:.4}",
            s.accuracy(),
            s.tvd()
        )?;
    }
    writeln!(
        md,
        "\n![accuracy](regbench/accuracy.svg)\n\n![TVD](regbench/tvd.svg)"
    )?;
    Ok(md)
}

fn table_row(r: &Row) -> String {
    let cell = |run: &Option<RunResult>| {
        run.as_ref().map_or("not run".to_string(), |r| {
            format!(
                "{:.3} / {:.3} (lr {:e}, best epoch {}, {:.0} s on `{}`)",
                r.accuracy, r.tvd, r.lr, r.best_epoch, r.seconds, r.device
            )
        })
    };
    let p = PAPER.iter().find(|p| p.n == r.n);
    let lrs = match r.gpt_lrs.len() {
        0 | 2 => String::new(),
        _ => {
            let lrs: Vec<String> = r.gpt_lrs.iter().map(|lr| format!("{lr:e}")).collect();
            format!("; only lr {} run", lrs.join(", "))
        }
    };
    format!(
        "| {} | {} | {} | {}{lrs} | {} | {} |",
        r.n,
        cell(&r.mm),
        cell(&r.v2),
        cell(&r.gpt),
        p.map_or("-".into(), |p| format!("{:.3} / {:.3}", p.mm.0, p.mm.1)),
        p.map_or("-".into(), |p| format!(
            "{:.3} / {:.3}",
            p.transformer.0, p.transformer.1
        )),
    )
}
