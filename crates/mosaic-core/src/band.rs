//! Which stored pairs a memory reads. At position `t` a contextual memory holds the pairs
//! `i` with `t + 1 - window <= i <= t - offset`: `offset` 1 and no window is the v1 memory's
//! strictly-past rule, a window `h` the v2 short-term memory (the last `h - 1` pairs), a
//! larger offset `m` the v2 long-term memory (the pairs older than `m` steps), and offset 0 a
//! transformer's causal attention (the present included).

use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Band {
    /// The newest pair read at position `t` is `t - offset`.
    pub offset: usize,
    /// The oldest pair read is `t + 1 - window`; `usize::MAX` for no limit.
    pub window: usize,
}

impl Band {
    /// A transformer's causal attention: `i <= t`.
    pub const CAUSAL: Band = Band {
        offset: 0,
        window: usize::MAX,
    };

    /// The v1 contextual memory: every strictly-past pair, `i <= t - 1`.
    pub const PAST: Band = Band {
        offset: 1,
        window: usize::MAX,
    };

    /// The v2 short-term memory: the pairs of the last `window` positions, `t + 1 - window
    /// <= i <= t - 1`.
    pub fn short_term(window: usize) -> Band {
        Band { offset: 1, window }
    }

    /// The v2 long-term memory: the pairs older than `offset` steps, `i <= t - offset`.
    pub fn long_term(offset: usize) -> Band {
        Band {
            offset,
            window: usize::MAX,
        }
    }

    /// The pairs position `t` reads, possibly none.
    pub fn pairs(self, t: usize) -> Range<usize> {
        let end = (t + 1).saturating_sub(self.offset);
        let start = (t + 1).saturating_sub(self.window).min(end);
        start..end
    }

    /// How many pairs position `t` reads: the `n` of the adaptive bandwidth.
    pub fn count(self, t: usize) -> usize {
        self.pairs(t).len()
    }

    /// The first positions, which read nothing and answer exactly zero.
    pub fn empty_rows(self) -> usize {
        self.offset
    }

    /// The keys row `t` of a `keys`-long score row takes its softmax over: [`Band::pairs`], or
    /// key 0 alone where that is empty, so that the row has something to normalise (a row of
    /// -inf gives NaN, and NaN survives the caller's zeroing in the backward pass).
    pub fn softmax_range(self, t: usize, keys: usize) -> Range<usize> {
        let Range { start, end } = self.pairs(t);
        match end == 0 || start >= keys {
            true => 0..1,
            false => start..end.min(keys),
        }
    }
}
