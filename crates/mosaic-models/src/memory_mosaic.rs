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
use mosaic_core::{
    ContextCache, ContextMemory, ContextMemoryConfig, PersistentMemory, PersistentMemoryConfig,
};

use crate::Forward;
use crate::InputError;
use crate::config::MemoryMosaicConfig;
use crate::laid_out;
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

    fn prefill(&self, x: Tensor<3>) -> (Tensor<3>, BlockCache) {
        let (y, context) = self.attn.prefill(self.ln1.forward(x.clone()));
        let x = x + y;
        let (y, persistent) = self.pmem.prefill(self.ln2.forward(x.clone()));
        (
            x + y,
            BlockCache {
                context,
                persistent,
            },
        )
    }

    fn step(&self, x: Tensor<3>, cache: &mut BlockCache) -> Tensor<3> {
        let x = x.clone() + self.attn.step(self.ln1.forward(x), &mut cache.context);
        x.clone() + self.pmem.step(self.ln2.forward(x), &mut cache.persistent)
    }
}

#[derive(Debug, Clone)]
struct BlockCache {
    context: ContextCache,
    /// The persistent memory's key extractor's leaky average at the last step.
    persistent: Tensor<4>,
}

/// What generation keeps of the sequence so far, per block: the contextual memory's stored
/// keys and values and both key extractors' leaky averages. Each new token then costs one
/// retrieval over the stored pairs instead of a forward pass over the whole sequence.
#[derive(Debug, Clone)]
pub struct MosaicCache {
    blocks: Vec<BlockCache>,
    /// The tied head `emb^T`, `(d, vocab)`, laid out once: as a transposed view the CPU
    /// backend copies it, element by element, on every token.
    head: Tensor<2>,
}

impl MosaicCache {
    /// Tokens stored.
    pub fn len(&self) -> usize {
        self.blocks.first().map_or(0, |b| b.context.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        Ok(Forward {
            logits: self.head(x, self.emb.val().transpose()),
            hidden,
        })
    }

    /// The logits of a prompt `(B, T)`, as [`MemoryMosaic::forward`], and the cache that
    /// [`MemoryMosaic::step`] continues from.
    pub fn prefill(&self, ids: Tensor<2, Int>) -> Result<(Tensor<3>, MosaicCache), InputError> {
        let [_, t] = ids.dims();
        InputError::check_length(t, self.block_size)?;
        let mut x = embedding(self.emb.val(), ids);
        let mut blocks = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            let (y, cache) = block.prefill(x);
            x = y;
            blocks.push(cache);
        }
        let head = laid_out(self.emb.val().transpose());
        let logits = self.head(x, head.clone());
        Ok((logits, MosaicCache { blocks, head }))
    }

    /// The logits `(B, 1, vocab)` of one more token per row, `ids` `(B, 1)`, after those in
    /// `cache`; the same numbers as the last position of a forward pass over all of them.
    pub fn step(
        &self,
        ids: Tensor<2, Int>,
        cache: &mut MosaicCache,
    ) -> Result<Tensor<3>, InputError> {
        InputError::check_length(cache.len() + 1, self.block_size)?;
        let mut x = embedding(self.emb.val(), ids);
        for (block, c) in self.blocks.iter().zip(&mut cache.blocks) {
            x = block.step(x, c);
        }
        Ok(self.head(x, cache.head.clone()))
    }

    /// Final LayerNorm, then the tied head `weight` `(d, vocab)` scaled by `1/sqrt(d)`.
    fn head(&self, x: Tensor<3>, weight: Tensor<2>) -> Tensor<3> {
        let x = self.ln_out.forward(x);
        let [_, d] = self.emb.dims();
        linear(x, weight, None) * (1.0 / (d as f64).sqrt())
    }
}
