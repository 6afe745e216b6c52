//! The report of a `runs` experiment, written from the runs' measured results only: a table of
//! every run, the best run of each model (or labelled variant) in each group side by side, the
//! claims checked, length extrapolation, loss curves, per-position losses (in distribution and
//! out of it), and the continuations.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use mosaic_models::ModelKind;
use plotters::style::RGBColor;

use super::plot::{Line, lines_chart};
use super::results::{Layout, RunResult};
use super::seeds::{self, Stats};
use super::spec::{Claim, Metric, Spec, Test};

/// The model kinds as results spell them.
const MM: &str = ModelKind::MemoryMosaic.as_str();
const GPT: &str = ModelKind::Gpt.as_str();

/// Per-position losses from this position on count as "late" (in-context learning done).
const LATE: usize = 64;

pub fn write(
    name: &str,
    spec: &Spec,
    results: &[RunResult],
    layout: &Layout,
    seconds: f64,
) -> Result<()> {
    let runs = seeds::average(results);
    let groups = groups(&runs);
    let mut md = String::new();
    writeln!(md, "# {name}\n\n{}\n", spec.about)?;
    writeln!(
        md,
        "Written by `cargo xtask experiment {name}` from `experiments/{name}.toml` (this invocation \
         {seconds:.0} s; each run's own training time is in the table; runs already finished were \
         not run again). Losses are nats per token; the validation loss is over the whole \
         validation split, every position of every window.{}\n",
        seeds_note(results)
    )?;
    runs_table(&mut md, &runs, results)?;
    best_table(&mut md, &groups, results)?;
    bracketing(&mut md, &runs, &groups)?;
    claims(&mut md, &spec.claims, &groups, results)?;
    extrapolation(&mut md, name, &groups, layout)?;
    figures(&mut md, name, &groups, layout)?;
    samples(&mut md, spec, &groups)?;
    std::fs::write(&layout.report, md)
        .with_context(|| format!("{}: cannot write", layout.report.display()))?;
    println!("wrote {}", layout.report.display());
    Ok(())
}

/// Each group's best run (lowest validation loss) of each model or labelled variant, in the
/// runs' order.
struct Group<'a> {
    name: String,
    best: Vec<&'a RunResult>,
}

impl Group<'_> {
    /// The best run of a model kind or label.
    fn model(&self, key: &str) -> Option<&RunResult> {
        self.best.iter().copied().find(|r| r.key() == key)
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
        let rank = |x: &RunResult| (x.diverged_at.is_some(), x.choice_loss());
        match group.best.iter_mut().find(|b| b.key() == r.key()) {
            Some(b) if rank(r) < rank(b) => *b = r,
            Some(_) => {}
            None => group.best.push(r),
        }
    }
    groups
}

fn label(model: &str) -> &str {
    match model {
        MM => "Memory Mosaic",
        GPT => "GPT",
        other => other,
    }
}

/// A run's name in tables and legends: its label, or its model's.
fn display(r: &RunResult) -> &str {
    match r.label.is_empty() {
        true => label(&r.model),
        false => &r.label,
    }
}

/// What the report's numbers are over: which text, one training per run or several seeds.
fn seeds_note(results: &[RunResult]) -> String {
    let split = match results.iter().all(|r| r.selection_loss.is_some()) {
        true => {
            " Stories of the training file were set aside before training: learning rates are \
             chosen on one part (selection), and every loss reported is on another (test)."
        }
        false => {
            " Learning rates are chosen on the validation split that the losses are reported on."
        }
    };
    format!("{split}{}", seeds_part(results))
}

