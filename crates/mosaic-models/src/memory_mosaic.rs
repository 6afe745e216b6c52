//! The Memory Mosaic language model (the reference's `StackAssoMem`):
//!
//! ```text
//! token embedding (tied with the head; no position embedding: keys carry time themselves)
//! N blocks:  x = x + ContextMemory(LN1(x));  x = x + PersistentMemory(LN2(x))
//! final LayerNorm;  logits = head(x) / sqrt(d)
//! ```
//!
//! and its v2 variants ("Memory Mosaics at Scale"), switched on one by one in the config:
//! adaptive bandwidth, gated keys, and the three-level memory, whose blocks are
//! `x = x + ShortTerm(LN1(x)) + LongTerm(LN1(x));  x = x + SwiGLU(LN2(x))`.

use burn::module::{Flag, Module, Param};
use burn::tensor::module::embedding;
use burn::tensor::{Device, Distribution, Int, Tensor};
use mosaic_core::ops::linear;
use mosaic_core::{
    AdaptiveBandwidth, Band, ContextCache, ContextMemory, ContextMemoryConfig, PersistentMemory,
    PersistentMemoryConfig, SwiGlu, Weights,
};

use crate::Forward;
use crate::InputError;
use crate::config::MemoryMosaicConfig;
use crate::laid_out;
use crate::layer_norm::LayerNorm;
use crate::reading::{LayerReading, MemoryReading, Reading, read_blocks};

/// One block. v1: `x = x + ContextMemory(LN1(x)); x = x + PersistentMemory(LN2(x))`. v2's
/// three-level memory: the contextual part is a short-term and a long-term memory side by side
/// (their outputs summed, which is their concatenation times one `W_o`), the persistent part a
/// SwiGLU layer.
#[derive(Module, Debug)]
pub(crate) struct Block {
    ln1: LayerNorm,
    /// The v1 contextual memory, or v2's short-term memory.
    attn: ContextMemory,
    /// v2's long-term memory.
    long: Option<ContextMemory>,
    ln2: LayerNorm,
    /// The v1 persistent memory.
    pmem: Option<PersistentMemory>,
    /// v2's persistent memory.
    ffn: Option<SwiGlu>,
}

impl Block {
    /// `long_band`: what the long-term memory reads in this pass (its own band if `None`).
    pub fn forward(&self, x: Tensor<3>, long_band: Option<Band>) -> Tensor<3> {
        let x = x.clone() + self.context(self.ln1.forward(x), long_band);
        x.clone() + self.feed(self.ln2.forward(x))
    }

    /// The contextual part on the normalised input.
    fn context(&self, h: Tensor<3>, long_band: Option<Band>) -> Tensor<3> {
        match &self.long {
            Some(long) => {
                let band = long_band.unwrap_or(long.band());
                self.attn.forward(h.clone()) + long.forward_band(h, band)
            }
            None => self.attn.forward(h),
        }
    }

    /// The persistent part on the normalised input.
    fn feed(&self, h: Tensor<3>) -> Tensor<3> {
        match self.persistent() {
            Persistent::Memory(pmem) => pmem.forward(h),
            Persistent::SwiGlu(ffn) => ffn.forward(h),
        }
    }

    /// [`Block::forward`] in eval mode, and what its memories read.
    fn read(&self, x: Tensor<3>) -> (Tensor<3>, LayerReading) {
        let h = self.ln1.forward(x.clone());
        let reading = |name, m: &ContextMemory| MemoryReading {
            name,
            weights: m.attention(h.clone()),
            gates: m.key().gates(h.clone()),
        };
        let memories = match &self.long {
            Some(long) => vec![
                reading("short-term memory", &self.attn),
                reading("long-term memory", long),
            ],
            None => vec![reading("contextual memory", &self.attn)],
        };
        let x = x.clone() + self.context(h, None);
        let h = self.ln2.forward(x.clone());
        let bank = match self.persistent() {
            Persistent::Memory(pmem) => Some(pmem.bank_weights(h.clone())),
            Persistent::SwiGlu(_) => None,
        };
        (x + self.feed(h), LayerReading { memories, bank })
    }

