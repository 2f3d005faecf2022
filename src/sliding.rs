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
//! direction the pass carries. Kinks held at one training point enter the
//! field multilinearly (`multilinear`, proofs.md E15).
mod multilinear;

pub use multilinear::{MAX_SUBSETS, NEWTON_STEPS, RateSystem, mobius, same_point_subsets, weight};

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
    /// The subsets of two or more held kinks at one training point (bit
    /// masks over positions in `switches`), their corner fields G_S turned
    /// into Möbius differences M_S (allocated when first needed, once per
    /// run), and their rates ∇g_j · M_S.
    subsets: Vec<u8>,
    mixed_corners: Vec<Vec<f64>>,
    mixed: Vec<[f64; MAX_SLIDING]>,
    /// The columns ∇g_j · (G_l − G_0) kept for Newton's method.
    singles: Vec<f64>,
    /// Newton's method failed at an evaluation since the held set last
    /// changed: the run stops at the step's end (the stepper reads λ NaN).
    failed: bool,
    dim: usize,
    /// Ignore same-point subsets: E11's linearised selection.
    pub linearised: bool,
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
            subsets: Vec::with_capacity(MAX_SUBSETS),
            mixed_corners: Vec::new(),
            mixed: Vec::with_capacity(MAX_SUBSETS),
            singles: Vec::with_capacity(MAX_SLIDING * MAX_SLIDING),
            failed: false,
            dim,
            linearised: false,
        }
    }

    /// Finds the subsets of held kinks at one training point; returns them.
    pub fn same_point_subsets(&mut self) -> &[u8] {
        let mut points = [0; MAX_SLIDING];
        for (p, (kink, _)) in points.iter_mut().zip(&self.kinks) {
            *p = kink.point;
        }
        same_point_subsets(&points[..self.kinks.len()], &mut self.subsets);
        if self.linearised {
            self.subsets.clear();
        }
        &self.subsets
    }

    /// The subsets found by the last [`Sliding::same_point_subsets`].
    pub fn subsets(&self) -> &[u8] {
        &self.subsets
    }

    /// The buffers for the corner fields G_S, one per subset (the caller
    /// fills them and gives them back to [`Sliding::mobius`]).
    pub fn take_mixed_corners(&mut self) -> Vec<Vec<f64>> {
        let mut corners = std::mem::take(&mut self.mixed_corners);
        while corners.len() < self.subsets.len() {
            corners.push(vec![0.0; self.dim]);
        }
        corners
    }

    /// Records the rates ∇g_j · G_S of subset i's corner (`dw` its
    /// w-part); after every singleton [`Sliding::corner`].
    pub fn mixed_corner(
        &mut self,
        i: usize,
        model: &dyn Model,
        w: &[f64],
        dw: &[f64],
        loss: Loss,
    ) -> bool {
        let ok = self.rates_along(model, w, dw, loss);
        if self.mixed.len() <= i {
            self.mixed.resize(i + 1, [0.0; MAX_SLIDING]);
        }
        self.mixed[i][..self.rates.len()].copy_from_slice(&self.rates);
        ok
    }

    /// Turns the corners G_S and their rates into Möbius differences, with
    /// G_0 = `base` and G_l = `corners[l]`; keeps the buffers.
    pub fn mobius(&mut self, mut mixed: Vec<Vec<f64>>, base: &[f64], corners: &[Vec<f64>]) {
        let n = self.subsets.len();
        multilinear::mobius(
            &self.subsets,
            &mut mixed[..n],
            |d| base[d],
            |l, d| corners[l][d] - base[d],
        );
        let k = self.switches.len();
        let (r0, system) = (&self.r0, &self.system);
        multilinear::mobius(
            &self.subsets,
            &mut self.mixed[..n],
            |j| if j < k { r0[j] } else { 0.0 },
            |l, j| if j < k { system[l * k + j] } else { 0.0 },
        );
        self.mixed_corners = mixed;
    }

    /// Adds Σ_S Π_{l∈S} λ_l M_S to the first `len` components of `dy`.
    pub fn add_mixed(&self, dy: &mut [f64], len: usize) {
        for (&s, m) in self.subsets.iter().zip(&self.mixed_corners) {
            let c = multilinear::weight(s, &self.lambda);
            for (d, v) in dy[..len].iter_mut().zip(m) {
                *d += c * v;
            }
        }
    }

    /// Forgets a failure of Newton's method (the held set changed).
    pub fn clear_failure(&mut self) {
        self.failed = false;
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

    /// Solves for λ: the k x k linear system, then, when held kinks share a
    /// training point, Newton's method on the multilinear one (proofs.md
    /// E15) from the linear solution (from 1/2 each where that is not in
    /// [0, 1]^k); false when λ is not available (a singular system, Newton
    /// failing), and then [`Sliding::worst`] reads NaN.
    pub fn solve(&mut self) -> bool {
        if self.subsets.is_empty() {
            self.lambda.clear();
            self.lambda.extend(self.r0.iter().map(|r| -r));
            return gauss(&mut self.system, &mut self.lambda);
        }
        self.singles.clear();
        self.singles.extend_from_slice(&self.system);
        self.lambda.clear();
        self.lambda.extend(self.r0.iter().map(|r| -r));
        let linear = gauss(&mut self.system, &mut self.lambda);
        if !(linear && self.lambda.iter().all(|l| (0.0..=1.0).contains(l))) {
            self.lambda.iter_mut().for_each(|l| *l = 0.5);
        }
        let system = multilinear::RateSystem {
            r0: &self.r0,
            singles: &self.singles,
            subsets: &self.subsets,
            mixed: &self.mixed,
        };
        let solved = system.newton(&mut self.lambda).is_some();
        self.failed |= !solved;
        solved
    }

    /// The sliding switch whose λ lies farthest outside [0, 1] (the first
    /// when all lie inside), with its λ.
    pub fn worst(&self) -> Option<(usize, f64)> {
        if self.failed {
            return self.switches.first().map(|&j| (j, f64::NAN));
        }
        let outside = |l: f64| (-l).max(l - 1.0);
        self.switches
            .iter()
            .zip(&self.lambda)
            .max_by(|a, b| outside(*a.1).total_cmp(&outside(*b.1)))
            .map(|(&j, &l)| (j, l))
    }
}

/// Solves a x = b in place (Gaussian elimination with partial pivoting;
/// `a` k x k column-major, a[l k + j] = row j, column l; x into `b`);
/// false when a pivot is 0 or not finite, or x is not finite.
fn gauss(a: &mut [f64], b: &mut [f64]) -> bool {
    let k = b.len();
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
