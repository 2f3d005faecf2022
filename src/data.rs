//! The data of an experiment, resolved from its spec: synthetic generators,
//! inline arrays, CSV files or a built-in data set; then the checks that need both the data and
//! the rest of the spec (the length of init.w0, labels against the loss).
use crate::error::InputError;
use crate::loss::Loss;
use crate::spec::{DataSpec, ModelSpec, Spec, Targets};
use nalgebra::DMatrix;
use std::path::Path;

pub mod builtin;
pub(crate) mod csv_files;
mod synthetic;

/// Training inputs (N x D), targets (N x T: T = C, or 1 for one target or
/// a class label per point, SPEC §8) and query inputs (M x D), with the
/// query points' targets where they are known.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub train_x: DMatrix<f64>,
    pub train_y: DMatrix<f64>,
    pub test_x: DMatrix<f64>,
    pub test_y: Option<DMatrix<f64>>,
}

/// Where each training row came from, to name it in a message.
enum Rows {
    Synthetic(&'static str),
    /// True when the targets are rows of numbers (`train_y[i][j]`).
    Inline(bool),
    /// The train file and the line of each row.
    Csv(String, Vec<u64>),
    /// A built-in data set's name, and true for a classification set
    /// (whose targets `data.labels` sets).
    Builtin(&'static str, bool),
}

impl Dataset {
    /// The data of `spec` (CSV paths relative to `base_dir`, the spec file's
    /// directory), checked against the rest of the spec: init.w0 has
    /// n_params(D) entries and the targets are labels the loss accepts.
    /// Validates the spec first, so any `Spec` may be passed.
    pub fn resolve(spec: &Spec, base_dir: &Path) -> Result<Dataset, InputError> {
        spec.validate()?;
        let (dataset, rows) = match &spec.data {
            DataSpec::Synthetic {
                function,
                n_train,
                n_test,
                dim,
                noise,
            } => {
                let data =
                    synthetic::generate(*function, *n_train, *n_test, *dim, *noise, spec.seed);
                // noise z with z ~ Normal(0, 1) passes f64's range for a
                // finite noise near f64::MAX.
                if let Some((i, y)) = data
                    .train_y
                    .iter()
                    .enumerate()
                    .find(|(_, y)| !y.is_finite())
                {
                    return Err(InputError::new(
                        "data.noise",
                        format!(
                            "found {noise:?}, which makes the target of row {i} {y}; allowed: \
                             a noise small enough that every target is finite"
                        ),
                    ));
                }
                (data, Rows::Synthetic(synthetic::name(*function)))
            }
            DataSpec::Inline {
                train_x,
                train_y,
                test_x,
                test_y,
            } => (
                inline(train_x, train_y, test_x, test_y.as_ref())?,
                Rows::Inline(matches!(train_y, Targets::Rows(_))),
            ),
            DataSpec::Csv { train, test } => {
                let columns = spec.loss.target_columns(spec.model.outputs());
                let (data, file, lines) =
                    csv_files::read(&base_dir.join(train), &base_dir.join(test), columns)?;
                (data, Rows::Csv(file, lines))
            }
            DataSpec::Dataset(data) => {
                let loaded = builtin::load(data, spec.seed)?;
                let dataset = Dataset {
                    train_x: loaded.train_x,
                    train_y: loaded.train_y,
                    test_x: loaded.test_x,
                    test_y: Some(loaded.test_y),
                };
                let classes = data.name.n_classes().is_some();
                (dataset, Rows::Builtin(data.name.name(), classes))
            }
        };
        dataset.check_init(spec)?;
        dataset.check_batches(spec)?;
        dataset.check_target_columns(spec, &rows)?;
        dataset.check_labels(spec, &rows)?;
        Ok(dataset)
    }

    /// D, the input dimension.
    pub fn dim(&self) -> usize {
        self.train_x.ncols()
    }

    /// init.w0, when given, has exactly P = n_params(D) entries.
    fn check_init(&self, spec: &Spec) -> Result<(), InputError> {
        if let ModelSpec::Layers { .. } = spec.model {
            crate::model::Layered::from_spec(&spec.model, self.dim())?;
        }
        let Some(init) = &spec.init else {
            return Ok(());
        };
        let p = spec.model.n_params(self.dim());
        if init.w0.len() == p {
            return Ok(());
        }
        Err(InputError::new(
            "init.w0",
            format!(
                "found {} entries, expected P = {p}, the number of parameters of arch `{}` \
                 with D = {} inputs",
                init.w0.len(),
                spec.model.arch(),
                self.dim()
            ),
        ))
    }

    /// An sgd/adam run's batch_size is at most N and its explicit batches'
    /// indices are below N (SPEC §9).
    fn check_batches(&self, spec: &Spec) -> Result<(), InputError> {
        let n = self.train_x.nrows();
        if let Some(b) = spec.flow.batch_size
            && b > n
        {
            return Err(InputError::new(
                "flow.batch_size",
                format!("found {b}, but there are N = {n} training points; allowed: 1 to {n}"),
            ));
        }
        for (k, batch) in spec.flow.batches.iter().flatten().enumerate() {
            if let Some((j, &i)) = batch.iter().enumerate().find(|(_, i)| **i >= n) {
                return Err(InputError::new(
                    format!("flow.batches[{k}][{j}]"),
                    format!(
                        "found index {i}, but there are N = {n} training points; allowed: 0 to {}",
                        n - 1
                    ),
                ));
            }
        }
        Ok(())
    }

    /// One target per output, or one class label for cross_entropy (SPEC §8).
    fn check_target_columns(&self, spec: &Spec, rows: &Rows) -> Result<(), InputError> {
        let c = spec.model.outputs();
        let expected = spec.loss.target_columns(c);
        let found = self.train_y.ncols();
        if found == expected {
            return Ok(());
        }
        let needs = if spec.loss.is_vector() {
            "one class label per row".to_owned()
        } else if expected == 1 {
            "one target per row".to_owned()
        } else {
            format!("rows of C = {expected} targets, one per output")
        };
        let what = if found == 1 {
            "one target per row".to_owned()
        } else {
            format!("rows of {found} targets")
        };
        let location = match rows {
            Rows::Inline(_) => "data.train_y".to_owned(),
            Rows::Builtin(_, true) => "data.labels".to_owned(),
            _ => "model.outputs".to_owned(),
        };
        Err(InputError::new(
            location,
            format!(
                "found {what}, but model.outputs = {c} with loss `{}` needs {needs}",
                spec.loss.name()
            ),
        ))
    }

    /// Targets are -1/+1 for the margin losses, 0/1 for bce (SPEC §2) and
    /// class indices 0..C-1 for cross_entropy (SPEC §8).
    fn check_labels(&self, spec: &Spec, rows: &Rows) -> Result<(), InputError> {
        let loss = &spec.loss;
        let c = spec.model.outputs();
        let (allowed, valid): (String, Box<dyn Fn(f64) -> bool>) = match loss {
            Loss::Logistic | Loss::Exponential | Loss::Hinge | Loss::SquaredHinge => (
                "labels -1 or +1".into(),
                Box::new(|y| y == -1.0 || y == 1.0),
            ),
            Loss::Bce => ("labels 0 or 1".into(), Box::new(|y| y == 0.0 || y == 1.0)),
            Loss::CrossEntropy => (
                format!("class labels 0..{} (model.outputs = {c})", c - 1),
                Box::new(move |y: f64| y >= 0.0 && y.fract() == 0.0 && y < c as f64),
            ),
            _ => return Ok(()),
        };
        let width = self.train_y.ncols();
        let first_invalid = |y: &DMatrix<f64>| {
            (0..y.nrows())
                .flat_map(|i| (0..width).map(move |j| (i, j)))
                .map(|(i, j)| (i, j, y[(i, j)]))
                .find(|&(_, _, v)| !valid(v))
        };
        let kind = loss_kind(loss);
        // Inline query targets (the only ones a spec writes) obey the same rule.
        if let (Rows::Inline(rows), Some(test_y)) = (rows, &self.test_y)
            && let Some((i, j, y)) = first_invalid(test_y)
        {
            let location = if *rows {
                format!("data.test_y[{i}][{j}]")
            } else {
                format!("data.test_y[{i}]")
            };
            return Err(InputError::new(
                location,
                format!("the target is {y:?}, but loss `{kind}` needs {allowed}"),
            ));
        }
        let Some((i, j, y)) = first_invalid(&self.train_y) else {
            return Ok(());
        };
        let (location, row) = match rows {
            Rows::Synthetic(name) => (
                "loss.kind".to_owned(),
                format!("the {name} generator's row {i}"),
            ),
            Rows::Inline(true) => (format!("data.train_y[{i}][{j}]"), "the target".to_owned()),
            Rows::Inline(false) => (format!("data.train_y[{i}]"), "the target".to_owned()),
            Rows::Builtin(name, classes) => (
                if *classes { "data.labels" } else { "loss.kind" }.to_owned(),
                format!("the target of the {name} data set's training point {i}"),
            ),
            Rows::Csv(file, lines) => {
                let column = self.dim() + 1 + j;
                (
                    format!("{file}:{}:{column}", lines[i]),
                    "the target".to_owned(),
                )
            }
        };
        Err(InputError::new(
            location,
            format!("{row} is {y:?}, but loss `{kind}` needs {allowed}"),
        ))
    }
}

/// The loss's name as written in a spec (its serde tag).
fn loss_kind(loss: &Loss) -> String {
    serde_json::to_value(loss)
        .ok()
        .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_owned))
        .unwrap_or_else(|| format!("{loss:?}"))
}

