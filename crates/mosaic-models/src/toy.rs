//! The three-moons toy model of the paper's section 3: one contextual memory, keys `W_phi x_t`
//! and values `W_psi x_{t+1}` (no leaky average, no normalisation), a fixed kernel bandwidth,
//! the strictly-past mask, and an output projection `W_z`. Every map acts as a complex
//! multiplication on the (sin, cos) pairs, so a head can only rotate and scale moons, and
//! which moons a head reads shows in the magnitudes of its blocks.

use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor};
use mosaic_core::Band;
use mosaic_core::heads::{merge_heads, next_step, split_heads};
use mosaic_core::ops::linear;
use mosaic_core::retrieval::{band_weights, open_retrieval};

/// A real `(d_out, d_in)` matrix made of 2x2 blocks `[[a, -b], [b, a]]`: each block multiplies
/// the pair `(x_{2j}, x_{2j+1})`, read as the complex number `x_{2j} + i x_{2j+1}`, by `a + ib`.
#[derive(Module, Debug)]
pub struct ComplexLinear {
    /// Real parts `a`, `(d_out / 2, d_in / 2)`.
    re: Param<Tensor<2>>,
    /// Imaginary parts `b`, same shape.
    im: Param<Tensor<2>>,
}

impl ComplexLinear {
    /// Uniform in `(-1/sqrt(d_in), 1/sqrt(d_in))`, the default of a linear layer.
    pub fn new(d_in: usize, d_out: usize, device: &Device) -> Self {
        assert!(
            d_in.is_multiple_of(2) && d_out.is_multiple_of(2),
            "complex maps need even sizes"
        );
        let k = 1.0 / (d_in as f64).sqrt();
        let init = || {
            Param::from_tensor(Tensor::random(
                [d_out / 2, d_in / 2],
                Distribution::Uniform(-k, k),
                device,
            ))
        };
        Self {
            re: init(),
            im: init(),
        }
    }

    /// The real matrix, `(d_out, d_in)` (PyTorch's layout).
    pub fn weight(&self) -> Tensor<2> {
        let (a, b) = (self.re.val(), self.im.val());
        let [r, c] = a.dims();
        Tensor::stack::<3>(vec![a.clone(), b.clone().neg(), b, a], 2)
            .reshape([r, c, 2, 2])
            .swap_dims(1, 2)
            .reshape([2 * r, 2 * c])
    }

    /// `x W^T`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        linear(x, self.weight().transpose())
    }

    /// `scale` times the identity (`d_in == d_out`).
    pub fn identity(d: usize, scale: f64, device: &Device) -> Self {
        let re = Tensor::<2>::eye(d / 2, device) * scale;
        Self {
            im: Param::from_tensor(re.zeros_like()),
            re: Param::from_tensor(re),
        }
    }

    /// `|a + ib|` of every block, `(d_out / 2, d_in / 2)`.
    pub fn magnitudes(&self) -> Tensor<2> {
        (self.re.val().square() + self.im.val().square()).sqrt()
    }
}

#[derive(Debug, Clone)]
pub struct ToyMosaicConfig {
    pub input_dim: usize,
    pub n_head: usize,
    pub head_size: usize,
    /// Fixed kernel bandwidth beta: weights `softmax_i(beta k_t . k_i)`.
    pub bandwidth: f64,
}

impl ToyMosaicConfig {
    /// The paper's toy: 6 inputs, bandwidth 50, `n_head` heads sharing 6 dimensions.
    pub fn moons(n_head: usize) -> Self {
        assert!(n_head == 1 || n_head == 3, "the toy has 1 or 3 heads");
        Self {
            input_dim: 6,
            n_head,
            head_size: 6 / n_head,
            bandwidth: 50.0,
        }
    }

    pub fn init(&self, device: &Device) -> ToyMosaic {
        let e = self.n_head * self.head_size;
        ToyMosaic {
            key: ComplexLinear::new(self.input_dim, e, device),
            value: ComplexLinear::new(self.input_dim, e, device),
            out: ComplexLinear::new(e, self.input_dim, device),
            n_head: self.n_head,
            bandwidth: self.bandwidth,
        }
    }
}

#[derive(Module, Debug)]
pub struct ToyMosaic {
    /// `W_phi`.
    key: ComplexLinear,
    /// `W_psi`.
    value: ComplexLinear,
    /// `W_z`.
    out: ComplexLinear,
    n_head: usize,
    bandwidth: f64,
}

