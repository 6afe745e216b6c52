//! The same model code on a GPU backend, run for real: WGPU, which CI runs on Mesa's lavapipe
//! (a Vulkan driver that executes compute shaders on the CPU). Built only with the `wgpu`
//! feature, as `.ci/run` does:
//!
//! ```text
//! cargo test --release -p xtask --features wgpu --test wgpu
//! ```
//!
//! WGPU against the CPU backend: the official reference files, five training steps from the same
//! weights, greedy cached generation, and mixed-precision training.

#![cfg(feature = "wgpu")]

mod support;

use std::process::Command;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use mosaic_models::{GptConfig, LanguageModel, MemoryMosaicConfig, ModelConfig};
use mosaic_models::{cross_entropy, device_from_name};
use mosaic_train::optim::AdamW;
use mosaic_train::sample::{SampleOptions, generate};
use mosaic_train::schedule::Schedule;
use mosaic_train::{Engine, Precision, Recipe, TrainError};
use support::common::workspace_root;
use support::xtask;

const VOCAB: usize = 32;
const BLOCK: usize = 32;

fn wgpu() -> Device {
    device_from_name("wgpu").expect("a WGPU adapter (CI installs mesa-vulkan-drivers)")
}

/// v1, v2 (its chunked gated scan, short- and long-term bands and SwiGLU on WGPU; one
/// long-term offset, as each backend would draw its own from a range) and GPT.
fn models() -> [ModelConfig; 3] {
    [
        ModelConfig::MemoryMosaic(MemoryMosaicConfig::new(VOCAB, 2, 4, 32, BLOCK)),
        ModelConfig::MemoryMosaic(MemoryMosaicConfig {
            short_window: 8,
            long_offset: [4, 4],
            ..MemoryMosaicConfig::v2(VOCAB, 2, 4, 32, BLOCK)
        }),
        ModelConfig::Gpt(GptConfig {
            vocab_size: VOCAB,
            n_layer: 2,
            n_head: 4,
            n_embd: 32,
            block_size: BLOCK,
            dropout: 0.0,
        }),
    ]
}

/// A fixed permutation of the vocabulary, repeated: after a few dozen steps the next token is
/// certain, so greedy generation has wide margins and two backends must agree on it.
fn cycle(i: usize) -> i64 {
    ((i * 13 + 5) % VOCAB) as i64
}

/// Four windows of the cycle at different offsets, and their next tokens.
fn batch(device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
    let window = |shift: usize| -> Vec<i64> {
        (0..4)
            .flat_map(|row| (0..BLOCK).map(move |t| cycle(row * 7 + t + shift)))
            .collect()
    };
    let tensor = |ids: Vec<i64>| Tensor::from_data(TensorData::new(ids, [4, BLOCK]), device);
    (tensor(window(0)), tensor(window(1)))
}

/// `steps` AdamW steps of `model` (moved to `device`, with gradients) on the cycle; the losses.
fn train(
    model: &LanguageModel,
    device: &Device,
    steps: usize,
    lr: f64,
    precision: Precision,
) -> Result<(LanguageModel, Vec<f64>), TrainError> {
    let device = device.clone().autodiff();
    let recipe = Recipe {
        schedule: Schedule::Constant(lr),
        optimizer: AdamW::new(0.1),
        grad_clip: 1.0,
        seed: 0,
        precision,
    };
    let mut engine = Engine::new(model.clone().fork(&device).train(), recipe, &device);
    let (ids, targets) = batch(&device);
    let mut losses = Vec::new();
    for _ in 0..steps {
        let stats = engine.train_step(&[1.0], |m: &LanguageModel, _| {
            Ok(cross_entropy(
                m.forward(ids.clone())?.logits,
                targets.clone(),
            ))
        })?;
        losses.push(stats.loss);
    }
    Ok((engine.into_model().valid(), losses))
}

fn fresh(config: &ModelConfig) -> LanguageModel {
    let cpu = Device::flex();
    cpu.seed(7);
    config.init(&cpu)
}

