//! What a report compares: each group's best run of each model, the names it shows, and the
//! measures of a run that tables and claims read (losses over parts of the window, past the
//! training block, along it).

use mosaic_models::ModelKind;
use plotters::style::RGBColor;

use super::results::RunResult;
use super::spec::{Choice, Metric};

/// The model kinds as results spell them.
pub const MM: &str = ModelKind::MemoryMosaic.as_str();
pub const GPT: &str = ModelKind::Gpt.as_str();

/// Per-position losses from this position on count as "late" (in-context learning done)...
pub const LATE: usize = 64;
/// ...and before this one as "early" (little context yet).
pub const EARLY: usize = 16;

/// Each group's best run (lowest selection loss) of each model or labelled variant, in the
/// runs' order.
pub struct Group<'a> {
    pub name: String,
    pub best: Vec<&'a RunResult>,
}

impl<'a> Group<'a> {
    /// The best run of a model kind or label.
    pub fn model(&self, key: &str) -> Option<&'a RunResult> {
        self.best.iter().copied().find(|r| r.key() == key)
    }

    /// The text its losses are reported on: the test part where stories were held out, the
    /// validation split otherwise.
    pub fn text(&self) -> &'static str {
        reported_text(self.best.iter().copied())
    }
}

/// The text `runs`' losses are on: `test` where each held stories out, else `validation`.
pub fn reported_text<'a>(mut runs: impl Iterator<Item = &'a RunResult>) -> &'static str {
    match runs.all(|r| r.selection_loss.is_some()) {
        true => "test",
        false => "validation",
    }
}

/// A run's rank when choosing a model's best: a run that diverged counts only when the model
/// has no other.
fn rank(r: &RunResult, choice: Choice) -> (bool, f64) {
    let loss = match choice {
        Choice::Selection => r.choice_loss(),
        Choice::Ood => r.ood_choice.or(r.ood_loss).unwrap_or(f64::INFINITY),
    };
    (r.diverged_at.is_some(), loss)
}

pub fn groups(results: &[RunResult]) -> Vec<Group<'_>> {
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
        let better =
            |a: &RunResult, b: &RunResult| rank(a, Choice::Selection) < rank(b, Choice::Selection);
        match group.best.iter_mut().find(|b| b.key() == r.key()) {
            Some(b) if better(r, b) => *b = r,
            Some(_) => {}
            None => group.best.push(r),
        }
    }
    groups
}

