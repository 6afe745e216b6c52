//! LayerNorm on the `flex` CPU backend: rows in parallel tasks, each row normalised in one pass.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use rayon::prelude::*;

use super::{LayerNormBackend, LayerNormGradBackend};
use crate::matrix::{contiguous, tensor};

/// Rows per parallel task.
const ROWS: usize = 64;

/// The row's mean and `1 / sqrt(var + eps)`.
fn stats(x: &[f32], eps: f64) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + eps as f32).sqrt())
}

impl LayerNormBackend for Flex {
    fn fused_layer_norm(x: FlexTensor, gain: FlexTensor, eps: f64) -> FlexTensor {
        let (x, shape) = contiguous(&x);
        let (gain, _) = contiguous(&gain);
        let (xs, gs) = (x.storage::<f32>(), gain.storage::<f32>());
        let d = gs.len();
        let mut out = vec![0.0f32; xs.len()];
        out.par_chunks_mut(d * ROWS)
            .zip(xs.par_chunks(d * ROWS))
            .for_each(|(o, x)| {
                for (o, x) in o.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
                    let (mean, rstd) = stats(x, eps);
                    for ((o, x), g) in o.iter_mut().zip(x).zip(gs) {
                        *o = (x - mean) * rstd * g;
                    }
                }
            });
        tensor(out, shape)
    }
}

/// The gradients of `x` and `gain`.
fn fused_layer_norm_backward(
    x: FlexTensor,
    gain: FlexTensor,
    grad: FlexTensor,
    eps: f64,
) -> (FlexTensor, FlexTensor) {
    let (x, shape) = contiguous(&x);
    let ((gain, _), (grad, _)) = (contiguous(&gain), contiguous(&grad));
    let (xs, gs, dys) = (
        x.storage::<f32>(),
        gain.storage::<f32>(),
        grad.storage::<f32>(),
    );
    let d = gs.len();
    let mut dx = vec![0.0f32; xs.len()];
    // Each task's share of dgain, summed below.
    let partial: Vec<Vec<f32>> = dx
        .par_chunks_mut(d * ROWS)
        .zip(xs.par_chunks(d * ROWS).zip(dys.par_chunks(d * ROWS)))
        .map(|(dx, (x, dy))| {
            let mut dgain = vec![0.0f32; d];
            let mut xhat = vec![0.0f32; d];
            for ((dx, x), dy) in dx
                .chunks_exact_mut(d)
                .zip(x.chunks_exact(d))
                .zip(dy.chunks_exact(d))
            {
                let (mean, rstd) = stats(x, eps);
                let (mut mean_g, mut mean_gx) = (0.0f32, 0.0f32);
                for ((((h, x), dy), g), dg) in
                    xhat.iter_mut().zip(x).zip(dy).zip(gs).zip(dgain.iter_mut())
                {
                    *h = (x - mean) * rstd;
                    *dg += dy * *h;
                    mean_g += dy * g;
                    mean_gx += dy * g * *h;
                }
                let (mean_g, mean_gx) = (mean_g / d as f32, mean_gx / d as f32);
                for (((dx, h), dy), g) in dx.iter_mut().zip(&xhat).zip(dy).zip(gs) {
                    *dx = (dy * g - mean_g - h * mean_gx) * rstd;
                }
            }
            dgain
        })
        .collect();
    let mut dgain = vec![0.0f32; d];
    for p in partial {
        dgain.iter_mut().zip(p).for_each(|(s, v)| *s += v);
    }
    (tensor(dx, shape), tensor(dgain, vec![d]))
}

impl LayerNormGradBackend for Flex {
    fn fused_layer_norm_backward(
        x: FlexTensor,
        gain: FlexTensor,
        grad: FlexTensor,
        eps: f64,
    ) -> (FlexTensor, FlexTensor) {
        fused_layer_norm_backward(x, gain, grad, eps)
    }
}
