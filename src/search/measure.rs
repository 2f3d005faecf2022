//! Measuring a claim on one experiment: run it, and turn what was observed
//! into a dimensionless violation and a detail in words.
use super::claims::{
    Claim, DECAY_OFFSET_TOL, FIXED_COEF_TOL, GD_LIMIT_TOL, LAZY_TOL, ORDER_FLOOR, ORDER_HALVINGS,
    ORDER_SLACK, PSD_TOL, SECOND_ORDER_TOL,
};
use super::generalises::generalises;
use super::sliding::sliding;
use super::stiffness::{ASYMPTOTIC_H_LAMBDA, stiffness_rate};
use crate::conditions::{AVERAGE_TOL, LOSS_RISE_TOL};
use crate::data::Dataset;
use crate::error::{Error, RunError};
use crate::experiment::{Experiment, Outcome, integration};
use crate::spec::Spec;
use nalgebra::{DMatrix, SymmetricEigen};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// The outcome of a claim on one experiment.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Dimensionless, normalised by the threshold: > 1 means the claim fails.
    pub violation: f64,
    /// What was measured, in words and numbers.
    pub detail: String,
}

impl Evaluation {
    pub fn fails(&self) -> bool {
        self.violation > 1.0
    }
    pub(super) fn pass(detail: impl Into<String>) -> Evaluation {
        Evaluation {
            violation: 0.0,
            detail: detail.into(),
        }
    }
}

impl Claim {
    /// Runs the experiment (more than once for `order`) and measures the
    /// claim. A panic of the engine is a failure of every claim (violation
    /// f64::MAX), so that the search shrinks it too.
    pub fn evaluate(self, spec: &Spec) -> Evaluation {
        self.evaluate_until(spec, None)
    }

    /// [`Claim::evaluate`], its runs stopped at their next step once
    /// `interrupt` is set (Ctrl-C): the evaluation then measured nothing
    /// and passes with "no evidence: interrupted …", which the search
    /// discards.
    pub fn evaluate_until(self, spec: &Spec, interrupt: Option<&Arc<AtomicBool>>) -> Evaluation {
        use std::panic::{AssertUnwindSafe, catch_unwind};
        catch_unwind(AssertUnwindSafe(|| self.measure(spec, interrupt))).unwrap_or_else(|what| {
            let why = what
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| what.downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            Evaluation {
                violation: f64::MAX,
                detail: format!("the run panicked: {why}"),
            }
        })
    }

    fn measure(self, spec: &Spec, interrupt: Option<&Arc<AtomicBool>>) -> Evaluation {
        if self == Claim::KernelGeneralises {
            return generalises(spec, interrupt);
        }
        if self == Claim::Sliding {
            return sliding(spec, interrupt);
        }
        let outcome = match run(spec, interrupt) {
            Ok(o) => o,
            Err(e) => return Evaluation::pass(format!("no evidence: {e}")),
        };
        match self {
            Claim::Order => order(spec, &outcome, interrupt),
            Claim::GdLimit => gd_limit(&outcome),
            Claim::WeightedAverage => weighted_average(&outcome),
            Claim::FixedCoefficients => {
                let v = outcome.conditions.coefficient_variation.unwrap_or(0.0);
                Evaluation {
                    violation: v / FIXED_COEF_TOL,
                    detail: format!(
                        "the best single coefficient vector leaves {v:.3e} of A unexplained; \
                         K^g moved {:.3e}",
                        outcome.conditions.tangent_kernel_change.unwrap_or(f64::NAN)
                    ),
                }
            }
            Claim::Lazy => {
                let drift = outcome.conditions.path_kernel_drift.unwrap_or(f64::MAX);
                Evaluation {
                    violation: drift / LAZY_TOL,
                    detail: format!(
                        "|K^p - T K^g(0)| / |T K^g(0)| = {drift:.3e}; K^g(T) moved {:.3e} from K^g(0)",
                        outcome.conditions.tangent_kernel_change.unwrap_or(f64::MAX)
                    ),
                }
            }
            Claim::MonotoneLoss => {
                let rise = outcome.conditions.loss_increase;
                Evaluation {
                    violation: rise / LOSS_RISE_TOL,
                    detail: format!(
                        "the loss rose by {rise:.3e} of L(w0) between two samples \
                         (L {:.6e} -> {:.6e})",
                        outcome.loss0, outcome.loss_end
                    ),
                }
            }
            Claim::Psd => psd(&outcome),
            Claim::SgdLimit | Claim::AdamKernelMachine => optimizer_limit(&outcome),
            Claim::DecayOffset => decay_offset(&outcome),
            Claim::SecondOrder => second_order(&outcome),
            Claim::KernelGeneralises | Claim::Sliding => unreachable!("measured above"),
        }
    }
}

