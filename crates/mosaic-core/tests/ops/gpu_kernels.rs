//! The CubeCL kernels on WGPU against the CPU backend's fused operations and against the
//! tensor forms, values and gradients, on sizes that fill no whole cube of threads. The tensor
//! forms are computed on the CPU backend: on lavapipe each of their dozens of kernels would
//! cost a compile (about 1 s), and Burn's WGPU operations are checked by the reference files.
//! The operations: the scan (both decay forms) and the masked retrieval (every band the models
//! use), the bank retrieval, LayerNorm, the L2 normalisation, the cross-entropy of each row of
//! logits, the contextual memory's values. CI runs WGPU on Mesa's lavapipe; built only with
//! the `wgpu` feature.

use burn::tensor::{DType, Device, DeviceKind, Int, Tensor, TensorData, activation};
use mosaic_core::band::Band;
use mosaic_core::gated_scan;
use mosaic_core::heads::{l2_normalize, next_step, scaled_l2_normalize};
use mosaic_core::ops::{cross_entropy_rows, layer_norm, masked_softmax};
use mosaic_core::test_support::{
    bank_retrieval, causal_retrieval, fused_kernels, fused_values, gated_scan_chunked,
    leaky_average, leaky_average_chunked,
};

use crate::common::{noise, project, rel_err, tensor, values};

fn wgpu() -> Device {
    Device::wgpu(DeviceKind::DefaultDevice)
}

/// `(batch, heads, steps, features)`: 30 threads (a part of one cube), 555 (three cubes, the
/// last part full), and a single step.
const SHAPES: [[usize; 4]; 3] = [[2, 3, 70, 5], [3, 5, 33, 37], [1, 2, 1, 4]];

/// The output and the gradients of `u` and of the decay on `device`, through the fused scan or
/// (`chunked`) the tensor form. `u` is made `(B, T, H, hs)` and read `(B, H, T, hs)`, the view
/// the heads' split of a projection leaves.
fn run(
    device: &Device,
    [b, h, t, hs]: [usize; 4],
    leaky: bool,
    chunked: bool,
    seed: u64,
) -> [Vec<f64>; 3] {
    let n = b * h * t * hs;
    let leaf = tensor(&noise(n, seed), [b, t, h, hs], device, DType::F32).require_grad();
    let u = leaf.clone().swap_dims(1, 2);
    // Leaky: a rate per head. Gated: log-decays in (-2, 0), some steps keeping most of the
    // past, some almost none.
    let rates: Vec<f64> = match leaky {
        true => (0..h).map(|i| 0.05 + 0.7 * i as f64).collect(),
        false => noise(b * h * t, seed + 1).iter().map(|v| v - 1.0).collect(),
    };
    let decay = tensor(&rates, [rates.len()], device, DType::F32).require_grad();
    let gated = || decay.clone().reshape([b, h, t, 1]);
    let y = match (leaky, chunked) {
        (true, true) => leaky_average_chunked(u, decay.clone()),
        (true, false) => leaky_average(u, decay.clone()),
        (false, true) => gated_scan_chunked(u, gated()),
        (false, false) => gated_scan(u, gated()),
    };
    let grads = project(y.clone(), seed + 2).backward();
    let du = leaf.grad(&grads).expect("u has a gradient");
    let dd = decay.grad(&grads).expect("the decay has a gradient");
    [values(y), values(du), values(dd)]
}

/// Each of `got` within 1e-4 (relative to the largest of `want`) of `want`.
fn assert_close(what: &str, against: &str, names: &[&str], got: &[Vec<f64>], want: &[Vec<f64>]) {
    for (name, (g, w)) in names.iter().zip(got.iter().zip(want)) {
        let err = rel_err(g, w);
        assert!(err <= 1e-4, "{what} {name} against the {against}: {err:e}");
    }
}

