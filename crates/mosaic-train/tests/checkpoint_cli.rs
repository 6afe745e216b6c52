//! A checkpoint carries its tokenizer and data metadata: it samples and evaluates from any
//! directory and whatever happens to its data directory since; inputs are checked before any
//! computation; no token id reaches a model unchecked.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{assert_refused, config_file, mosaic, refused, scratch, shakespeare, train};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

/// `mosaic ARGS` run from `dir`.
fn mosaic_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mosaic"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn prepare(input: &str, out: &Path, more: &[&str]) -> Output {
    let mut args = vec!["prepare", "--input", input, "--out", out.to_str().unwrap()];
    args.extend(more);
    mosaic(&args)
}

/// The number after `val loss ` in `mosaic eval`'s output.
fn val_loss(o: &Output) -> f64 {
    let out = stdout(o);
    out.split("val loss ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no loss in: {out}"))
}

const SHAKESPEARE: &str = "datasets/text/tinyshakespeare.txt";

#[test]
fn a_checkpoint_outlives_its_data_directory() {
    let dir = scratch("self-contained");
    let data = shakespeare(&dir);
    let config = config_file(&dir, &data, "mosaic", "");
    ok(train(&config, &["train.max_iters=10"], &[]));
    let run = dir.join("run");
    let run_s = run.to_str().unwrap();
    let sample = |cwd: &Path| {
        ok(mosaic_in(
            cwd,
            &[
                "sample",
                "--checkpoint",
                run_s,
                "--prompt",
                "ROMEO:",
                "--max-new-tokens",
                "30",
            ],
        ))
        .stdout
    };
    let elsewhere = std::env::temp_dir();
    let text = sample(&elsewhere);
    assert!(String::from_utf8_lossy(&text).starts_with("ROMEO:"));
    let loss = val_loss(&ok(mosaic_in(&elsewhere, &["eval", "--checkpoint", run_s])));

    // The data prepared again, with another tokenizer of a larger vocabulary.
    refused(
        &[
            "prepare",
            "--tokenizer",
            "bpe",
            "--vocab-size",
            "300",
            "--input",
            SHAKESPEARE,
            "--out",
            data.to_str().unwrap(),
        ],
        "pass --force",
    );
    ok(prepare(
        SHAKESPEARE,
        &data,
        &["--tokenizer", "bpe", "--vocab-size", "300", "--force"],
    ));
    assert_eq!(sample(&elsewhere), text, "sampled with its own tokenizer");
    refused(
        &["eval", "--checkpoint", run_s],
        "is not the one the checkpoint",
    );
    refused(
        &["train", "--config", config.to_str().unwrap(), "--resume"],
        "holds another tokenizer than the one this run trained with",
    );

    // Another directory prepared with the same tokenizer is accepted, and gives the same loss.
    let other = dir.join("other");
    ok(prepare(SHAKESPEARE, &other, &["--tokenizer", "char"]));
    let o = ok(mosaic(&[
        "eval",
        "--checkpoint",
        run_s,
        "--data",
        other.to_str().unwrap(),
    ]));
    assert!(
        (val_loss(&o) - loss).abs() < 1e-4,
        "{} vs {loss}",
        val_loss(&o)
    );
    refused(
        &[
            "eval",
            "--checkpoint",
            run_s,
            "--data",
            data.to_str().unwrap(),
        ],
        "is not the one the checkpoint",
    );

    // The data directory deleted: sampling works, evaluation says what to do.
    std::fs::remove_dir_all(&data).unwrap();
    assert_eq!(sample(&elsewhere), text);
    refused(&["eval", "--checkpoint", run_s], "is gone");
}

