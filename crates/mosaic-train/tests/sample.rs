//! Generation with each layer's memory kept between tokens gives the tokens of recomputing the
//! whole window, also once the text outgrows `block_size` and the window slides.

use burn::tensor::Device;
use mosaic_models::{GptConfig, MemoryMosaicConfig};
use mosaic_train::config::ModelConfig;
use mosaic_train::sample::{SampleOptions, generate};

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
        let model = config.build(&device);
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
