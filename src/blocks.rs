//! The C x C blocks of a vector-output kernel (SPEC §8): the coefficient
//! solve a_i(x) = K^p(x, x_i)⁻¹ A_i(x) with its conditioning rule, and the
//! nested shapes in which reports hold per-output quantities.
//!
//! Kernels are (M C) x (N C) with row m C + c and column i C + c' (the
//! query point's output c, the training point's c'); coefficient matrices
//! are (M C) x N with row m C + c; per-output vectors are example-major.
use nalgebra::{DMatrix, DVector};

/// A block whose reciprocal condition number in the 1-norm is below this
/// gives no coefficient vector (SPEC §8).
pub const RCOND_MIN: f64 = 1e-12;

/// The C x C block of `kernel` for query point m and training point i.
pub fn block(kernel: &DMatrix<f64>, m: usize, i: usize, c: usize) -> DMatrix<f64> {
    kernel.view((m * c, i * c), (c, c)).into_owned()
}

/// 1 / (|K|_1 |K⁻¹|_1), with K⁻¹ formed exactly enough for a small block by
/// LU with partial pivoting; 0 for a singular or non-finite block.
pub fn reciprocal_condition(k: &DMatrix<f64>) -> f64 {
    let norm1 = |a: &DMatrix<f64>| {
        a.column_iter()
            .map(|col| col.iter().map(|v| v.abs()).sum::<f64>())
            .fold(0.0, f64::max)
    };
    let Some(inverse) = k.clone().lu().try_inverse() else {
        return 0.0;
    };
    let rcond = 1.0 / (norm1(k) * norm1(&inverse));
    if rcond.is_finite() { rcond } else { 0.0 }
}

/// a_i(q_m) for every pair: the C-vector solving K^p(q_m, x_i) a = A_i(q_m),
/// laid out like `coef` ((M C) x N); None (the whole vector) where the
/// block's reciprocal condition number is below [`RCOND_MIN`].
pub fn solve_blocks(kernel: &DMatrix<f64>, coef: &DMatrix<f64>, c: usize) -> DMatrix<Option<f64>> {
    let (m, n) = (coef.nrows() / c, coef.ncols());
    let mut a = DMatrix::from_element(m * c, n, None);
    for q in 0..m {
        for i in 0..n {
            let k = block(kernel, q, i, c);
            if reciprocal_condition(&k) < RCOND_MIN {
                continue;
            }
            let rhs = DVector::from_iterator(c, (0..c).map(|r| coef[(q * c + r, i)]));
            if let Some(x) = k.lu().solve(&rhs) {
                for r in 0..c {
                    a[(q * c + r, i)] = Some(x[r]);
                }
            }
        }
    }
    a
}

/// A per-output vector (example-major, C per example) as rows of C.
pub fn vector_rows<T: Clone>(v: &[T], c: usize) -> Vec<Vec<T>> {
    v.chunks_exact(c).map(<[T]>::to_vec).collect()
}

/// An (M C) x N coefficient matrix as [m][i][c].
pub fn coef_blocks<T: Clone + nalgebra::Scalar>(a: &DMatrix<T>, c: usize) -> Vec<Vec<Vec<T>>> {
    (0..a.nrows() / c)
        .map(|q| {
            (0..a.ncols())
                .map(|i| (0..c).map(|r| a[(q * c + r, i)].clone()).collect())
                .collect()
        })
        .collect()
}

/// An (M C) x (N C) kernel as [m][i][c][c'].
pub fn kernel_blocks(k: &DMatrix<f64>, c: usize) -> Vec<Vec<Vec<Vec<f64>>>> {
    (0..k.nrows() / c)
        .map(|q| {
            (0..k.ncols() / c)
                .map(|i| {
                    (0..c)
                        .map(|r| (0..c).map(|s| k[(q * c + r, i * c + s)]).collect())
                        .collect()
                })
                .collect()
        })
        .collect()
}
