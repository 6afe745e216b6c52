//! The values of a contextual memory from their projection as one operation with its own
//! backward pass, on a GPU: the one-step-ahead mix `vbar_t = (1 - c_h) w_{t+1} + c_h w_t`, the
//! L2 normalisation and the per-head scale `exp(10 nu_h)` ([`crate::ValueFeatures`]). As tensor
//! operations it is a zero block, two slice assignments, five elementwise operations and the
//! normalisation forward, and their backward with a reduction per broadcast axis for each
//! per-head scalar (about 24 launches per memory and step); here it is one kernel forward and
//! one backward ([`gpu`], one thread per `(batch, head, step)`, reading the projection through
//! its strides, so the heads' split costs no copy) with one sum for each per-head gradient. On
//! the CPU the tensor form stays, whose numbers the official code's are checked against.

mod gpu;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, backend_extension};
use burn::tensor::Tensor;

use crate::backward::register;

/// The values `(B, H, T, hs)` from the projection `w` `(B, H, T, hs)`, the mix `c` `(H)` and
/// the log-scale `nu` `(H)`; only where [`crate::dispatch::gpu_kernels`] says so.
pub fn fused_values(w: Tensor<4>, mix: Tensor<1>, nu: Tensor<1>) -> Tensor<4> {
    Tensor::from_dispatch(Dispatch::values(
        w.into_dispatch(),
        mix.into_dispatch(),
        nu.into_dispatch(),
    ))
}

#[backend_extension(Cube, Autodiff, Fusion)]
pub trait ValuesBackend: Backend {
    #[fusion(dtype = w, shape = w)]
    fn values(
        w: FloatTensor<Self>,
        mix: FloatTensor<Self>,
        nu: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// The backward pass, an operation of its own so that it queues lazily.
#[backend_extension(Cube, Fusion)]
pub trait ValuesGradBackend: Backend {
    /// The gradients of the projection, the mix and the log-scale.
    #[fusion(meta = |w, mix, nu, _grad| (w.clone(), mix.clone(), nu.clone()))]
    fn values_backward(
        w: FloatTensor<Self>,
        mix: FloatTensor<Self>,
        nu: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

#[derive(Debug)]
struct Values;

impl<B: ValuesGradBackend> Backward<B, 3> for Values {
    /// The projection, the mix and the log-scale.
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (w, mix, nu) = ops.state;
        let (dw, dmix, dnu) = B::values_backward(w, mix, nu, grad);
        register!(B, ops.parents, [dw, dmix, dnu], grads);
    }
}

impl<B, C> ValuesBackend for Autodiff<B, C>
where
    B: ValuesBackend + ValuesGradBackend,
    C: CheckpointStrategy,
{
    fn values(
        w: FloatTensor<Self>,
        mix: FloatTensor<Self>,
        nu: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let (w, w_node) = w.into_parts();
        let (mix, mix_node) = mix.into_parts();
        let (nu, nu_node) = nu.into_parts();
        match Values
            .prepare::<C>([w_node, mix_node, nu_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let v = B::values(w.clone(), mix.clone(), nu.clone());
                prep.finish((w, mix, nu), v)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::values(w, mix, nu)),
        }
    }
}
