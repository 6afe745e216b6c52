//! `mosaic train`, `eval` and `sample` as a user runs them, bad input included: exit status 2,
//! a message naming the problem, no panic, no checkpoint overwritten.

mod common;

use std::process::{Command, Output};

use common::{
    assert_refused, config_file, mosaic, refused, scratch, shakespeare, train, workspace_root,
};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn train_then_eval_and_sample() {
    let dir = scratch("cli-run");
    let data = shakespeare(&dir);
    let config = config_file(&dir, &data, "gpt", "checkpoint_interval = 10");
    let c = config.to_str().unwrap();
    let o = train(&config, &["train.max_iters=20"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("step 20: train loss") && out.contains("gpt: 20 steps"),
        "{out}"
    );
    let run = dir.join("run");
    for f in [
        "metrics.jsonl",
        "summary.json",
        "checkpoint/model.bpk",
        "checkpoint/optim.bpk",
        "checkpoint/state.json",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().any(|l| l.get("val_loss").is_some()));
    assert!(lines.iter().any(|l| l.get("tokens_per_sec").is_some()));

    // Continue the same run to 30 steps.
    let o = train(&config, &["train.max_iters=30"], &["--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("gpt: 30 steps"));
    // Starting afresh over a checkpoint is refused.
    refused(&["train", "--config", c], "pass --resume");

    let run_s = run.to_str().unwrap();
    let csv = dir.join("per-position.csv");
    let o = mosaic(&[
        "eval",
        "--checkpoint",
        run_s,
        "--per-position",
        "--ood",
        "datasets/text/tinyshakespeare.txt",
        "--csv",
        csv.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("val loss")
            && out.contains("per-position val loss (0: ")
            && out.contains("per-position out-of-distribution loss (0: "),
        "{out}"
    );
    let csv = std::fs::read_to_string(csv).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "position,val_loss,ood_loss");
    assert_eq!(rows.len(), 1 + 16, "{csv}");
    let last: Vec<f64> = rows[16].split(',').map(|v| v.parse().unwrap()).collect();
    assert!(last[0] == 15.0 && last[1] > 0.0 && last[2] > 0.0, "{csv}");

    let sample = || {
        mosaic(&[
            "sample",
            "--checkpoint",
            run_s,
            "--prompt",
            "ROMEO:",
            "--max-new-tokens",
            "20",
            "--seed",
            "3",
        ])
    };
    let o = sample();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.starts_with("ROMEO:") && text.trim_end().chars().count() >= 20,
        "{text}"
    );
    let again = sample();
    assert_eq!(again.stdout, o.stdout, "same seed, same sample");

    // Bad prompts.
    refused(
        &["sample", "--checkpoint", run_s, "--prompt", "naïve ☃"],
        "outside the character vocabulary",
    );
    let long = "a".repeat(17);
    refused(
        &["sample", "--checkpoint", run_s, "--prompt", &long],
        "longer than the model's block_size 16",
    );

    // A checkpoint for another model.
    refused(
        &[
            "train",
            "--config",
            c,
            "--set",
            "model.n_layer=3",
            "--resume",
        ],
        "is not the one the config asks for",
    );
    // A truncated checkpoint file: a clear error, and the file is left as it was.
    let model_file = run.join("checkpoint/model.bpk");
    let bytes = std::fs::read(&model_file).unwrap();
    std::fs::write(&model_file, &bytes[..bytes.len() / 2]).unwrap();
    refused(&["eval", "--checkpoint", run_s], "model.bpk");
    refused(
        &[
            "train",
            "--config",
            c,
            "--set",
            "train.max_iters=40",
            "--resume",
        ],
        "model.bpk",
    );
    assert_eq!(std::fs::read(&model_file).unwrap().len(), bytes.len() / 2);
}

#[test]
fn bad_configs_name_the_problem() {
    let dir = scratch("cli-config");
    let data = shakespeare(&dir);
    let good = config_file(&dir, &data, "mosaic", "");
    let g = good.to_str().unwrap();

    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let text = std::fs::read_to_string(&good).unwrap();
    let malformed = write("malformed.toml", "[model\nkind = 1");
    refused(&["train", "--config", &malformed], "malformed.toml");
    let unknown = write(
        "unknown.toml",
        &text.replace("eval_iters = 4", "eval_iters = 4\nlearnin_rate = 3"),
    );
    refused(&["train", "--config", &unknown], "learnin_rate");
    let wrong_type = write(
        "type.toml",
        &text.replace("batch_size = 4", "batch_size = \"four\""),
    );
    refused(&["train", "--config", &wrong_type], "batch_size");
    for (set, expected) in [
        ("model.n_heads=4", "n_heads"),
        ("model.n_head=3", "n_embd"),
        ("model.vocab_size=100", "vocabulary of 65"),
        ("data.dir=\"no/data\"", "no/data"),
    ] {
        refused(&["train", "--config", g, "--set", set], expected);
    }
    refused(&["train", "--config", "no/such.toml"], "no/such.toml");
    refused(
        &["train", "--config", g, "--device", "tpu"],
        "unknown device `tpu`",
    );
    // MOSAIC_DEVICE is the default --device; a device not built in names its cargo feature.
    let from_env = Command::new(env!("CARGO_BIN_EXE_mosaic"))
        .args(["train", "--config", g])
        .env("MOSAIC_DEVICE", "npu")
        .current_dir(workspace_root())
        .output()
        .unwrap();
    assert_refused(&from_env, "unknown device `npu`");
    if !cfg!(feature = "cuda") {
        refused(
            &["train", "--config", g, "--device", "cuda:1"],
            "--features cuda",
        );
    }
    refused(
        &["train", "--config", g, "--set", "train.precision=\"f8\""],
        "precision",
    );
    refused(&["eval", "--checkpoint", "no/run"], "no/run");
    refused(
        &["sample", "--checkpoint", "no/run", "--prompt", "x"],
        "no/run",
    );
}

/// A one-character prompt: the Memory Mosaic's values peek one step ahead, which a sequence of
/// one token does not have; sampling from it once panicked.
#[test]
fn a_one_character_prompt_samples() {
    let dir = scratch("cli-one-token");
    let data = shakespeare(&dir);
    let config = config_file(&dir, &data, "mosaic", "");
    let o = train(
        &config,
        &["train.max_iters=2", "train.eval_interval=2"],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let run = dir.join("run");
    let o = mosaic(&[
        "sample",
        "--checkpoint",
        run.to_str().unwrap(),
        "--prompt",
        "R",
        "--max-new-tokens",
        "20",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.starts_with('R') && text.chars().count() >= 21,
        "{text}"
    );
}

/// A loss that turns NaN stops the run, names the step, and leaves the last good checkpoint.
#[test]
fn non_finite_loss_stops_and_keeps_the_checkpoint() {
    let dir = scratch("cli-nan");
    let data = shakespeare(&dir);
    let config = config_file(&dir, &data, "mosaic", "checkpoint_interval = 1");
    // A learning rate of 1e4 sends the value scales exp(10 nu) to infinity within two steps.
    let sets = [
        "train.learning_rate=1e4",
        "train.min_lr=0",
        "train.warmup_iters=0",
    ];
    let o = train(&config, &sets, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let step: usize = err
        .split("at step ")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no step in: {err}"));
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("run/checkpoint/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        state["step"].as_u64(),
        Some(step as u64),
        "the checkpoint is the last good step"
    );
}
