//! Kernel learners beside the trained network (SPEC §13, `pathkernel
//! learn`): does the extracted kernel generalise like the network?
//!
//! One replay of the run with the training points and the run's query
//! points as queries gives, for both, K^p, K^g(w0), K^g(w_end), A and f.
//! On the training set the learners are fitted: kernel ridge regression on
//! the training labels (one-hot rows for class labels with C > 1) with
//! each of the three kernels, its ridge chosen by exact leave-one-out error
//! ([`krr`]), and the path kernel with the best fixed coefficients a*
//! ([`fixed`]). At the query points each is compared with the targets
//! (where the report has them) and with the network f(w_end), beside the
//! Domingos kernel machine, whose coefficients depend on the query point.
use crate::error::{Error, RunError};
use crate::evaluation::Errors;
use crate::experiment::Outcome;
use crate::loss::Loss;
use crate::replay::{RunRecord, experiment, replay};
use crate::report::{Shaped, VERSION, per_output};
use nalgebra::DMatrix;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

pub mod fixed;
pub mod krr;

/// `learn`'s output.
#[derive(Clone, Debug, Serialize)]
pub struct LearnReport {
    pub version: u32,
    /// The report the learners were fitted from.
    pub source: String,
    pub n_train: usize,
    pub n_query: usize,
    pub n_outputs: usize,
    /// What kernel ridge regression fits: the training targets, or the
    /// one-hot rows of their class labels.
    pub krr_targets: &'static str,
    /// Whether the replay retraced the run's w_end bit for bit.
    pub w_end_identical: bool,
    /// The network, the kernel machine and each learner, in the table's order.
    pub predictors: Vec<Predictor>,
}

/// One predictor at the query points.
#[derive(Clone, Debug, Serialize)]
pub struct Predictor {
    pub name: &'static str,
    pub description: &'static str,
    /// The ridge leave-one-out chose (kernel ridge regression only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ridge: Option<f64>,
    /// Its mean squared leave-one-out residual on the training set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loo_mse: Option<f64>,
    /// The error against the query points' targets, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_error: Option<Errors>,
    /// Over the query points and outputs: the root-mean-square and the
    /// largest absolute difference from f(w_end).
    pub rms_distance_to_network: f64,
    pub max_distance_to_network: f64,
    /// The predictions, in y_end's layout.
    pub predictions: Shaped<f64>,
}

/// The pieces of one replay split into training rows and query rows.
struct Split {
    c: usize,
    /// Rows 0..N C of a kernel or coefficient matrix: the training points.
    train_rows: usize,
    out: Outcome,
}

impl Split {
    fn train(&self, m: &DMatrix<f64>) -> DMatrix<f64> {
        m.rows(0, self.train_rows).into_owned()
    }
    fn query(&self, m: &DMatrix<f64>) -> DMatrix<f64> {
        m.rows(self.train_rows, m.nrows() - self.train_rows)
            .into_owned()
    }
    fn query_values(&self, v: &[f64]) -> Vec<f64> {
        v[self.train_rows..].to_vec()
    }
}

/// The training targets as KRR fits them (example-major, N C) and the
/// query targets as its errors read them, with the loss that reads them.
struct Targets {
    train: Vec<f64>,
    query: Option<DMatrix<f64>>,
    loss: Loss,
    what: &'static str,
}

/// One-hot rows of C for class labels (a single column with C > 1).
fn one_hot(y: &DMatrix<f64>, c: usize) -> DMatrix<f64> {
    DMatrix::from_fn(y.nrows(), c, |i, k| {
        f64::from(u8::from(y[(i, 0)] as usize == k))
    })
}

fn targets(record: &RunRecord, c: usize) -> Targets {
    let loss = record.spec.loss;
    if c > 1 && record.train_y.ncols() == 1 {
        return Targets {
            train: one_hot(&record.train_y, c).transpose().as_slice().to_vec(),
            query: record.test_y.as_ref().map(|y| one_hot(y, c)),
            // A regression on one-hot rows: the squared error and the argmax.
            loss: Loss::Squared,
            what: "one-hot rows of the class labels",
        };
    }
    Targets {
        train: record.train_y.transpose().as_slice().to_vec(),
        query: record.test_y.clone(),
        loss,
        what: "the training targets",
    }
}

