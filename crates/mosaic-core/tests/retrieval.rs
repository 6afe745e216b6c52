//! Kernel retrieval with the strictly-past mask: closed-form properties and finite-difference
//! gradients, and the zero at position 0 of a contextual memory.

mod common;

use burn::nn::DropoutConfig;
use burn::tensor::{DType, Device};
use common::{gradient_errors, noise, project, random, rel_err, values};
use mosaic_core::Band;
use mosaic_core::heads::{l2_normalize, per_head};
use mosaic_core::retrieval::{band_retrieval, band_weights, bank_retrieval};
use mosaic_core::{ContextMemoryConfig, EXP_PARAM_SCALE};

#[test]
fn weights_are_a_softmax_over_the_strict_past() {
    let device = Device::flex();
    let (b, h, t, hs) = (2, 3, 9, 4);
    let k = random([b, h, t, hs], &device);
    let w = values(band_weights(k.clone(), k.clone(), Band::PAST));
    let kv = values(k);
    for bh in 0..b * h {
        for i in 0..t {
            let row = &w[(bh * t + i) * t..(bh * t + i + 1) * t];
            if i == 0 {
                assert!(row.iter().all(|&x| x == 0.0), "row 0 must be exactly zero");
                continue;
            }
            assert!(
                row[i..].iter().all(|&x| x == 0.0),
                "row {i} reads the present or future"
            );
            // softmax_j(k_i . k_j) over j < i, computed here on the host.
            let dot = |a: usize, c: usize| -> f64 {
                (0..hs)
                    .map(|e| kv[(bh * t + a) * hs + e] * kv[(bh * t + c) * hs + e])
                    .sum()
            };
            let scores: Vec<f64> = (0..i).map(|j| dot(i, j)).collect();
            let max = scores.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = scores.iter().map(|s| (s - max).exp()).sum();
            let expected: Vec<f64> = scores.iter().map(|s| (s - max).exp() / z).collect();
            let err = rel_err(&row[..i], &expected);
            assert!(err < 1e-5, "row {i}: relative error {err:e}");
        }
    }
}

#[test]
fn retrieval_is_the_weights_times_the_values() {
    let device = Device::flex();
    let no_dropout = DropoutConfig::new(0.0).init();
    for t in [1, 2, 9] {
        let (k, v) = (random([2, 3, t, 4], &device), random([2, 3, t, 5], &device));
        let expected = values(band_weights(k.clone(), k.clone(), Band::PAST).matmul(v.clone()));
        let got = values(band_retrieval(k.clone(), k, v, Band::PAST, &no_dropout));
        assert_eq!(got.len(), expected.len());
        let err = got
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-6, "T = {t}: {err:e}");
    }
}

#[test]
fn context_memory_output_is_zero_at_position_zero() {
    let device = Device::flex();
    let memory = ContextMemoryConfig::new(16, 4, 2).init(&device);
    let x = random([3, 10, 16], &device);
    let y = memory.forward(x);
    let first = values(y.clone().narrow(1, 0, 1));
    assert!(
        first.iter().all(|&v| v == 0.0),
        "position 0 must be exactly zero: {first:?}"
    );
    let rest = values(y.narrow(1, 1, 9));
    assert!(
        rest.iter().any(|&v| v != 0.0),
        "later positions must not be zero"
    );
}

/// The retrieval as a contextual memory uses it: L2-normalised keys times `exp(10 kappa)`,
/// which are also the queries, over the values.
#[test]
fn past_retrieval_gradients_match_finite_differences() {
    let (b, h, t, hs) = (2, 2, 6, 3);
    let keys = noise(b * h * t * hs, 1);
    let vals = noise(b * h * t * hs, 2);
    let kappa = vec![0.05, 0.12];
    let dropout = DropoutConfig::new(0.0).init();
    let errors = gradient_errors(&[keys, vals, kappa], DType::F64, 1e-6, |x| {
        let scale = (x[2].clone() * EXP_PARAM_SCALE).exp();
        let k = l2_normalize(x[0].clone().reshape([b, h, t, hs])) * per_head(scale);
        let v = x[1].clone().reshape([b, h, t, hs]);
        project(band_retrieval(k.clone(), k, v, Band::PAST, &dropout), 5)
    });
    for (name, err) in ["keys", "values", "kernel scale"].iter().zip(&errors) {
        assert!(*err <= 1e-6, "gradient wrt {name}: relative error {err:e}");
    }
}

