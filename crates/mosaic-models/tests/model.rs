//! Properties of freshly built models: causality, parameter counts, input checks.

use burn::module::Module;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use mosaic_models::{
    Forward, GptConfig, InputError, LanguageModel, MemoryMosaicConfig, ToyMosaicConfig,
};

fn ids(rows: &[Vec<i64>], device: &Device) -> Tensor<2, Int> {
    let t = rows[0].len();
    let flat: Vec<i64> = rows.concat();
    Tensor::from_data(TensorData::new(flat, [rows.len(), t]), device)
}

fn logits_at(out: &Forward, pos: usize) -> Vec<f32> {
    out.logits
        .clone()
        .narrow(1, pos, 1)
        .into_data()
        .try_to_vec_as::<f32>()
        .unwrap()
}

/// A Memory Mosaic and a GPT, both 2 layers, 4 heads, d 32, vocabulary 40.
fn models(device: &Device, block_size: usize) -> Vec<LanguageModel> {
    device.seed(3);
    vec![
        LanguageModel::MemoryMosaic(MemoryMosaicConfig::new(40, 2, 4, 32, block_size).init(device)),
        LanguageModel::Gpt(
            GptConfig {
                vocab_size: 40,
                n_layer: 2,
                n_head: 4,
                n_embd: 32,
                block_size,
                dropout: 0.0,
            }
            .init(device),
        ),
    ]
}

/// Changing the tokens after position t changes no logit at positions <= t, and does change
/// the ones after (so the test can fail).
#[test]
fn future_tokens_do_not_change_past_logits() {
    let device = Device::flex();
    let t_len = 90; // longer than one leaky-average chunk
    let a: Vec<i64> = (0..t_len as i64).map(|i| (i * 7 + 3) % 40).collect();
    for model in models(&device, 100) {
        for t in [0, 1, 40, 70] {
            let mut b = a.clone();
            for (i, tok) in b.iter_mut().enumerate().skip(t + 1) {
                *tok = (i as i64 * 13 + 5) % 40;
            }
            let out_a = model
                .forward(ids(std::slice::from_ref(&a), &device))
                .unwrap();
            let out_b = model.forward(ids(&[b], &device)).unwrap();
            for pos in 0..=t {
                assert_eq!(
                    logits_at(&out_a, pos),
                    logits_at(&out_b, pos),
                    "{}: logits at {pos} moved when tokens after {t} changed",
                    model.kind()
                );
            }
            assert_ne!(
                logits_at(&out_a, t + 2),
                logits_at(&out_b, t + 2),
                "{}",
                model.kind()
            );
        }
    }
}

/// Without gradients on the CPU backend the models use Burn's fused attention (at 90 tokens
/// its whole-matrix kernel, at 600 its tiled one); with gradients, the explicit softmax. Both
/// give the same logits.
#[test]
fn fused_attention_equals_the_explicit_form() {
    let device = Device::flex();
    let ad = device.clone().autodiff();
    for model in models(&device, 600) {
        let explicit = model.clone().to_device(&ad);
        for t in [90, 600] {
            let block: Vec<i64> = (0..t as i64).map(|i| (i * 11 + 1) % 40).collect();
            let fused = model
                .forward(ids(std::slice::from_ref(&block), &device))
                .unwrap()
                .logits;
            let plain = explicit.forward(ids(&[block], &ad)).unwrap().logits;
            let err: f32 = (fused.clone() - plain.inner()).abs().max().into_scalar();
            let size: f32 = fused.abs().max().into_scalar();
            assert!(size > 0.0);
            assert!(
                err < 1e-5 * size.max(1.0),
                "{} T = {t}: {err:e}",
                model.kind()
            );
        }
    }
}

