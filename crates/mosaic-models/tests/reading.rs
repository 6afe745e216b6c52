//! A reading is the forward pass itself plus what each layer read: the same logits, weights
//! that are distributions over what each position may read and nothing after it.

use burn::tensor::{Device, Int, Tensor, TensorData};
use mosaic_models::{GptConfig, LanguageModel, MemoryMosaicConfig};

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec_as::<f32>().unwrap()
}

#[test]
fn a_reading_is_the_forward_pass_and_its_weights() {
    let device = Device::flex();
    device.seed(21);
    let v2 = MemoryMosaicConfig {
        short_window: 4,
        long_offset: [3, 6],
        ..MemoryMosaicConfig::v2(30, 2, 4, 16, 32)
    };
    let models = [
        LanguageModel::MemoryMosaic(MemoryMosaicConfig::new(30, 2, 4, 16, 32).init(&device)),
        LanguageModel::MemoryMosaic(v2.init(&device)),
        LanguageModel::Gpt(
            GptConfig {
                vocab_size: 30,
                n_layer: 2,
                n_head: 4,
                n_embd: 16,
                block_size: 32,
                dropout: 0.0,
            }
            .init(&device),
        ),
    ];
    let t = 12;
    let ids: Vec<i64> = (0..t as i64).map(|i| (i * 7 + 3) % 30).collect();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, t]), &device);
    for (m, model) in models.iter().enumerate() {
        let reading = model.read(ids.clone()).unwrap();
        let forward = model.forward(ids.clone()).unwrap();
        assert_eq!(
            values(reading.forward.logits),
            values(forward.logits),
            "model {m}"
        );
        assert_eq!(reading.layers.len(), 2);
        for layer in &reading.layers {
            for memory in &layer.memories {
                let w = values(memory.weights.clone());
                for (r, row) in w.chunks(t).enumerate() {
                    let pos = r % t;
                    let sum: f32 = row.iter().sum();
                    assert!(
                        sum.abs() < 1e-5 || (sum - 1.0).abs() < 1e-5,
                        "{}",
                        memory.name
                    );
                    // Nothing after the position itself (GPT reads itself, a memory not).
                    let own = if memory.name == "attention" {
                        pos + 1
                    } else {
                        pos
                    };
                    assert!(
                        row[own..].iter().all(|&v| v == 0.0),
                        "{} row {pos}",
                        memory.name
                    );
                }
                assert_eq!(memory.gates.is_some(), m == 1, "gates in v2 only");
            }
            assert_eq!(layer.bank.is_some(), m == 0, "a bank in v1 only");
        }
    }
}