#[test]
fn bank_retrieval_gradients_match_finite_differences() {
    let (b, h, t, p, hs) = (1, 2, 4, 5, 3);
    let dropout = DropoutConfig::new(0.0).init();
    let errors = gradient_errors(
        &[
            noise(b * h * t * hs, 3),
            noise(h * p * hs, 4),
            noise(h * p * hs, 5),
        ],
        DType::F64,
        1e-6,
        |x| {
            let q = x[0].clone().reshape([b, h, t, hs]) * 2.0;
            let bank_k = x[1].clone().reshape([h, p, hs]);
            let bank_v = x[2].clone().reshape([h, p, hs]);
            project(bank_retrieval(q, bank_k, bank_v, &dropout), 9)
        },
    );
    for (name, err) in ["query", "bank keys", "bank values"].iter().zip(&errors) {
        assert!(*err <= 1e-6, "gradient wrt {name}: relative error {err:e}");
    }
}

/// The same checks in f32, the dtype models train in, at the tolerance.
#[test]
fn f32_gradients_within_one_percent() {
    let (b, h, t, hs) = (1, 2, 5, 2);
    let dropout = DropoutConfig::new(0.0).init();
    let errors = gradient_errors(
        &[
            noise(b * h * t * hs, 8),
            noise(b * h * t * hs, 9),
            vec![0.1, -0.05],
        ],
        DType::F32,
        1e-3,
        |x| {
            let scale = (x[2].clone() * EXP_PARAM_SCALE).exp();
            let k = l2_normalize(x[0].clone().reshape([b, h, t, hs])) * per_head(scale);
            let v = x[1].clone().reshape([b, h, t, hs]);
            project(band_retrieval(k.clone(), k, v, Band::PAST, &dropout), 5)
        },
    );
    for err in errors {
        assert!(err <= 1e-2, "relative error {err:e}");
    }
}

/// The retrieval answers zero on the rows with nothing to read inside its kernel; before, it read
/// key 0 there and `band_retrieval` put a zero tensor in their place. Both give the same
/// numbers, values and gradients, bit for bit on the CPU backend: the change moved no result.
#[test]
fn empty_rows_answered_by_the_kernel_are_the_zeroed_rows_bit_for_bit() {
    use burn::tensor::Tensor;
    use common::tensor;
    use mosaic_core::test_support::causal_retrieval;
    let device = Device::flex().autodiff();
    let no_dropout = DropoutConfig::new(0.0).init();
    let shape = [2, 3, 9, 4];
    let n = shape.iter().product();
    for band in [Band::PAST, Band::long_term(3), Band::short_term(4)] {
        let run = |by_kernel: bool| {
            let k = tensor(&noise(n, 1), shape, &device, DType::F32).require_grad();
            let v = tensor(&noise(n, 2), shape, &device, DType::F32).require_grad();
            let y = match by_kernel {
                true => band_retrieval(k.clone(), k.clone(), v.clone(), band, &no_dropout),
                false => {
                    let y = causal_retrieval(k.clone(), k.clone(), v.clone(), 1.0, band);
                    let e = band.empty_rows();
                    let zero = Tensor::<4>::zeros([2, 3, e, 4], &device);
                    Tensor::cat(vec![zero, y.narrow(2, e, 9 - e)], 2)
                }
            };
            let grads = project(y.clone(), 3).backward();
            let grad = |x: &Tensor<4>| values(x.grad(&grads).unwrap());
            [values(y), grad(&k), grad(&v)]
        };
        assert_eq!(run(true), run(false), "{band:?}");
    }
}
