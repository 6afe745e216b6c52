//! Key feature extractor: `k_t = s_h * kbar_t / |kbar_t|`, where `kbar` is the leaky average of
//! `ktilde = W_k x` (v1), or its gated, time-variant form (v2, eq. 8),
//! `kbar_t = g_t ktilde_t + lambda_t kbar_{t-1}` with `g_t = exp(W_g x_t)` and
//! `lambda_t = exp(-|W_lambda x_t|)`, one scalar per head and step. Keys look back: `k_t`
//! depends on `x_t, x_{t-1}, ...` only. Under an adaptive bandwidth the keys stay unit-norm
//! (no `s_h`): the memory scales its queries instead.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};

use crate::EXP_PARAM_SCALE;
use crate::gated_scan::{gated_scan, gated_step};
use crate::heads::{l2_normalize, normal_weight, scaled_l2_normalize, split_heads};
use crate::leaky_average::LeakyAverage;
use crate::linear::linear;
use crate::weights::Weights;

/// The reference caps `10 * kappa` at 5 so that `s^2` stays inside fp16 range.
pub const KERNEL_SCALE_CAP: f64 = 5.0;

#[derive(Module, Debug)]
pub struct KeyFeatures {
    /// `W_k`, stored `(d_in, d_out)` (the reference's `k_featurizer.conv.weight`, a
    /// kernel-size-1 convolution).
    weight: Param<Tensor<2>>,
    /// The v1 leaky average; `None` with gates.
    leaky: Option<LeakyAverage>,
    /// The v2 gates; `None` with a leaky average.
    gates: Option<KeyGates>,
    /// `kappa_h`, stored divided by 10 (the reference's `kernel_beta`); `None` for unit keys.
    kappa: Option<Param<Tensor<1>>>,
    n_head: usize,
    #[module(skip)]
    scale: KeyScale,
}

/// How a key extractor scales its unit-norm keys by `s_h = exp(min(10 kappa_h, 5))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyScale {
    /// No scale and no `kappa`: under an adaptive bandwidth the memory scales its queries.
    Unit,
    /// `s_h`: a contextual memory, where the kernel `k_t . k_i` gets `s_h` from both sides.
    Kernel,
    /// `s_h^2`: a persistent memory, whose stored keys have no scale of their own.
    Squared,
}

