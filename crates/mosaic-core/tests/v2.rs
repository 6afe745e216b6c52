//! Memory Mosaics v2's operations against slow, obvious implementations and finite differences:
//! the gated key recurrence (fused scan, chunked tensor form, step by step), the adaptive
//! bandwidth (closed form), and a contextual memory with both and a short- or long-term band
//! (its attention weights written out position by position).

mod common;

use burn::tensor::{DType, Device, Tensor};
use common::{gradient_errors, noise, project, random, rel_err, tensor, values};
use mosaic_core::gated_scan;
use mosaic_core::test_support::CHUNK;
use mosaic_core::test_support::{gated_scan_chunked, gated_scan_sequential};
use mosaic_core::{AdaptiveBandwidth, Band, ContextMemory, ContextMemoryConfig, SwiGlu};

/// A contextual memory of `d` wide, `h` heads, reading `band`, with the adaptive bandwidth and
/// (if `gated`) gated keys.
fn v2_memory(d: usize, h: usize, band: Band, gated: bool, device: &Device) -> ContextMemory {
    ContextMemoryConfig {
        band,
        adaptive_bandwidth: true,
        gated_keys: gated,
        ..ContextMemoryConfig::new(d, h, 1)
    }
    .init(device)
}

/// `u` of order 1 and log-decays in `[-spread, 0]`: from keeping almost all of the past to
/// keeping almost none.
fn scan_inputs(
    shape: [usize; 4],
    spread: f64,
    seed: u64,
    device: &Device,
) -> (Tensor<4>, Tensor<4>) {
    let [b, h, t, hs] = shape;
    let u = tensor(&noise(b * h * t * hs, seed), shape, device, DType::F32);
    let log_decay: Vec<f64> = noise(b * h * t, seed + 1)
        .iter()
        .map(|x| -spread * x.abs())
        .collect();
    (u, tensor(&log_decay, [b, h, t, 1], device, DType::F32))
}

#[test]
fn gated_scan_equals_its_recurrence() {
    for device in [Device::flex(), Device::flex().autodiff()] {
        for t in [1, 2, 17, CHUNK, CHUNK + 1, 2 * CHUNK + 7] {
            for spread in [0.05, 1.0, 30.0] {
                let (u, log_decay) = scan_inputs([2, 3, t, 4], spread, t as u64, &device);
                let slow = values(gated_scan_sequential(u.clone(), log_decay.clone()));
                let fused = values(gated_scan(u.clone(), log_decay.clone()));
                let chunked = values(gated_scan_chunked(u, log_decay));
                // The chunked form's coefficients are differences of cumulative log-decays,
                // which lose about eps |L| in f32 when the decays are extreme (|L| ~ 2000 at
                // spread 30).
                for (name, got, tol) in [("fused", fused, 1e-5), ("chunked", chunked, 1e-4)] {
                    let err = rel_err(&got, &slow);
                    assert!(err < tol, "{name} T={t} spread {spread}: {err:e}");
                }
            }
        }
    }
}

/// The recurrence's coefficients really vary per step: a constant decay would give another
/// answer (else the test above could not tell a per-step scan from a per-head one).
#[test]
fn gated_scan_uses_each_steps_decay() {
    let device = Device::flex();
    let (u, log_decay) = scan_inputs([1, 2, 9, 3], 1.0, 3, &device);
    let mean: f32 = log_decay.clone().mean().into_scalar();
    let constant = log_decay.ones_like() * mean;
    let varying = values(gated_scan(u.clone(), log_decay));
    let flat = values(gated_scan(u, constant));
    assert!(rel_err(&varying, &flat) > 1e-2);
}

#[test]
fn gated_scan_gradients_equal_the_recurrences() {
    let device = Device::flex().autodiff();
    for t in [1, 5, CHUNK + 3] {
        let grads = |form: usize| -> Vec<Vec<f64>> {
            let (u, log_decay) = scan_inputs([2, 2, t, 3], 2.0, 11, &device);
            let (u, log_decay) = (u.require_grad(), log_decay.require_grad());
            let y = match form {
                0 => gated_scan(u.clone(), log_decay.clone()),
                1 => gated_scan_chunked(u.clone(), log_decay.clone()),
                _ => gated_scan_sequential(u.clone(), log_decay.clone()),
            };
            let g = project(y, 5).backward();
            // One step never reads its decay: the step-by-step form has no gradient there.
            let dlog = log_decay.grad(&g).map_or(vec![0.0; 4 * t], values);
            vec![values(u.grad(&g).unwrap()), dlog]
        };
        let slow = grads(2);
        for (form, name) in [(0, "fused"), (1, "chunked")] {
            for (i, (a, b)) in grads(form).iter().zip(&slow).enumerate() {
                let err = rel_err(a, b);
                assert!(err < 1e-5, "{name} T={t}, input {i}: {err:e}");
            }
        }
    }
}

#[test]
fn gated_scan_gradients_match_finite_differences() {
    let shape = [1, 2, 6, 3];
    let n: usize = shape.iter().product();
    let log_decay: Vec<f64> = noise(12, 4).iter().map(|x| -x.abs()).collect();
    let inputs = vec![noise(n, 3), log_decay];
    for chunked in [false, true] {
        let errors = gradient_errors(&inputs, DType::F32, 1e-2, |x| {
            let u = x[0].clone().reshape(shape);
            let l = x[1].clone().reshape([1, 2, 6, 1]);
            let y = match chunked {
                false => gated_scan(u, l),
                true => gated_scan_chunked(u, l),
            };
            project(y, 9)
        });
        for (name, err) in ["u", "log_decay"].iter().zip(&errors) {
            assert!(
                *err < 2e-3,
                "chunked {chunked}, {name}: relative error {err:e}"
            );
        }
    }
}

