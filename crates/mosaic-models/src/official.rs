//! Loading the official PyTorch implementation's weights: a safetensors file holding a
//! `state_dict` with the official parameter names, whose metadata key `config` is the model
//! configuration as JSON (`"model": "memory_mosaic"` or `"gpt"`).
//!
//! PyTorch stores a linear map `(d_out, d_in)`; we store `(d_in, d_out)`, so every matrix is
//! transposed on the way in.

use std::path::{Path, PathBuf};

use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor};
use serde_json::Value;

use crate::config::{GptConfig, MemoryMosaicConfig};
use crate::gpt::{Gpt, GptCache};
use crate::memory_mosaic::{MemoryMosaic, MosaicCache};
use crate::tensor_file::TensorFile;
use crate::{Forward, InputError};

#[derive(Debug, thiserror::Error)]
pub enum OfficialError {
    #[error("{}: cannot read the file: {error}", .path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: not a safetensors file ({reason})", .path.display())]
    NotSafetensors { path: PathBuf, reason: String },
    #[error("{}: tensor `{name}` is missing from the file", .path.display())]
    Missing { path: PathBuf, name: String },
    #[error("{}: tensor `{name}` has shape {found:?}, expected {expected}", .path.display())]
    Shape {
        path: PathBuf,
        name: String,
        found: Vec<usize>,
        expected: String,
    },
    #[error("{}: tensor `{name}` has dtype {found}, expected {expected}", .path.display())]
    Dtype {
        path: PathBuf,
        name: String,
        found: String,
        expected: String,
    },
    #[error("{}: metadata `config`: {reason}", .path.display())]
    Config { path: PathBuf, reason: String },
    #[error(
        "{}: unknown model kind `{kind}` in metadata `config` (known: memory_mosaic, gpt)",
        .path.display()
    )]
    UnknownKind { path: PathBuf, kind: String },
}

/// What generation keeps between tokens, for either model.
#[derive(Debug, Clone)]
pub enum Cache {
    MemoryMosaic(MosaicCache),
    Gpt(GptCache),
}

impl Cache {
    /// Tokens stored.
    pub fn len(&self) -> usize {
        match self {
            Self::MemoryMosaic(c) => c.len(),
            Self::Gpt(c) => c.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Either model, as one type for code that handles both.
#[derive(Module, Debug)]
pub enum LanguageModel {
    MemoryMosaic(MemoryMosaic),
    Gpt(Gpt),
}

impl LanguageModel {
    pub fn forward(&self, ids: Tensor<2, Int>) -> Result<Forward, InputError> {
        match self {
            Self::MemoryMosaic(m) => m.forward(ids),
            Self::Gpt(m) => m.forward(ids),
        }
    }

    /// The logits of a prompt and the cache that [`LanguageModel::step`] continues from.
    pub fn prefill(&self, ids: Tensor<2, Int>) -> Result<(Tensor<3>, Cache), InputError> {
        Ok(match self {
            Self::MemoryMosaic(m) => {
                let (logits, cache) = m.prefill(ids)?;
                (logits, Cache::MemoryMosaic(cache))
            }
            Self::Gpt(m) => {
                let (logits, cache) = m.prefill(ids)?;
                (logits, Cache::Gpt(cache))
            }
        })
    }

    /// The logits `(B, 1, vocab)` of one more token per row after those in `cache`; the
    /// total may not pass `block_size`.
    pub fn step(&self, ids: Tensor<2, Int>, cache: &mut Cache) -> Result<Tensor<3>, InputError> {
        match (self, cache) {
            (Self::MemoryMosaic(m), Cache::MemoryMosaic(c)) => m.step(ids, c),
            (Self::Gpt(m), Cache::Gpt(c)) => m.step(ids, c),
            _ => Err(InputError::CacheMismatch),
        }
    }

    /// The device the parameters live on.
    pub fn device(&self) -> burn::tensor::Device {
        match self {
            Self::MemoryMosaic(m) => m.emb.val().device(),
            Self::Gpt(m) => m.wte.val().device(),
        }
    }

    pub fn block_size(&self) -> usize {
        match self {
            Self::MemoryMosaic(m) => m.block_size,
            Self::Gpt(m) => m.block_size(),
        }
    }

    /// `"memory_mosaic"` or `"gpt"`, as in the official metadata.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MemoryMosaic(_) => "memory_mosaic",
            Self::Gpt(_) => "gpt",
        }
    }
}

/// Builds the model that `path` describes and fills it with the file's weights.
pub fn load_official(
    path: impl AsRef<Path>,
    device: &Device,
) -> Result<LanguageModel, OfficialError> {
    let file = TensorFile::open(path)?;
    let config = Meta::read(&file)?;
    match config.kind.as_str() {
        "memory_mosaic" => Ok(LanguageModel::MemoryMosaic(load_mosaic(
            &file, &config, device,
        )?)),
        "gpt" => Ok(LanguageModel::Gpt(load_gpt(&file, &config, device)?)),
        kind => Err(OfficialError::UnknownKind {
            path: file.path().to_path_buf(),
            kind: kind.to_string(),
        }),
    }
}

/// The metadata `config`, checked against what this implementation computes.
struct Meta {
    kind: String,
    json: serde_json::Map<String, Value>,
    path: PathBuf,
}

impl Meta {
    fn read(file: &TensorFile) -> Result<Self, OfficialError> {
        let path = file.path().to_path_buf();
        let err = |reason: String| OfficialError::Config {
            path: path.clone(),
            reason,
        };
        let text = file
            .metadata()
            .remove("config")
            .ok_or_else(|| err("missing; the file needs the model configuration as JSON".into()))?;
        let json: serde_json::Map<String, Value> =
            serde_json::from_str(&text).map_err(|e| err(format!("not a JSON object: {e}")))?;
        let kind = json
            .get("model")
            .and_then(Value::as_str)
            .ok_or_else(|| err("no string key `model` (memory_mosaic or gpt)".into()))?
            .to_string();
        Ok(Self { kind, json, path })
    }

