//! Row kernels of the fused CPU operations: softmax, log-softmax and their backward passes,
//! over contiguous rows of `f32`.
//!
//! They are written as plain loops over fixed-width lanes so that the compiler vectorises them,
//! and compiled twice: for AVX2 with FMA (chosen at run time where the CPU has it) and for the
//! baseline target. `exp` is Cephes' `expf` (range reduction by powers of two, a degree-6
//! polynomial; about 1 ulp), which vectorises where libm's does not.

use std::ops::Range;

use crate::band::Band;

/// Lanes of the accumulators: two AVX2 registers, or one AVX-512 register.
const LANES: usize = 16;

/// Below this, `exp` is 0 (the smallest normal float is `exp(-87.34)`); `-inf` included.
const EXP_LOW: f32 = -87.336_55;
const EXP_HIGH: f32 = 88.722_83;

#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer, without a rounding
    // instruction the baseline target lacks.
    const ROUND: f32 = 12_582_912.0;
    let c = x.clamp(EXP_LOW, EXP_HIGH);
    let n = (c * LOG2E + ROUND) - ROUND;
    let r = c - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_65;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^n from the bits: n + 127 lands in the low mantissa bits of (n + 127 + 2^23), and a
    // shift moves it into the exponent (an `as i32` conversion would not vectorise).
    let scale = f32::from_bits((n + (127.0 + 8_388_608.0)).to_bits() << 23);
    if x < EXP_LOW { 0.0 } else { y * scale }
}

#[inline(always)]
fn max(row: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a = if *x > *a { *x } else { *a };
        }
    }
    let m = tail.iter().fold(f32::NEG_INFINITY, |m, x| m.max(*x));
    acc.iter().fold(m, |m, x| m.max(*x))
}

/// `sum(a * b)`, or `sum(a)` without `b`, in lanes.
#[inline(always)]
fn dot(a: &[f32], b: Option<&[f32]>) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = a.chunks_exact(LANES);
    let tail = chunks.remainder();
    let mut total = 0.0;
    match b {
        Some(b) => {
            let b_chunks = b.chunks_exact(LANES);
            let b_tail = b_chunks.remainder();
            for (c, d) in chunks.zip(b_chunks) {
                for ((s, x), y) in acc.iter_mut().zip(c).zip(d) {
                    *s += x * y;
                }
            }
            total += tail.iter().zip(b_tail).map(|(x, y)| x * y).sum::<f32>();
        }
        None => {
            for c in chunks {
                for (s, x) in acc.iter_mut().zip(c) {
                    *s += x;
                }
            }
            total += tail.iter().sum::<f32>();
        }
    }
    acc.iter().sum::<f32>() + total
}

/// Which entries of each row a softmax reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visible {
    /// The whole row.
    All,
    /// Rows are the query rows of `(queries, keys)` matrices of `queries` rows each; row `i`
    /// of a matrix reads the keys [`Band::softmax_range`] says and gives the others exactly 0
    /// (a row with nothing to read reads key 0, to be zeroed by the caller).
    Band { queries: usize, band: Band },
}

impl Visible {
    #[inline(always)]
    fn range(self, row_index: usize, row: usize) -> Range<usize> {
        match self {
            Visible::All => 0..row,
            Visible::Band { queries, band } => band.softmax_range(row_index % queries, row),
        }
    }
}

/// Softmax of one row in place over the entries `visible`; the others become 0. A row of
/// -inf only (nothing to attend to) gives NaN, as Burn's softmax.
#[inline(always)]
fn softmax_row(x: &mut [f32], visible: Range<usize>) {
    let (before, x) = x.split_at_mut(visible.start);
    before.fill(0.0);
    let (x, hidden) = x.split_at_mut(visible.len());
    hidden.fill(0.0);
    let m = max(x);
    x.iter_mut().for_each(|v| *v = exp(*v - m));
    let inv = 1.0 / dot(x, None);
    x.iter_mut().for_each(|v| *v *= inv);
}

/// Softmax's backward for one row, in place: `g` becomes `y * (g - sum(g * y))`.
#[inline(always)]
fn softmax_backward_row(y: &[f32], g: &mut [f32]) {
    let d = dot(y, Some(g));
    for (g, y) in g.iter_mut().zip(y) {
        *g = y * (*g - d);
    }
}

