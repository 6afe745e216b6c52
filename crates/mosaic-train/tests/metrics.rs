//! `metrics.jsonl` read back as typed records: every file the experiments committed, and the
//! NaN a diverging run writes as `null`.

#[path = "../../mosaic-data/tests/common/mod.rs"]
mod common;

use mosaic_train::metrics::{Record, curve, read};

#[test]
fn committed_metrics_files_read_as_records() {
    let results = common::workspace_root().join("docs/results");
    let mut files = 0;
    for experiment in std::fs::read_dir(&results).unwrap() {
        let runs = experiment.unwrap().path().join("runs");
        let Ok(entries) = std::fs::read_dir(&runs) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if !path.to_string_lossy().ends_with(".metrics.jsonl") {
                continue;
            }
            let records = read(&path).unwrap();
            let lines = std::fs::read_to_string(&path).unwrap().lines().count();
            assert_eq!(records.len(), lines, "{}", path.display());
            let evals = records
                .iter()
                .filter(|r| matches!(r, Record::Eval(_)))
                .count();
            // A run that diverged stops before its next evaluation: its first may be its only.
            let fewest = match diverged(&path) {
                true => 1,
                false => 2,
            };
            assert!(evals >= fewest, "{}", path.display());
            assert_eq!(curve(&path).unwrap().len(), evals);
            // Written back, each record is the line it was read from.
            let text = std::fs::read_to_string(&path).unwrap();
            for (record, line) in records.iter().zip(text.lines()) {
                let written = serde_json::to_string(record).unwrap();
                let again: serde_json::Value = serde_json::from_str(&written).unwrap();
                let original: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(again, original, "{}", path.display());
            }
            files += 1;
        }
    }
    assert!(files >= 12, "only {files} metrics files");
}

/// Whether the run result beside `<run>.metrics.jsonl` (`<run>.json`) records a divergence.
fn diverged(metrics: &std::path::Path) -> bool {
    let result = metrics.to_string_lossy().replace(".metrics.jsonl", ".json");
    let Ok(text) = std::fs::read_to_string(&result) else {
        return false;
    };
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    !json["diverged_at"].is_null()
}

#[test]
fn a_diverging_runs_nan_reads_back_as_nan() {
    let dir = common::scratch("metrics-nan");
    let path = dir.join("metrics.jsonl");
    std::fs::write(
        &path,
        "{\"step\":0,\"lr\":0.001,\"train_loss\":4.1,\"val_loss\":4.2}\n\
         {\"step\":5,\"lr\":0.001,\"train_loss\":null,\"grad_norm\":null,\"tokens_per_sec\":10.0}\n\
         {\"step\":10,\"lr\":0.001,\"train_loss\":null,\"val_loss\":null}\n",
    )
    .unwrap();
    let records = read(&path).unwrap();
    assert!(
        matches!(&records[1], Record::Step(s) if s.train_loss.is_nan() && s.grad_norm.is_none())
    );
    let c = curve(&path).unwrap();
    assert_eq!(c.len(), 2);
    assert!(c[1].2.is_nan());
    std::fs::write(&path, "{\"step\":0}\n").unwrap();
    let err = read(&path).unwrap_err().to_string();
    assert!(err.contains("line 1"), "{err}");
}
