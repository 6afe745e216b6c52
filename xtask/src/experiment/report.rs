//! The report of a `runs` experiment, written from the runs' measured results only: a table of
//! every run, the best run of each model (or labelled variant) in each group side by side, the
//! claims checked, length extrapolation, loss curves, per-position losses (in distribution and
//! out of it), and the continuations.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use plotters::style::RGBColor;

use super::claims;
use super::compare::{GPT, Group, MM, color, display, groups, reported_text};
use super::extrapolation;
use super::plot::{Line, lines_chart};
use super::results::{Layout, RunResult};
use super::seeds::{self, Stats};
use super::spec::Spec;
use super::window;

pub fn write(
    name: &str,
    spec: &Spec,
    results: &[RunResult],
    layout: &Layout,
    seconds: f64,
) -> Result<()> {
    let runs = seeds::average(results);
    let groups = groups(&runs);
    let text = reported_text(results.iter());
    let part = if text == "test" { "part" } else { "split" };
    let mut md = String::new();
    writeln!(md, "# {name}\n\n{}\n", spec.about)?;
    writeln!(
        md,
        "Written by `cargo xtask experiment {name}` from `experiments/{name}.toml` (this invocation \
         {seconds:.0} s; each run's own training time is in the table; runs already finished were \
         not run again). Losses are nats per token; the {text} loss is over the whole {text} \
         {part}, every position of every window.{}\n",
        seeds_note(results)
    )?;
    runs_table(&mut md, &runs, results)?;
    best_table(&mut md, &groups, results)?;
    bracketing(&mut md, &runs, &groups)?;
    claims::write(&mut md, &spec.claims, &groups, &runs, results)?;
    window::by_depth(&mut md, name, &groups, results, layout)?;
    window::write(&mut md, name, &groups, &runs, results, layout)?;
    extrapolation::write(&mut md, name, &groups, layout)?;
    figures(&mut md, name, &groups, layout)?;
    samples(&mut md, spec, &groups)?;
    std::fs::write(&layout.report, md)
        .with_context(|| format!("{}: cannot write", layout.report.display()))?;
    println!("wrote {}", layout.report.display());
    Ok(())
}

/// What the report's numbers are over: which text, one training per run or several seeds.
fn seeds_note(results: &[RunResult]) -> String {
    let split = match results.iter().all(|r| r.selection_loss.is_some()) {
        true => {
            " Stories of the training file were set aside before training: learning rates are \
             chosen on one part (selection; at each run's first seed, so that seeds added to the \
             chosen runs leave the choice as it was), and every loss reported is on another \
             (test)."
        }
        false => {
            " Learning rates are chosen on the validation split that the losses are reported on."
        }
    };
    format!("{split}{}", seeds_part(results))
}

