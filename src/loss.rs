//! Per-example losses l(y*, y) and their derivatives in y (SPEC §2).
//!
//! `value` and `derivative` are finite whenever the true ones are
//! representable: exponentials only ever see arguments <= 0, except the
//! exponential loss, which overflows exactly where exp(-y* y) does.
//! `value_dual` is an independent forward-mode reference built from num-dual's
//! elementary functions; the tests check `derivative` against it.
use crate::activation::{ln1p_exp_neg_abs, sigmoid, sigmoid_pair, softplus, softplus_dual};
use num_dual::{Dual64, DualNum};
use serde::{Deserialize, Serialize};
use std::f64::consts::LN_2;

/// A per-example loss, with its parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Loss {
    Squared,
    Logistic,
    Bce,
    Exponential,
    Huber {
        #[serde(default = "one")]
        delta: f64,
    },
    LogCosh,
    Cauchy {
        #[serde(default = "one")]
        c: f64,
    },
    Absolute,
    Hinge,
    SquaredHinge,
    /// Softmax cross-entropy over C >= 2 outputs with an integer class label
    /// (SPEC §8); a vector loss, evaluated by [`Loss::row`] only.
    CrossEntropy,
}

fn one() -> f64 {
    1.0
}

/// The targets a loss is defined for (SPEC §2, column "targets").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TargetKind {
    /// Any finite number.
    Real,
    /// A class index 0..C-1 (cross_entropy).
    ClassIndex,
    /// -1 or +1.
    PlusMinusOne,
    /// 0 or 1.
    ZeroOne,
}

impl TargetKind {
    /// Whether `y` is a valid target of this kind.
    pub fn accepts(self, y: f64) -> bool {
        match self {
            TargetKind::Real => y.is_finite(),
            TargetKind::PlusMinusOne => y == 1.0 || y == -1.0,
            TargetKind::ZeroOne => y == 0.0 || y == 1.0,
            TargetKind::ClassIndex => y >= 0.0 && y.fract() == 0.0,
        }
    }
}

impl Loss {
    /// Every loss with default parameters, in SPEC order.
    pub fn all() -> Vec<Loss> {
        vec![
            Loss::Squared,
            Loss::Logistic,
            Loss::Bce,
            Loss::Exponential,
            Loss::Huber { delta: 1.0 },
            Loss::LogCosh,
            Loss::Cauchy { c: 1.0 },
            Loss::Absolute,
            Loss::Hinge,
            Loss::SquaredHinge,
        ]
    }

