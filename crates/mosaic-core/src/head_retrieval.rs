//! One head's retrieval, `y = softmax(scale q k^T) v` for `t` queries against `n` keys, and its
//! backward pass, on slices: what the fused causal retrieval (the contextual memories, GPT's
//! attention) and the fused bank retrieval (the persistent memory) run for each (batch, head).
//! The weights are computed into one buffer, turned into weights in place (the masked entries
//! are never exponentiated) and kept for the backward pass:
//!
//! ```text
//! dW = dy v^T;  dS = W * (dW - rowsum(dW * W));  dq = scale dS k;  dk = scale dS^T q;  dv = W^T dy
//! ```

use crate::matrix::{Mat, mat, matmul};
use crate::row_kernels::{Visible, softmax_backward_in_place, softmax_in_place};

/// One head's operands: `q` `(t, hs)`, `k` and `v` `(n, hs)`.
#[derive(Clone, Copy)]
pub struct Head<'a> {
    pub q: Mat<'a>,
    pub k: Mat<'a>,
    pub v: Mat<'a>,
    pub scale: f32,
}

impl Head<'_> {
    /// Writes the weights `w` `(t, n)`, zero where `visible` hides a key, and the retrieval
    /// `y` `(t, hs)`.
    pub fn forward(&self, visible: Visible, w: &mut [f32], y: &mut [f32]) {
        let n = self.k.rows();
        matmul(w, self.q, self.k.t(), self.scale, false);
        softmax_in_place(w, n, 0, visible);
        matmul(y, mat(w, self.q.rows(), n), self.v, 1.0, false);
    }

    /// From the weights `w` and the output's gradient `dy` `(t, hs)`: writes `dq`, and writes
    /// (or adds to, with `accumulate`) `dk` and `dv`. `ds` is scratch room for `(t, n)`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        w: &[f32],
        dy: Mat,
        ds: &mut [f32],
        dq: &mut [f32],
        dk: &mut [f32],
        dv: &mut [f32],
        accumulate: bool,
    ) {
        let (t, n) = (self.q.rows(), self.k.rows());
        matmul(ds, dy, self.v.t(), 1.0, false);
        softmax_backward_in_place(&w[..t * n], &mut ds[..t * n], n);
        let dsb = mat(ds, t, n);
        matmul(dq, dsb, self.k, self.scale, false);
        matmul(dk, dsb.t(), self.q, self.scale, accumulate);
        matmul(dv, mat(w, t, n).t(), dy, 1.0, accumulate);
    }
}
