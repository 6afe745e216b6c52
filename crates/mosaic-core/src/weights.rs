//! A unit's parameters under the official PyTorch implementation's names, both ways: read
//! into a model from a `state_dict` (loading) or read out of one into a `state_dict`
//! (exporting). Each unit names its own parameters once, in its `visit_official`, and calls
//! one method per parameter; the implementation decides the direction. Where the tensors come
//! from or go (a safetensors file) is the caller's business.

use burn::module::Param;
use burn::tensor::Tensor;

/// Named float tensors in PyTorch's layout, visited parameter by parameter: a loader replaces
/// each parameter with the tensor of that name, an exporter records each parameter's value
/// under it.
pub trait Weights {
    type Error;

    /// A parameter stored as is: vectors, gains, banks, embeddings.
    fn param<const D: usize>(
        &self,
        name: &str,
        p: &mut Param<Tensor<D>>,
    ) -> Result<(), Self::Error>;

    /// A linear map: PyTorch stores `(d_out, d_in)`, we store `(d_in, d_out)`.
    fn linear(&self, name: &str, p: &mut Param<Tensor<2>>) -> Result<(), Self::Error>;

    /// A kernel-size-1 convolution `(d_out, d_in, 1)`, which is a linear map.
    fn conv1(&self, name: &str, p: &mut Param<Tensor<2>>) -> Result<(), Self::Error>;

    /// A parameter PyTorch holds twice, tied (the embedding and the output head): a
    /// `state_dict` lists it under both names; a loader takes either, an exporter writes both.
    fn tied<const D: usize>(
        &self,
        names: [&str; 2],
        p: &mut Param<Tensor<D>>,
    ) -> Result<(), Self::Error>;

    /// `count` banks `(count, H, size, hs)`, stored one per name (`name(j)`, `(1, H, size, hs)`
    /// each).
    fn banks(
        &self,
        name: &dyn Fn(usize) -> String,
        p: &mut Param<Tensor<4>>,
    ) -> Result<(), Self::Error> {
        let count = p.dims()[0];
        let mut parts = Vec::with_capacity(count);
        for j in 0..count {
            let mut part = Param::from_tensor(p.val().narrow(0, j, 1));
            self.param(&name(j), &mut part)?;
            parts.push(part.val());
        }
        *p = Param::from_tensor(Tensor::cat(parts, 0));
        Ok(())
    }
}
