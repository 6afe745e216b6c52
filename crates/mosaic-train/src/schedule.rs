//! Learning-rate schedules: the paper's (nanoGPT's warm-up and cosine), RegBench's (warm-up
//! from a floor), the toy's linear decay, and a constant rate.

/// The learning rate as a function of the step (0-based).
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Constant(f64),
    /// From `start` at step 0 linearly toward `end`, reached at step `steps`.
    Linear {
        start: f64,
        end: f64,
        steps: usize,
    },
    /// A linear warm-up over `warmup` steps to `peak`, then a cosine down to `min` at step
    /// `decay_end`, and `min` after it.
    WarmupCosine {
        peak: f64,
        min: f64,
        warmup: usize,
        decay_end: usize,
        from: Warmup,
    },
}

/// Where the warm-up starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Warmup {
    /// nanoGPT's `peak * (step + 1) / (warmup + 1)`: the first step already moves.
    NanoGpt,
    /// `start` at step 0, rising linearly to `peak` at step `warmup`.
    From(f64),
}

impl Schedule {
    /// nanoGPT's schedule, the paper's language-modelling recipe.
    pub fn nanogpt(peak: f64, min: f64, warmup: usize, decay_end: usize) -> Self {
        Self::WarmupCosine {
            peak,
            min,
            warmup,
            decay_end,
            from: Warmup::NanoGpt,
        }
    }

    /// The learning rate at step `step`.
    pub fn at(&self, step: usize) -> f64 {
        match *self {
            Self::Constant(lr) => lr,
            Self::Linear { start, end, steps } => {
                start + (end - start) * step as f64 / steps.max(1) as f64
            }
            Self::WarmupCosine {
                peak,
                min,
                warmup,
                decay_end,
                from,
            } => {
                if step < warmup {
                    return match from {
                        Warmup::NanoGpt => peak * (step + 1) as f64 / (warmup + 1) as f64,
                        Warmup::From(start) => start + (peak - start) * step as f64 / warmup as f64,
                    };
                }
                if step > decay_end || decay_end <= warmup {
                    return min;
                }
                let ratio = (step - warmup) as f64 / (decay_end - warmup) as f64;
                let coeff = 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos());
                min + coeff * (peak - min)
            }
        }
    }
}
