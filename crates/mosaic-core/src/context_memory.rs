//! Contextual memory unit (C-mem), the Memory Mosaic's replacement for self-attention: every
//! head stores the pairs `(k_i, v_i)` of the current context and predicts from the past ones.
//! Which past ones is its [`Band`]: all of them in v1, the last few (short-term) or the old
//! ones (long-term) in v2's three-level memory.

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::{Device, Tensor};

use crate::band::Band;
use crate::bandwidth::AdaptiveBandwidth;
use crate::heads::{merge_heads, normal_weight};
use crate::key_features::{KeyFeatures, KeyScale};
use crate::linear::linear;
use crate::retrieval::{band_retrieval, band_weights, open_retrieval};
use crate::value_features::ValueFeatures;
use crate::weights::Weights;

#[derive(Debug, Clone)]
pub struct ContextMemoryConfig {
    /// Width of the unit's input and output.
    pub n_embd: usize,
    pub n_head: usize,
    /// Width of each head; `n_embd / n_head` in v1, where one memory has every head.
    pub head_size: usize,
    /// Depth of the stack the unit sits in: `c_proj` starts at N(0, 1/(d n_layer)).
    pub n_layer: usize,
    /// Dropout on the attention weights (`ic_dropout`).
    pub attn_dropout: f64,
    /// Dropout on the unit's output (`hd_dropout`).
    pub resid_dropout: f64,
    /// The pairs position `t` reads; [`Band::PAST`] in v1.
    pub band: Band,
    /// v2's bandwidth `beta1 n^alpha + beta0` in place of v1's fixed `s_h^2`.
    pub adaptive_bandwidth: bool,
    /// v2's gated key extractor in place of v1's leaky average.
    pub gated_keys: bool,
}

impl ContextMemoryConfig {
    /// The v1 unit: every head, every strictly-past pair.
    pub fn new(n_embd: usize, n_head: usize, n_layer: usize) -> Self {
        Self {
            n_embd,
            n_head,
            head_size: n_embd / n_head,
            n_layer,
            attn_dropout: 0.0,
            resid_dropout: 0.0,
            band: Band::PAST,
            adaptive_bandwidth: false,
            gated_keys: false,
        }
    }
}

/// What a contextual memory has stored of a sequence, for generation: the key extractor's
/// state at the last step, the keys `(B, H, n, hs)` and values `(B, H, n - 1, hs)` it may still
/// read (a short-term memory drops those that left its window), and the last step's `w`
/// `(B, H, 1, hs)`, which completes its value when the next token arrives.
#[derive(Debug, Clone)]
pub struct ContextCache {
    key_state: Tensor<4>,
    keys: Tensor<4>,
    values: Option<Tensor<4>>,
    last_w: Tensor<4>,
    /// The position of `keys`' first pair.
    first: usize,
    /// Steps seen.
    steps: usize,
}

impl ContextCache {
    /// Steps seen.
    pub fn len(&self) -> usize {
        self.steps
    }

    pub fn is_empty(&self) -> bool {
        self.steps == 0
    }

    /// Pairs kept.
    pub fn stored(&self) -> usize {
        self.keys.dims()[2]
    }

    /// Forgets the pairs no later position of `band` reads: those before the next step's
    /// first pair.
    fn evict(&mut self, band: Band) {
        let keep_from = band.pairs(self.steps).start.max(self.first);
        let drop = keep_from - self.first;
        if drop == 0 {
            return;
        }
        let n = self.keys.dims()[2];
        self.keys = self.keys.clone().narrow(2, drop, n - drop);
        self.values = self.values.take().and_then(|v| {
            let m = v.dims()[2];
            (m > drop).then(|| v.narrow(2, drop, m - drop))
        });
        self.first = keep_from;
    }
}

#[derive(Module, Debug)]
pub struct ContextMemory {
    key: KeyFeatures,
    value: ValueFeatures,
    /// v2's adaptive bandwidth; `None` in v1, where the keys carry `s_h`.
    bandwidth: Option<AdaptiveBandwidth>,
    /// Output projection, stored `(H hs, d)`.
    c_proj: Param<Tensor<2>>,
    attn_dropout: Dropout,
    resid_dropout: Dropout,
    /// [`Band::offset`] and [`Band::window`].
    offset: usize,
    window: usize,
}