    /// The persistent part. Two optional fields rather than an enum module, because an enum
    /// would rename the parameters in checkpoints (Burn names a variant in the path); the
    /// constructor sets exactly one.
    fn persistent(&self) -> Persistent<'_> {
        match (&self.pmem, &self.ffn) {
            (Some(pmem), _) => Persistent::Memory(pmem),
            (None, Some(ffn)) => Persistent::SwiGlu(ffn),
            (None, None) => unreachable!("Block::new sets pmem or ffn"),
        }
    }

    fn prefill(&self, x: Tensor<3>) -> (Tensor<3>, BlockCache) {
        let h = self.ln1.forward(x.clone());
        let (mut y, context) = self.attn.prefill(h.clone());
        let long = self.long.as_ref().map(|long| {
            let (y_long, cache) = long.prefill(h);
            y = y.clone() + y_long;
            cache
        });
        let x = x + y;
        let h = self.ln2.forward(x.clone());
        let (y, persistent) = match self.persistent() {
            Persistent::Memory(pmem) => {
                let (y, state) = pmem.prefill(h);
                (y, Some(state))
            }
            Persistent::SwiGlu(ffn) => (ffn.forward(h), None),
        };
        (
            x + y,
            BlockCache {
                context,
                long,
                persistent,
            },
        )
    }

    fn step(&self, x: Tensor<3>, cache: &mut BlockCache) -> Tensor<3> {
        let h = self.ln1.forward(x.clone());
        let mut y = self.attn.step(h.clone(), &mut cache.context);
        if let (Some(long), Some(c)) = (&self.long, &mut cache.long) {
            y = y + long.step(h, c);
        }
        let x = x + y;
        let h = self.ln2.forward(x.clone());
        match (self.persistent(), &mut cache.persistent) {
            (Persistent::Memory(pmem), Some(state)) => x + pmem.step(h, state),
            (Persistent::Memory(pmem), state @ None) => {
                let (y, s) = pmem.prefill(h);
                *state = Some(s);
                x + y
            }
            (Persistent::SwiGlu(ffn), _) => x + ffn.forward(h),
        }
    }
}

