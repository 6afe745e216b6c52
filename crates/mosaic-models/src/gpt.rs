//! The GPT-2 baseline, nanoGPT's model without biases: learned positions, causal softmax
//! attention with `1/sqrt(hs)`, tanh-GELU MLP of width `4d`, tied embeddings.

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::module::embedding;
use burn::tensor::{Device, Distribution, Int, Tensor};
use mosaic_core::Band;
use mosaic_core::Weights;
use mosaic_core::heads::{merge_heads, normal_weight, split_heads};
use mosaic_core::ops::gelu_tanh;
use mosaic_core::ops::linear;
use mosaic_core::retrieval::{band_weights, masked_retrieval, open_retrieval};

use crate::Forward;
use crate::InputError;
use crate::config::GptConfig;
use crate::laid_out;
use crate::layer_norm::LayerNorm;
use crate::reading::{LayerReading, MemoryReading, Reading, read_blocks};

/// nanoGPT's initialisation scale.
const INIT_STD: f64 = 0.02;

#[derive(Module, Debug)]
pub(crate) struct GptBlock {
    ln_1: LayerNorm,
    /// Query, key and value maps side by side, `(d, 3d)`.
    c_attn: Param<Tensor<2>>,
    attn_proj: Param<Tensor<2>>,
    ln_2: LayerNorm,
    c_fc: Param<Tensor<2>>,
    mlp_proj: Param<Tensor<2>>,
    attn_dropout: Dropout,
    resid_dropout: Dropout,
    n_head: usize,
}

impl GptBlock {
    /// nanoGPT's parameters under `prefix` (`transformer.h.{i}.`).
    fn visit_official<W: Weights>(&mut self, weights: &W, prefix: &str) -> Result<(), W::Error> {
        let p = |name: &str| format!("{prefix}{name}");
        self.ln_1.visit_official(weights, &p("ln_1.weight"))?;
        weights.linear(&p("attn.c_attn.weight"), &mut self.c_attn)?;
        weights.linear(&p("attn.c_proj.weight"), &mut self.attn_proj)?;
        self.ln_2.visit_official(weights, &p("ln_2.weight"))?;
        weights.linear(&p("mlp.c_fc.weight"), &mut self.c_fc)?;
        weights.linear(&p("mlp.c_proj.weight"), &mut self.mlp_proj)
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let (q, k, v) = self.qkv(self.ln_1.forward(x.clone()));
        let y = self.attend(q, k, v);
        self.mlp(x + self.project(y))
    }

    /// The forward pass, also returning the block's keys and values `(B, H, T, hs)`.
    fn prefill(&self, x: Tensor<3>) -> (Tensor<3>, KeyValues) {
        let (q, k, v) = self.qkv(self.ln_1.forward(x.clone()));
        let y = self.attend(q, k.clone(), v.clone());
        (self.mlp(x + self.project(y)), KeyValues { k, v })
    }

    /// One new position `x` `(B, 1, d)` after those in `cache`, which it joins.
    fn step(&self, x: Tensor<3>, cache: &mut KeyValues) -> Tensor<3> {
        let (q, k, v) = self.qkv(self.ln_1.forward(x.clone()));
        cache.k = Tensor::cat(vec![cache.k.clone(), k], 2);
        cache.v = Tensor::cat(vec![cache.v.clone(), v], 2);
        // The newest position may read every cached one: no mask.
        let scale = 1.0 / (q.dims()[3] as f64).sqrt();
        let y = open_retrieval(q, cache.k.clone(), cache.v.clone(), scale);
        self.mlp(x + self.project(y))
    }

