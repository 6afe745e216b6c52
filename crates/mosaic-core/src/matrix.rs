//! Matrices inside slices of `f32` and their products (the `gemm` crate, which the CPU
//! backend's matmul uses too), for the fused operations' kernels.

use burn::backend::flex::FlexTensor;
use burn::tensor::TensorData;
use gemm::{Parallelism, gemm};

/// A `rows x cols` matrix inside a slice: element `(i, j)` at `i * rs + j * cs`.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    /// The matrix with strides `(rs, cs)` at the start of `data`, which must hold every
    /// element they reach.
    fn strided(data: &'a [f32], rows: usize, cols: usize, rs: usize, cs: usize) -> Mat<'a> {
        let last = (rows.max(1) - 1) * rs + (cols.max(1) - 1) * cs;
        assert!(
            rows * cols == 0 || last < data.len(),
            "a {rows} x {cols} matrix past the end of its {} elements",
            data.len()
        );
        Mat {
            data,
            rows,
            cols,
            rs,
            cs,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn t(self) -> Mat<'a> {
        Mat {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    fn t_if(self, t: bool) -> Mat<'a> {
        if t { self.t() } else { self }
    }
}

/// The row-major `rows x cols` matrix at the start of `data`.
pub fn mat(data: &[f32], rows: usize, cols: usize) -> Mat<'_> {
    Mat::strided(data, rows, cols, cols, 1)
}

/// `dst = scale a b` (or `dst += scale a b` with `accumulate`), `dst` row-major `m x n`.
///
/// # Safety
/// `dst` must be valid for writing `m x n` elements that overlap neither operand, and for
/// reading them too when `accumulate`.
unsafe fn product_into(
    dst: *mut f32,
    a: Mat,
    b: Mat,
    scale: f32,
    accumulate: bool,
    parallelism: Parallelism,
) {
    let ((m, k), (k2, n)) = ((a.rows, a.cols), (b.rows, b.cols));
    assert_eq!(k, k2, "inner dimensions");
    // SAFETY: `Mat::strided` checked that every element the strides reach lies inside each
    // operand's slice; the caller vouches for `dst`.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// `dst = scale a b` (or `dst += scale a b` with `accumulate`), `dst` row-major `m x n`, on
/// this thread.
pub fn matmul(dst: &mut [f32], a: Mat, b: Mat, scale: f32, accumulate: bool) {
    let (m, n) = (a.rows, b.cols);
    assert!(dst.len() >= m * n, "a {m} x {n} product in {}", dst.len());
    // SAFETY: `dst` is a mutable borrow of at least `m x n` elements, so it is valid for
    // reading and writing them and cannot overlap the shared borrows `a` and `b`.
    unsafe { product_into(dst.as_mut_ptr(), a, b, scale, accumulate, Parallelism::None) }
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

/// A 2-D CPU tensor read in place, as [`Mat`], wherever its strides are not negative (a
/// transposed or sliced weight is a view); laid out contiguously otherwise.
pub fn view(x: &FlexTensor) -> FlexTensor {
    match x.layout().strides().iter().all(|&s| s >= 0) {
        true => x.clone(),
        false => x.to_contiguous(),
    }
}

/// The matrix of a 2-D tensor returned by [`view`].
fn as_mat(x: &FlexTensor) -> Mat<'_> {
    let layout = x.layout();
    let (shape, strides) = (layout.shape(), layout.strides());
    assert_eq!(shape.num_dims(), 2, "a matrix");
    let data = &x.storage::<f32>()[layout.start_offset()..];
    Mat::strided(
        data,
        shape[0],
        shape[1],
        strides[0] as usize,
        strides[1] as usize,
    )
}

/// `op(a) op(b)` of two tensors from [`view`] into a new row-major tensor, `op` transposing
/// where asked, on every thread of the pool. The output is never cleared first: gemm writes
/// each element once (it reads the destination only when asked to accumulate), which saves a
/// pass over it and, unlike the backend's own matmul, a copy into an aligned buffer.
pub fn product(a: &FlexTensor, a_t: bool, b: &FlexTensor, b_t: bool) -> FlexTensor {
    let (a, b) = (as_mat(a).t_if(a_t), as_mat(b).t_if(b_t));
    let (m, n) = (a.rows, b.cols);
    let mut out: Vec<f32> = Vec::with_capacity(m * n);
    // SAFETY: `out` owns room for `m x n` elements, apart from both operands; gemm writes every
    // one of them without reading any (not accumulating; with `k == 0` it writes zeros), so all
    // are initialised before `set_len`.
    unsafe {
        product_into(out.as_mut_ptr(), a, b, 1.0, false, Parallelism::Rayon(0));
        out.set_len(m * n);
    }
    tensor(out, vec![m, n])
}