fn seeds_part(results: &[RunResult]) -> String {
    let several = results
        .iter()
        .any(|r| seeds::of_run(results, &r.name).len() > 1);
    if !several {
        return " One training per run (one seed): no difference below has an error bar.".into();
    }
    let mut seeds: Vec<u64> = results.iter().filter_map(|r| r.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    format!(
        " Runs trained at seeds among {seeds:?} (each run's are in the table): a loss is the \
         mean over a run's seeds ± their sample standard deviation, and tables and plots show \
         the means."
    )
}

fn runs_table(md: &mut String, runs: &[RunResult], results: &[RunResult]) -> Result<()> {
    writeln!(md, "## Every run\n")?;
    let held = runs.iter().all(|r| r.selection_loss.is_some());
    let what = if held {
        "selection loss | test loss"
    } else {
        "val loss"
    };
    writeln!(
        md,
        "| run | model | layers | parameters | lr | steps | {what} | each seed | out-of-distribution loss | training time | tokens/s |"
    )?;
    let rule = if held { "---:|---:" } else { "---:" };
    writeln!(
        md,
        "|---|---|---:|---:|---:|---:|{rule}|---|---:|---:|---:|"
    )?;
    for r in runs {
        let each = seeds::of_run(results, &r.name);
        let val = Stats::of(&each.iter().map(|s| s.val_loss).collect::<Vec<_>>());
        let per_seed = match each.len() {
            1 => "-".to_string(),
            _ => each
                .iter()
                .map(|s| format!("{}: {:.4}", s.seed.unwrap_or_default(), s.val_loss))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let ood: Option<Vec<f64>> = each.iter().map(|s| s.ood_loss).collect();
        let ood = ood.map_or("-".into(), |o| Stats::of(&o).show(4));
        let steps = match r.diverged_at {
            Some(at) => format!("{} (diverged at {at})", r.steps),
            None => r.steps.to_string(),
        };
        let selection: Option<Vec<f64>> = each.iter().map(|s| s.selection_loss).collect();
        let losses = match (held, selection) {
            (true, Some(sel)) => format!("{} | {}", Stats::of(&sel).show(4), val.show(4)),
            _ => val.show(4),
        };
        let resumed: Vec<String> = each
            .iter()
            .filter_map(|s| s.resumed_at)
            .map(|at| format!("resumed at step {at}"))
            .collect();
        let time = match resumed.is_empty() {
            true => format!("{:.0} s", r.train_seconds),
            false => format!(
                "{:.0} s ({}: its time is partial)",
                r.train_seconds,
                resumed.join(", ")
            ),
        };
        writeln!(
            md,
            "| {} | {} | {} | {} | {:e} | {steps} | {losses} | {per_seed} | {ood} | {time} | {:.0} |",
            r.name,
            display(r),
            r.n_layer,
            r.params,
            r.learning_rate,
            r.tokens_per_second
        )?;
    }
    Ok(())
}

fn best_table(md: &mut String, groups: &[Group], results: &[RunResult]) -> Result<()> {
    let both = |g: &Group| g.model(MM).is_some() && g.model(GPT).is_some();
    if !groups.iter().any(both) {
        return Ok(());
    }
    writeln!(md, "\n## Each model at its best learning rate\n")?;
    writeln!(
        md,
        "| group | Memory Mosaic loss | GPT loss | GPT - MM | Memory Mosaic OOD | GPT OOD |"
    )?;
    writeln!(md, "|---|---:|---:|---:|---:|---:|")?;
    for g in groups {
        let (Some(mm), Some(gpt)) = (g.model(MM), g.model(GPT)) else {
            continue;
        };
        let val = |r: &RunResult| {
            let each = seeds::of_run(results, &r.name);
            Stats::of(&each.iter().map(|s| s.val_loss).collect::<Vec<_>>()).show(4)
        };
        let ood = |r: &RunResult| r.ood_loss.map_or("-".into(), |l| format!("{l:.4}"));
        writeln!(
            md,
            "| {} | {} (lr {:e}) | {} (lr {:e}) | {:+.4} | {} | {} |",
            g.name,
            val(mm),
            mm.learning_rate,
            val(gpt),
            gpt.learning_rate,
            gpt.val_loss - mm.val_loss,
            ood(mm),
            ood(gpt)
        )?;
    }
    Ok(())
}

/// Whether each model's chosen learning rate has a worse rate on each side (by mean
/// validation loss): a best rate at the edge of those tried may not be the model's best.
fn bracketing(md: &mut String, runs: &[RunResult], groups: &[Group]) -> Result<()> {
    let mut rows = Vec::new();
    for g in groups {
        for best in &g.best {
            let mut tried: Vec<&RunResult> = runs
                .iter()
                .filter(|r| r.group == g.name && r.key() == best.key())
                .collect();
            if tried.len() < 2 {
                continue;
            }
            tried.sort_by(|a, b| a.learning_rate.total_cmp(&b.learning_rate));
            let rates: Vec<String> = tried
                .iter()
                .map(|r| format!("{:e} ({:.4})", r.learning_rate, r.choice_loss()))
                .collect();
            let verdict = bracket(&tried, best.learning_rate);
            rows.push(format!(
                "| {} | {} | {} | {:e} | {verdict} |",
                g.name,
                display(best),
                rates.join(", "),
                best.learning_rate
            ));
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    writeln!(md, "\n## Learning rates: is each chosen rate bracketed?\n")?;
    writeln!(
        md,
        "| group | model | rates tried (mean selection loss) | chosen | bracketed |\n|---|---|---|---:|---|"
    )?;
    for row in rows {
        writeln!(md, "{row}")?;
    }
    Ok(())
}

/// `yes` when the rates just below and just above `chosen` (in `tried`, sorted by rate) both
/// did worse; otherwise which edge it is at.
fn bracket(tried: &[&RunResult], chosen: f64) -> &'static str {
    let at = tried.iter().position(|r| r.learning_rate == chosen);
    let Some(at) = at else {
        return "-";
    };
    match (at.checked_sub(1).map(|i| tried[i]), tried.get(at + 1)) {
        (Some(_), Some(_)) => "yes",
        (None, _) => "**no**: the lowest rate tried is the best",
        (_, None) => "**no**: the highest rate tried is the best",
    }
}

fn figures(md: &mut String, name: &str, groups: &[Group], layout: &Layout) -> Result<()> {
    writeln!(md, "\n## Curves\n")?;
    for (i, g) in groups.iter().enumerate() {
        // The evaluations during training read the validation split, the selection part
        // where stories were held out.
        let during = if g.text() == "test" {
            "selection"
        } else {
            "validation"
        };
        let mut curves = Vec::new();
        for r in &g.best {
            let m = display(r);
            let points = |val: bool| -> Vec<(f64, f64)> {
                let pick = |&(s, t, v): &(usize, f64, f64)| (s as f64, if val { v } else { t });
                r.curve.iter().map(pick).collect()
            };
            let c = color(r, g);
            curves.push(line(format!("{m} {during}"), points(true), c, false));
            curves.push(line(format!("{m} training"), points(false), c, true));
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
        for (what, ood) in [(g.text(), false), ("out-of-distribution", true)] {
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
                    line(display(r).into(), points.collect(), color(r, g), false)
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

fn line(label: String, points: Vec<(f64, f64)>, color: RGBColor, thin: bool) -> Line {
    Line {
        label,
        points,
        color,
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
            writeln!(md, "**{}, {}** (`{}`):\n", g.name, display(r), r.name)?;
            writeln!(md, "> {}\n", r.sample.trim().replace('\n', "\n> "))?;
        }
    }
    Ok(())
}
