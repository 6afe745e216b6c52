//! Contextual memory unit (C-mem), the Memory Mosaic's replacement for self-attention: every
//! head stores the pairs `(k_i, v_i)` of the current context and predicts from the past ones.

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::module::linear;
use burn::tensor::{Device, Tensor};

use crate::heads::{merge_heads, normal_weight};
use crate::key_features::KeyFeatures;
use crate::retrieval::{past_retrieval, past_weights};
use crate::value_features::ValueFeatures;

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

#[derive(Module, Debug)]
pub struct ContextMemory {
    pub key: KeyFeatures,
    pub value: ValueFeatures,
    /// Output projection, stored `(d_in, d_out)`.
    pub c_proj: Param<Tensor<2>>,
    pub attn_dropout: Dropout,
    pub resid_dropout: Dropout,
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
    /// `x`: `(B, T, d)`, already layer-normalised -> `(B, T, d)`. Position 0 is exactly zero.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let k = self.key.forward(x.clone());
        let v = self.value.forward(x);
        let y = past_retrieval(k.clone(), k, v, &self.attn_dropout);
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
