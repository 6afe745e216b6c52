//! Generation with each layer's memory kept between tokens gives the tokens of recomputing the
//! whole window, also once the text outgrows `block_size` and the window slides.

use burn::tensor::Device;
use mosaic_models::{GptConfig, MemoryMosaicConfig};
use mosaic_train::config::ModelConfig;
use mosaic_train::sample::{SampleOptions, generate, generate_streaming};

#[test]
fn cached_generation_gives_the_recomputed_tokens() {
    let device = Device::flex();
    device.seed(11);
    let configs = [
        ModelConfig::MemoryMosaic(MemoryMosaicConfig::new(30, 2, 2, 16, 12)),
        ModelConfig::Gpt(GptConfig {
            vocab_size: 30,
            n_layer: 2,
            n_head: 2,
            n_embd: 16,
            block_size: 12,
            dropout: 0.0,
        }),
    ];
    for config in configs {
        let model = config.init(&device);
        for (prompt, top_k) in [
            (vec![3], Some(1)),
            (vec![1, 2, 3, 4], Some(1)),
            (vec![7], None),
        ] {
            let opts = |cache| SampleOptions {
                max_new_tokens: 20,
                temperature: 1.0,
                top_k,
                seed: 5,
                cache,
            };
            let cached = generate(&model, &prompt, &opts(true)).unwrap();
            let plain = generate(&model, &prompt, &opts(false)).unwrap();
            assert_eq!(cached.len(), prompt.len() + 20);
            assert_eq!(cached, plain, "{}", model.kind());
        }
    }
}

/// Streaming hands over each id as drawn, the ones `generate` returns; temperature 0 is top-1
/// sampling (greedy); a prompt id outside the vocabulary is refused.
#[test]
fn streaming_and_greedy_decoding() {
    let device = Device::flex();
    let model = ModelConfig::MemoryMosaic(MemoryMosaicConfig::new(30, 1, 2, 16, 12)).init(&device);
    let opts = |temperature, top_k, seed| SampleOptions {
        max_new_tokens: 15,
        temperature,
        top_k,
        seed,
        cache: true,
    };
    let mut streamed = Vec::new();
    let all = generate_streaming(&model, &[1, 2], &opts(0.8, None, 3), &mut |id| {
        streamed.push(id)
    })
    .unwrap();
    assert_eq!(all[..2], [1, 2]);
    assert_eq!(all[2..], streamed[..]);
    let greedy = generate(&model, &[1, 2], &opts(0.0, None, 1)).unwrap();
    assert_eq!(
        greedy,
        generate(&model, &[1, 2], &opts(0.0, None, 2)).unwrap()
    );
    assert_eq!(
        greedy,
        generate(&model, &[1, 2], &opts(1.0, Some(1), 9)).unwrap()
    );
    let err = generate(&model, &[1, 30], &opts(1.0, None, 0)).unwrap_err();
    assert!(err.to_string().contains("vocabulary of 30"), "{err}");
    for bad in [-1.0, f64::NAN, f64::INFINITY] {
        assert!(
            generate(&model, &[1], &opts(bad, None, 0)).is_err(),
            "{bad}"
        );
    }
}
