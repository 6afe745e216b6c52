//! RegBench (paper section 5.3): Memory Mosaic against a GPT of the same size, trained on N
//! automata, scored by pooled accuracy and TVD on 500 test automata.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::tensor::Device;
use mosaic_data::regbench::{NGram, Score, score};
use mosaic_models::device_from_name;
use mosaic_train::config::ModelConfig;
use mosaic_train::regbench::{
    Recipe, evaluate, examples, gpt_config_matching, mosaic_config, train,
};
use plotters::style::RGBColor;

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

struct Row {
    n: usize,
    mm: Score,
    mm_epoch: usize,
    gpt: Score,
    gpt_lr: f64,
    seconds: f64,
}

pub fn run(opts: &Options) -> Result<()> {
    let device: Device = device_from_name(&opts.device)?;
    let started = Instant::now();
    let test = examples(500, 3);
    let val = examples(500, 2);
    let ngrams: Vec<(usize, Score)> = [2, 3]
        .into_iter()
        .map(|n| {
            let mut s = Score::default();
            for e in &test {
                s.add(score(
                    &e.automaton,
                    e.inputs(),
                    &NGram { n }.predict(e.inputs()),
                ));
            }
            (n, s)
        })
        .collect();
    let mm_config = ModelConfig::MemoryMosaic(mosaic_config());
    let gpt = gpt_config_matching(mosaic_config().num_params());
    let gpt_config = ModelConfig::Gpt(gpt.clone());
    let mut rows = Vec::new();
    for &n in &opts.sizes {
        let t = Instant::now();
        let train_set = examples(n, 1000 + n as u64);
        let recipe = |lr: f64| Recipe {
            epochs: opts.steps.unwrap_or(200),
            ..Recipe::paper(lr)
        };
        let report = |name: &str| {
            let name = name.to_string();
            move |epoch: usize, loss: f64| {
                eprintln!(
                    "N={n} {name}: epoch {epoch:>3}  val loss {loss:.4}  ({:.0} s)",
                    t.elapsed().as_secs_f64()
                )
            }
        };
        let mm = train(
            &mm_config,
            &train_set,
            &val,
            &recipe(5e-4),
            &device,
            &mut report("memory mosaic"),
        );
        let mm_score = evaluate(&mm.model, &test, 32);
        let mut best_gpt = None;
        for lr in [2.5e-4, 5e-4] {
            let g = train(
                &gpt_config,
                &train_set,
                &val,
                &recipe(lr),
                &device,
                &mut report(&format!("gpt lr {lr:e}")),
            );
            if best_gpt
                .as_ref()
                .is_none_or(|(b, _): &(mosaic_train::regbench::Trained, f64)| {
                    g.best_val_loss < b.best_val_loss
                })
            {
                best_gpt = Some((g, lr));
            }
        }
        let (g, gpt_lr) = best_gpt.expect("two runs");
        rows.push(Row {
            n,
            mm: mm_score,
            mm_epoch: mm.best_epoch,
            gpt: evaluate(&g.model, &test, 32),
            gpt_lr,
            seconds: t.elapsed().as_secs_f64(),
        });
        let r = rows.last().expect("just pushed");
        println!(
            "N={n}: memory mosaic accuracy {:.4} TVD {:.4}; gpt (lr {gpt_lr:e}) accuracy {:.4} TVD {:.4}",
            r.mm.accuracy(),
            r.mm.tvd(),
            r.gpt.accuracy(),
            r.gpt.tvd()
        );
    }

    let dir = opts.out.join("regbench");
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let ours =
        |f: &dyn Fn(&Row) -> f64| rows.iter().map(|r| (r.n as f64, f(r))).collect::<Vec<_>>();
    let paper = |f: &dyn Fn(&Published) -> f64| {
        PAPER.iter().map(|p| (p.n as f64, f(p))).collect::<Vec<_>>()
    };
    for (metric, file, ours_mm, ours_gpt, paper_mm, paper_tf, ngram) in [
        (
            "accuracy",
            "accuracy.svg",
            ours(&|r| r.mm.accuracy()),
            ours(&|r| r.gpt.accuracy()),
            paper(&|p| p.mm.0),
            paper(&|p| p.transformer.0),
            ngrams
                .iter()
                .map(|(n, s)| (*n, s.accuracy()))
                .collect::<Vec<_>>(),
        ),
        (
            "TVD",
            "tvd.svg",
            ours(&|r| r.mm.tvd()),
            ours(&|r| r.gpt.tvd()),
            paper(&|p| p.mm.1),
            paper(&|p| p.transformer.1),
            ngrams
                .iter()
                .map(|(n, s)| (*n, s.tvd()))
                .collect::<Vec<_>>(),
        ),
    ] {
        let mut lines = vec![
            Line {
                label: "Memory Mosaic (ours)".into(),
                points: ours_mm,
                color: RGBColor(31, 119, 180),
                thin: false,
            },
            Line {
                label: "GPT (ours)".into(),
                points: ours_gpt,
                color: RGBColor(214, 39, 40),
                thin: false,
            },
            Line {
                label: "Memory Mosaic (paper)".into(),
                points: paper_mm,
                color: RGBColor(31, 119, 180),
                thin: true,
            },
            Line {
                label: "Transformer (paper)".into(),
                points: paper_tf,
                color: RGBColor(214, 39, 40),
                thin: true,
            },
        ];
        for (n, v) in ngram {
            let shade = if n == 2 { 170 } else { 90 };
            lines.push(Line {
                label: format!("{n}-gram (no training)"),
                points: vec![(100.0, v), (40000.0, v)],
                color: RGBColor(shade, shade, shade),
                thin: true,
            });
        }
        versus_n(
            &dir.join(file),
            &format!("RegBench {metric} on 500 test automata"),
            metric,
            &lines,
        )?;
    }

    let mut md = String::new();
    writeln!(md, "# RegBench: in-context language learning\n")?;
    writeln!(
        md,
        "Written by `cargo xtask experiment regbench` ({:.0} s on `{}`). Memory Mosaic: d 128, 8 heads, 2 layers, \
         pmem_size 448, dropout 0.05, lr 5e-4 ({} parameters); GPT: 2 layers, 8 heads, d {} ({} parameters), lr \
         2.5e-4 and 5e-4, the better by validation loss. AdamW (0.9, 0.999), weight decay 0.1, batch 32, {} epochs, \
         warm-up from 1e-6 over 10 % of the steps then cosine to 0.1 lr, gradient clip 1, the checkpoint with the best \
         loss on 500 validation automata; scores pooled over every input position of 500 test automata.\n",
        started.elapsed().as_secs_f64(),
        opts.device,
        mosaic_config().num_params(),
        gpt.n_embd,
        gpt.num_params(),
        opts.steps.unwrap_or(200)
    )?;
    writeln!(
        md,
        "| N | Memory Mosaic acc / TVD | GPT acc / TVD | paper MM | paper Transformer | time |"
    )?;
    writeln!(md, "|---:|---|---|---|---|---:|")?;
    for r in &rows {
        let p = PAPER.iter().find(|p| p.n == r.n);
        writeln!(
            md,
            "| {} | {:.3} / {:.3} (epoch {}) | {:.3} / {:.3} (lr {:e}) | {} | {} | {:.0} s |",
            r.n,
            r.mm.accuracy(),
            r.mm.tvd(),
            r.mm_epoch,
            r.gpt.accuracy(),
            r.gpt.tvd(),
            r.gpt_lr,
            p.map_or("-".into(), |p| format!("{:.3} / {:.3}", p.mm.0, p.mm.1)),
            p.map_or("-".into(), |p| format!(
                "{:.3} / {:.3}",
                p.transformer.0, p.transformer.1
            )),
            r.seconds
        )?;
    }
    writeln!(
        md,
        "\nIn-context n-gram predictors on the same test automata (no training):\n"
    )?;
    for (n, s) in &ngrams {
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
    let path = opts.out.join("regbench.md");
    std::fs::write(&path, md).with_context(|| format!("{}: cannot write", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}
