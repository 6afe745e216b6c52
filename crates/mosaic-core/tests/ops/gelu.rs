//! The fused GELU against Burn's `gelu_approximate`, forward and backward, and against finite
//! differences.

use burn::tensor::activation::gelu_approximate;
use burn::tensor::{DType, Device};
use mosaic_core::ops::gelu_tanh;

use crate::common::{gradient_errors, noise, project, rel_err, tensor, values};

#[test]
fn forward_and_backward_equal_burns() {
    let device = Device::flex().autodiff();
    // Values from -12 to 12, past both saturations; more than one parallel chunk.
    let x: Vec<f64> = noise(40_000, 3).iter().map(|v| v * 12.0).collect();
    let run = |fused: bool| {
        let t = tensor(&x, [200, 200], &device, DType::F32).require_grad();
        let y = match fused {
            true => gelu_tanh(t.clone()),
            false => gelu_approximate(t.clone()),
        };
        let out = values(y.clone());
        let g = project(y, 2).backward();
        (out, values(t.grad(&g).unwrap()))
    };
    let ((y, dy), (y0, dy0)) = (run(true), run(false));
    assert!(rel_err(&y, &y0) < 1e-6, "forward: {:e}", rel_err(&y, &y0));
    assert!(
        rel_err(&dy, &dy0) < 1e-5,
        "backward: {:e}",
        rel_err(&dy, &dy0)
    );
}

#[test]
fn gradient_matches_finite_differences() {
    let x: Vec<f64> = noise(30, 5).iter().map(|v| v * 3.0).collect();
    let errors = gradient_errors(&[x], DType::F32, 1e-2, |x| {
        project(gelu_tanh(x[0].clone()), 4)
    });
    assert!(errors[0] < 1e-3, "relative error {:e}", errors[0]);
}
