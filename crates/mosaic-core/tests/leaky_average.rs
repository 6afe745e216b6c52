//! The O(T) leaky average against the O(T^2) matrix form and the recurrence, and its gradients
//! against finite differences.

mod common;

use burn::tensor::{DType, Device, Tensor};
use common::{gradient_errors, noise, project, rel_err, tensor, values};
use mosaic_core::test_support::{
    CHUNK, leaky_average, leaky_average_chunked, leaky_average_quadratic,
};

fn inputs(
    b: usize,
    h: usize,
    t: usize,
    hs: usize,
    decays: &[f64],
    seed: u64,
) -> (Tensor<4>, Tensor<1>) {
    let device = Device::flex();
    let u = tensor(
        &noise(b * h * t * hs, seed),
        [b, h, t, hs],
        &device,
        DType::F32,
    );
    let decay = tensor(decays, [h], &device, DType::F32);
    (u, decay)
}

#[test]
fn linear_time_scan_equals_matrix_form() {
    let cases: &[(usize, &[f64])] = &[
        (1, &[0.5]),
        (3, &[0.05, 1.0, 5.0]),
        (4, &[0.001, 0.3, 2.0, 50.0]),
        (8, &[0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4]),
    ];
    for &(h, decays) in cases {
        for t in [
            1,
            2,
            17,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            2 * CHUNK,
            3 * CHUNK + 5,
            300,
        ] {
            let (u, decay) = inputs(2, h, t, 3, decays, t as u64);
            let slow = values(leaky_average_quadratic(u.clone(), decay.clone()));
            // The fused scan (the CPU's) and the chunked tensor form (other backends').
            let fast = values(leaky_average(u.clone(), decay.clone()));
            let chunked = values(leaky_average_chunked(u, decay));
            for (name, got) in [("scan", fast), ("chunked", chunked)] {
                let err = rel_err(&got, &slow);
                assert!(err <= 1e-5, "{name} H={h} T={t}: relative error {err:e}");
            }
        }
    }
}

/// Both forms against the defining recurrence, `kbar_t = lambda kbar_{t-1} + (1 - lambda) u_t`,
/// run in f64 on the host.
#[test]
fn matches_the_recurrence() {
    let (h, t, hs) = (2, 150, 2);
    let decays = [0.02, 0.7];
    let (u, decay) = inputs(1, h, t, hs, &decays, 7);
    let raw = values(u.clone());
    let fast = values(leaky_average(u, decay));
    let mut expected = vec![0.0; raw.len()];
    for (head, b) in decays.iter().enumerate() {
        let lambda = (-b).exp();
        for c in 0..hs {
            let mut state = 0.0;
            for step in 0..t {
                let i = (head * t + step) * hs + c;
                state = lambda * state + (1.0 - lambda) * raw[i];
                expected[i] = state;
            }
        }
    }
    let err = rel_err(&fast, &expected);
    assert!(err <= 1e-5, "relative error {err:e}");
}

#[test]
fn gradients_match_finite_differences() {
    let (b, h, hs) = (1, 2, 2);
    for t in [5, CHUNK + 6] {
        let u = noise(b * h * t * hs, 3);
        let decay = vec![0.3, 1.2];
        let errors = gradient_errors(&[u, decay], DType::F64, 1e-6, |x| {
            let u = x[0].clone().reshape([b, h, t, hs]);
            project(leaky_average(u, x[1].clone()), 11)
        });
        for (name, err) in ["u", "decay"].iter().zip(&errors) {
            assert!(
                *err <= 1e-6,
                "T={t}: gradient wrt {name}: relative error {err:e}"
            );
        }
    }
}

/// The fused scan's backward (f32, the CPU) against the chunked tensor form's, and against
/// finite differences in f32.
#[test]
fn fused_scan_gradients_equal_the_tensor_form() {
    let device = Device::flex().autodiff();
    let (b, h, hs) = (2, 3, 4);
    for t in [1, 7, CHUNK + 9] {
        let grads = |fused: bool| {
            let u = tensor(
                &noise(b * h * t * hs, 5),
                [b, h, t, hs],
                &device,
                DType::F32,
            )
            .require_grad();
            let decay = tensor(&[0.05, 0.8, 4.0], [h], &device, DType::F32).require_grad();
            let y = match fused {
                true => leaky_average(u.clone(), decay.clone()),
                false => leaky_average_chunked(u.clone(), decay.clone()),
            };
            let g = project(y, 3).backward();
            [values(u.grad(&g).unwrap()), values(decay.grad(&g).unwrap())]
        };
        let (a, c) = (grads(true), grads(false));
        for (name, (a, c)) in ["u", "decay"].iter().zip(a.iter().zip(&c)) {
            let err = rel_err(a, c);
            assert!(err < 1e-4, "T={t} {name}: {err:e}");
        }
    }
    let t = 12;
    let errors = gradient_errors(
        &[noise(h * t * hs, 9), vec![0.1, 0.7, 2.0]],
        DType::F32,
        1e-2,
        |x| {
            project(
                leaky_average(x[0].clone().reshape([1, h, t, hs]), x[1].clone()),
                4,
            )
        },
    );
    for (name, err) in ["u", "decay"].iter().zip(&errors) {
        assert!(*err < 2e-3, "gradient wrt {name}: relative error {err:e}");
    }
}