#[test]
fn the_gpu_scan_equals_the_cpu_scan_with_gradients() {
    let (cpu, gpu) = (Device::flex().autodiff(), wgpu().autodiff());
    assert!(fused_kernels(&gpu, DType::F32), "WGPU runs the scan kernel");
    for (i, shape) in SHAPES.into_iter().enumerate() {
        for leaky in [false, true] {
            let seed = 7 + i as u64;
            let got = run(&gpu, shape, leaky, false, seed);
            let what = format!("{shape:?} leaky={leaky}");
            let names = ["output", "du", "ddecay"];
            let cpu_scan = run(&cpu, shape, leaky, false, seed);
            assert_close(&what, "CPU", &names, &got, &cpu_scan);
            let tensor_form = run(&cpu, shape, leaky, true, seed);
            assert_close(&what, "tensor form", &names, &got, &tensor_form);
        }
    }
}

/// Without gradients too, and a decay given as a view (expanded, not contiguous).
#[test]
fn the_gpu_scan_reads_a_strided_decay() {
    let [b, h, t, hs] = [2, 3, 40, 6];
    let on = |device: &Device| {
        let u = tensor(&noise(b * h * t * hs, 3), [b, h, t, hs], device, DType::F32);
        let logs: Vec<f64> = noise(h, 4).iter().map(|v| v - 1.0).collect();
        let decay: Tensor<4> = tensor(&logs, [1, h, 1, 1], device, DType::F32);
        values(gated_scan(u, decay.expand([b, h, t, 1])))
    };
    let err = rel_err(&on(&wgpu()), &on(&Device::flex()));
    assert!(err <= 1e-5, "relative error {err:e}");
}

/// The retrieval's output and the gradients of the query, keys and values on `device`, through
/// the fused operation or (`explicit`) scores, masked softmax and product.
fn retrieve(
    explicit: bool,
    device: &Device,
    shape: [usize; 4],
    scale: f64,
    band: Band,
    seed: u64,
) -> [Vec<f64>; 4] {
    let n = shape.iter().product();
    let [q, k, v] = [0, 1, 2].map(|i| {
        // Scores of a few units, so that the weights are far from uniform.
        let x: Vec<f64> = noise(n, seed + i).iter().map(|v| 2.0 * v).collect();
        tensor(&x, shape, device, DType::F32).require_grad()
    });
    let y = match explicit {
        true => {
            let scores = q.clone().matmul(k.clone().swap_dims(2, 3)) * scale;
            // Zero on the rows with nothing to read, which read key 0 in the masked softmax.
            let t = shape[2];
            let reads: Vec<f32> = (0..t).map(|i| (band.count(i) > 0) as u8 as f32).collect();
            let reads: Tensor<4> = Tensor::from_data(TensorData::new(reads, [1, 1, t, 1]), device);
            masked_softmax(scores, band).matmul(v.clone()) * reads
        }
        false => causal_retrieval(q.clone(), k.clone(), v.clone(), scale, band),
    };
    // Through the heads' merge, as in the models: the output's gradient is then a view.
    let grads = project(y.clone().swap_dims(1, 2), seed + 3).backward();
    let grad = |x: &Tensor<4>| values(x.grad(&grads).expect("an input has a gradient"));
    [values(y), grad(&q), grad(&k), grad(&v)]
}

#[test]
fn the_gpu_retrieval_equals_the_cpu_retrieval_with_gradients() {
    let (cpu, gpu) = (Device::flex().autodiff(), wgpu().autodiff());
    assert!(
        fused_kernels(&gpu, DType::F32),
        "WGPU runs the retrieval kernels"
    );
    // 420 rows (two cubes, the second part full), and 9 rows of a wider head.
    for (i, shape) in [[2, 3, 70, 5], [1, 1, 9, 16]].into_iter().enumerate() {
        // The long-term offset a third of the way in: the rows before it read nothing and
        // answer zero.
        let bands = [
            (1.0, Band::PAST),
            (0.3, Band::CAUSAL),
            (1.0, Band::short_term(5)),
            (1.0, Band::long_term(shape[2] / 3)),
        ];
        for (scale, band) in bands {
            let seed = 20 + i as u64;
            let got = retrieve(false, &gpu, shape, scale, band, seed);
            let what = format!("{shape:?} {band:?}");
            let names = ["output", "dq", "dk", "dv"];
            let cpu_fused = retrieve(false, &cpu, shape, scale, band, seed);
            assert_close(&what, "CPU", &names, &got, &cpu_fused);
            let tensor_form = retrieve(true, &cpu, shape, scale, band, seed);
            assert_close(&what, "tensor form", &names, &got, &tensor_form);
        }
    }
}

