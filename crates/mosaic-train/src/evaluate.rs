//! Evaluation of a trained model over a whole split: the mean loss, the loss at each position
//! of the window (the paper's Figure 8), and the same on an out-of-distribution corpus.

use std::path::Path;

use mosaic_data::prepare::encode_corpus;
use mosaic_data::{Corpus, SequentialWindows, TokenFile, Tokenizer};
use mosaic_models::{LanguageModel, cross_entropy_per_token};
use serde::Serialize;

use crate::batch::tensors;
use crate::error::{Result, TrainError};

#[derive(Debug, Clone, Serialize)]
pub struct Losses {
    /// Mean loss over every target of every window.
    pub loss: f64,
    pub windows: usize,
    /// Mean loss at each position `0..block_size` over the windows.
    pub per_position: Vec<f64>,
}

/// Runs `model` (in eval mode) over consecutive windows of `tokens`.
pub fn losses(
    model: &LanguageModel,
    tokens: &TokenFile,
    block_size: usize,
    batch_size: usize,
) -> Result<Losses> {
    if batch_size == 0 {
        return Err(TrainError::Invalid(
            "an evaluation batch of 0 windows; give at least 1".into(),
        ));
    }
    let mut sums = vec![0.0f64; block_size];
    let mut windows = 0;
    for batch in SequentialWindows::new(tokens.clone(), block_size, batch_size)? {
        let (ids, targets) = tensors(&batch, model)
            .map_err(|e| TrainError::Invalid(format!("{}: {e}", tokens.path().display())))?;
        let per_token = cross_entropy_per_token(model.forward(ids)?.logits, targets);
        let values = per_token.into_data().try_to_vec_as::<f64>()?;
        for row in values.chunks(block_size) {
            for (s, v) in sums.iter_mut().zip(row) {
                *s += v;
            }
        }
        windows += batch.batch_size;
    }
    let per_position: Vec<f64> = sums.iter().map(|s| s / windows as f64).collect();
    Ok(Losses {
        loss: per_position.iter().sum::<f64>() / block_size as f64,
        windows,
        per_position,
    })
}

/// Tokenizes `path` with the run's tokenizer, stories separated as in training.
pub fn tokenize_file(path: &Path, tokenizer: &dyn Tokenizer, separate: bool) -> Result<TokenFile> {
    let corpus = Corpus::read(path)?;
    let separator = if separate {
        tokenizer.end_of_text()
    } else {
        None
    };
    let ids = encode_corpus(tokenizer, &corpus, separator, &|_| {})
        .map_err(|e| TrainError::Invalid(format!("{}: {e}", path.display())))?;
    Ok(TokenFile::from_ids(ids, path))
}
