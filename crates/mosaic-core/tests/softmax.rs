//! The fused softmax against Burn's (the plain tensor form), forward and backward, and its
//! gradient against finite differences.

mod common;

use burn::tensor::activation::softmax;
use burn::tensor::{DType, Device, Tensor};
use common::{gradient_errors, noise, project, rel_err, tensor, values};
use mosaic_core::softmax::softmax_last;

/// Scores with a wide range, rows of 1, 7 and 300 entries, some -inf (masked) entries.
fn scores(shape: [usize; 3], device: &Device) -> Tensor<3> {
    let n = shape.iter().product();
    let mut v: Vec<f64> = noise(n, shape[2] as u64).iter().map(|x| x * 20.0).collect();
    let row = shape[2];
    for (i, x) in v.iter_mut().enumerate() {
        if row > 1 && i % row == (i / row) % row && i % 3 == 0 {
            *x = f64::NEG_INFINITY;
        }
    }
    tensor(&v, shape, device, DType::F32)
}

#[test]
fn forward_equals_burns_softmax() {
    for device in [Device::flex(), Device::flex().autodiff()] {
        for shape in [[2, 3, 1], [2, 3, 7], [4, 5, 300]] {
            let x = scores(shape, &device);
            let fused = values(softmax_last(x.clone()));
            let plain = values(softmax(x, 2));
            let err = rel_err(&fused, &plain);
            assert!(err < 1e-6, "{shape:?}: {err:e}");
        }
    }
}

/// The gradient of a generic scalar of the output, through the fused op and through Burn's
/// five recorded operations.
#[test]
fn backward_equals_burns_softmax() {
    let device = Device::flex().autodiff();
    for shape in [[2, 3, 1], [2, 3, 7], [4, 5, 300]] {
        let grad = |fused: bool| {
            let x = scores(shape, &device).require_grad();
            let y = match fused {
                true => softmax_last(x.clone()),
                false => softmax(x.clone(), 2),
            };
            let grads = project(y, 9).backward();
            values(x.grad(&grads).expect("x takes part"))
        };
        let (fused, plain) = (grad(true), grad(false));
        assert!(plain.iter().any(|g| *g != 0.0) || shape[2] == 1);
        let err = rel_err(&fused, &plain);
        assert!(err < 1e-5, "{shape:?}: {err:e}");
    }
}

/// In f32 (the only dtype the fused kernel takes), so the differences are coarse: a step of
/// 1e-2 on scores of order 1.
#[test]
fn gradient_matches_finite_differences() {
    let x: Vec<f64> = noise(2 * 3 * 6, 4);
    let errors = gradient_errors(&[x], DType::F32, 1e-2, |x| {
        project(softmax_last(x[0].clone().reshape([2, 3, 6])), 3)
    });
    assert!(errors[0] < 1e-3, "relative error {:e}", errors[0]);
}
