//! Autoregressive sampling: temperature (0: greedy), top-k, a seeded generator.

use mosaic_models::{Cache, LanguageModel};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Result, TrainError};

#[derive(Debug, Clone)]
pub struct SampleOptions {
    pub max_new_tokens: usize,
    /// Divides the logits before sampling; 0 takes the most likely token every time (greedy
    /// decoding, the seed then does not matter).
    pub temperature: f64,
    /// Sample among the `k` most likely tokens only; `None` or 0: among all.
    pub top_k: Option<usize>,
    pub seed: u64,
    /// Keep each layer's memory (or keys and values) between tokens instead of recomputing
    /// the whole window: the same tokens, one retrieval per new token. Used while the text
    /// fits in `block_size`; past it the window slides and every step is recomputed.
    pub cache: bool,
}

/// Continues `prompt` by `max_new_tokens` ids; the context is the last `block_size` ids.
pub fn generate(model: &LanguageModel, prompt: &[u32], opts: &SampleOptions) -> Result<Vec<u32>> {
    generate_streaming(model, prompt, opts, &mut |_| {})
}

/// [`generate`], calling `on_token` with each id as it is drawn.
pub fn generate_streaming(
    model: &LanguageModel,
    prompt: &[u32],
    opts: &SampleOptions,
    on_token: &mut dyn FnMut(u32),
) -> Result<Vec<u32>> {
    let block_size = model.block_size();
    let invalid = |reason: String| Err(TrainError::Invalid(reason));
    if prompt.is_empty() {
        return invalid("the prompt is empty; give at least one token of text".into());
    }
    if prompt.len() > block_size {
        return invalid(format!(
            "the prompt is {} tokens, longer than the model's block_size {block_size}; shorten it",
            prompt.len()
        ));
    }
    if !(opts.temperature >= 0.0 && opts.temperature.is_finite()) {
        return invalid(format!(
            "the temperature must be 0 (greedy) or positive, got {}",
            opts.temperature
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut ids: Vec<u32> = prompt.to_vec();
    let mut cache: Option<Cache> = None;
    let tensor = |ids: &[u32]| model.tokens(ids, 1);
    for _ in 0..opts.max_new_tokens {
        // Past block_size the window slides, which a cache cannot follow: recompute.
        let logits = match (opts.cache && ids.len() <= block_size, cache.as_mut()) {
            (true, Some(c)) => model.step(tensor(&ids[ids.len() - 1..])?, c)?,
            (true, None) => {
                let (logits, c) = model.prefill(tensor(&ids)?)?;
                cache = Some(c);
                logits
            }
            (false, _) => {
                model
                    .forward(tensor(&ids[ids.len().saturating_sub(block_size)..])?)?
                    .logits
            }
        };
        let [_, t, v] = logits.dims();
        let last: Vec<f64> = logits
            .narrow(1, t - 1, 1)
            .reshape([v])
            .into_data()
            .try_to_vec_as::<f64>()?;
        let next = draw(&last, opts, &mut rng);
        ids.push(next);
        on_token(next);
    }
    Ok(ids)
}

fn draw(logits: &[f64], opts: &SampleOptions, rng: &mut ChaCha8Rng) -> u32 {
    if opts.temperature == 0.0 {
        // The first of the largest, as torch.argmax.
        let best = logits
            .iter()
            .enumerate()
            .fold(0, |b, (i, l)| if *l > logits[b] { i } else { b });
        return best as u32;
    }
    let mut scaled: Vec<f64> = logits.iter().map(|l| l / opts.temperature).collect();
    if let Some(k) = opts.top_k.filter(|&k| k > 0 && k < scaled.len()) {
        let mut sorted = scaled.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let kth = sorted[k - 1];
        for l in scaled.iter_mut().filter(|l| **l < kth) {
            *l = f64::NEG_INFINITY;
        }
    }
    let max = scaled.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = scaled.iter().map(|l| (l - max).exp()).collect();
    let total: f64 = weights.iter().sum();
    let mut u = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            return i as u32;
        }
        u -= w;
    }
    (weights.len() - 1) as u32
}