/// Inline arrays: at least one train and one test row, all rows of one
/// length D >= 1, one target per train row, every number finite.
fn inline(
    train_x: &[Vec<f64>],
    train_y: &Targets,
    test_x: &[Vec<f64>],
    test_y: Option<&Targets>,
) -> Result<Dataset, InputError> {
    let dim = match train_x.first() {
        None => {
            return Err(InputError::new(
                "data.train_x",
                "found no rows, allowed: at least one",
            ));
        }
        Some(row) if row.is_empty() => {
            return Err(InputError::new(
                "data.train_x[0]",
                "found an empty row, allowed: rows of D >= 1 numbers",
            ));
        }
        Some(row) => row.len(),
    };
    let train = matrix("data.train_x", train_x, dim)?;
    if train_y.len() != train_x.len() {
        return Err(InputError::new(
            "data.train_y",
            format!(
                "found {} targets, expected {}, one per row of train_x",
                train_y.len(),
                train_x.len()
            ),
        ));
    }
    let targets = target_matrix("data.train_y", train_y, None)?;
    if test_x.is_empty() {
        return Err(InputError::new(
            "data.test_x",
            "found no rows, allowed: at least one",
        ));
    }
    let test = matrix("data.test_x", test_x, dim)?;
    let test_y = match test_y {
        None => None,
        Some(y) if y.len() != test_x.len() => {
            return Err(InputError::new(
                "data.test_y",
                format!(
                    "found {} targets, expected {}, one per row of test_x",
                    y.len(),
                    test_x.len()
                ),
            ));
        }
        Some(y) => Some(target_matrix("data.test_y", y, Some(targets.ncols()))?),
    };
    Ok(Dataset {
        train_x: train,
        train_y: targets,
        test_x: test,
        test_y,
    })
}

