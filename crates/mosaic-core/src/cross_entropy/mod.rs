//! The cross-entropy of each row of logits against its target as one operation with its own
//! backward pass, `dx = g (softmax(x) - onehot(t))`, on a GPU. As tensor operations the loss is
//! a log-softmax (max, subtract, exp, sum, log, subtract), a gather, the masking of ignored
//! targets and a mean, each with its backward: about 36 of a training step's launches. Here it
//! is one kernel each way ([`gpu`], one thread per row), the log-sum-exp recomputed in the
//! backward pass rather than kept. On the CPU the tensor form stays (over the fused
//! log-softmax), whose numbers the official code's are checked against.

mod gpu;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, backend_extension};
use burn::tensor::{Int, Tensor};

use crate::backward::register;

/// `logsumexp(logits[i]) - logits[i, targets[i]]` for each row `i` of `logits` `(N, V)`, 0
/// where the target is negative; only where [`crate::dispatch::gpu_kernels`] says so.
pub fn fused_cross_entropy_rows(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    // As floats: exact for any vocabulary under 2^24 tokens, and one kernel type.
    let targets = targets.float();
    Tensor::from_dispatch(Dispatch::cross_entropy_rows(
        logits.into_dispatch(),
        targets.into_dispatch(),
    ))
}

#[backend_extension(Cube, Autodiff, Fusion)]
pub trait CrossEntropyBackend: Backend {
    /// The loss of each row `(N)` of `logits` `(N, V)` against `targets` `(N)` (token ids as
    /// floats, negative: ignored).
    #[fusion(dtype = logits, shape = targets)]
    fn cross_entropy_rows(
        logits: FloatTensor<Self>,
        targets: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// The backward pass, an operation of its own so that it queues lazily.
#[backend_extension(Cube, Fusion)]
pub trait CrossEntropyGradBackend: Backend {
    /// The gradient of the logits from the logits, the targets and each row's gradient.
    #[fusion(dtype = logits, shape = logits)]
    fn cross_entropy_rows_backward(
        logits: FloatTensor<Self>,
        targets: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

#[derive(Debug)]
struct CrossEntropyRows;

impl<B: CrossEntropyGradBackend> Backward<B, 1> for CrossEntropyRows {
    /// The logits and the targets.
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (logits, targets) = ops.state;
        let dx = B::cross_entropy_rows_backward(logits, targets, grad);
        register!(B, ops.parents, [dx], grads);
    }
}

impl<B, C> CrossEntropyBackend for Autodiff<B, C>
where
    B: CrossEntropyBackend + CrossEntropyGradBackend,
    C: CheckpointStrategy,
{
    fn cross_entropy_rows(
        logits: FloatTensor<Self>,
        targets: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let (logits, node) = logits.into_parts();
        // The targets are data: no gradient flows to them.
        let (targets, _) = targets.into_parts();
        match CrossEntropyRows
            .prepare::<C>([node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::cross_entropy_rows(logits.clone(), targets.clone());
                prep.finish((logits, targets), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::cross_entropy_rows(logits, targets)),
        }
    }
}
