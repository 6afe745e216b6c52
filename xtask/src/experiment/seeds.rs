//! A run over its seeds: the mean result that the report's tables and plots show, the spread
//! across seeds, and the paired test a claim must pass.

use super::results::{Extrapolation, RunResult};

/// Mean and sample standard deviation (`n - 1` in the denominator; 0 for one value).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub mean: f64,
    pub sd: f64,
    pub n: usize,
}

impl Stats {
    pub fn of(values: &[f64]) -> Stats {
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n.max(1) as f64;
        let sd = match n {
            0 | 1 => 0.0,
            _ => {
                let ss: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
                (ss / (n - 1) as f64).sqrt()
            }
        };
        Stats { mean, sd, n }
    }

    /// The standard error of the mean, `sd / sqrt(n)`.
    pub fn se(&self) -> f64 {
        self.sd / (self.n.max(1) as f64).sqrt()
    }

    /// `mean ± sd` with `digits` decimals; the mean alone for one value.
    pub fn show(&self, digits: usize) -> String {
        match self.n {
            0 | 1 => format!("{:.digits$}", self.mean),
            _ => format!("{:.digits$} ± {:.digits$}", self.mean, self.sd),
        }
    }
}

/// The results of each run (one per seed, in file order) averaged over its seeds, in the
/// order the runs first appear: losses, per-position losses, curves and extrapolation are the
/// means; the selection loss (which chooses rates) and the continuation are the first seed's.
pub fn average(results: &[RunResult]) -> Vec<RunResult> {
    let mut names: Vec<&str> = Vec::new();
    for r in results {
        if !names.contains(&r.name.as_str()) {
            names.push(&r.name);
        }
    }
    names
        .into_iter()
        .map(|name| {
            let seeds: Vec<&RunResult> = results.iter().filter(|r| r.name == name).collect();
            mean_result(&seeds)
        })
        .collect()
}

/// The seeds' results of one run, in seed order as the experiment lists them.
pub fn of_run<'a>(results: &'a [RunResult], name: &str) -> Vec<&'a RunResult> {
    results.iter().filter(|r| r.name == name).collect()
}

fn mean_result(seeds: &[&RunResult]) -> RunResult {
    let first = seeds[0];
    let mean = |f: &dyn Fn(&RunResult) -> f64| Stats::of(&collect(seeds, f)).mean;
    let all = |f: &dyn Fn(&RunResult) -> Option<f64>| -> Option<f64> {
        let values: Option<Vec<f64>> = seeds.iter().map(|r| f(r)).collect();
        values.map(|v| Stats::of(&v).mean)
    };
    let curve_len = seeds.iter().map(|r| r.curve.len()).min().unwrap_or(0);
    let curve = (0..curve_len)
        .map(|i| {
            let at = |f: fn(&(usize, f64, f64)) -> f64| mean(&|r| f(&r.curve[i]));
            (first.curve[i].0, at(|c| c.1), at(|c| c.2))
        })
        .collect();
    RunResult {
        seed: None,
        val_loss: mean(&|r| r.val_loss),
        // The choice of a rate stays what it was at the run's first seed (the sweep's): more
        // seeds for the chosen runs do not change which runs were chosen.
        selection_loss: first.selection_loss,
        val_per_position: mean_vectors(seeds, |r| &r.val_per_position),
        ood_loss: all(&|r| r.ood_loss),
        ood_choice: first.ood_loss,
        ood_per_position: mean_vectors(seeds, |r| &r.ood_per_position),
        curve,
        train_seconds: mean(&|r| r.train_seconds),
        tokens_per_second: mean(&|r| r.tokens_per_second),
        diverged_at: seeds.iter().find_map(|r| r.diverged_at),
        extrapolation: first
            .extrapolation
            .iter()
            .map(|e| mean_extrapolation(seeds, e))
            .collect(),
        ..first.clone()
    }
}

fn collect(seeds: &[&RunResult], f: &dyn Fn(&RunResult) -> f64) -> Vec<f64> {
    seeds.iter().map(|r| f(r)).collect()
}

/// Elementwise means over the seeds, as long as the shortest.
fn mean_vectors(seeds: &[&RunResult], f: impl Fn(&RunResult) -> &Vec<f64>) -> Vec<f64> {
    let len = seeds.iter().map(|r| f(r).len()).min().unwrap_or(0);
    (0..len)
        .map(|i| seeds.iter().map(|r| f(r)[i]).sum::<f64>() / seeds.len() as f64)
        .collect()
}

fn mean_extrapolation(seeds: &[&RunResult], e: &Extrapolation) -> Extrapolation {
    let same: Vec<&Extrapolation> = seeds
        .iter()
        .filter_map(|r| r.extrapolation.iter().find(|x| x.factor == e.factor))
        .collect();
    let losses: Option<Vec<f64>> = same.iter().map(|x| x.loss).collect();
    let len = same.iter().map(|x| x.per_position.len()).min().unwrap_or(0);
    Extrapolation {
        loss: losses.map(|l| Stats::of(&l).mean),
        per_position: (0..len)
            .map(|i| same.iter().map(|x| x.per_position[i]).sum::<f64>() / same.len() as f64)
            .collect(),
        ..e.clone()
    }
}

/// `f(model at s, against at s)` for every seed `s` both runs trained at (a run without seeds
/// pairs with one without).
pub fn paired(
    model: &[&RunResult],
    against: &[&RunResult],
    f: impl Fn(&RunResult, &RunResult) -> Option<f64>,
) -> Option<Vec<f64>> {
    model
        .iter()
        .filter_map(|m| {
            let a = against.iter().find(|a| a.seed == m.seed)?;
            Some(f(m, a))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_the_sample_mean_and_deviation() {
        let s = Stats::of(&[1.0, 2.0, 4.0]);
        assert!((s.mean - 7.0 / 3.0).abs() < 1e-12);
        // sum of squares (16/9 + 1/9 + 25/9) = 42/9, over n - 1 = 2.
        assert!((s.sd - (21.0f64 / 9.0).sqrt()).abs() < 1e-12);
        assert!((s.se() - s.sd / 3f64.sqrt()).abs() < 1e-12);
        assert_eq!(Stats::of(&[3.5]).sd, 0.0);
        assert_eq!(Stats::of(&[3.5]).show(2), "3.50");
        assert_eq!(Stats::of(&[1.0, 3.0]).show(1), "2.0 ± 1.4");
    }
}
