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
/// The narrowest side a piece of a split product may have (a SIMD kernel's
/// panel is 48 rows by 4 columns on AVX-512).
const MIN_SIDE: usize = 48;

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
///
/// Large products are split in halves along the longer side of dst, down to
/// pieces of at least `PARALLEL_MIN_FMA` multiply-adds, and the halves run
/// under `rayon::join`. The split depends only on the shapes, and every
/// piece is one sequential product, so results are bitwise the same for
/// any number of threads; and unlike a library's own parallel driver, the
/// split allocates nothing.
pub fn gemm(
    dst: MatMut<'_, f64>,
    accumulate: bool,
    lhs: MatRef<'_, f64>,
    rhs: MatRef<'_, f64>,
    alpha: f64,
) {
    let (m, n) = (dst.nrows(), dst.ncols());
    let work = m * n * lhs.ncols();
    if work < 2 * PARALLEL_MIN_FMA || m.max(n) < 2 * MIN_SIDE {
        faer::linalg::matmul::matmul(dst, accum(accumulate), lhs, rhs, alpha, Par::Seq);
    } else if n >= m {
        let (left, right) = dst.split_at_col_mut(n / 2);
        let (rl, rr) = rhs.split_at_col(n / 2);
        rayon::join(
            || gemm(left, accumulate, lhs, rl, alpha),
            || gemm(right, accumulate, lhs, rr, alpha),
        );
    } else {
        let (top, bottom) = dst.split_at_row_mut(m / 2);
        let (lt, lb) = lhs.split_at_row(m / 2);
        rayon::join(
            || gemm(top, accumulate, lt, rhs, alpha),
            || gemm(bottom, accumulate, lb, rhs, alpha),
        );
    }
}

/// dst += product when `accumulate`, else dst = product.
fn accum(accumulate: bool) -> Accum {
    if accumulate {
        Accum::Add
    } else {
        Accum::Replace
    }
}

/// As [`gemm`], for products whose inner dimension dwarfs both sides of
/// dst (Lᵀ B over P parameters, `crate::discrete`): split once into two
/// halves along dst's longer side, one per core, and no further. `gemm`'s
/// split down to 48-wide pieces repacks the whole P-deep lhs for every
/// piece and leaves the pieces to the narrow remainder kernels. The split
/// depends only on the shapes, so the result is the same for any number
/// of threads.
pub fn gemm_deep(
    dst: MatMut<'_, f64>,
    accumulate: bool,
    lhs: MatRef<'_, f64>,
    rhs: MatRef<'_, f64>,
    alpha: f64,
) {
    let (m, n) = (dst.nrows(), dst.ncols());
    let accum = accum(accumulate);
    let seq = |dst, lhs, rhs| faer::linalg::matmul::matmul(dst, accum, lhs, rhs, alpha, Par::Seq);
    if m * n * lhs.ncols() < 2 * PARALLEL_MIN_FMA || m.max(n) < 2 * MIN_SIDE {
        seq(dst, lhs, rhs);
    } else if n >= m {
        let half = (n / 2).next_multiple_of(4);
        let (left, right) = dst.split_at_col_mut(half);
        let (rl, rr) = rhs.split_at_col(half);
        rayon::join(|| seq(left, lhs, rl), || seq(right, lhs, rr));
    } else {
        let half = (m / 2).next_multiple_of(MIN_SIDE).min(m);
        let (top, bottom) = dst.split_at_row_mut(half);
        let (lt, lb) = lhs.split_at_row(half);
        rayon::join(|| seq(top, lt, rhs), || seq(bottom, lb, rhs));
    }
}
