//! RegBench training and evaluation: the benchmark's recipe (AdamW, weight decay 0.1, batch
//! 32, 200 epochs over N fixed sequences, warm-up from 1e-6 over 10 % of the steps then cosine
//! to 0.1 lr, the checkpoint with the best validation loss), and the pooled accuracy and TVD
//! of a model's next-token distributions on test automata.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use mosaic_data::regbench::{Example, PAD, Score, VOCAB, example, score};
use mosaic_models::{GptConfig, LanguageModel, MemoryMosaicConfig, ModelConfig, cross_entropy};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::engine::{Engine, Recipe, gradients};
use crate::error::{Result, TrainError};
use crate::optim::AdamW;
use crate::precision::Precision;
use crate::schedule::{Schedule, Warmup};

/// Longest input: 19 strings of 49 letters and 18 separators, less the last token.
pub const MAX_INPUT: usize = 19 * 49 + 18 - 1;

/// The benchmark's training protocol.
#[derive(Debug, Clone)]
pub struct Protocol {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub grad_clip: f64,
    /// Validation loss every this many epochs (and after the last); the best is kept.
    pub eval_every: usize,
    pub seed: u64,
}

impl Protocol {
    /// The benchmark's protocol at learning rate `lr`.
    pub fn paper(lr: f64) -> Self {
        Self {
            epochs: 200,
            batch_size: 32,
            lr,
            weight_decay: 0.1,
            grad_clip: 1.0,
            eval_every: 10,
            seed: 0,
        }
    }

    /// The optimisation of a run of `total` steps: warm-up from 1e-6 over the first 10 % of
    /// the steps, then a cosine down to 0.1 lr; AdamW (0.9, 0.999).
    pub fn recipe(&self, total: usize) -> Recipe {
        Recipe {
            schedule: Schedule::WarmupCosine {
                peak: self.lr,
                min: 0.1 * self.lr,
                warmup: (total as f64 * 0.1).ceil().max(1.0) as usize,
                decay_end: total,
                from: Warmup::From(1e-6),
            },
            optimizer: AdamW::new(self.weight_decay),
            grad_clip: self.grad_clip,
            seed: self.seed,
            precision: Precision::F32,
        }
    }
}

/// The paper's Memory Mosaic for RegBench: d 128, 8 heads, 2 layers, pmem_size 448, dropout
/// 0.05.
pub fn mosaic_config() -> MemoryMosaicConfig {
    MemoryMosaicConfig {
        attn_dropout: 0.05,
        resid_dropout: 0.05,
        ..MemoryMosaicConfig::new(VOCAB, 2, 8, 128, MAX_INPUT)
    }
}

/// [`mosaic_config`] with Memory Mosaics v2's three changes, its short- and long-term memories
/// scaled to the longest input as [`MemoryMosaicConfig::scaled_three_level`] says.
pub fn mosaic_v2_config() -> MemoryMosaicConfig {
    MemoryMosaicConfig {
        adaptive_bandwidth: true,
        gated_keys: true,
        three_level: true,
        ..mosaic_config()
    }
    .scaled_three_level()
}

/// A 2-layer GPT whose width (a multiple of 8) brings its parameter count nearest to the
/// Memory Mosaic's: its position table makes the same width larger.
pub fn gpt_config_matching(params: usize) -> GptConfig {
    (8..=256)
        .step_by(8)
        .map(|d| GptConfig {
            vocab_size: VOCAB,
            n_layer: 2,
            n_head: 8,
            n_embd: d,
            block_size: MAX_INPUT,
            dropout: 0.05,
        })
        .min_by_key(|c| c.num_params().abs_diff(params))
        .expect("a candidate width")
}

/// `count` examples from their own seeded stream (training, validation and test sets use
/// different seeds, so they share no automaton).
pub fn examples(count: usize, seed: u64) -> Vec<Example> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count).map(|_| example(&mut rng)).collect()
}

/// Inputs padded with `.` to the longest in the batch, and targets with -1 where there is
/// nothing to predict (separators and padding).
pub fn padded(batch: &[&Example], device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
    let t = batch.iter().map(|e| e.inputs().len()).max().unwrap_or(1);
    let mut ids = Vec::with_capacity(batch.len() * t);
    let mut targets = Vec::with_capacity(batch.len() * t);
    for e in batch {
        let n = e.inputs().len();
        ids.extend(
            e.inputs()
                .iter()
                .map(|&x| x as i64)
                .chain(std::iter::repeat_n(PAD as i64, t - n)),
        );
        targets.extend(
            e.targets()
                .into_iter()
                .chain(std::iter::repeat_n(-1, t - n)),
        );
    }
    (
        Tensor::from_data(TensorData::new(ids, [batch.len(), t]), device),
        Tensor::from_data(TensorData::new(targets, [batch.len(), t]), device),
    )
}

/// Sequences per forward pass. A batch is sorted by length and cut into groups of this many,
/// each padded only to its own longest sequence: the models are causal and padding comes
/// last, so the summed gradients (and losses) are the padded batch's, at about 60 % of the
/// cost on RegBench's lengths.
pub const GROUP: usize = 8;

fn target_count(examples: &[&Example]) -> usize {
    examples
        .iter()
        .map(|e| e.targets().iter().filter(|&&t| t >= 0).count())
        .sum()
}

/// The batch sorted by length and cut into groups of `group`, each with its share of the
/// batch's unmasked targets: the weights that make the groups' summed losses the batch's mean.
fn length_groups<'a>(batch: &[&'a Example], group: usize) -> (Vec<Vec<&'a Example>>, Vec<f64>) {
    let sorted = by_length(batch.iter().copied());
    let total = target_count(&sorted).max(1);
    sorted
        .chunks(group.max(1))
        .filter(|part| target_count(part) > 0)
        .map(|part| (part.to_vec(), target_count(part) as f64 / total as f64))
        .unzip()
}

