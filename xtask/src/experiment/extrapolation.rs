//! A report's length extrapolation: the evaluated text in windows of several training
//! blocks, read whole where a model can, and the same tokens past the first block read through
//! a one-block sliding window (every model can; GPT past its block only so).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use super::compare::{Group, beyond, color, display, sliding};
use super::plot::{Line, lines_chart};
use super::results::Layout;

/// Per-position losses of long windows averaged over runs of `SMOOTH` positions, so that the
/// curves of several models stay readable.
const SMOOTH: usize = 16;

pub fn write(md: &mut String, name: &str, groups: &[Group], layout: &Layout) -> Result<()> {
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
        "The evaluated text (stories one after the other) in windows of 1, {} training blocks: \
         the mean loss over the whole window read whole, and over the positions past the first \
         block, read whole and through a one-block sliding window (reads of one block every \
         quarter block, each scoring its last quarter: every token sees three quarters of a \
         block to one block before it). Both columns past the block score the same tokens: \
         the sliding window is the baseline for a model that cannot read further, and what a \
         whole window adds over it is the model's own extrapolation.\n",
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
        write!(
            header,
            " {f} blocks | past the block, {f} blocks | same tokens, sliding |"
        )?;
        rule.push_str("---:|---:|---:|");
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
                let show = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.4}"));
                let slide = show(sliding(r, f));
                match r.extrapolation.iter().find(|e| e.factor == f) {
                    Some(e) if e.loss.is_some() => {
                        let past = show(beyond(r, f));
                        let whole = show(e.loss);
                        write!(row, " {whole} | {past} | {slide} |")?;
                    }
                    Some(_) => write!(row, " cannot read it | - | {slide} |")?,
                    None => row.push_str(" - | - | - |"),
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

/// The loss by position in the longest windows each model can read (GPT's stop at its block),
/// and thin, past the first block, the same tokens through the one-block sliding window.
fn extrapolation_plot(path: &Path, g: &Group, longest: usize) -> Result<()> {
    let smooth = |values: &[f64], from: usize| -> Vec<(f64, f64)> {
        values
            .chunks(SMOOTH)
            .enumerate()
            .map(|(c, v)| {
                let x = (from + c * SMOOTH) as f64 + (v.len() as f64 - 1.0) / 2.0;
                (x, v.iter().sum::<f64>() / v.len() as f64)
            })
            .collect()
    };
    let mut lines = Vec::new();
    for r in &g.best {
        let long = r.extrapolation.iter().find(|e| e.factor == longest);
        let whole = long
            .filter(|e| e.loss.is_some())
            .map_or(&r.val_per_position, |e| &e.per_position);
        lines.push(Line {
            label: display(r).into(),
            points: smooth(whole, 0),
            color: color(r, g),
            thin: false,
        });
        if let Some(e) = long.filter(|e| !e.sliding_per_position.is_empty()) {
            lines.push(Line {
                label: format!("{}, one-block sliding window", display(r)),
                points: smooth(&e.sliding_per_position, e.length / e.factor),
                color: color(r, g),
                thin: true,
            });
        }
    }
    let title = format!(
        "{}: {} loss by position, windows of {longest} training blocks",
        g.name,
        g.text()
    );
    let axes = ("position in the window", "loss (mean of 16 positions)");
    lines_chart(path, &title, axes, &lines)
}