impl ContextMemoryConfig {
    pub fn init(&self, device: &Device) -> ContextMemory {
        let d = self.n_embd;
        assert!(
            self.n_head > 0 && self.head_size > 0,
            "a contextual memory needs heads"
        );
        assert!(
            self.band.window > self.band.offset,
            "a window of {} steps leaves nothing to read at offset {}",
            self.band.window,
            self.band.offset
        );
        let width = self.n_head * self.head_size;
        // The fan-in of the whole output projection: a v2 three-level memory's two units are
        // the two halves of one `W_o`.
        let proj_std = 1.0 / (d as f64).sqrt() / (self.n_layer as f64).sqrt();
        let scale = match self.adaptive_bandwidth {
            true => KeyScale::Unit,
            false => KeyScale::Kernel,
        };
        ContextMemory {
            key: KeyFeatures::new(
                d,
                self.n_head,
                self.head_size,
                scale,
                self.gated_keys,
                device,
            ),
            value: ValueFeatures::new(d, self.n_head, self.head_size, device),
            bandwidth: self
                .adaptive_bandwidth
                .then(|| AdaptiveBandwidth::new(self.n_head, device)),
            c_proj: normal_weight(width, d, proj_std, device),
            attn_dropout: DropoutConfig::new(self.attn_dropout).init(),
            resid_dropout: DropoutConfig::new(self.resid_dropout).init(),
            offset: self.band.offset,
            window: self.band.window,
        }
    }
}

impl ContextMemory {
    /// The official parameters under `prefix` (`blocks.{i}.attn.`).
    pub fn visit_official<W: Weights>(
        &mut self,
        weights: &W,
        prefix: &str,
    ) -> Result<(), W::Error> {
        let p = |name: &str| format!("{prefix}{name}");
        self.key.visit_official(weights, prefix)?;
        self.value.visit_official(
            weights,
            &p("v_featurizer.linear.weight"),
            &p("v_featurizer.coef"),
            &p("value_beta"),
        )?;
        weights.linear(&p("c_proj.weight"), &mut self.c_proj)
    }

    /// The key extractor, which holds the leaky average (or the gates) and, in v1, the kernel
    /// bandwidth.
    pub fn key(&self) -> &KeyFeatures {
        &self.key
    }

    /// The value extractor, which holds the mix of the present and next steps.
    pub fn value(&self) -> &ValueFeatures {
        &self.value
    }

    /// v2's adaptive bandwidth, if the unit has one.
    pub fn bandwidth(&self) -> Option<&AdaptiveBandwidth> {
        self.bandwidth.as_ref()
    }

    /// The pairs each position reads.
    pub fn band(&self) -> Band {
        Band {
            offset: self.offset,
            window: self.window,
        }
    }

