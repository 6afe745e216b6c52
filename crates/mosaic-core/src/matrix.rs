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

/// A 2-D CPU tensor as gemm reads it: its storage, where it starts, and (row, column) strides.
/// Any view without negative strides is read in place (a transposed weight is a view).
pub struct View {
    tensor: FlexTensor,
    start: usize,
    rows: usize,
    cols: usize,
    rs: isize,
    cs: isize,
}

impl View {
    pub fn new(x: &FlexTensor) -> View {
        let layout = x.layout();
        let shape = layout.shape();
        assert_eq!(shape.num_dims(), 2, "a matrix");
        let (rows, cols) = (shape[0], shape[1]);
        let strides = layout.strides();
        let tensor = match strides.iter().all(|&s| s >= 0) {
            true => x.clone(),
            false => x.to_contiguous(),
        };
        let layout = tensor.layout();
        let (rs, cs) = (layout.strides()[0], layout.strides()[1]);
        let start = layout.start_offset();
        let last = start + (rows.max(1) - 1) * rs as usize + (cols.max(1) - 1) * cs as usize;
        assert!(
            rows * cols == 0 || last < tensor.storage::<f32>().len(),
            "a {rows} x {cols} view past its storage"
        );
        View {
            tensor,
            start,
            rows,
            cols,
            rs,
            cs,
        }
    }

    /// (rows, columns, row stride, column stride), read transposed where `t`.
    fn read(&self, t: bool) -> (usize, usize, isize, isize) {
        match t {
            false => (self.rows, self.cols, self.rs, self.cs),
            true => (self.cols, self.rows, self.cs, self.rs),
        }
    }
}

/// `op(a) op(b)` into a new row-major tensor, `op` transposing where asked, on every thread of
/// the pool. The output is never cleared first: gemm writes each element once (it reads the
/// destination only when asked to accumulate), which saves a pass over it and, unlike the
/// backend's own matmul, a copy into an aligned buffer.
pub fn product(a: &View, a_t: bool, b: &View, b_t: bool) -> FlexTensor {
    let (m, k, a_rs, a_cs) = a.read(a_t);
    let (k2, n, b_rs, b_cs) = b.read(b_t);
    assert_eq!(k, k2, "inner dimensions");
    let mut out: Vec<f32> = Vec::with_capacity(m * n);
    let (a_data, b_data) = (a.tensor.storage::<f32>(), b.tensor.storage::<f32>());
    // SAFETY: `View::new` checked that every element the strides reach lies inside each
    // operand's storage; `out` has room for the `m x n` row-major product, which gemm writes
    // in full without reading it (`read_dst` false; with `k == 0` it writes zeros), so every
    // element is initialised before `set_len`.
    unsafe {
        gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a_data.as_ptr().add(a.start),
            a_cs,
            a_rs,
            b_data.as_ptr().add(b.start),
            b_cs,
            b_rs,
            0.0,
            1.0,
            false,
            false,
            false,
            Parallelism::Rayon(0),
        );
        out.set_len(m * n);
    }
    tensor(out, vec![m, n])
}
