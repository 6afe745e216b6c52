//! The three-moons toy: the complex constraint, the generation cache, learning.

use burn::tensor::{Device, Tensor, TensorData};
use mosaic_data::three_moons::{DIM, TRAIN_TRIPLES, VAL_TRIPLE, sequence};
use mosaic_models::{ToyMosaic, ToyMosaicConfig};
use mosaic_train::optim::AdamW;
use mosaic_train::three_moons::{ToyTraining, at, context_curve, is_complex, train_toy};

fn small(steps: usize) -> ToyTraining {
    ToyTraining {
        steps,
        batch_size: 8,
        block_size: 96,
        ..ToyTraining::default()
    }
}

#[test]
fn weights_stay_complex_through_training() {
    let device = Device::flex();
    for heads in [1, 3] {
        let model = train_toy(
            &ToyMosaicConfig::moons(heads),
            &TRAIN_TRIPLES,
            &small(3),
            &device,
            &mut |_, _| {},
        )
        .unwrap();
        assert!(is_complex(&model), "{heads} heads");
        let w = model.maps()[0]
            .1
            .weight()
            .into_data()
            .try_to_vec_as::<f32>()
            .unwrap();
        assert!(w.iter().any(|&v| v != 0.0));
    }
}

#[test]
fn generation_with_the_cache_equals_generation_without() {
    let device = Device::flex();
    for heads in [1, 3] {
        let model = train_toy(
            &ToyMosaicConfig::moons(heads),
            &TRAIN_TRIPLES,
            &small(5),
            &device,
            &mut |_, _| {},
        )
        .unwrap();
        for c in [1, 2, 40] {
            let data: Vec<f32> = [0, 500]
                .iter()
                .flat_map(|&s| sequence(s, c, &VAL_TRIPLE))
                .collect();
            let prompt = Tensor::<3>::from_data(TensorData::new(data, [2, c, DIM]), &device);
            let cached = model.generate(prompt.clone(), 12);
            let plain = model.generate_uncached(prompt, 12);
            assert_eq!(cached.dims(), [2, 12, DIM]);
            let err: f32 = (cached - plain).abs().max().into_scalar();
            // Twelve steps fed back through a bandwidth of 50 amplify the f32 rounding
            // differences of the two softmax paths to about 1e-5; a wrong cache errs by 0.1.
            assert!(err < 1e-4, "{heads} heads, context {c}: {err:e}");
        }
    }
}

#[test]
fn the_first_generated_step_is_the_forward_prediction() {
    let device = Device::flex();
    let model = train_toy(
        &ToyMosaicConfig::moons(3),
        &TRAIN_TRIPLES,
        &small(2),
        &device,
        &mut |_, _| {},
    )
    .unwrap();
    let x = Tensor::<3>::from_data(
        TensorData::new(sequence(7, 30, &VAL_TRIPLE), [1, 30, DIM]),
        &device,
    );
    let forward = model.forward(x.clone()).0.narrow(1, 29, 1);
    let generated = model.generate(x, 1);
    let err: f32 = (forward - generated).abs().max().into_scalar();
    assert!(err < 1e-6);
}

#[test]
fn a_short_run_lowers_the_loss() {
    let device = Device::flex();
    let mut losses = Vec::new();
    let model = train_toy(
        &ToyMosaicConfig::moons(3),
        &TRAIN_TRIPLES,
        &small(40),
        &device,
        &mut |_, l| losses.push(l),
    )
    .unwrap();
    let first: f64 = losses[..5].iter().sum::<f64>() / 5.0;
    let last: f64 = losses[35..].iter().sum::<f64>() / 5.0;
    assert!(last < 0.8 * first, "loss {first:.4} -> {last:.4}");
    // A context of 0 (nothing to continue) is left out, not a panic.
    let curve = context_curve(&model, &VAL_TRIPLE, 4, &[0, 1, 50], 5, 0, &device);
    assert_eq!(curve.iter().map(|c| c.0).collect::<Vec<_>>(), vec![1, 50]);
    assert!(curve.iter().all(|(_, e)| e.is_finite()));
}

/// The hand-set memories show what each architecture can do at best: one head predicts only
/// after the joint period (266.7 steps on the validation triple), three heads after each
/// moon's own (at most 133.3), and both then predict 25 steps with small error.
#[test]
fn hand_set_memories_predict_after_their_periods() {
    let device = Device::flex();
    let contexts = [120, 200, 240, 300, 600];
    let curve = |heads| {
        let model = ToyMosaic::hand_set(&ToyMosaicConfig::moons(heads), 4.0, &device);
        context_curve(&model, &VAL_TRIPLE, 16, &contexts, 25, 1, &device)
    };
    let (one, three) = (curve(1), curve(3));
    eprintln!("1 head {one:?}\n3 heads {three:?}");
    for c in [120, 200, 240] {
        assert!(at(&one, c) > 0.3, "1 head before the joint period: {one:?}");
    }
    for c in [300, 600] {
        assert!(at(&one, c) < 0.05, "1 head after the joint period: {one:?}");
    }
    assert!(
        at(&three, 120) > 0.1,
        "3 heads before moon 3's period: {three:?}"
    );
    for c in [200, 240, 300, 600] {
        assert!(
            at(&three, c) < 0.05,
            "3 heads after every moon's period: {three:?}"
        );
    }
}

/// MLX's uncorrected Adam step over Burn's corrected one: m / sqrt(v) with m, v the raw
/// moments of a constant gradient g is (1 - 0.9^t) / sqrt(1 - 0.999^t).
#[test]
fn mlx_factor_matches_raw_moments() {
    let mlx = AdamW {
        bias_correction: false,
        ..AdamW::new(0.0)
    };
    let (mut m, mut v) = (0.0f64, 0.0f64);
    for t in 1..=500 {
        m = 0.9 * m + 0.1 * 2.0;
        v = 0.999 * v + 0.001 * 4.0;
        // Burn's corrected step for a constant gradient is exactly 1; MLX's is m / sqrt(v).
        assert!((m / v.sqrt() - mlx.lr_factor(t)).abs() < 1e-9, "t = {t}");
    }
    assert!((mlx.lr_factor(1) - 0.1 / 0.001f64.sqrt()).abs() < 1e-12);
}
