//! Every unit takes sequences of any length from 1 up, and a short sequence gives the numbers
//! of the same prefix inside a longer one: causality makes that the definition. The value
//! extractor is the one unit that looks one step ahead; at the end of a sequence it sees
//! nothing, which is what a longer sequence gives when the next input is zero.

mod common;

use burn::tensor::{Device, Tensor};
use common::{random, rel_err, values};
use mosaic_core::Band;
use mosaic_core::retrieval::{band_retrieval, band_weights};
use mosaic_core::{
    ContextMemoryConfig, KeyFeatures, KeyScale, LeakyAverage, PersistentMemoryConfig, ValueFeatures,
};

const B: usize = 2;
const H: usize = 2;
const D: usize = 8;
/// Longer than one chunk of the leaky average's scan, so the long run takes the chunked path
/// and the short ones the matrix form.
const LONG: usize = 70;

/// `f` on the first `len` steps (axis `dim`) of `long_input` against the first `len` steps of
/// `f` on all of it.
fn assert_prefix<const I: usize, const O: usize>(
    name: &str,
    long_input: Tensor<I>,
    in_dim: usize,
    out_dim: usize,
    f: impl Fn(Tensor<I>) -> Tensor<O>,
) {
    let long = f(long_input.clone());
    for len in 1..=4 {
        let short = f(long_input.clone().narrow(in_dim, 0, len));
        let expected = values(long.clone().narrow(out_dim, 0, len));
        let got = values(short);
        let err = rel_err(&got, &expected);
        assert!(err < 1e-5, "{name}, length {len}: relative error {err}");
    }
}

#[test]
fn leaky_average_of_a_short_sequence_is_the_prefix() {
    let device = Device::flex();
    device.seed(1);
    let leaky = LeakyAverage::new(H, &device);
    let u = random([B, H, LONG, D / H], &device);
    assert_prefix("leaky average", u, 2, 2, |u| leaky.forward(u));
}

#[test]
fn key_features_of_a_short_sequence_are_the_prefix() {
    let device = Device::flex();
    device.seed(2);
    for (scale, gated) in [
        (KeyScale::Kernel, false),
        (KeyScale::Squared, false),
        (KeyScale::Unit, true),
        (KeyScale::Kernel, true),
    ] {
        let keys = KeyFeatures::new(D, H, D / H, scale, gated, &device);
        let x = random([B, LONG, D], &device);
        assert_prefix("keys", x, 1, 2, |x| keys.forward(x));
    }
}

/// The last value of a sequence of `len` equals the value at `len - 1` of a longer one whose
/// input at `len` is zero (`W_v 0 = 0`: nothing to peek at); the earlier ones are the prefix.
#[test]
fn value_features_of_a_short_sequence_see_nothing_past_the_end() {
    let device = Device::flex();
    device.seed(3);
    let value = ValueFeatures::new(D, H, D / H, &device);
    for len in 1..=4 {
        let x = random([B, LONG, D], &device);
        let zero = Tensor::<3>::zeros([B, 1, D], &device);
        let rest = x.clone().narrow(1, len + 1, LONG - len - 1);
        let long = Tensor::cat(vec![x.clone().narrow(1, 0, len), zero, rest], 1);
        let expected = values(value.forward(long).narrow(2, 0, len));
        let got = values(value.forward(x.narrow(1, 0, len)));
        let err = rel_err(&got, &expected);
        assert!(err < 1e-5, "values, length {len}: relative error {err}");
    }
    // The zero input must matter, or the test above could not fail.
    let x = random([B, 3, D], &device);
    let peeked = values(value.forward(x.clone()).narrow(2, 0, 2));
    let alone = values(value.forward(x.narrow(1, 0, 2)));
    assert!(rel_err(&alone, &peeked) > 1e-3);
}

#[test]
fn retrieval_of_a_short_sequence_is_the_prefix() {
    let device = Device::flex();
    device.seed(4);
    let dropout = burn::nn::DropoutConfig::new(0.0).init();
    let q = random([B, H, LONG, 3], &device);
    let kv = random([B, H, LONG, 6], &device);
    let x = Tensor::cat(vec![q, kv], 3);
    let k = random([B, H, LONG, 3], &device);
    for band in [Band::PAST, Band::short_term(3), Band::long_term(3)] {
        assert_prefix("band retrieval", x.clone(), 2, 2, |x| {
            let q = x.clone().narrow(3, 0, 3);
            let k = x.clone().narrow(3, 3, 3);
            let v = x.narrow(3, 6, 3);
            band_retrieval(q, k, v, band, &dropout)
        });
        assert_prefix("band weights", k.clone(), 2, 2, |k| {
            let t = k.dims()[2];
            // Pad the short rows to the long run's width with the weights' zeros.
            let w = band_weights(k.clone(), k, band);
            Tensor::cat(vec![w, Tensor::zeros([B, H, t, LONG - t], &device)], 3)
        });
    }
}

/// On both paths of retrieval: Burn's fused attention (the CPU without gradients) and the
/// explicit softmax (with gradients).
#[test]
fn memories_of_a_short_sequence_are_the_prefix() {
    for device in [Device::flex(), Device::flex().autodiff()] {
        device.seed(5);
        // v1, and v2's short- and long-term memories with all its changes.
        for (band, v2) in [
            (Band::PAST, false),
            (Band::short_term(3), true),
            (Band::long_term(2), true),
        ] {
            let context = ContextMemoryConfig {
                band,
                adaptive_bandwidth: v2,
                gated_keys: v2,
                ..ContextMemoryConfig::new(D, H, 2)
            }
            .init(&device);
            let persistent = PersistentMemoryConfig {
                n_embd: D,
                n_head: H,
                n_layer: 2,
                pmem_size: 5,
                pmem_count: 2,
                attn_dropout: 0.0,
                resid_dropout: 0.0,
                gated_keys: v2,
            }
            .init(&device);
            let x = random([B, LONG, D], &device);
            assert_prefix("context memory", x.clone(), 1, 1, |x| context.forward(x));
            assert_prefix("persistent memory", x, 1, 1, |x| persistent.forward(x));
        }
    }
}