    /// `x`: `(B, T, d)`, already layer-normalised -> `(B, T, d)`. The first
    /// [`Band::empty_rows`] positions are exactly zero.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.forward_band(x, self.band())
    }

    /// [`ContextMemory::forward`] reading `band` instead of the unit's own: a long-term
    /// memory trains with a random offset.
    pub fn forward_band(&self, x: Tensor<3>, band: Band) -> Tensor<3> {
        let k = self.key.forward(x.clone());
        let v = self.value.forward(x);
        let y = band_retrieval(self.query(k.clone(), band), k, v, band, &self.attn_dropout);
        self.output(y)
    }

    /// [`ContextMemory::forward`] on a prompt, keeping what [`ContextMemory::step`] needs to
    /// continue it one token at a time.
    pub fn prefill(&self, x: Tensor<3>) -> (Tensor<3>, ContextCache) {
        let band = self.band();
        let (k, key_state) = self.key.forward_with_state(x.clone());
        let w = self.value.project(x);
        let t = w.dims()[2];
        // Every value but the last, which waits for the next step's `w`.
        let values = self.value.of_projection(w.clone());
        let query = self.query(k.clone(), band);
        let y = band_retrieval(query, k.clone(), values.clone(), band, &self.attn_dropout);
        let mut cache = ContextCache {
            key_state,
            keys: k,
            values: (t > 1).then(|| values.narrow(2, 0, t - 1)),
            last_w: w.narrow(2, t - 1, 1),
            first: 0,
            steps: t,
        };
        cache.evict(band);
        (self.output(y), cache)
    }

    /// The output for one new step `x` `(B, 1, d)` after the steps in `cache`, which it then
    /// joins: the new `w` completes the value of the step before, the new key is stored, and
    /// the pairs that left the band are dropped.
    pub fn step(&self, x: Tensor<3>, cache: &mut ContextCache) -> Tensor<3> {
        let band = self.band();
        let t = cache.steps;
        let (k, key_state) = self.key.step(Some(cache.key_state.clone()), x.clone());
        let w = self.value.project(x);
        let completed = self.value.combine(cache.last_w.clone(), w.clone());
        let values = match cache.values.take() {
            Some(v) => Tensor::cat(vec![v, completed], 2),
            None => completed,
        };
        // Every stored key has its value now; the new key's waits for the next step.
        let pairs = band.pairs(t);
        let y = match pairs.is_empty() {
            true => k.zeros_like(),
            false => {
                let (start, n) = (pairs.start - cache.first, pairs.len());
                let keys = cache.keys.clone().narrow(2, start, n);
                let query = self.query_at(k.clone(), band.count(t));
                open_retrieval(query, keys, values.clone().narrow(2, start, n), 1.0)
            }
        };
        cache.keys = Tensor::cat(vec![cache.keys.clone(), k], 2);
        cache.values = Some(values);
        cache.key_state = key_state;
        cache.last_w = w;
        cache.steps += 1;
        cache.evict(band);
        self.output(y)
    }

    /// The queries of keys `k` `(B, H, T, hs)`: the keys themselves, scaled by the adaptive
    /// bandwidth of the pairs each position reads.
    fn query(&self, k: Tensor<4>, band: Band) -> Tensor<4> {
        match &self.bandwidth {
            Some(bandwidth) => {
                let t = k.dims()[2];
                let counts: Vec<usize> = (0..t).map(|i| band.count(i)).collect();
                k * bandwidth.beta(&counts)
            }
            None => k,
        }
    }

    /// The query of one step's key `(B, H, 1, hs)` reading `count` pairs.
    fn query_at(&self, k: Tensor<4>, count: usize) -> Tensor<4> {
        match &self.bandwidth {
            Some(bandwidth) => k * bandwidth.beta(&[count]),
            None => k,
        }
    }

    fn output(&self, y: Tensor<4>) -> Tensor<3> {
        self.resid_dropout
            .forward(linear(merge_heads(y), self.c_proj.val()))
    }

    /// The attention weights of every head, `(B, H, T, T)`, without dropout: which past
    /// positions each prediction reads.
    pub fn attention(&self, x: Tensor<3>) -> Tensor<4> {
        let band = self.band();
        let k = self.key.forward(x);
        band_weights(self.query(k.clone(), band), k, band)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;

    use super::*;

    /// The attention weights are the retrieval: each row sums to one (zero where the band
    /// holds nothing), and weights times the values, projected, give the unit's output; v1
    /// and v2's long-term memory (gated keys, adaptive bandwidth).
    #[test]
    fn attention_weights_are_what_the_unit_retrieves() {
        let device = Device::flex();
        device.seed(9);
        let v2 = ContextMemoryConfig {
            head_size: 4,
            band: Band::long_term(3),
            adaptive_bandwidth: true,
            gated_keys: true,
            ..ContextMemoryConfig::new(16, 2, 1)
        };
        for config in [ContextMemoryConfig::new(16, 2, 1), v2] {
            let unit = config.init(&device);
            let x = Tensor::<3>::random([1, 9, 16], Distribution::Normal(0.0, 1.0), &device);
            let w = unit.attention(x.clone());
            let sums = w
                .clone()
                .sum_dim(3)
                .into_data()
                .try_to_vec_as::<f32>()
                .unwrap();
            let band = unit.band();
            for (row, s) in sums.iter().enumerate() {
                let expected = if band.count(row % 9) == 0 { 0.0 } else { 1.0 };
                assert!((s - expected).abs() < 1e-5, "row {row}: {s}");
            }
            let y = w.matmul(unit.value.forward(x.clone()));
            let err = (unit.output(y) - unit.forward(x))
                .abs()
                .max()
                .into_scalar::<f32>();
            assert!(err < 1e-5, "{band:?}: {err:e}");
        }
    }
}
