//! `x W` for a weight stored `(d_in, d_out)`, the product behind every projection, as one
//! operation with its own backward pass on the `flex` CPU backend.
//!
//! Burn's CPU backend runs a `(B, T, d_in)` input against a shared weight as `B` separate
//! single-threaded products (each packing the weight again), differentiates it as a batched
//! matmul (a `(B, d_in, d_out)` weight gradient, then summed), and allocates every output
//! cleared and then copied into an aligned buffer. Here the rows of every batch are one
//! `(B T, d_in)` matrix: one product forward, `dx = dy W^T` and `dW = x^T dy` backward, each
//! on all threads, each writing a fresh buffer once.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, binary};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{Tensor, module};

use crate::dispatch::cpu_kernels;
use crate::matrix::{product, view};

/// `x W`: `x` `(..., d_in)`, `weight` `(d_in, d_out)`, no bias.
pub fn linear<const D: usize>(x: Tensor<D>, weight: Tensor<2>) -> Tensor<D> {
    if !cpu_kernels(&x.device(), x.dtype()) {
        return module::linear(x, weight, None);
    }
    let mut dims = x.dims();
    let [d_in, d_out] = weight.dims();
    let rows = dims[..D - 1].iter().product::<usize>();
    let x = x.reshape([rows, d_in]);
    let y = Tensor::<2>::from_dispatch(Dispatch::linear_product(
        x.into_dispatch(),
        weight.into_dispatch(),
    ));
    dims[D - 1] = d_out;
    y.reshape(dims)
}

#[backend_extension(Flex, Autodiff)]
pub trait LinearBackend: Backend {
    /// `x W`, `x` `(n, d_in)`, `W` `(d_in, d_out)`.
    fn linear_product(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl LinearBackend for Flex {
    fn linear_product(x: FlexTensor, weight: FlexTensor) -> FlexTensor {
        product(&view(&x), false, &view(&weight), false)
    }
}

#[derive(Debug)]
struct LinearProduct;

impl Backward<Flex, 2> for LinearProduct {
    /// The input and the weight.
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, weight) = ops.state;
        // dx = dy W^T, dW = x^T dy.
        binary::<Flex, _, _>(
            ops.parents,
            ops.node,
            grads,
            |grad| product(&view(&grad), false, &view(&weight), true),
            |grad| product(&view(&x), true, &view(&grad), false),
        );
    }
}

impl<C: CheckpointStrategy> LinearBackend for Autodiff<Flex, C> {
    fn linear_product(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (weight, w_node) = weight.into_parts();
        match LinearProduct
            .prepare::<C>([x_node, w_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = Flex::linear_product(x.clone(), weight.clone());
                prep.finish((x, weight), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::linear_product(x, weight)),
        }
    }
}
