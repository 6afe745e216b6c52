//! `cargo xtask experiment` as a user runs it: the list, and a tiny experiment end to end
//! (results folder, report, plots), run again (finished runs skipped) and after losing a
//! result (the run resumes from its checkpoint).

mod support;

use std::path::Path;

use support::common::{self, scratch};
use support::xtask;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn list_names_every_experiment_with_its_time() {
    let out = xtask(&["experiment", "--list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for name in [
        "quickstart",
        "stories-depth",
        "shakespeare-char",
        "babistories",
        "three-moons",
        "regbench",
    ] {
        assert!(stdout.contains(name), "{name} missing: {stdout}");
    }
    assert!(stdout.matches("expected time:").count() >= 6, "{stdout}");
}

/// `experiment SPEC --out OUT --runs-dir RUNS`.
fn experiment_args(spec: &Path, out: &Path, runs: &Path) -> Vec<String> {
    let path = |p: &Path| p.to_str().unwrap().to_string();
    vec![
        "experiment".into(),
        path(spec),
        "--out".into(),
        path(out),
        "--runs-dir".into(),
        path(runs),
    ]
}

/// Two tiny models on tiny-shakespeare by character, a few steps each.
fn tiny_experiment(dir: &Path) -> std::path::PathBuf {
    let model = |kind: &str| match kind {
        "gpt" => "kind = \"gpt\"\nn_layer = 1\nn_head = 2\nn_embd = 16\nblock_size = 16",
        _ => {
            "kind = \"memory_mosaic\"\nn_layer = 1\nn_head = 2\nn_embd = 16\nblock_size = 16\npmem_size = 56"
        }
    };
    for kind in ["mosaic", "gpt"] {
        let config = format!(
            "[model]\n{}\n\n[data]\ndir = \"unused\"\n\n[train]\nbatch_size = 4\nmax_iters = 6\n\
             learning_rate = 3e-3\neval_interval = 3\neval_iters = 2\nlog_interval = 3\n\
             out_dir = \"unused\"\n",
            model(kind)
        );
        std::fs::write(dir.join(format!("{kind}.toml")), config).unwrap();
    }
    let runs: String = ["mosaic", "gpt"]
        .iter()
        .map(|k| {
            format!(
                "[[runs]]\nname = \"{k}\"\ngroup = \"tiny\"\nconfig = {:?}\n\n",
                dir.join(format!("{k}.toml"))
            )
        })
        .collect();
    let spec = format!(
        "about = \"a tiny test\"\ncpu_time = \"seconds\"\nkind = \"runs\"\n\n[data]\ndir = {:?}\n\
         tokenizer = \"char\"\ninput = \"datasets/text/tinyshakespeare.txt\"\n\n[eval]\n\
         ood = \"datasets/text/tinyshakespeare.txt\"\nprompt = \"ROMEO:\"\nmax_new_tokens = 8\nextrapolate = [2]\n\n\
         {runs}[[claims]]\ntext = \"the two are within 10 nats\"\ngroup = \"tiny\"\nmetric = \"val\"\nwithin = 10.0\n",
        dir.join("data")
    );
    let path = dir.join("tiny.toml");
    std::fs::write(&path, spec).unwrap();
    path
}

#[test]
fn a_tiny_experiment_writes_its_results_and_reruns_only_what_is_missing() {
    let dir = scratch("experiment");
    let spec = tiny_experiment(&dir);
    let (out, runs) = (dir.join("results"), dir.join("runs"));
    let args = experiment_args(&spec, &out, &runs);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = xtask(&args);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let results = out.join("tiny");
    for file in [
        "runs/mosaic.json",
        "runs/gpt.json",
        "runs/mosaic.metrics.jsonl",
        "loss-0.svg",
        "per-position-val-0.svg",
        "per-position-ood-0.svg",
        "extrapolation-0.svg",
        "gap-0.svg",
    ] {
        assert!(results.join(file).is_file(), "{file} missing");
    }
    assert!(runs.join("tiny/mosaic/checkpoint/state.json").is_file());
    let report = std::fs::read_to_string(out.join("tiny.md")).unwrap();
    for part in [
        "## Every run",
        "GPT - MM",
        "**not tested (one seed)**: the two are within 10 nats",
        "no difference below has an error bar",
        "ROMEO:",
        "## Length extrapolation",
        "*cannot read it*: GPT's learned position embedding",
        "## The gap along the window",
        "| tiny | Memory Mosaic | out of distribution | GPT (lr 3e-3) |",
        "same tokens, sliding |",
    ] {
        assert!(report.contains(part), "`{part}` missing from:\n{report}");
    }
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(results.join("runs/gpt.json")).unwrap())
            .unwrap();
    assert_eq!(result["steps"], 6);
    assert_eq!(result["val_per_position"].as_array().unwrap().len(), 16);
    assert_eq!(
        result["curve"].as_array().unwrap().len(),
        3,
        "evaluations at 0, 3, 6"
    );

    // Again: both runs are skipped, their results untouched.
    let before = std::fs::read(results.join("runs/mosaic.json")).unwrap();
    let again = xtask(&args);
    let err = text(&again.stderr);
    assert!(again.status.success(), "{err}");
    assert!(
        err.contains("mosaic: done before") && err.contains("gpt: done before"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(results.join("runs/mosaic.json")).unwrap(),
        before
    );

    // A lost result: the run resumes from its checkpoint (at its last step) and is measured.
    std::fs::remove_file(results.join("runs/gpt.json")).unwrap();
    let resumed = xtask(&args);
    let err = text(&resumed.stderr);
    assert!(resumed.status.success(), "{err}");
    assert!(
        !err.contains("gpt: done before") && !err.contains("gpt: step 3:"),
        "{err}"
    );
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(results.join("runs/gpt.json")).unwrap())
            .unwrap();
    assert_eq!(result["steps"], 6);
}

