//! Reading a unit's parameters from the official PyTorch implementation's `state_dict`. Each
//! unit knows the official names of its own parameters; where they come from (a safetensors
//! file) is the caller's business.

use burn::module::Param;
use burn::tensor::Tensor;

/// Named float tensors in PyTorch's layout, already on the model's device.
pub trait Weights {
    type Error;

    /// Whether the source holds `name`.
    fn contains(&self, name: &str) -> bool;

    /// The tensor `name`, which must have shape `shape`.
    fn tensor<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Tensor<D>, Self::Error>;

    /// A parameter stored as is: vectors, gains, banks, embeddings.
    fn param<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Param<Tensor<D>>, Self::Error> {
        self.tensor(name, shape).map(Param::from_tensor)
    }

    /// A linear map: PyTorch stores `(d_out, d_in)`, we store `(d_in, d_out)`.
    fn linear(
        &self,
        name: &str,
        d_out: usize,
        d_in: usize,
    ) -> Result<Param<Tensor<2>>, Self::Error> {
        self.tensor(name, [d_out, d_in])
            .map(|w| Param::from_tensor(w.transpose()))
    }

    /// A kernel-size-1 convolution `(d_out, d_in, 1)`, which is a linear map.
    fn conv1(
        &self,
        name: &str,
        d_out: usize,
        d_in: usize,
    ) -> Result<Param<Tensor<2>>, Self::Error> {
        self.tensor(name, [d_out, d_in, 1])
            .map(|w| Param::from_tensor(w.reshape([d_out, d_in]).transpose()))
    }
}
