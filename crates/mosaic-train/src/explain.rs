//! What a trained model reads, as data for a page a person can look at (`mosaic explain`):
//! the text as tokens with the loss of each, and for every layer and head the weights each
//! contextual memory (GPT: its attention) puts on the earlier tokens, the persistent memory's
//! most-read bank slots, and per-head summaries (how far back a head reads; the learned decay
//! and bandwidth, v2's gates and adaptive bandwidth). The numbers are the model's own: the
//! weights of [`LanguageModel::read`], which are the retrievals themselves.

use burn::module::Module;
use burn::tensor::{Int, Tensor};
use mosaic_data::Tokenizer;
use mosaic_models::{
    LanguageModel, LayerHeads, LayerReading, MemoryReading, cross_entropy_per_token,
};
use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::error::{Result, TrainError};

/// The page: one HTML file with its data, script and style inline, to open from disk.
const PAGE: &str = include_str!("explain.html");

/// Where the page's template takes the data.
const DATA_SLOT: &str = "/*DATA*/null";

/// Bank slots listed per token and head (the rest of the weight is summed).
pub const TOP_SLOTS: usize = 12;

/// Everything the page shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Explanation {
    pub model: ModelInfo,
    /// Each token's text as the tokenizer decodes it alone.
    pub tokens: Vec<String>,
    /// The loss of each token given the ones before it (none for the first).
    pub loss: Vec<Option<f32>>,
    /// Said when the text was longer than the model reads and only its start is shown.
    pub windowed: Option<String>,
    pub layers: Vec<LayerPage>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelInfo {
    pub kind: String,
    pub params: usize,
    pub step: usize,
    /// The model's configuration as its checkpoint records it.
    pub config: serde_json::Value,
}

