//! `cargo xtask reference` as a user runs it: exit status and what it prints.

mod support;

use support::common::{self, scratch, workspace_root};
use support::xtask;

#[test]
fn shipped_files_pass() {
    let out = xtask(&["reference"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("memory_mosaic_small.safetensors"),
        "{stdout}"
    );
    assert!(stdout.contains("gpt_small.safetensors"), "{stdout}");
    assert_eq!(stdout.matches("\n  ok\n").count(), 2, "{stdout}");
}

/// Bad input: one line on stderr naming the file, exit status 2, no panic.
fn assert_refused(path: &str, expected: &str) {
    let out = xtask(&["reference", path]);
    common::assert_refused(&out, expected);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(path), "{stderr}");
}

#[test]
fn missing_file_exits_2() {
    assert_refused("no/such/model.safetensors", "cannot read");
}

#[test]
fn text_file_exits_2() {
    let path = scratch("readme").join("readme.safetensors");
    std::fs::write(&path, "# not tensors\n").unwrap();
    assert_refused(path.to_str().unwrap(), "not a safetensors file");
}

#[test]
fn a_bad_file_does_not_hide_the_good_ones() {
    let good = "datasets/reference/gpt_small.safetensors";
    let out = xtask(&["reference", "no/such.safetensors", good]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("gpt_small.safetensors"));
}

#[test]
fn unknown_device_exits_2() {
    let out = xtask(&["reference", "--device", "tpu"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown device `tpu`"));
}

/// A file whose recorded outputs disagree with the model from block 1 on: exit 1, the file and
/// the first diverging block named.
#[test]
fn a_mismatch_exits_1_and_names_the_first_diverging_block() {
    use safetensors::tensor::{SafeTensors, TensorView};
    let root = workspace_root();
    let bytes =
        std::fs::read(root.join("datasets/reference/memory_mosaic_small.safetensors")).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let shifted: Vec<(String, Vec<u8>)> = ["ref.hidden.1", "ref.logits"]
        .iter()
        .map(|name| {
            let view = file.tensor(name).unwrap();
            let data = view
                .data()
                .chunks_exact(4)
                .flat_map(|b| (f32::from_le_bytes(b.try_into().unwrap()) + 0.01).to_le_bytes())
                .collect();
            (name.to_string(), data)
        })
        .collect();
    let mut tensors: Vec<(String, TensorView)> = file
        .tensors()
        .into_iter()
        .filter(|(n, _)| !shifted.iter().any(|(s, _)| s == n))
        .collect();
    for (name, data) in &shifted {
        let view = file.tensor(name).unwrap();
        tensors.push((
            name.clone(),
            TensorView::new(view.dtype(), view.shape().to_vec(), data).unwrap(),
        ));
    }
    let path = scratch("diverging").join("diverging.safetensors");
    std::fs::write(
        &path,
        safetensors::serialize(tensors, header.metadata().clone()).unwrap(),
    )
    .unwrap();

    let out = xtask(&["reference", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("MISMATCH in") && stdout.contains("diverging.safetensors"),
        "{stdout}"
    );
    assert!(
        stdout.contains("block 1 is the first to diverge (ref.hidden.1)"),
        "{stdout}"
    );
}
