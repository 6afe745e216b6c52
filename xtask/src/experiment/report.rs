//! The report of a `runs` experiment, written from the runs' measured results only: a table of
//! every run, the best run of each model in each group side by side, the claims checked,
//! loss curves, per-position losses (in distribution and out of it), and the continuations.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use plotters::style::RGBColor;

use super::plot::{Line, lines_chart};
use super::runs::{Layout, RunResult};
use super::spec::{Claim, Metric, Spec};

/// Per-position losses from this position on count as "late" (in-context learning done).
const LATE: usize = 64;

pub fn write(
    name: &str,
    spec: &Spec,
    results: &[RunResult],
    layout: &Layout,
    seconds: f64,
) -> Result<()> {
    let groups = groups(results);
    let mut md = String::new();
    writeln!(md, "# {name}\n\n{}\n", spec.about)?;
    writeln!(
        md,
        "Written by `cargo xtask experiment {name}` from `experiments/{name}.toml` (this invocation \
         {seconds:.0} s; each run's own training time is in the table; runs already finished were \
         not run again). Losses are nats per token; the validation loss is over the whole \
         validation split, every position of every window.\n"
    )?;
    runs_table(&mut md, results)?;
    best_table(&mut md, &groups)?;
    claims(&mut md, &spec.claims, &groups)?;
    figures(&mut md, name, &groups, layout)?;
    samples(&mut md, spec, &groups)?;
    std::fs::write(&layout.report, md)
        .with_context(|| format!("{}: cannot write", layout.report.display()))?;
    println!("wrote {}", layout.report.display());
    Ok(())
}

/// Each group's best run (lowest validation loss) of each model, in the runs' order.
struct Group<'a> {
    name: String,
    best: Vec<&'a RunResult>,
}

impl Group<'_> {
    fn model(&self, kind: &str) -> Option<&RunResult> {
        self.best.iter().copied().find(|r| r.model == kind)
    }
}

fn groups(results: &[RunResult]) -> Vec<Group<'_>> {
    let mut groups: Vec<Group> = Vec::new();
    for r in results {
        let group = match groups.iter_mut().find(|g| g.name == r.group) {
            Some(g) => g,
            None => {
                groups.push(Group {
                    name: r.group.clone(),
                    best: Vec::new(),
                });
                groups.last_mut().expect("just pushed")
            }
        };
        // A run that diverged counts only when the model has no other.
        let rank = |x: &RunResult| (x.diverged_at.is_some(), x.val_loss);
        match group.best.iter_mut().find(|b| b.model == r.model) {
            Some(b) if rank(r) < rank(b) => *b = r,
            Some(_) => {}
            None => group.best.push(r),
        }
    }
    groups
}

fn label(model: &str) -> &str {
    match model {
        "memory_mosaic" => "Memory Mosaic",
        "gpt" => "GPT",
        other => other,
    }
}

fn runs_table(md: &mut String, results: &[RunResult]) -> Result<()> {
    writeln!(md, "## Every run\n")?;
    writeln!(
        md,
        "| run | model | layers | parameters | lr | steps | val loss | out-of-distribution loss | training time | tokens/s |"
    )?;
    writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    for r in results {
        let ood = r.ood_loss.map_or("-".into(), |l| format!("{l:.4}"));
        let steps = match r.diverged_at {
            Some(at) => format!("{} (diverged at {at})", r.steps),
            None => r.steps.to_string(),
        };
        writeln!(
            md,
            "| {} | {} | {} | {} | {:e} | {steps} | {:.4} | {ood} | {:.0} s | {:.0} |",
            r.name,
            label(&r.model),
            r.n_layer,
            r.params,
            r.learning_rate,
            r.val_loss,
            r.train_seconds,
            r.tokens_per_second
        )?;
    }
    Ok(())
}

fn best_table(md: &mut String, groups: &[Group]) -> Result<()> {
    if !groups.iter().any(|g| g.best.len() > 1) {
        return Ok(());
    }
    writeln!(md, "\n## Each model at its best learning rate\n")?;
    writeln!(
        md,
        "| group | Memory Mosaic val | GPT val | GPT - MM | Memory Mosaic OOD | GPT OOD |"
    )?;
    writeln!(md, "|---|---:|---:|---:|---:|---:|")?;
    for g in groups {
        let (Some(mm), Some(gpt)) = (g.model("memory_mosaic"), g.model("gpt")) else {
            continue;
        };
        let ood = |r: &RunResult| r.ood_loss.map_or("-".into(), |l| format!("{l:.4}"));
        writeln!(
            md,
            "| {} | {:.4} (lr {:e}) | {:.4} (lr {:e}) | {:+.4} | {} | {} |",
            g.name,
            mm.val_loss,
            mm.learning_rate,
            gpt.val_loss,
            gpt.learning_rate,
            gpt.val_loss - mm.val_loss,
            ood(mm),
            ood(gpt)
        )?;
    }
    Ok(())
}

