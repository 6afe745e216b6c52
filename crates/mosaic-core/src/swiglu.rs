//! The persistent memory of Memory Mosaics v2: a SwiGLU feed-forward layer,
//! `W2 (SiLU(W1 x) * W3 x)`, in place of v1's learned bank of key/value pairs.

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::activation::silu;
use burn::tensor::{Device, Tensor};

use crate::heads::normal_weight;
use crate::linear::linear;

#[derive(Module, Debug)]
pub struct SwiGlu {
    /// `W1`, `(d, hidden)`.
    gate: Param<Tensor<2>>,
    /// `W3`, `(d, hidden)`.
    up: Param<Tensor<2>>,
    /// `W2`, `(hidden, d)`.
    down: Param<Tensor<2>>,
    dropout: Dropout,
}

impl SwiGlu {
    /// `W1` and `W3` start at N(0, 1/d), `W2` at N(0, 1/(hidden n_layer)), as the Memory
    /// Mosaic's other output projections.
    pub fn new(
        n_embd: usize,
        hidden: usize,
        n_layer: usize,
        resid_dropout: f64,
        device: &Device,
    ) -> Self {
        let std = 1.0 / (n_embd as f64).sqrt();
        let down_std = 1.0 / (hidden as f64).sqrt() / (n_layer as f64).sqrt();
        Self {
            gate: normal_weight(n_embd, hidden, std, device),
            up: normal_weight(n_embd, hidden, std, device),
            down: normal_weight(hidden, n_embd, down_std, device),
            dropout: DropoutConfig::new(resid_dropout).init(),
        }
    }

    /// `x`: `(B, T, d)`, already layer-normalised -> `(B, T, d)`. Position by position, so a
    /// cached generation step is the same call on one position.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = silu(linear(x.clone(), self.gate.val())) * linear(x, self.up.val());
        self.dropout.forward(linear(h, self.down.val()))
    }
}
