//! The best single coefficient vector a* (proofs.md, C30): the kernel
//! machine with the path kernel and coefficients that do not depend on the
//! query point,
//!   ŷ*(x) = f(w0; x) + Σ_i K^p(x, x_i) a*_i,
//! a*_i the least-squares fit of the theorem's A_i(x_j) = K^p(x_j, x_i)
//! a_i(x_j) over the training rows j:
//!   a*_i = argmin_a Σ_j |A_i(x_j) − K^p(x_j, x_i) a|²,
//! a C-vector from the C x C normal equations (Σ_j Bᵀ B) a = Σ_j Bᵀ A_i(x_j),
//! B = K^p(x_j, x_i). Where the theorem's a_i(x) is the same at every x
//! (a linear model) a* is that a and ŷ* the kernel machine itself.
use nalgebra::{DMatrix, DVector};

/// a* example-major (entry i C + c): `kernel` is the training rows' K^p
/// ((N C) x (N C)), `coef` their A ((N C) x N).
pub fn best_coefficients(kernel: &DMatrix<f64>, coef: &DMatrix<f64>, c: usize) -> DVector<f64> {
    let n = coef.ncols();
    DVector::from_iterator(
        n * c,
        (0..n).flat_map(|i| {
            best_for(kernel, coef, c, i)
                .into_iter()
                .copied()
                .collect::<Vec<_>>()
        }),
    )
}

/// a*_i for one training point i from the rows of `kernel` ((R C) x (N C))
/// and `coef` ((R C) x N): with C = 1 Σ_j K_ji A_ji / Σ_j K_ji² (0 where
/// the kernel's column vanishes); with C > 1 the normal equations solved by
/// a pseudo-inverse, so that a rank-deficient stack still gives the
/// least-squares fit. Also what `conditions` measures the fit's residual
/// with (coefficient_variation).
pub fn best_for(kernel: &DMatrix<f64>, coef: &DMatrix<f64>, c: usize, i: usize) -> DVector<f64> {
    let column = coef.column(i);
    if c == 1 {
        let kc = kernel.column(i);
        let kk = kc.dot(&kc);
        return DVector::from_element(1, if kk > 0.0 { kc.dot(&column) / kk } else { 0.0 });
    }
    let stack = kernel.view((0, i * c), (coef.nrows(), c));
    let normal = stack.transpose() * stack;
    let rhs = stack.transpose() * column;
    let eps = f64::EPSILON * normal.norm();
    normal
        .pseudo_inverse(eps)
        .map(|p| p * rhs)
        .unwrap_or_else(|_| DVector::zeros(c))
}

/// ŷ*(q) = f(w0; q) + K^p(q, ·) a* for the query rows of `kernel`
/// ((M C) x (N C)), `y0` example-major.
pub fn predict(kernel: &DMatrix<f64>, y0: &[f64], a: &DVector<f64>) -> Vec<f64> {
    (kernel * a).iter().zip(y0).map(|(k, b)| b + k).collect()
}
