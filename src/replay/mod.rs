//! The path kernel at new points (SPEC §13): a run is retraced on the
//! accepted steps its report lists, with other query points. dw/dt never
//! reads the query points, so w(t) is the run's bit for bit; the new
//! points' K^p and A are integrated on steps that the error control chose
//! for the original query points, so a second replay on halved steps gives
//! their error estimate. `pathkernel kernel` writes the result as a report
//! of the run whose query points are the new ones.
use crate::data::Dataset;
use crate::error::{Error, InputError, RunError};
use crate::experiment::{Experiment, Outcome};
use crate::report::npz::{Arrays, write_with_arrays};
use crate::report::{Report, Shaped, per_block, per_output, per_pair};
use crate::spec::{DEFAULT_MAX_MEMORY_GIB, Method};
use nalgebra::DMatrix;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

pub mod query;
pub mod record;

pub use record::RunRecord;

/// The run of `record` with `query` as its query points (their targets
/// `query_y` where known), its w0 the report's, refused (before any work)
/// when the memory estimate is over the default limit.
pub fn experiment(
    record: &RunRecord,
    query: DMatrix<f64>,
    query_y: Option<DMatrix<f64>>,
) -> Result<Experiment, InputError> {
    let (d, n, m) = (
        record.train_x.ncols(),
        record.train_x.nrows(),
        query.nrows(),
    );
    record.spec.check_size(d, n, m, DEFAULT_MAX_MEMORY_GIB)?;
    let data = Dataset {
        train_x: record.train_x.clone(),
        train_y: record.train_y.clone(),
        test_x: query,
        test_y: query_y,
    };
    let mut exp = Experiment::new(record.spec.clone(), data);
    if record.w0.len() != exp.model.n_params() {
        return Err(InputError::new(
            format!("{}: w0", record.path.display()),
            format!(
                "found {} numbers, expected {} (the parameters of the spec's model)",
                record.w0.len(),
                exp.model.n_params()
            ),
        ));
    }
    exp.w0 = record.w0.clone();
    Ok(exp)
}

/// The run retraced on `steps` with the experiment's query points.
pub fn replay(exp: &Experiment, steps: &[f64]) -> Result<Outcome, RunError> {
    match exp.spec.flow.method {
        Method::Gd
        | Method::Heun
        | Method::Rk4
        | Method::Dopri5
        | Method::Dop853
        | Method::Verner98 => exp.replay(steps, &mut |_| {}),
        // sgd and adam: the report's spec draws the same batches from its
        // seed (or lists them) and eta_k follow from its schedule, so a run
        // with the new query points is the replay (w never reads them);
        // `steps` (eta_k) adds nothing.
        Method::Sgd | Method::Adam => exp.run(&mut |_| {}),
    }
}

/// How `kernel` estimates the error of the new points' K^p and A
/// (`--error-estimate`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ErrorEstimate {
    /// SPEC §13's: the difference from a second replay on halved steps
    /// (twice the steps, so about twice the run's work on top of the replay).
    #[default]
    Halved,
    /// No estimate: one replay; the *_error fields are left out.
    None,
}

/// Each step split into two halves: the replay whose difference from the
/// run's steps estimates the error of the new points' K^p and A.
pub fn halved(steps: &[f64]) -> Vec<f64> {
    steps.iter().flat_map(|&h| [h / 2.0, h / 2.0]).collect()
}

