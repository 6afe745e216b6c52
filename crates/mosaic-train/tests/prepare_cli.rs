//! `mosaic prepare` as a user runs it.

mod common;

use std::path::{Path, PathBuf};

use common::mosaic;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mosaic-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn prepares_shakespeare_by_character() {
    let out = scratch("char");
    let o = mosaic(&[
        "prepare",
        "--tokenizer",
        "char",
        "--input",
        "datasets/text/tinyshakespeare.txt",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("vocabulary 65, 1003854 train and 111540 validation tokens (u16)"),
        "{stdout}"
    );
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["tokenizer"], "char");
}

fn assert_refused(args: &[&str], expected: &str) {
    let o = mosaic(args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(expected), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_input_exits_2_with_the_path() {
    let out = scratch("bad");
    let out = out.to_str().unwrap();
    assert_refused(
        &[
            "prepare",
            "--tokenizer",
            "gpt2",
            "--input",
            "no/such.txt",
            "--out",
            out,
        ],
        "no/such.txt: cannot read",
    );
    assert_refused(
        &[
            "prepare",
            "--tokenizer",
            "wordpiece",
            "--input",
            "x",
            "--out",
            out,
        ],
        "unknown tokenizer `wordpiece`",
    );
    assert_refused(
        &[
            "prepare",
            "--tokenizer",
            "char",
            "--vocab-size",
            "300",
            "--input",
            "datasets/text/tinyshakespeare.txt",
            "--out",
            out,
        ],
        "--vocab-size applies to the bpe tokenizer only",
    );
    assert!(!Path::new(out).join("meta.json").exists());
}
