//! Kernel ridge regression with its ridge chosen by exact leave-one-out
//! error, every ridge from one symmetric eigendecomposition K = V S Vᵀ
//! (proofs.md, C29):
//!   dual coefficients  α(λ) = V (S + λ)⁻¹ Vᵀ y,
//!   fitted values      ŷ(λ) = H y,  H = V S (S + λ)⁻¹ Vᵀ,
//!   leave-one-out      e_G  = (I − H_GG)⁻¹ (y_G − ŷ_G)
//! for each group G of rows that belong to one training point (its C
//! outputs), the residual at G of the fit without G's rows.
//!
//! The kernel matrix is symmetrised ((K + Kᵀ)/2: the integrated path kernel
//! is symmetric only to rounding) and its negative eigenvalues, which a
//! positive semi-definite kernel has only by rounding, are set to 0.
use nalgebra::{DMatrix, DVector, SymmetricEigen};

/// One kernel's eigendecomposition and targets, shared by every ridge.
#[derive(Clone, Debug)]
pub struct Krr {
    values: DVector<f64>,
    vectors: DMatrix<f64>,
    /// Vᵀ y.
    projected: DVector<f64>,
    y: DVector<f64>,
    /// Rows per training point (C).
    group: usize,
}

/// The ridge a leave-one-out search chose, and its error.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Choice {
    pub ridge: f64,
    /// Mean over the training points and outputs of the squared
    /// leave-one-out residual.
    pub loo_mse: f64,
}

/// Points of the ridge grid: λ = s_max 10^(1 − k/2), k = 0..GRID, from 10
/// s_max down to 1e-12 s_max (near f64's resolution of K's spectrum).
pub const GRID: usize = 27;

impl Krr {
    /// `k` is n x n (n = N C, rows and columns i C + c), `y` the n targets
    /// in the same order, `group` = C.
    pub fn new(k: &DMatrix<f64>, y: &[f64], group: usize) -> Krr {
        let symmetric = (k + k.transpose()) * 0.5;
        let eigen = SymmetricEigen::new(symmetric);
        let values = eigen.eigenvalues.map(|s| s.max(0.0));
        let y = DVector::from_column_slice(y);
        let projected = eigen.eigenvectors.tr_mul(&y);
        Krr {
            values,
            vectors: eigen.eigenvectors,
            projected,
            y,
            group,
        }
    }

    /// V f(S) Vᵀ y for a filter f of the eigenvalues.
    fn filtered(&self, f: impl Fn(f64) -> f64) -> DVector<f64> {
        let scaled = DVector::from_iterator(
            self.values.len(),
            self.values
                .iter()
                .zip(self.projected.iter())
                .map(|(&s, &p)| f(s) * p),
        );
        &self.vectors * scaled
    }

    /// α(λ) = (K + λ I)⁺ y (the pseudo-inverse where K + λ I is singular,
    /// as for λ = 0 on a singular kernel).
    pub fn alpha(&self, ridge: f64) -> DVector<f64> {
        self.filtered(|s| {
            if s + ridge > 0.0 {
                1.0 / (s + ridge)
            } else {
                0.0
            }
        })
    }

    /// The fitted values at the training points, H y.
    pub fn fitted(&self, ridge: f64) -> DVector<f64> {
        self.filtered(|s| {
            if s + ridge > 0.0 {
                s / (s + ridge)
            } else {
                0.0
            }
        })
    }

    /// The leave-one-out residuals e_G for every training point (n values,
    /// in the targets' order); None where I − H_GG is singular (a point the
    /// others cannot predict at all: λ = 0 on an interpolating kernel).
    pub fn loo_residuals(&self, ridge: f64) -> Option<Vec<f64>> {
        let g = self.group;
        let weights: Vec<f64> = self
            .values
            .iter()
            .map(|&s| {
                if s + ridge > 0.0 {
                    s / (s + ridge)
                } else {
                    0.0
                }
            })
            .collect();
        let fitted = self.fitted(ridge);
        let mut out = Vec::with_capacity(self.y.len());
        for start in (0..self.y.len()).step_by(g) {
            // I − H_GG, H_GG[a][b] = Σ_j V[a, j] w_j V[b, j].
            let mut m = DMatrix::<f64>::identity(g, g);
            for a in 0..g {
                let va = self.vectors.row(start + a);
                for b in 0..g {
                    let vb = self.vectors.row(start + b);
                    let h: f64 = va
                        .iter()
                        .zip(vb.iter())
                        .zip(&weights)
                        .map(|((x, y), w)| x * w * y)
                        .sum();
                    m[(a, b)] -= h;
                }
            }
            let r = DVector::from_iterator(g, (start..start + g).map(|i| self.y[i] - fitted[i]));
            let e = m.lu().solve(&r)?;
            out.extend(e.iter().copied());
        }
        Some(out)
    }

    /// The mean squared leave-one-out residual at λ (infinite where
    /// [`Krr::loo_residuals`] has none).
    pub fn loo_mse(&self, ridge: f64) -> f64 {
        match self.loo_residuals(ridge) {
            Some(e) if !e.is_empty() => e.iter().map(|x| x * x).sum::<f64>() / e.len() as f64,
            _ => f64::INFINITY,
        }
    }

    /// The grid of ridges, largest first ([`GRID`]).
    pub fn grid(&self) -> Vec<f64> {
        let top = self.values.iter().copied().fold(0.0_f64, f64::max);
        let scale = if top > 0.0 { top } else { 1.0 };
        (0..GRID)
            .map(|k| scale * 10f64.powf(1.0 - k as f64 / 2.0))
            .collect()
    }

    /// The grid's ridge with the least leave-one-out error (the largest
    /// such ridge on a tie).
    pub fn select(&self) -> Choice {
        self.grid()
            .into_iter()
            .map(|ridge| Choice {
                ridge,
                loo_mse: self.loo_mse(ridge),
            })
            .fold(None, |best: Option<Choice>, c| match best {
                Some(b) if b.loo_mse <= c.loo_mse => Some(b),
                _ => Some(c),
            })
            .expect("the grid is not empty")
    }
}
