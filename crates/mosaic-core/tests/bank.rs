//! The fused bank retrieval against the plain tensor form, forward and backward, and against
//! finite differences.

mod common;

use burn::tensor::activation::softmax;
use burn::tensor::{DType, Device, Tensor};
use common::{gradient_errors, noise, project, rel_err, tensor, values};
use mosaic_core::test_support::bank_retrieval;
use mosaic_core::test_support::cpu_kernels;

fn plain(q: Tensor<4>, k: Tensor<3>, v: Tensor<3>) -> Tensor<4> {
    let scores = q.matmul(k.swap_dims(1, 2).unsqueeze::<4>());
    softmax(scores, 3).matmul(v.unsqueeze::<4>())
}

/// Query `(B, H, T, hs)` and bank `(H, P, hs)` with scores of order 10, as the persistent
/// memory's scaled keys give.
fn inputs([b, h, t, p, hs]: [usize; 5], device: &Device) -> (Tensor<4>, Tensor<3>, Tensor<3>) {
    let scaled = |n: usize, seed: u64, s: f64| -> Vec<f64> {
        noise(n, seed).iter().map(|x| x * s).collect()
    };
    (
        tensor(
            &scaled(b * h * t * hs, 1, 2.0),
            [b, h, t, hs],
            device,
            DType::F32,
        ),
        tensor(&scaled(h * p * hs, 2, 2.0), [h, p, hs], device, DType::F32),
        tensor(&scaled(h * p * hs, 3, 1.0), [h, p, hs], device, DType::F32),
    )
}

const SHAPES: [[usize; 5]; 3] = [[1, 1, 1, 1, 1], [2, 3, 5, 7, 4], [3, 2, 40, 90, 16]];

#[test]
fn forward_equals_the_plain_form() {
    for device in [Device::flex(), Device::flex().autodiff()] {
        assert!(cpu_kernels(&device, DType::F32));
        for shape in SHAPES {
            let (q, k, v) = inputs(shape, &device);
            let a = values(bank_retrieval(q.clone(), k.clone(), v.clone()));
            let b = values(plain(q, k, v));
            let err = rel_err(&a, &b);
            assert!(err < 1e-5, "{shape:?}: {err:e}");
        }
    }
}

#[test]
fn backward_equals_the_plain_form() {
    let device = Device::flex().autodiff();
    for shape in SHAPES {
        let grads = |fused: bool| -> Vec<Vec<f64>> {
            let (q, k, v) = inputs(shape, &device);
            let (q, k, v) = (q.require_grad(), k.require_grad(), v.require_grad());
            let y = match fused {
                true => bank_retrieval(q.clone(), k.clone(), v.clone()),
                false => plain(q.clone(), k.clone(), v.clone()),
            };
            let g = project(y, 5).backward();
            vec![
                values(q.grad(&g).unwrap()),
                values(k.grad(&g).unwrap()),
                values(v.grad(&g).unwrap()),
            ]
        };
        let (a, b) = (grads(true), grads(false));
        for (name, (a, b)) in ["query", "keys", "values"].iter().zip(a.iter().zip(&b)) {
            let err = rel_err(a, b);
            assert!(err < 1e-5, "{shape:?} {name}: {err:e}");
        }
    }
}

/// In f32, the kernel's only dtype: steps of 1e-2 on inputs of order 1.
#[test]
fn gradients_match_finite_differences() {
    let [b, h, t, p, hs] = [2, 2, 3, 5, 4];
    let inputs = vec![
        noise(b * h * t * hs, 7),
        noise(h * p * hs, 8),
        noise(h * p * hs, 9),
    ];
    let errors = gradient_errors(&inputs, DType::F32, 1e-2, |x| {
        let q = x[0].clone().reshape([b, h, t, hs]);
        let k = x[1].clone().reshape([h, p, hs]);
        let v = x[2].clone().reshape([h, p, hs]);
        project(bank_retrieval(q, k, v), 11)
    });
    for (name, err) in ["query", "keys", "values"].iter().zip(&errors) {
        assert!(*err < 2e-3, "{name}: relative error {err:e}");
    }
}