/// The best run of `key` in `group` as `choice` ranks them.
pub fn best<'a>(
    runs: &'a [RunResult],
    group: &str,
    key: &str,
    choice: Choice,
) -> Option<&'a RunResult> {
    runs.iter()
        .filter(|r| r.group == group && r.key() == key)
        .min_by(|a, b| {
            rank(a, choice)
                .partial_cmp(&rank(b, choice))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
}

fn label(model: &str) -> &str {
    match model {
        MM => "Memory Mosaic",
        GPT => "GPT",
        other => other,
    }
}

/// A run's name in tables and legends: its label, or its model's.
pub fn display(r: &RunResult) -> &str {
    match r.label.is_empty() {
        true => label(&r.model),
        false => &r.label,
    }
}

pub const BLUE: RGBColor = RGBColor(31, 119, 180);
pub const RED: RGBColor = RGBColor(214, 39, 40);
/// For the Memory Mosaic's labelled variants (GPT stays red).
const PALETTE: [RGBColor; 6] = [
    BLUE,
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
];

pub fn color(r: &RunResult, group: &Group) -> RGBColor {
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

/// NaN for no values: a window too short for a measure shows as NaN, never as 0.
fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

pub fn late(per_position: &[f64]) -> f64 {
    mean(&per_position[LATE.min(per_position.len())..])
}

pub fn early(per_position: &[f64]) -> f64 {
    mean(&per_position[..EARLY.min(per_position.len())])
}

/// The mean loss past the training block in windows of `factor` blocks, read whole.
pub fn beyond(r: &RunResult, factor: usize) -> Option<f64> {
    let e = r.extrapolation.iter().find(|e| e.factor == factor)?;
    let block = e.length / e.factor;
    let tail = e.per_position.get(block..).filter(|t| !t.is_empty())?;
    Some(mean(tail))
}

/// The same tokens as [`beyond`], read through a one-block sliding window.
pub fn sliding(r: &RunResult, factor: usize) -> Option<f64> {
    let e = r.extrapolation.iter().find(|e| e.factor == factor)?;
    (!e.sliding_per_position.is_empty()).then(|| mean(&e.sliding_per_position))
}

pub fn metric(metric: Metric, r: &RunResult) -> Option<f64> {
    let ood = (!r.ood_per_position.is_empty()).then_some(&r.ood_per_position);
    match metric {
        Metric::Val => Some(r.val_loss),
        Metric::Ood => r.ood_loss,
        Metric::ValLate => Some(late(&r.val_per_position)),
        Metric::OodLate => ood.map(|o| late(o)),
        Metric::Beyond2x => beyond(r, 2),
        Metric::Beyond4x => beyond(r, 4),
        Metric::Beyond2xSliding => sliding(r, 2),
        Metric::Beyond4xSliding => sliding(r, 4),
        Metric::Rise4x => Some(beyond(r, 4)? - sliding(r, 4)?),
        Metric::Growth => Some(late(&r.val_per_position) - early(&r.val_per_position)),
        Metric::OodGrowth => ood.map(|o| late(o) - early(o)),
    }
}

/// `against - model` per position, in bins of `bin` positions (the last may be shorter):
/// `(first position of the bin, mean gap)`.
pub fn binned_gap(model: &[f64], against: &[f64], bin: usize) -> Vec<(usize, f64)> {
    let n = model.len().min(against.len());
    (0..n)
        .step_by(bin)
        .map(|at| {
            let end = (at + bin).min(n);
            let gap: Vec<f64> = (at..end).map(|p| against[p] - model[p]).collect();
            (at, mean(&gap))
        })
        .collect()
}

/// The first position from which `model` stays ahead of `against` (their binned gap positive
/// in every later bin), if it does by the end.
pub fn crossover(model: &[f64], against: &[f64], bin: usize) -> Option<usize> {
    let gaps = binned_gap(model, against, bin);
    let from = gaps
        .iter()
        .rposition(|&(_, g)| g <= 0.0)
        .map_or(0, |i| i + 1);
    gaps.get(from).map(|&(at, _)| at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crossover_is_where_the_lead_starts_for_good() {
        let model = [3.0, 3.0, 2.0, 2.0, 1.0, 1.0];
        let against = [2.0, 2.0, 2.5, 1.5, 2.0, 2.0];
        // Bins of 2: gaps -1, 0, +1: ahead for good from position 4.
        assert_eq!(
            binned_gap(&model, &against, 2),
            [(0, -1.0), (2, 0.0), (4, 1.0)]
        );
        assert_eq!(crossover(&model, &against, 2), Some(4));
        assert_eq!(crossover(&model, &model, 2), None);
        assert_eq!(crossover(&[1.0, 1.0], &[2.0, 2.0], 1), Some(0));
    }

    #[test]
    fn growth_is_the_late_loss_minus_the_early() {
        let pp: Vec<f64> = (0..100)
            .map(|p| {
                if p < 16 {
                    5.0
                } else if p < 64 {
                    4.0
                } else {
                    3.0
                }
            })
            .collect();
        assert_eq!(early(&pp), 5.0);
        assert_eq!(late(&pp), 3.0);
    }

    fn result(name: &str, seed: u64, ood: f64) -> RunResult {
        serde_json::from_value(serde_json::json!({
            "name": name, "seed": seed, "group": "g", "model": GPT, "params": 1, "n_layer": 1,
            "learning_rate": 1e-3, "steps": 1, "tokens": 1, "val_loss": 3.0,
            "val_per_position": [], "ood_loss": ood, "ood_per_position": [], "curve": [],
            "sample": "", "train_seconds": 1.0, "tokens_per_second": 1.0, "device": "cpu"
        }))
        .unwrap()
    }

    /// Seeds added to a run change its mean out-of-distribution loss, not which run was the
    /// best there: that stays the choice at each run's first seed.
    #[test]
    fn the_best_out_of_distribution_run_is_chosen_at_the_first_seed() {
        let results = [
            result("a", 1337, 7.0),
            result("a", 1, 9.0),
            result("b", 1337, 7.5),
        ];
        let runs = super::super::seeds::average(&results);
        assert_eq!(runs[0].ood_loss, Some(8.0));
        let chosen = best(&runs, "g", GPT, Choice::Ood).unwrap();
        assert_eq!(chosen.name, "a");
    }
}