    fn err(&self, reason: String) -> OfficialError {
        OfficialError::Config {
            path: self.path.clone(),
            reason,
        }
    }

    fn usize(&self, key: &str) -> Result<usize, OfficialError> {
        match self.json.get(key) {
            Some(v) => v
                .as_u64()
                .filter(|&n| n > 0)
                .map(|n| n as usize)
                .ok_or_else(|| self.err(format!("`{key}` must be a positive integer, found {v}"))),
            None => Err(self.err(format!("missing key `{key}`"))),
        }
    }

    /// `(n_embd, n_head)`, the first a multiple of the second.
    fn width(&self) -> Result<(usize, usize), OfficialError> {
        let (d, h) = (self.usize("n_embd")?, self.usize("n_head")?);
        match d.is_multiple_of(h) {
            true => Ok((d, h)),
            false => Err(self.err(format!("n_embd {d} is not a multiple of n_head {h}"))),
        }
    }

    /// Options of the reference that this implementation supports in one setting only: absent
    /// is fine (the reference default), anything else is refused rather than silently ignored.
    fn require(&self, key: &str, supported: Value) -> Result<(), OfficialError> {
        match self.json.get(key) {
            Some(v) if *v != supported => {
                Err(self.err(format!("`{key}` = {v} is not supported (only {supported})")))
            }
            _ => Ok(()),
        }
    }
}

fn load_mosaic(
    file: &TensorFile,
    meta: &Meta,
    device: &Device,
) -> Result<MemoryMosaic, OfficialError> {
    for (key, value) in [
        ("v_shift", Value::from(1)),
        ("k_kernel_size", Value::from(1)),
        ("v_kernel_size", Value::from(2)),
        ("k_fe_type", Value::from("linearconv")),
        ("v_fe_type", Value::from("lowrlinearconv")),
        ("bias", Value::from(false)),
        ("pre_ln", Value::from(true)),
        ("weight_tying", Value::from(true)),
        ("attn_only", Value::from(false)),
        ("skip_tokens", Value::from(0)),
    ] {
        meta.require(key, value)?;
    }
    let (d, h) = meta.width()?;
    let pmem_count = match meta.json.get("pmem_count") {
        Some(_) => meta.usize("pmem_count")?,
        None => (0..)
            .take_while(|i| file.contains(&format!("blocks.0.pmem.pmem.M_k{i}")))
            .count()
            .max(1),
    };
    let config = MemoryMosaicConfig {
        vocab_size: meta.usize("vocab_size")?,
        n_layer: meta.usize("n_layer")?,
        n_head: h,
        n_embd: d,
        block_size: meta.usize("block_size")?,
        pmem_size: meta.usize("pmem_size")?,
        pmem_count,
        attn_dropout: 0.0,
        resid_dropout: 0.0,
    };
    let hs = d / h;
    let mut model = config.init(device);
    let vector = |name: &str| file.float(name, [h], device).map(Param::from_tensor);
    let matrix = |name: &str| {
        file.float(name, [d, d], device)
            .map(|w| Param::from_tensor(w.transpose()))
    };
    let conv = |name: &str| {
        file.float(name, [d, d, 1], device)
            .map(|w| Param::from_tensor(w.reshape([d, d]).transpose()))
    };
    let bank = |name: &str| -> Result<Param<Tensor<4>>, OfficialError> {
        let banks = (0..pmem_count)
            .map(|i| file.float(&format!("{name}{i}"), [1, h, config.pmem_size, hs], device))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Param::from_tensor(Tensor::cat(banks, 0)))
    };
    let gain = |name: &str| file.float(name, [d], device).map(Param::from_tensor);

