//! RegBench training pieces: batches, schedule, parameter matching, evaluation, learning.

mod common;

use burn::module::Module;

use burn::tensor::Device;
use common::gradient_difference;
use mosaic_data::regbench::{SEP, VOCAB};
use mosaic_models::MemoryMosaicConfig;
use mosaic_train::config::ModelConfig;
use mosaic_train::regbench::{
    MAX_INPUT, Protocol, batch_gradients, evaluate, examples, gpt_config_matching, loss,
    mosaic_config, padded, train,
};

#[test]
fn batches_pad_inputs_and_mask_targets() {
    let ex = examples(3, 1);
    let refs: Vec<_> = ex.iter().collect();
    let (ids, targets) = padded(&refs, &Device::flex());
    let t = ex.iter().map(|e| e.inputs().len()).max().unwrap();
    assert_eq!(ids.dims(), [3, t]);
    let ids: Vec<i64> = ids.into_data().try_to_vec_as::<i64>().unwrap();
    let targets: Vec<i64> = targets.into_data().try_to_vec_as::<i64>().unwrap();
    for (b, e) in ex.iter().enumerate() {
        let n = e.inputs().len();
        for p in 0..t {
            let (id, target) = (ids[b * t + p], targets[b * t + p]);
            if p < n {
                assert_eq!(id, e.inputs()[p] as i64);
                let next = e.sequence[p + 1];
                assert_eq!(target, if next == SEP { -1 } else { next as i64 });
            } else {
                assert_eq!((id, target), (0, -1));
            }
        }
    }
}

#[test]
fn schedule_warms_up_then_decays_to_a_tenth() {
    let r = Protocol::paper(5e-4).recipe(800);
    assert_eq!(r.lr(0), 1e-6);
    assert!((r.lr(80) - 5e-4).abs() < 1e-15);
    assert!((r.lr(800) - 5e-5).abs() < 1e-12);
    assert!(r.lr(40) > 2e-4 && r.lr(40) < 3e-4);
}

#[test]
fn the_gpt_baseline_matches_the_mosaic_in_size() {
    let mm = mosaic_config();
    assert_eq!(
        mm.num_params(),
        2 * (12 * 128 * 128 + 2 * 128 + 7 * 8) + VOCAB * 128 + 128
    );
    let gpt = gpt_config_matching(mm.num_params());
    let ratio = gpt.num_params() as f64 / mm.num_params() as f64;
    assert!(
        (0.95..=1.05).contains(&ratio),
        "GPT d {} has {} params against {}",
        gpt.n_embd,
        gpt.num_params(),
        mm.num_params()
    );
    assert!(
        examples(200, 9)
            .iter()
            .all(|e| e.inputs().len() <= MAX_INPUT)
    );
}

/// v1 and v2 (whose long-term offset is drawn at each step while training).
#[test]
fn a_small_model_learns_a_few_sequences() {
    for small in [
        MemoryMosaicConfig::new(VOCAB, 1, 2, 32, MAX_INPUT),
        MemoryMosaicConfig::v2(VOCAB, 1, 2, 32, MAX_INPUT),
    ] {
        let small = ModelConfig::MemoryMosaic(small);
        let data = examples(4, 7);
        let recipe = Protocol {
            epochs: 12,
            batch_size: 4,
            lr: 1e-2,
            eval_every: 4,
            ..Protocol::paper(1e-2)
        };
        let before = loss(&small.init(&Device::flex()), &data, 4).unwrap();
        let mut seen = Vec::new();
        let trained = train(
            &small,
            &data,
            &data,
            &recipe,
            &Device::flex(),
            &mut |e, l, _| seen.push((e, l)),
        )
        .unwrap();
        assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), vec![4, 8, 12]);
        assert!(
            trained.best_val_loss < before - 0.3,
            "{small:?}: loss {before:.3} -> {:.3}",
            trained.best_val_loss
        );
        let score = evaluate(&trained.model, &data, 4).unwrap();
        assert_eq!(
            score.positions,
            data.iter().map(|e| e.inputs().len()).sum::<usize>()
        );
        assert!((0.0..=1.0).contains(&score.accuracy()) && (0.0..=1.0).contains(&score.tvd()));
        assert!(trained.model.num_params() > 0);
    }
}

/// Sequences of one and two tokens, in batches of one: nothing to predict is skipped, never an
/// empty forward pass.
#[test]
fn one_and_two_token_sequences_are_scored() {
    let config = ModelConfig::MemoryMosaic(MemoryMosaicConfig::new(VOCAB, 1, 2, 16, MAX_INPUT));
    let model = config.init(&Device::flex());
    // The first example whose second token is a letter, so the two-token one has a target.
    let pool = examples(20, 3);
    let with_target = pool.iter().find(|e| e.sequence[1] != SEP).unwrap();
    let mut short = vec![pool[0].clone(), with_target.clone()];
    short[0].sequence.truncate(1);
    short[1].sequence.truncate(2);
    assert_eq!((short[0].inputs().len(), short[1].inputs().len()), (0, 1));
    let score = evaluate(&model, &short, 1).unwrap();
    assert_eq!(score.positions, 1);
    let two = loss(&model, &short[1..], 1).unwrap();
    assert_eq!(loss(&model, &short, 1).unwrap(), two);
    assert!(two.is_finite() && two > 0.0, "{two}");
    let trainable = config.init(&Device::flex().autodiff());
    let refs: Vec<_> = short.iter().collect();
    let grads = batch_gradients(&trainable, &refs, 1).unwrap();
    assert!(!grads.is_empty(), "the two-token example gives gradients");
}

#[test]
fn length_groups_give_the_padded_batch_gradients() {
    for config in [
        ModelConfig::MemoryMosaic(MemoryMosaicConfig {
            pmem_size: 24,
            ..MemoryMosaicConfig::new(VOCAB, 2, 2, 16, MAX_INPUT)
        }),
        ModelConfig::Gpt(mosaic_models::GptConfig {
            vocab_size: VOCAB,
            n_layer: 1,
            n_head: 2,
            n_embd: 16,
            block_size: MAX_INPUT,
            dropout: 0.0,
        }),
    ] {
        let model = config.init(&Device::flex().autodiff());
        let data = examples(7, 11);
        let batch: Vec<_> = data.iter().collect();
        let lengths: Vec<usize> = data.iter().map(|e| e.inputs().len()).collect();
        assert!(lengths.iter().max() > lengths.iter().min(), "{lengths:?}");
        let whole = batch_gradients(&model, &batch, batch.len()).unwrap();
        let grouped = batch_gradients(&model, &batch, 3).unwrap();
        let (diff, size) = gradient_difference(&model, &whole, &grouped);
        assert!(size > 1e-3, "gradients vanish: {size}");
        assert!(
            diff < 1e-5 * size.max(1.0),
            "grouped gradients differ by {diff} (largest {size})"
        );
    }
}