/// A block's persistent part: v1's persistent memory or v2's SwiGLU layer.
enum Persistent<'a> {
    Memory(&'a PersistentMemory),
    SwiGlu(&'a SwiGlu),
}

#[derive(Debug, Clone)]
struct BlockCache {
    context: ContextCache,
    long: Option<ContextCache>,
    /// The v1 persistent memory's key extractor's state at the last step.
    persistent: Option<Tensor<4>>,
}

/// v2's long-term memory offset `m`: drawn uniformly from `[low, high]` for each training
/// forward pass (one draw for every layer), `low` otherwise. Training is the module's flag
/// (`.train()`, `.valid()`) on a device with gradients, as for dropout.
#[derive(Module, Debug)]
struct LongOffset {
    low: usize,
    high: usize,
    training: Param<Flag>,
}

impl LongOffset {
    fn band(&self, device: &Device) -> Band {
        if !self.training.is_enabled() || !device.is_autodiff() || self.low == self.high {
            return Band::long_term(self.low);
        }
        // Drawn on the host's generator, which the engine reseeds each step as it does the
        // training device's: a GPU step reads nothing back for it, and a resumed run draws the
        // same offsets. On the CPU backend the two are one generator, as before.
        let draw = Tensor::<1>::random(
            [1],
            Distribution::Uniform(self.low as f64, (self.high + 1) as f64),
            &Device::flex(),
        );
        let m = draw
            .into_data()
            .iter::<f32>()
            .next()
            .unwrap_or(self.low as f32);
        Band::long_term((m.floor() as usize).clamp(self.low, self.high))
    }
}

/// What generation keeps of the sequence so far, per block: the contextual memory's stored
/// keys and values and both key extractors' leaky averages. Each new token then costs one
/// retrieval over the stored pairs instead of a forward pass over the whole sequence.
#[derive(Debug, Clone)]
pub struct MosaicCache {
    blocks: Vec<BlockCache>,
    /// The tied head `emb^T`, `(d, vocab)`, laid out once: as a transposed view, Burn's own
    /// `linear` (the CPU path at half precision) copies it element by element on every
    /// token. The f32 CPU product reads the view in place; there the copy costs one pass.
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
    /// v2's long-term memory offset; `None` without the three-level memory.
    long_offset: Option<LongOffset>,
}

impl MemoryMosaicConfig {
    /// A freshly initialised model, as the reference initialises it: linear maps
    /// N(0, 1/fan_in), output projections N(0, 1/(fan_in n_layer)), the tied embedding
    /// N(0, 1/d), banks N(0, 1/hs). Panics on a config that [`MemoryMosaicConfig::validate`]
    /// refuses.
    pub fn init(&self, device: &Device) -> MemoryMosaic {
        let d = self.n_embd;
        let memory = |n_head: usize, band: Band| {
            ContextMemoryConfig {
                n_embd: d,
                n_head,
                head_size: d / self.n_head,
                n_layer: self.n_layer,
                attn_dropout: self.attn_dropout,
                resid_dropout: self.resid_dropout,
                band,
                adaptive_bandwidth: self.adaptive_bandwidth,
                gated_keys: self.gated_keys,
            }
            .init(device)
        };
        let [low, high] = self.long_offset;
        let blocks = (0..self.n_layer)
            .map(|_| Block {
                ln1: LayerNorm::new(d, device),
                attn: match self.three_level {
                    true => memory(self.n_head / 2, Band::short_term(self.short_window)),
                    false => memory(self.n_head, Band::PAST),
                },
                long: self
                    .three_level
                    .then(|| memory(self.n_head / 2, Band::long_term(low))),
                ln2: LayerNorm::new(d, device),
                pmem: (!self.has_swiglu()).then(|| {
                    PersistentMemoryConfig {
                        n_embd: d,
                        n_head: self.n_head,
                        n_layer: self.n_layer,
                        pmem_size: self.pmem_size,
                        pmem_count: self.pmem_count,
                        attn_dropout: self.attn_dropout,
                        resid_dropout: self.resid_dropout,
                        gated_keys: self.gated_keys,
                    }
                    .init(device)
                }),
                ffn: self.has_swiglu().then(|| {
                    SwiGlu::new(
                        d,
                        self.swiglu_width(),
                        self.n_layer,
                        self.resid_dropout,
                        device,
                    )
                }),
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
            long_offset: self.three_level.then(|| LongOffset {
                low,
                high,
                training: Param::from_bool(true),
            }),
        }
    }
}

/// The learned per-head scalars of one layer, in the units the paper uses. In v2 a scalar
/// the configuration replaced is empty, and the long-term memory's heads follow the
/// short-term memory's.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerHeads {
    pub layer: usize,
    /// Leaky-average decay rate `b_h` of the contextual memory's keys (`lambda = exp(-b)`);
    /// empty with gated keys.
    #[serde(deserialize_with = "floats")]
    pub leaky_decay: Vec<f32>,
    /// Kernel bandwidth `beta_h = s_h^2` of the contextual memory; empty under an adaptive
    /// bandwidth.
    #[serde(deserialize_with = "floats")]
    pub key_bandwidth: Vec<f32>,
    /// v2's adaptive bandwidth `beta1 n^alpha + beta0`: `beta0`, `beta1` and `alpha`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "floats"
    )]
    pub bandwidth_beta0: Vec<f32>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "floats"
    )]
    pub bandwidth_beta1: Vec<f32>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "floats"
    )]
    pub bandwidth_alpha: Vec<f32>,
    /// Value mix `c_h`: the weight of the present step against the next.
    #[serde(deserialize_with = "floats")]
    pub value_mix: Vec<f32>,
    /// Leaky-average decay rate of the persistent memory's keys; empty with gated keys or a
    /// SwiGLU persistent memory.
    #[serde(deserialize_with = "floats")]
    pub pmem_leaky_decay: Vec<f32>,
}

