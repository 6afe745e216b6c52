//! The optimisation recipe: schedule, decay groups, clipping, accumulation, learning, and exact
//! resume.

mod common;

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::Device;
use common::{config_file, gradient_difference, load, scratch, shakespeare};
use mosaic_data::{Batch, RandomWindows, Split, TokenFile};
use mosaic_models::{LanguageModel, cross_entropy};
use mosaic_train::Trainer;
use mosaic_train::batch::tensors;
use mosaic_train::optim::{DecayGroups, clip_global_norm, global_norm};
use mosaic_train::schedule::Schedule;

#[test]
fn learning_rate_schedule() {
    let schedule = Schedule::nanogpt(1e-3, 1e-4, 100, 2000);
    let lr = |it| schedule.at(it);
    assert!((lr(0) - 1e-3 / 101.0).abs() < 1e-15);
    assert!((lr(99) - 1e-3 * 100.0 / 101.0).abs() < 1e-15);
    assert!(
        (lr(100) - 1e-3).abs() < 1e-15,
        "the peak right after warm-up"
    );
    assert!(
        (lr(1050) - 5.5e-4).abs() < 1e-12,
        "half way down the cosine: (lr + min_lr) / 2"
    );
    assert!((lr(2000) - 1e-4).abs() < 1e-15);
    assert_eq!(lr(5000), 1e-4);
    assert!((1..2000).all(|i| lr(i) <= lr(i - 1) || i <= 100));
}

#[test]
fn decay_groups_split_matrices_from_scalars() {
    let dir = scratch("groups");
    let data = shakespeare(&dir);
    let config = load(&config_file(&dir, &data, "mosaic", ""), &[]);
    let model = config.model.init(&Device::flex());
    let groups = DecayGroups::of(&model);
    let names = |g: &Vec<(String, _)>| g.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    let (decay, no_decay) = (names(&groups.decay), names(&groups.no_decay));
    for name in [
        "MemoryMosaic.emb",
        "MemoryMosaic.blocks.0.attn.key.weight",
        "MemoryMosaic.blocks.0.attn.value.weight",
        "MemoryMosaic.blocks.0.attn.c_proj",
        "MemoryMosaic.blocks.1.pmem.bank_keys",
        "MemoryMosaic.blocks.1.pmem.bank_values",
    ] {
        assert!(
            decay.contains(&name.to_string()),
            "{name} should decay: {decay:?}"
        );
    }
    for name in [
        "MemoryMosaic.blocks.0.attn.key.leaky.theta",
        "MemoryMosaic.blocks.0.attn.key.kappa",
        "MemoryMosaic.blocks.0.attn.value.mix",
        "MemoryMosaic.blocks.0.attn.value.nu",
        "MemoryMosaic.blocks.1.pmem.nu",
        "MemoryMosaic.blocks.0.ln1.gain",
        "MemoryMosaic.ln_out.gain",
    ] {
        assert!(
            no_decay.contains(&name.to_string()),
            "{name} should not decay: {no_decay:?}"
        );
    }
    // Per block: 3 + 4 matrices, and 2 gains + 7 scalars; plus the embedding and the last gain.
    assert_eq!((decay.len(), no_decay.len()), (2 * 7 + 1, 2 * 9 + 1));
}

fn batch_of(tokens: &TokenFile, rows: usize, seed: u64) -> Batch {
    RandomWindows::new(tokens.clone(), 16, rows, seed)
        .unwrap()
        .next_batch()
}

fn grads_of(model: &LanguageModel, batch: &Batch, scale: f64) -> GradientsParams {
    let (ids, targets) = tensors(batch, model).unwrap();
    let loss = cross_entropy(model.forward(ids).unwrap().logits, targets) * scale;
    GradientsParams::from_grads(loss.backward(), model)
}

