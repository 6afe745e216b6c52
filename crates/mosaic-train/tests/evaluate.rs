//! The one-block sliding read of long windows against the obvious computation: every read on
//! its own, through `losses`.

use burn::tensor::Device;
use mosaic_data::TokenFile;
use mosaic_models::{GptConfig, LanguageModel, MemoryMosaicConfig};
use mosaic_train::evaluate::{losses, sliding_losses};

/// One layer, 2 heads, width 16, vocabulary 30.
fn tiny_gpt(block_size: usize) -> GptConfig {
    GptConfig {
        vocab_size: 30,
        n_layer: 1,
        n_head: 2,
        n_embd: 16,
        block_size,
        dropout: 0.0,
    }
}

#[test]
fn sliding_losses_equal_each_read_scored_on_its_own() {
    let device = Device::flex();
    device.seed(5);
    let block = 8;
    let models = [
        LanguageModel::Gpt(tiny_gpt(block).init(&device)),
        LanguageModel::MemoryMosaic(MemoryMosaicConfig::new(30, 1, 2, 16, block).init(&device)),
    ];
    let ids: Vec<u32> = (0..101u32).map(|i| (i * 7 + i * i) % 30).collect();
    let tokens = TokenFile::from_ids(ids.clone(), "test".as_ref());
    let (length, stride) = (3 * block, 2);
    for model in &models {
        let got = sliding_losses(model, &tokens, length, stride, 5).unwrap();
        assert_eq!(got.len(), length - block);
        // Four windows of 24 tokens fit in 101; each position p >= 8 is scored by the read
        // starting at s = stride * floor((p - 8) / stride) + stride, at its index p - s.
        let windows = (ids.len() - 1) / length;
        assert_eq!(windows, 4);
        let mut expected = vec![0.0f64; length - block];
        for w in 0..windows {
            for p in block..length {
                let s = stride * ((p - block) / stride) + stride;
                assert!(p - s >= block - stride && p - s < block);
                let at = w * length + s;
                let read = TokenFile::from_ids(ids[at..at + block + 1].to_vec(), "r".as_ref());
                let l = losses(model, &read, block, 1).unwrap();
                expected[p - block] += l.per_position[p - s] / windows as f64;
            }
        }
        for (g, e) in got.iter().zip(&expected) {
            assert!((g - e).abs() < 1e-5, "{got:?}\n{expected:?}");
        }
    }
    // A stride that does not divide the block is refused.
    let err = sliding_losses(&models[0], &tokens, length, 3, 5).unwrap_err();
    assert!(err.to_string().contains("must divide the block"), "{err}");
}

/// The probe's numbers are the model's losses at the copy's positions, whole window and last
/// block, as `losses` computes them window by window.
#[test]
fn recall_probe_scores_the_copy_as_the_model_reads_it() {
    use mosaic_train::recall::{RecallOptions, recall_probe};
    let device = Device::flex();
    device.seed(7);
    let block = 8;
    let model =
        LanguageModel::MemoryMosaic(MemoryMosaicConfig::new(30, 1, 2, 16, block).init(&device));
    let ids: Vec<u32> = (0..120u32).map(|i| (i * 13 + i * i / 3) % 30).collect();
    let tokens = TokenFile::from_ids(ids, "test".as_ref());
    let opts = RecallOptions {
        factor: 2,
        span: 4,
        windows: 5,
        seed: 1,
        batch_size: 2,
    };
    let r = recall_probe(&model, &tokens, &opts).unwrap();
    assert_eq!((r.length, r.windows), (16, 5));
    // Whole-window reads of the unchanged windows: positions 13..16 of each, through `losses`.
    let long = model.clone().with_context(16).unwrap();
    let per_window: Vec<f64> = (0..5)
        .map(|w| {
            let file = TokenFile::from_ids(
                (0..17).map(|i| tokens_at(&tokens, w * 16 + i)).collect(),
                "w".as_ref(),
            );
            let l = losses(&long, &file, 16, 1).unwrap();
            l.per_position[13..16].iter().sum::<f64>() / 3.0
        })
        .collect();
    let expected = per_window.iter().sum::<f64>() / 5.0;
    assert!(
        (r.unrepeated - expected).abs() < 1e-5,
        "{} vs {expected}",
        r.unrepeated
    );
    assert!(r.whole.is_some() && r.last_block.is_finite());
    // GPT cannot read two blocks: whole is None, the last block still reads.
    let gpt = LanguageModel::Gpt(tiny_gpt(block).init(&device));
    let g = recall_probe(&gpt, &tokens, &opts).unwrap();
    assert!(g.whole.is_none() && g.last_block.is_finite() && g.unrepeated.is_finite());
}

fn tokens_at(tokens: &TokenFile, i: usize) -> u32 {
    let mut out = Vec::new();
    tokens.read(i, 1, &mut out);
    out[0]
}
