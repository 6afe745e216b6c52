//! Matrices inside slices of `f32` and their products on the calling thread (the `gemm`
//! crate, which the CPU backend's matmul uses too), for the fused operations' kernels.

use burn::backend::flex::FlexTensor;
use burn::tensor::TensorData;
use gemm::{Parallelism, gemm};

/// A row-major `rows x cols` matrix at the start of a slice; `transposed` reads it as
/// `cols x rows`.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    transposed: bool,
}

impl Mat<'_> {
    fn shape(&self) -> (usize, usize) {
        match self.transposed {
            false => (self.rows, self.cols),
            true => (self.cols, self.rows),
        }
    }

    /// (row stride, column stride) of the matrix as read.
    fn strides(&self) -> (isize, isize) {
        match self.transposed {
            false => (self.cols as isize, 1),
            true => (1, self.cols as isize),
        }
    }
}

/// The row-major `rows x cols` matrix at the start of `data`.
pub fn mat(data: &[f32], rows: usize, cols: usize) -> Mat<'_> {
    assert!(
        data.len() >= rows * cols,
        "a {rows} x {cols} matrix in {}",
        data.len()
    );
    Mat {
        data,
        rows,
        cols,
        transposed: false,
    }
}

impl<'a> Mat<'a> {
    pub fn t(self) -> Mat<'a> {
        Mat {
            transposed: !self.transposed,
            ..self
        }
    }
}

/// `dst = scale a b` (or `dst += scale a b` with `accumulate`), `dst` row-major `m x n`, on
/// this thread.
pub fn matmul(dst: &mut [f32], a: Mat, b: Mat, scale: f32, accumulate: bool) {
    let ((m, k), (k2, n)) = (a.shape(), b.shape());
    assert_eq!(k, k2, "inner dimensions");
    assert!(dst.len() >= m * n, "a {m} x {n} product in {}", dst.len());
    let ((a_rs, a_cs), (b_rs, b_cs)) = (a.strides(), b.strides());
    // SAFETY: the asserts above keep every index the strides reach inside the three slices
    // (`mat` checked `rows * cols` elements for each operand), and `dst` is borrowed mutably
    // while `a` and `b` are shared borrows, so they cannot overlap.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a_cs,
            a_rs,
            b.data.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            scale,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
}

/// `x` laid out contiguously, and its shape.
pub fn contiguous(x: &FlexTensor) -> (FlexTensor, Vec<usize>) {
    let x = x.to_contiguous();
    let dims = x.layout().shape().iter().copied().collect();
    (x, dims)
}

/// A CPU tensor of `shape` holding `data`.
pub fn tensor(data: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape))
}