/// A key extractor's averaging over time: v1's leaky average or v2's gates.
enum Averaging<'a> {
    Leaky(&'a LeakyAverage),
    Gated(&'a KeyGates),
}

/// The gates of a v2 key extractor, both `(d, H)`: `g_t = exp(W_g x_t)` weighs the new step,
/// `lambda_t = exp(-|W_lambda x_t|)` keeps the past.
#[derive(Module, Debug)]
pub struct KeyGates {
    input: Param<Tensor<2>>,
    decay: Param<Tensor<2>>,
}

impl KeyGates {
    /// `(log g, log lambda)` of every step, both `(B, H, T, 1)`.
    fn forward(&self, x: Tensor<3>) -> (Tensor<4>, Tensor<4>) {
        let per_step = |w: &Param<Tensor<2>>| {
            linear(x.clone(), w.val())
                .swap_dims(1, 2)
                .unsqueeze_dim::<4>(3)
        };
        (per_step(&self.input), per_step(&self.decay).abs().neg())
    }
}

impl KeyFeatures {
    /// `n_head` heads of `head_size` from inputs of `n_embd`; every map starts at
    /// N(0, 1/n_embd), the gates' included (so `g` and `lambda` start spread around 1 and 0.5).
    pub fn new(
        n_embd: usize,
        n_head: usize,
        head_size: usize,
        scale: KeyScale,
        gated: bool,
        device: &Device,
    ) -> Self {
        let std = 1.0 / (n_embd as f64).sqrt();
        let kappa = vec![(1.0 / EXP_PARAM_SCALE) as f32; n_head];
        Self {
            weight: normal_weight(n_embd, n_head * head_size, std, device),
            leaky: (!gated).then(|| LeakyAverage::new(n_head, device)),
            gates: gated.then(|| KeyGates {
                input: normal_weight(n_embd, n_head, std, device),
                decay: normal_weight(n_embd, n_head, std, device),
            }),
            kappa: (scale != KeyScale::Unit)
                .then(|| Param::from_data(TensorData::new(kappa, [n_head]), device)),
            n_head,
            scale,
        }
    }

    /// The official parameters of the memory unit under `prefix` ([`Weights`]): its key map
    /// `k_featurizer.conv.weight` (a kernel-size-1 convolution), the leaky average's
    /// `leaky_key_beta` and the bandwidth's `kernel_beta`.
    pub fn visit_official<W: Weights>(
        &mut self,
        weights: &W,
        prefix: &str,
    ) -> Result<(), W::Error> {
        weights.conv1(
            &format!("{prefix}k_featurizer.conv.weight"),
            &mut self.weight,
        )?;
        if let Some(leaky) = &mut self.leaky {
            leaky.visit_official(weights, &format!("{prefix}leaky_key_beta"))?;
        }
        if let Some(kappa) = &mut self.kappa {
            weights.param(&format!("{prefix}kernel_beta"), kappa)?;
        }
        Ok(())
    }

    /// v2's gates at every step of `x` `(B, T, d)`: the input gate `g_t` and the decay
    /// `lambda_t`, both `(B, H, T, 1)`; `None` for a leaky average.
    pub fn gates(&self, x: Tensor<3>) -> Option<(Tensor<4>, Tensor<4>)> {
        match self.averaging() {
            Averaging::Leaky(_) => None,
            Averaging::Gated(gates) => {
                let (log_g, log_decay) = gates.forward(x);
                Some((log_g.exp(), log_decay.exp()))
            }
        }
    }

    /// The leaky average's decay rates `b_h` (`lambda_h = exp(-b_h)`), shape `(H,)`; `None`
    /// for a gated extractor, whose decay changes with every step.
    pub fn leaky_decay(&self) -> Option<Tensor<1>> {
        self.leaky.as_ref().map(LeakyAverage::decay)
    }

    /// `s_h` or `s_h^2` (as [`KeyScale`] says) with `s_h = exp(min(10 kappa_h, 5))`, shape
    /// `(H,)`; `None` for unit keys.
    pub fn scale(&self) -> Option<Tensor<1>> {
        let kappa = self.kappa.as_ref()?;
        let s = (kappa.val() * EXP_PARAM_SCALE)
            .clamp_max(KERNEL_SCALE_CAP)
            .exp();
        match self.scale {
            KeyScale::Unit => None,
            KeyScale::Kernel => Some(s),
            KeyScale::Squared => Some(s.square()),
        }
    }

    /// `x`: `(B, T, d)` -> keys `(B, H, T, hs)`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<4> {
        self.finish(self.average(x))
    }

    /// Like [`KeyFeatures::forward`], also returning the leaky average at the last step
    /// `(B, H, 1, hs)`: what [`KeyFeatures::step`] continues from.
    pub fn forward_with_state(&self, x: Tensor<3>) -> (Tensor<4>, Tensor<4>) {
        let kbar = self.average(x);
        let t = kbar.dims()[2];
        let state = kbar.clone().narrow(2, t - 1, 1);
        (self.finish(kbar), state)
    }

    /// The key of one new step `x` `(B, 1, d)` given the leaky average up to the step before;
    /// returns the key `(B, H, 1, hs)` and the new average.
    pub fn step(&self, state: Option<Tensor<4>>, x: Tensor<3>) -> (Tensor<4>, Tensor<4>) {
        let ktilde = self.project(x.clone());
        let kbar = match self.averaging() {
            Averaging::Leaky(leaky) => leaky.step(state, ktilde),
            Averaging::Gated(gates) => {
                let (log_g, log_decay) = gates.forward(x);
                gated_step(state, ktilde * log_g.exp(), log_decay)
            }
        };
        (self.finish(kbar.clone()), kbar)
    }

    /// `kbar` of every step, `(B, H, T, hs)`.
    fn average(&self, x: Tensor<3>) -> Tensor<4> {
        let ktilde = self.project(x.clone());
        match self.averaging() {
            Averaging::Leaky(leaky) => leaky.forward(ktilde),
            Averaging::Gated(gates) => {
                let (log_g, log_decay) = gates.forward(x);
                gated_scan(ktilde * log_g.exp(), log_decay)
            }
        }
    }

    /// How the keys average over time. Two optional fields rather than an enum module, because
    /// an enum would rename the parameters in checkpoints (Burn names a variant in the path);
    /// [`KeyFeatures::new`] sets exactly one.
    fn averaging(&self) -> Averaging<'_> {
        match (&self.leaky, &self.gates) {
            (Some(leaky), _) => Averaging::Leaky(leaky),
            (None, Some(gates)) => Averaging::Gated(gates),
            (None, None) => unreachable!("KeyFeatures::new sets leaky or gates"),
        }
    }

    fn project(&self, x: Tensor<3>) -> Tensor<4> {
        split_heads(linear(x, self.weight.val()), self.n_head)
    }

    fn finish(&self, kbar: Tensor<4>) -> Tensor<4> {
        match self.scale() {
            Some(s) => scaled_l2_normalize(kbar, s),
            None => l2_normalize(kbar),
        }
    }
}