/// The bank retrieval's output and the gradients of the query and the bank's keys and values.
fn read_bank(device: &Device, [b, h, t, hs]: [usize; 4], slots: usize, seed: u64) -> [Vec<f64>; 4] {
    let input = |shape: Vec<usize>, seed: u64| {
        let n = shape.iter().product();
        let x: Vec<f64> = noise(n, seed).iter().map(|v| 2.0 * v).collect();
        Tensor::<1>::from_data(burn::tensor::TensorData::new(x, [n]), (device, DType::F32))
    };
    let q: Tensor<4> = input(vec![b, h, t, hs], seed)
        .reshape([b, h, t, hs])
        .detach()
        .require_grad();
    let [k, v] = [1, 2].map(|i| {
        let x: Tensor<3> = input(vec![h, slots, hs], seed + i).reshape([h, slots, hs]);
        x.detach().require_grad()
    });
    let y = bank_retrieval(q.clone(), k.clone(), v.clone());
    let grads = project(y.clone().swap_dims(1, 2), seed + 3).backward();
    let dq = values(q.grad(&grads).expect("the query has a gradient"));
    let [dk, dv] = [&k, &v].map(|x| values(x.grad(&grads).expect("the bank has a gradient")));
    [values(y), dq, dk, dv]
}

#[test]
fn the_gpu_bank_retrieval_equals_the_cpu_one_with_gradients() {
    let (cpu, gpu) = (Device::flex().autodiff(), wgpu().autodiff());
    // 420 query rows against 3 x 23 slots; one row against 300 slots (two cubes of keys).
    for (i, (shape, slots)) in [([2, 3, 70, 5], 23), ([1, 1, 1, 8], 300)]
        .into_iter()
        .enumerate()
    {
        let want = read_bank(&cpu, shape, slots, 40 + i as u64);
        let got = read_bank(&gpu, shape, slots, 40 + i as u64);
        let names = ["output", "dq", "dk", "dv"];
        assert_close(&format!("{shape:?} P={slots}"), "CPU", &names, &got, &want);
    }
}

/// LayerNorm's output and the gradients of its input and gain on `device`, fused or
/// (`explicit`) Burn's.
fn normalise(explicit: bool, device: &Device, [b, t, d]: [usize; 3], seed: u64) -> [Vec<f64>; 3] {
    let x: Vec<f64> = noise(b * t * d, seed)
        .iter()
        .map(|v| 3.0 * v + 0.5)
        .collect();
    let x = tensor(&x, [b, t, d], device, DType::F32).require_grad();
    let gain: Vec<f64> = noise(d, seed + 1).iter().map(|v| 1.0 + v).collect();
    let gain = tensor(&gain, [d], device, DType::F32).require_grad();
    let y = match explicit {
        true => burn::tensor::module::layer_norm(x.clone(), gain.clone(), None, 1e-5),
        false => layer_norm(x.clone(), gain.clone(), 1e-5),
    };
    let grads = project(y.clone(), seed + 2).backward();
    let dx = values(x.grad(&grads).expect("the input has a gradient"));
    [
        values(y),
        dx,
        values(gain.grad(&grads).expect("the gain has a gradient")),
    ]
}

