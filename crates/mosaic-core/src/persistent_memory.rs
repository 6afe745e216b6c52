//! Persistent memory unit (P-mem), the Memory Mosaic's replacement for the feed-forward block:
//! every head looks its key up in a learned bank of `pmem_size` key/value pairs. With
//! `pmem_count > 1` banks, their answers are averaged.

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::{Device, Distribution, Tensor, TensorData};

use crate::EXP_PARAM_SCALE;
use crate::heads::{merge_heads, normal_weight, per_head};
use crate::key_features::{KeyFeatures, KeyScale};
use crate::linear::linear;
use crate::retrieval::bank_retrieval;
use crate::softmax::softmax_last;
use crate::value_features::VALUE_SCALE_INIT;
use crate::weights::Weights;

#[derive(Debug, Clone)]
pub struct PersistentMemoryConfig {
    pub n_embd: usize,
    pub n_head: usize,
    pub n_layer: usize,
    /// Pairs per head and bank; `3.5 * n_embd` makes the block as large as a GPT-2 block.
    pub pmem_size: usize,
    pub pmem_count: usize,
    /// Dropout on the retrieval weights (`ic_dropout`).
    pub attn_dropout: f64,
    /// Dropout on the unit's output (`hd_dropout`).
    pub resid_dropout: f64,
    /// v2's gated key extractor in place of v1's leaky average.
    pub gated_keys: bool,
}

#[derive(Module, Debug)]
pub struct PersistentMemory {
    key: KeyFeatures,
    /// Stored keys, `(pmem_count, H, pmem_size, hs)` (the reference's `pmem.M_k{i}`).
    bank_keys: Param<Tensor<4>>,
    /// Stored values, same shape (the reference's `pmem.M_v{i}`).
    bank_values: Param<Tensor<4>>,
    /// `nu_h`, stored divided by 10 (the reference's `value_beta`).
    nu: Param<Tensor<1>>,
    c_proj: Param<Tensor<2>>,
    attn_dropout: Dropout,
    resid_dropout: Dropout,
}

impl PersistentMemoryConfig {
    pub fn init(&self, device: &Device) -> PersistentMemory {
        let d = self.n_embd;
        let h = self.n_head;
        assert!(
            d.is_multiple_of(h),
            "n_embd {d} is not a multiple of n_head {h}"
        );
        assert!(self.pmem_count >= 1, "pmem_count must be at least 1");
        let hs = d / h;
        let shape = [self.pmem_count, h, self.pmem_size, hs];
        let bank = || {
            Param::from_tensor(Tensor::random(
                shape,
                Distribution::Normal(0.0, 1.0 / (hs as f64).sqrt()),
                device,
            ))
        };
        let proj_std = 1.0 / (d as f64).sqrt() / (self.n_layer as f64).sqrt();
        PersistentMemory {
            key: KeyFeatures::new(d, h, hs, KeyScale::Squared, self.gated_keys, device),
            bank_keys: bank(),
            bank_values: bank(),
            nu: Param::from_data(TensorData::new(vec![VALUE_SCALE_INIT; h], [h]), device),
            c_proj: normal_weight(d, d, proj_std, device),
            attn_dropout: DropoutConfig::new(self.attn_dropout).init(),
            resid_dropout: DropoutConfig::new(self.resid_dropout).init(),
        }
    }
}

impl PersistentMemory {
    /// The official parameters under `prefix` (`blocks.{i}.pmem.`); bank `j` of the keys is
    /// `pmem.M_k{j}`, `(1, H, pmem_size, hs)`, and of the values `pmem.M_v{j}`.
    pub fn visit_official<W: Weights>(
        &mut self,
        weights: &W,
        prefix: &str,
    ) -> Result<(), W::Error> {
        let p = |name: &str| format!("{prefix}{name}");
        self.key.visit_official(weights, prefix)?;
        weights.param(&p("value_beta"), &mut self.nu)?;
        weights.banks(&|j| p(&format!("pmem.M_k{j}")), &mut self.bank_keys)?;
        weights.banks(&|j| p(&format!("pmem.M_v{j}")), &mut self.bank_values)?;
        weights.linear(&p("c_proj.weight"), &mut self.c_proj)
    }

    /// The key extractor.
    pub fn key(&self) -> &KeyFeatures {
        &self.key
    }

    /// `exp(10 nu_h)`, shape `(H,)`.
    pub fn value_scale(&self) -> Tensor<1> {
        (self.nu.val() * EXP_PARAM_SCALE).exp()
    }

