//! The leaky average: a key summarises the recent past with an exponentially decaying sum.
//!
//! `kbar_t = (1 - lambda) * sum_{j<=t} lambda^(t-j) u_j`, i.e. the recurrence
//! `kbar_t = lambda * kbar_{t-1} + (1 - lambda) * u_t`, with `lambda_h = exp(-b_h)` per head.
//! The reference builds the full `T x T` matrix of coefficients; [`leaky_average`] computes the
//! same numbers in O(T) as the gated scan ([`crate::gated_scan`]) of `(1 - lambda) u` with the
//! constant log-decay `-b`, and [`leaky_average_quadratic`] keeps the matrix form as the test
//! oracle.

use burn::module::{Module, Param};
use burn::tensor::{Bool, DType, Device, Tensor, TensorData};

use crate::EXP_PARAM_SCALE;
use crate::dispatch::{fused_kernels, via_f32};
use crate::gated_scan::{gated_scan_chunked, gated_step};
use crate::heads::{linspace, per_head};
use crate::scan_kernel::{Decay, fused_scan};
use crate::weights::Weights;

/// Leaky average with a learned per-head decay `b_h = 10 |theta_h|`.
#[derive(Module, Debug)]
pub struct LeakyAverage {
    /// `theta_h`, stored divided by 10 (the reference's `leaky_key_beta`).
    theta: Param<Tensor<1>>,
}

impl LeakyAverage {
    /// The reference initialisation: `theta = linspace(0.5, 5, n_head) / 10`, so heads range
    /// from a long memory (`lambda = 0.61`) to almost none (`lambda = 0.007`).
    pub fn new(n_head: usize, device: &Device) -> Self {
        let theta: Vec<f32> = linspace(0.5, 5.0, n_head)
            .into_iter()
            .map(|v| v / EXP_PARAM_SCALE as f32)
            .collect();
        Self {
            theta: Param::from_data(TensorData::new(theta, [n_head]), device),
        }
    }

    /// `theta` as the official parameter `name` (`leaky_key_beta`).
    pub fn visit_official<W: Weights>(&mut self, weights: &W, name: &str) -> Result<(), W::Error> {
        weights.param(name, &mut self.theta)
    }

    /// The decay rates `b_h = 10 |theta_h|`, shape `(H,)`.
    pub fn decay(&self) -> Tensor<1> {
        self.theta.val().abs() * EXP_PARAM_SCALE
    }

    /// `u`: `(B, H, T, hs)` -> the leaky averages, same shape.
    pub fn forward(&self, u: Tensor<4>) -> Tensor<4> {
        leaky_average(u, self.decay())
    }

    /// One step of the recurrence, for generation: `u` `(B, H, 1, hs)` and the average up to
    /// the step before (`None` at the first step) -> the average up to this step.
    pub fn step(&self, previous: Option<Tensor<4>>, u: Tensor<4>) -> Tensor<4> {
        let (u, log_decay) = as_gated(u, self.decay());
        gated_step(previous, u, log_decay)
    }
}

/// The leaky average of `u` `(B, H, T, hs)` with per-head decay rates `decay` `(H,)`, in O(T):
/// the gated scan with a constant decay (fused on the CPU backend and GPUs, chunked elsewhere).
pub fn leaky_average(u: Tensor<4>, decay: Tensor<1>) -> Tensor<4> {
    if let Some(half) = via_f32(u.dtype(), fused_kernels(&u.device(), DType::F32)) {
        return leaky_average(u.cast(DType::F32), decay.cast(DType::F32)).cast(half);
    }
    match fused_kernels(&u.device(), u.dtype()) {
        true => fused_scan(u, decay, Decay::Leaky),
        false => leaky_average_chunked(u, decay),
    }
}

/// [`leaky_average`] through the chunked tensor form on every backend, for tests and benchmarks.
pub fn leaky_average_chunked(u: Tensor<4>, decay: Tensor<1>) -> Tensor<4> {
    let (u, log_decay) = as_gated(u, decay);
    gated_scan_chunked(u, log_decay)
}

/// The gated scan's inputs for a leaky average: `(1 - lambda) u` and the log-decay `-b` of every
/// step, `(B, H, T, 1)`.
fn as_gated(u: Tensor<4>, decay: Tensor<1>) -> (Tensor<4>, Tensor<4>) {
    let [b, h, t, _] = u.dims();
    let gain = per_head(decay.clone().neg().exp().neg() + 1.0);
    let log_decay = per_head(decay.neg()).expand([b, h, t, 1]);
    (u * gain, log_decay)
}

/// The reference's matrix form, O(T^2): `kbar = C @ u` with
/// `C[h, i, j] = exp(-(i - j) b_h) (1 - exp(-b_h))` for `j <= i`, else 0.
pub fn leaky_average_quadratic(u: Tensor<4>, decay: Tensor<1>) -> Tensor<4> {
    let [b, h, t, _] = u.dims();
    let coef = decay_matrix(decay, t).unsqueeze::<4>().expand([b, h, t, t]);
    coef.matmul(u)
}

/// `C[h, i, j]` of [`leaky_average_quadratic`], shape `(H, T, T)`.
fn decay_matrix(decay: Tensor<1>, t: usize) -> Tensor<3> {
    let [h] = decay.dims();
    let gain = decay.clone().neg().exp().neg() + 1.0;
    decay_powers(decay, t) * gain.reshape([h, 1, 1])
}

/// `P[h, i, j] = exp(-(i - j) rate_h)` for `j <= i`, else 0; shape `(H, T, T)`.
fn decay_powers(rate: Tensor<1>, t: usize) -> Tensor<3> {
    let [h] = rate.dims();
    let device = rate.device();
    // Distances i - j, zero above the diagonal so exp never overflows there (an inf times the
    // mask's zero gradient would still be NaN).
    let dist: Vec<f32> = (0..t)
        .flat_map(|i| (0..t).map(move |j| if j <= i { (i - j) as f32 } else { 0.0 }))
        .collect();
    let dist = Tensor::<2>::from_data(TensorData::new(dist, [t, t]), (&device, rate.dtype()));
    let future = Tensor::<2, Bool>::tril_mask([t, t], 0, &device).unsqueeze::<3>();
    let powers = (dist.unsqueeze::<3>() * rate.reshape([h, 1, 1]).neg()).exp();
    powers.mask_fill(future.expand([h, t, t]), 0.0)
}