    /// The SPEC name (the serde `kind`).
    pub fn name(&self) -> &'static str {
        match self {
            Loss::Squared => "squared",
            Loss::Logistic => "logistic",
            Loss::Bce => "bce",
            Loss::Exponential => "exponential",
            Loss::Huber { .. } => "huber",
            Loss::LogCosh => "log_cosh",
            Loss::Cauchy { .. } => "cauchy",
            Loss::Absolute => "absolute",
            Loss::Hinge => "hinge",
            Loss::SquaredHinge => "squared_hinge",
            Loss::CrossEntropy => "cross_entropy",
        }
    }

    /// The targets this loss is defined for.
    pub fn target_kind(&self) -> TargetKind {
        match self {
            Loss::Logistic | Loss::Exponential | Loss::Hinge | Loss::SquaredHinge => {
                TargetKind::PlusMinusOne
            }
            Loss::Bce => TargetKind::ZeroOne,
            Loss::CrossEntropy => TargetKind::ClassIndex,
            _ => TargetKind::Real,
        }
    }

    /// l(target, y).
    #[inline]
    pub fn value(&self, target: f64, y: f64) -> f64 {
        match *self {
            Loss::Squared => {
                let d = y - target;
                0.5 * d * d
            }
            Loss::Logistic => softplus(-(target * y)),
            // softplus(y) - y* y, with max(y, 0) - y* y formed first: exact for
            // y* in {0, 1}, so a tiny loss (y* = 1, y = 40) is not lost.
            Loss::Bce => (y.max(0.0) - target * y) + ln1p_exp_neg_abs(y),
            Loss::Exponential => (-(target * y)).exp(),
            Loss::Huber { delta } => {
                let d = y - target;
                let a = d.abs();
                if a <= delta {
                    0.5 * d * d
                } else {
                    delta * (a - 0.5 * delta)
                }
            }
            Loss::LogCosh => log_cosh(y - target),
            Loss::Cauchy { c } => cauchy(c, y - target),
            Loss::Absolute => (y - target).abs(),
            Loss::Hinge => (1.0 - target * y).max(0.0),
            Loss::SquaredHinge => {
                let h = (1.0 - target * y).max(0.0);
                0.5 * h * h
            }
            Loss::CrossEntropy => unreachable!("cross_entropy is a vector loss: use Loss::row"),
        }
    }

    /// dl/dy at (target, y), with SPEC's conventions at kinks: absolute at
    /// y = y*: 0; hinge at y* y = 1: 0.
    #[inline]
    pub fn derivative(&self, target: f64, y: f64) -> f64 {
        match *self {
            Loss::Squared => y - target,
            Loss::Logistic => -target * sigmoid(-(target * y)),
            // sigma(y) - y* = (1 - y*) sigma(y) - y* sigma(-y): no cancellation
            // for y* in {0, 1}.
            Loss::Bce => {
                let (s, r) = sigmoid_pair(y);
                (1.0 - target) * s - target * r
            }
            Loss::Exponential => -target * (-(target * y)).exp(),
            // clamp(d, -delta, delta), written so a bad delta cannot panic.
            Loss::Huber { delta } => (y - target).max(-delta).min(delta),
            Loss::LogCosh => (y - target).tanh(),
            // c s / (1 + s^2) with s = d / c; for |s| > 1 the same with 1/s,
            // so s^2 never overflows.
            Loss::Cauchy { c } => {
                let d = y - target;
                let s = d / c;
                if s.abs() <= 1.0 {
                    c * s / (1.0 + s * s)
                } else {
                    let r = c / d;
                    c * r / (1.0 + r * r)
                }
            }
            Loss::Absolute => {
                let d = y - target;
                if d > 0.0 {
                    1.0
                } else if d < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }
            Loss::Hinge => {
                if target * y < 1.0 {
                    -target
                } else {
                    0.0
                }
            }
            Loss::SquaredHinge => -target * (1.0 - target * y).max(0.0),
            Loss::CrossEntropy => unreachable!("cross_entropy is a vector loss: use Loss::row"),
        }
    }

    /// l(target, y) on a dual number: the forward-mode reference for
    /// `derivative`, built from num-dual's elementary functions in overflow-free
    /// forms (its derivative never comes from `derivative`). At an exact kink it
    /// restates SPEC's convention (there is no derivative to check there).
    pub fn value_dual(&self, target: f64, y: Dual64) -> Dual64 {
        match *self {
            // Halve before squaring: d^2 alone overflows up to 2x too early.
            Loss::Squared => {
                let d = y - target;
                d * 0.5 * d
            }
            Loss::Logistic => softplus_dual(y * -target),
            // softplus(y) - y* y = (1 - y*) softplus(y) + y* softplus(-y).
            Loss::Bce => softplus_dual(y) * (1.0 - target) + softplus_dual(-y) * target,
            Loss::Exponential => (y * -target).exp(),
            Loss::Huber { delta } => {
                let d = y - target;
                let a = abs_dual(d);
                if a.re <= delta {
                    d * d * 0.5
                } else {
                    (a - delta * 0.5) * delta
                }
            }
            Loss::LogCosh => {
                let a = abs_dual(y - target);
                if a.re < 1.0 {
                    ((a * 0.5).sinh().powi(2) * 2.0).ln_1p()
                } else {
                    a + (a * -2.0).exp().ln_1p() - LN_2
                }
            }
            Loss::Cauchy { c } => {
                let a = abs_dual((y - target) / c);
                let l = if a.re <= 1.0 {
                    (a * a).ln_1p()
                } else {
                    a.ln() * 2.0 + a.recip().powi(2).ln_1p()
                };
                l * (0.5 * c * c)
            }
            Loss::Absolute => {
                let d = y - target;
                if d.re == 0.0 {
                    Dual64::from(0.0)
                } else {
                    abs_dual(d)
                }
            }
            Loss::Hinge => {
                let h = -(y * target) + 1.0;
                if h.re > 0.0 { h } else { Dual64::from(0.0) }
            }
            Loss::SquaredHinge => {
                let h = -(y * target) + 1.0;
                if h.re > 0.0 {
                    h * 0.5 * h
                } else {
                    Dual64::from(0.0)
                }
            }
            Loss::CrossEntropy => unreachable!("cross_entropy is a vector loss: use row_dual"),
        }
    }

    /// True for cross_entropy, whose value depends on the whole output row
    /// (SPEC §8); every other loss applies per component.
    pub fn is_vector(&self) -> bool {
        matches!(self, Loss::CrossEntropy)
    }

    /// How many target columns a model with `outputs` outputs needs: one
    /// class label for cross_entropy, else one target per output.
    pub fn target_columns(&self, outputs: usize) -> usize {
        if self.is_vector() { 1 } else { outputs }
    }

    /// The loss of one example, l(y*, f) summed over components (or the
    /// cross-entropy of the row), and `grad` = weight · dl/df.
    /// `target` holds [`Loss::target_columns`] entries.
    #[inline]
    pub fn row(&self, target: &[f64], f: &[f64], weight: f64, grad: &mut [f64]) -> f64 {
        if let Loss::CrossEntropy = self {
            return cross_entropy(target[0] as usize, f, weight, grad);
        }
        let mut total = 0.0;
        for ((g, &t), &y) in grad.iter_mut().zip(target).zip(f) {
            *g = weight * self.derivative(t, y);
            total += self.value(t, y);
        }
        total
    }

    /// [`Loss::row`]'s value on dual numbers: the forward-mode reference for
    /// its gradient (cross_entropy as ln Σ exp(f_c − max) + max − f_y*, the
    /// textbook form, independent of `row`'s).
    pub fn row_dual(&self, target: &[f64], f: &[Dual64]) -> Dual64 {
        if let Loss::CrossEntropy = self {
            let label = target[0] as usize;
            let max = f.iter().map(|v| v.re).fold(f64::NEG_INFINITY, f64::max);
            let sum = f
                .iter()
                .fold(Dual64::from(0.0), |s, &v| s + (v - max).exp());
            return sum.ln() + max - f[label];
        }
        target
            .iter()
            .zip(f)
            .fold(Dual64::from(0.0), |s, (&t, &y)| s + self.value_dual(t, y))
    }

    /// Signed distance to the loss's kink, for kink-crossing detection:
    /// absolute: y - y*; hinge: y* y - 1; None for smooth losses.
    pub fn kink_gap(&self, target: f64, y: f64) -> Option<f64> {
        match self {
            Loss::Absolute => Some(y - target),
            Loss::Hinge => Some(target * y - 1.0),
            _ => None,
        }
    }

    /// False for absolute and hinge (cross_entropy is smooth).
    pub fn is_smooth(&self) -> bool {
        !matches!(self, Loss::Absolute | Loss::Hinge)
    }
}

