//! Adaptive bandwidth (Memory Mosaics v2, eq. 6): kernel-smoothing theory shrinks the kernel's
//! width as the data grows, so the bandwidth of a memory holding `n` pairs is
//! `beta = beta1 n^alpha + beta0`, learned per head with `beta0 = exp(min(theta0, 10))`,
//! `beta1 = exp(min(theta1, 10))` and `alpha = min(|theta_alpha|, 1)` (both theta start at 1.5,
//! `theta_alpha` at 1/3, the paper's Table 6). With unit-norm keys the kernel is
//! `softmax_i(beta k . k_i)`, so the bandwidth scales the query alone.

use std::sync::{Arc, Mutex};

use burn::module::{Module, Param};
use burn::tensor::{DType, Device, Tensor, TensorData};

/// `beta0` and `beta1` are capped at `exp(10)`.
pub const BANDWIDTH_CAP: f64 = 10.0;
const THETA_INIT: f32 = 1.5;
const ALPHA_INIT: f32 = 1.0 / 3.0;

#[derive(Module, Debug)]
pub struct AdaptiveBandwidth {
    theta0: Param<Tensor<1>>,
    theta1: Param<Tensor<1>>,
    theta_alpha: Param<Tensor<1>>,
    #[module(skip)]
    log_counts: LogCounts,
}

/// `ln n` of the last counts asked for, kept on the device: a training step asks for the same
/// counts in every forward pass, and on a GPU each would otherwise be an upload.
#[derive(Debug, Clone, Default)]
struct LogCounts(Arc<Mutex<Option<Cached>>>);

/// The counts and their `ln n`.
type Cached = (Vec<usize>, Tensor<1>);

impl LogCounts {
    /// `(T,)` `ln max(n, 1)` of `counts` on `device` in `dtype`, from the cache when it holds
    /// those.
    fn get(&self, counts: &[usize], device: &Device, dtype: DType) -> Tensor<1> {
        let mut cached = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((c, t)) = cached.as_ref()
            && c == counts
            && t.device() == *device
            && t.dtype() == dtype
        {
            return t.clone();
        }
        let log_n: Vec<f32> = counts.iter().map(|&n| (n.max(1) as f32).ln()).collect();
        let t = Tensor::<1>::from_data(TensorData::new(log_n, [counts.len()]), (device, dtype));
        *cached = Some((counts.to_vec(), t.clone()));
        t
    }
}

impl AdaptiveBandwidth {
    pub fn new(n_head: usize, device: &Device) -> Self {
        let param = |v: f32| Param::from_data(TensorData::new(vec![v; n_head], [n_head]), device);
        Self {
            theta0: param(THETA_INIT),
            theta1: param(THETA_INIT),
            theta_alpha: param(ALPHA_INIT),
            log_counts: LogCounts::default(),
        }
    }

    /// `beta0`, `(H,)`.
    pub fn beta0(&self) -> Tensor<1> {
        self.theta0.val().clamp_max(BANDWIDTH_CAP).exp()
    }

    /// `beta1`, `(H,)`.
    pub fn beta1(&self) -> Tensor<1> {
        self.theta1.val().clamp_max(BANDWIDTH_CAP).exp()
    }

    /// `alpha`, `(H,)`.
    pub fn alpha(&self) -> Tensor<1> {
        self.theta_alpha.val().abs().clamp_max(1.0)
    }

    /// The bandwidth of each head for memories holding `counts[t]` pairs, shaped
    /// `(1, H, T, 1)` to scale queries `(B, H, T, hs)`. A count of 0 is taken as 1: such a
    /// memory answers zero whatever its bandwidth.
    pub fn beta(&self, counts: &[usize]) -> Tensor<4> {
        let [h] = self.theta0.dims();
        let t = counts.len();
        let theta = self.theta0.val();
        // In the parameters' type: a mixed-precision step computes in f16.
        let log_n = self
            .log_counts
            .get(counts, &theta.device(), theta.dtype())
            .reshape([1, t]);
        let grown = (self.alpha().reshape([h, 1]) * log_n).exp();
        let beta = self.beta1().reshape([h, 1]) * grown + self.beta0().reshape([h, 1]);
        beta.reshape([1, h, t, 1])
    }
}
