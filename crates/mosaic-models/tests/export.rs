//! Exporting to the official format: the shipped reference files go out exactly as they came
//! in, a model survives the round trip bit for bit, and what the official code cannot hold is
//! refused.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor};
use mosaic_models::{
    EXPORT_CONFIG, EXPORT_WEIGHTS, ExportError, GptConfig, LanguageModel, MemoryMosaicConfig,
    ModelConfig, TensorFile, export_official, load_official,
};

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../datasets/reference")
        .join(name)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mosaic-export-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn values(t: Tensor<3>) -> Vec<f32> {
    t.into_data().try_to_vec_as::<f32>().unwrap()
}

/// The metadata `config` of a reference file, as a configuration of ours.
fn config_of(model: &LanguageModel, path: &Path) -> ModelConfig {
    let text = TensorFile::open(path)
        .unwrap()
        .metadata()
        .remove("config")
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let n = |k: &str| json[k].as_u64().unwrap() as usize;
    match model {
        LanguageModel::MemoryMosaic(_) => ModelConfig::MemoryMosaic(MemoryMosaicConfig {
            pmem_size: n("pmem_size"),
            ..MemoryMosaicConfig::new(
                n("vocab_size"),
                n("n_layer"),
                n("n_head"),
                n("n_embd"),
                n("block_size"),
            )
        }),
        LanguageModel::Gpt(_) => ModelConfig::Gpt(GptConfig {
            vocab_size: n("vocab_size"),
            n_layer: n("n_layer"),
            n_head: n("n_head"),
            n_embd: n("n_embd"),
            block_size: n("block_size"),
            dropout: 0.0,
        }),
    }
}

/// Every tensor of the official `state_dict` in a reference file (all but the recorded
/// inputs and outputs, `ref.*`) is written back under its name, with the same bytes.
#[test]
fn the_reference_files_export_to_themselves() {
    let device = Device::flex();
    for name in ["memory_mosaic_small.safetensors", "gpt_small.safetensors"] {
        let path = shipped(name);
        let model = load_official(&path, &device).unwrap();
        let out = scratch(name);
        export_official(&model, &config_of(&model, &path), &out).unwrap();
        let (reference, exported) = (
            TensorFile::open(&path).unwrap(),
            TensorFile::open(out.join(EXPORT_WEIGHTS)).unwrap(),
        );
        let official: Vec<String> = reference
            .names()
            .into_iter()
            .filter(|n| !n.starts_with("ref."))
            .collect();
        assert_eq!(exported.names(), official, "{name}: the same names");
        for n in &official {
            let shape = reference.shape(n).unwrap();
            let read = |f: &TensorFile| match shape.len() {
                1 => f.float_any::<1>(n, &device).unwrap().into_data(),
                2 => f.float_any::<2>(n, &device).unwrap().into_data(),
                3 => f.float_any::<3>(n, &device).unwrap().into_data(),
                _ => f.float_any::<4>(n, &device).unwrap().into_data(),
            };
            assert_eq!(read(&exported), read(&reference), "{name}: {n}");
        }
        let constructor: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join(EXPORT_CONFIG)).unwrap())
                .unwrap();
        assert_eq!(constructor["n_layer"], 2, "{name}");
    }
}

/// A fresh model (two persistent banks, so the banks split and join) and GPT: exported and
/// loaded back, the same logits to the bit.
#[test]
fn a_model_survives_the_round_trip_bit_for_bit() {
    let device = Device::flex();
    device.seed(11);
    let configs = [
        ModelConfig::MemoryMosaic(MemoryMosaicConfig {
            pmem_count: 2,
            pmem_size: 24,
            ..MemoryMosaicConfig::new(40, 2, 4, 16, 20)
        }),
        ModelConfig::Gpt(GptConfig {
            vocab_size: 40,
            n_layer: 2,
            n_head: 4,
            n_embd: 16,
            block_size: 20,
            dropout: 0.0,
        }),
    ];
    let ids: Vec<i64> = (0..20).map(|i| (i * 7 + 2) % 40).collect();
    let input = Tensor::<2, Int>::from_data(burn::tensor::TensorData::new(ids, [1, 20]), &device);
    for (i, config) in configs.iter().enumerate() {
        let model = config.init(&device);
        let out = scratch(&format!("round-{i}"));
        export_official(&model, config, &out).unwrap();
        let back = load_official(out.join(EXPORT_WEIGHTS), &device).unwrap();
        let (a, b) = (
            values(model.forward(input.clone()).unwrap().logits),
            values(back.forward(input.clone()).unwrap().logits),
        );
        assert_eq!(a, b, "{}", model.kind());
    }
}

#[test]
fn v2_and_mismatched_models_are_refused() {
    let device = Device::flex();
    let v2 = ModelConfig::MemoryMosaic(MemoryMosaicConfig::v2(30, 1, 4, 16, 32));
    let err = export_official(&v2.init(&device), &v2, &scratch("v2")).unwrap_err();
    assert!(matches!(err, ExportError::V2(_)), "{err}");
    assert!(err.to_string().contains("implements v1 only"), "{err}");
    let v1 = ModelConfig::MemoryMosaic(MemoryMosaicConfig::new(30, 1, 4, 16, 32));
    let other = ModelConfig::MemoryMosaic(MemoryMosaicConfig::new(30, 2, 4, 16, 32));
    let err = export_official(&v1.init(&device), &other, &scratch("mismatch")).unwrap_err();
    assert!(matches!(err, ExportError::Mismatch(_)), "{err}");
}
