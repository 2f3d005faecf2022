//! Kinks as events: the pieces the stepper uses to end a step where a
//! switching function g_j(y) changes sign (proofs.md §9).
//!
//! A piecewise-smooth right-hand side is smooth while no g_j changes sign;
//! a Runge–Kutta step that contains a sign change errs by O(h) whatever its
//! order (C13). The stepper therefore checks the signs at each step's end,
//! finds the first zero inside the step on the method's dense output
//! ([`Interpolant`]) with a bracketing root finder ([`brent`]), and ends the
//! step there. [`Watch`] keeps the side of every g_j and detects chattering:
//! a g_j whose sign flips back and forth step after step, the signature of a
//! Filippov sliding mode that an explicit method cannot leave.

use crate::tableau::dop853_dense::{DENSE_STAGES, dense_weights};

/// Crossings of one switching function, each within [`CHATTER_GAP`]
/// accepted steps of the previous one, that make a chatter (proofs.md §9).
pub const CHATTER_CROSSINGS: u32 = 32;

/// Most accepted steps between two crossings of one switching function
/// that still count as the same burst.
pub const CHATTER_GAP: usize = 16;

/// A switching function that chattered: `crossings` sign changes, the
/// burst starting at `since`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Chatter {
    pub switch: usize,
    pub crossings: u32,
    pub since: f64,
}

/// The side (g > 0 or not) of every switching function, and its bursts of
/// crossings. Allocated once per integration.
#[derive(Clone, Debug)]
pub struct Watch {
    side: Vec<bool>,
    last_step: Vec<usize>,
    burst: Vec<u32>,
    since: Vec<f64>,
}

/// The side of a switching value: relu'(0) = 0, so g = 0 belongs to g < 0.
pub fn side(g: f64) -> bool {
    g > 0.0
}

impl Watch {
    /// A watch over the switching values `g` at the start.
    pub fn new(g: &[f64]) -> Watch {
        Watch {
            side: g.iter().map(|&v| side(v)).collect(),
            last_step: vec![0; g.len()],
            burst: vec![0; g.len()],
            since: vec![0.0; g.len()],
        }
    }

    /// Puts switch j on side `s` without counting a crossing (a sliding
    /// mode's start and release).
    pub fn place(&mut self, j: usize, s: bool) {
        self.side[j] = s;
    }

    /// The recorded side of switch j.
    pub fn side(&self, j: usize) -> bool {
        self.side[j]
    }

    /// Puts switch j on side `s` after accepted step `step` ending at t;
    /// a change of side is a crossing. Returns the chatter it completes.
    pub fn set(&mut self, j: usize, s: bool, step: usize, t: f64) -> Option<Chatter> {
        if self.side[j] == s {
            return None;
        }
        self.side[j] = s;
        if self.burst[j] > 0 && step - self.last_step[j] <= CHATTER_GAP {
            self.burst[j] += 1;
        } else {
            self.burst[j] = 1;
            self.since[j] = t;
        }
        self.last_step[j] = step;
        (self.burst[j] >= CHATTER_CROSSINGS).then_some(Chatter {
            switch: j,
            crossings: self.burst[j],
            since: self.since[j],
        })
    }

    /// Records the sides of the values `g` after step `step` ending at t;
    /// returns the first chatter found.
    pub fn update(&mut self, g: &[f64], step: usize, t: f64) -> Option<Chatter> {
        let mut found = None;
        for (j, &v) in g.iter().enumerate() {
            let c = self.set(j, side(v), step, t);
            found = found.or(c);
        }
        found
    }
}

/// What an event was: a kink crossed, a sliding mode reached (proofs.md
/// E5), or a sliding mode released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Crossing,
    Slide,
    Release,
}

impl EventKind {
    /// The report's `event` field: absent for a crossing.
    pub fn name(self) -> Option<&'static str> {
        match self {
            EventKind::Crossing => None,
            EventKind::Slide => Some("slide"),
            EventKind::Release => Some("release"),
        }
    }
}

/// How a step's solution is continued inside the step, for the coupled
/// components (those the switching functions read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interpolant {
    /// Cubic Hermite interpolation of y0, y1, f0, f1 (order 3; HNW §II.6,
    /// (6.7)): every method without a continuous extension of its own.
    Hermite,
    /// Dormand & Prince's 5(4) continuous extension of order 4 (Shampine
    /// 1986), as in Hairer's `dopri5.f`, subroutine CONTD5: coefficients
    /// d1..d7 of [`DOPRI5_DENSE`].
    Dopri5,
    /// DOP853's continuous extension of order 7 (Hairer, `dop853.f`,
    /// CONTD8): the step's 12 stages, f1 = k13 and the three more stages
    /// of [`StepData::extra`], weighted by
    /// [`crate::tableau::dop853_dense::dense_weights`].
    Dop853,
}

/// The d_i of `dopri5.f` (DENSE OUTPUT OF SHAMPINE (1986)), d2 = 0.
pub const DOPRI5_DENSE: [f64; 7] = [
    -12715105075.0 / 11282082432.0,
    0.0,
    87487479700.0 / 32700410799.0,
    -10690763975.0 / 1880347072.0,
    701980252875.0 / 199316789632.0,
    -1453857185.0 / 822651844.0,
    69997945.0 / 29380423.0,
];

/// One step's data for its continuous extension.
pub struct StepData<'a> {
    pub h: f64,
    pub y0: &'a [f64],
    pub y1: &'a [f64],
    /// f(t0, y0).
    pub f0: &'a [f64],
    /// f(t0 + h, y1).
    pub f1: &'a [f64],
    /// The stages k_1..k_s (for [`Interpolant::Dopri5`] and
    /// [`Interpolant::Dop853`]).
    pub k: &'a [Vec<f64>],
    /// Stages evaluated for the dense output alone (k14..k16 of
    /// [`Interpolant::Dop853`]; empty otherwise).
    pub extra: &'a [Vec<f64>],
}