#[test]
fn the_gpu_layer_norm_equals_the_cpu_one_with_gradients() {
    let (cpu, gpu) = (Device::flex().autodiff(), wgpu().autodiff());
    // 259 rows (two cubes) of 70; one row of 3.
    for (i, shape) in [[7, 37, 70], [1, 1, 3]].into_iter().enumerate() {
        let seed = 60 + i as u64;
        let got = normalise(false, &gpu, shape, seed);
        let names = ["output", "dx", "dgain"];
        let what = format!("{shape:?}");
        assert_close(
            &what,
            "CPU",
            &names,
            &got,
            &normalise(false, &cpu, shape, seed),
        );
        let tensor_form = normalise(true, &cpu, shape, seed);
        assert_close(&what, "tensor form", &names, &got, &tensor_form);
    }
}

/// The L2 normalisation of `x` `(B, H, T, hs)` (`scaled`: times a per-head scale) and the
/// gradients of the input and of the scale, through [`l2_normalize`] and
/// [`scaled_l2_normalize`] or (`explicit`) the tensor operations.
fn unit(
    explicit: bool,
    scaled: bool,
    device: &Device,
    shape: [usize; 4],
    seed: u64,
) -> [Vec<f64>; 3] {
    let x = tensor(
        &noise(shape.iter().product(), seed),
        shape,
        device,
        DType::F32,
    );
    let x = x.require_grad();
    let h = shape[1];
    let scales: Vec<f64> = (0..h).map(|i| 0.5 + i as f64).collect();
    let scale = tensor(&scales, [h], device, DType::F32).require_grad();
    let y = match (explicit, scaled) {
        (true, _) => {
            let y = x.clone() / x.clone().square().sum_dim(3).sqrt();
            match scaled {
                true => y * scale.clone().reshape([1, h, 1, 1]),
                false => y,
            }
        }
        (false, true) => scaled_l2_normalize(x.clone(), scale.clone()),
        (false, false) => l2_normalize(x.clone()),
    };
    let grads = project(y.clone(), seed + 1).backward();
    let dscale = scale.grad(&grads).map_or(Vec::new(), values);
    [
        values(y),
        values(x.grad(&grads).expect("the input has a gradient")),
        dscale,
    ]
}

#[test]
fn the_gpu_l2_normalisation_equals_the_tensor_form() {
    let (cpu, gpu) = (Device::flex().autodiff(), wgpu().autodiff());
    // 2 x 3 x 70 = 420 vectors (two cubes) of 5; one vector of 40.
    for (i, shape) in [[2, 3, 70, 5], [1, 1, 1, 40]].into_iter().enumerate() {
        for scaled in [false, true] {
            let seed = 80 + i as u64;
            let got = unit(false, scaled, &gpu, shape, seed);
            let what = format!("{shape:?} scaled={scaled}");
            let names = ["output", "dx", "dscale"];
            let cpu_form = unit(false, scaled, &cpu, shape, seed);
            assert_close(&what, "CPU", &names, &got, &cpu_form);
            let tensor_form = unit(true, scaled, &cpu, shape, seed);
            assert_close(&what, "tensor form", &names, &got, &tensor_form);
        }
    }
}

/// Each row's cross-entropy (every third target ignored) and the logits' gradient, through
/// [`cross_entropy_rows`] or (`explicit`) Burn's log-softmax, a gather and a mask.
fn cross_entropy(explicit: bool, device: &Device, [n, v]: [usize; 2], seed: u64) -> [Vec<f64>; 2] {
    // Logits spread over a few units, as a trained model's.
    let logits: Vec<f64> = noise(n * v, seed).iter().map(|x| 4.0 * x).collect();
    let x = tensor(&logits, [n, v], device, DType::F32).require_grad();
    let ids: Vec<i64> = (0..n)
        .map(|i| match i % 3 {
            2 => -1,
            _ => ((i * 7 + seed as usize) % v) as i64,
        })
        .collect();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(ids, [n]), device);
    let y = match explicit {
        true => {
            let ignored = targets.clone().lower_elem(0);
            activation::log_softmax(x.clone(), 1)
                .gather(1, targets.clamp_min(0).reshape([n, 1]))
                .reshape([n])
                .mask_fill(ignored, 0.0)
                .neg()
        }
        false => cross_entropy_rows(x.clone(), targets),
    };
    let grads = project(y.clone(), seed + 1).backward();
    [
        values(y),
        values(x.grad(&grads).expect("the logits have a gradient")),
    ]
}

