//! Token batches as the models take them.

use burn::tensor::{Int, Tensor};
use mosaic_data::Batch;
use mosaic_models::{InputError, LanguageModel};

/// `(inputs, targets)`, each `(batch_size, block_size)`, on the model's device; every id is
/// checked against the model's vocabulary.
pub fn tensors(
    batch: &Batch,
    model: &LanguageModel,
) -> Result<(Tensor<2, Int>, Tensor<2, Int>), InputError> {
    Ok((
        model.tokens(&batch.inputs, batch.batch_size)?,
        model.tokens(&batch.targets, batch.batch_size)?,
    ))
}
