//! An in-context recall probe: the paper's out-of-distribution claim in its cleanest form. In
//! each window of held-out text a random span is repeated at the end; a model that reads its
//! context can continue the copy, one that cannot only guesses. The probe scores the repeated
//! part (every token of the copy but its first), read with the whole window where the model
//! can read it and through its last training block (a one-block sliding window, GPT's only
//! reading past its block), against the same positions of the window without the copy.

use mosaic_data::{Batch, TokenFile};
use mosaic_models::{LanguageModel, cross_entropy_per_token};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::batch::tensors;
use crate::error::{Result, TrainError};

/// How the probe windows are made.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RecallOptions {
    /// Window length in training blocks.
    pub factor: usize,
    /// Tokens in the repeated span (at least 2: its first token cannot be recalled).
    pub span: usize,
    /// Windows probed at most (the first ones of the text).
    pub windows: usize,
    /// Draws the source span's place in each window.
    pub seed: u64,
    pub batch_size: usize,
}

/// The mean loss over the repeated part's tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recall {
    pub factor: usize,
    pub length: usize,
    pub span: usize,
    pub windows: usize,
    /// Read with the whole window; `None` where the model cannot read it (GPT past its block).
    pub whole: Option<f64>,
    /// Read through the window's last training block.
    pub last_block: f64,
    /// The same positions of the unchanged window, read as the model reads best (whole where
    /// it can): what the model predicts there without a copy to recall.
    pub unrepeated: f64,
}

/// The probe windows of `tokens`: `length + 1` tokens each (inputs and the last target), the
/// original and the one with a copy at the end of the span starting at a random place.
fn windows(tokens: &TokenFile, length: usize, opts: &RecallOptions) -> Result<Vec<[Vec<u32>; 2]>> {
    let span = opts.span;
    if span < 2 || 2 * span > length {
        return Err(TrainError::Invalid(format!(
            "a recall span of {span} tokens in windows of {length}: it needs at least 2 tokens and \
             room for itself and its copy"
        )));
    }
    let available = (tokens.len() - 1) / length;
    if available == 0 {
        return Err(TrainError::Invalid(format!(
            "{}: {} tokens hold no window of {length} + 1",
            tokens.path().display(),
            tokens.len()
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut out = Vec::new();
    for w in 0..available.min(opts.windows) {
        let mut original = Vec::with_capacity(length + 1);
        tokens.read(w * length, length + 1, &mut original);
        // The copy fills the window's last `span` tokens (the last one a target only); the
        // source ends before the copy starts.
        let source = rng.random_range(0..=length + 1 - 2 * span);
        let mut repeated = original.clone();
        let copy = original[source..source + span].to_vec();
        repeated[length + 1 - span..].copy_from_slice(&copy);
        out.push([original, repeated]);
    }
    Ok(out)
}

/// Runs the probe on `model` (in eval mode) over `tokens`.
pub fn recall_probe(
    model: &LanguageModel,
    tokens: &TokenFile,
    opts: &RecallOptions,
) -> Result<Recall> {
    let block = model.block_size();
    let length = opts.factor * block;
    let probe = windows(tokens, length, opts)?;
    let long = model.clone().with_context(length).ok();
    // The repeated targets are the window's last `span - 1`: inputs `length + 1 - span ..`.
    let scored = length + 1 - opts.span..length;
    let last_block = length - block;
    let mean = |model: &LanguageModel, which: usize, from: usize| -> Result<f64> {
        let rows: Vec<&[u32]> = probe.iter().map(|p| &p[which][from..]).collect();
        let range = scored.start - from..scored.end - from;
        scored_loss(model, &rows, range, opts.batch_size)
    };
    let whole = match &long {
        Some(m) => Some(mean(m, 1, 0)?),
        None => None,
    };
    let unrepeated = match &long {
        Some(m) => mean(m, 0, 0)?,
        None => mean(model, 0, last_block)?,
    };
    Ok(Recall {
        factor: opts.factor,
        length,
        span: opts.span,
        windows: probe.len(),
        whole,
        last_block: mean(model, 1, last_block)?,
        unrepeated,
    })
}

/// The mean loss at input positions `range` of `rows` (each one window's inputs and last
/// target), in batches.
fn scored_loss(
    model: &LanguageModel,
    rows: &[&[u32]],
    range: std::ops::Range<usize>,
    batch_size: usize,
) -> Result<f64> {
    let length = rows[0].len() - 1;
    let (mut sum, mut count) = (0.0, 0usize);
    for chunk in rows.chunks(batch_size.max(1)) {
        let batch = Batch {
            inputs: chunk
                .iter()
                .flat_map(|r| r[..length].iter().copied())
                .collect(),
            targets: chunk.iter().flat_map(|r| r[1..].iter().copied()).collect(),
            batch_size: chunk.len(),
            block_size: length,
        };
        let (ids, targets) = tensors(&batch, model)?;
        let losses = cross_entropy_per_token(model.forward(ids)?.logits, targets);
        let values = losses.into_data().try_to_vec_as::<f64>()?;
        for row in values.chunks(length) {
            sum += row[range.clone()].iter().sum::<f64>();
            count += range.len();
        }
    }
    Ok(sum / count as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_repeats_an_earlier_span_at_the_end() {
        let ids: Vec<u32> = (0..200).collect();
        let tokens = TokenFile::from_ids(ids, "t".as_ref());
        let opts = RecallOptions {
            factor: 1,
            span: 5,
            windows: 10,
            seed: 3,
            batch_size: 4,
        };
        let probe = windows(&tokens, 24, &opts).unwrap();
        assert_eq!(probe.len(), 8, "(200 - 1) / 24 windows");
        let mut sources = Vec::new();
        for (w, [original, repeated]) in probe.iter().enumerate() {
            let expect: Vec<u32> = (w as u32 * 24..w as u32 * 24 + 25).collect();
            assert_eq!(original, &expect);
            assert_eq!(repeated[..20], original[..20]);
            // Ids are positions here, so the copy names its source.
            let source = (repeated[20] - original[0]) as usize;
            assert!(source + 5 <= 20, "the source ends before the copy");
            assert_eq!(repeated[20..], original[source..source + 5]);
            sources.push(source);
        }
        sources.dedup();
        assert!(sources.len() > 1, "the source's place is drawn");
        let bad = RecallOptions { span: 13, ..opts };
        assert!(windows(&tokens, 24, &bad).is_err());
    }
}
