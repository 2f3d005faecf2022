//! The matrix products of the hot path, on column-major storage.
//!
//! Matrices are stored column-major (nalgebra's layout); products go through
//! faer, whose kernels use the widest SIMD the CPU has and split large
//! products across threads. Small products stay on the calling thread, where
//! spawning work would cost more than it saves.
use faer::{Accum, MatMut, MatRef, Par};
use nalgebra::DMatrix;

/// Products below this many multiply-adds run on one thread.
const PARALLEL_MIN_FMA: usize = 1 << 18;

/// A column-major view of an nalgebra matrix.
pub fn view(m: &DMatrix<f64>) -> MatRef<'_, f64> {
    MatRef::from_column_major_slice(m.as_slice(), m.nrows(), m.ncols())
}

/// A mutable column-major view of an nalgebra matrix.
pub fn view_mut(m: &mut DMatrix<f64>) -> MatMut<'_, f64> {
    let (r, c) = m.shape();
    MatMut::from_column_major_slice_mut(m.as_mut_slice(), r, c)
}

/// A column-major (rows x cols) view of a slice.
pub fn slice_view(s: &[f64], rows: usize, cols: usize) -> MatRef<'_, f64> {
    MatRef::from_column_major_slice(s, rows, cols)
}

/// A mutable column-major (rows x cols) view of a slice.
pub fn slice_view_mut(s: &mut [f64], rows: usize, cols: usize) -> MatMut<'_, f64> {
    MatMut::from_column_major_slice_mut(s, rows, cols)
}

/// dst = alpha * lhs * rhs, or dst += alpha * lhs * rhs when `accumulate`.
pub fn gemm(dst: MatMut<'_, f64>, accumulate: bool, lhs: MatRef<'_, f64>, rhs: MatRef<'_, f64>, alpha: f64) {
    let work = dst.nrows() * dst.ncols() * lhs.ncols();
    let par = if work >= PARALLEL_MIN_FMA { Par::rayon(0) } else { Par::Seq };
    let accum = if accumulate { Accum::Add } else { Accum::Replace };
    faer::linalg::matmul::matmul(dst, accum, lhs, rhs, alpha, par);
}
