//! The fused projection `x W` against Burn's `linear` (values and gradients of both inputs,
//! weights stored or read as a transposed view, one input tracked at a time) and against
//! finite differences.

use burn::tensor::{DType, Device, Tensor, module};
use mosaic_core::ops::linear;

use crate::common::{gradient_errors, noise, project, rel_err, tensor, values};

/// The output and the gradients of `x` and `w` (where tracked) of `project(x W)`, fused or by
/// Burn; `w_t` stores the weight `(d_out, d_in)` and reads its transpose.
fn run<const D: usize>(
    x_dims: [usize; D],
    d_out: usize,
    w_t: bool,
    track: (bool, bool),
    fused: bool,
) -> (Vec<f64>, Option<Vec<f64>>, Option<Vec<f64>>) {
    let device = Device::flex().autodiff();
    let d_in = x_dims[D - 1];
    let n = x_dims.iter().product();
    let mut x = tensor(&noise(n, 1), x_dims, &device, DType::F32);
    let w_dims = match w_t {
        false => [d_in, d_out],
        true => [d_out, d_in],
    };
    let mut w_stored = tensor(&noise(d_in * d_out, 2), w_dims, &device, DType::F32);
    if track.0 {
        x = x.require_grad();
    }
    if track.1 {
        w_stored = w_stored.require_grad();
    }
    let w: Tensor<2> = match w_t {
        false => w_stored.clone(),
        true => w_stored.clone().transpose(),
    };
    let y = match fused {
        true => linear(x.clone(), w),
        false => module::linear(x.clone(), w, None),
    };
    let out = values(y.clone());
    let grads = project(y, 3).backward();
    let dx = track.0.then(|| values(x.grad(&grads).unwrap()));
    let dw = track.1.then(|| values(w_stored.grad(&grads).unwrap()));
    (out, dx, dw)
}

fn assert_close(a: &Option<Vec<f64>>, b: &Option<Vec<f64>>, what: &str) {
    match (a, b) {
        (Some(a), Some(b)) => assert!(rel_err(a, b) < 1e-5, "{what}: {:e}", rel_err(a, b)),
        (None, None) => {}
        _ => panic!("{what}: tracked on one side only"),
    }
}

fn check<const D: usize>(x_dims: [usize; D], d_out: usize) {
    for w_t in [false, true] {
        for track in [(true, true), (true, false), (false, true)] {
            let (y, dx, dw) = run(x_dims, d_out, w_t, track, true);
            let (y0, dx0, dw0) = run(x_dims, d_out, w_t, track, false);
            let case = format!("{x_dims:?} x {d_out}, transposed {w_t}, tracked {track:?}");
            assert!(
                rel_err(&y, &y0) < 1e-6,
                "{case}: forward {:e}",
                rel_err(&y, &y0)
            );
            assert_close(&dx, &dx0, &format!("{case}: dx"));
            assert_close(&dw, &dw0, &format!("{case}: dW"));
        }
    }
}

#[test]
fn equals_burns_linear() {
    // Large enough for gemm to split the work across threads, odd sizes for its edge tiles.
    check([4, 130, 96], 203);
    check([3, 7], 5);
    check([2, 3, 5, 6], 4);
    check([9], 11);
}

#[test]
fn gradient_matches_finite_differences() {
    let (rows, d_in, d_out) = (5, 4, 3);
    let inputs = [noise(rows * d_in, 7), noise(d_in * d_out, 8)];
    let errors = gradient_errors(&inputs, DType::F32, 1e-2, |t| {
        let x = t[0].clone().reshape([1, rows, d_in]);
        let w = t[1].clone().reshape([d_in, d_out]);
        project(linear(x, w), 4)
    });
    for (i, e) in errors.iter().enumerate() {
        assert!(*e < 1e-3, "input {i}: relative error {e:e}");
    }
}
