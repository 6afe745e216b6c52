//! Our models on the outputs recorded from the official PyTorch implementation, and every kind
//! of bad file the loader must refuse with a typed error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor};
use mosaic_models::{
    LanguageModel, OfficialError, TensorFile, TensorFileError, cross_entropy, load_official,
};
use safetensors::tensor::{SafeTensors, TensorView};

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../datasets/reference")
        .join(name)
}

fn max_abs_err<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    (a - b).abs().max().into_scalar()
}

fn check_file(name: &str, expected_hidden: usize) {
    let device = Device::flex();
    let path = shipped(name);
    let model = load_official(&path, &device).unwrap();
    let file = TensorFile::open(&path).unwrap();
    let out = model
        .forward(file.int("ref.input_ids", &device).unwrap())
        .unwrap();

    let logits_err = max_abs_err(
        out.logits.clone(),
        file.float_any::<3>("ref.logits", &device).unwrap(),
    );
    assert!(logits_err <= 1e-4, "{name}: logits error {logits_err:e}");
    let loss = cross_entropy(out.logits, file.int("ref.targets", &device).unwrap());
    let loss_err = max_abs_err(loss, file.float_any::<1>("ref.loss", &device).unwrap());
    assert!(loss_err <= 1e-5, "{name}: loss error {loss_err:e}");

    let mut compared = 0;
    for (i, hidden) in out.hidden.into_iter().enumerate() {
        let key = format!("ref.hidden.{i}");
        if file.contains(&key) {
            let err = max_abs_err(hidden, file.float_any::<3>(&key, &device).unwrap());
            assert!(err <= 1e-4, "{name}: {key} error {err:e}");
            compared += 1;
        }
    }
    assert_eq!(compared, expected_hidden, "{name}: hidden states compared");
}

#[test]
fn memory_mosaic_matches_the_official_implementation() {
    check_file("memory_mosaic_small.safetensors", 2);
}

#[test]
fn gpt_matches_the_official_implementation() {
    check_file("gpt_small.safetensors", 0);
}

/// Writes a copy of the shipped Memory Mosaic file with `edit` applied to its tensors and
/// metadata, and returns its path.
fn edited(
    name: &str,
    edit: impl FnOnce(&mut Vec<(String, TensorView<'_>)>, &mut HashMap<String, String>),
) -> PathBuf {
    let bytes = std::fs::read(shipped("memory_mosaic_small.safetensors")).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut metadata = header.metadata().clone().unwrap();
    let mut tensors = file.tensors();
    edit(&mut tensors, &mut metadata);
    let out = safetensors::serialize(tensors, Some(metadata)).unwrap();
    let dir = std::env::temp_dir().join(format!("mosaic-models-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, out).unwrap();
    path
}

fn load_err(path: &Path) -> OfficialError {
    match load_official(path, &Device::flex()) {
        Ok(_) => panic!("{} loaded, but should not have", path.display()),
        Err(e) => e,
    }
}

#[test]
fn missing_file_is_a_read_error() {
    let err = load_err(Path::new("no/such/file.safetensors"));
    assert!(
        matches!(err, OfficialError::File(TensorFileError::Read { .. })),
        "{err}"
    );
    assert!(
        err.to_string().contains("no/such/file.safetensors"),
        "{err}"
    );
}

#[test]
fn text_file_is_not_safetensors() {
    let dir = std::env::temp_dir().join(format!("mosaic-models-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notes.safetensors");
    std::fs::write(&path, "these are notes, not tensors\n").unwrap();
    let err = load_err(&path);
    assert!(
        matches!(
            err,
            OfficialError::File(TensorFileError::NotSafetensors { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("notes.safetensors"), "{err}");
}

#[test]
fn missing_tensor_is_named() {
    let path = edited("missing.safetensors", |t, _| {
        t.retain(|(n, _)| n != "blocks.1.pmem.pmem.M_v0")
    });
    let err = load_err(&path);
    assert!(
        matches!(&err, OfficialError::File(TensorFileError::Missing { name, .. }) if name == "blocks.1.pmem.pmem.M_v0"),
        "{err}"
    );
    assert!(err.to_string().contains("missing.safetensors"), "{err}");
}

#[test]
fn wrong_shape_is_named() {
    let path = edited("shape.safetensors", |t, _| {
        let (_, view) = t
            .iter_mut()
            .find(|(n, _)| n == "blocks.0.attn.c_proj.weight")
            .unwrap();
        let data = &view.data()[..32 * 16 * 4];
        *view = TensorView::new(view.dtype(), vec![32, 16], data).unwrap();
    });
    let err = load_err(&path);
    assert!(
        matches!(&err, OfficialError::File(TensorFileError::Shape { name, found, .. }) if name == "blocks.0.attn.c_proj.weight" && *found == vec![32, 16]),
        "{err}"
    );
}

#[test]
fn unknown_model_kind_is_refused() {
    let path = edited("kind.safetensors", |_, meta| {
        let config = meta["config"].replace("\"memory_mosaic\"", "\"mamba\"");
        meta.insert("config".into(), config);
    });
    let err = load_err(&path);
    assert!(
        matches!(&err, OfficialError::UnknownKind { kind, .. } if kind == "mamba"),
        "{err}"
    );
}

#[test]
fn unsupported_option_is_refused() {
    let path = edited("option.safetensors", |_, meta| {
        let config = meta["config"].replace("\"pre_ln\": true", "\"pre_ln\": false");
        meta.insert("config".into(), config);
    });
    let err = load_err(&path);
    assert!(err.to_string().contains("pre_ln"), "{err}");
}

#[test]
fn missing_config_is_refused() {
    let path = edited("config.safetensors", |_, meta| {
        meta.remove("config");
    });
    assert!(matches!(load_err(&path), OfficialError::Config { .. }));
}

#[test]
fn loaded_model_is_the_kind_the_metadata_names() {
    let device = Device::flex();
    let mm = load_official(shipped("memory_mosaic_small.safetensors"), &device).unwrap();
    let gpt = load_official(shipped("gpt_small.safetensors"), &device).unwrap();
    assert!(matches!(mm, LanguageModel::MemoryMosaic(_)));
    assert!(matches!(gpt, LanguageModel::Gpt(_)));
}
