//! What the CubeCL kernels share when they launch: one thread per row (a row being whatever
//! the kernel runs sequentially), and output buffers on the input's device.

use burn::tensor::Shape;
use burn_cubecl::cubecl::prelude::{CubeCount, CubeDim};
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;

/// Threads per cube.
const CUBE: usize = 256;

/// Enough cubes of [`CUBE`] threads for `rows` threads. Always full cubes (the kernels skip the
/// threads past the last row): the cube's size is part of a compiled kernel, and sized to the
/// rows it compiled a new kernel for every sequence length under 256 rows, at each step of a
/// generation.
pub fn threads(rows: usize) -> (CubeCount, CubeDim) {
    (
        CubeCount::Static(rows.div_ceil(CUBE).max(1) as u32, 1, 1),
        CubeDim::new_1d(CUBE as u32),
    )
}

/// An uninitialised tensor of `shape` with `x`'s device and type.
pub fn empty_like(x: &CubeTensor, shape: Shape) -> CubeTensor {
    empty_device_dtype(x.client.clone(), x.device.clone(), shape, x.dtype)
}
