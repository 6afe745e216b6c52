//! The Memory Mosaic language model (the reference's `StackAssoMem`):
//!
//! ```text
//! token embedding (tied with the head; no position embedding: keys carry time themselves)
//! N blocks:  x = x + ContextMemory(LN1(x));  x = x + PersistentMemory(LN2(x))
//! final LayerNorm;  logits = head(x) / sqrt(d)
//! ```

use burn::module::{Module, Param};
use burn::tensor::module::{embedding, linear};
use burn::tensor::{Device, Distribution, Int, Tensor};
use mosaic_core::{ContextMemory, ContextMemoryConfig, PersistentMemory, PersistentMemoryConfig};

use crate::Forward;
use crate::InputError;
use crate::config::MemoryMosaicConfig;
use crate::layer_norm::LayerNorm;

#[derive(Module, Debug)]
pub struct Block {
    pub ln1: LayerNorm,
    pub attn: ContextMemory,
    pub ln2: LayerNorm,
    pub pmem: PersistentMemory,
}

impl Block {
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = x.clone() + self.attn.forward(self.ln1.forward(x));
        x.clone() + self.pmem.forward(self.ln2.forward(x))
    }
}

#[derive(Module, Debug)]
pub struct MemoryMosaic {
    /// Token embedding `(vocab, d)`, also the output head.
    pub emb: Param<Tensor<2>>,
    pub blocks: Vec<Block>,
    pub ln_out: LayerNorm,
    pub block_size: usize,
}

impl MemoryMosaicConfig {
    /// A freshly initialised model, as the reference initialises it: linear maps
    /// N(0, 1/fan_in), output projections N(0, 1/(fan_in n_layer)), the tied embedding
    /// N(0, 1/d), banks N(0, 1/hs). Panics on a config that [`MemoryMosaicConfig::validate`]
    /// refuses.
    pub fn init(&self, device: &Device) -> MemoryMosaic {
        let d = self.n_embd;
        let blocks = (0..self.n_layer)
            .map(|_| Block {
                ln1: LayerNorm::new(d, device),
                attn: ContextMemoryConfig {
                    n_embd: d,
                    n_head: self.n_head,
                    n_layer: self.n_layer,
                    attn_dropout: self.attn_dropout,
                    resid_dropout: self.resid_dropout,
                }
                .init(device),
                ln2: LayerNorm::new(d, device),
                pmem: PersistentMemoryConfig {
                    n_embd: d,
                    n_head: self.n_head,
                    n_layer: self.n_layer,
                    pmem_size: self.pmem_size,
                    pmem_count: self.pmem_count,
                    attn_dropout: self.attn_dropout,
                    resid_dropout: self.resid_dropout,
                }
                .init(device),
            })
            .collect();
        MemoryMosaic {
            emb: Param::from_tensor(Tensor::random(
                [self.vocab_size, d],
                Distribution::Normal(0.0, 1.0 / (d as f64).sqrt()),
                device,
            )),
            blocks,
            ln_out: LayerNorm::new(d, device),
            block_size: self.block_size,
        }
    }
}

impl MemoryMosaic {
    /// `ids`: `(B, T)` token ids with `T <= block_size`.
    pub fn forward(&self, ids: Tensor<2, Int>) -> Result<Forward, InputError> {
        let [_, t] = ids.dims();
        InputError::check_length(t, self.block_size)?;
        let mut x = embedding(self.emb.val(), ids);
        let mut hidden = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            x = block.forward(x);
            hidden.push(x.clone());
        }
        let x = self.ln_out.forward(x);
        let [_, d] = self.emb.dims();
        let logits = linear(x, self.emb.val().transpose(), None) * (1.0 / (d as f64).sqrt());
        Ok(Forward { logits, hidden })
    }
}