    for (i, block) in model.blocks.iter_mut().enumerate() {
        let p = |name: &str| format!("blocks.{i}.{name}");
        block.ln1.gain = gain(&p("ln1.weight"))?;
        block.ln2.gain = gain(&p("ln2.weight"))?;

        let attn = &mut block.attn;
        attn.key.weight = conv(&p("attn.k_featurizer.conv.weight"))?;
        attn.key.leaky.theta = vector(&p("attn.leaky_key_beta"))?;
        attn.key.kappa = vector(&p("attn.kernel_beta"))?;
        attn.value.weight = matrix(&p("attn.v_featurizer.linear.weight"))?;
        attn.value.mix = vector(&p("attn.v_featurizer.coef"))?;
        attn.value.nu = vector(&p("attn.value_beta"))?;
        attn.c_proj = matrix(&p("attn.c_proj.weight"))?;

        let pmem = &mut block.pmem;
        pmem.key.weight = conv(&p("pmem.k_featurizer.conv.weight"))?;
        pmem.key.leaky.theta = vector(&p("pmem.leaky_key_beta"))?;
        pmem.key.kappa = vector(&p("pmem.kernel_beta"))?;
        pmem.nu = vector(&p("pmem.value_beta"))?;
        pmem.bank_keys = bank(&p("pmem.pmem.M_k"))?;
        pmem.bank_values = bank(&p("pmem.pmem.M_v"))?;
        pmem.c_proj = matrix(&p("pmem.c_proj.weight"))?;
    }
    let vocab = config.vocab_size;
    // The head is tied to the embedding; a file may hold either name, or both.
    let emb_name = if file.contains("emb.weight") {
        "emb.weight"
    } else {
        "head.weight"
    };
    model.emb = Param::from_tensor(file.float(emb_name, [vocab, d], device)?);
    model.ln_out.gain = gain("ln_out.weight")?;
    Ok(model)
}

fn load_gpt(file: &TensorFile, meta: &Meta, device: &Device) -> Result<Gpt, OfficialError> {
    meta.require("bias", Value::from(false))?;
    meta.require("weight_tying", Value::from(true))?;
    meta.require("gelu", Value::from("tanh"))?;
    let (d, h) = meta.width()?;
    let config = GptConfig {
        vocab_size: meta.usize("vocab_size")?,
        n_layer: meta.usize("n_layer")?,
        n_head: h,
        n_embd: d,
        block_size: meta.usize("block_size")?,
        dropout: 0.0,
    };
    let mut model = config.init(device);
    let gain = |name: &str| file.float(name, [d], device).map(Param::from_tensor);
    let linear = |name: &str, d_out: usize, d_in: usize| {
        file.float(name, [d_out, d_in], device)
            .map(|w| Param::from_tensor(w.transpose()))
    };
    for (i, block) in model.blocks.iter_mut().enumerate() {
        let p = |name: &str| format!("transformer.h.{i}.{name}");
        block.ln_1.gain = gain(&p("ln_1.weight"))?;
        block.c_attn = linear(&p("attn.c_attn.weight"), 3 * d, d)?;
        block.attn_proj = linear(&p("attn.c_proj.weight"), d, d)?;
        block.ln_2.gain = gain(&p("ln_2.weight"))?;
        block.c_fc = linear(&p("mlp.c_fc.weight"), 4 * d, d)?;
        block.mlp_proj = linear(&p("mlp.c_proj.weight"), d, 4 * d)?;
    }
    let wte_name = if file.contains("transformer.wte.weight") {
        "transformer.wte.weight"
    } else {
        "lm_head.weight"
    };
    model.wte = Param::from_tensor(file.float(wte_name, [config.vocab_size, d], device)?);
    model.wpe =
        Param::from_tensor(file.float("transformer.wpe.weight", [config.block_size, d], device)?);
    model.ln_f.gain = gain("transformer.ln_f.weight")?;
    Ok(model)
}
