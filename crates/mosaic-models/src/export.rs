//! Writing a model in the official PyTorch implementation's format, the inverse of
//! [`crate::load_official`]: `model.safetensors` holds its `state_dict` under the official
//! names (each tied tensor under both of its names, as PyTorch lists it), in PyTorch's layout,
//! with the configuration as the metadata `config` that `load_official` reads; `config.json`
//! holds the official model's constructor arguments (`StackAssoMem(**config)`, or the GPT
//! baseline's config object). The names come from the same `visit_official` that loading
//! runs, so the two cannot drift apart. v1 only: the official code has no v2.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, Param};
use burn::tensor::Tensor;
use mosaic_core::Weights;
use safetensors::tensor::{Dtype, TensorView};
use serde_json::{Value, json};

use crate::config::{GptConfig, MemoryMosaicConfig};
use crate::model::{LanguageModel, ModelConfig};

/// The file of the `state_dict` and the file of the constructor arguments.
pub const EXPORT_WEIGHTS: &str = "model.safetensors";
pub const EXPORT_CONFIG: &str = "config.json";

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(
        "a Memory Mosaics v2 model ({0}) has no counterpart in the official code, which \
         implements v1 only: export a v1 model"
    )]
    V2(String),
    #[error("the model does not have the configuration given for it ({0})")]
    Mismatch(String),
    #[error("{}: cannot write ({error})", .path.display())]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot serialise the tensors: {0}")]
    Serialise(String),
}

/// Writes `model` (of configuration `config`) into `dir` (created if needed) as
/// [`EXPORT_WEIGHTS`] and [`EXPORT_CONFIG`].
pub fn export_official(
    model: &LanguageModel,
    config: &ModelConfig,
    dir: &Path,
) -> Result<(), ExportError> {
    let (metadata, constructor) = match config {
        ModelConfig::MemoryMosaic(c) => mosaic_config(c)?,
        ModelConfig::Gpt(c) => gpt_config(c),
    };
    if model.num_params() != config.num_params() || model.kind() != config.kind() {
        return Err(ExportError::Mismatch(format!(
            "a {} of {} parameters, the configuration a {} of {}",
            model.kind(),
            model.num_params(),
            config.kind(),
            config.num_params()
        )));
    }
    let recorded = Recorder::default();
    match model.clone() {
        LanguageModel::MemoryMosaic(mut m) => m.visit_official(&recorded),
        LanguageModel::Gpt(mut m) => m.visit_official(&recorded),
    }
    .unwrap_or_else(|never| match never {});
    let tensors = recorded.tensors.into_inner();
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, shape, values)| {
            let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name, shape, bytes)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, shape, data)| {
            TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| ExportError::Serialise(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let info = HashMap::from([("config".to_string(), metadata.to_string())]);
    let file = safetensors::serialize(views, Some(info))
        .map_err(|e| ExportError::Serialise(e.to_string()))?;
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&path, bytes))
            .map_err(|error| ExportError::Write { path, error })
    };
    write(EXPORT_WEIGHTS, &file)?;
    let pretty = serde_json::to_vec_pretty(&constructor).expect("a JSON value serialises");
    write(EXPORT_CONFIG, &pretty)
}

/// The metadata `config` (as the reference files carry it) and the constructor arguments of
/// `StackAssoMem`.
fn mosaic_config(c: &MemoryMosaicConfig) -> Result<(Value, Value), ExportError> {
    let v2: Vec<&str> = [
        (c.adaptive_bandwidth, "adaptive bandwidth"),
        (c.gated_keys, "gated keys"),
        (c.three_level, "three-level memory"),
        (c.swiglu, "SwiGLU persistent part"),
    ]
    .into_iter()
    .filter_map(|(on, what)| on.then_some(what))
    .collect();
    if !v2.is_empty() {
        return Err(ExportError::V2(v2.join(", ")));
    }
    let fixed = json!({
        "v_shift": 1, "k_kernel_size": 1, "v_kernel_size": 2, "k_fe_type": "linearconv",
        "v_fe_type": "lowrlinearconv", "bias": false, "pre_ln": true, "weight_tying": true,
        "skip_tokens": 0, "attn_only": false,
    });
    let sizes = json!({
        "vocab_size": c.vocab_size, "n_layer": c.n_layer, "n_head": c.n_head,
        "n_embd": c.n_embd, "block_size": c.block_size, "pmem_size": c.pmem_size,
        "pmem_count": c.pmem_count,
    });
    let mut metadata = json!({"model": "memory_mosaic"});
    let mut constructor = json!({"ic_dropout": c.attn_dropout, "hd_dropout": c.resid_dropout});
    for part in [&sizes, &fixed] {
        for (k, v) in part.as_object().expect("an object") {
            metadata[k] = v.clone();
            constructor[k] = v.clone();
        }
    }
    Ok((metadata, constructor))
}

/// The metadata `config` and the fields of the GPT baseline's config object.
fn gpt_config(c: &GptConfig) -> (Value, Value) {
    let sizes = json!({
        "vocab_size": c.vocab_size, "n_layer": c.n_layer, "n_head": c.n_head,
        "n_embd": c.n_embd, "block_size": c.block_size, "bias": false,
    });
    let mut metadata = json!({"model": "gpt", "weight_tying": true, "gelu": "tanh"});
    let mut constructor = json!({"dropout": c.dropout});
    for (k, v) in sizes.as_object().expect("an object") {
        metadata[k] = v.clone();
        constructor[k] = v.clone();
    }
    (metadata, constructor)
}

/// A tensor as the file holds it: name, shape, values.
type Named = (String, Vec<usize>, Vec<f32>);

/// Records each parameter visited, in PyTorch's layout.
#[derive(Default)]
struct Recorder {
    tensors: RefCell<Vec<Named>>,
}

impl Recorder {
    fn record<const D: usize>(&self, name: &str, t: Tensor<D>) {
        let shape = t.dims().to_vec();
        let values = t
            .into_data()
            .try_to_vec_as::<f32>()
            .expect("a float tensor reads as f32");
        self.tensors
            .borrow_mut()
            .push((name.to_string(), shape, values));
    }
}

impl Weights for Recorder {
    type Error = std::convert::Infallible;

    fn param<const D: usize>(
        &self,
        name: &str,
        p: &mut Param<Tensor<D>>,
    ) -> Result<(), Self::Error> {
        self.record(name, p.val());
        Ok(())
    }

    fn linear(&self, name: &str, p: &mut Param<Tensor<2>>) -> Result<(), Self::Error> {
        self.record(name, p.val().transpose());
        Ok(())
    }

    fn conv1(&self, name: &str, p: &mut Param<Tensor<2>>) -> Result<(), Self::Error> {
        let [d_in, d_out] = p.dims();
        self.record(name, p.val().transpose().reshape([d_out, d_in, 1]));
        Ok(())
    }

    fn tied<const D: usize>(
        &self,
        names: [&str; 2],
        p: &mut Param<Tensor<D>>,
    ) -> Result<(), Self::Error> {
        for name in names {
            self.record(name, p.val());
        }
        Ok(())
    }
}
