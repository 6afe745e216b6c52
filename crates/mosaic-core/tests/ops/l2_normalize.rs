//! The L2 normalisation in half precision computes in f32.

use burn::tensor::{DType, Device};
use mosaic_core::heads::{l2_normalize, scaled_l2_normalize};

use crate::common::{noise, project, rel_err, tensor, values};

/// Vectors of entries `k 2^-14` (`|k| <= 8`, norms up to 1.4e-3), whose squares f16 rounds to
/// zero or to a few of its smallest subnormal steps, normalise and differentiate in f16 as in
/// f32: the output and the input's gradient within f16's rounding, all finite. In f16
/// arithmetic the squared norms would be zero or far off: inf or NaN forward and backward.
#[test]
fn half_precision_normalises_small_vectors_as_f32_does() {
    let device = Device::flex().autodiff();
    let x: Vec<f64> = noise(2 * 3 * 5 * 8, 11)
        .iter()
        .map(|v| (v * 8.0).round() * 2f64.powi(-14))
        .collect();
    let scale = [0.5, 2.0, 3.0];
    let run = |dtype: DType, scaled: bool| {
        let t = tensor(&x, [2, 3, 5, 8], &device, dtype).require_grad();
        let y = match scaled {
            true => scaled_l2_normalize(t.clone(), tensor(&scale, [3], &device, dtype)),
            false => l2_normalize(t.clone()),
        };
        assert_eq!(y.dtype(), dtype);
        let out = values(y.clone());
        let g = project(y.cast(DType::F32), 1).backward();
        (out, values(t.grad(&g).unwrap()))
    };
    for scaled in [false, true] {
        let (y32, g32) = run(DType::F32, scaled);
        let (y, g) = run(DType::F16, scaled);
        assert!(y.iter().chain(&g).all(|v| v.is_finite()), "{y:?} {g:?}");
        assert!(rel_err(&y, &y32) < 2e-3, "{:e}", rel_err(&y, &y32));
        assert!(rel_err(&g, &g32) < 5e-3, "{:e}", rel_err(&g, &g32));
    }
}
