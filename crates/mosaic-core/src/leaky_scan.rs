//! The leaky average's recurrence, `kbar_t = lambda kbar_{t-1} + (1 - lambda) u_t`, as one
//! operation with its own backward pass on the `flex` CPU backend: a sequential scan per
//! (batch, head), O(T) work and one pass over memory each way, where the tensor form needs a
//! matmul per chunk, padding and copies. The backward pass runs the adjoint recurrence backwards,
//! `a_t = dy_t + lambda a_{t+1}`: then `du_t = (1 - lambda) a_t` and
//! `dlambda = sum_t a_t . (kbar_{t-1} - u_t)`, and the decay rate `b` (`lambda = exp(-b)`) gets
//! `-lambda dlambda`.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::Tensor;
use rayon::prelude::*;

use crate::backward::register;
use crate::matrix::{contiguous, tensor};

/// The leaky averages of `u` `(B, H, T, hs)` with decay rates `decay` `(H,)`; only where
/// [`crate::dispatch::cpu_kernels`] says so.
pub fn leaky_scan(u: Tensor<4>, decay: Tensor<1>) -> Tensor<4> {
    Tensor::from_dispatch(Dispatch::leaky_scan(
        u.into_dispatch(),
        decay.into_dispatch(),
    ))
}

#[backend_extension(Flex, Autodiff)]
pub trait LeakyBackend: Backend {
    fn leaky_scan(u: FloatTensor<Self>, decay: FloatTensor<Self>) -> FloatTensor<Self>;

    /// The gradients of `u` and of `decay` from the output `kbar` and its gradient.
    fn leaky_scan_backward(
        u: FloatTensor<Self>,
        decay: FloatTensor<Self>,
        kbar: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
}

/// `lambda_h = exp(-b_h)` of a `(H,)` decay tensor.
fn lambdas(decay: &FlexTensor) -> Vec<f32> {
    let (d, _) = contiguous(decay);
    d.storage::<f32>().iter().map(|b| (-b).exp()).collect()
}

impl LeakyBackend for Flex {
    fn leaky_scan(u: FlexTensor, decay: FlexTensor) -> FlexTensor {
        let (u, shape) = contiguous(&u);
        let [h, t, hs] = [shape[1], shape[2], shape[3]];
        let lambda = lambdas(&decay);
        let us = u.storage::<f32>();
        let mut out = vec![0.0f32; us.len()];
        out.par_chunks_mut(t * hs)
            .zip(us.par_chunks(t * hs))
            .enumerate()
            .for_each(|(bh, (out, u))| {
                let l = lambda[bh % h];
                let mut state = vec![0.0f32; hs];
                for (o, u) in out.chunks_exact_mut(hs).zip(u.chunks_exact(hs)) {
                    for ((s, o), u) in state.iter_mut().zip(o.iter_mut()).zip(u) {
                        *s = l * *s + (1.0 - l) * u;
                        *o = *s;
                    }
                }
            });
        tensor(out, shape)
    }

    fn leaky_scan_backward(
        u: FlexTensor,
        decay: FlexTensor,
        kbar: FlexTensor,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor) {
        let (u, shape) = contiguous(&u);
        let ((kbar, _), (grad, _)) = (contiguous(&kbar), contiguous(&grad));
        let [h, t, hs] = [shape[1], shape[2], shape[3]];
        let lambda = lambdas(&decay);
        let (us, ks, gs) = (
            u.storage::<f32>(),
            kbar.storage::<f32>(),
            grad.storage::<f32>(),
        );
        let mut du = vec![0.0f32; us.len()];
        // dlambda of each (batch, head), summed per head below.
        let partial: Vec<f64> = du
            .par_chunks_mut(t * hs)
            .enumerate()
            .map(|(bh, du)| {
                let l = lambda[bh % h];
                let at = bh * t * hs;
                let (u, k, g) = (
                    &us[at..at + t * hs],
                    &ks[at..at + t * hs],
                    &gs[at..at + t * hs],
                );
                let mut adj = vec![0.0f32; hs];
                let mut dl = 0.0f64;
                let zeros = vec![0.0f32; hs];
                for step in (0..t).rev() {
                    let row = step * hs..(step + 1) * hs;
                    // kbar_{t-1}, zero before the first step.
                    let before = match step {
                        0 => &zeros[..],
                        _ => &k[row.start - hs..row.start],
                    };
                    let mut dot = 0.0f32;
                    for ((((a, d), g), u), before) in adj
                        .iter_mut()
                        .zip(&mut du[row.clone()])
                        .zip(&g[row.clone()])
                        .zip(&u[row])
                        .zip(before)
                    {
                        *a = g + l * *a;
                        *d = (1.0 - l) * *a;
                        dot += *a * (before - u);
                    }
                    dl += dot as f64;
                }
                dl
            })
            .collect();
        let mut ddecay = vec![0.0f32; h];
        for (bh, dl) in partial.iter().enumerate() {
            ddecay[bh % h] += (-(lambda[bh % h] as f64) * dl) as f32;
        }
        (tensor(du, shape), tensor(ddecay, vec![h]))
    }
}

impl<B: LeakyBackend, C: CheckpointStrategy> LeakyBackend for Autodiff<B, C> {
    fn leaky_scan(u: FloatTensor<Self>, decay: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct LeakyScan;

        impl<B: LeakyBackend> Backward<B, 2> for LeakyScan {
            /// The inputs and the output.
            type State = [FloatTensor<B>; 3];

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [u, decay, kbar] = ops.state;
                let grad = grads.consume::<B>(&ops.node);
                let (du, ddecay) = B::leaky_scan_backward(u, decay, kbar, grad);
                register!(B, ops.parents, [du, ddecay], grads);
            }
        }

        let (u, u_node) = u.into_parts();
        let (decay, decay_node) = decay.into_parts();
        match LeakyScan
            .prepare::<C>([u_node, decay_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let kbar = B::leaky_scan(u.clone(), decay.clone());
                prep.finish([u, decay, kbar.clone()], kbar)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::leaky_scan(u, decay)),
        }
    }

    fn leaky_scan_backward(
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        unreachable!("called by the backward pass of leaky_scan only, on the inner backend")
    }
}