/// Fits the learners on `record`'s training set and compares them at its
/// query points.
pub fn learn(record: &RunRecord, interrupt: Option<Arc<AtomicBool>>) -> Result<LearnReport, Error> {
    let (n, m) = (record.train_x.nrows(), record.test_x.nrows());
    // sgd and adam rerun their own loop, which takes query points as given:
    // the training points are stacked into them.
    let mut exp = if record.spec.flow.method.is_optimizer() {
        let mut stacked = DMatrix::zeros(n + m, record.train_x.ncols());
        stacked.rows_mut(0, n).copy_from(&record.train_x);
        stacked.rows_mut(n, m).copy_from(&record.test_x);
        experiment(record, stacked, None)?
    } else {
        // The memory estimate counts the n + m query points.
        let d = record.train_x.ncols();
        record
            .spec
            .check_size(d, n, n + m, crate::spec::DEFAULT_MAX_MEMORY_GIB)?;
        let mut exp = experiment(record, record.test_x.clone(), None)?;
        exp.training_queries = true;
        exp
    };
    exp.interrupt = interrupt;
    let out = replay(&exp, &record.step_sizes)?;
    let c = out.n_outputs;
    let identical = out
        .w_end
        .iter()
        .zip(&record.w_end)
        .all(|(a, b)| a.to_bits() == b.to_bits());
    let split = Split {
        c,
        train_rows: n * c,
        out,
    };
    let t = targets(record, c);
    let network = split.query_values(&split.out.y_end);
    let mut predictors = Vec::new();
    let mut add = |name: &'static str,
                   description: &'static str,
                   pred: Vec<f64>,
                   loss: &Loss,
                   targets: Option<&DMatrix<f64>>,
                   choice: Option<krr::Choice>| {
        let d: Vec<f64> = pred.iter().zip(&network).map(|(p, y)| p - y).collect();
        let len = d.len().max(1) as f64;
        predictors.push(Predictor {
            name,
            description,
            ridge: choice.map(|c| c.ridge),
            loo_mse: choice.map(|c| c.loo_mse),
            test_error: targets.map(|y| Errors::of(loss, c, y, &pred)),
            rms_distance_to_network: (d.iter().map(|x| x * x).sum::<f64>() / len).sqrt(),
            max_distance_to_network: d.iter().fold(0.0_f64, |a, x| a.max(x.abs())),
            predictions: per_output(&pred, c),
        });
    };
    let spec_loss = record.spec.loss;
    let test_y = record.test_y.as_ref();
    add(
        "network",
        "the trained model f(w_end)",
        network.clone(),
        &spec_loss,
        test_y,
        None,
    );
    let machine = split.query_values(&split.out.kernel_machine());
    add(
        "kernel_machine",
        "Domingos' kernel machine f(w0; x) + sum_i a_i(x) K^p(x, x_i), coefficients depending on x",
        machine,
        &spec_loss,
        test_y,
        None,
    );
    let kernels = [
        (
            "krr_path_kernel",
            "kernel ridge regression with the path kernel K^p",
            &split.out.path_kernel,
        ),
        (
            "krr_tangent_kernel0",
            "kernel ridge regression with the tangent kernel at init K^g(w0)",
            &split.out.tangent_kernel0,
        ),
        (
            "krr_tangent_kernel_end",
            "kernel ridge regression with the tangent kernel at the end K^g(w_end)",
            &split.out.tangent_kernel_end,
        ),
    ];
    for (name, description, kernel) in kernels {
        if exp_interrupted(&exp) {
            return Err(RunError::Interrupted {
                t: exp.spec.flow.t_end,
            }
            .into());
        }
        let fit = krr::Krr::new(&split.train(kernel), &t.train, c);
        let choice = fit.select();
        let pred = (split.query(kernel) * fit.alpha(choice.ridge))
            .as_slice()
            .to_vec();
        add(
            name,
            description,
            pred,
            &t.loss,
            t.query.as_ref(),
            Some(choice),
        );
    }
    let a = fixed::best_coefficients(
        &split.train(&split.out.path_kernel),
        &split.train(&split.out.coef_integral),
        c,
    );
    let pred = fixed::predict(
        &split.query(&split.out.path_kernel),
        &split.query_values(&split.out.y0),
        &a,
    );
    add(
        "fixed_coefficients",
        "f(w0; x) + sum_i K^p(x, x_i) a*_i, a* the least-squares fit of the training rows' A",
        pred,
        &spec_loss,
        test_y,
        None,
    );
    Ok(LearnReport {
        version: VERSION,
        source: record.path.display().to_string(),
        n_train: n,
        n_query: m,
        n_outputs: split.c,
        krr_targets: t.what,
        w_end_identical: identical,
        predictors,
    })
}

fn exp_interrupted(exp: &crate::experiment::Experiment) -> bool {
    exp.interrupt
        .as_ref()
        .is_some_and(|f| f.load(std::sync::atomic::Ordering::SeqCst))
}

/// `pathkernel learn REPORT [--out OUT]`; returns the table to print.
pub fn command(
    report: &Path,
    out: Option<&Path>,
    interrupt: Option<Arc<AtomicBool>>,
) -> Result<String, Error> {
    let record = RunRecord::read(report)?;
    let learned = learn(&record, interrupt)?;
    if let Some(path) = out {
        let text = serde_json::to_string_pretty(&learned).expect("finite numbers serialise");
        crate::report::write_atomic(path, &format!("{text}\n"), "the learners' report")?;
    }
    Ok(table(&learned))
}

/// The terminal table: one row per predictor.
pub fn table(r: &LearnReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "pathkernel learn: N = {} training points, M = {} query points, C = {}; kernel ridge \
         regression on {}, ridge by leave-one-out",
        r.n_train, r.n_query, r.n_outputs, r.krr_targets
    );
    let _ = writeln!(
        s,
        "  {:<24} {:>10} {:>10} {:>11} {:>9} {:>13} {:>13}",
        "predictor", "ridge", "LOO mse", "test mse", "accuracy", "rms |f - net|", "max |f - net|"
    );
    let num = |v: Option<f64>| v.map_or("-".to_owned(), |x| format!("{x:.3e}"));
    for p in &r.predictors {
        let _ = writeln!(
            s,
            "  {:<24} {:>10} {:>10} {:>11} {:>9} {:>13.3e} {:>13.3e}",
            p.name,
            num(p.ridge),
            num(p.loo_mse),
            num(p.test_error.as_ref().map(|e| e.mse)),
            p.test_error
                .as_ref()
                .and_then(|e| e.accuracy)
                .map_or("-".to_owned(), |a| format!("{a:.4}")),
            p.rms_distance_to_network,
            p.max_distance_to_network
        );
    }
    if !r.w_end_identical {
        let _ = writeln!(s, "  note: the replay did not retrace w_end bit for bit");
    }
    s
}