impl ToyMosaic {
    /// A memory set by hand, not trained: keys `key_scale x_t`, values `x_{t+1}`, output the
    /// identity. With one head it can only recognise the whole system's phase, with three
    /// each head recognises one moon's: the two solutions the trained models are compared to.
    pub fn hand_set(config: &ToyMosaicConfig, key_scale: f64, device: &Device) -> Self {
        let d = config.input_dim;
        assert_eq!(d, config.n_head * config.head_size, "a square toy");
        Self {
            key: ComplexLinear::identity(d, key_scale, device),
            value: ComplexLinear::identity(d, 1.0, device),
            out: ComplexLinear::identity(d, 1.0, device),
            n_head: config.n_head,
            bandwidth: config.bandwidth,
        }
    }

    /// The three maps with the paper's names: `W_phi` (keys), `W_psi` (values), `W_z`
    /// (output).
    pub fn maps(&self) -> [(&'static str, &ComplexLinear); 3] {
        [
            ("W_phi", &self.key),
            ("W_psi", &self.value),
            ("W_z", &self.out),
        ]
    }

    /// `x` `(B, T, 6)` -> the prediction of `x_{t+1}` at every `t`, `(B, T, 6)`, and the
    /// attention weights `(B, H, T, T)`.
    pub fn forward(&self, x: Tensor<3>) -> (Tensor<3>, Tensor<4>) {
        let k = split_heads(self.key.forward(x.clone()), self.n_head);
        // The value stored at t has seen x_{t+1}.
        let v = split_heads(self.value.forward(next_step(x, 1)), self.n_head);
        let weights = band_weights(k.clone() * self.bandwidth, k, Band::PAST);
        let y = self.out.forward(merge_heads(weights.clone().matmul(v)));
        (y, weights)
    }

    /// Feeds its own predictions back for `steps` steps after `prompt` `(B, c, 6)`; returns
    /// the predictions of `x_c .. x_{c+steps-1}`, `(B, steps, 6)`. Keys and values are
    /// cached, so each step costs O(c + steps): a new observation completes the value of the
    /// step before it and adds one key.
    pub fn generate(&self, prompt: Tensor<3>, steps: usize) -> Tensor<3> {
        let [_, c, _] = prompt.dims();
        let mut keys = split_heads(self.key.forward(prompt.clone()), self.n_head);
        let mut values = match c {
            1 => None,
            _ => Some(split_heads(
                self.value.forward(prompt.narrow(1, 1, c - 1)),
                self.n_head,
            )),
        };
        let mut query = keys.clone().narrow(2, c - 1, 1);
        let mut preds = Vec::with_capacity(steps);
        for _ in 0..steps {
            let y = match &values {
                // Every key but the query's own has its value.
                Some(v) => {
                    let [_, _, n, _] = v.dims();
                    let past = keys.clone().narrow(2, 0, n);
                    open_retrieval(query.clone(), past, v.clone(), self.bandwidth)
                }
                None => query.clone().zeros_like(),
            };
            let pred = self.out.forward(merge_heads(y));
            let v_new = split_heads(self.value.forward(pred.clone()), self.n_head);
            values = Some(match values {
                Some(v) => Tensor::cat(vec![v, v_new], 2),
                None => v_new,
            });
            query = split_heads(self.key.forward(pred.clone()), self.n_head);
            keys = Tensor::cat(vec![keys, query.clone()], 2);
            preds.push(pred);
        }
        Tensor::cat(preds, 1)
    }

    /// The same as [`ToyMosaic::generate`] by recomputing the whole sequence at every step:
    /// the O(T^2)-per-step oracle of the cache.
    pub fn generate_uncached(&self, prompt: Tensor<3>, steps: usize) -> Tensor<3> {
        let mut x = prompt;
        let mut preds = Vec::with_capacity(steps);
        for _ in 0..steps {
            let [_, t, _] = x.dims();
            let pred = self.forward(x.clone()).0.narrow(1, t - 1, 1);
            x = Tensor::cat(vec![x, pred.clone()], 1);
            preds.push(pred);
        }
        Tensor::cat(preds, 1)
    }
}

/// The toy's loss: `mean(clip(yhat - y, -0.5, 0.5)^2)`, robust to the large errors of early
/// training.
pub fn clipped_mse(pred: Tensor<3>, target: Tensor<3>) -> Tensor<1> {
    (pred - target).clamp(-0.5, 0.5).square().mean()
}