    /// `x`: `(B, T, d)`, already layer-normalised -> `(B, T, d)`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.retrieve(self.key.forward(x))
    }

    /// [`PersistentMemory::forward`] on a prompt, also returning the key extractor's leaky
    /// average at the last step, `(B, H, 1, hs)`: all that [`PersistentMemory::step`] needs.
    pub fn prefill(&self, x: Tensor<3>) -> (Tensor<3>, Tensor<4>) {
        let (k, state) = self.key.forward_with_state(x);
        (self.retrieve(k), state)
    }

    /// The output for one new step `x` `(B, 1, d)`; updates the leaky average `state`.
    pub fn step(&self, x: Tensor<3>, state: &mut Tensor<4>) -> Tensor<3> {
        let (k, next) = self.key.step(Some(state.clone()), x);
        *state = next;
        self.retrieve(k)
    }

    /// Which bank slots each position reads, `(B, H, T, pmem_count * pmem_size)` without
    /// dropout: bank `i`'s softmax over its slots divided by the number of banks, so that a
    /// row sums to one and the unit's output is these weights times the stored values (all
    /// banks side by side), scaled by the value scale, projected by `c_proj`.
    pub fn bank_weights(&self, x: Tensor<3>) -> Tensor<4> {
        let k = self.key.forward(x);
        let [count, h, p, hs] = self.bank_keys.dims();
        let keys = self.bank_keys.val();
        let per_bank: Vec<Tensor<4>> = (0..count)
            .map(|i| {
                let bank = keys.clone().narrow(0, i, 1).reshape([1, h, p, hs]);
                softmax_last(k.clone().matmul(bank.swap_dims(2, 3))) / count as f64
            })
            .collect();
        Tensor::cat(per_bank, 3)
    }

    /// Keys `(B, H, T, hs)` -> the unit's output `(B, T, d)`.
    fn retrieve(&self, k: Tensor<4>) -> Tensor<3> {
        let count = self.bank_keys.dims()[0];
        let keys = self.bank_keys.val();
        let values = self.bank_values.val();
        let mut y: Option<Tensor<4>> = None;
        for i in 0..count {
            let yi = bank_retrieval(
                k.clone(),
                bank(&keys, i),
                bank(&values, i),
                &self.attn_dropout,
            );
            y = Some(match y {
                Some(y) => y + yi,
                None => yi,
            });
        }
        let y = y.expect("pmem_count >= 1");
        // Dividing by one is exact: skipped, one operation fewer to record and differentiate.
        let y = match count {
            1 => y,
            _ => y / count as f64,
        } * per_head(self.value_scale());
        self.resid_dropout
            .forward(linear(merge_heads(y), self.c_proj.val()))
    }
}

/// Bank `i` of `all` `(count, H, P, hs)`, as `(H, P, hs)`. A single bank is the whole tensor,
/// reshaped: a narrowed view's gradient is written into a zeroed tensor of the full shape,
/// two more GPU launches each step.
fn bank(all: &Tensor<4>, i: usize) -> Tensor<3> {
    let [count, h, p, hs] = all.dims();
    match count {
        1 => all.clone().reshape([h, p, hs]),
        _ => all.clone().narrow(0, i, 1).reshape([h, p, hs]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bank weights are the retrieval: rows sum to one, and weights times the stored
    /// values (banks side by side), scaled and projected, give the unit's output.
    #[test]
    fn bank_weights_are_what_the_unit_retrieves() {
        let device = Device::flex();
        device.seed(4);
        let unit = PersistentMemoryConfig {
            n_embd: 16,
            n_head: 2,
            n_layer: 1,
            pmem_size: 6,
            pmem_count: 2,
            attn_dropout: 0.0,
            resid_dropout: 0.0,
            gated_keys: false,
        }
        .init(&device);
        let x = Tensor::<3>::random([1, 5, 16], Distribution::Normal(0.0, 1.0), &device);
        let w = unit.bank_weights(x.clone());
        assert_eq!(w.dims(), [1, 2, 5, 12]);
        let sums = w
            .clone()
            .sum_dim(3)
            .into_data()
            .try_to_vec_as::<f32>()
            .unwrap();
        assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-5), "{sums:?}");
        let [count, h, p, hs] = unit.bank_values.dims();
        let values = unit
            .bank_values
            .val()
            .swap_dims(0, 1)
            .reshape([1, h, count * p, hs]);
        let y = w.matmul(values) * per_head(unit.value_scale());
        let direct = linear(merge_heads(y), unit.c_proj.val());
        let err = (direct - unit.forward(x)).abs().max().into_scalar::<f32>();
        assert!(err < 1e-5, "{err:e}");
    }
}