impl Interpolant {
    /// The dense output of the method called `name` (a tableau's name).
    pub fn for_method(name: &str) -> Interpolant {
        match name {
            "dopri5" => Interpolant::Dopri5,
            "dop853" => Interpolant::Dop853,
            _ => Interpolant::Hermite,
        }
    }

    /// Evaluations of f beyond the step's own that the interpolant needs
    /// (each counted in rhs_evals, SPEC §4).
    pub fn extra_stages(self) -> usize {
        match self {
            Interpolant::Dop853 => DENSE_STAGES,
            _ => 0,
        }
    }

    /// u(θ) into `out` (as long as the coupled part): u(0) = y0, u(1) = y1.
    pub fn eval(&self, d: &StepData<'_>, theta: f64, out: &mut [f64]) {
        let (h, s) = (d.h, 1.0 - theta);
        match self {
            Interpolant::Hermite => {
                for (i, o) in out.iter_mut().enumerate() {
                    let dy = d.y1[i] - d.y0[i];
                    // (1 − θ) y0 + θ y1 + θ(θ − 1)[(1 − 2θ) Δy + (θ − 1) h f0 + θ h f1]
                    *o = s * d.y0[i]
                        + theta * d.y1[i]
                        + theta
                            * (theta - 1.0)
                            * ((1.0 - 2.0 * theta) * dy
                                + (theta - 1.0) * h * d.f0[i]
                                + theta * h * d.f1[i]);
                }
            }
            Interpolant::Dopri5 => {
                for (i, o) in out.iter_mut().enumerate() {
                    // CONTD5: r1 + θ(r2 + (1 − θ)(r3 + θ(r4 + (1 − θ) r5)))
                    let r2 = d.y1[i] - d.y0[i];
                    let r3 = h * d.f0[i] - r2;
                    let r4 = r2 - h * d.f1[i] - r3;
                    let r5 = h * d
                        .k
                        .iter()
                        .zip(DOPRI5_DENSE)
                        .map(|(k, c)| c * k[i])
                        .sum::<f64>();
                    *o = d.y0[i] + theta * (r2 + s * (r3 + theta * (r4 + s * r5)));
                }
            }
            Interpolant::Dop853 => {
                let w = dense_weights(theta);
                let (k, f1, extra) = (&d.k[..12], d.f1, &d.extra[..DENSE_STAGES]);
                for (i, o) in out.iter_mut().enumerate() {
                    let sum = k.iter().zip(&w).map(|(k, w)| w * k[i]).sum::<f64>()
                        + w[12] * f1[i]
                        + extra
                            .iter()
                            .zip(&w[13..])
                            .map(|(k, w)| w * k[i])
                            .sum::<f64>();
                    *o = d.y0[i] + h * sum;
                }
            }
        }
    }
}

/// Brent's method (R. P. Brent, *Algorithms for Minimization without
/// Derivatives*, 1973, ch. 4, `zero`) on [a, b] with f(a), f(b) of opposite
/// signs (0 counts as negative, as [`side`]). Returns the final bracket
/// (x_a, x_b): x_a on a's side, x_b on b's, |x_b − x_a| <= 4 eps max(|x|) +
/// `tol`, so the zero is located to rounding when `tol` is 0.
pub fn brent(
    mut f: impl FnMut(f64) -> f64,
    a: f64,
    b: f64,
    fa: f64,
    fb: f64,
    tol: f64,
) -> (f64, f64) {
    let sg = |v: f64| {
        if v > 0.0 {
            v
        } else {
            v.min(-f64::MIN_POSITIVE)
        }
    };
    let side_a = side(fa);
    let (mut a, mut b, mut fa, mut fb) = (a, b, sg(fa), sg(fb));
    let (mut c, mut fc) = (a, fa);
    let mut d = b - a;
    let mut e = d;
    for _ in 0..200 {
        if (fb > 0.0) == (fc > 0.0) {
            c = a;
            fc = fa;
            d = b - a;
            e = d;
        }
        if fc.abs() < fb.abs() {
            a = b;
            b = c;
            c = a;
            fa = fb;
            fb = fc;
            fc = fa;
        }
        let tol1 = 2.0 * f64::EPSILON * b.abs() + 0.5 * tol;
        let m = 0.5 * (c - b);
        if m.abs() <= tol1 {
            break;
        }
        if e.abs() < tol1 || fa.abs() <= fb.abs() {
            d = m;
            e = m;
        } else {
            let s = fb / fa;
            let (mut p, mut q) = if a == c {
                (2.0 * m * s, 1.0 - s)
            } else {
                let (q, r) = (fa / fc, fb / fc);
                (
                    s * (2.0 * m * q * (q - r) - (b - a) * (r - 1.0)),
                    (q - 1.0) * (r - 1.0) * (s - 1.0),
                )
            };
            if p > 0.0 {
                q = -q;
            } else {
                p = -p;
            }
            if 2.0 * p < 3.0 * m * q - (tol1 * q).abs() && p < (0.5 * e * q).abs() {
                e = d;
                d = p / q;
            } else {
                d = m;
                e = m;
            }
        }
        a = b;
        fa = fb;
        b += if d.abs() > tol1 { d } else { tol1.copysign(m) };
        fb = sg(f(b));
    }
    if (fb > 0.0) == side_a { (b, c) } else { (c, b) }
}