#[test]
fn clipping_bounds_the_global_norm() {
    let dir = scratch("clip");
    let data = shakespeare(&dir);
    let config = load(&config_file(&dir, &data, "gpt", ""), &["model.dropout=0.0"]);
    let device = Device::flex().autodiff();
    let model = config.model.init(&device);
    let tokens = TokenFile::open(&data, Split::Train).unwrap();
    let mut grads = grads_of(&model, &batch_of(&tokens, 4, 1), 1.0);
    let before = global_norm(&model, &grads);
    assert!(before > 0.1, "norm {before}");
    let reported = clip_global_norm(&model, &mut grads, 0.1);
    assert_eq!(reported, before);
    let after = global_norm(&model, &grads);
    assert!((after - 0.1).abs() < 1e-4, "clipped norm {after}");
    // Below the threshold nothing changes.
    let again = clip_global_norm(&model, &mut grads, 10.0);
    assert!((global_norm(&model, &grads) - again).abs() < 1e-9);
}

#[test]
fn accumulated_micro_batches_equal_one_large_batch() {
    let dir = scratch("accum");
    let data = shakespeare(&dir);
    for kind in ["gpt", "mosaic"] {
        let no_dropout: &[&str] = match kind {
            "gpt" => &["model.dropout=0.0"],
            _ => &["model.attn_dropout=0.0", "model.resid_dropout=0.0"],
        };
        let config = load(&config_file(&dir, &data, kind, ""), no_dropout);
        let device = Device::flex().autodiff();
        let model = config.model.init(&device);
        let tokens = TokenFile::open(&data, Split::Train).unwrap();
        let k = 3;
        let big = batch_of(&tokens, 2 * k, 5);
        let whole = grads_of(&model, &big, 1.0);
        let mut acc = GradientsAccumulator::<LanguageModel>::new();
        for i in 0..k {
            let rows = |v: &Vec<u32>| v[i * 32..(i + 1) * 32].to_vec();
            let micro = Batch {
                inputs: rows(&big.inputs),
                targets: rows(&big.targets),
                batch_size: 2,
                block_size: 16,
            };
            acc.accumulate(&model, grads_of(&model, &micro, 1.0 / k as f64));
        }
        let summed = acc.grads();
        let (worst, _) = gradient_difference(&model, &whole, &summed);
        assert!(
            worst <= 1e-5,
            "{kind}: largest gradient difference {worst:e}"
        );
        assert!(global_norm(&model, &whole) > 0.0);
    }
}

#[test]
fn thirty_steps_lower_the_loss() {
    let dir = scratch("learn");
    let data = shakespeare(&dir);
    for kind in ["gpt", "mosaic"] {
        let config = load(&config_file(&dir, &data, kind, ""), &[]);
        let mut trainer = Trainer::new(config, &Device::flex()).unwrap();
        let before = trainer.estimate_loss(Split::Val).unwrap();
        for _ in 0..30 {
            trainer.train_step().unwrap();
        }
        let after = trainer.estimate_loss(Split::Val).unwrap();
        assert!(
            after < before - 0.2,
            "{kind}: val loss {before:.3} -> {after:.3}"
        );
    }
}

#[test]
fn model_parameters_move_only_where_gradients_flow() {
    // Every parameter gets a gradient: nothing in the model is dead weight.
    let dir = scratch("grads");
    let data = shakespeare(&dir);
    let config = load(&config_file(&dir, &data, "mosaic", ""), &[]);
    let device = Device::flex().autodiff();
    let model = config.model.init(&device);
    let tokens = TokenFile::open(&data, Split::Train).unwrap();
    let grads = grads_of(&model, &batch_of(&tokens, 2, 3), 1.0);
    let groups = DecayGroups::of(&model);
    assert_eq!(grads.len(), groups.decay.len() + groups.no_decay.len());
    assert_eq!(
        model.num_params(),
        2 * (12 * 32 * 32 + 2 * 32 + 7 * 2) + 65 * 32 + 32
    );
}