/// Inline targets as a matrix, every number finite; `width`: the columns
/// of train_y, which test_y must have.
fn target_matrix(
    field: &str,
    y: &Targets,
    width: Option<usize>,
) -> Result<DMatrix<f64>, InputError> {
    match y {
        Targets::Numbers(y) => {
            if let Some(w) = width.filter(|&w| w != 1) {
                return Err(InputError::new(
                    field,
                    format!("found one target per row, expected rows of C = {w} like data.train_y"),
                ));
            }
            for (i, y) in y.iter().enumerate() {
                finite(&format!("{field}[{i}]"), *y)?;
            }
            Ok(DMatrix::from_column_slice(y.len(), 1, y))
        }
        Targets::Rows(rows) => {
            let first = rows.first().map_or(0, Vec::len);
            if first == 0 {
                return Err(InputError::new(
                    format!("{field}[0]"),
                    "found an empty row, allowed: rows of C >= 1 targets",
                ));
            }
            let (w, what) = match width {
                Some(w) => (w, format!("{w}, the width of data.train_y")),
                None => (first, format!("C = {first}, the length of {field}[0]")),
            };
            matrix_of(field, rows, w, &what)
        }
    }
}

/// Rows of length `dim`, all finite, as an N x dim matrix.
fn matrix(field: &str, rows: &[Vec<f64>], dim: usize) -> Result<DMatrix<f64>, InputError> {
    matrix_of(
        field,
        rows,
        dim,
        &format!("D = {dim}, the length of data.train_x[0]"),
    )
}

/// Rows of length `width` (`what` names that length and where it comes
/// from), all finite, as a matrix.
fn matrix_of(
    field: &str,
    rows: &[Vec<f64>],
    width: usize,
    what: &str,
) -> Result<DMatrix<f64>, InputError> {
    for (i, row) in rows.iter().enumerate() {
        if row.len() != width {
            return Err(InputError::new(
                format!("{field}[{i}]"),
                format!("found {} numbers, expected {what}", row.len()),
            ));
        }
        for (j, x) in row.iter().enumerate() {
            finite(&format!("{field}[{i}][{j}]"), *x)?;
        }
    }
    Ok(DMatrix::from_row_iterator(
        rows.len(),
        width,
        rows.iter().flatten().copied(),
    ))
}

fn finite(location: &str, x: f64) -> Result<(), InputError> {
    if x.is_finite() {
        Ok(())
    } else {
        Err(InputError::new(
            location,
            format!("found {x:?}, allowed: a finite number"),
        ))
    }
}