#[test]
fn adaptive_bandwidth_is_the_closed_form() {
    let device = Device::flex();
    let bandwidth = AdaptiveBandwidth::new(2, &device);
    // Table 6's initialisation: beta0 = beta1 = e^1.5, alpha = 1/3.
    let counts = [0, 1, 8, 1000];
    let got = values(bandwidth.beta(&counts));
    let e = 1.5f64.exp();
    for (i, &n) in counts.iter().enumerate() {
        let expected = e * (n.max(1) as f64).powf(1.0 / 3.0) + e;
        for head in 0..2 {
            let v = got[head * counts.len() + i];
            assert!(
                (v - expected).abs() < 1e-4 * expected,
                "n {n}: {v} vs {expected}"
            );
        }
    }
}

/// `softmax_i(beta(n_t) k_t . k_i)` over the band's pairs, written out for one position at a
/// time, against the memory's attention weights.
#[test]
fn adaptive_memory_weights_equal_the_written_out_kernel() {
    let device = Device::flex();
    device.seed(7);
    let (d, h, t) = (12, 3, 11);
    for band in [Band::PAST, Band::short_term(4), Band::long_term(3)] {
        for gated in [false, true] {
            let memory = v2_memory(d, h, band, gated, &device);
            let x = random([1, t, d], &device);
            let got = values(memory.attention(x.clone()));
            let k = values(memory.key().forward(x));
            let bandwidth = memory.bandwidth().expect("adaptive");
            let hs = d / h;
            for head in 0..h {
                for q in 0..t {
                    let pairs: Vec<usize> = (0..t)
                        .filter(|&i| i + band.offset <= q && q < i.saturating_add(band.window))
                        .collect();
                    let beta = values(bandwidth.beta(&[pairs.len()]))[head];
                    let key = |i: usize| &k[(head * t + i) * hs..(head * t + i + 1) * hs];
                    let norm = key(q).iter().map(|v| v * v).sum::<f64>().sqrt();
                    assert!((norm - 1.0).abs() < 1e-5, "keys are unit-norm");
                    let scores: Vec<f64> = pairs
                        .iter()
                        .map(|&i| beta * key(q).iter().zip(key(i)).map(|(a, b)| a * b).sum::<f64>())
                        .collect();
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let total: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                    for i in 0..t {
                        let expected = pairs
                            .iter()
                            .position(|&p| p == i)
                            .map_or(0.0, |j| (scores[j] - max).exp() / total);
                        let w = got[(head * t + q) * t + i];
                        assert!(
                            (w - expected).abs() < 1e-5,
                            "{band:?} gated {gated} head {head} query {q} key {i}: {w} vs {expected}"
                        );
                    }
                }
            }
        }
    }
}

/// The whole v2 contextual memory (gated keys through the fused scan, adaptive bandwidth,
/// banded retrieval) and the SwiGLU layer, differentiated with respect to their input.
#[test]
fn v2_units_gradients_match_finite_differences() {
    let (d, h, t) = (8, 2, 7);
    let input = noise(t * d, 21);
    for band in [Band::short_term(3), Band::long_term(2)] {
        let device = Device::flex().autodiff();
        device.seed(3);
        let memory = v2_memory(d, h, band, true, &device);
        let errors = gradient_errors(std::slice::from_ref(&input), DType::F32, 1e-2, |x| {
            project(memory.forward(x[0].clone().reshape([1, t, d])), 4)
        });
        assert!(errors[0] < 5e-3, "{band:?}: relative error {:e}", errors[0]);
    }
    let device = Device::flex().autodiff();
    let ffn = SwiGlu::new(d, 12, 1, 0.0, &device);
    let errors = gradient_errors(std::slice::from_ref(&input), DType::F32, 1e-2, |x| {
        project(ffn.forward(x[0].clone().reshape([1, t, d])), 4)
    });
    assert!(errors[0] < 2e-3, "SwiGLU: relative error {:e}", errors[0]);
}

/// Generation one step at a time equals the forward pass, while the short-term memory keeps
/// only the `h - 1` pairs its window still reads and the long-term memory keeps every pair
/// (each is read once it is older than the offset).
#[test]
fn cached_steps_keep_what_each_band_reads() {
    let device = Device::flex();
    device.seed(9);
    let (d, h, t, prompt) = (8, 2, 14, 5);
    for (band, kept) in [
        (Band::short_term(4), Some(3)),
        (Band::long_term(3), None),
        (Band::PAST, None),
    ] {
        let memory = v2_memory(d, h, band, true, &device);
        let x = random([1, t, d], &device);
        let full = values(memory.forward(x.clone()));
        let (y, mut cache) = memory.prefill(x.clone().narrow(1, 0, prompt));
        let mut got = values(y);
        for s in prompt..t {
            got.extend(values(memory.step(x.clone().narrow(1, s, 1), &mut cache)));
            assert_eq!(cache.len(), s + 1);
            assert_eq!(cache.stored(), kept.unwrap_or(s + 1), "{band:?} after {s}");
        }
        let err = rel_err(&got, &full);
        assert!(err < 1e-5, "{band:?}: {err:e}");
    }
}