/// The masked cross-entropy of one padded group.
fn group_loss(model: &LanguageModel, part: &[&Example]) -> Result<Tensor<1>> {
    let (ids, targets) = padded(part, &model.device());
    Ok(cross_entropy(model.forward(ids)?.logits, targets))
}

/// The gradients of the batch's mean loss over its unmasked targets, computed `group`
/// sequences at a time (shortest first).
pub fn batch_gradients(
    model: &LanguageModel,
    batch: &[&Example],
    group: usize,
) -> Result<GradientsParams> {
    let (parts, weights) = length_groups(batch, group);
    let (grads, _) = gradients(model, &weights, |m, i| group_loss(m, &parts[i]))?;
    Ok(grads)
}

/// Mean loss over the examples' unmasked targets.
pub fn loss(model: &LanguageModel, examples: &[Example], batch_size: usize) -> Result<f64> {
    let device = model.device();
    let (mut sum, mut count) = (0.0, 0usize);
    for refs in by_length(examples).chunks(batch_size) {
        let (ids, targets) = padded(refs, &device);
        let n = target_count(refs);
        if n == 0 {
            continue;
        }
        let logits = model.forward(ids)?.logits;
        sum += cross_entropy(logits, targets).into_scalar::<f64>() * n as f64;
        count += n;
    }
    Ok(sum / count.max(1) as f64)
}

/// Pooled accuracy and TVD of the model's next-token distributions.
pub fn evaluate(model: &LanguageModel, examples: &[Example], batch_size: usize) -> Result<Score> {
    let device = model.device();
    let mut total = Score::default();
    for chunk in by_length(examples).chunks(batch_size) {
        // Sequences of one token have nothing to predict (and a model takes no empty input).
        if chunk.iter().all(|e| e.inputs().is_empty()) {
            continue;
        }
        let (ids, _) = padded(chunk, &device);
        let [_, t] = ids.dims();
        let probs = softmax(model.forward(ids)?.logits, 2);
        let values: Vec<f64> = probs.into_data().try_to_vec_as::<f64>()?;
        for (i, e) in chunk.iter().enumerate() {
            let n = e.inputs().len();
            let preds: Vec<[f64; VOCAB]> = (0..n)
                .map(|p| {
                    let start = (i * t + p) * VOCAB;
                    values[start..start + VOCAB]
                        .try_into()
                        .expect("VOCAB values")
                })
                .collect();
            total.add(score(&e.automaton, e.inputs(), &preds));
        }
    }
    Ok(total)
}

/// The examples shortest first, so that batches cut from them pad little (losses and scores
/// are sums over positions, so the order does not change them).
fn by_length<'a>(examples: impl IntoIterator<Item = &'a Example>) -> Vec<&'a Example> {
    let mut sorted: Vec<&Example> = examples.into_iter().collect();
    sorted.sort_by_key(|e| e.inputs().len());
    sorted
}

pub struct Trained {
    pub model: LanguageModel,
    pub best_val_loss: f64,
    pub best_epoch: usize,
}

/// Trains `config` on `train` with `protocol`, keeping the model with the best validation
/// loss; `on_epoch(epoch, val_loss, seconds)` after each validation, with the seconds spent
/// training and validating since the previous one.
pub fn train(
    config: &ModelConfig,
    train: &[Example],
    val: &[Example],
    protocol: &Protocol,
    device: &Device,
    on_epoch: &mut dyn FnMut(usize, f64, [f64; 2]),
) -> Result<Trained> {
    if protocol.epochs == 0 || protocol.batch_size == 0 || protocol.eval_every == 0 {
        return Err(TrainError::Invalid(
            "RegBench's epochs, batch size and validation interval must be at least 1".into(),
        ));
    }
    if train.is_empty() {
        return Err(TrainError::Invalid(
            "RegBench has no training examples".into(),
        ));
    }
    let device = device.clone().autodiff();
    device.seed(protocol.seed);
    let per_epoch = train.len().div_ceil(protocol.batch_size);
    let recipe = protocol.recipe(per_epoch * protocol.epochs);
    let mut engine = Engine::new(config.init(&device), recipe, &device);
    let mut rng = ChaCha8Rng::seed_from_u64(protocol.seed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut best: Option<Trained> = None;
    let mut since = std::time::Instant::now();
    for epoch in 1..=protocol.epochs {
        order.shuffle(&mut rng);
        for chunk in order.chunks(protocol.batch_size) {
            let batch: Vec<&Example> = chunk.iter().map(|&i| &train[i]).collect();
            let (parts, weights) = length_groups(&batch, GROUP);
            engine.train_step(&weights, |m, i| group_loss(m, &parts[i]))?;
        }
        if epoch % protocol.eval_every == 0 || epoch == protocol.epochs {
            let trained = since.elapsed().as_secs_f64();
            let eval_model = engine.model().valid();
            let val_loss = loss(&eval_model, val, protocol.batch_size)?;
            on_epoch(
                epoch,
                val_loss,
                [trained, since.elapsed().as_secs_f64() - trained],
            );
            since = std::time::Instant::now();
            if best.as_ref().is_none_or(|b| val_loss < b.best_val_loss) {
                best = Some(Trained {
                    model: eval_model,
                    best_val_loss: val_loss,
                    best_epoch: epoch,
                });
            }
        }
    }
    best.ok_or_else(|| TrainError::Invalid("no validation ran".into()))
}