fn late(per_position: &[f64]) -> f64 {
    let tail = &per_position[LATE.min(per_position.len())..];
    tail.iter().sum::<f64>() / tail.len().max(1) as f64
}

/// GPT's value of `metric` minus the Memory Mosaic's: positive when the Memory Mosaic is ahead.
fn gap(metric: Metric, mm: &RunResult, gpt: &RunResult) -> Option<f64> {
    Some(match metric {
        Metric::Val => gpt.val_loss - mm.val_loss,
        Metric::Ood => gpt.ood_loss? - mm.ood_loss?,
        Metric::ValLate => late(&gpt.val_per_position) - late(&mm.val_per_position),
        Metric::OodLate => late(&gpt.ood_per_position) - late(&mm.ood_per_position),
    })
}

fn claims(md: &mut String, claims: &[Claim], groups: &[Group]) -> Result<()> {
    if claims.is_empty() {
        return Ok(());
    }
    writeln!(md, "\n## The paper's claims at this scale\n")?;
    for c in claims {
        let pair = groups
            .iter()
            .find(|g| g.name == c.group)
            .and_then(|g| Some((g.model("memory_mosaic")?, g.model("gpt")?)));
        let Some(gap) = pair.and_then(|(mm, gpt)| gap(c.metric, mm, gpt)) else {
            writeln!(
                md,
                "- **not measured**: {} (group `{}` lacks a run)",
                c.text, c.group
            )?;
            continue;
        };
        let holds = c.ahead.is_none_or(|a| gap >= a) && c.within.is_none_or(|w| gap.abs() <= w);
        let verdict = if holds { "holds" } else { "does not hold" };
        writeln!(
            md,
            "- **{verdict}**: {} ({}: GPT's minus the Memory Mosaic's {gap:+.4})",
            c.text,
            c.metric.describe()
        )?;
    }
    Ok(())
}

const BLUE: RGBColor = RGBColor(31, 119, 180);
const RED: RGBColor = RGBColor(214, 39, 40);

fn color(model: &str) -> RGBColor {
    if model == "gpt" { RED } else { BLUE }
}

fn figures(md: &mut String, name: &str, groups: &[Group], layout: &Layout) -> Result<()> {
    writeln!(md, "\n## Curves\n")?;
    for (i, g) in groups.iter().enumerate() {
        let mut curves = Vec::new();
        for r in &g.best {
            let m = label(&r.model);
            let points = |val: bool| -> Vec<(f64, f64)> {
                let pick = |&(s, t, v): &(usize, f64, f64)| (s as f64, if val { v } else { t });
                r.curve.iter().map(pick).collect()
            };
            curves.push(line(
                format!("{m} validation"),
                points(true),
                &r.model,
                false,
            ));
            curves.push(line(format!("{m} training"), points(false), &r.model, true));
        }
        let file = format!("loss-{i}.svg");
        let title = format!("{}: loss during training", g.name);
        lines_chart(
            &layout.results.join(&file),
            &title,
            ("step", "loss"),
            &curves,
        )?;
        writeln!(md, "![{}]({name}/{file})\n", g.name)?;
        for (what, ood) in [("validation", false), ("out-of-distribution", true)] {
            let per_position: Vec<Line> = g
                .best
                .iter()
                .map(|r| {
                    let values = if ood {
                        &r.ood_per_position
                    } else {
                        &r.val_per_position
                    };
                    let points = values.iter().enumerate().map(|(p, &v)| (p as f64, v));
                    line(label(&r.model).into(), points.collect(), &r.model, false)
                })
                .filter(|l| !l.points.is_empty())
                .collect();
            if per_position.is_empty() {
                continue;
            }
            let file = format!("per-position-{}-{i}.svg", if ood { "ood" } else { "val" });
            let title = format!("{}: {what} loss at each position of the window", g.name);
            let axes = ("position in the window", "loss");
            lines_chart(&layout.results.join(&file), &title, axes, &per_position)?;
            writeln!(md, "![{} {what}]({name}/{file})\n", g.name)?;
        }
    }
    Ok(())
}

fn line(label: String, points: Vec<(f64, f64)>, model: &str, thin: bool) -> Line {
    Line {
        label,
        points,
        color: color(model),
        thin,
    }
}

fn samples(md: &mut String, spec: &Spec, groups: &[Group]) -> Result<()> {
    writeln!(
        md,
        "## Continuations\n\nFrom the prompt `{}` (temperature 0.8, top-k 40, seed 0):\n",
        spec.eval.prompt
    )?;
    for g in groups {
        for r in &g.best {
            writeln!(md, "**{}, {}** (`{}`):\n", g.name, label(&r.model), r.name)?;
            writeln!(md, "> {}\n", r.sample.trim().replace('\n', "\n> "))?;
        }
    }
    Ok(())
}