fn seeds_part(results: &[RunResult]) -> String {
    let mut seeds: Vec<u64> = results.iter().filter_map(|r| r.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    match seeds.len() {
        0 => " One training per run (one seed): no difference below has an error bar.".into(),
        _ => format!(
            " Each run trained at seeds {seeds:?}: a loss is the mean over them ± their sample \
             standard deviation, and tables and plots show the means."
        ),
    }
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
        writeln!(
            md,
            "| {} | {} | {} | {} | {:e} | {steps} | {losses} | {per_seed} | {ood} | {:.0} s | {:.0} |",
            r.name,
            display(r),
            r.n_layer,
            r.params,
            r.learning_rate,
            r.train_seconds,
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

fn late(per_position: &[f64]) -> f64 {
    let tail = &per_position[LATE.min(per_position.len())..];
    tail.iter().sum::<f64>() / tail.len().max(1) as f64
}

/// The mean loss past the training block in windows of `factor` blocks.
fn beyond(r: &RunResult, factor: usize) -> Option<f64> {
    let e = r.extrapolation.iter().find(|e| e.factor == factor)?;
    let block = e.length / e.factor;
    let tail = e.per_position.get(block..).filter(|t| !t.is_empty())?;
    Some(tail.iter().sum::<f64>() / tail.len() as f64)
}

fn metric(metric: Metric, r: &RunResult) -> Option<f64> {
    match metric {
        Metric::Val => Some(r.val_loss),
        Metric::Ood => r.ood_loss,
        Metric::ValLate => Some(late(&r.val_per_position)),
        Metric::OodLate => (!r.ood_per_position.is_empty()).then(|| late(&r.ood_per_position)),
        Metric::Beyond2x => beyond(r, 2),
        Metric::Beyond4x => beyond(r, 4),
        Metric::Rise4x => Some(beyond(r, 4)? - late(&r.val_per_position)),
    }
}

/// `against`'s value of `metric` minus `model`'s: positive when `model` is ahead.
fn gap(m: Metric, model: &RunResult, against: &RunResult) -> Option<f64> {
    Some(metric(m, against)? - metric(m, model)?)
}

fn claims(
    md: &mut String,
    claims: &[Claim],
    groups: &[Group],
    results: &[RunResult],
) -> Result<()> {
    if claims.is_empty() {
        return Ok(());
    }
    writeln!(md, "\n## The paper's claims at this scale\n")?;
    writeln!(
        md,
        "Each claim compares the best run of two models in a group on one metric. The gap is \
         the second model's value minus the first's, per seed (the runs paired by seed); a \
         claim of a lead holds when the mean gap is at least its margin and more than twice the \
         standard error of the paired gaps (`sd / sqrt(n)`); a claim of parity holds when the \
         mean gap ± twice its standard error lies within the margin. With one seed there is no \
         standard error, and no claim is taken as holding.\n"
    )?;
    for c in claims {
        let pair = groups
            .iter()
            .find(|g| g.name == c.group)
            .and_then(|g| Some((g.model(&c.model)?, g.model(&c.against)?)));
        let Some((model, against)) = pair else {
            writeln!(
                md,
                "- **not measured**: {} (group `{}` lacks a run)",
                c.text, c.group
            )?;
            continue;
        };
        let each = |r: &RunResult| seeds::of_run(results, &r.name);
        let gaps = seeds::paired(&each(model), &each(against), |m, a| gap(c.metric, m, a));
        let Some(gaps) = gaps.filter(|g| !g.is_empty()) else {
            writeln!(
                md,
                "- **not measured**: {} ({} not measured for {} or {} at a common seed)",
                c.text,
                c.metric.describe(),
                display(model),
                display(against)
            )?;
            continue;
        };
        let gap = Stats::of(&gaps);
        let value = |r: &RunResult| metric(c.metric, r).unwrap_or(f64::NAN);
        writeln!(
            md,
            "- **{}**: {} ({}: {} {:.4}, {} {:.4}; {} ahead by {} over {} seed{}; {})",
            verdict(c.test, gap),
            c.text,
            c.metric.describe(),
            display(model),
            value(model),
            display(against),
            value(against),
            display(model),
            gap.show(4),
            gap.n,
            if gap.n == 1 { "" } else { "s" },
            test_text(c.test, gap),
        )?;
    }
    Ok(())
}

/// A claim's verdict from the paired gaps across seeds.
fn verdict(test: Test, gap: Stats) -> &'static str {
    let passes_margin = test.holds(gap.mean);
    let margin = 2.0 * gap.se();
    let beyond_noise = match test {
        Test::Ahead(_) => gap.mean > margin,
        Test::Within(w) => gap.mean.abs() + margin <= w,
    };
    match (gap.n, passes_margin, beyond_noise) {
        (_, false, _) => "does not hold",
        (0 | 1, true, _) => "not tested (one seed)",
        (_, true, true) => "holds",
        (_, true, false) => "does not hold (within seed noise)",
    }
}

fn test_text(test: Test, gap: Stats) -> String {
    let se2 = 2.0 * gap.se();
    match test {
        Test::Ahead(m) => format!("needs at least {m} and more than 2 se = {se2:.4}"),
        Test::Within(w) => format!(
            "needs |gap| + 2 se = {:.4} within {w}",
            gap.mean.abs() + se2
        ),
    }
}

const BLUE: RGBColor = RGBColor(31, 119, 180);
const RED: RGBColor = RGBColor(214, 39, 40);
/// For the Memory Mosaic's labelled variants (GPT stays red).
const PALETTE: [RGBColor; 6] = [
    BLUE,
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
];

fn color(r: &RunResult, group: &Group) -> RGBColor {
    if r.model == GPT {
        return RED;
    }
    let index = group
        .best
        .iter()
        .filter(|b| b.model != GPT)
        .position(|b| b.key() == r.key())
        .unwrap_or(0);
    PALETTE[index % PALETTE.len()]
}

/// Per-position losses of long windows averaged over runs of `SMOOTH` positions, so that the
/// curves of several models stay readable.
const SMOOTH: usize = 16;

fn extrapolation(md: &mut String, name: &str, groups: &[Group], layout: &Layout) -> Result<()> {
    let mut factors: Vec<usize> = groups
        .iter()
        .flat_map(|g| g.best.iter())
        .flat_map(|r| r.extrapolation.iter().map(|e| e.factor))
        .collect();
    factors.sort_unstable();
    factors.dedup();
    let Some(&longest) = factors.last() else {
        return Ok(());
    };
    writeln!(md, "\n## Length extrapolation\n")?;
    writeln!(
        md,
        "The validation split (stories one after the other) in windows of 1, {} training \
         blocks; the mean loss over the whole window, and over the positions past the training \
         block alone.\n",
        factors
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    extrapolation_table(md, groups, &factors)?;
    extrapolation_notes(md, groups, &factors)?;
    for (i, g) in groups.iter().enumerate() {
        let file = format!("extrapolation-{i}.svg");
        extrapolation_plot(&layout.results.join(&file), g, longest)?;
        writeln!(md, "\n![{} extrapolation]({name}/{file})", g.name)?;
    }
    Ok(())
}

/// One row per best run: its loss at one block, and at each factor over the whole window and
/// past the training block.
fn extrapolation_table(md: &mut String, groups: &[Group], factors: &[usize]) -> Result<()> {
    let mut header = "| group | model | parameters | 1 block |".to_string();
    let mut rule = "|---|---|---:|---:|".to_string();
    for f in factors {
        write!(header, " {f} blocks | past the block, {f} blocks |")?;
        rule.push_str("---:|---:|");
    }
    writeln!(md, "{header}\n{rule}")?;
    for g in groups {
        for r in &g.best {
            let mut row = format!(
                "| {} | {} | {} | {:.4} |",
                g.name,
                display(r),
                r.params,
                r.val_loss
            );
            for &f in factors {
                match r.extrapolation.iter().find(|e| e.factor == f) {
                    Some(e) if e.loss.is_some() => {
                        let past = beyond(r, f).map_or("-".into(), |v| format!("{v:.4}"));
                        write!(row, " {:.4} | {past} |", e.loss.unwrap_or_default())?;
                    }
                    Some(_) => row.push_str(" cannot read it | - |"),
                    None => row.push_str(" - | - |"),
                }
            }
            writeln!(md, "{row}")?;
        }
    }
    Ok(())
}

/// Why a model cannot read the longer windows, each reason once.
fn extrapolation_notes(md: &mut String, groups: &[Group], factors: &[usize]) -> Result<()> {
    let mut notes: Vec<String> = Vec::new();
    for &f in factors {
        for r in groups.iter().flat_map(|g| g.best.iter()) {
            let note = r.extrapolation.iter().find(|e| e.factor == f);
            if let Some(n) = note.and_then(|e| e.note.clone())
                && !notes.contains(&n)
            {
                notes.push(n);
            }
        }
    }
    for n in notes {
        writeln!(md, "\n*cannot read it*: {n}")?;
    }
    Ok(())
}

/// The loss by position in the longest windows each model can read (GPT's stop at its block).
fn extrapolation_plot(path: &Path, g: &Group, longest: usize) -> Result<()> {
    let lines: Vec<Line> = g
        .best
        .iter()
        .map(|r| {
            let values = r
                .extrapolation
                .iter()
                .find(|e| e.factor == longest && e.loss.is_some())
                .map_or(&r.val_per_position, |e| &e.per_position);
            let points = values
                .chunks(SMOOTH)
                .enumerate()
                .map(|(c, v)| {
                    let x = (c * SMOOTH) as f64 + (v.len() as f64 - 1.0) / 2.0;
                    (x, v.iter().sum::<f64>() / v.len() as f64)
                })
                .collect();
            Line {
                label: display(r).into(),
                points,
                color: color(r, g),
                thin: false,
            }
        })
        .collect();
    let title = format!(
        "{}: validation loss by position, windows of {longest} training blocks",
        g.name
    );
    let axes = ("position in the window", "loss (mean of 16 positions)");
    lines_chart(path, &title, axes, &lines)
}

fn figures(md: &mut String, name: &str, groups: &[Group], layout: &Layout) -> Result<()> {
    writeln!(md, "\n## Curves\n")?;
    for (i, g) in groups.iter().enumerate() {
        let mut curves = Vec::new();
        for r in &g.best {
            let m = display(r);
            let points = |val: bool| -> Vec<(f64, f64)> {
                let pick = |&(s, t, v): &(usize, f64, f64)| (s as f64, if val { v } else { t });
                r.curve.iter().map(pick).collect()
            };
            let c = color(r, g);
            curves.push(line(format!("{m} validation"), points(true), c, false));
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