    fn qkv(&self, x: Tensor<3>) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        let d = x.dims()[2];
        // One product per third of the weight (a view, read in place) rather than slices of
        // one `(B, T, 3d)` output: each slice's backward would clear and fill a gradient the
        // size of the whole output.
        let w = self.c_attn.val();
        let heads = |i: usize| {
            let part = linear(x.clone(), w.clone().narrow(1, i * d, d));
            split_heads(part, self.n_head)
        };
        (heads(0), heads(1), heads(2))
    }

    /// [`GptBlock::forward`], and the attention's weights `(B, H, T, T)`.
    fn read(&self, x: Tensor<3>) -> (Tensor<3>, LayerReading) {
        let (q, k, v) = self.qkv(self.ln_1.forward(x.clone()));
        let scale = 1.0 / (q.dims()[3] as f64).sqrt();
        let weights = band_weights(q.clone() * scale, k.clone(), Band::CAUSAL);
        let y = self.attend(q, k, v);
        let memories = vec![MemoryReading {
            name: "attention",
            weights,
            gates: None,
        }];
        let layer = LayerReading {
            memories,
            bank: None,
        };
        (self.mlp(x + self.project(y)), layer)
    }

    /// Causal softmax attention, `(B, H, T, hs)` each.
    fn attend(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
        let scale = 1.0 / (q.dims()[3] as f64).sqrt();
        masked_retrieval(q, k, v, scale, Band::CAUSAL, &self.attn_dropout)
    }

    fn project(&self, y: Tensor<4>) -> Tensor<3> {
        self.resid_dropout
            .forward(linear(merge_heads(y), self.attn_proj.val()))
    }

    /// `x + MLP(LN2(x))`.
    fn mlp(&self, x: Tensor<3>) -> Tensor<3> {
        let h = gelu_tanh(linear(self.ln_2.forward(x.clone()), self.c_fc.val()));
        x + self.resid_dropout.forward(linear(h, self.mlp_proj.val()))
    }
}

/// One block's keys and values so far, `(B, H, n, hs)` each.
#[derive(Debug, Clone)]
struct KeyValues {
    k: Tensor<4>,
    v: Tensor<4>,
}

/// GPT's key/value cache for generation: every block's keys and values of the tokens so far.
#[derive(Debug, Clone)]
pub struct GptCache {
    blocks: Vec<KeyValues>,
    /// The tied head `wte^T`, `(d, vocab)`, laid out once (see `MosaicCache`).
    head: Tensor<2>,
}

impl GptCache {
    /// Tokens stored.
    pub fn len(&self) -> usize {
        self.blocks.first().map_or(0, |b| b.k.dims()[2])
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Module, Debug)]
pub struct Gpt {
    /// Token embedding `(vocab, d)`, also the output head.
    wte: Param<Tensor<2>>,
    /// Position embedding `(block_size, d)`.
    wpe: Param<Tensor<2>>,
    blocks: Vec<GptBlock>,
    ln_f: LayerNorm,
    dropout: Dropout,
}

