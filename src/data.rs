//! The data of an experiment, resolved from its spec: synthetic generators,
//! inline arrays, CSV files or a built-in data set; then the checks that need both the data and
//! the rest of the spec (the length of init.w0, labels against the loss).
use crate::error::InputError;
use crate::loss::Loss;
use crate::spec::{DataSpec, Spec};
use nalgebra::{DMatrix, DVector};
use std::path::Path;

pub mod builtin;
mod csv_files;
mod synthetic;

/// Training inputs (N x D), targets (N) and query inputs (M x D).
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub train_x: DMatrix<f64>,
    pub train_y: DVector<f64>,
    pub test_x: DMatrix<f64>,
}

/// Where each training row came from, to name it in a message.
enum Rows {
    Synthetic(&'static str),
    Inline,
    /// The train file and the line of each row.
    Csv(String, Vec<u64>),
    /// A built-in data set's name and the field that sets its targets.
    Builtin(&'static str, &'static str),
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
            } => (inline(train_x, train_y, test_x)?, Rows::Inline),
            DataSpec::Csv { train, test } => {
                let (data, file, lines) =
                    csv_files::read(&base_dir.join(train), &base_dir.join(test))?;
                (data, Rows::Csv(file, lines))
            }
            DataSpec::Dataset(data) => {
                let loaded = builtin::load(data, spec.seed)?;
                let field = match data.name.n_classes() {
                    Some(_) => "data.labels",
                    None => "loss.kind",
                };
                (
                    single_target(loaded)?,
                    Rows::Builtin(data.name.name(), field),
                )
            }
        };
        dataset.check_init(spec)?;
        dataset.check_labels(&spec.loss, &rows)?;
        Ok(dataset)
    }

    /// D, the input dimension.
    pub fn dim(&self) -> usize {
        self.train_x.ncols()
    }

    /// init.w0, when given, has exactly P = n_params(D) entries.
    fn check_init(&self, spec: &Spec) -> Result<(), InputError> {
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

    /// Targets are -1/+1 for the margin losses and 0/1 for bce (SPEC §2).
    fn check_labels(&self, loss: &Loss, rows: &Rows) -> Result<(), InputError> {
        let (allowed, labels) = match loss {
            Loss::Logistic | Loss::Exponential | Loss::Hinge | Loss::SquaredHinge => {
                ("-1 or +1", [-1.0, 1.0])
            }
            Loss::Bce => ("0 or 1", [0.0, 1.0]),
            _ => return Ok(()),
        };
        let Some((i, &y)) = self
            .train_y
            .iter()
            .enumerate()
            .find(|(_, y)| !labels.contains(y))
        else {
            return Ok(());
        };
        let kind = loss_kind(loss);
        let (location, row) = match rows {
            Rows::Synthetic(name) => (
                "loss.kind".to_owned(),
                format!("the {name} generator's row {i}"),
            ),
            Rows::Inline => (format!("data.train_y[{i}]"), "the target".to_owned()),
            Rows::Builtin(name, field) => (
                (*field).to_owned(),
                format!("the target of the {name} data set's training point {i}"),
            ),
            Rows::Csv(file, lines) => {
                let column = self.dim() + 1;
                (
                    format!("{file}:{}:{column}", lines[i]),
                    "the target".to_owned(),
                )
            }
        };
        Err(InputError::new(
            location,
            format!("{row} is {y:?}, but loss `{kind}` needs labels {allowed}"),
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

/// A built-in data set as this build's single-output models take it: one
/// target column (`onehot`'s C columns need the vector outputs of SPEC §8).
/// The query targets are not kept yet (the report's test_y, SPEC §11).
fn single_target(data: builtin::BuiltinData) -> Result<Dataset, InputError> {
    if data.train_y.ncols() != 1 {
        return Err(InputError::new(
            "data.labels",
            format!(
                "found `onehot`, which makes {} target columns, but this build's models have \
                 one output; allowed: `index`, `signed` or `binary`",
                data.train_y.ncols()
            ),
        ));
    }
    Ok(Dataset {
        train_x: data.train_x,
        train_y: data.train_y.column(0).into_owned(),
        test_x: data.test_x,
    })
}

/// Inline arrays: at least one train and one test row, all rows of one
/// length D >= 1, one target per train row, every number finite.
fn inline(
    train_x: &[Vec<f64>],
    train_y: &[f64],
    test_x: &[Vec<f64>],
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
    for (i, y) in train_y.iter().enumerate() {
        finite(&format!("data.train_y[{i}]"), *y)?;
    }
    if test_x.is_empty() {
        return Err(InputError::new(
            "data.test_x",
            "found no rows, allowed: at least one",
        ));
    }
    let test = matrix("data.test_x", test_x, dim)?;
    Ok(Dataset {
        train_x: train,
        train_y: DVector::from_column_slice(train_y),
        test_x: test,
    })
}

/// Rows of length `dim`, all finite, as an N x dim matrix.
fn matrix(field: &str, rows: &[Vec<f64>], dim: usize) -> Result<DMatrix<f64>, InputError> {
    for (i, row) in rows.iter().enumerate() {
        if row.len() != dim {
            return Err(InputError::new(
                format!("{field}[{i}]"),
                format!(
                    "found {} numbers, expected D = {dim}, the length of data.train_x[0]",
                    row.len()
                ),
            ));
        }
        for (j, x) in row.iter().enumerate() {
            finite(&format!("{field}[{i}][{j}]"), *x)?;
        }
    }
    Ok(DMatrix::from_row_iterator(
        rows.len(),
        dim,
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