#[test]
fn the_gpu_cross_entropy_equals_the_cpu_one_with_gradients() {
    let (cpu, gpu) = (Device::flex().autodiff(), wgpu().autodiff());
    // 300 rows (two cubes, the second part full) of 37 logits; one row of 1000.
    for (i, shape) in [[300, 37], [1, 1000]].into_iter().enumerate() {
        let seed = 90 + i as u64;
        let got = cross_entropy(false, &gpu, shape, seed);
        let what = format!("{shape:?}");
        let names = ["loss", "dlogits"];
        assert_close(
            &what,
            "CPU",
            &names,
            &got,
            &cross_entropy(false, &cpu, shape, seed),
        );
        assert_close(
            &what,
            "tensor form",
            &names,
            &got,
            &cross_entropy(true, &cpu, shape, seed),
        );
    }
}

/// The values from a projection read through its strides (made `(B, T, H, hs)` and viewed
/// `(B, H, T, hs)`, as the heads' split leaves it), with the gradients of the projection, the
/// mix and the log-scale: through [`fused_values`] or (`explicit`) the tensor form of
/// `ValueFeatures::combine`.
fn values_of(
    explicit: bool,
    device: &Device,
    [b, h, t, hs]: [usize; 4],
    seed: u64,
) -> [Vec<f64>; 4] {
    let w = tensor(
        &noise(b * t * h * hs, seed),
        [b, t, h, hs],
        device,
        DType::F32,
    )
    .require_grad();
    let mixes: Vec<f64> = (0..h).map(|i| 0.1 + 0.8 * i as f64 / h as f64).collect();
    let mix = tensor(&mixes, [h], device, DType::F32).require_grad();
    let logs: Vec<f64> = (0..h).map(|i| -0.05 + 0.02 * i as f64).collect();
    let nu = tensor(&logs, [h], device, DType::F32).require_grad();
    let heads = w.clone().swap_dims(1, 2);
    let v = match explicit {
        true => {
            let c = mix.clone().reshape([1, h, 1, 1]);
            let vbar = next_step(heads.clone(), 2) * (c.clone().neg() + 1.0) + heads * c;
            let norm = vbar.clone().square().sum_dim(3).sqrt();
            vbar / norm * (nu.clone() * 10.0).exp().reshape([1, h, 1, 1])
        }
        false => fused_values(heads, mix.clone(), nu.clone()),
    };
    let grads = project(v.clone(), seed + 1).backward();
    let grad = |x: &Tensor<4>| values(x.grad(&grads).expect("a gradient"));
    [
        values(v),
        grad(&w),
        values(mix.grad(&grads).expect("the mix has a gradient")),
        values(nu.grad(&grads).expect("the log-scale has a gradient")),
    ]
}

#[test]
fn the_gpu_values_equal_the_tensor_form_with_gradients() {
    let (cpu, gpu) = (Device::flex().autodiff(), wgpu().autodiff());
    for (i, shape) in SHAPES.into_iter().enumerate() {
        let seed = 100 + i as u64;
        let mut got = values_of(false, &gpu, shape, seed);
        let mut tensor_form = values_of(true, &cpu, shape, seed);
        if shape[2] == 1 {
            // One step: `vbar = c w`, normalised, does not depend on the mix; its gradient is
            // zero up to rounding, which a relative error cannot compare.
            assert!(got[2].iter().all(|g| g.abs() < 1e-6), "{:?}", got[2]);
            for form in [&mut got, &mut tensor_form] {
                form[2].clear();
            }
        }
        let what = format!("{shape:?}");
        let names = ["values", "dw", "dmix", "dnu"];
        assert_close(&what, "tensor form (CPU)", &names, &got, &tensor_form);
    }
}