impl ModelInfo {
    /// What the page says of the model a checkpoint holds.
    pub fn of(checkpoint: &Checkpoint) -> Result<Self> {
        let model = checkpoint.model();
        Ok(Self {
            kind: model.kind().to_string(),
            params: model.num_params(),
            step: checkpoint.state().step,
            config: serde_json::to_value(&checkpoint.config().model)?,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerPage {
    pub memories: Vec<MemoryPage>,
    pub bank: Option<BankPage>,
    /// The learned per-head scalars (Memory Mosaics).
    pub scalars: Option<LayerHeads>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemoryPage {
    pub name: String,
    pub heads: Vec<HeadPage>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeadPage {
    /// For each position, the weights on positions `from ..` (nothing before `from` nor after
    /// the last listed has weight).
    pub rows: Vec<Row>,
    /// The mean of `t - i` under the weights, over the positions that read anything.
    pub distance: Option<f32>,
    /// v2: the mean input gate `g_t` and decay `lambda_t` over the text.
    pub gate: Option<f32>,
    pub decay: Option<f32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub from: usize,
    pub w: Vec<f32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BankPage {
    pub slots: usize,
    /// Per head, per position: the most-read slots.
    pub heads: Vec<Vec<TopSlots>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopSlots {
    pub slot: Vec<usize>,
    pub w: Vec<f32>,
    /// The weight of every other slot together.
    pub rest: f32,
}

/// Reads `ids` (at most the model's block; longer text is cut, and the page says so) with
/// `model` in eval mode.
pub fn explain(
    model: &LanguageModel,
    ids: &[u32],
    tokenizer: &dyn Tokenizer,
    info: ModelInfo,
) -> Result<Explanation> {
    if ids.is_empty() {
        return Err(TrainError::Invalid(
            "the text has no tokens: give a prompt or a non-empty file".into(),
        ));
    }
    let block = model.block_size();
    let windowed = (ids.len() > block).then(|| {
        format!(
            "the text has {} tokens; the model reads {block} at once, so the page shows the \
             first {block}",
            ids.len()
        )
    });
    let ids = &ids[..ids.len().min(block)];
    let input = model.tokens(ids, 1)?;
    let reading = model.read(input.clone())?;
    let loss = token_losses(reading.forward.logits.clone(), input)?;
    let scalars = model.head_scalars();
    let layers = reading
        .layers
        .iter()
        .enumerate()
        .map(|(i, layer)| layer_page(layer, scalars.get(i).cloned()))
        .collect::<Result<_>>()?;
    let tokens = ids
        .iter()
        .map(|&id| {
            tokenizer
                .decode(&[id])
                .unwrap_or_else(|_| format!("<{id}>"))
        })
        .collect();
    Ok(Explanation {
        model: info,
        tokens,
        loss,
        windowed,
        layers,
    })
}

/// The loss of token `t` given tokens `< t`; none for the first.
fn token_losses(logits: Tensor<3>, ids: Tensor<2, Int>) -> Result<Vec<Option<f32>>> {
    let [_, t, _] = logits.dims();
    let mut out = vec![None];
    if t > 1 {
        let per = cross_entropy_per_token(logits.narrow(1, 0, t - 1), ids.narrow(1, 1, t - 1));
        out.extend(floats(per.reshape([t - 1]))?.into_iter().map(Some));
    }
    Ok(out)
}

fn floats<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    Ok(t.into_data().try_to_vec_as::<f32>()?)
}

/// Weights kept to 5 decimals: the page's numbers, not its file size, are what matter.
fn round(v: f32) -> f32 {
    (v * 1e5).round() / 1e5
}

fn layer_page(layer: &LayerReading, scalars: Option<LayerHeads>) -> Result<LayerPage> {
    let memories = layer
        .memories
        .iter()
        .map(memory_page)
        .collect::<Result<_>>()?;
    let bank = match &layer.bank {
        Some(w) => Some(bank_page(w.clone())?),
        None => None,
    };
    Ok(LayerPage {
        memories,
        bank,
        scalars,
    })
}

fn memory_page(m: &MemoryReading) -> Result<MemoryPage> {
    let [_, h, t, _] = m.weights.dims();
    let w = floats(m.weights.clone())?;
    let gates = match &m.gates {
        Some((g, l)) => Some((floats(g.clone())?, floats(l.clone())?)),
        None => None,
    };
    let heads = (0..h)
        .map(|head| {
            let rows: Vec<Row> = w[head * t * t..(head + 1) * t * t]
                .chunks(t)
                .map(|row| {
                    let from = row.iter().position(|&v| v != 0.0).unwrap_or(0);
                    let to = row.iter().rposition(|&v| v != 0.0).map_or(from, |i| i + 1);
                    Row {
                        from,
                        w: row[from..to].iter().map(|&v| round(v)).collect(),
                    }
                })
                .collect();
            let mean = |v: &[f32]| v[head * t..(head + 1) * t].iter().sum::<f32>() / t as f32;
            HeadPage {
                distance: mean_distance(&w[head * t * t..(head + 1) * t * t], t),
                gate: gates.as_ref().map(|(g, _)| mean(g)),
                decay: gates.as_ref().map(|(_, l)| mean(l)),
                rows,
            }
        })
        .collect();
    Ok(MemoryPage {
        name: m.name.to_string(),
        heads,
    })
}

/// The mean of `t - i` under one head's `(T, T)` weights, over the rows that read anything.
fn mean_distance(w: &[f32], t: usize) -> Option<f32> {
    let (mut sum, mut rows) = (0.0f64, 0usize);
    for (pos, row) in w.chunks(t).enumerate() {
        let mass: f32 = row.iter().sum();
        if mass > 0.0 {
            sum += row
                .iter()
                .enumerate()
                .map(|(i, &v)| v as f64 * (pos as f64 - i as f64))
                .sum::<f64>();
            rows += 1;
        }
    }
    (rows > 0).then(|| (sum / rows as f64) as f32)
}

fn bank_page(w: Tensor<4>) -> Result<BankPage> {
    let [_, h, t, slots] = w.dims();
    let values = floats(w)?;
    let heads = (0..h)
        .map(|head| {
            (0..t)
                .map(|pos| {
                    let row = &values[(head * t + pos) * slots..][..slots];
                    let mut order: Vec<usize> = (0..slots).collect();
                    order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
                    order.truncate(TOP_SLOTS);
                    let listed: f32 = order.iter().map(|&s| row[s]).sum();
                    TopSlots {
                        w: order.iter().map(|&s| round(row[s])).collect(),
                        slot: order,
                        rest: round((row.iter().sum::<f32>() - listed).max(0.0)),
                    }
                })
                .collect()
        })
        .collect();
    Ok(BankPage { slots, heads })
}

/// The explanation as one self-contained HTML page.
pub fn render(e: &Explanation) -> String {
    // Inside a <script> element, "</" could end it early.
    let json = serde_json::to_string(e)
        .expect("an explanation serialises")
        .replace("</", "<\\/");
    PAGE.replace(DATA_SLOT, &json)
}

/// The explanation embedded in a page written by [`render`].
pub fn embedded(page: &str) -> Option<Explanation> {
    let start = page.find(r#"<script id="data" type="application/json">"#)?;
    let rest = &page[start..];
    let open = rest.find('>')? + 1;
    let close = rest.find("</script>")?;
    serde_json::from_str(&rest[open..close].replace("<\\/", "</")).ok()
}
