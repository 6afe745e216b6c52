//! The fused softmaxes against Burn's (the plain tensor form), forward and backward, and their
//! gradients against finite differences.

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{DType, Device, Tensor};
use mosaic_core::Band;
use mosaic_core::ops::{log_softmax_last, masked_softmax, softmax_last};

use crate::common::{gradient_errors, hidden_keys, noise, project, rel_err, tensor, values};

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

/// Each fused form and its plain one: softmax, log-softmax, and the masked softmax with the
/// causal, strictly-past, short-term (window 4) and long-term (offset 3) masks as explicit -inf
/// entries.
fn pairs() -> Vec<(&'static str, Op, Op)> {
    vec![
        ("softmax", |x| softmax_last(x), |x| softmax(x, 3)),
        (
            "log-softmax",
            |x| log_softmax_last(x),
            |x| log_softmax(x, 3),
        ),
        (
            "causal",
            |x| masked_softmax(x, Band::CAUSAL),
            |x| plain_masked(x, Band::CAUSAL),
        ),
        (
            "strict past",
            |x| masked_softmax(x, Band::PAST),
            |x| plain_masked(x, Band::PAST),
        ),
        (
            "short-term",
            |x| masked_softmax(x, Band::short_term(4)),
            |x| plain_masked(x, Band::short_term(4)),
        ),
        (
            "long-term",
            |x| masked_softmax(x, Band::long_term(3)),
            |x| plain_masked(x, Band::long_term(3)),
        ),
    ]
}

type Op = fn(Tensor<4>) -> Tensor<4>;

/// Query `i` reads `i - window < j <= i - offset`, key 0 alone where that is none.
fn plain_masked(x: Tensor<4>, band: Band) -> Tensor<4> {
    let [b, h, t, _] = x.dims();
    let hidden = hidden_keys(t, band, &x.device());
    softmax(
        x.mask_fill(hidden.expand([b, h, t, t]), f32::NEG_INFINITY),
        3,
    )
}

/// Square score matrices of 1, 7 and 300 rows.
fn square(t: usize, device: &Device) -> Tensor<4> {
    let x: Vec<f64> = noise(2 * 2 * t * t, t as u64)
        .iter()
        .map(|x| x * 20.0)
        .collect();
    tensor(&x, [2, 2, t, t], device, DType::F32)
}

#[test]
fn forward_equals_burns() {
    for device in [Device::flex(), Device::flex().autodiff()] {
        for shape in [[2, 3, 1], [2, 3, 7], [4, 5, 300]] {
            let x = scores(shape, &device);
            let fused = values(softmax_last(x.clone()));
            let plain = values(softmax(x, 2));
            let err = rel_err(&fused, &plain);
            assert!(err < 1e-6, "{shape:?}: {err:e}");
        }
        for (name, fused, plain) in pairs() {
            for t in [1, 7, 300] {
                let x = square(t, &device);
                let err = rel_err(&values(fused(x.clone())), &values(plain(x)));
                assert!(err < 1e-6, "{name} T {t}: {err:e}");
            }
        }
    }
}

/// The gradient of a generic scalar of the output, through the fused op and through Burn's
/// recorded operations.
#[test]
fn backward_equals_burns() {
    let device = Device::flex().autodiff();
    for (name, fused, plain) in pairs() {
        for t in [1, 7, 300] {
            let grad = |op: Op| {
                let x = square(t, &device).require_grad();
                let grads = project(op(x.clone()), 9).backward();
                values(x.grad(&grads).expect("x takes part"))
            };
            let (a, b) = (grad(fused), grad(plain));
            // One entry a row is a constant output: no gradient to compare.
            assert!(t == 1 || b.iter().any(|g| *g != 0.0), "{name} T {t}");
            let err = rel_err(&a, &b);
            assert!(err < 1e-5, "{name} T {t}: {err:e}");
        }
    }
}

/// In f32 (the only dtype the fused kernels take), so the differences are coarse: a step of
/// 1e-2 on scores of order 1.
#[test]
fn gradients_match_finite_differences() {
    for (name, fused, _) in pairs() {
        let x: Vec<f64> = noise(2 * 6 * 6, 4);
        let errors = gradient_errors(&[x], DType::F32, 1e-2, |x| {
            project(fused(x[0].clone().reshape([1, 2, 6, 6])), 3)
        });
        assert!(errors[0] < 1e-3, "{name}: relative error {:e}", errors[0]);
    }
}