/// The experiment of a spec with inline data, run until `interrupt` is set.
fn run(spec: &Spec, interrupt: Option<&Arc<AtomicBool>>) -> Result<Outcome, Error> {
    Ok(experiment(spec, interrupt)?.run(&mut |_| {})?)
}

/// The experiment of a spec with inline data, stopped once `interrupt` is set.
pub(super) fn experiment(
    spec: &Spec,
    interrupt: Option<&Arc<AtomicBool>>,
) -> Result<Experiment, Error> {
    let data = Dataset::resolve(spec, Path::new("."))?;
    let mut exp = Experiment::new(spec.clone(), data);
    exp.interrupt = interrupt.cloned();
    Ok(exp)
}

fn max_abs(v: impl IntoIterator<Item = f64>) -> f64 {
    v.into_iter().fold(0.0, |m, x| m.max(x.abs()))
}

fn order(spec: &Spec, first: &Outcome, interrupt: Option<&Arc<AtomicBool>>) -> Evaluation {
    let Some(h) = spec.flow.fixed_step() else {
        return Evaluation::pass("no evidence: not a fixed-step spec");
    };
    let p = f64::from(integration(&spec.flow).0.order);
    // With events, steps cut at kinks can carry a run through a base step
    // at which the method itself is unstable: without events it diverges
    // at h, so h, h/2, ... start outside the asymptotic range (E14).
    if spec.flow.events {
        let mut plain = spec.clone();
        plain.flow.events = false;
        if let Err(e @ Error::Run(RunError::Diverged { .. })) = run(&plain, interrupt) {
            return Evaluation::pass(format!(
                "no evidence: pre-asymptotic h: without events at h = {h}: {e}"
            ));
        }
    }
    let mut residuals = vec![first.max_abs_residual()];
    let mut finest = None;
    for k in 1..=ORDER_HALVINGS {
        let mut s = spec.clone();
        let hk = h / f64::from(1u32 << k);
        s.flow.set_fixed_step(hk);
        match run(&s, interrupt) {
            Ok(o) => {
                residuals.push(o.max_abs_residual());
                finest = Some(o);
            }
            Err(e) => return Evaluation::pass(format!("no evidence: at step {hk}: {e}")),
        }
    }
    let out = finest.expect("at least one rerun");
    // Two events closer than the finest step bound a step that no halving
    // shortens: its error is a floor the same at every h (E14).
    let finest_h = h / f64::from(1u32 << ORDER_HALVINGS);
    let times: Vec<f64> = out.conditions.events.iter().map(|e| e.t).collect();
    if let Some(w) = times
        .windows(2)
        .find(|w| w[1] > w[0] && w[1] - w[0] < finest_h)
    {
        return Evaluation::pass(format!(
            "no evidence: events at t = {} and {} lie closer than the finest step {finest_h}, \
             so the step between them is not refined",
            w[0], w[1]
        ));
    }
    let floor = ORDER_FLOOR * scale(&out);
    let listed = format!(
        "max|r| at h, h/2, h/4, h/8 = {}",
        residuals
            .iter()
            .map(|r| format!("{r:.3e}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if residuals[1..].iter().any(|&r| r <= floor) {
        return Evaluation::pass(format!("no evidence: {listed}, at rounding level"));
    }
    let observed: Vec<f64> = residuals[1..]
        .windows(2)
        .map(|w| (w[0] / w[1]).log2())
        .collect();
    let best = observed.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    // A failure outside the asymptotic range (h λ > 1/8 at the finest
    // step, C4) is no evidence: the next term of the error is not yet
    // small there (E14).
    if (p - best) / ORDER_SLACK > 1.0
        && let Ok(Some(rate)) = stiffness_rate(spec)
        && finest_h * rate > ASYMPTOTIC_H_LAMBDA
    {
        return Evaluation::pass(format!(
            "no evidence: pre-asymptotic h: {listed}, observed orders {observed:.3?}, but the \
             finest step {finest_h} times the stiffness rate {rate:.3} at w0 is {:.3} > \
             {ASYMPTOTIC_H_LAMBDA} (C4's asymptotic range)",
            finest_h * rate
        ));
    }
    Evaluation {
        violation: (p - best) / ORDER_SLACK,
        detail: format!(
            "{listed}: observed orders {} over the last two halvings, for a method of order {p}; {}",
            observed
                .iter()
                .map(|o| format!("{o:.3}"))
                .collect::<Vec<_>>()
                .join(", "),
            out.conditions.verdict
        ),
    }
}

/// The scale of a run's predictions and sums, max(1, |y_end|, Σ_i |A_i|):
/// rounding in the residual is a few ulps of it per step.
fn scale(out: &Outcome) -> f64 {
    1f64.max(max_abs(out.y_end.iter().copied()))
        .max(max_abs(out.coef_integral.row_iter().map(|r| r.abs().sum())))
}

fn gd_limit(out: &Outcome) -> Evaluation {
    let change = max_abs(out.y_end.iter().zip(&out.y0).map(|(e, b)| e - b));
    let r = out.max_abs_residual();
    if r <= ORDER_FLOOR * scale(out) {
        return Evaluation::pass(format!("max|r| = {r:.3e} is at rounding level"));
    }
    Evaluation {
        violation: r / (GD_LIMIT_TOL * change),
        detail: format!(
            "max|r| = {r:.3e} is {:.3e} of max|y_end - y0| = {change:.3e}; L {:.6e} -> {:.6e}",
            r / change,
            out.loss0,
            out.loss_end
        ),
    }
}

/// gd-limit's measure on an sgd/adam run, with what its conditions show
/// (points in no batch, kernel sign flips, the decay term, Adam's spread).
fn optimizer_limit(out: &Outcome) -> Evaluation {
    let Some(conditions) = &out.conditions.optimizer else {
        return Evaluation::pass("no evidence: not an sgd/adam run");
    };
    let mut eval = gd_limit(out);
    for part in conditions.describe() {
        eval.detail = format!("{}; {part}", eval.detail);
    }
    eval
}

/// `part` against `tol` times `whole`; where `measured` (the part, or the
/// whole it is a share of) is below [`ORDER_FLOOR`] of the run's scale it
/// is rounding, and the claim passes.
fn share(
    out: &Outcome,
    measured: f64,
    (part, whole): (f64, f64),
    tol: f64,
    detail: String,
) -> Evaluation {
    if measured <= ORDER_FLOOR * scale(out) {
        return Evaluation::pass(format!("{detail}: at rounding level"));
    }
    Evaluation {
        violation: part / (tol * whole),
        detail,
    }
}

/// The exact decomposition without its decay term: f(w0) + Σ_i A^e_i
/// misses f(w_end) by D^e (and the exact residual, at rounding).
fn decay_offset(out: &Outcome) -> Evaluation {
    let (Some(a), Some(terms)) = (&out.exact_coef_integral, &out.optimizer) else {
        return Evaluation::pass("no evidence: not an sgd/adam run");
    };
    let change = max_abs(out.y_end.iter().zip(&out.y0).map(|(e, b)| e - b));
    let miss = max_abs(
        out.y_end
            .iter()
            .zip(&out.y0)
            .zip(a.row_iter())
            .map(|((e, b), row)| e - b - row.sum()),
    );
    let detail = format!(
        "max|y_end - y0 - sum_i A^e_i| = {miss:.3e} is {:.3e} of max|y_end - y0| = {change:.3e}; \
         max|exact decay term| = {:.3e}, max|decay term| = {:.3e}",
        miss / change,
        max_abs(terms.exact_decay_term.iter().copied()),
        max_abs(terms.decay_term.iter().copied())
    );
    share(out, miss, (miss, change), DECAY_OFFSET_TOL, detail)
}

/// The second-order residual r − r2 against the Domingos residual r.
fn second_order(out: &Outcome) -> Evaluation {
    let Some(r2) = out.second_order_max_abs_residual() else {
        return Evaluation::pass("no evidence: no second-order term");
    };
    let r = out.max_abs_residual();
    let detail = format!(
        "max|r - r2| = {r2:.3e} is {:.3e} of max|r| = {r:.3e}; {} {} steps",
        r2 / r,
        out.stats.steps,
        if out.optimizer.is_some() {
            "optimizer"
        } else {
            "gd"
        }
    );
    share(out, r, (r2, r), SECOND_ORDER_TOL, detail)
}

fn weighted_average(out: &Outcome) -> Evaluation {
    let c = &out.conditions;
    let outputs = out.n_outputs;
    let coefficients = out.coefficients();
    // The worst defined coefficient, for the detail: row m C + k of a holds
    // output k of query m, and entry i C + k of the -l' ranges matches it.
    let mut worst = (f64::NEG_INFINITY, 0, 0);
    for i in 0..coefficients.ncols() {
        for row in 0..coefficients.nrows() {
            let Some(coef) = coefficients[(row, i)] else {
                continue;
            };
            let e = i * outputs + row % outputs;
            let scale = c.neg_lprime_min[e]
                .abs()
                .max(c.neg_lprime_max[e].abs())
                .max(f64::MIN_POSITIVE);
            let outside = (c.neg_lprime_min[e] - coef).max(coef - c.neg_lprime_max[e]);
            if outside / scale > worst.0 {
                worst = (outside / scale, row, i);
            }
        }
    }
    let (_, row, i) = worst;
    let (m, k) = (row / outputs, row % outputs);
    let e = i * outputs + k;
    let (name, range) = if outputs == 1 {
        (format!("a_{i}(q_{m})"), format!("-l'_{i}"))
    } else {
        (format!("a_{i}(q_{m})_{k}"), format!("-l'_{i},{k}"))
    };
    let pair = (m * outputs + k, i * outputs + k);
    // With C > 1, a is the block solve; its k-th A and diagonal K^p entries
    // are shown for scale.
    let solve = if outputs == 1 {
        "A / K^p"
    } else {
        "(K^p block)^-1 A, with A_k / K^p_kk"
    };
    Evaluation {
        violation: c.weighted_average_excess / AVERAGE_TOL,
        detail: format!(
            "{} {name} = {:.6e} = {solve} = {:.6e} / {:.6e}, against [{:.6e}, {:.6e}], the \
             range of {range}; K^g(q_{m}, x_{i}) went {:.6e} -> {:.6e}; K^g changed sign on {} of {} pairs",
            if c.weighted_average_excess > AVERAGE_TOL {
                "outside:"
            } else {
                "every a_i(q_m) within its range; the nearest edge:"
            },
            coefficients[(row, i)].unwrap_or(f64::NAN),
            out.coef_integral[(row, i)],
            out.path_kernel[pair],
            c.neg_lprime_min[e],
            c.neg_lprime_max[e],
            out.tangent_kernel0[pair],
            out.tangent_kernel_end[pair],
            c.kernel_sign_changes,
            c.kernel_pairs
        ),
    }
}

fn psd(out: &Outcome) -> Evaluation {
    let k = &out.path_kernel;
    if k.nrows() != k.ncols() {
        return Evaluation::pass("no evidence: the query points are not the training points");
    }
    let sym: DMatrix<f64> = (k + k.transpose()) * 0.5;
    let trace = sym.trace();
    let lambda_min = SymmetricEigen::new(sym)
        .eigenvalues
        .iter()
        .fold(f64::INFINITY, |a, &b| a.min(b));
    let violation = if trace > 0.0 {
        (-lambda_min).max(0.0) / (PSD_TOL * trace)
    } else {
        0.0
    };
    Evaluation {
        violation,
        detail: format!("lambda_min = {lambda_min:.3e}, trace = {trace:.3e}"),
    }
}