/// `out = softmax(x)` for each row (`log`: `log_softmax`), rows numbered from `first_row`.
#[inline(always)]
fn softmax_rows_generic(
    x: &[f32],
    out: &mut [f32],
    row: usize,
    log: bool,
    first_row: usize,
    visible: Visible,
) {
    if !log {
        out.copy_from_slice(x);
        return softmax_in_place_generic(out, row, first_row, visible);
    }
    for (r, (x, o)) in x
        .chunks_exact(row)
        .zip(out.chunks_exact_mut(row))
        .enumerate()
    {
        let range = visible.range(first_row + r, row);
        let n = range.end;
        debug_assert_eq!(range.start, 0, "log-softmax rows read a prefix");
        let (x, (o, hidden)) = (&x[..n], o.split_at_mut(n));
        hidden.fill(0.0);
        let m = max(x);
        for (o, x) in o.iter_mut().zip(x) {
            *o = exp(*x - m);
        }
        let shift = m + dot(o, None).ln();
        for (o, x) in o.iter_mut().zip(x) {
            *o = *x - shift;
        }
    }
}

/// `dx = y * (g - sum(g * y))` for each row (softmax's backward from its output `y`), or with
/// `log`, `dx = g - exp(y) * sum(g)` (log-softmax's, from its output).
#[inline(always)]
fn backward_rows_generic(y: &[f32], g: &[f32], dx: &mut [f32], row: usize, log: bool) {
    if !log {
        dx.copy_from_slice(g);
        return softmax_backward_in_place_generic(y, dx, row);
    }
    for ((y, g), dx) in y
        .chunks_exact(row)
        .zip(g.chunks_exact(row))
        .zip(dx.chunks_exact_mut(row))
    {
        let total = dot(g, None);
        for ((d, y), g) in dx.iter_mut().zip(y).zip(g) {
            *d = g - exp(*y) * total;
        }
    }
}

/// Softmax of each `row`-long row of `x` in place, reading the entries `visible` says (the
/// others become 0); rows numbered from `first_row`. The one softmax row loop: the
/// out-of-place form copies and comes here.
#[inline(always)]
fn softmax_in_place_generic(x: &mut [f32], row: usize, first_row: usize, visible: Visible) {
    for (r, x) in x.chunks_exact_mut(row).enumerate() {
        softmax_row(x, visible.range(first_row + r, row));
    }
}

/// Softmax's backward in place: `g` becomes `y * (g - sum(g * y))`, row by row.
#[inline(always)]
fn softmax_backward_in_place_generic(y: &[f32], g: &mut [f32], row: usize) {
    for (y, g) in y.chunks_exact(row).zip(g.chunks_exact_mut(row)) {
        softmax_backward_row(y, g);
    }
}

/// `sqrt(2 / pi)` and the cubic coefficient of the tanh approximation of GELU.
const GELU_A: f32 = 0.797_884_6;
const GELU_B: f32 = 0.044_715;

/// `tanh(u) = 1 - 2 / (exp(2u) + 1)`: exact at both limits (`exp` gives 0 or inf), absolute
/// error about 1e-7 near 0.
#[inline(always)]
fn tanh(u: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * u) + 1.0)
}

/// `gelu(x) = x / 2 (1 + tanh(a (x + b x^3)))` (GPT-2's), or with `grad`, its derivative times
/// `grad`, elementwise.
#[inline(always)]
fn gelu_generic(x: &[f32], grad: Option<&[f32]>, out: &mut [f32]) {
    match grad {
        None => {
            for (o, &x) in out.iter_mut().zip(x) {
                let t = tanh(GELU_A * (x + GELU_B * x * x * x));
                *o = 0.5 * x * (1.0 + t);
            }
        }
        Some(g) => {
            for ((o, &x), &g) in out.iter_mut().zip(x).zip(g) {
                let t = tanh(GELU_A * (x + GELU_B * x * x * x));
                let du = GELU_A * (1.0 + 3.0 * GELU_B * x * x);
                *o = g * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du);
            }
        }
    }
}

/// `pub fn $name(args)` running `$generic(args)`, which is compiled a second time for AVX2
/// with FMA, that copy chosen at run time where the CPU has both.
macro_rules! dispatch {
    ($(#[$doc:meta])* $name:ident => $generic:ident($($arg:ident: $ty:ty),* $(,)?)) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) {
                    $generic($($arg),*)
                }
                if has_avx2() {
                    // SAFETY: the CPU has AVX2 and FMA, checked just above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $generic($($arg),*)
        }
    };
}

dispatch!(
    /// Softmax (or log-softmax) of each `row`-long row of `x` into `out`, reading the entries
    /// `visible` says; rows are numbered from `first_row`.
    softmax_rows => softmax_rows_generic(
        x: &[f32],
        out: &mut [f32],
        row: usize,
        log: bool,
        first_row: usize,
        visible: Visible,
    )
);

dispatch!(
    /// The backward pass of [`softmax_rows`] from its output `y` and the output's gradient `g`.
    backward_rows => backward_rows_generic(y: &[f32], g: &[f32], dx: &mut [f32], row: usize, log: bool)
);

dispatch!(
    /// Softmax of each `row`-long row of `x` in place, over the entries `visible` says (rows
    /// numbered from `first_row`).
    softmax_in_place => softmax_in_place_generic(x: &mut [f32], row: usize, first_row: usize, visible: Visible)
);

