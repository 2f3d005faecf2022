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

/// The report of one run. Field names and meanings are fixed by SPEC §5;
/// fields after `max_abs_residual` are additions.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub version: u32,
    pub spec: serde_json::Value,
    pub n_params: usize,
    pub w0: Vec<f64>,
    pub w_end: Vec<f64>,
    pub train_x: Vec<Vec<f64>>,
    pub train_y: Vec<f64>,
    pub test_x: Vec<Vec<f64>>,
    pub t_end: f64,
    pub steps: usize,
    pub rejected_steps: usize,
    pub rhs_evals: usize,
    pub loss0: f64,
    pub loss_end: f64,
    pub y0: Vec<f64>,
    pub y_end: Vec<f64>,
    pub path_kernel: Vec<Vec<f64>>,
    pub coef_integral: Vec<Vec<f64>>,
    pub a: Vec<Vec<Option<f64>>>,
    pub tangent_kernel0: Vec<Vec<f64>>,
    pub tangent_kernel_end: Vec<Vec<f64>>,
    pub kernel_machine: Vec<f64>,
    pub residual: Vec<f64>,
    pub max_abs_residual: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact_coef_integral: Option<Vec<Vec<f64>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact_kernel_machine: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact_max_abs_residual: Option<f64>,
    /// The tool that wrote the report, for regression tracking.
    pub generator: String,
    /// What held along the path (`crate::conditions`).
    pub conditions: Conditions,
}

/// The rows of a matrix, as the report lays out every matrix.
pub fn rows<T: Clone + nalgebra::Scalar>(m: &DMatrix<T>) -> Vec<Vec<T>> {
    m.row_iter().map(|r| r.iter().cloned().collect()).collect()
}

impl Report {
    pub fn new(exp: &Experiment, out: &Outcome) -> Report {
        Report {
            version: VERSION,
            spec: serde_json::to_value(exp.spec.clone().with_defaults())
                .expect("a spec always serialises"),
            n_params: exp.model.n_params(),
            w0: exp.w0.clone(),
            w_end: out.w_end.clone(),
            train_x: rows(&exp.data.train_x),
            train_y: exp.data.train_y.iter().copied().collect(),
            test_x: rows(&exp.data.test_x),
            t_end: exp.spec.flow.t_end,
            steps: out.stats.steps,
            rejected_steps: out.stats.rejected_steps,
            rhs_evals: out.stats.rhs_evals,
            loss0: out.loss0,
            loss_end: out.loss_end,
            y0: out.y0.clone(),
            y_end: out.y_end.clone(),
            path_kernel: rows(&out.path_kernel),
            coef_integral: rows(&out.coef_integral),
            a: rows(&out.coefficients()),
            tangent_kernel0: rows(&out.tangent_kernel0),
            tangent_kernel_end: rows(&out.tangent_kernel_end),
            kernel_machine: out.kernel_machine(),
            residual: out.residual(),
            max_abs_residual: out.max_abs_residual(),
            exact_coef_integral: out.exact_coef_integral.as_ref().map(rows),
            exact_kernel_machine: out.exact_kernel_machine(),
            exact_max_abs_residual: out.exact_max_abs_residual(),
            generator: format!("pathkernel {}", env!("CARGO_PKG_VERSION")),
            conditions: out.conditions.clone(),
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
