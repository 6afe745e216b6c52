//! A report's gap along the window: how far each model is ahead of GPT at each position of
//! the window. The paper's claim is that the lead grows with context, so the report gives the
//! gap before position 16 and from 64 on, their difference (the growth, paired by seed), where
//! the model gets ahead for good, and the gap by position in bins of 16. Out of distribution,
//! GPT is taken at its best selection rate and at its best out-of-distribution rate.

use std::fmt::Write as _;

use anyhow::Result;
use plotters::style::RGBColor;

use super::compare::{
    BLUE, EARLY, GPT, Group, LATE, MM, best, binned_gap, color, crossover, display, early, late,
    reported_text,
};
use super::plot::{Line, lines_chart};
use super::results::{Layout, RunResult};
use super::seeds::{self, Stats};
use super::spec::Choice;

/// Positions per bin of the gap's plot and of the crossover.
const BIN: usize = 16;

/// One comparison: a model against one GPT run on one text.
struct Row<'a> {
    model: &'a RunResult,
    against: &'a RunResult,
    ood: bool,
}

impl Row<'_> {
    fn per_position<'r>(&self, r: &'r RunResult) -> &'r [f64] {
        match self.ood {
            true => &r.ood_per_position,
            false => &r.val_per_position,
        }
    }
}

pub fn write(
    md: &mut String,
    name: &str,
    groups: &[Group],
    runs: &[RunResult],
    results: &[RunResult],
    layout: &Layout,
) -> Result<()> {
    let mut wrote_header = false;
    for (i, g) in groups.iter().enumerate() {
        let rows = rows(g, runs);
        if rows.is_empty() {
            continue;
        }
        if !wrote_header {
            header(md)?;
            wrote_header = true;
        }
        for row in &rows {
            table_row(md, g, row, results)?;
        }
        let file = format!("gap-{i}.svg");
        plot(&layout.results.join(&file), g, &rows)?;
        writeln!(md, "\n![{} gap along the window]({name}/{file})\n", g.name)?;
    }
    Ok(())
}

fn header(md: &mut String) -> Result<()> {
    writeln!(md, "\n## The gap along the window\n")?;
    writeln!(
        md,
        "GPT's loss minus the model's at each position (positive: the model is ahead), mean \
         over seeds: before position {EARLY}, from position {LATE} on, and the growth (the \
         second minus the first, ± its standard deviation over seeds paired by seed); \"ahead \
         from\" is the first position from which the gap stays positive in every later bin of \
         {BIN} positions.\n"
    )?;
    writeln!(
        md,
        "| group | model | text | against | gap before {EARLY} | gap from {LATE} | growth | ahead from |"
    )?;
    writeln!(md, "|---|---|---|---|---:|---:|---:|---:|")?;
    Ok(())
}

/// Each non-GPT best run against GPT's best run, on the evaluated text and out of
/// distribution, and there also against GPT at its best out-of-distribution rate.
fn rows<'a>(g: &Group<'a>, runs: &'a [RunResult]) -> Vec<Row<'a>> {
    // By model kind: GPT may carry a label.
    let Some(gpt) = g.best.iter().copied().find(|r| r.model == GPT) else {
        return Vec::new();
    };
    let gpt_ood = best(runs, &g.name, gpt.key(), Choice::Ood).filter(|r| r.ood_loss.is_some());
    let mut rows = Vec::new();
    for &model in g.best.iter().filter(|r| r.model != GPT) {
        rows.push(Row {
            model,
            against: gpt,
            ood: false,
        });
        if model.ood_loss.is_some() && gpt.ood_loss.is_some() {
            rows.push(Row {
                model,
                against: gpt,
                ood: true,
            });
            if let Some(other) = gpt_ood.filter(|o| o.name != gpt.name) {
                rows.push(Row {
                    model,
                    against: other,
                    ood: true,
                });
            }
        }
    }
    rows
}

fn table_row(md: &mut String, g: &Group, row: &Row, results: &[RunResult]) -> Result<()> {
    let (m, a) = (row.per_position(row.model), row.per_position(row.against));
    let growth_of = |m: &RunResult, a: &RunResult| {
        let (m, a) = (row.per_position(m), row.per_position(a));
        (!m.is_empty() && !a.is_empty()).then(|| (late(a) - late(m)) - (early(a) - early(m)))
    };
    let each = |r: &RunResult| seeds::of_run(results, &r.name);
    let growth = seeds::paired(&each(row.model), &each(row.against), growth_of)
        .map_or("-".into(), |g| Stats::of(&g).show(4));
    let ahead = crossover(m, a, BIN).map_or("not by the end".into(), |p| p.to_string());
    writeln!(
        md,
        "| {} | {} | {} | {} (lr {:e}) | {:+.4} | {:+.4} | {growth} | {ahead} |",
        g.name,
        display(row.model),
        if row.ood {
            "out of distribution"
        } else {
            g.text()
        },
        display(row.against),
        row.against.learning_rate,
        early(a) - early(m),
        late(a) - late(m),
    )?;
    Ok(())
}

