//! What a model reads when it reads a sequence: for every layer, the weights each contextual
//! memory (GPT: its attention) puts on the earlier positions, and the weights the persistent
//! memory puts on its bank's slots. These are the retrievals themselves (a unit's output is
//! its weights times its values, projected), so a reading is what the model did, not an
//! approximation of it.

use burn::tensor::{Int, Tensor};

use crate::model::LanguageModel;
use crate::{Forward, InputError};

/// A sequence read by a model: its forward pass and what each layer read.
#[derive(Debug, Clone)]
pub struct Reading {
    pub forward: Forward,
    pub layers: Vec<LayerReading>,
}

#[derive(Debug, Clone)]
pub struct LayerReading {
    /// The contextual memory (v2's three-level memory: the short-term, then the long-term
    /// memory; GPT: the attention).
    pub memories: Vec<MemoryReading>,
    /// The persistent memory's weights over its slots, `(B, H, T, slots)` (every bank side by
    /// side, a row summing to one); `None` for a SwiGLU layer and for GPT.
    pub bank: Option<Tensor<4>>,
}

#[derive(Debug, Clone)]
pub struct MemoryReading {
    /// "contextual memory", "short-term memory", "long-term memory" or "attention".
    pub name: &'static str,
    /// `(B, H, T, T)`: row `t` over the positions `t` reads (a row with none is zeros).
    pub weights: Tensor<4>,
    /// v2's gates at each step, `g_t` and `lambda_t`, `(B, H, T, 1)` each.
    pub gates: Option<(Tensor<4>, Tensor<4>)>,
}

/// Runs `blocks` in order from `x`, each through `read`: the last output, the residual stream
/// after each block, and what each read.
pub(crate) fn read_blocks<B>(
    mut x: Tensor<3>,
    blocks: &[B],
    read: impl Fn(&B, Tensor<3>) -> (Tensor<3>, LayerReading),
) -> (Tensor<3>, Vec<Tensor<3>>, Vec<LayerReading>) {
    let (mut hidden, mut layers) = (Vec::new(), Vec::new());
    for block in blocks {
        let (next, layer) = read(block, x);
        x = next;
        hidden.push(x.clone());
        layers.push(layer);
    }
    (x, hidden, layers)
}

impl LanguageModel {
    /// The forward pass of `ids` `(B, T)` (in eval mode) and what each layer read.
    pub fn read(&self, ids: Tensor<2, Int>) -> Result<Reading, InputError> {
        match self {
            Self::MemoryMosaic(m) => m.read(ids),
            Self::Gpt(m) => m.read(ids),
        }
    }
}
