//! Butcher tableaux of explicit Runge–Kutta methods, kept as data and read by
//! the one generic engine in `stepper`. Each constructor cites where its
//! coefficients were published; `tests/tableau.rs` checks them against the
//! order conditions of [`crate::order_conditions`].

mod dop853;
mod verner98;

/// DOP853's dense output of order 7 (Hairer's CONTD8).
pub mod dop853_dense {
    pub use super::dop853::{DENSE_A, DENSE_C, DENSE_STAGES, dense_weights};
}

/// How a method estimates its local error.
#[derive(Clone, Debug, PartialEq)]
pub enum ErrorEstimator {
    /// Fixed-step only.
    None,
    /// err = h * sum_i e_i k_i, with e = b - b_hat of an embedded method of
    /// order `order`.
    Embedded { e: Vec<f64>, order: u32 },
    /// Hairer's DOP853 pair of estimators. With err5 = sum_i e5_i k_i and
    /// err3 = sum_i e3_i k_i (no factor h), sk_j = atol + rtol *
    /// max(|y0_j|, |y1_j|) per component j of an n-vector,
    /// E5 = sum_j (err5_j / sk_j)^2 and E3 = sum_j (err3_j / sk_j)^2,
    /// dop853.f takes
    ///
    ///   deno = E5 + 0.01 * E3  (replaced by 1 if deno <= 0)
    ///   err  = |h| * E5 / sqrt(n * deno)
    ///
    /// i.e. err = |h| sqrt(E5/n) sqrt(E5/deno). Since err5 = O(h^5) and
    /// err3 = O(h^3), err = O(h^8): the step-size exponent is 1/8, as the
    /// code's EXPO1 = 1/8 - 0.2 beta.
    Dop853 { e5: Vec<f64>, e3: Vec<f64> },
}

/// An explicit Runge–Kutta method: c, strictly lower-triangular a, b.
#[derive(Clone, Debug, PartialEq)]
pub struct Tableau {
    pub name: &'static str,
    /// Order of the propagated solution.
    pub order: u32,
    pub c: Vec<f64>,
    /// `a[i]` has i entries (`a[i][j]` for j < i).
    pub a: Vec<Vec<f64>>,
    pub b: Vec<f64>,
    pub error: ErrorEstimator,
}

/// Weights of a lower-order solution carried by an error estimator.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddedWeights {
    /// b - e for the estimator's vector e.
    pub b_hat: Vec<f64>,
    /// Classical order those weights satisfy (checked in tests/tableau.rs).
    pub order: u32,
}