const GREY: RGBColor = RGBColor(128, 128, 128);

/// The binned gap of every row: in distribution thick, out of distribution thin; zero in grey.
fn plot(path: &std::path::Path, g: &Group, rows: &[Row]) -> Result<()> {
    let mut lines = Vec::new();
    let mut end = 0.0f64;
    for row in rows {
        let gaps = binned_gap(
            row.per_position(row.model),
            row.per_position(row.against),
            BIN,
        );
        let text = if row.ood {
            "out of distribution"
        } else {
            g.text()
        };
        let points: Vec<(f64, f64)> = gaps
            .iter()
            .map(|&(at, gap)| (at as f64 + (BIN as f64 - 1.0) / 2.0, gap))
            .collect();
        end = end.max(points.last().map_or(0.0, |p| p.0));
        lines.push(Line {
            label: format!(
                "{}, {text}, vs GPT at lr {:e}",
                display(row.model),
                row.against.learning_rate
            ),
            points,
            color: color(row.model, g),
            thin: row.ood,
        });
    }
    lines.push(Line {
        label: "no gap".into(),
        points: vec![(0.0, 0.0), (end, 0.0)],
        color: GREY,
        thin: true,
    });
    let title = format!("{}: GPT's loss minus the model's, by position", g.name);
    let axes = ("position in the window", "gap (nats, mean of 16 positions)");
    lines_chart(path, &title, axes, &lines)
}

/// The gap (GPT's loss minus the Memory Mosaic's, paired by seed) against depth,
/// where the groups compare the two models at more than one depth: a table, and a plot of the
/// mean with thin lines at ± twice its standard error.
pub fn by_depth(
    md: &mut String,
    name: &str,
    groups: &[Group],
    results: &[RunResult],
    layout: &Layout,
) -> Result<()> {
    let each = |r: &RunResult| seeds::of_run(results, &r.name);
    let mut points: Vec<(usize, Stats)> = groups
        .iter()
        .filter_map(|g| {
            let (mm, gpt) = (g.model(MM)?, g.model(GPT)?);
            let gaps = seeds::paired(&each(mm), &each(gpt), |m, a| Some(a.val_loss - m.val_loss))?;
            (!gaps.is_empty()).then(|| (mm.n_layer, Stats::of(&gaps)))
        })
        .collect();
    points.sort_by_key(|p| p.0);
    points.dedup_by_key(|p| p.0);
    if points.len() < 2 {
        return Ok(());
    }
    let text = reported_text(groups.iter().flat_map(|g| g.best.iter().copied()));
    writeln!(md, "\n## The gap by depth\n")?;
    writeln!(
        md,
        "GPT's {text} loss minus the Memory Mosaic's, each at its best rate, mean ± sd over \
         seeds (paired by seed).\n\n| depth | gap | seeds |\n|---:|---:|---:|"
    )?;
    for (depth, s) in &points {
        writeln!(md, "| {depth} | {} | {} |", s.show(4), s.n)?;
    }
    let line = |label: &str, f: &dyn Fn(&Stats) -> f64, thin: bool| Line {
        label: label.into(),
        points: points.iter().map(|(d, s)| (*d as f64, f(s))).collect(),
        color: BLUE,
        thin,
    };
    let lines = [
        line("mean gap", &|s| s.mean, false),
        line("mean + 2 se", &|s| s.mean + 2.0 * s.se(), true),
        line("mean - 2 se", &|s| s.mean - 2.0 * s.se(), true),
        Line {
            label: "no gap".into(),
            points: vec![
                (points[0].0 as f64, 0.0),
                (points[points.len() - 1].0 as f64, 0.0),
            ],
            color: GREY,
            thin: true,
        },
    ];
    let file = "gap-by-depth.svg";
    lines_chart(
        &layout.results.join(file),
        &format!("GPT's {text} loss minus the Memory Mosaic's, by depth"),
        ("layers", "gap (nats)"),
        &lines,
    )?;
    writeln!(md, "\n![gap by depth]({name}/{file})")?;
    Ok(())
}
