//! A run read back from its report (SPEC §5, §12, §13): the spec as run,
//! w0, the resolved data and the accepted steps, everything a replay needs.
//! Arrays written to the npz beside the report (`{"npz": NAME}`) are read
//! from there. Anything missing or malformed is one [`InputError`] naming
//! the report and the field.
use crate::error::InputError;
use crate::experiment::{Experiment, Outcome};
use crate::report::VERSION;
use crate::report::npz::npz_path;
use crate::spec::{Format, Spec};
use nalgebra::DMatrix;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// What a replay needs from a report.
#[derive(Clone, Debug)]
pub struct RunRecord {
    pub path: PathBuf,
    pub spec: Spec,
    pub w0: Vec<f64>,
    pub w_end: Vec<f64>,
    pub train_x: DMatrix<f64>,
    /// N x T: T = 1 (a target or class label per point) or C.
    pub train_y: DMatrix<f64>,
    pub test_x: DMatrix<f64>,
    /// M x T, where the report has the query points' targets.
    pub test_y: Option<DMatrix<f64>>,
    pub step_sizes: Vec<f64>,
}

impl RunRecord {
    /// The record of a run made in this process: what its report holds.
    pub fn of_run(exp: &Experiment, out: &Outcome) -> RunRecord {
        RunRecord {
            path: PathBuf::from("(in memory)"),
            spec: exp.spec.clone(),
            w0: exp.w0.clone(),
            w_end: out.w_end.clone(),
            train_x: exp.data.train_x.clone(),
            train_y: exp.data.train_y.clone(),
            test_x: exp.data.test_x.clone(),
            test_y: exp.data.test_y.clone(),
            step_sizes: out.step_sizes.clone(),
        }
    }

    /// The record in the report at `path` (and its npz, if it has one).
    pub fn read(path: &Path) -> Result<RunRecord, InputError> {
        let shown = path.display().to_string();
        let fields = read_object(path)?;
        let report = Fields {
            path,
            shown: &shown,
            fields: &fields,
        };
        match report.get("version")?.as_u64() {
            Some(v) if v == u64::from(VERSION) => {}
            _ => {
                return Err(report.error(
                    "version",
                    format!(
                        "found {}, expected {VERSION}: a report of another version of pathkernel",
                        report.get("version")?
                    ),
                ));
            }
        }
        let spec_text = report.get("spec")?.to_string();
        let spec = Spec::parse(&spec_text, Format::Json)
            .map_err(|e| InputError::new(format!("{shown}: spec.{}", e.location), e.problem))?;
        let train_x = report.matrix("train_x")?;
        let test_x = report.matrix("test_x")?;
        let train_y = report.targets("train_y")?;
        let test_y = match fields.get("test_y") {
            Some(_) => Some(report.targets("test_y")?),
            None => None,
        };
        let record = RunRecord {
            spec,
            w0: report.vector("w0")?,
            w_end: report.vector("w_end")?,
            step_sizes: report.vector("step_sizes")?,
            train_x,
            train_y,
            test_x,
            test_y,
            path: path.to_path_buf(),
        };
        record.check(&report)?;
        Ok(record)
    }

    /// The shapes agree with each other.
    fn check(&self, report: &Fields<'_>) -> Result<(), InputError> {
        let n = self.train_x.nrows();
        if self.train_y.nrows() != n {
            return Err(report.error(
                "train_y",
                format!(
                    "found {} rows, expected {n} (one per row of train_x)",
                    self.train_y.nrows()
                ),
            ));
        }
        if self.test_x.ncols() != self.train_x.ncols() && self.test_x.nrows() > 0 {
            return Err(report.error(
                "test_x",
                format!(
                    "found rows of {} numbers, expected {} as in train_x",
                    self.test_x.ncols(),
                    self.train_x.ncols()
                ),
            ));
        }
        if self.w_end.len() != self.w0.len() {
            return Err(report.error(
                "w_end",
                format!(
                    "found {} numbers, expected {} as in w0",
                    self.w_end.len(),
                    self.w0.len()
                ),
            ));
        }
        if let Some(bad) = self.step_sizes.iter().find(|&&h| h.is_nan() || h <= 0.0) {
            return Err(report.error(
                "step_sizes",
                format!("found {bad}, allowed: positive step sizes"),
            ));
        }
        Ok(())
    }
}

