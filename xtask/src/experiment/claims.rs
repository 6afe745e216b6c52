//! The paper's claims checked on a report's runs: each compares two models' best runs of a
//! group on one measure, paired by seed, and holds only beyond seed noise.

use std::fmt::Write as _;

use anyhow::Result;

use super::compare::{Group, best, display, metric};
use super::results::RunResult;
use super::seeds::{self, Stats};
use super::spec::{Choice, Claim, Test};

pub fn write(
    md: &mut String,
    claims: &[Claim],
    groups: &[Group],
    runs: &[RunResult],
    results: &[RunResult],
) -> Result<()> {
    if claims.is_empty() {
        return Ok(());
    }
    writeln!(md, "\n## The paper's claims at this scale\n")?;
    writeln!(
        md,
        "Each claim compares the best run of two models in a group (by the selection loss, \
         unless it says otherwise) on one measure. The gap is the second model's value minus \
         the first's, per seed (the runs paired by seed); a claim of a lead holds when the mean \
         gap exceeds its margin by more than twice the standard error of the paired gaps \
         (`sd / sqrt(n)`); a claim of parity holds when the mean gap ± twice its standard error \
         lies within the margin. With one seed there is no standard error, and no claim is \
         taken as holding.\n"
    )?;
    for c in claims {
        writeln!(md, "- {}", line(c, groups, runs, results))?;
    }
    Ok(())
}

/// The claim's line: its verdict, the values compared, the gap and its test.
fn line(c: &Claim, groups: &[Group], runs: &[RunResult], results: &[RunResult]) -> String {
    let group = groups.iter().find(|g| g.name == c.group);
    let model = group.and_then(|g| g.model(&c.model));
    let text = group.map_or("validation", |g| g.text());
    let against = best(runs, &c.group, &c.against, c.against_choice);
    let (Some(model), Some(against)) = (model, against) else {
        return format!(
            "**not measured**: {} (group `{}` lacks a run)",
            c.text, c.group
        );
    };
    let each = |r: &RunResult| seeds::of_run(results, &r.name);
    let gaps = seeds::paired(&each(model), &each(against), |m, a| {
        Some(metric(c.against_metric, a)? - metric(c.metric, m)?)
    });
    let measure = match c.against_metric == c.metric {
        true => c.metric.describe(text),
        false => format!(
            "{} against {}",
            c.metric.describe(text),
            c.against_metric.describe(text)
        ),
    };
    let Some(gaps) = gaps.filter(|g| !g.is_empty()) else {
        return format!(
            "**not measured**: {} ({measure} not measured for {} or {} at a common seed)",
            c.text,
            display(model),
            display(against)
        );
    };
    let gap = Stats::of(&gaps);
    let chosen = match c.against_choice {
        Choice::Selection => String::new(),
        Choice::Ood => format!(
            " at its best out-of-distribution rate ({:e})",
            against.learning_rate
        ),
    };
    format!(
        "**{}**: {} ({measure}: {} {:.4}, {}{chosen} {:.4}; {} ahead by {} over {} seed{}; {})",
        verdict(c.test, gap),
        c.text,
        display(model),
        metric(c.metric, model).unwrap_or(f64::NAN),
        display(against),
        metric(c.against_metric, against).unwrap_or(f64::NAN),
        display(model),
        gap.show(4),
        gap.n,
        if gap.n == 1 { "" } else { "s" },
        test_text(c.test, gap),
    )
}

/// A claim's verdict from the paired gaps across seeds: a lead of at least `m` holds when
/// the mean gap exceeds `m` by more than twice its standard error; parity within `w` when the
/// mean gap ± twice its standard error lies inside `[-w, w]`.
fn verdict(test: Test, gap: Stats) -> &'static str {
    let se2 = 2.0 * gap.se();
    let beyond_noise = match test {
        Test::Ahead(m) => gap.mean - m > se2,
        Test::Within(w) => gap.mean.abs() + se2 <= w,
    };
    match (gap.n, test.holds(gap.mean), beyond_noise) {
        (_, false, _) => "does not hold",
        (0 | 1, true, _) => "not tested (one seed)",
        (_, true, true) => "holds",
        (_, true, false) => "does not hold (within seed noise)",
    }
}

fn test_text(test: Test, gap: Stats) -> String {
    let se2 = 2.0 * gap.se();
    match test {
        Test::Ahead(m) => format!("needs mean gap - {m} > 2 se = {se2:.4}"),
        Test::Within(w) => format!(
            "needs |mean gap| + 2 se = {:.4} within {w}",
            gap.mean.abs() + se2
        ),
    }
}
