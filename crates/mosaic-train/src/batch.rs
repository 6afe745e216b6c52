//! Token batches as the models take them.

use burn::tensor::{Device, Int, Tensor, TensorData};
use mosaic_data::Batch;

/// `(inputs, targets)`, each `(batch_size, block_size)`.
pub fn tensors(batch: &Batch, device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
    let shape = [batch.batch_size, batch.block_size];
    let ids = |v: &[u32]| {
        let v: Vec<i64> = v.iter().map(|&x| x as i64).collect();
        Tensor::from_data(TensorData::new(v, shape), device)
    };
    (ids(&batch.inputs), ids(&batch.targets))
}
