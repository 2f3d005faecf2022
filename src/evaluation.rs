//! The test error of predictions at the query points against their targets
//! (SPEC §11): the mean squared error and, for class labels, the accuracy.
//!
//! Targets are read as the loss reads them: class indices for
//! cross_entropy (the squared error of softmax(f) against the one-hot
//! vector, the Brier score, since the outputs are logits; the argmax for
//! accuracy), -1/+1 labels (the sign), 0/1 labels (the
//! 0.5 threshold); with C > 1 outputs and one-hot rows of targets, the
//! argmax again. Anything else is regression: the squared error alone.
use crate::loss::{Loss, TargetKind};
use nalgebra::DMatrix;
use serde::Serialize;

/// The errors of one predictor.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Errors {
    /// Mean over query points and outputs of (prediction − target)²; for
    /// cross_entropy the prediction is softmax(f) (the Brier score / C).
    pub mse: f64,
    /// The fraction of query points whose predicted class is the target's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
}

/// `test_error` of a report: the trained model f(w_end) and the kernel machine.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TestError {
    pub model: Errors,
    pub kernel_machine: Errors,
}

/// How class labels are read off a row of targets.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Classes {
    /// A class index per point (cross_entropy).
    Index,
    /// One-hot rows of C (C > 1).
    OneHot,
    /// -1/+1: the sign of the output.
    Signed,
    /// 0/1: the output against 0.5.
    Binary,
}

impl Errors {
    /// The errors of one predictor: `targets` M x T (T = 1 or C), `pred`
    /// example-major (M C), read as `loss` reads targets (module doc).
    pub fn of(loss: &Loss, c: usize, targets: &DMatrix<f64>, pred: &[f64]) -> Errors {
        errors(classes(loss, c, targets), c, targets, pred)
    }
}

impl TestError {
    /// `targets` is M x T (T = 1 or C); `model` and `machine` hold the
    /// predictions example-major (M C).
    pub fn new(
        loss: &Loss,
        c: usize,
        targets: &DMatrix<f64>,
        model: &[f64],
        machine: &[f64],
    ) -> TestError {
        let classes = classes(loss, c, targets);
        TestError {
            model: errors(classes, c, targets, model),
            kernel_machine: errors(classes, c, targets, machine),
        }
    }
}

fn classes(loss: &Loss, c: usize, targets: &DMatrix<f64>) -> Option<Classes> {
    let all = |f: &dyn Fn(f64) -> bool| targets.iter().all(|&y| f(y));
    match loss.target_kind() {
        TargetKind::ClassIndex => return Some(Classes::Index),
        TargetKind::PlusMinusOne if c == 1 => return Some(Classes::Signed),
        TargetKind::ZeroOne if c == 1 => return Some(Classes::Binary),
        _ => {}
    }
    if c > 1 {
        let one_hot = all(&|y| y == 0.0 || y == 1.0)
            && targets
                .row_iter()
                .all(|r| r.iter().filter(|&&y| y == 1.0).count() == 1);
        return one_hot.then_some(Classes::OneHot);
    }
    if all(&|y| y == -1.0 || y == 1.0) {
        Some(Classes::Signed)
    } else if all(&|y| y == 0.0 || y == 1.0) {
        Some(Classes::Binary)
    } else {
        None
    }
}

/// The target of output k of point m, as the squared error compares it.
fn target(classes: Option<Classes>, targets: &DMatrix<f64>, m: usize, k: usize) -> f64 {
    match classes {
        Some(Classes::Index) => f64::from(u8::from(targets[(m, 0)] as usize == k)),
        _ => targets[(m, k)],
    }
}

/// The first index of the largest entry.
fn argmax(row: &[f64]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |(k, best), (j, &v)| {
            if v > best { (j, v) } else { (k, best) }
        })
        .0
}

/// softmax(f) into `out`, shifted by the largest logit.
fn softmax(f: &[f64], out: &mut [f64]) {
    let max = f.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    for (o, &v) in out.iter_mut().zip(f) {
        *o = (v - max).exp();
    }
    let sum: f64 = out.iter().sum();
    out.iter_mut().for_each(|o| *o /= sum);
}

fn errors(classes: Option<Classes>, c: usize, targets: &DMatrix<f64>, pred: &[f64]) -> Errors {
    let m = targets.nrows();
    let mut squared = 0.0;
    let mut probabilities = vec![0.0; c];
    for (q, row) in pred.chunks_exact(c).enumerate() {
        let row = if classes == Some(Classes::Index) {
            softmax(row, &mut probabilities);
            &probabilities[..]
        } else {
            row
        };
        for (k, &p) in row.iter().enumerate() {
            squared += (p - target(classes, targets, q, k)).powi(2);
        }
    }
    let correct = |q: usize, row: &[f64]| -> bool {
        match classes {
            Some(Classes::Index) => argmax(row) == targets[(q, 0)] as usize,
            Some(Classes::OneHot) => targets[(q, argmax(row))] == 1.0,
            Some(Classes::Signed) => (row[0] > 0.0) == (targets[(q, 0)] > 0.0),
            Some(Classes::Binary) => (row[0] > 0.5) == (targets[(q, 0)] > 0.5),
            None => false,
        }
    };
    let accuracy = classes.map(|_| {
        let hits = pred
            .chunks_exact(c)
            .enumerate()
            .filter(|(q, row)| correct(*q, row))
            .count();
        hits as f64 / m as f64
    });
    Errors {
        mse: squared / (m * c) as f64,
        accuracy,
    }
}