impl Tableau {
    /// The names [`Tableau::by_name`] accepts; "gd" is explicit Euler.
    pub const NAMES: [&'static str; 7] =
        ["gd", "euler", "heun", "rk4", "dopri5", "dop853", "verner98"];

    /// The method called `name` in a spec, or None for an unknown name.
    pub fn by_name(name: &str) -> Option<Tableau> {
        match name {
            "gd" | "euler" => Some(Tableau::euler()),
            "heun" => Some(Tableau::heun()),
            "rk4" => Some(Tableau::rk4()),
            "dopri5" => Some(Tableau::dopri5()),
            "dop853" => Some(Tableau::dop853()),
            "verner98" => Some(Tableau::verner98()),
            _ => None,
        }
    }

    pub fn stages(&self) -> usize {
        self.b.len()
    }

    /// First same as last: the last stage is evaluated at the new solution,
    /// so it serves as the next step's first stage.
    pub fn is_fsal(&self) -> bool {
        let s = self.stages();
        s > 1 && self.c[s - 1] == 1.0 && self.a[s - 1] == self.b[..s - 1] && self.b[s - 1] == 0.0
    }

    /// The lower-order weights b - e behind the error estimator, with the
    /// order they satisfy: dopri5 4; dop853 5 (b - e5) and 3 (b - e3, i.e.
    /// Hairer's bhh); verner98 8. Empty for fixed-step methods.
    pub fn embedded_weights(&self) -> Vec<EmbeddedWeights> {
        let minus = |e: &[f64]| self.b.iter().zip(e).map(|(b, e)| b - e).collect();
        match &self.error {
            ErrorEstimator::None => Vec::new(),
            ErrorEstimator::Embedded { e, order } => vec![EmbeddedWeights {
                b_hat: minus(e),
                order: *order,
            }],
            ErrorEstimator::Dop853 { e5, e3 } => vec![
                EmbeddedWeights {
                    b_hat: minus(e5),
                    order: 5,
                },
                EmbeddedWeights {
                    b_hat: minus(e3),
                    order: 3,
                },
            ],
        }
    }

    /// Explicit Euler, order 1; with step lr on dw/dt = -grad L(w) it is
    /// exactly gradient descent.
    pub fn euler() -> Tableau {
        Tableau {
            name: "euler",
            order: 1,
            c: vec![0.0],
            a: vec![vec![]],
            b: vec![1.0],
            error: ErrorEstimator::None,
        }
    }

    /// Heun's method, the explicit trapezoidal rule, order 2 (Hairer,
    /// Nørsett & Wanner, *Solving ODEs I*, §II.1).
    pub fn heun() -> Tableau {
        Tableau {
            name: "heun",
            order: 2,
            c: vec![0.0, 1.0],
            a: vec![vec![], vec![1.0]],
            b: vec![0.5, 0.5],
            error: ErrorEstimator::None,
        }
    }

    /// The classical Runge–Kutta method of order 4 (Kutta 1901; Hairer,
    /// Nørsett & Wanner, *Solving ODEs I*, §II.1).
    pub fn rk4() -> Tableau {
        Tableau {
            name: "rk4",
            order: 4,
            c: vec![0.0, 0.5, 0.5, 1.0],
            a: vec![vec![], vec![0.5], vec![0.0, 0.5], vec![0.0, 0.0, 1.0]],
            b: vec![1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0],
            error: ErrorEstimator::None,
        }
    }

    /// Dormand–Prince 5(4), FSAL (J. R. Dormand & P. J. Prince, J. Comput.
    /// Appl. Math. 6 (1980) 19-26). Coefficients as in Hairer & Wanner's
    /// `dopri5.f` (version of April 25, 1996), subroutine CDOPRI: c, a, the
    /// weights b = (a71..a76, 0), and e1..e7 (so err = h sum e_i k_i).
    pub fn dopri5() -> Tableau {
        Tableau {
            name: "dopri5",
            order: 5,
            c: vec![0.0, 0.2, 0.3, 0.8, 8.0 / 9.0, 1.0, 1.0],
            a: vec![
                vec![],
                vec![0.2],
                vec![3.0 / 40.0, 9.0 / 40.0],
                vec![44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0],
                vec![
                    19372.0 / 6561.0,
                    -25360.0 / 2187.0,
                    64448.0 / 6561.0,
                    -212.0 / 729.0,
                ],
                vec![
                    9017.0 / 3168.0,
                    -355.0 / 33.0,
                    46732.0 / 5247.0,
                    49.0 / 176.0,
                    -5103.0 / 18656.0,
                ],
                vec![
                    35.0 / 384.0,
                    0.0,
                    500.0 / 1113.0,
                    125.0 / 192.0,
                    -2187.0 / 6784.0,
                    11.0 / 84.0,
                ],
            ],
            b: vec![
                35.0 / 384.0,
                0.0,
                500.0 / 1113.0,
                125.0 / 192.0,
                -2187.0 / 6784.0,
                11.0 / 84.0,
                0.0,
            ],
            error: ErrorEstimator::Embedded {
                e: vec![
                    71.0 / 57600.0,
                    0.0,
                    -71.0 / 16695.0,
                    71.0 / 1920.0,
                    -17253.0 / 339200.0,
                    22.0 / 525.0,
                    -1.0 / 40.0,
                ],
                order: 4,
            },
        }
    }

    /// Hairer's DOP853: order 8 in 12 stages, with the estimators of order 5
    /// and 3 combined as in [`ErrorEstimator::Dop853`]. Not FSAL as a
    /// tableau (b12 != 0): dop853.f spends a 13th evaluation f(x + h, y1)
    /// per accepted step and reuses it as the next step's k1.
    pub fn dop853() -> Tableau {
        dop853::tableau()
    }

    /// Verner's "most efficient" 9(8) pair, 16 stages, not FSAL.
    pub fn verner98() -> Tableau {
        verner98::tableau()
    }
}