/// Softmax cross-entropy l = logsumexp(f) − f_label and grad = weight ·
/// (softmax(f) − onehot(label)), without spurious overflow or cancellation:
/// with m = max f at index k and r = Σ_{c≠k} e^{f_c − m} (every exponent
/// <= 0), l = (m − f_label) + ln(1 + r); softmax_c = e^{f_c − m} / (1 + r),
/// and the label's own entry softmax − 1 is formed as −Σ_{c≠label} softmax_c,
/// so a confident, correct row keeps its tiny gradient.
fn cross_entropy(label: usize, f: &[f64], weight: f64, grad: &mut [f64]) -> f64 {
    let (k, m) =
        f.iter().enumerate().fold(
            (0, f64::NEG_INFINITY),
            |(k, m), (c, &v)| {
                if v > m { (c, v) } else { (k, m) }
            },
        );
    let rest: f64 = f
        .iter()
        .enumerate()
        .filter(|&(c, _)| c != k)
        .map(|(_, &v)| (v - m).exp())
        .sum();
    let denominator = 1.0 + rest;
    let mut others = 0.0;
    for (c, (g, &v)) in grad.iter_mut().zip(f).enumerate() {
        let p = (v - m).exp() / denominator;
        *g = weight * p;
        if c != label {
            others += p;
        }
    }
    grad[label] = -weight * others;
    (m - f[label]) + rest.ln_1p()
}

/// ln cosh d. Near 0, ln1p(cosh d - 1) with cosh d - 1 = 2 sinh^2(d/2) keeps
/// relative accuracy (ln(cosh d) would lose it in 1 + d^2/2); from |d| = 1 on,
/// |d| + ln(1 + e^-2|d|) - ln 2 never overflows (cosh would past 710).
#[inline]
fn log_cosh(d: f64) -> f64 {
    let a = d.abs();
    if a < 1.0 {
        let s = (0.5 * a).sinh();
        (2.0 * s * s).ln_1p()
    } else {
        a - LN_2 + (-2.0 * a).exp().ln_1p()
    }
}

/// (c^2/2) ln(1 + s^2), s = |d| / c; for s > 1 as 2 ln s + ln(1 + 1/s^2) so
/// that s^2 never overflows (d = 1e200 gives 460.5, not inf).
#[inline]
fn cauchy(c: f64, d: f64) -> f64 {
    let s = d.abs() / c;
    let l = if s <= 1.0 {
        (s * s).ln_1p()
    } else {
        // ln s through ln|d| - ln c only where |d| / c itself overflows.
        let ln_s = if s.is_finite() {
            s.ln()
        } else {
            d.abs().ln() - c.ln()
        };
        let r = 1.0 / s;
        2.0 * ln_s + (r * r).ln_1p()
    };
    0.5 * c * c * l
}

/// |x| on a dual number, branching on the real part.
fn abs_dual(x: Dual64) -> Dual64 {
    if x.re < 0.0 { -x } else { x }
}