dispatch!(
    /// Softmax's backward from its output `y`, in place on the output's gradient `g`.
    softmax_backward_in_place => softmax_backward_in_place_generic(y: &[f32], g: &mut [f32], row: usize)
);

dispatch!(
    /// GELU (tanh form) of `x` into `out`; with `grad`, its backward: `grad * gelu'(x)`.
    gelu => gelu_generic(x: &[f32], grad: Option<&[f32]>, out: &mut [f32])
);

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against f64's exp over the range softmax uses, and the limits.
    #[test]
    fn exp_is_within_two_ulp() {
        let mut worst = 0.0f64;
        for i in 0..=200_000 {
            let x = -87.0 + 175.0 * i as f32 / 200_000.0;
            let want = (x as f64).exp();
            let rel = ((exp(x) as f64 - want) / want).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 2.5e-7, "relative error {worst:e}");
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(0.0), 1.0);
    }

    /// Against f64's tanh form and its derivative by central differences.
    #[test]
    fn gelu_matches_f64() {
        let x: Vec<f32> = (0..2001).map(|i| (i as f32 - 1000.0) / 100.0).collect();
        let g = vec![1.0f32; x.len()];
        let (mut y, mut dy) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        gelu(&x, None, &mut y);
        gelu(&x, Some(&g), &mut dy);
        let f = |x: f64| {
            0.5 * x * (1.0 + (0.797_884_560_802_865_4 * (x + 0.044715 * x.powi(3))).tanh())
        };
        for ((&x, &y), &dy) in x.iter().zip(&y).zip(&dy) {
            let x = x as f64;
            assert!(
                (y as f64 - f(x)).abs() < 2e-6 * (1.0 + x.abs()),
                "gelu({x}) = {y}"
            );
            let d = (f(x + 1e-5) - f(x - 1e-5)) / 2e-5;
            assert!((dy as f64 - d).abs() < 1e-5, "gelu'({x}) = {dy}, want {d}");
        }
    }

    /// Against the obvious implementation in f64, on a row longer than the lanes and one
    /// shorter, through the dispatched (AVX2 where present) and the baseline kernels.
    #[test]
    fn rows_match_the_obvious_form() {
        for row in [5, 37] {
            let x: Vec<f32> = (0..row * 3)
                .map(|i| ((i * 7919) % 97) as f32 / 9.0 - 5.0)
                .collect();
            let g: Vec<f32> = (0..row * 3)
                .map(|i| ((i * 104729) % 89) as f32 / 40.0 - 1.0)
                .collect();
            for log in [false, true] {
                let (mut fast, mut base) = (vec![0.0; x.len()], vec![0.0; x.len()]);
                softmax_rows(&x, &mut fast, row, log, 0, Visible::All);
                softmax_rows_generic(&x, &mut base, row, log, 0, Visible::All);
                if !log {
                    let mut inplace = x.clone();
                    softmax_in_place(&mut inplace, row, 0, Visible::All);
                    assert_eq!(inplace, fast);
                    let mut dinplace = g.clone();
                    softmax_backward_in_place(&fast, &mut dinplace, row);
                    let mut dfast = vec![0.0; x.len()];
                    backward_rows(&fast, &g, &mut dfast, row, false);
                    assert_eq!(dinplace, dfast);
                }
                let (mut dfast, mut dbase) = (vec![0.0; x.len()], vec![0.0; x.len()]);
                backward_rows(&fast, &g, &mut dfast, row, log);
                backward_rows_generic(&base, &g, &mut dbase, row, log);
                for r in 0..3 {
                    let xs: Vec<f64> = x[r * row..(r + 1) * row]
                        .iter()
                        .map(|&v| v as f64)
                        .collect();
                    let gs: Vec<f64> = g[r * row..(r + 1) * row]
                        .iter()
                        .map(|&v| v as f64)
                        .collect();
                    let m = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = xs.iter().map(|v| (v - m).exp()).sum();
                    let p: Vec<f64> = xs.iter().map(|v| (v - m).exp() / z).collect();
                    let dot: f64 = p.iter().zip(&gs).map(|(p, g)| p * g).sum();
                    let gsum: f64 = gs.iter().sum();
                    for i in 0..row {
                        let (want, dwant) = match log {
                            false => (p[i], p[i] * (gs[i] - dot)),
                            true => (p[i].ln(), gs[i] - p[i] * gsum),
                        };
                        let k = r * row + i;
                        for (got, dgot) in [(fast[k], dfast[k]), (base[k], dbase[k])] {
                            assert!((got as f64 - want).abs() < 1e-5, "{log} {got} {want}");
                            assert!((dgot as f64 - dwant).abs() < 1e-5, "{log} {dgot} {dwant}");
                        }
                    }
                }
            }
        }
    }
}
