//! A report read for its pictures: each field is read when a picture asks
//! for it (from the JSON, or the npz beside it), so a report without what a
//! picture needs is one [`InputError`] naming the report and the field.
use crate::error::InputError;
use crate::replay::record::{Fields, read_object};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// The report's fields and its shape: C outputs, M query points, N
/// training points.
pub struct View {
    pub path: PathBuf,
    shown: String,
    fields: Map<String, Value>,
    pub c: usize,
    pub m: usize,
    pub n: usize,
    /// flow.method of the spec as run.
    pub method: String,
    pub t_end: f64,
}

/// Every number of a nested array in order (null as None); None when it
/// holds anything else.
fn leaves(value: &Value, out: &mut Vec<Option<f64>>) -> bool {
    match value {
        Value::Array(items) => items.iter().all(|v| leaves(v, out)),
        Value::Number(x) => {
            out.push(x.as_f64());
            true
        }
        Value::Null => {
            out.push(None);
            true
        }
        _ => false,
    }
}

impl View {
    /// The report at `path` (one that `pathkernel run --out` wrote).
    pub fn read(path: &Path) -> Result<View, InputError> {
        View::of_fields(path, read_object(path)?)
    }

    /// The report whose fields are `fields`, named `path` in errors (its
    /// npz, if any, beside that path).
    pub fn of_fields(path: &Path, fields: Map<String, Value>) -> Result<View, InputError> {
        let mut view = View {
            path: path.to_path_buf(),
            shown: path.display().to_string(),
            fields,
            c: 1,
            m: 0,
            n: 0,
            method: String::new(),
            t_end: 0.0,
        };
        view.c = match view.fields.get("n_outputs") {
            None => 1,
            Some(v) => v
                .as_u64()
                .filter(|&c| c >= 1)
                .ok_or_else(|| view.error("n_outputs", "expected a whole number >= 1"))?
                as usize,
        };
        view.t_end = view
            .get("t_end")?
            .as_f64()
            .filter(|t| t.is_finite() && *t > 0.0)
            .ok_or_else(|| view.error("t_end", "expected a positive number"))?;
        view.method = view
            .get("spec")?
            .pointer("/flow/method")
            .and_then(Value::as_str)
            .ok_or_else(|| view.error("spec.flow.method", "missing: expected the method's name"))?
            .to_owned();
        let y = view.numbers("y_end")?;
        if y.len() % view.c != 0 {
            return Err(view.error(
                "y_end",
                format!(
                    "found {} numbers, expected M rows of C = {}",
                    y.len(),
                    view.c
                ),
            ));
        }
        view.m = y.len() / view.c;
        let k = view.numbers("path_kernel")?;
        let mc2 = view.m * view.c * view.c;
        if mc2 == 0 || k.len() % mc2 != 0 {
            return Err(view.error(
                "path_kernel",
                format!(
                    "found {} numbers, expected M = {} rows of N blocks of C x C = {} x {}",
                    k.len(),
                    view.m,
                    view.c,
                    view.c
                ),
            ));
        }
        view.n = k.len() / mc2;
        Ok(view)
    }