/// The top-level object of the JSON report at `path`.
pub(crate) fn read_object(path: &Path) -> Result<Map<String, Value>, InputError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::new(&shown, format!("cannot read the report: {e}")))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        InputError::new(
            format!("{shown}:{}:{}", e.line(), e.column()),
            format!("not a JSON report: {e}"),
        )
    })?;
    match value {
        Value::Object(fields) => Ok(fields),
        _ => Err(InputError::new(
            &shown,
            "found a JSON value that is not an object, expected a pathkernel report",
        )),
    }
}

/// The report's top-level fields, with the npz beside it for moved arrays
/// (also read by `crate::plot::view`).
pub(crate) struct Fields<'a> {
    pub(crate) path: &'a Path,
    pub(crate) shown: &'a str,
    pub(crate) fields: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    pub(crate) fn error(&self, field: &str, problem: impl Into<String>) -> InputError {
        InputError::new(format!("{}: {field}", self.shown), problem)
    }

    pub(crate) fn get(&self, field: &str) -> Result<&'a Value, InputError> {
        self.fields.get(field).ok_or_else(|| {
            self.error(
                field,
                "missing: not a complete report of this version of pathkernel (rerun the spec \
                 with `pathkernel run` to write one)",
            )
        })
    }

    /// A field's numbers: inline, or the npz member it names.
    pub(crate) fn array(&self, field: &str) -> Result<Value, InputError> {
        let value = self.get(field)?;
        match value.get("npz").and_then(Value::as_str) {
            Some(member) => read_member(&npz_path(self.path), member)
                .map_err(|problem| self.error(field, problem)),
            None => Ok(value.clone()),
        }
    }

    fn vector(&self, field: &str) -> Result<Vec<f64>, InputError> {
        let value = self.array(field)?;
        numbers(&value).ok_or_else(|| self.error(field, "expected an array of numbers"))
    }

    /// Rows of equal length.
    fn matrix(&self, field: &str) -> Result<DMatrix<f64>, InputError> {
        let value = self.array(field)?;
        rows(&value).ok_or_else(|| {
            self.error(
                field,
                "expected an array of rows of numbers, every row of one length",
            )
        })
    }

    /// A number per point (N x 1) or rows of numbers (N x T).
    fn targets(&self, field: &str) -> Result<DMatrix<f64>, InputError> {
        let value = self.array(field)?;
        if let Some(v) = numbers(&value) {
            return Ok(DMatrix::from_column_slice(v.len(), 1, &v));
        }
        rows(&value).ok_or_else(|| {
            self.error(
                field,
                "expected an array of numbers or of rows of numbers, every row of one length",
            )
        })
    }
}

fn numbers(value: &Value) -> Option<Vec<f64>> {
    value.as_array()?.iter().map(Value::as_f64).collect()
}

/// Rows of numbers, all of one length (an empty array: 0 x 0).
fn rows(value: &Value) -> Option<DMatrix<f64>> {
    let rows = value
        .as_array()?
        .iter()
        .map(numbers)
        .collect::<Option<Vec<_>>>()?;
    let width = rows.first().map_or(0, Vec::len);
    if rows.iter().any(|r| r.len() != width) {
        return None;
    }
    Some(DMatrix::from_row_iterator(
        rows.len(),
        width,
        rows.into_iter().flatten(),
    ))
}

/// One member of an npz written by `--arrays npz`, as nested JSON arrays
/// (NaN, which stands for null, back to null).
fn read_member(npz: &Path, member: &str) -> Result<Value, String> {
    let file = std::fs::File::open(npz)
        .map_err(|e| format!("stored in {}, which cannot be read: {e}", npz.display()))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| format!("stored in {}, which is not an npz file: {e}", npz.display()))?;
    let entry = archive
        .by_name(&format!("{member}.npy"))
        .map_err(|e| format!("member {member} of {}: {e}", npz.display()))?;
    let npy = npyz::NpyFile::new(entry)
        .map_err(|e| format!("member {member} of {}: {e}", npz.display()))?;
    let shape: Vec<usize> = npy.shape().iter().map(|&s| s as usize).collect();
    let data: Vec<f64> = npy
        .into_vec::<f64>()
        .map_err(|e| format!("member {member} of {}: {e}", npz.display()))?;
    Ok(nest(&data, &shape))
}

/// C-order numbers as nested arrays of the given shape.
fn nest(data: &[f64], shape: &[usize]) -> Value {
    match shape {
        [] => data.first().map_or(Value::Null, |&x| number(x)),
        [_] => Value::Array(data.iter().map(|&x| number(x)).collect()),
        [n, rest @ ..] => {
            let stride: usize = rest.iter().product();
            Value::Array(
                (0..*n)
                    .map(|i| nest(&data[i * stride..(i + 1) * stride], rest))
                    .collect(),
            )
        }
    }
}

fn number(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}
