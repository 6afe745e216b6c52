//! Finite-difference gradient checking, shared by the core tests.

#![allow(dead_code)]

use burn::tensor::{Bool, DType, Device, Distribution, Tensor, TensorData};
use mosaic_core::Band;

/// Deterministic pseudo-random numbers in (-1, 1), so tests need no RNG crate.
pub fn noise(n: usize, seed: u64) -> Vec<f64> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

pub fn tensor<const D: usize>(
    values: &[f64],
    shape: [usize; D],
    device: &Device,
    dtype: DType,
) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), (device, dtype))
}

pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().try_to_vec_as::<f64>().unwrap()
}

/// Largest `|a - b| / max |b|`.
pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// Checks the gradient of `f` with respect to each of `inputs` (flat values) against central
/// differences; `f` receives the inputs as 1-D tensors and returns a scalar. Returns the
/// relative error of each input's gradient, `||analytic - numeric|| / ||numeric||`.
pub fn gradient_errors(
    inputs: &[Vec<f64>],
    dtype: DType,
    step: f64,
    f: impl Fn(&[Tensor<1>]) -> Tensor<1>,
) -> Vec<f64> {
    let device = Device::flex().autodiff();
    let make = |vals: &[Vec<f64>]| -> Vec<Tensor<1>> {
        vals.iter()
            .map(|v| tensor(v, [v.len()], &device, dtype).require_grad())
            .collect()
    };
    let xs = make(inputs);
    let grads = f(&xs).backward();
    let analytic: Vec<Vec<f64>> = xs
        .iter()
        .map(|x| values(x.grad(&grads).expect("input takes part in f")))
        .collect();

    let eval = |vals: &[Vec<f64>]| -> f64 {
        let out = f(&make(vals));
        values(out)[0]
    };
    (0..inputs.len())
        .map(|i| {
            let numeric: Vec<f64> = (0..inputs[i].len())
                .map(|j| {
                    let mut plus = inputs.to_vec();
                    plus[i][j] += step;
                    let mut minus = inputs.to_vec();
                    minus[i][j] -= step;
                    (eval(&plus) - eval(&minus)) / (2.0 * step)
                })
                .collect();
            let diff: f64 = analytic[i]
                .iter()
                .zip(&numeric)
                .map(|(a, n)| (a - n).powi(2))
                .sum::<f64>()
                .sqrt();
            let norm: f64 = numeric.iter().map(|n| n * n).sum::<f64>().sqrt();
            assert!(
                norm > 0.0,
                "input {i} has no numeric gradient: the check would be empty"
            );
            diff / norm
        })
        .collect()
}

/// A fixed random projection that turns a tensor into a scalar with a generic gradient.
pub fn project<const D: usize>(y: Tensor<D>, seed: u64) -> Tensor<1> {
    let n = y.shape().num_elements();
    let w = tensor(&noise(n, seed), [n], &y.device(), y.dtype());
    (y.reshape([n]) * w).sum()
}

pub fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

/// Whether query `i` reads key `j` in `band`: `i - window < j <= i - offset`.
pub fn reads(band: Band, i: usize, j: usize) -> bool {
    j + band.offset <= i && i < j.saturating_add(band.window)
}

/// The keys each query may not read in `band`, `(1, 1, T, T)`: true where hidden, key 0 left
/// readable on the rows that read none.
pub fn hidden_keys(t: usize, band: Band, device: &Device) -> Tensor<4, Bool> {
    let hidden: Vec<bool> = (0..t)
        .flat_map(|i| {
            let none = (0..t).all(|j| !reads(band, i, j));
            (0..t).map(move |j| !(reads(band, i, j) || (none && j == 0)))
        })
        .collect();
    Tensor::from_data(TensorData::new(hidden, [1, 1, t, t]), device)
}