/// A sequence of 1, 2, 3 or 4 tokens (a one-token prompt) gives the logits of the same prefix
/// inside a 70-token one, with and without gradients (fused and explicit retrieval).
#[test]
fn short_sequences_give_the_logits_of_the_prefix() {
    let device = Device::flex();
    let long: Vec<i64> = (0..70).map(|i| (i * 7 + 3) % 40).collect();
    for model in models(&device, 100) {
        for on in [device.clone(), device.clone().autodiff()] {
            let model = model.clone().to_device(&on);
            let full = model
                .forward(ids(std::slice::from_ref(&long), &on))
                .unwrap();
            for len in 1..=4 {
                let short = model.forward(ids(&[long[..len].to_vec()], &on)).unwrap();
                for pos in 0..len {
                    let (a, b) = (logits_at(&short, pos), logits_at(&full, pos));
                    let err = a
                        .iter()
                        .zip(&b)
                        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
                    assert!(
                        err < 1e-5,
                        "{} length {len}, position {pos}: {err:e}",
                        model.kind()
                    );
                }
            }
        }
    }
}

/// Generation's cache: a prompt's prefill then one token at a time gives, at every position, the
/// logits of a forward pass over the whole sequence (70 tokens: past a leaky-average chunk).
#[test]
fn cached_steps_equal_the_forward_pass() {
    let device = Device::flex();
    let seq: Vec<i64> = (0..70).map(|i| (i * 11 + 5) % 40).collect();
    for model in models(&device, 100) {
        let full = model
            .forward(ids(std::slice::from_ref(&seq), &device))
            .unwrap();
        for prompt in [1, 5] {
            let (logits, mut cache) = model
                .prefill(ids(&[seq[..prompt].to_vec()], &device))
                .unwrap();
            let mut worst = 0.0f32;
            for pos in 0..prompt {
                let a = logits
                    .clone()
                    .narrow(1, pos, 1)
                    .into_data()
                    .try_to_vec_as::<f32>()
                    .unwrap();
                let b = logits_at(&full, pos);
                worst = a
                    .iter()
                    .zip(&b)
                    .fold(worst, |m, (x, y)| m.max((x - y).abs()));
            }
            for (pos, &token) in seq.iter().enumerate().skip(prompt) {
                let step = model
                    .step(ids(&[vec![token]], &device), &mut cache)
                    .unwrap();
                assert_eq!(cache.len(), pos + 1);
                let a = step.into_data().try_to_vec_as::<f32>().unwrap();
                let b = logits_at(&full, pos);
                worst = a
                    .iter()
                    .zip(&b)
                    .fold(worst, |m, (x, y)| m.max((x - y).abs()));
            }
            assert!(worst < 1e-4, "{} prompt {prompt}: {worst:e}", model.kind());
        }
        // The cache stops at block_size, as the model does.
        let (_, mut cache) = model.prefill(ids(&[vec![1; 100]], &device)).unwrap();
        assert!(matches!(
            model.step(ids(&[vec![1]], &device), &mut cache),
            Err(InputError::TooLong { len: 101, .. })
        ));
    }
}

/// The three-moons toy on one to four observations: the prefix of a longer run, and its cached
/// generation from a one-step prompt equals the recomputed one.
#[test]
fn the_toy_takes_short_sequences() {
    let device = Device::flex();
    device.seed(4);
    let toy = ToyMosaicConfig::moons(3).init(&device);
    let x = Tensor::<3>::random([2, 30, 6], Distribution::Normal(0.0, 1.0), &device);
    let (full, _) = toy.forward(x.clone());
    for len in 1..=4 {
        let (short, _) = toy.forward(x.clone().narrow(1, 0, len));
        let err: f32 = (short - full.clone().narrow(1, 0, len))
            .abs()
            .max()
            .into_scalar();
        assert!(err < 1e-5, "length {len}: {err:e}");
    }
    let prompt = x.narrow(1, 0, 1);
    let cached = toy.generate(prompt.clone(), 5);
    let plain = toy.generate_uncached(prompt, 5);
    let err: f32 = (cached - plain).abs().max().into_scalar();
    assert!(err < 1e-5, "{err:e}");
}

#[test]
fn memory_mosaic_block_has_twelve_d_squared_weights() {
    let device = Device::flex();
    for (d, h, layers) in [(32, 4, 1), (64, 8, 3), (48, 6, 2)] {
        let config = MemoryMosaicConfig::new(50, layers, h, d, 64);
        assert_eq!(config.pmem_size * 2, 7 * d);
        let model = config.init(&device);
        assert_eq!(model.num_params(), config.num_params(), "d={d}");
        // Per block: 12 d^2 weights plus two LayerNorm gains and seven per-head scalars.
        let per_block = (model.num_params() - 50 * d - d) / layers;
        assert_eq!(per_block, 12 * d * d + 2 * d + 7 * h, "d={d}");
    }
}

