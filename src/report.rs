//! The report (SPEC §5): every field of the contract, numbers in shortest
//! round-trip form, written atomically so a failed run leaves no file.
use crate::conditions::Conditions;
use crate::error::InputError;
use crate::experiment::{Experiment, Outcome};
use nalgebra::DMatrix;
use serde::Serialize;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

pub mod npz;

/// The report's format version.
pub const VERSION: u32 = 1;

/// An array field in the shape SPEC §5 (C = 1) or §8 (C > 1) gives it;
/// serialised as the bare nested array.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Shaped<T> {
    /// Length M (C = 1).
    Vector(Vec<T>),
    /// M rows of N (C = 1), or M rows of C.
    Matrix(Vec<Vec<T>>),
    /// [m][i][c].
    Blocks(Vec<Vec<Vec<T>>>),
    /// [m][i][c][c'].
    Kernel(Vec<Vec<Vec<Vec<T>>>>),
}

impl<T: Clone> Shaped<T> {
    /// Every entry, in the order the nested arrays list them.
    pub fn flatten(&self) -> Vec<T> {
        match self {
            Shaped::Vector(v) => v.clone(),
            Shaped::Matrix(m) => m.iter().flatten().cloned().collect(),
            Shaped::Blocks(b) => b.iter().flatten().flatten().cloned().collect(),
            Shaped::Kernel(k) => k.iter().flatten().flatten().flatten().cloned().collect(),
        }
    }
}

/// `a`: M rows of N (null where K^p = 0) for C = 1; with C > 1, [m][i] is
/// the C-vector a_i(q_m), or null (the whole vector) where its block is
/// too ill-conditioned to solve (SPEC §8).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Coefficients {
    Scalar(Vec<Vec<Option<f64>>>),
    Vectors(Vec<Vec<Option<Vec<f64>>>>),
}

impl Coefficients {
    /// a of an outcome ((M C) x N, whole vectors None together).
    fn new(a: &DMatrix<Option<f64>>, c: usize) -> Coefficients {
        if c == 1 {
            return Coefficients::Scalar(rows(a));
        }
        let blocks = crate::blocks::coef_blocks(a, c);
        Coefficients::Vectors(
            blocks
                .into_iter()
                .map(|row| {
                    row.into_iter()
                        .map(|v| v.into_iter().collect::<Option<Vec<f64>>>())
                        .collect()
                })
                .collect(),
        )
    }
}

/// The report of one run. Field names and meanings are fixed by SPEC §5
/// and §8; fields after `max_abs_residual` are additions.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub version: u32,
    pub spec: serde_json::Value,
    pub n_params: usize,
    /// C; omitted for C = 1, so that scalar reports keep SPEC §5's form.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_outputs: Option<usize>,
    pub w0: Vec<f64>,
    pub w_end: Vec<f64>,
    pub train_x: Vec<Vec<f64>>,
    /// N targets, or N rows of C.
    pub train_y: Shaped<f64>,
    pub test_x: Vec<Vec<f64>>,
    /// The query points' targets, where known (SPEC §11).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_y: Option<Shaped<f64>>,
    pub t_end: f64,
    pub steps: usize,
    pub rejected_steps: usize,
    pub rhs_evals: usize,
    /// The accepted steps' sizes (SPEC §13), for a replay.
    pub step_sizes: Vec<f64>,
    pub loss0: f64,
    pub loss_end: f64,
    pub y0: Shaped<f64>,
    pub y_end: Shaped<f64>,
    pub path_kernel: Shaped<f64>,
    pub coef_integral: Shaped<f64>,
    pub a: Coefficients,
    pub tangent_kernel0: Shaped<f64>,
    pub tangent_kernel_end: Shaped<f64>,
    pub kernel_machine: Shaped<f64>,
    pub residual: Shaped<f64>,
    pub max_abs_residual: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact_coef_integral: Option<Shaped<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact_kernel_machine: Option<Shaped<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact_max_abs_residual: Option<f64>,
    /// f(w_end) − exact_kernel_machine per query point (SPEC §9).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact_residual: Option<Shaped<f64>>,
    /// Discrete methods: Σ_k ½ Δ_kᵀ ∇²f(w_k; q) Δ_k per query point (SPEC §9).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub second_order_term: Option<Shaped<f64>>,
    /// residual − second_order_term.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub second_order_residual: Option<Shaped<f64>>,
    /// sgd/adam: the K batches, each a list of training indices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batches: Option<Vec<Vec<usize>>>,
    /// sgd/adam: D(q), the decay term of the Domingos form.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decay_term: Option<Shaped<f64>>,
    /// sgd/adam: D^e(q), the decay term of the exact decomposition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact_decay_term: Option<Shaped<f64>>,
    /// The test error of f(w_end) and of the kernel machine, where the
    /// query points' targets are known (SPEC §11).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_error: Option<crate::evaluation::TestError>,
    /// The tool that wrote the report, for regression tracking.
    pub generator: String,
    /// What held along the path (`crate::conditions`).
    pub conditions: Conditions,
    /// {"t": [...], "loss": [...]}: L along the run, thinned to at most
    /// 2048 points (`crate::trace`).
    pub loss_trace: crate::trace::LossTrace,
}

