//! Evaluation of a trained model: over the whole validation split the mean loss and the loss
//! at each position of the window (the paper's Figure 8), the same on an out-of-distribution
//! corpus and in windows longer than the training block, and a continuation of a prompt.
//! `mosaic eval`, `cargo xtask experiment` and a user's program all measure through
//! [`evaluate`].

use std::path::{Path, PathBuf};

use mosaic_data::prepare::encode_corpus;
use mosaic_data::{Corpus, SequentialWindows, TokenFile, Tokenizer};
use mosaic_models::{LanguageModel, cross_entropy_per_token};
use serde::{Deserialize, Serialize};

use crate::batch::tensors;
use crate::error::{Result, TrainError};
use crate::sample::{SampleOptions, generate};

/// What [`evaluate`] measures besides the validation split.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Windows evaluated together (at least 1).
    pub batch_size: usize,
    /// An out-of-distribution text, tokenized with the model's tokenizer, stories separated
    /// as in training.
    pub ood: Option<PathBuf>,
    /// Window lengths, in training blocks, at which to measure length extrapolation.
    pub extrapolate: Vec<usize>,
    /// A prompt to continue, within one training block.
    pub continuation: Option<Continuation>,
}

/// A prompt and how to continue it: `max_new_tokens` at most, and no further than the
/// training block.
#[derive(Debug, Clone)]
pub struct Continuation {
    pub prompt: String,
    pub options: SampleOptions,
}

/// What [`evaluate`] measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evaluation {
    pub val: Losses,
    pub ood: Option<Losses>,
    pub extrapolation: Vec<Extrapolation>,
    /// The prompt and its continuation, decoded.
    pub continuation: Option<String>,
}

/// The validation split in windows of `factor` training blocks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Extrapolation {
    pub factor: usize,
    pub length: usize,
    /// `None` where the model cannot read such windows (`note` says why).
    pub loss: Option<f64>,
    pub per_position: Vec<f64>,
    #[serde(default)]
    pub note: Option<String>,
}

/// Measures `model` (in eval mode) on the validation split `val` and as `opts` asks; every
/// input (the out-of-distribution text, the prompt) is read and checked before the first
/// pass. `separate`: the data marks story ends with the tokenizer's end-of-text id.
pub fn evaluate(
    model: &LanguageModel,
    val: &TokenFile,
    tokenizer: &dyn Tokenizer,
    separate: bool,
    opts: &EvalOptions,
    log: &mut dyn FnMut(&str),
) -> Result<Evaluation> {
    let block = model.block_size();
    let batch = opts.batch_size;
    check_batch(batch)?;
    let ood_tokens = match &opts.ood {
        Some(path) => {
            let tokens = tokenize_file(path, tokenizer, separate)?;
            SequentialWindows::new(tokens.clone(), block, 1)?;
            Some(tokens)
        }
        None => None,
    };
    let prompt = match &opts.continuation {
        Some(c) => Some((tokenizer.encode(&c.prompt)?, c)),
        None => None,
    };
    let val_losses = losses(model, val, block, batch)?;
    let ood = match ood_tokens {
        Some(tokens) => Some(losses(model, &tokens, block, batch)?),
        None => None,
    };
    let extrapolation = opts
        .extrapolate
        .iter()
        .map(|&factor| extrapolate(model, val, factor, batch, log))
        .collect::<Result<_>>()?;
    let continuation = match prompt {
        Some((ids, c)) => {
            let options = SampleOptions {
                max_new_tokens: c
                    .options
                    .max_new_tokens
                    .min(block.saturating_sub(ids.len())),
                ..c.options.clone()
            };
            Some(tokenizer.decode(&generate(model, &ids, &options)?)?)
        }
        None => None,
    };
    Ok(Evaluation {
        val: val_losses,
        ood,
        extrapolation,
        continuation,
    })
}

/// The validation split in windows of `factor` blocks, where the model can read them.
fn extrapolate(
    model: &LanguageModel,
    val: &TokenFile,
    factor: usize,
    batch: usize,
    log: &mut dyn FnMut(&str),
) -> Result<Extrapolation> {
    let length = factor * model.block_size();
    Ok(match model.clone().with_context(length) {
        Ok(long) => {
            log(&format!("evaluating windows of {length} tokens"));
            let l = losses(&long, val, length, (batch / factor).max(1))?;
            Extrapolation {
                factor,
                length,
                loss: Some(l.loss),
                per_position: l.per_position,
                note: None,
            }
        }
        Err(e) => Extrapolation {
            factor,
            length,
            loss: None,
            per_position: Vec::new(),
            note: Some(e.to_string()),
        },
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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
    check_batch(batch_size)?;
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

fn check_batch(batch_size: usize) -> Result<()> {
    match batch_size {
        0 => Err(TrainError::Invalid(
            "an evaluation batch of 0 windows; give at least 1".into(),
        )),
        _ => Ok(()),
    }
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