    fn fields(&self) -> Fields<'_> {
        Fields {
            path: &self.path,
            shown: &self.shown,
            fields: &self.fields,
        }
    }

    pub fn error(&self, field: &str, problem: impl Into<String>) -> InputError {
        self.fields().error(field, problem)
    }

    fn get(&self, field: &str) -> Result<&Value, InputError> {
        self.fields().get(field)
    }

    pub fn has(&self, field: &str) -> bool {
        self.fields.contains_key(field)
    }

    /// sgd, adam or gd: the methods whose residual has the Domingos,
    /// exact and second-order forms.
    pub fn is_discrete(&self) -> bool {
        matches!(self.method.as_str(), "gd" | "sgd" | "adam")
    }

    /// A field's entries (null as None), from the JSON or the npz.
    fn entries(&self, field: &str) -> Result<Vec<Option<f64>>, InputError> {
        let value = self.fields().array(field)?;
        let mut out = Vec::new();
        if leaves(&value, &mut out) {
            Ok(out)
        } else {
            Err(self.error(
                field,
                "expected an array of numbers (nested arrays of numbers)",
            ))
        }
    }

    /// A field's numbers, none null.
    fn numbers(&self, field: &str) -> Result<Vec<f64>, InputError> {
        self.entries(field)?
            .into_iter()
            .collect::<Option<Vec<f64>>>()
            .ok_or_else(|| self.error(field, "found null, expected numbers"))
    }

    /// A per-query field (y_end, residual, ...): M C numbers, example-major.
    pub fn per_query(&self, field: &str) -> Result<Vec<f64>, InputError> {
        let v = self.numbers(field)?;
        self.expect_len(field, v.len(), self.m * self.c, "M x C")?;
        Ok(v)
    }

    /// A per-query field the report may lack (None then).
    pub fn optional_per_query(&self, field: &str) -> Result<Option<Vec<f64>>, InputError> {
        if self.has(field) {
            self.per_query(field).map(Some)
        } else {
            Ok(None)
        }
    }

    fn expect_len(
        &self,
        field: &str,
        found: usize,
        expected: usize,
        shape: &str,
    ) -> Result<(), InputError> {
        if found == expected {
            return Ok(());
        }
        Err(self.error(
            field,
            format!("found {found} numbers, expected {shape} = {expected}"),
        ))
    }

    /// A kernel field as M C rows of N C (row m C + c, column i C + c').
    pub fn kernel(&self, field: &str) -> Result<Vec<Vec<f64>>, InputError> {
        let (m, n, c) = (self.m, self.n, self.c);
        let v = self.numbers(field)?;
        self.expect_len(field, v.len(), m * n * c * c, "M x N x C x C")?;
        // The report's order is [m][i][c][c'].
        let mut rows = vec![vec![0.0; n * c]; m * c];
        for (j, &x) in v.iter().enumerate() {
            let (q, i, a, b) = (j / (n * c * c), (j / (c * c)) % n, (j / c) % c, j % c);
            rows[q * c + a][i * c + b] = x;
        }
        Ok(rows)
    }

    /// a: M rows of N C entries (column i C + c), None where undefined.
    pub fn coefficients(&self) -> Result<Vec<Vec<Option<f64>>>, InputError> {
        let (m, n, c) = (self.m, self.n, self.c);
        let value = self.fields().array("a")?;
        let bad = || {
            self.error(
                "a",
                format!(
                    "expected M = {m} rows of N = {n} entries (C = {c}: a vector of C or null)"
                ),
            )
        };
        let rows = value.as_array().filter(|r| r.len() == m).ok_or_else(bad)?;
        let mut out = Vec::with_capacity(m);
        for row in rows {
            let row = row.as_array().filter(|r| r.len() == n).ok_or_else(bad)?;
            let mut entries = Vec::with_capacity(n * c);
            for entry in row {
                let mut e = Vec::new();
                if !leaves(entry, &mut e) {
                    return Err(bad());
                }
                match e.len() {
                    1 => entries.extend(std::iter::repeat_n(e[0], c)),
                    k if k == c => entries.extend(e),
                    _ => return Err(bad()),
                }
            }
            out.push(entries);
        }
        Ok(out)
    }

    /// The range of −l'_i (entry i C + c) over the path's samples.
    pub fn lprime_range(&self) -> Result<(Vec<f64>, Vec<f64>), InputError> {
        let conditions = self.get("conditions")?;
        let read = |name: &str| {
            let field = format!("conditions.{name}");
            conditions
                .get(name)
                .ok_or_else(|| self.error(&field, "missing: rerun the spec with `pathkernel run`"))
                .and_then(|v| {
                    let mut out = Vec::new();
                    leaves(v, &mut out);
                    out.into_iter()
                        .collect::<Option<Vec<f64>>>()
                        .filter(|v| v.len() == self.n * self.c)
                        .ok_or_else(|| {
                            self.error(
                                &field,
                                format!("expected N x C = {} numbers", self.n * self.c),
                            )
                        })
                })
        };
        Ok((read("neg_lprime_min")?, read("neg_lprime_max")?))
    }

    /// loss_trace: its times and losses.
    pub fn loss_trace(&self) -> Result<(Vec<f64>, Vec<f64>), InputError> {
        let trace = self.get("loss_trace")?;
        let read = |name: &str| {
            let mut out = Vec::new();
            let ok = trace.get(name).is_some_and(|v| leaves(v, &mut out));
            out.into_iter()
                .collect::<Option<Vec<f64>>>()
                .filter(|v| ok && !v.is_empty())
                .ok_or_else(|| {
                    self.error(
                        &format!("loss_trace.{name}"),
                        "expected a non-empty array of numbers",
                    )
                })
        };
        let (t, loss) = (read("t")?, read("loss")?);
        if t.len() != loss.len() {
            return Err(self.error(
                "loss_trace",
                format!(
                    "found {} times and {} losses, expected as many of each",
                    t.len(),
                    loss.len()
                ),
            ));
        }
        Ok((t, loss))
    }
}
