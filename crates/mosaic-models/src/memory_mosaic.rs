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
    Weights,
};

use crate::Forward;
use crate::InputError;
use crate::config::MemoryMosaicConfig;
use crate::laid_out;
use crate::layer_norm::LayerNorm;

#[derive(Module, Debug)]
pub struct Block {
    ln1: LayerNorm,
    attn: ContextMemory,
    ln2: LayerNorm,
    pmem: PersistentMemory,
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
    emb: Param<Tensor<2>>,
    blocks: Vec<Block>,
    ln_out: LayerNorm,
    block_size: usize,
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

/// The learned per-head scalars of one layer, in the units the paper uses.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LayerHeads {
    pub layer: usize,
    /// Leaky-average decay rate `b_h` of the contextual memory's keys (`lambda = exp(-b)`).
    pub leaky_decay: Vec<f32>,
    /// Kernel bandwidth `beta_h = s_h^2` of the contextual memory.
    pub key_bandwidth: Vec<f32>,
    /// Value mix `c_h`: the weight of the present step against the next.
    pub value_mix: Vec<f32>,
    /// Leaky-average decay rate of the persistent memory's keys.
    pub pmem_leaky_decay: Vec<f32>,
}

impl MemoryMosaic {
    /// The official parameters (`blocks.{i}.attn.*`, `blocks.{i}.pmem.*`, `ln_out.weight`,
    /// and the tied embedding as `emb.weight` or `head.weight`).
    pub fn load<W: Weights>(&mut self, weights: &W) -> Result<(), W::Error> {
        for (i, block) in self.blocks.iter_mut().enumerate() {
            block.ln1.load(weights, &format!("blocks.{i}.ln1.weight"))?;
            block.ln2.load(weights, &format!("blocks.{i}.ln2.weight"))?;
            block.attn.load(weights, &format!("blocks.{i}.attn."))?;
            block.pmem.load(weights, &format!("blocks.{i}.pmem."))?;
        }
        let name = match weights.contains("emb.weight") {
            true => "emb.weight",
            false => "head.weight",
        };
        self.emb = weights.param(name, self.emb.dims())?;
        self.ln_out.load(weights, "ln_out.weight")
    }

    /// Per-head scalars of every layer.
    pub fn head_scalars(&self) -> Vec<LayerHeads> {
        let values = |t: Tensor<1>| t.into_data().try_to_vec_as::<f32>().unwrap_or_default();
        self.blocks
            .iter()
            .enumerate()
            .map(|(layer, b)| LayerHeads {
                layer,
                leaky_decay: values(b.attn.key().leaky_decay()),
                key_bandwidth: values(b.attn.key().scale().square()),
                value_mix: values(b.attn.value().mix()),
                pmem_leaky_decay: values(b.pmem.key().leaky_decay()),
            })
            .collect()
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// The device the parameters live on.
    pub fn device(&self) -> Device {
        self.emb.val().device()
    }

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