/// With `seeds`, every run trains at each seed into its own result; the report gives each
/// run's mean ± sd and every seed's value, tests the claim on the paired gaps, and says whether
/// each chosen learning rate is bracketed. With held-out stories, rates are chosen on the
/// selection part and the losses reported are the test part's.
#[test]
fn seeds_train_each_run_at_each_seed_and_claims_are_tested_across_them() {
    let dir = scratch("experiment-seeds");
    let spec = tiny_experiment(&dir);
    let original = std::fs::read_to_string(&spec).unwrap();
    let slow = format!(
        "[[runs]]\nname = \"mosaic-slow\"\ngroup = \"tiny\"\nconfig = {:?}\n\
         set = [\"train.learning_rate=1e-4\"]\nseeds = [1]\n\n",
        dir.join("mosaic.toml")
    );
    let seeded = original
        .replace("kind = \"runs\"\n", "kind = \"runs\"\nseeds = [1, 2]\n")
        .replace(
            "input = \"datasets/text/tinyshakespeare.txt\"\n\n[eval]",
            "input = \"datasets/text/tinystories-train.txt\"\nholdout = 200\n\n[eval]",
        )
        .replace("ood = \"datasets/text/tinyshakespeare.txt\"\n", "")
        .replace("[[claims]]", &format!("{slow}[[claims]]"));
    std::fs::write(&spec, seeded).unwrap();
    let (out, runs) = (dir.join("results"), dir.join("runs"));
    let args = experiment_args(&spec, &out, &runs);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = xtask(&args);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let (one, two) = (
        result_of(&dir, "mosaic.seed1"),
        result_of(&dir, "mosaic.seed2"),
    );
    assert_eq!(
        (one["seed"].as_u64(), two["seed"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(one["name"], "mosaic");
    assert_ne!(one["val_loss"], two["val_loss"], "two seeds, one result");
    let selection = one["selection_loss"].as_f64().expect("a selection loss");
    assert_ne!(
        Some(selection),
        one["val_loss"].as_f64(),
        "selection and test differ"
    );
    assert!(
        !dir.join("results/tiny/runs/mosaic-slow.seed2.json")
            .exists()
    );
    assert!(runs.join("tiny/gpt.seed2/checkpoint/state.json").is_file());

    let report = std::fs::read_to_string(out.join("tiny.md")).unwrap();
    let (a, b) = (
        one["val_loss"].as_f64().unwrap(),
        two["val_loss"].as_f64().unwrap(),
    );
    let sd = (a - b).abs() / 2f64.sqrt();
    for part in [
        format!("{:.4} ± {sd:.4}", (a + b) / 2.0),
        format!("1: {a:.4}, 2: {b:.4}"),
        "seeds among [1, 2]".to_string(),
        "over 2 seeds".to_string(),
        "**holds**: the two are within 10 nats".to_string(),
        "## Learning rates: is each chosen rate bracketed?".to_string(),
        "the highest rate tried is the best".to_string(),
        "selection loss | test loss".to_string(),
        "learning rates are chosen on one part (selection;".to_string(),
    ] {
        assert!(report.contains(&part), "`{part}` missing from:\n{report}");
    }

    // Seeds added to a run that trained at its config's own seed (1337) keep that result and
    // train only the new one.
    let slow_before = result_of(&dir, "mosaic-slow.seed1");
    let more = std::fs::read_to_string(&spec)
        .unwrap()
        .replace("seeds = [1]\n", "seeds = [1, 1337]\n");
    std::fs::write(&spec, more).unwrap();
    let again = xtask(&args);
    let err = text(&again.stderr);
    assert!(again.status.success(), "{err}");
    assert!(err.contains("mosaic-slow.seed1: done before"), "{err}");
    assert!(
        err.contains("mosaic-slow: training (no result yet)"),
        "{err}"
    );
    assert_eq!(result_of(&dir, "mosaic-slow")["seed"], 1337);
    assert_eq!(result_of(&dir, "mosaic-slow.seed1"), slow_before);
    let without = std::fs::read_to_string(&spec)
        .unwrap()
        .replace("seeds = [1, 1337]\n", "");
    std::fs::write(&spec, without).unwrap();
    let rerun = xtask(&args);
    let err = text(&rerun.stderr);
    assert!(rerun.status.success(), "{err}");
    assert!(err.contains("mosaic-slow.seed1: done before"), "{err}");

    // Seeds given twice are refused before anything trains.
    let twice = std::fs::read_to_string(&spec)
        .unwrap()
        .replace("seeds = [1, 2]", "seeds = [1, 1]");
    std::fs::write(&spec, twice).unwrap();
    common::assert_refused(&xtask(&args), "give one or more different seeds");
}

/// `chosen_seeds`: after every run has trained, the best run of each model (by the selection
/// loss) trains at the extra seeds, and only it; a second invocation trains nothing.
#[test]
fn chosen_runs_train_again_at_the_extra_seeds() {
    let dir = scratch("experiment-chosen");
    let spec = tiny_experiment(&dir);
    let slow = format!(
        "[[runs]]\nname = \"mosaic-slow\"\ngroup = \"tiny\"\nconfig = {:?}\n\
         set = [\"train.learning_rate=1e-5\"]\n\n",
        dir.join("mosaic.toml")
    );
    let chosen = std::fs::read_to_string(&spec)
        .unwrap()
        .replace("kind = \"runs\"\n", "kind = \"runs\"\nchosen_seeds = [5]\n")
        .replace("[[claims]]", &format!("{slow}[[claims]]"));
    std::fs::write(&spec, chosen).unwrap();
    let (out, runs) = (dir.join("results"), dir.join("runs"));
    let args = experiment_args(&spec, &out, &runs);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = xtask(&args);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let has = |id: &str| dir.join(format!("results/tiny/runs/{id}.json")).is_file();
    assert!(has("mosaic") && has("mosaic-slow") && has("gpt"));
    assert!(
        has("mosaic.seed5") && has("gpt.seed5"),
        "the chosen runs at seed 5"
    );
    assert!(!has("mosaic-slow.seed5"), "a run not chosen trains once");
    let report = std::fs::read_to_string(out.join("tiny.md")).unwrap();
    assert!(report.contains("over 2 seeds"), "{report}");
    let again = xtask(&args);
    let err = text(&again.stderr);
    assert!(
        again.status.success() && !err.contains("training ("),
        "{err}"
    );
}

/// The recall probe on a finished experiment's models: a report row per model and length, a
/// JSON of the numbers; before the source has run, a message that says to run it.
#[test]
fn the_recall_probe_reads_a_finished_experiments_checkpoints() {
    let dir = scratch("experiment-recall");
    let spec = tiny_experiment(&dir);
    let recall = dir.join("probe.toml");
    std::fs::write(
        &recall,
        format!(
            "about = \"probe\"\ncpu_time = \"seconds\"\nkind = \"recall\"\n\n[recall]\n\
             source = {:?}\nfactors = [1, 2]\nspan = 4\nwindows = 6\n",
            spec.display().to_string()
        ),
    )
    .unwrap();
    let (out, runs) = (dir.join("results"), dir.join("runs"));
    let args = |file: &Path| {
        xtask(&[
            "experiment",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--runs-dir",
            runs.to_str().unwrap(),
        ])
    };
    common::assert_refused(&args(&recall), "run `cargo xtask experiment tiny` first");
    assert!(args(&spec).status.success());
    let probe = args(&recall);
    assert!(probe.status.success(), "{}", text(&probe.stderr));
    let report = std::fs::read_to_string(out.join("probe.md")).unwrap();
    for part in [
        "| tiny | Memory Mosaic | `mosaic` | 16 |",
        "| tiny | GPT | `gpt` | 32 | cannot read it |",
    ] {
        assert!(report.contains(part), "`{part}` missing from:\n{report}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("probe/recall.json")).unwrap())
            .unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert_eq!(json[0]["recall"][1]["windows"], 6);
    assert!(out.join("probe/recall-0.svg").is_file());
}

#[test]
fn an_unknown_experiment_is_refused_by_name() {
    let out = xtask(&["experiment", "no-such-thing"]);
    common::assert_refused(&out, "unknown experiment `no-such-thing`");
}

fn result_of(dir: &Path, run: &str) -> serde_json::Value {
    let path = dir.join(format!("results/tiny/runs/{run}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A result is reused only while its run's config, data and evaluation are unchanged; an
/// edited run, another `--steps` or `--fresh` retrains, and says why. Every run is checked
/// before the first trains.
#[test]
fn edited_runs_are_retrained_and_every_run_is_checked_first() {
    let dir = scratch("experiment-inputs");
    let spec = tiny_experiment(&dir);
    let (out, runs) = (dir.join("results"), dir.join("runs"));
    let run = |more: &[&str]| {
        let mut args = vec![
            "experiment",
            spec.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--runs-dir",
            runs.to_str().unwrap(),
        ];
        args.extend(more);
        xtask(&args)
    };
    let first = run(&[]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let before = result_of(&dir, "gpt");
    let inputs = &before["inputs"];
    assert_eq!(inputs["config_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(inputs["data_sha256"].as_str().unwrap().len(), 64);
    assert!(!inputs["commit"].as_str().unwrap().is_empty());

    // One run edited: that one retrains from scratch, the other is reused.
    let text_of = |p: &Path| std::fs::read_to_string(p).unwrap();
    let original = text_of(&spec);
    let gpt_run = "name = \"gpt\"\ngroup = \"tiny\"\n";
    let edited = original.replace(
        gpt_run,
        &format!("{gpt_run}set = [\"train.learning_rate=1e-3\"]\n"),
    );
    assert_ne!(edited, original);
    std::fs::write(&spec, &edited).unwrap();
    let again = run(&[]);
    let err = text(&again.stderr);
    assert!(again.status.success(), "{err}");
    assert!(err.contains("mosaic: done before"), "{err}");
    assert!(err.contains("gpt: training (its config changed"), "{err}");
    assert!(
        err.contains("removing a checkpoint of other inputs"),
        "{err}"
    );
    let after = result_of(&dir, "gpt");
    assert_ne!(after["inputs"]["config_sha256"], inputs["config_sha256"]);
    assert_eq!(after["learning_rate"], 1e-3);

    // --steps is part of the config; 0 is refused.
    common::assert_refused(&run(&["--steps", "0"]), "--steps");
    let short = run(&["--steps", "2"]);
    let err = text(&short.stderr);
    assert!(short.status.success(), "{err}");
    assert!(
        err.contains("mosaic: training (its config changed"),
        "{err}"
    );
    assert_eq!(result_of(&dir, "mosaic")["steps"], 2);

    // A typo in the second run's `set` is found before the first run trains.
    std::fs::remove_file(out.join("tiny/runs/mosaic.json")).unwrap();
    let typo = edited.replace("train.learning_rate=1e-3", "train.learnin_rate=1e-3");
    std::fs::write(&spec, typo).unwrap();
    let bad = run(&[]);
    common::assert_refused(&bad, "run `gpt`: override `train.learnin_rate=1e-3`");
    assert!(!text(&bad.stderr).contains("mosaic: training"));
    assert!(!out.join("tiny/runs/mosaic.json").exists());

    // --fresh retrains what would be reused.
    std::fs::write(&spec, &edited).unwrap();
    let fresh = run(&["--fresh"]);
    let err = text(&fresh.stderr);
    assert!(fresh.status.success(), "{err}");
    assert!(
        err.contains("mosaic: training (--fresh)") && err.contains("gpt: training (--fresh)"),
        "{err}"
    );
    assert_eq!(result_of(&dir, "gpt")["steps"], 6);

    // Prepared data from other inputs than the experiment names is refused, not used.
    std::fs::write(
        &spec,
        edited.replace("tokenizer = \"char\"", "tokenizer = \"gpt2\""),
    )
    .unwrap();
    common::assert_refused(&run(&[]), "prepared from other inputs");
}

/// The run results and metrics of an experiment, without what measures time (or says where
/// an interrupted run resumed).
fn timeless_results(dir: &Path) -> Vec<(String, serde_json::Value)> {
    let runs = dir.join("results/tiny/runs");
    let mut names: Vec<String> = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let text = std::fs::read_to_string(runs.join(&name)).unwrap();
            let mut value: serde_json::Value = match name.ends_with(".jsonl") {
                true => text
                    .lines()
                    .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                    .collect(),
                false => serde_json::from_str(&text).unwrap(),
            };
            let strip = |v: &mut serde_json::Value| {
                if let Some(o) = v.as_object_mut() {
                    for key in [
                        "train_seconds",
                        "tokens_per_second",
                        "tokens_per_sec",
                        "resumed_at",
                    ] {
                        o.remove(key);
                    }
                }
            };
            match value.as_array_mut() {
                Some(lines) => lines.iter_mut().for_each(strip),
                None => strip(&mut value),
            }
            (name, value)
        })
        .collect()
}

/// Killed (SIGKILL) at many moments and run again each time, an experiment ends with the
/// results of an uninterrupted run: checkpoints, results and prepared data are written
/// atomically, and a run resumes exactly.
#[test]
fn a_killed_experiment_ends_as_an_uninterrupted_one() {
    let root = scratch("experiment-kill");
    let command = |dir: &Path| {
        let spec = tiny_experiment(dir);
        let text = std::fs::read_to_string(&spec).unwrap().replace(
            "group = \"tiny\"\nconfig",
            "group = \"tiny\"\nset = [\"train.max_iters=24\", \"train.checkpoint_interval=4\"]\nconfig",
        );
        std::fs::write(&spec, text).unwrap();
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"));
        c.args(["experiment", spec.to_str().unwrap()])
            .args(["--out", dir.join("results").to_str().unwrap()])
            .args(["--runs-dir", dir.join("runs").to_str().unwrap()])
            .current_dir(common::workspace_root())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    };
    let whole = root.join("whole");
    std::fs::create_dir_all(&whole).unwrap();
    assert!(command(&whole).status().unwrap().success());

    let killed = root.join("killed");
    std::fs::create_dir_all(&killed).unwrap();
    let mut finished_early = 0;
    for delay_ms in [50, 150, 300, 500, 800, 1100, 1500, 2000, 2600] {
        let mut child = command(&killed).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_some() {
            finished_early += 1;
            continue;
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert!(finished_early < 9, "never killed: the test did not test");
    assert!(command(&killed).status().unwrap().success());
    let (a, b) = (timeless_results(&whole), timeless_results(&killed));
    assert_eq!(a.len(), 4, "{a:?}");
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert_eq!(x, y, "{name} differs after the kills");
    }
}
