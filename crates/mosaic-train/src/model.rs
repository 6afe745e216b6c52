//! Building the configured model, turning batches into tensors, and what a run reports of the
//! model's learned per-head scalars.

use burn::tensor::{Device, Int, Tensor, TensorData};
use mosaic_data::Batch;
use mosaic_models::LanguageModel;
use serde::Serialize;

use crate::config::ModelConfig;

pub fn build(config: &ModelConfig, device: &Device) -> LanguageModel {
    match config {
        ModelConfig::MemoryMosaic(c) => LanguageModel::MemoryMosaic(c.init(device)),
        ModelConfig::Gpt(c) => LanguageModel::Gpt(c.init(device)),
    }
}

/// `(inputs, targets)`, each `(batch_size, block_size)`.
pub fn tensors(batch: &Batch, device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
    let shape = [batch.batch_size, batch.block_size];
    let ids = |v: &[u32]| {
        let v: Vec<i64> = v.iter().map(|&x| x as i64).collect();
        Tensor::from_data(TensorData::new(v, shape), device)
    };
    (ids(&batch.inputs), ids(&batch.targets))
}

/// The learned per-head scalars of one Memory Mosaic layer, in the units the paper uses.
#[derive(Debug, Clone, Serialize)]
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

/// Per-head scalars of every layer (empty for the GPT baseline).
pub fn head_summary(model: &LanguageModel) -> Vec<LayerHeads> {
    let values = |t: Tensor<1>| t.into_data().try_to_vec_as::<f32>().unwrap_or_default();
    match model {
        LanguageModel::MemoryMosaic(m) => m
            .blocks
            .iter()
            .enumerate()
            .map(|(layer, b)| LayerHeads {
                layer,
                leaky_decay: values(b.attn.key.leaky.decay()),
                key_bandwidth: values(b.attn.key.scale().square()),
                value_mix: values(b.attn.value.mix.val()),
                pmem_leaky_decay: values(b.pmem.key.leaky.decay()),
            })
            .collect(),
        LanguageModel::Gpt(_) => Vec::new(),
    }
}
