//! The claim kernel-generalises on one experiment: run it, fit `learn`'s
//! kernel ridge regression with the path kernel on the training labels,
//! and compare its test error at the query points with the network's.
//! The theorem's coefficients a_i(x) depend on x; a kernel with fixed
//! dual coefficients is a different model, and the claim measures how far
//! apart the two land (proofs.md, C41).
use super::claims::{GENERALISES_MSE_FLOOR, GENERALISES_TOL};
use super::measure::Evaluation;
use crate::data::Dataset;
use crate::experiment::Experiment;
use crate::learn::{LearnReport, learn};
use crate::loss::TargetKind;
use crate::replay::RunRecord;
use crate::spec::Spec;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// A test error as the claim reads it, with the floor below which two
/// errors count as equal.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TestErrors {
    pub network: f64,
    pub krr: f64,
    pub floor: f64,
    /// True for 1 − accuracy (class labels), false for the MSE.
    pub classes: bool,
}

impl TestErrors {
    /// |e_krr − e_net| / (0.1 max(e_net, floor)): > 1 fails.
    pub fn violation(&self) -> f64 {
        (self.krr - self.network).abs() / (GENERALISES_TOL * self.network.max(self.floor))
    }
}

/// The network's and the path-kernel KRR's test errors in `learned`:
/// 1 − accuracy with class labels (floor 1/M), else the MSE (floor
/// 0.01 max(1, mean of the query targets' squares)). None without targets.
pub fn test_errors(learned: &LearnReport, spec: &Spec, record: &RunRecord) -> Option<TestErrors> {
    let targets = record.test_y.as_ref()?;
    let classes = spec.loss.target_kind() != TargetKind::Real;
    let error = |name: &str| {
        let e = learned
            .predictors
            .iter()
            .find(|p| p.name == name)?
            .test_error
            .clone()?;
        if classes {
            e.accuracy.map(|a| 1.0 - a)
        } else {
            Some(e.mse)
        }
    };
    let floor = if classes {
        1.0 / targets.nrows().max(1) as f64
    } else {
        let mean_square = targets.iter().map(|y| y * y).sum::<f64>() / targets.len().max(1) as f64;
        GENERALISES_MSE_FLOOR * mean_square.max(1.0)
    };
    Some(TestErrors {
        network: error("network")?,
        krr: error("krr_path_kernel")?,
        floor,
        classes,
    })
}

/// Runs `spec`, fits the learners and measures the claim.
pub fn generalises(spec: &Spec, interrupt: Option<&Arc<AtomicBool>>) -> Evaluation {
    let data = match Dataset::resolve(spec, Path::new(".")) {
        Ok(d) => d,
        Err(e) => return Evaluation::pass(format!("no evidence: {e}")),
    };
    let mut exp = Experiment::new(spec.clone(), data);
    exp.interrupt = interrupt.cloned();
    let out = match exp.run(&mut |_| {}) {
        Ok(o) => o,
        Err(e) => return Evaluation::pass(format!("no evidence: {e}")),
    };
    let record = RunRecord::of_run(&exp, &out);
    let learned = match learn(&record, interrupt.cloned()) {
        Ok(l) => l,
        Err(e) => return Evaluation::pass(format!("no evidence: {e}")),
    };
    let Some(errors) = test_errors(&learned, spec, &record) else {
        return Evaluation::pass("no evidence: the query points have no targets");
    };
    let what = if errors.classes {
        "1 - accuracy"
    } else {
        "test MSE"
    };
    let others: Vec<String> = learned
        .predictors
        .iter()
        .filter(|p| p.name != "network" && p.name != "krr_path_kernel")
        .filter_map(|p| {
            let e = p.test_error.as_ref()?;
            let v = if errors.classes {
                1.0 - e.accuracy?
            } else {
                e.mse
            };
            Some(format!("{} {v:.3e}", p.name))
        })
        .collect();
    let ridge = learned
        .predictors
        .iter()
        .find(|p| p.name == "krr_path_kernel")
        .and_then(|p| p.ridge)
        .unwrap_or(f64::NAN);
    Evaluation {
        violation: errors.violation(),
        detail: format!(
            "{what}: network {:.3e}, KRR with K^p {:.3e} (ridge {ridge:.3e}), floor {:.3e}; {}",
            errors.network,
            errors.krr,
            errors.floor,
            others.join(", ")
        ),
    }
}
