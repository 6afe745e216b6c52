//! Stop and resume equals an uninterrupted run. Alone in its test binary: the backend's random
//! generator is process-wide, and tests running beside it would draw from it.

mod common;

use burn::tensor::Device;
use common::{config_file, load, scratch, shakespeare};
use mosaic_train::Trainer;

#[test]
fn resume_equals_uninterrupted() {
    resume_case("gpt");
    resume_case("mosaic");
}

/// A run stopped at step 12 and resumed gives the losses of a run that was not stopped,
/// dropout and gradient accumulation included.
fn resume_case(kind: &str) {
    let dir = scratch(&format!("resume-{kind}"));
    let data = shakespeare(&dir);
    {
        let extra = "gradient_accumulation_steps = 2";
        let straight = {
            let config = load(
                &config_file(&dir, &data, kind, extra),
                &[&format!(
                    "train.out_dir=\"{}\"",
                    dir.join(format!("{kind}-a")).display()
                )],
            );
            let mut t = Trainer::new(config, &Device::flex()).unwrap();
            (0..24)
                .map(|_| t.train_step().unwrap().loss)
                .collect::<Vec<_>>()
        };
        let out = dir.join(format!("{kind}-b"));
        let config = load(
            &config_file(&dir, &data, kind, extra),
            &[&format!("train.out_dir=\"{}\"", out.display())],
        );
        let mut first = Trainer::new(config.clone(), &Device::flex()).unwrap();
        let mut resumed_losses: Vec<f64> =
            (0..12).map(|_| first.train_step().unwrap().loss).collect();
        first.checkpoint().unwrap();
        drop(first);
        let mut second = Trainer::resume(config, &Device::flex()).unwrap();
        assert_eq!(second.step(), 12);
        resumed_losses.extend((0..12).map(|_| second.train_step().unwrap().loss));
        for (i, (a, b)) in straight.iter().zip(&resumed_losses).enumerate() {
            assert!(
                (a - b).abs() <= 1e-6,
                "{kind}: step {i}: {a} uninterrupted, {b} resumed"
            );
        }
    }
}