/// A checkpoint from before checkpoints kept their tokenizer loads from its data directory;
/// data prepared again with a larger vocabulary is a clear error, not a backend panic.
#[test]
fn an_older_checkpoint_still_loads_and_foreign_ids_are_refused() {
    let dir = scratch("old-checkpoint");
    let data = shakespeare(&dir);
    let config = config_file(&dir, &data, "gpt", "");
    ok(train(&config, &["train.max_iters=5"], &[]));
    let checkpoint = dir.join("run/checkpoint");
    for f in ["meta.json", "vocab.json"] {
        std::fs::remove_file(checkpoint.join(f)).unwrap();
    }
    let state_path = checkpoint.join("state.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    state.as_object_mut().unwrap().remove("data");
    std::fs::write(&state_path, state.to_string()).unwrap();
    let c = checkpoint.to_str().unwrap();
    ok(mosaic(&["eval", "--checkpoint", c]));
    ok(mosaic(&[
        "sample",
        "--checkpoint",
        c,
        "--prompt",
        "ROMEO:",
        "--max-new-tokens",
        "5",
    ]));

    ok(prepare(
        SHAKESPEARE,
        &data,
        &["--tokenizer", "bpe", "--vocab-size", "300", "--force"],
    ));
    refused(
        &["eval", "--checkpoint", c],
        "outside the model's vocabulary of 65",
    );
    refused(
        &["sample", "--checkpoint", c, "--prompt", "ROMEO and JULIET"],
        "outside the model's vocabulary of 65",
    );
    std::fs::remove_dir_all(&data).unwrap();
    refused(
        &["sample", "--checkpoint", c, "--prompt", "R"],
        "an older checkpoint",
    );
}

#[test]
fn eval_checks_its_arguments_before_computing() {
    let dir = scratch("eval-args");
    let data = shakespeare(&dir);
    let config = config_file(&dir, &data, "gpt", "");
    let o = ok(train(&config, &["train.max_iters=10"], &[]));
    let run = dir.join("run");
    let run_s = run.to_str().unwrap();

    // The whole-split validation loss is in summary.json, beside the estimate, and is the
    // one `mosaic eval` reports.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let whole = summary["val_loss"].as_f64().unwrap();
    assert!(summary["val_loss_estimate"].as_f64().is_some());
    let eval = ok(mosaic(&["eval", "--checkpoint", run_s]));
    assert!(
        (val_loss(&eval) - whole).abs() < 1e-4,
        "{whole} vs {}",
        stdout(&eval)
    );
    // Without a terminal, a line every log_interval (5) steps.
    let out = stdout(&o);
    assert!(
        out.contains("step 5: loss") && out.contains("step 10: loss"),
        "{out}"
    );

    let eval_refused = |more: &[&str], expected: &str| {
        let mut args = vec!["eval", "--checkpoint", run_s];
        args.extend(more);
        let o = mosaic(&args);
        assert_refused(&o, expected);
        assert!(!stdout(&o).contains("val loss"), "refused after computing");
    };
    eval_refused(&["--batch-size", "0"], "--batch-size");
    eval_refused(&["--csv", "/no/such/dir/x.csv"], "/no/such/dir/x.csv");
    eval_refused(&["--csv", dir.to_str().unwrap()], "is a directory");
    eval_refused(&["--ood", "no/such.txt"], "no/such.txt");
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    eval_refused(&["--ood", empty.to_str().unwrap()], "empty");
    let short = dir.join("short.txt");
    std::fs::write(&short, "ROMEO").unwrap();
    eval_refused(&["--ood", short.to_str().unwrap()], "cannot hold a window");
    eval_refused(&["--data", ""], "an empty path");
    refused(&["eval", "--checkpoint", ""], "an empty path");
    refused(
        &[
            "train",
            "--config",
            config.to_str().unwrap(),
            "--set",
            "train.out_dir=",
        ],
        "`train.out_dir` is empty",
    );

    // --json: stdout is one JSON object and nothing else.
    let o = ok(mosaic(&[
        "eval",
        "--checkpoint",
        run_s,
        "--json",
        "--per-position",
        "--ood",
        SHAKESPEARE,
    ]));
    let json: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(json["val"]["per_position"].as_array().unwrap().len(), 16);
    assert!(json["ood"]["loss"].as_f64().unwrap() > 0.0);
}

#[test]
fn greedy_sampling_ignores_the_seed() {
    let dir = scratch("greedy");
    let data = shakespeare(&dir);
    let config = config_file(&dir, &data, "mosaic", "");
    ok(train(&config, &["train.max_iters=10"], &[]));
    let run = dir.join("run");
    let sample = |seed: &str, temperature: &str| {
        ok(mosaic(&[
            "sample",
            "--checkpoint",
            run.to_str().unwrap(),
            "--prompt",
            "ROMEO:",
            "--max-new-tokens",
            "12",
            "--temperature",
            temperature,
            "--seed",
            seed,
        ]))
        .stdout
    };
    assert_eq!(sample("1", "0"), sample("2", "0"));
    assert_ne!(sample("1", "5"), sample("2", "5"));
    refused(
        &[
            "sample",
            "--checkpoint",
            run.to_str().unwrap(),
            "--prompt",
            "R",
            "--temperature=-1",
        ],
        "temperature",
    );
}

/// `--help` of every command gives each option a line of its own.
#[test]
fn every_option_has_help_text() {
    for command in ["prepare", "train", "eval", "sample"] {
        let help = stdout(&ok(mosaic(&[command, "--help"])));
        let lines: Vec<&str> = help.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let option = line.trim_start();
            if !option.starts_with("--") && !option.starts_with("-h") {
                continue;
            }
            // Clap puts the text after the option, or on the next line, indented further.
            let beside = option
                .split_once("  ")
                .is_some_and(|(_, t)| !t.trim().is_empty());
            let next = lines.get(i + 1).copied().unwrap_or("");
            let indent = |l: &str| l.len() - l.trim_start().len();
            assert!(
                beside || (!next.trim().is_empty() && indent(next) > indent(line)),
                "`mosaic {command}`: {option} has no help text:\n{help}"
            );
        }
    }
}