#[test]
fn reference_files_match_on_wgpu() {
    let out = xtask(&["reference", "--device", "wgpu", "--tolerance", "1e-3"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the reference check failed on WGPU");
    assert_eq!(stdout.matches("logits").count(), 2, "both files checked");
}

#[test]
fn five_training_steps_on_wgpu_equal_the_cpu_backend() {
    for config in models() {
        let model = fresh(&config);
        let (_, cpu) = train(&model, &Device::flex(), 5, 3e-3, Precision::F32).unwrap();
        let (_, gpu) = train(&model, &wgpu(), 5, 3e-3, Precision::F32).unwrap();
        let diff = cpu.iter().zip(&gpu).map(|(c, g)| (c - g).abs());
        println!(
            "{}: flex {cpu:.6?}, wgpu {gpu:.6?}, max |difference| {:.2e}",
            model.kind(),
            diff.fold(0.0, f64::max)
        );
        for (step, (c, g)) in cpu.iter().zip(&gpu).enumerate() {
            assert!(
                (c - g).abs() < 1e-3,
                "{} step {step}: flex {c} wgpu {g}",
                model.kind()
            );
        }
        assert!(cpu[4] < cpu[0], "{}: the loss falls: {cpu:?}", model.kind());
    }
}

#[test]
fn cached_generation_on_wgpu_gives_the_cpu_tokens() {
    let prompt: Vec<u32> = (0..4).map(|i| cycle(i) as u32).collect();
    let options = |cache| SampleOptions {
        max_new_tokens: 16,
        temperature: 1.0,
        top_k: Some(1),
        seed: 0,
        cache,
    };
    for config in models() {
        let (model, _) = train(&fresh(&config), &Device::flex(), 60, 1e-2, Precision::F32).unwrap();
        let cpu = generate(&model, &prompt, &options(true)).unwrap();
        let on_gpu = model.clone().to_device(&wgpu());
        let cached = generate(&on_gpu, &prompt, &options(true)).unwrap();
        let recomputed = generate(&on_gpu, &prompt, &options(false)).unwrap();
        println!("{}: {cached:?}", model.kind());
        let learned = (0..cpu.len())
            .filter(|&i| cpu[i] as i64 == cycle(i))
            .count();
        assert!(
            learned > cpu.len() * 3 / 4,
            "{}: trained on the cycle, the model continues it: {cpu:?}",
            model.kind()
        );
        assert_eq!(cached, cpu, "{}: WGPU cached against flex", model.kind());
        assert_eq!(recomputed, cpu, "{}: WGPU recomputed", model.kind());
    }
}

/// f16 compute with f32 master weights trains on WGPU: finite losses that fall, and a first
/// loss (same weights, same batch) close to f32's, taken on the CPU backend (which WGPU's f32
/// equals, as the five-step test shows). bf16 where the adapter computes in it, else a clear
/// refusal. The Memory Mosaic: its memories' kernels compute in f32 between casts, checked one
/// by one in mosaic-core's `tests/ops/half.rs` (GPT's attention is the same retrieval kernel);
/// GPT and v2 in f16 are checked on the CPU backend (`mosaic-train`'s precision tests), where
/// compiling costs nothing (on lavapipe GPT in f16 took 64 s of this test's 99, for 41 more
/// kernels and its steps).
#[test]
fn mixed_precision_trains_on_wgpu() {
    let device = wgpu();
    let [v1, _, _] = models();
    let model = fresh(&v1);
    let (_, f32_losses) = train(&model, &Device::flex(), 1, 3e-3, Precision::F32).unwrap();
    for precision in [Precision::F16, Precision::Bf16] {
        let name = format!("{} {}", model.kind(), precision.name());
        if !precision.supported_on(&device) {
            let err = train(&model, &device, 1, 3e-3, precision).unwrap_err();
            println!("{name}: refused: {err}");
            assert!(err.to_string().contains("train.precision"), "{err}");
            continue;
        }
        let (_, losses) = train(&model, &device, 12, 3e-3, precision).unwrap();
        println!(
            "{name}: {losses:.4?}; first {:.6} (f32 {:.6})",
            losses[0], f32_losses[0]
        );
        assert!(losses.iter().all(|l| l.is_finite()), "{name}: {losses:?}");
        assert!(
            (losses[0] - f32_losses[0]).abs() < 2e-2,
            "{name}: {losses:?}"
        );
        let late = losses[9..].iter().sum::<f64>() / 3.0;
        assert!(late < losses[0] - 0.2, "{name}: the loss falls: {losses:?}");
    }
}

/// With no driver to be found (no Vulkan driver, and no EGL one for WGPU's OpenGL fallback),
/// one line names the missing packages; no panic.
#[test]
fn a_missing_driver_is_one_clear_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["reference", "--device", "wgpu"])
        .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
        .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
        .env("__EGL_VENDOR_LIBRARY_FILENAMES", "/nonexistent/egl.json")
        .current_dir(workspace_root())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("mesa-vulkan-drivers"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
