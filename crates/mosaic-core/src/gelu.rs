//! GPT-2's tanh-approximated GELU as one operation with its own backward pass on the `flex`
//! CPU backend. Burn records it as a dozen elementwise operations over the `(B, T, 4d)` hidden
//! layer, each computing `powf`, `expm1` or `tanh` one float at a time; here it is one
//! vectorised pass each way, the backward recomputing `tanh` from the saved input. It lives
//! beside the memories' fused operations because it shares their kernels; only the GPT
//! baseline uses it.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{Tensor, activation};
use rayon::prelude::*;

use crate::dispatch::cpu_kernels;
use crate::matrix::{contiguous, tensor};
use crate::row_kernels;

/// `x / 2 (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))`.
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    match cpu_kernels(&x.device(), x.dtype()) {
        true => Tensor::from_dispatch(Dispatch::gelu_tanh(x.into_dispatch())),
        false => activation::gelu_approximate(x),
    }
}

#[backend_extension(Flex, Autodiff)]
pub trait GeluBackend: Backend {
    fn gelu_tanh(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// GELU of `x`, or with `grad` its backward, over chunks of the elements in parallel.
fn map(x: &FlexTensor, grad: Option<&FlexTensor>) -> FlexTensor {
    let (x, shape) = contiguous(x);
    let grad = grad.map(|g| contiguous(g).0);
    let xs = x.storage::<f32>();
    let gs = grad.as_ref().map(|g| g.storage::<f32>());
    let mut out = vec![0.0f32; xs.len()];
    const CHUNK: usize = 1 << 14;
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(i, o)| {
        let at = i * CHUNK;
        let g = gs.map(|g| &g[at..at + o.len()]);
        row_kernels::gelu(&xs[at..at + o.len()], g, o);
    });
    tensor(out, shape)
}

impl GeluBackend for Flex {
    fn gelu_tanh(x: FlexTensor) -> FlexTensor {
        map(&x, None)
    }
}

#[derive(Debug)]
struct GeluTanh;

impl Backward<Flex, 1> for GeluTanh {
    /// The input.
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let x = ops.state;
        // grad * gelu'(x).
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| map(&x, Some(&grad)));
    }
}

impl<C: CheckpointStrategy> GeluBackend for Autodiff<Flex, C> {
    fn gelu_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let (x, node) = x.into_parts();
        match GeluTanh.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = Flex::gelu_tanh(x.clone());
                prep.finish(x, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::gelu_tanh(x)),
        }
    }
}
