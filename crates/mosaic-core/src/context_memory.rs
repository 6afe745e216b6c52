//! Contextual memory unit (C-mem), the Memory Mosaic's replacement for self-attention: every
//! head stores the pairs `(k_i, v_i)` of the current context and predicts from the past ones.

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::module::linear;
use burn::tensor::{Device, Tensor};

use crate::heads::{merge_heads, next_step, normal_weight};
use crate::key_features::KeyFeatures;
use crate::retrieval::{open_retrieval, past_retrieval, past_weights};
use crate::value_features::ValueFeatures;
use crate::weights::Weights;

#[derive(Debug, Clone)]
pub struct ContextMemoryConfig {
    pub n_embd: usize,
    pub n_head: usize,
    /// Depth of the stack the unit sits in: `c_proj` starts at N(0, 1/(d n_layer)).
    pub n_layer: usize,
    /// Dropout on the attention weights (`ic_dropout`).
    pub attn_dropout: f64,
    /// Dropout on the unit's output (`hd_dropout`).
    pub resid_dropout: f64,
}

/// What a contextual memory has stored of a sequence, for generation: the key extractor's
/// leaky average at the last step, every key `(B, H, n, hs)`, the values of all steps but the
/// last `(B, H, n - 1, hs)`, and the last step's `w` `(B, H, 1, hs)`, which completes its value
/// when the next token arrives.
#[derive(Debug, Clone)]
pub struct ContextCache {
    key_state: Tensor<4>,
    keys: Tensor<4>,
    values: Option<Tensor<4>>,
    last_w: Tensor<4>,
}

impl ContextCache {
    /// Steps stored.
    pub fn len(&self) -> usize {
        self.keys.dims()[2]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Module, Debug)]
pub struct ContextMemory {
    key: KeyFeatures,
    value: ValueFeatures,
    /// Output projection, stored `(d_in, d_out)`.
    c_proj: Param<Tensor<2>>,
    attn_dropout: Dropout,
    resid_dropout: Dropout,
}

impl ContextMemoryConfig {
    pub fn init(&self, device: &Device) -> ContextMemory {
        let d = self.n_embd;
        assert!(
            d.is_multiple_of(self.n_head),
            "n_embd {d} is not a multiple of n_head {}",
            self.n_head
        );
        let proj_std = 1.0 / (d as f64).sqrt() / (self.n_layer as f64).sqrt();
        ContextMemory {
            key: KeyFeatures::new(d, self.n_head, 1, device),
            value: ValueFeatures::new(d, self.n_head, device),
            c_proj: normal_weight(d, d, proj_std, device),
            attn_dropout: DropoutConfig::new(self.attn_dropout).init(),
            resid_dropout: DropoutConfig::new(self.resid_dropout).init(),
        }
    }
}

impl ContextMemory {
    /// The official parameters under `prefix` (`blocks.{i}.attn.`).
    pub fn load<W: Weights>(&mut self, weights: &W, prefix: &str) -> Result<(), W::Error> {
        let p = |name: &str| format!("{prefix}{name}");
        self.key.load(weights, prefix)?;
        self.value.load(
            weights,
            &p("v_featurizer.linear.weight"),
            &p("v_featurizer.coef"),
            &p("value_beta"),
        )?;
        let [d_in, d_out] = self.c_proj.dims();
        self.c_proj = weights.linear(&p("c_proj.weight"), d_out, d_in)?;
        Ok(())
    }

    /// The key extractor, which holds the leaky average and the kernel bandwidth.
    pub fn key(&self) -> &KeyFeatures {
        &self.key
    }

    /// The value extractor, which holds the mix of the present and next steps.
    pub fn value(&self) -> &ValueFeatures {
        &self.value
    }

    /// `x`: `(B, T, d)`, already layer-normalised -> `(B, T, d)`. Position 0 is exactly zero.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let k = self.key.forward(x.clone());
        let v = self.value.forward(x);
        let y = past_retrieval(k.clone(), k, v, &self.attn_dropout);
        self.output(y)
    }

    /// [`ContextMemory::forward`] on a prompt, keeping what [`ContextMemory::step`] needs to
    /// continue it one token at a time.
    pub fn prefill(&self, x: Tensor<3>) -> (Tensor<3>, ContextCache) {
        let (k, key_state) = self.key.forward_with_state(x.clone());
        let w = self.value.project(x);
        let t = w.dims()[2];
        // Every value but the last, which waits for the next step's `w`.
        let values = self.value.combine(w.clone(), next_step(w.clone(), 2));
        let y = past_retrieval(k.clone(), k.clone(), values.clone(), &self.attn_dropout);
        let cache = ContextCache {
            key_state,
            keys: k,
            values: (t > 1).then(|| values.narrow(2, 0, t - 1)),
            last_w: w.narrow(2, t - 1, 1),
        };
        (self.output(y), cache)
    }

    /// The output for one new step `x` `(B, 1, d)` after the steps in `cache`, which it then
    /// joins: the new `w` completes the value of the step before, the new key is stored.
    pub fn step(&self, x: Tensor<3>, cache: &mut ContextCache) -> Tensor<3> {
        let (k, key_state) = self.key.step(Some(cache.key_state.clone()), x.clone());
        let w = self.value.project(x);
        let completed = self.value.combine(cache.last_w.clone(), w.clone());
        let values = match cache.values.take() {
            Some(v) => Tensor::cat(vec![v, completed], 2),
            None => completed,
        };
        // Every stored key has its value now; the new key's waits for the next step.
        let y = open_retrieval(k.clone(), cache.keys.clone(), values.clone(), 1.0);
        cache.keys = Tensor::cat(vec![cache.keys.clone(), k], 2);
        cache.values = Some(values);
        cache.key_state = key_state;
        cache.last_w = w;
        self.output(y)
    }

    fn output(&self, y: Tensor<4>) -> Tensor<3> {
        self.resid_dropout
            .forward(linear(merge_heads(y), self.c_proj.val(), None))
    }

    /// The attention weights of every head, `(B, H, T, T)`, without dropout: which past
    /// positions each prediction reads.
    pub fn attention(&self, x: Tensor<3>) -> Tensor<4> {
        let k = self.key.forward(x);
        past_weights(k.clone(), k)
    }
}
