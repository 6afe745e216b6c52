//! The fused LayerNorm against Burn's, forward and backward, and against finite differences.

use burn::tensor::module;
use burn::tensor::{DType, Device};
use mosaic_core::ops::layer_norm;

use crate::common::{gradient_errors, noise, project, rel_err, tensor, values};

#[test]
fn forward_and_backward_equal_burns() {
    let device = Device::flex().autodiff();
    // 300 rows (several parallel tasks) of 48, offset and scaled so the mean matters.
    let (rows, d) = (300, 48);
    let x: Vec<f64> = noise(rows * d, 2).iter().map(|v| 3.0 * v + 1.5).collect();
    let g: Vec<f64> = noise(d, 3).iter().map(|v| 1.0 + v).collect();
    let run = |fused: bool| {
        let xt = tensor(&x, [3, 100, d], &device, DType::F32).require_grad();
        let gt = tensor(&g, [d], &device, DType::F32).require_grad();
        let y = match fused {
            true => layer_norm(xt.clone(), gt.clone(), 1e-5),
            false => module::layer_norm(xt.clone(), gt.clone(), None, 1e-5),
        };
        let out = values(y.clone());
        let grads = project(y, 7).backward();
        [
            out,
            values(xt.grad(&grads).unwrap()),
            values(gt.grad(&grads).unwrap()),
        ]
    };
    let (a, b) = (run(true), run(false));
    for (name, (a, b)) in ["output", "dx", "dgain"].iter().zip(a.iter().zip(&b)) {
        let err = rel_err(a, b);
        assert!(err < 1e-5, "{name}: {err:e}");
    }
}

#[test]
fn gradients_match_finite_differences() {
    let (rows, d) = (3, 5);
    let inputs = vec![
        noise(rows * d, 4),
        noise(d, 5).iter().map(|v| 1.0 + v).collect(),
    ];
    let errors = gradient_errors(&inputs, DType::F32, 1e-2, |x| {
        project(
            layer_norm(x[0].clone().reshape([rows, d]), x[1].clone(), 1e-5),
            6,
        )
    });
    for (name, err) in ["x", "gain"].iter().zip(&errors) {
        assert!(*err < 3e-3, "{name}: relative error {err:e}");
    }
}
