//! Evaluation of a trained model: over the whole validation split the mean loss and the loss
//! at each position of the window (the paper's Figure 8), the same on an out-of-distribution
//! corpus and in windows longer than the training block, and a continuation of a prompt.
//! `mosaic eval`, `cargo xtask experiment` and a user's program all measure through
//! [`evaluate`].

use std::path::{Path, PathBuf};

use mosaic_data::prepare::encode_corpus;
use mosaic_data::{Batch, Corpus, SequentialWindows, TokenFile, Tokenizer};
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

/// The validation split in windows of `factor` training blocks, read whole, and the same
/// tokens from position `block` on read through a sliding window of one block.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Extrapolation {
    pub factor: usize,
    pub length: usize,
    /// `None` where the model cannot read such windows (`note` says why).
    pub loss: Option<f64>,
    pub per_position: Vec<f64>,
    #[serde(default)]
    pub note: Option<String>,
    /// The mean loss at positions `block..length` of the same windows, each token read with
    /// at most one block of context ([`sliding_losses`]); every model can be read so.
    #[serde(default)]
    pub sliding_per_position: Vec<f64>,
    /// The sliding reads' step: a scored token sees between `block - stride` and `block - 1`
    /// tokens before it.
    #[serde(default)]
    pub sliding_stride: usize,
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

/// The validation split in windows of `factor` blocks, where the model can read them, and
/// the same windows through a one-block sliding window.
fn extrapolate(
    model: &LanguageModel,
    val: &TokenFile,
    factor: usize,
    batch: usize,
    log: &mut dyn FnMut(&str),
) -> Result<Extrapolation> {
    let block = model.block_size();
    let length = factor * block;
    let stride = sliding_stride(block);
    log(&format!(
        "evaluating windows of {length} tokens through a sliding window of {block}"
    ));
    let sliding_per_position = sliding_losses(model, val, length, stride, batch)?;
    let mut e = Extrapolation {
        factor,
        length,
        loss: None,
        per_position: Vec::new(),
        note: None,
        sliding_per_position,
        sliding_stride: stride,
    };
    match model.clone().with_context(length) {
        Ok(long) => {
            log(&format!("evaluating windows of {length} tokens"));
            let l = losses(&long, val, length, (batch / factor).max(1))?;
            e.loss = Some(l.loss);
            e.per_position = l.per_position;
        }
        Err(err) => e.note = Some(err.to_string()),
    }
    Ok(e)
}

/// The step of the sliding reads: the largest divisor of `block` up to a quarter of it, so
/// that every scored token has at least three quarters of a block before it.
fn sliding_stride(block: usize) -> usize {
    (1..=(block / 4).max(1))
        .rev()
        .find(|s| block.is_multiple_of(*s))
        .unwrap_or(1)
}

/// The windows of `length` tokens that [`losses`] reads (consecutive, from the start), with
/// each target from position `block` on predicted from one training block of context at most:
/// reads of `block` tokens start every `stride` positions from `stride`, and each scores its
/// last `stride` targets. Returns the mean loss at positions `block..length` of the windows
/// (index 0 is position `block`). `stride` must divide `block`.
pub fn sliding_losses(
    model: &LanguageModel,
    tokens: &TokenFile,
    length: usize,
    stride: usize,
    batch_size: usize,
) -> Result<Vec<f64>> {
    check_batch(batch_size)?;
    let block = model.block_size();
    if stride == 0 || !block.is_multiple_of(stride) || length <= block {
        return Err(TrainError::Invalid(format!(
            "a sliding read of windows of {length} tokens by {block} every {stride}: the \
             stride must divide the block, and the windows be longer than it"
        )));
    }
    let windows = SequentialWindows::new(tokens.clone(), length, 1)?.num_windows();
    let starts: Vec<usize> = (0..windows)
        .flat_map(|w| {
            (stride..=length - block)
                .step_by(stride)
                .map(move |s| w * length + s)
        })
        .collect();
    let mut sums = vec![0.0f64; length - block];
    let mut scratch = Vec::with_capacity(block + 1);
    for chunk in starts.chunks(batch_size) {
        let mut batch = Batch {
            inputs: Vec::with_capacity(chunk.len() * block),
            targets: Vec::with_capacity(chunk.len() * block),
            batch_size: chunk.len(),
            block_size: block,
        };
        for &start in chunk {
            scratch.clear();
            tokens.read(start, block + 1, &mut scratch);
            batch.inputs.extend_from_slice(&scratch[..block]);
            batch.targets.extend_from_slice(&scratch[1..]);
        }
        let (ids, targets) = tensors(&batch, model)
            .map_err(|e| TrainError::Invalid(format!("{}: {e}", tokens.path().display())))?;
        let per_token = cross_entropy_per_token(model.forward(ids)?.logits, targets);
        let values = per_token.into_data().try_to_vec_as::<f64>()?;
        for (row, &start) in values.chunks(block).zip(chunk) {
            let at = start % length - stride;
            for (s, v) in sums[at..at + stride].iter_mut().zip(&row[block - stride..]) {
                *s += v;
            }
        }
    }
    Ok(sums.iter().map(|s| s / windows as f64).collect())
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
