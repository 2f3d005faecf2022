//! Butcher tableaux of explicit Runge–Kutta methods, kept as data and read by
//! the one generic engine in `stepper`.

/// How a method estimates its local error.
#[derive(Clone, Debug, PartialEq)]
pub enum ErrorEstimator {
    /// Fixed-step only.
    None,
    /// err = h * sum_i e_i k_i, with e = b - b_hat of an embedded method of
    /// order `order`.
    Embedded { e: Vec<f64>, order: u32 },
    /// Hairer's DOP853 pair of estimators (5th and 3rd order), combined as
    /// err5^2 / sqrt(err5^2 + 0.01 err3^2) per the published code.
    Dop853 { e5: Vec<f64>, e3: Vec<f64> },
}

/// An explicit Runge–Kutta method: c, strictly lower-triangular a, b.
#[derive(Clone, Debug, PartialEq)]
pub struct Tableau {
    pub name: &'static str,
    /// Order of the propagated solution.
    pub order: u32,
    pub c: Vec<f64>,
    /// a[i] has i entries (a[i][j] for j < i).
    pub a: Vec<Vec<f64>>,
    pub b: Vec<f64>,
    pub error: ErrorEstimator,
}

impl Tableau {
    pub fn stages(&self) -> usize {
        self.b.len()
    }
    /// First same as last: the last stage is evaluated at the new solution,
    /// so it serves as the next step's first stage.
    pub fn is_fsal(&self) -> bool {
        let s = self.stages();
        s > 1 && self.c[s - 1] == 1.0 && self.a[s - 1] == self.b[..s - 1] && self.b[s - 1] == 0.0
    }
    pub fn euler() -> Tableau {
        todo!()
    }
    pub fn heun() -> Tableau {
        todo!()
    }
    pub fn rk4() -> Tableau {
        todo!()
    }
    pub fn dopri5() -> Tableau {
        todo!()
    }
    pub fn dop853() -> Tableau {
        todo!()
    }
}
