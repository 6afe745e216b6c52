//! In half precision on WGPU the memory operations compute in f32, as one kernel each (cast
//! in, the f32 kernel, cast out): each equals the f32 operation on the CPU backend, given the
//! same f16 inputs, to within f16's rounding of the result, values and gradients. Their tensor
//! forms in f16 do not: LayerNorm's mean of 70 values near 100 in f16 is off by more than the
//! values' spread, and the retrievals' and scans' sums lose digits the same way.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::{DType, Device, DeviceKind, Tensor};
use mosaic_core::ValueFeatures;
use mosaic_core::band::Band;
use mosaic_core::gated_scan;
use mosaic_core::ops::layer_norm;
use mosaic_core::retrieval::{band_retrieval, bank_retrieval, masked_retrieval};
use mosaic_core::test_support::leaky_average;

use crate::common::{noise, rel_err, tensor, values};

/// `(batch, heads, steps, head size)`: 420 rows, two cubes of threads.
const SHAPE: [usize; 4] = [2, 3, 70, 5];
const N: usize = 2 * 3 * 70 * 5;

/// `v` rounded to f16, as f64.
fn round16(v: &[f64]) -> Vec<f64> {
    values(tensor(v, [v.len()], &Device::flex(), DType::F16))
}

/// The output and each input's gradient of `op` on `device` in `dtype`, its loss the output
/// against fixed weights (exact in f16, so both types start the backward alike).
fn run(device: &Device, dtype: DType, inputs: &[Vec<f64>], op: &Op<'_>) -> Vec<Vec<f64>> {
    let xs: Vec<Tensor<1>> = inputs
        .iter()
        .map(|v| tensor(v, [v.len()], device, dtype).require_grad())
        .collect();
    let y = op(&xs);
    let n = y.dims()[0];
    let weights = tensor(&round16(&noise(n, 99)), [n], device, DType::F32);
    let grads = (y.clone().cast(DType::F32) * weights).sum().backward();
    let grad = |x: &Tensor<1>| values(x.grad(&grads).expect("every input has a gradient"));
    std::iter::once(values(y))
        .chain(xs.iter().map(grad))
        .collect()
}

type Op<'a> = dyn Fn(&[Tensor<1>]) -> Tensor<1> + 'a;

/// `op` in f16 on WGPU against f32 on the CPU backend, the inputs rounded to f16 for both.
fn check(name: &str, inputs: &[Vec<f64>], op: &Op<'_>) {
    let inputs: Vec<Vec<f64>> = inputs.iter().map(|v| round16(v)).collect();
    let want = run(&Device::flex().autodiff(), DType::F32, &inputs, op);
    let gpu = Device::wgpu(DeviceKind::DefaultDevice).autodiff();
    let got = run(&gpu, DType::F16, &inputs, op);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let what = match i {
            0 => "output".to_string(),
            i => format!("gradient of input {}", i - 1),
        };
        let err = rel_err(g, w);
        // f16 keeps 11 bits: a rounding is within 2^-11 = 4.9e-4 of the value.
        assert!(err <= 1e-3, "{name}, {what}: {err:e} off f32's");
    }
}

fn heads(x: &Tensor<1>) -> Tensor<4> {
    x.clone().reshape(SHAPE)
}

fn flat(y: Tensor<4>) -> Tensor<1> {
    y.reshape([N])
}

/// Scores of a few units, so that the weights are far from uniform.
fn qkv(seed: u64) -> Vec<Vec<f64>> {
    (0..3)
        .map(|i| noise(N, seed + i).iter().map(|v| 2.0 * v).collect())
        .collect()
}

fn no_dropout() -> Dropout {
    DropoutConfig::new(0.0).init()
}

#[test]
fn layer_norm_in_f16_computes_in_f32() {
    let [rows, d] = [6, 70];
    // Values near 100, spread by 2: f16's spacing there is 1/16, its sum of 70 of them 4.
    let x: Vec<f64> = noise(rows * d, 1).iter().map(|v| 100.0 + 2.0 * v).collect();
    let gain: Vec<f64> = noise(d, 2).iter().map(|v| 1.0 + 0.5 * v).collect();
    check("LayerNorm", &[x, gain], &|t| {
        layer_norm(t[0].clone().reshape([rows, d]), t[1].clone(), 1e-5).reshape([rows * d])
    });
}

#[test]
fn the_scans_in_f16_compute_in_f32() {
    // Slow and fast decays: the slow ones sum some 70 steps.
    let rates = vec![0.01, 0.3, 2.0];
    check("leaky average", &[noise(N, 3), rates], &|t| {
        flat(leaky_average(heads(&t[0]), t[1].clone()))
    });
    let logs: Vec<f64> = noise(N / 5, 4).iter().map(|v| 0.5 * v - 0.6).collect();
    check("gated scan", &[noise(N, 5), logs], &|t| {
        let [b, h, s, _] = SHAPE;
        flat(gated_scan(heads(&t[0]), t[1].clone().reshape([b, h, s, 1])))
    });
}

#[test]
fn the_retrievals_in_f16_compute_in_f32() {
    for band in [Band::PAST, Band::short_term(5), Band::long_term(20)] {
        check(&format!("{band:?}"), &qkv(10), &|t| {
            flat(band_retrieval(
                heads(&t[0]),
                heads(&t[1]),
                heads(&t[2]),
                band,
                &no_dropout(),
            ))
        });
    }
    check("GPT's attention", &qkv(20), &|t| {
        let [q, k, v] = [0, 1, 2].map(|i| heads(&t[i]));
        flat(masked_retrieval(q, k, v, 0.4, Band::CAUSAL, &no_dropout()))
    });
    let [_, h, _, hs] = SHAPE;
    let slots = 23;
    let mut bank = qkv(30);
    bank[1].truncate(h * slots * hs);
    bank[2].truncate(h * slots * hs);
    check("bank", &bank, &|t| {
        let [k, v] = [1, 2].map(|i| t[i].clone().reshape([h, slots, hs]));
        flat(bank_retrieval(heads(&t[0]), k, v, &no_dropout()))
    });
}

#[test]
fn the_values_in_f16_compute_in_f32() {
    let [_, h, _, hs] = SHAPE;
    let features = ValueFeatures::new(h * hs, h, hs, &Device::flex());
    check("values", &[noise(N, 40)], &|t| {
        let features = features.clone().to_device(&t[0].device());
        flat(features.of_projection(heads(&t[0])))
    });
}
