//! `mosaic prepare` as a user runs it.

mod common;

use std::path::Path;

use common::{mosaic, refused, scratch};

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

#[test]
fn bad_input_exits_2_with_the_path() {
    let out = scratch("bad");
    let out = out.to_str().unwrap();
    refused(
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
    refused(
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
    refused(
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
        "a vocabulary size applies to the bpe tokenizer only",
    );
    assert!(!Path::new(out).join("meta.json").exists());
}