/// `kernel`'s output: the report of the run with the new query points,
/// the halved-step differences beside K^p, A and the kernel machine (absent
/// with `--error-estimate none`), and how the replay went.
#[derive(Clone, Debug, Serialize)]
pub struct KernelReport {
    #[serde(flatten)]
    pub report: Report,
    /// K^p on halved steps minus K^p on the run's steps (path_kernel's layout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_kernel_error: Option<Shaped<f64>>,
    /// The same for A (coef_integral's layout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coef_integral_error: Option<Shaped<f64>>,
    /// The same for the kernel machine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_machine_error: Option<Shaped<f64>>,
    pub replay: ReplayInfo,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReplayInfo {
    /// The report replayed.
    pub source: String,
    /// Where the steps come from, and what that means for the new points.
    pub steps_from: &'static str,
    /// Whether the replay's w_end equals the report's in every bit.
    pub w_end_identical: bool,
    pub w_end_max_abs_difference: f64,
    /// Right-hand-side evaluations of the replay on the run's steps.
    pub rhs_evals: usize,
    /// The largest halved-step differences; absent with `--error-estimate
    /// none`.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<EstimateInfo>,
}

/// The halved-step replay's size and the largest differences it found.
#[derive(Clone, Debug, Serialize)]
pub struct EstimateInfo {
    /// Right-hand-side evaluations of the replay on halved steps.
    pub halved_rhs_evals: usize,
    pub max_abs_path_kernel_error: f64,
    pub max_abs_coef_integral_error: f64,
    pub max_abs_kernel_machine_error: f64,
}

const STEPS_FROM: &str = "the run's accepted steps (step_sizes), chosen by its error control for \
                          its own query points; the *_error fields are the differences from a \
                          replay on halved steps";

/// What `steps_from` says without an estimate (`--error-estimate none`).
const STEPS_FROM_UNESTIMATED: &str = "the run's accepted steps (step_sizes), chosen by its error \
                                      control for its own query points; no error estimate for the \
                                      new points (--error-estimate none)";

/// What `steps_from` says for sgd and adam, whose replay is a rerun.
const STEPS_FROM_OPTIMIZER: &str = "the run's batches and step sizes eta_k (sgd/adam): K^p, A \
                                    and the decompositions are sums over those steps, exact by \
                                    definition, so the *_error fields are 0";

/// Replays `record` at `query`: once, and with [`ErrorEstimate::Halved`]
/// again on halved steps (sgd and adam: once, their K^p and A being
/// defined by their steps, so the differences are 0).
pub fn kernel_report(
    record: &RunRecord,
    exp: &Experiment,
    estimate: ErrorEstimate,
) -> Result<KernelReport, RunError> {
    let out = replay(exp, &record.step_sizes)?;
    let discrete = exp.spec.flow.method.is_optimizer();
    let w_diff = out
        .w_end
        .iter()
        .zip(&record.w_end)
        .fold(0.0_f64, |m, (a, b)| m.max((a - b).abs()));
    let identical = out
        .w_end
        .iter()
        .zip(&record.w_end)
        .all(|(a, b)| a.to_bits() == b.to_bits());
    let steps_from = match (discrete, estimate) {
        (true, _) => STEPS_FROM_OPTIMIZER,
        (false, ErrorEstimate::Halved) => STEPS_FROM,
        (false, ErrorEstimate::None) => STEPS_FROM_UNESTIMATED,
    };
    let mut kernel = KernelReport {
        report: Report::new(exp, &out),
        replay: ReplayInfo {
            source: record.path.display().to_string(),
            steps_from,
            w_end_identical: identical,
            w_end_max_abs_difference: w_diff,
            rhs_evals: out.stats.rhs_evals,
            estimate: None,
        },
        path_kernel_error: None,
        coef_integral_error: None,
        kernel_machine_error: None,
    };
    if estimate == ErrorEstimate::None {
        return Ok(kernel);
    }
    let fine = if discrete {
        out.clone()
    } else {
        replay(exp, &halved(&record.step_sizes))?
    };
    let c = out.n_outputs;
    let (dk, da) = (
        &fine.path_kernel - &out.path_kernel,
        &fine.coef_integral - &out.coef_integral,
    );
    let dm: Vec<f64> = fine
        .kernel_machine()
        .iter()
        .zip(out.kernel_machine())
        .map(|(f, o)| f - o)
        .collect();
    kernel.replay.estimate = Some(EstimateInfo {
        halved_rhs_evals: fine.stats.rhs_evals,
        max_abs_path_kernel_error: dk.amax(),
        max_abs_coef_integral_error: da.amax(),
        max_abs_kernel_machine_error: dm.iter().fold(0.0_f64, |m, v| m.max(v.abs())),
    });
    kernel.path_kernel_error = Some(per_block(&dk, c));
    kernel.coef_integral_error = Some(per_pair(&da, c));
    kernel.kernel_machine_error = Some(per_output(&dm, c));
    Ok(kernel)
}

/// `pathkernel kernel REPORT --query FILE [--out OUT] [--arrays npz]
/// [--error-estimate halved|none]`;
/// returns the summary to print.
pub fn command(
    report: &Path,
    query: &Path,
    out: Option<&Path>,
    arrays: Arrays,
    estimate: ErrorEstimate,
    interrupt: Option<Arc<AtomicBool>>,
) -> Result<String, Error> {
    let record = RunRecord::read(report)?;
    let points = query::read_query(query, record.train_x.ncols())?;
    let mut exp = experiment(&record, points, None)?;
    exp.interrupt = interrupt;
    let kernel = kernel_report(&record, &exp, estimate)?;
    if let Some(path) = out {
        write_with_arrays(&kernel, path, arrays)?;
    }
    Ok(summary(&kernel))
}

fn summary(k: &KernelReport) -> String {
    use std::fmt::Write;
    let (r, info) = (&k.report, &k.replay);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "pathkernel kernel: {} new query points on the {} steps of {}",
        r.test_x.len(),
        r.steps,
        info.source
    );
    let _ = writeln!(
        s,
        "  w_end retraced {} (max |difference| {:.3e})",
        if info.w_end_identical {
            "bit for bit"
        } else {
            "NOT bit for bit"
        },
        info.w_end_max_abs_difference
    );
    match (info.steps_from, &info.estimate) {
        (STEPS_FROM_OPTIMIZER, _) => {
            let _ = writeln!(
                s,
                "  K^p and A summed over the run's replayed batches and steps eta_k (sgd/adam): \
                 exact by definition, no halved-step estimate"
            );
        }
        (_, Some(e)) => {
            let _ = writeln!(
                s,
                "  K^p and A on the run's steps (chosen by its error control for its own query \
                 points); halved steps change them by at most"
            );
            let _ = writeln!(
                s,
                "    K^p {:.3e}, A {:.3e}, kernel machine {:.3e}",
                e.max_abs_path_kernel_error,
                e.max_abs_coef_integral_error,
                e.max_abs_kernel_machine_error
            );
        }
        (_, None) => {
            let _ = writeln!(
                s,
                "  K^p and A on the run's steps (chosen by its error control for its own query \
                 points); no error estimate for them (--error-estimate none; `halved` replays \
                 again on halved steps)"
            );
        }
    }
    let _ = writeln!(s, "  max |residual| {:.3e}", r.max_abs_residual);
    let _ = writeln!(
        s,
        "  {:>5} {:>14} {:>14} {:>16} {:>11}",
        "query", "y0", "y_end", "kernel machine", "residual"
    );
    let (y0, y_end, km, res) = (
        r.y0.flatten(),
        r.y_end.flatten(),
        r.kernel_machine.flatten(),
        r.residual.flatten(),
    );
    let shown = y0.len().min(5);
    for j in 0..shown {
        let _ = writeln!(
            s,
            "  {j:>5} {:>14.6e} {:>14.6e} {:>16.6e} {:>11.2e}",
            y0[j], y_end[j], km[j], res[j]
        );
    }
    if y0.len() > shown {
        let _ = writeln!(s, "  ({} more outputs in the report)", y0.len() - shown);
    }
    s
}