#[test]
fn pmem_count_multiplies_the_banks() {
    let device = Device::flex();
    let mut config = MemoryMosaicConfig::new(50, 1, 4, 32, 64);
    let one = config.init(&device).num_params();
    config.pmem_count = 2;
    let two = config.init(&device).num_params();
    assert_eq!(two - one, 2 * config.pmem_size * 32);
}

#[test]
fn gpt_block_has_twelve_d_squared_weights() {
    let device = Device::flex();
    let config = GptConfig {
        vocab_size: 50,
        n_layer: 3,
        n_head: 4,
        n_embd: 32,
        block_size: 64,
        dropout: 0.0,
    };
    let model = config.init(&device);
    assert_eq!(model.num_params(), config.num_params());
    assert_eq!(
        config.num_params(),
        3 * (12 * 32 * 32 + 2 * 32) + (50 + 64) * 32 + 32
    );
}

#[test]
fn too_long_and_empty_sequences_are_errors() {
    let device = Device::flex();
    for model in models(&device, 100) {
        let long: Vec<i64> = vec![1; 101];
        let err = model.forward(ids(&[long], &device)).unwrap_err();
        assert_eq!(
            err,
            InputError::TooLong {
                len: 101,
                block_size: 100
            }
        );
        assert!(err.to_string().contains("block_size 100"));
        let empty =
            Tensor::<2, Int>::from_data(TensorData::new(Vec::<i64>::new(), [1, 0]), &device);
        assert_eq!(model.forward(empty).unwrap_err(), InputError::Empty);
    }
}

#[test]
fn invalid_configs_name_the_key() {
    let mut config = MemoryMosaicConfig::new(50, 2, 4, 30, 64);
    assert!(
        config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("`n_embd` (30)")
    );
    config.n_embd = 32;
    config.validate().unwrap();
    config.attn_dropout = 1.0;
    assert!(
        config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("attn_dropout")
    );
    let gpt = GptConfig {
        vocab_size: 0,
        n_layer: 1,
        n_head: 1,
        n_embd: 8,
        block_size: 8,
        dropout: 0.0,
    };
    assert!(
        gpt.validate()
            .unwrap_err()
            .to_string()
            .contains("vocab_size")
    );
}

/// The TOML form of a config, as experiment files will hold it; unknown keys are errors.
#[test]
fn configs_deserialise_strictly() {
    let config: MemoryMosaicConfig = serde_json::from_str(
        r#"{"vocab_size": 65, "n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "pmem_size": 448}"#,
    )
    .unwrap();
    assert_eq!(config.pmem_count, 1);
    let err = serde_json::from_str::<MemoryMosaicConfig>(
        r#"{"vocab_size": 65, "n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "pmem_size": 448, "n_heads": 2}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("n_heads"), "{err}");
}

/// Ids reach a model through `tokens`, which refuses one past the vocabulary by name rather
/// than letting the backend's gather read out of bounds; ids inside it give the same logits
/// as a tensor built by hand.
#[test]
fn token_ids_outside_the_vocabulary_are_refused() {
    let device = Device::flex();
    for model in models(&device, 8) {
        assert_eq!(model.vocab_size(), 40);
        let err = model.tokens(&[1, 2, 40, 3], 2).unwrap_err();
        assert_eq!(
            err,
            InputError::OutOfVocabulary {
                id: 40,
                vocab_size: 40
            }
        );
        assert!(err.to_string().contains("vocabulary of 40"), "{err}");
        let checked = model.tokens(&[1, 2, 39, 3], 2).unwrap();
        assert_eq!(checked.dims(), [2, 2]);
        let by_hand = ids(&[vec![1, 2], vec![39, 3]], &device);
        let (a, b) = (
            model.forward(checked).unwrap(),
            model.forward(by_hand).unwrap(),
        );
        assert_eq!(logits_at(&a, 1), logits_at(&b, 1));
    }
}