/// `mosaic export` writes what the official loader reads: loaded back, the same logits to the
/// bit, for both models; a v2 checkpoint is refused with a message.
#[test]
fn export_writes_what_the_official_loader_reads() {
    use burn::tensor::{Device, Int, Tensor, TensorData};
    use mosaic_models::load_official;
    use mosaic_train::Checkpoint;

    let dir = scratch("export");
    let data = shakespeare(&dir);
    let device = Device::flex();
    let ids = Tensor::<2, Int>::from_data(
        TensorData::new(
            (0..16).map(|i| (i * 5 + 1) % 60).collect::<Vec<i64>>(),
            [1, 16],
        ),
        &device,
    );
    let logits = |m: &mosaic_models::LanguageModel| {
        m.forward(ids.clone())
            .unwrap()
            .logits
            .into_data()
            .try_to_vec_as::<f32>()
            .unwrap()
    };
    for kind in ["mosaic", "gpt"] {
        let sub = dir.join(kind);
        std::fs::create_dir_all(&sub).unwrap();
        let config = config_file(&sub, &data, kind, "");
        ok(train(&config, &["train.max_iters=4"], &[]));
        let (run, out) = (sub.join("run"), sub.join("official"));
        let o = ok(mosaic(&[
            "export",
            "--checkpoint",
            run.to_str().unwrap(),
            "--format",
            "official",
            "--out",
            out.to_str().unwrap(),
        ]));
        assert!(
            stdout(&o).contains("model.safetensors and config.json"),
            "{}",
            stdout(&o)
        );
        let ours = Checkpoint::open(&run, &device).unwrap();
        let back = load_official(out.join("model.safetensors"), &device).unwrap();
        assert_eq!(logits(ours.model()), logits(&back), "{kind}");
    }
    let v2 = dir.join("v2");
    std::fs::create_dir_all(&v2).unwrap();
    let config = config_file(&v2, &data, "mosaic", "");
    ok(train(
        &config,
        &["train.max_iters=2", "model.gated_keys=true"],
        &[],
    ));
    refused(
        &[
            "export",
            "--checkpoint",
            v2.join("run").to_str().unwrap(),
            "--out",
            v2.join("official").to_str().unwrap(),
        ],
        "implements v1 only",
    );
}