/// The rows of a matrix, as the report lays out every matrix.
pub fn rows<T: Clone + nalgebra::Scalar>(m: &DMatrix<T>) -> Vec<Vec<T>> {
    m.row_iter().map(|r| r.iter().cloned().collect()).collect()
}

/// A per-output vector (example-major): length M for C = 1, else M rows of C.
pub fn per_output<T: Clone>(v: &[T], c: usize) -> Shaped<T> {
    if c == 1 {
        Shaped::Vector(v.to_vec())
    } else {
        Shaped::Matrix(crate::blocks::vector_rows(v, c))
    }
}

/// A coefficient matrix ((M C) x N): M rows of N, or [m][i][c].
pub fn per_pair<T: Clone + nalgebra::Scalar>(a: &DMatrix<T>, c: usize) -> Shaped<T> {
    if c == 1 {
        Shaped::Matrix(rows(a))
    } else {
        Shaped::Blocks(crate::blocks::coef_blocks(a, c))
    }
}

/// A kernel ((M C) x (N C)): M rows of N, or [m][i][c][c'].
pub fn per_block(k: &DMatrix<f64>, c: usize) -> Shaped<f64> {
    if c == 1 {
        Shaped::Matrix(rows(k))
    } else {
        Shaped::Kernel(crate::blocks::kernel_blocks(k, c))
    }
}

/// Targets (rows x T): a number per row for T = 1, else rows of T.
pub fn targets(y: &DMatrix<f64>) -> Shaped<f64> {
    if y.ncols() == 1 {
        Shaped::Vector(y.iter().copied().collect())
    } else {
        Shaped::Matrix(rows(y))
    }
}

