//! nanoGPT's learning-rate schedule: linear warm-up, then a cosine down to `min_lr`.

/// The learning rate at iteration `it`.
pub fn learning_rate(
    it: usize,
    lr: f64,
    min_lr: f64,
    warmup_iters: usize,
    decay_iters: usize,
) -> f64 {
    if it < warmup_iters {
        return lr * (it + 1) as f64 / (warmup_iters + 1) as f64;
    }
    if it > decay_iters || decay_iters <= warmup_iters {
        return min_lr;
    }
    let ratio = (it - warmup_iters) as f64 / (decay_iters - warmup_iters) as f64;
    let coeff = 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos());
    min_lr + coeff * (lr - min_lr)
}