impl GptConfig {
    /// nanoGPT's initialisation: N(0, 0.02) everywhere, residual projections
    /// N(0, 0.02 / sqrt(2 n_layer)). Panics on a config that [`GptConfig::validate`] refuses.
    pub fn init(&self, device: &Device) -> Gpt {
        let d = self.n_embd;
        assert!(
            d.is_multiple_of(self.n_head),
            "n_embd {d} is not a multiple of n_head {}",
            self.n_head
        );
        let proj_std = INIT_STD / (2.0 * self.n_layer as f64).sqrt();
        let normal = |shape: [usize; 2]| {
            Param::from_tensor(Tensor::random(
                shape,
                Distribution::Normal(0.0, INIT_STD),
                device,
            ))
        };
        let blocks = (0..self.n_layer)
            .map(|_| GptBlock {
                ln_1: LayerNorm::new(d, device),
                c_attn: normal_weight(d, 3 * d, INIT_STD, device),
                attn_proj: normal_weight(d, d, proj_std, device),
                ln_2: LayerNorm::new(d, device),
                c_fc: normal_weight(d, 4 * d, INIT_STD, device),
                mlp_proj: normal_weight(4 * d, d, proj_std, device),
                attn_dropout: DropoutConfig::new(self.dropout).init(),
                resid_dropout: DropoutConfig::new(self.dropout).init(),
                n_head: self.n_head,
            })
            .collect();
        Gpt {
            wte: normal([self.vocab_size, d]),
            wpe: normal([self.block_size, d]),
            blocks,
            ln_f: LayerNorm::new(d, device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

impl Gpt {
    /// nanoGPT's parameters (`transformer.h.{i}.*`, `transformer.wpe.weight`,
    /// `transformer.ln_f.weight`, and the tied embedding as `transformer.wte.weight` or
    /// `lm_head.weight`).
    pub fn visit_official<W: Weights>(&mut self, weights: &W) -> Result<(), W::Error> {
        for (i, block) in self.blocks.iter_mut().enumerate() {
            block.visit_official(weights, &format!("transformer.h.{i}."))?;
        }
        weights.tied(["transformer.wte.weight", "lm_head.weight"], &mut self.wte)?;
        weights.param("transformer.wpe.weight", &mut self.wpe)?;
        self.ln_f.visit_official(weights, "transformer.ln_f.weight")
    }

    pub fn block_size(&self) -> usize {
        self.wpe.dims()[0]
    }

    pub fn vocab_size(&self) -> usize {
        self.wte.dims()[0]
    }

    /// The device the parameters live on.
    pub fn device(&self) -> Device {
        self.wte.val().device()
    }

    /// `ids`: `(B, T)` token ids with `T <= block_size`.
    pub fn forward(&self, ids: Tensor<2, Int>) -> Result<Forward, InputError> {
        let mut x = self.embed(ids, 0)?;
        let mut hidden = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            x = block.forward(x);
            hidden.push(x.clone());
        }
        Ok(Forward {
            logits: self.head(x, self.wte.val().transpose()),
            hidden,
        })
    }

    /// [`Gpt::forward`], and what every layer's attention read.
    pub fn read(&self, ids: Tensor<2, Int>) -> Result<Reading, InputError> {
        let (x, hidden, layers) = read_blocks(self.embed(ids, 0)?, &self.blocks, GptBlock::read);
        let logits = self.head(x, self.wte.val().transpose());
        Ok(Reading {
            forward: Forward { logits, hidden },
            layers,
        })
    }

    /// The logits of a prompt `(B, T)`, as [`Gpt::forward`], and the key/value cache that
    /// [`Gpt::step`] continues from.
    pub fn prefill(&self, ids: Tensor<2, Int>) -> Result<(Tensor<3>, GptCache), InputError> {
        let mut x = self.embed(ids, 0)?;
        let mut blocks = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            let (y, kv) = block.prefill(x);
            x = y;
            blocks.push(kv);
        }
        let head = laid_out(self.wte.val().transpose());
        let logits = self.head(x, head.clone());
        Ok((logits, GptCache { blocks, head }))
    }

    /// The logits `(B, 1, vocab)` of one more token per row, `ids` `(B, 1)`, after those in
    /// `cache`.
    pub fn step(&self, ids: Tensor<2, Int>, cache: &mut GptCache) -> Result<Tensor<3>, InputError> {
        let mut x = self.embed(ids, cache.len())?;
        for (block, kv) in self.blocks.iter().zip(&mut cache.blocks) {
            x = block.step(x, kv);
        }
        Ok(self.head(x, cache.head.clone()))
    }

    /// Token plus position embeddings of `ids` placed at positions `start..`.
    fn embed(&self, ids: Tensor<2, Int>, start: usize) -> Result<Tensor<3>, InputError> {
        let [_, t] = ids.dims();
        InputError::check_length(start + t, self.block_size())?;
        if t == 0 {
            return Err(InputError::Empty);
        }
        let pos = self.wpe.val().narrow(0, start, t).unsqueeze::<3>();
        Ok(self.dropout.forward(embedding(self.wte.val(), ids) + pos))
    }

    fn head(&self, x: Tensor<3>, weight: Tensor<2>) -> Tensor<3> {
        linear(self.ln_f.forward(x), weight)
    }
}