impl Report {
    pub fn new(exp: &Experiment, out: &Outcome) -> Report {
        let c = out.n_outputs;
        let kernel_machine = out.kernel_machine();
        Report {
            version: VERSION,
            spec: serde_json::to_value(exp.spec.clone().with_defaults())
                .expect("a spec always serialises"),
            n_params: exp.model.n_params(),
            n_outputs: (c > 1).then_some(c),
            w0: exp.w0.clone(),
            w_end: out.w_end.clone(),
            train_x: rows(&exp.data.train_x),
            train_y: targets(&exp.data.train_y),
            test_x: rows(&exp.data.test_x),
            test_y: exp.data.test_y.as_ref().map(targets),
            t_end: exp.spec.flow.t_end,
            steps: out.stats.steps,
            rejected_steps: out.stats.rejected_steps,
            rhs_evals: out.stats.rhs_evals,
            step_sizes: out.step_sizes.clone(),
            loss0: out.loss0,
            loss_end: out.loss_end,
            y0: per_output(&out.y0, c),
            y_end: per_output(&out.y_end, c),
            path_kernel: per_block(&out.path_kernel, c),
            coef_integral: per_pair(&out.coef_integral, c),
            a: Coefficients::new(&out.coefficients(), c),
            tangent_kernel0: per_block(&out.tangent_kernel0, c),
            tangent_kernel_end: per_block(&out.tangent_kernel_end, c),
            kernel_machine: per_output(&kernel_machine, c),
            residual: per_output(&out.residual(), c),
            max_abs_residual: out.max_abs_residual(),
            exact_coef_integral: out.exact_coef_integral.as_ref().map(|a| per_pair(a, c)),
            exact_kernel_machine: out.exact_kernel_machine().map(|v| per_output(&v, c)),
            exact_max_abs_residual: out.exact_max_abs_residual(),
            exact_residual: out.exact_residual().map(|v| per_output(&v, c)),
            second_order_term: out.second_order_term.as_ref().map(|v| per_output(v, c)),
            second_order_residual: out.second_order_residual().map(|v| per_output(&v, c)),
            batches: out.optimizer.as_ref().map(|o| o.batches.clone()),
            decay_term: out.optimizer.as_ref().map(|o| per_output(&o.decay_term, c)),
            exact_decay_term: out
                .optimizer
                .as_ref()
                .map(|o| per_output(&o.exact_decay_term, c)),
            test_error: exp.data.test_y.as_ref().map(|y| {
                crate::evaluation::TestError::new(&exp.spec.loss, c, y, &out.y_end, &kernel_machine)
            }),
            generator: format!("pathkernel {}", env!("CARGO_PKG_VERSION")),
            conditions: out.conditions.clone(),
            loss_trace: out.loss_trace.clone(),
        }
    }

    /// The report as JSON text. serde_json writes f64 in shortest
    /// round-trip form (ryu), so every number reads back to the same f64.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report of finite numbers always serialises")
    }

    /// Writes the report to `path` atomically (see [`write_atomic`]).
    pub fn write_atomic(&self, path: &Path) -> Result<(), InputError> {
        write_atomic(path, &format!("{}\n", self.to_json()), "the report")
    }
}

/// Held while an atomic write's temporary file exists, so that
/// [`between_writes`] (a second Ctrl-C's exit, on another thread) never
/// finds one half-written.
static WRITING: Mutex<()> = Mutex::new(());

/// Writes `text` to `path` through a temporary file in the same directory,
/// renamed into place: the file is whole or absent. `what` names the file
/// in an error.
pub fn write_atomic(path: &Path, text: &str, what: &str) -> Result<(), InputError> {
    write_atomic_with(path, what, |file| file.write_all(text.as_bytes()))
}

/// [`write_atomic`] with the contents written by `body` into the temporary
/// file. No [`between_writes`] runs from the temporary file's creation to
/// its rename (or removal, on an error).
pub fn write_atomic_with(
    path: &Path,
    what: &str,
    body: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<(), InputError> {
    let fail = |e: std::io::Error| {
        InputError::new(
            path.display().to_string(),
            format!("cannot write {what}: {e}"),
        )
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Declared before the file, so released after it is dropped (removed).
    let _writing = WRITING.lock().unwrap_or_else(PoisonError::into_inner);
    let mut tmp = tempfile::Builder::new()
        .prefix(".pathkernel")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(fail)?;
    body(tmp.as_file_mut()).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

/// Runs `f` once no atomic write is under way, and keeps any from starting
/// while it runs: how the process exits on a second Ctrl-C without leaving
/// a temporary file behind.
pub fn between_writes<R>(f: impl FnOnce() -> R) -> R {
    let _writing = WRITING.lock().unwrap_or_else(PoisonError::into_inner);
    f()
}
