//! Loading the official PyTorch implementation's weights: a safetensors file holding a
//! `state_dict` with the official parameter names, whose metadata key `config` is the model
//! configuration as JSON (`"model": "memory_mosaic"` or `"gpt"`).
//!
//! PyTorch stores a linear map `(d_out, d_in)`; we store `(d_in, d_out)`, so every matrix is
//! transposed on the way in.

use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::tensor::{Device, Tensor};
use mosaic_core::Weights;
use serde_json::Value;

use crate::config::{GptConfig, MemoryMosaicConfig};
use crate::gpt::Gpt;
use crate::memory_mosaic::MemoryMosaic;
use crate::model::{LanguageModel, ModelKind};
use crate::tensor_file::{TensorFile, TensorFileError};

#[derive(Debug, thiserror::Error)]
pub enum OfficialError {
    /// The file is not a readable safetensors file with the tensors asked for.
    #[error(transparent)]
    File(#[from] TensorFileError),
    #[error("{}: metadata `config`: {reason}", .path.display())]
    Config { path: PathBuf, reason: String },
    #[error(
        "{}: unknown model kind `{kind}` in metadata `config` (known: memory_mosaic, gpt)",
        .path.display()
    )]
    UnknownKind { path: PathBuf, kind: String },
}

/// Builds the model that `path` describes and fills it with the file's weights.
pub fn load_official(
    path: impl AsRef<Path>,
    device: &Device,
) -> Result<LanguageModel, OfficialError> {
    let file = TensorFile::open(path)?;
    let config = Meta::read(&file)?;
    match config.kind.parse::<ModelKind>() {
        Ok(ModelKind::MemoryMosaic) => Ok(LanguageModel::MemoryMosaic(load_mosaic(
            &file, &config, device,
        )?)),
        Ok(ModelKind::Gpt) => Ok(LanguageModel::Gpt(load_gpt(&file, &config, device)?)),
        Err(_) => Err(OfficialError::UnknownKind {
            path: file.path().to_path_buf(),
            kind: config.kind.clone(),
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
        pmem_size: meta.usize("pmem_size")?,
        pmem_count,
        ..MemoryMosaicConfig::new(
            meta.usize("vocab_size")?,
            meta.usize("n_layer")?,
            h,
            d,
            meta.usize("block_size")?,
        )
    };
    let mut model = config.init(device);
    model.visit_official(&OnDevice { file, device })?;
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
    model.visit_official(&OnDevice { file, device })?;
    Ok(model)
}

/// A file's tensors, read onto `device`: each parameter visited is replaced by the tensor of
/// its name, of the parameter's shape (in PyTorch's layout).
struct OnDevice<'a> {
    file: &'a TensorFile,
    device: &'a Device,
}

impl OnDevice<'_> {
    fn read<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Tensor<D>, OfficialError> {
        Ok(self.file.float(name, shape, self.device)?)
    }
}

impl Weights for OnDevice<'_> {
    type Error = OfficialError;

    fn param<const D: usize>(
        &self,
        name: &str,
        p: &mut Param<Tensor<D>>,
    ) -> Result<(), OfficialError> {
        *p = Param::from_tensor(self.read(name, p.dims())?);
        Ok(())
    }

    fn linear(&self, name: &str, p: &mut Param<Tensor<2>>) -> Result<(), OfficialError> {
        let [d_in, d_out] = p.dims();
        *p = Param::from_tensor(self.read(name, [d_out, d_in])?.transpose());
        Ok(())
    }

    fn conv1(&self, name: &str, p: &mut Param<Tensor<2>>) -> Result<(), OfficialError> {
        let [d_in, d_out] = p.dims();
        let w = self.read(name, [d_out, d_in, 1])?;
        *p = Param::from_tensor(w.reshape([d_out, d_in]).transpose());
        Ok(())
    }

    fn tied<const D: usize>(
        &self,
        names: [&str; 2],
        p: &mut Param<Tensor<D>>,
    ) -> Result<(), OfficialError> {
        let name = match self.file.contains(names[0]) {
            true => names[0],
            false => names[1],
        };
        self.param(name, p)
    }
}