/// JSON writes a NaN (a diverged run's scalars) as `null`: read it back as NaN.
fn floats<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
    let values: Vec<Option<f32>> = serde::Deserialize::deserialize(d)?;
    Ok(values.into_iter().map(|v| v.unwrap_or(f32::NAN)).collect())
}

impl MemoryMosaic {
    /// The official parameters (`blocks.{i}.attn.*`, `blocks.{i}.pmem.*`, `ln_out.weight`,
    /// and the tied embedding as `emb.weight` or `head.weight`).
    pub fn visit_official<W: Weights>(&mut self, weights: &W) -> Result<(), W::Error> {
        for (i, block) in self.blocks.iter_mut().enumerate() {
            block
                .ln1
                .visit_official(weights, &format!("blocks.{i}.ln1.weight"))?;
            block
                .ln2
                .visit_official(weights, &format!("blocks.{i}.ln2.weight"))?;
            block
                .attn
                .visit_official(weights, &format!("blocks.{i}.attn."))?;
            if let Some(pmem) = &mut block.pmem {
                pmem.visit_official(weights, &format!("blocks.{i}.pmem."))?;
            }
        }
        weights.tied(["emb.weight", "head.weight"], &mut self.emb)?;
        self.ln_out.visit_official(weights, "ln_out.weight")
    }

    /// Per-head scalars of every layer.
    pub fn head_scalars(&self) -> Vec<LayerHeads> {
        let values = |t: Option<Tensor<1>>| {
            t.and_then(|t| t.into_data().try_to_vec_as::<f32>().ok())
                .unwrap_or_default()
        };
        self.blocks
            .iter()
            .enumerate()
            .map(|(layer, b)| {
                let memories: Vec<&ContextMemory> =
                    std::iter::once(&b.attn).chain(b.long.as_ref()).collect();
                let all = |f: &dyn Fn(&ContextMemory) -> Option<Tensor<1>>| {
                    memories
                        .iter()
                        .flat_map(|m| values(f(m)))
                        .collect::<Vec<f32>>()
                };
                let bandwidth = |f: fn(&AdaptiveBandwidth) -> Tensor<1>| {
                    all(&|m: &ContextMemory| m.bandwidth().map(f))
                };
                LayerHeads {
                    layer,
                    leaky_decay: all(&|m| m.key().leaky_decay()),
                    key_bandwidth: all(&|m| m.key().scale().map(|s| s.square())),
                    bandwidth_beta0: bandwidth(AdaptiveBandwidth::beta0),
                    bandwidth_beta1: bandwidth(AdaptiveBandwidth::beta1),
                    bandwidth_alpha: bandwidth(AdaptiveBandwidth::alpha),
                    value_mix: all(&|m| Some(m.value().mix())),
                    pmem_leaky_decay: values(b.pmem.as_ref().and_then(|p| p.key().leaky_decay())),
                }
            })
            .collect()
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    pub fn vocab_size(&self) -> usize {
        self.emb.dims()[0]
    }

    /// The same model accepting sequences of up to `len` tokens: nothing in it depends on
    /// the position, so it reads sequences longer than those it trained on.
    pub fn with_block_size(self, len: usize) -> Self {
        Self {
            block_size: len,
            ..self
        }
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
        let long_band = self.long_offset.as_ref().map(|o| o.band(&x.device()));
        for block in &self.blocks {
            x = block.forward(x, long_band);
            hidden.push(x.clone());
        }
        Ok(Forward {
            logits: self.head(x, self.emb.val().transpose()),
            hidden,
        })
    }

    /// [`MemoryMosaic::forward`] in eval mode, and what every layer read.
    pub fn read(&self, ids: Tensor<2, Int>) -> Result<Reading, InputError> {
        let [_, t] = ids.dims();
        InputError::check_length(t, self.block_size)?;
        let x = embedding(self.emb.val(), ids);
        let (x, hidden, layers) = read_blocks(x, &self.blocks, Block::read);
        let logits = self.head(x, self.emb.val().transpose());
        Ok(Reading {
            forward: Forward { logits, hidden },
            layers,
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
        linear(x, weight) * (1.0 / (d as f64).sqrt())
    }
}
