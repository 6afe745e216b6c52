//! The fused causal retrieval against the plain tensor form, forward and backward, as the
//! contextual memories call it (strictly past, short-term window, long-term offset; scale 1,
//! the same tensor as query and keys) and as GPT does (causal, `1/sqrt(hs)`, distinct
//! tensors), and against finite differences.

mod common;

use burn::tensor::activation::softmax;
use burn::tensor::{Bool, DType, Device, Tensor, TensorData};
use common::{gradient_errors, hidden_keys, noise, project, reads, rel_err, tensor, values};
use mosaic_core::Band;
use mosaic_core::test_support::causal_retrieval;

/// Burn's operations: scaled scores, -inf on the keys query `i` may not read (`j <= i - offset`
/// and `j > i - window`; key 0 alone where that leaves none), softmax, product, and zero on
/// the rows that read none.
fn plain(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, scale: f64, band: Band) -> Tensor<4> {
    let [b, h, t, hs] = q.dims();
    let hidden = hidden_keys(t, band, &q.device());
    let empty: Vec<bool> = (0..t).map(|i| (0..t).all(|j| !reads(band, i, j))).collect();
    let empty = Tensor::<4, Bool>::from_data(TensorData::new(empty, [1, 1, t, 1]), &q.device());
    let scores = q.matmul(k.swap_dims(2, 3)) * scale;
    softmax(
        scores.mask_fill(hidden.expand([b, h, t, t]), f32::NEG_INFINITY),
        3,
    )
    .matmul(v)
    .mask_fill(empty.expand([b, h, t, hs]), 0.0)
}

fn input([b, h, t, hs]: [usize; 4], seed: u64, scale: f64, device: &Device) -> Tensor<4> {
    let x: Vec<f64> = noise(b * h * t * hs, seed)
        .iter()
        .map(|x| x * scale)
        .collect();
    tensor(&x, [b, h, t, hs], device, DType::F32)
}

const SHAPES: [[usize; 4]; 3] = [[1, 1, 1, 1], [2, 3, 5, 4], [2, 2, 70, 16]];

/// (scale, band, query and keys the same tensor): the contextual memories' and GPT's.
const CASES: [(f64, Band, bool); 5] = [
    (1.0, Band::PAST, true),
    (0.25, Band::CAUSAL, false),
    (
        1.0,
        Band {
            offset: 1,
            window: 3,
        },
        true,
    ),
    (
        1.0,
        Band {
            offset: 4,
            window: usize::MAX,
        },
        true,
    ),
    (
        0.5,
        Band {
            offset: 2,
            window: 5,
        },
        false,
    ),
];

#[test]
fn forward_equals_the_plain_form() {
    for device in [Device::flex(), Device::flex().autodiff()] {
        for shape in SHAPES {
            for (scale, band, _) in CASES {
                let (q, v) = (input(shape, 1, 2.0, &device), input(shape, 2, 1.0, &device));
                let k = input(shape, 3, 2.0, &device);
                let a = values(causal_retrieval(
                    q.clone(),
                    k.clone(),
                    v.clone(),
                    scale,
                    band,
                ));
                let b = values(plain(q, k, v, scale, band));
                let err = rel_err(&a, &b);
                assert!(err < 1e-5, "{shape:?} {band:?}: {err:e}");
            }
        }
    }
}

#[test]
fn backward_equals_the_plain_form() {
    let device = Device::flex().autodiff();
    for shape in SHAPES {
        for (scale, band, shared) in CASES {
            let grads = |fused: bool| -> Vec<Vec<f64>> {
                let q = input(shape, 1, 2.0, &device).require_grad();
                let k = input(shape, 3, 2.0, &device).require_grad();
                let v = input(shape, 2, 1.0, &device).require_grad();
                let keys = if shared { q.clone() } else { k.clone() };
                let y = match fused {
                    true => causal_retrieval(q.clone(), keys, v.clone(), scale, band),
                    false => plain(q.clone(), keys, v.clone(), scale, band),
                };
                let g = project(y, 5).backward();
                let mut out = vec![values(q.grad(&g).unwrap()), values(v.grad(&g).unwrap())];
                if !shared {
                    out.push(values(k.grad(&g).unwrap()));
                }
                out
            };
            let (a, b) = (grads(true), grads(false));
            for (i, (a, b)) in a.iter().zip(&b).enumerate() {
                let err = rel_err(a, b);
                assert!(err < 1e-5, "{shape:?} {band:?}, input {i}: {err:e}");
            }
        }
    }
}

/// In f32, the kernel's only dtype: steps of 1e-2 on inputs of order 1.
#[test]
fn gradients_match_finite_differences() {
    let shape = [2, 2, 5, 3];
    let n = shape.iter().product();
    let inputs = vec![noise(n, 7), noise(n, 8)];
    let errors = gradient_errors(&inputs, DType::F32, 1e-2, |x| {
        let k = x[0].clone().reshape(shape);
        let v = x[1].clone().reshape(shape);
        project(causal_retrieval(k.clone(), k, v, 1.0, Band::PAST), 11)
    });
    for (name, err) in ["keys", "values"].iter().zip(&errors) {
        assert!(*err < 2e-3, "{name}: relative error {err:e}");
    }
}
