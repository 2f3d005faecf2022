//! Filippov sliding modes (issue 12 item 2; proofs.md E5-E7). Where both
//! one-sided fields F_− (kink function g <= 0) and F_+ (g > 0) point into
//! the kink surface g = 0, the flow cannot leave it: Filippov's solution
//! follows F_λ = (1 − λ) F_− + λ F_+ with λ such that dg/dt = 0,
//!   λ = a_− / (a_− − a_+),   a_± = ∇g · F_±,
//! and releases the surface when λ leaves [0, 1] (one of a_± changes sign:
//! that side's field no longer points in). With k kinks sliding at once,
//! G_0 is the field with all of them on their lower branch and G_l the one
//! with kink l alone on its upper branch; F = G_0 + Σ_l λ_l (G_l − G_0),
//! with λ from the k x k system Σ_l λ_l ∇g_j · (G_l − G_0) = −∇g_j · G_0.
//! The rates come exactly from one first-order Taylor pass of the model
//! over the training batch per field (`Model::taylor`, `Model::kink_jet`):
//! each g is a pre-activation or a loss margin, whose derivative along a
//! direction the pass carries.
use crate::kinks::Kink;
use crate::loss::Loss;
use crate::model::{Model, TaylorTape};
use nalgebra::DMatrix;

/// The most kinks that slide at once; one more reaching a sliding mode
/// stops the run (`StepFailure::Sliding`).
pub const MAX_SLIDING: usize = 4;

/// The sliding state of a flow and its buffers, allocated at set-up.
pub struct Sliding {
    /// The switching functions held at zero, with their kinks and targets.
    pub switches: Vec<usize>,
    pub kinks: Vec<(Kink, f64)>,
    /// λ_l of the last sliding evaluation, per sliding switch.
    pub lambda: Vec<f64>,
    /// G_l of the augmented state (l = 1..k), while G_0 is built in the
    /// caller's buffer.
    pub corners: Vec<Vec<f64>>,
    /// A scratch derivative for the engagement test.
    pub probe: Vec<f64>,
    /// Evaluations of the field beyond one per right-hand side.
    pub extra_evals: usize,
    /// ∇g_j · G_0, the matrix of ∇g_j · (G_l − G_0) (row-major k x k), and
    /// one field's rates.
    r0: Vec<f64>,
    system: Vec<f64>,
    rates: Vec<f64>,
    jets: TaylorTape,
}

impl Sliding {
    /// Buffers for a flow of `dim` components on the training inputs `train_x`.
    pub fn new(model: &dyn Model, train_x: &DMatrix<f64>, dim: usize) -> Sliding {
        Sliding {
            switches: Vec::with_capacity(MAX_SLIDING),
            kinks: Vec::with_capacity(MAX_SLIDING),
            lambda: Vec::with_capacity(MAX_SLIDING),
            corners: (0..MAX_SLIDING).map(|_| vec![0.0; dim]).collect(),
            probe: vec![0.0; dim],
            extra_evals: 0,
            r0: Vec::with_capacity(MAX_SLIDING),
            system: Vec::with_capacity(MAX_SLIDING * MAX_SLIDING),
            rates: Vec::with_capacity(MAX_SLIDING),
            jets: model.taylor_tape(train_x),
        }
    }

    /// λ of switch j, NaN when it does not slide.
    pub fn coefficient(&self, j: usize) -> f64 {
        self.switches
            .iter()
            .position(|&s| s == j)
            .map_or(f64::NAN, |l| self.lambda[l])
    }

    /// ∇g_j · dw at w for every sliding kink, into `rates`; false where a
    /// rate is not available (a model without kink jets).
    fn rates_along(&mut self, model: &dyn Model, w: &[f64], dw: &[f64], loss: Loss) -> bool {
        model.taylor(w, dw, &mut self.jets);
        self.rates.clear();
        for &(kink, target) in &self.kinks {
            let rate = match kink.layer {
                Some(l) => match model.kink_jet(&self.jets, l) {
                    Some(z) => z.first[(kink.point, kink.unit)],
                    None => return false,
                },
                None => {
                    let f1 = self.jets.output().first[(kink.point, kink.unit)];
                    // absolute: g = y − y*; hinge, squared_hinge: g = y* y − 1.
                    if loss == Loss::Absolute {
                        f1
                    } else {
                        target * f1
                    }
                }
            };
            self.rates.push(rate);
        }
        true
    }

    /// Records G_0's rates (`dw` its w-part).
    pub fn base(&mut self, model: &dyn Model, w: &[f64], dw: &[f64], loss: Loss) -> bool {
        let ok = self.rates_along(model, w, dw, loss);
        self.r0.clear();
        self.r0.extend_from_slice(&self.rates);
        self.system.clear();
        ok
    }

    /// Records corner l's column ∇g_j · (G_l − G_0) (`dw` G_l's w-part);
    /// corners come in order l = 0, 1, ...
    pub fn corner(&mut self, model: &dyn Model, w: &[f64], dw: &[f64], loss: Loss) -> bool {
        let ok = self.rates_along(model, w, dw, loss);
        for (r, r0) in self.rates.iter().zip(&self.r0) {
            self.system.push(r - r0);
        }
        ok
    }

    /// Solves for λ (Gaussian elimination with partial pivoting on the
    /// k x k system, stored column by column); false when it is singular.
    pub fn solve(&mut self) -> bool {
        let k = self.switches.len();
        self.lambda.clear();
        self.lambda.extend(self.r0.iter().map(|r| -r));
        // a[j][l] = system[l k + j].
        let a = &mut self.system;
        let b = &mut self.lambda;
        for col in 0..k {
            let pivot = (col..k)
                .max_by(|&x, &y| a[col * k + x].abs().total_cmp(&a[col * k + y].abs()))
                .expect("k > 0");
            if a[col * k + pivot] == 0.0 || !a[col * k + pivot].is_finite() {
                return false;
            }
            if pivot != col {
                for l in 0..k {
                    a.swap(l * k + col, l * k + pivot);
                }
                b.swap(col, pivot);
            }
            for row in col + 1..k {
                let f = a[col * k + row] / a[col * k + col];
                for l in col..k {
                    a[l * k + row] -= f * a[l * k + col];
                }
                b[row] -= f * b[col];
            }
        }
        for col in (0..k).rev() {
            let s: f64 = (col + 1..k).map(|l| a[l * k + col] * b[l]).sum();
            b[col] = (b[col] - s) / a[col * k + col];
        }
        b.iter().all(|v| v.is_finite())
    }

    /// The sliding switch whose λ lies farthest outside [0, 1] (the first
    /// when all lie inside), with its λ.
    pub fn worst(&self) -> Option<(usize, f64)> {
        let outside = |l: f64| (-l).max(l - 1.0);
        self.switches
            .iter()
            .zip(&self.lambda)
            .max_by(|a, b| outside(*a.1).total_cmp(&outside(*b.1)))
            .map(|(&j, &l)| (j, l))
    }
}
