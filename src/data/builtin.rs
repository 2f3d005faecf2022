//! The built-in data sets (SPEC §11): iris, diabetes, digits, wine and
//! breast_cancer, embedded from the repository's `data/` folder (sources,
//! licences and SHA-256 in `data/README.md`).
//!
//! Why our own copies and not the `linfa-datasets` crate: it would bring
//! ndarray, linfa and ndarray-csv into the build of a 2-core machine for a
//! few hundred lines of CSV, and its copies are not the ones SPEC names: its
//! diabetes features are the scaled ones (SPEC: the raw features) and it
//! reads a header row off them (441 rows, not 442), the provenance of its
//! iris (UCI's copy or Fisher's values) is not stated, and it has no
//! digits, wine or breast cancer. The files here are scikit-learn's, byte
//! for byte; digits stays the small gzipped file (57 kB), decoded by flate2.
//!
//! What [`load`] does, in this order (every step part of the contract, so
//! that an outside tool can reproduce the split from the seed):
//!
//! 1. Shuffle: one `next_u64()` per row of the whole set, in file order,
//!    from `rng::generator(seed, RngStream::DatasetShuffle)` (ChaCha20,
//!    stream 2); the rows are sorted by that key (ties, which have
//!    probability about n^2 / 2^65, by file order).
//! 2. Classes: of the shuffled rows, those whose class is in `classes` are
//!    kept, in their shuffled order. So the classes chosen never change the
//!    relative order of the rows kept.
//! 3. Split: the first n_train kept rows train, the next n_test are the
//!    query points; n_train + n_test must not exceed the rows kept.
//! 4. Scaling (`standardize`, default true): each input column minus the
//!    training rows' mean, over their standard deviation (ddof 0; a column
//!    constant on the training rows is only centred), applied to training
//!    and query rows alike; digits' pixel counts (0..16) are divided by 16
//!    instead. diabetes' target is standardised the same way.
//! 5. Targets: the class at position k of `classes` becomes k (`index`, the
//!    default, for cross_entropy), a one-hot row of C columns (`onehot`),
//!    -1/+1 (`signed`) or 0/1 (`binary`), the last two for exactly two
//!    classes.
use crate::error::InputError;
use crate::rng::{RngStream, generator};
use crate::spec::{DatasetName, DatasetSpec, Labels};
use flate2::read::GzDecoder;
use nalgebra::DMatrix;
use rand::Rng;
use std::io::Read;
use std::sync::OnceLock;

/// A built-in data set, split, scaled and encoded as its spec says.
#[derive(Clone, Debug, PartialEq)]
pub struct BuiltinData {
    /// N x D training inputs.
    pub train_x: DMatrix<f64>,
    /// N x T targets: T = C for `onehot`, else 1.
    pub train_y: DMatrix<f64>,
    /// M x D query inputs.
    pub test_x: DMatrix<f64>,
    /// M x T targets of the query points, encoded as `train_y`.
    pub test_y: DMatrix<f64>,
    /// The shape of one input for a layered model: [1, 8, 8] for digits,
    /// [D] for the others.
    pub input_shape: Vec<usize>,
    /// The names of the classes kept, in the order of `classes` (empty for
    /// diabetes).
    pub class_names: Vec<String>,
    /// The row of the file (from 0, header not counted) of each training
    /// and each query point.
    pub train_rows: Vec<usize>,
    pub test_rows: Vec<usize>,
}

/// One set as its file holds it.
#[derive(Debug)]
pub struct Table {
    /// rows x dim inputs, row-major.
    pub x: Vec<f64>,
    /// The class index (as a number) or the regression target of each row.
    pub y: Vec<f64>,
    pub rows: usize,
    pub dim: usize,
    /// The class names, in class-index order; empty for regression.
    pub class_names: Vec<String>,
}

impl Table {
    /// Row `i`'s inputs.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.dim..(i + 1) * self.dim]
    }
}

const IRIS: &[u8] = include_bytes!("../../data/iris.csv");
const WINE: &[u8] = include_bytes!("../../data/wine_data.csv");
const BREAST_CANCER: &[u8] = include_bytes!("../../data/breast_cancer.csv");
const DIGITS_GZ: &[u8] = include_bytes!("../../data/digits.csv.gz");
const DIABETES_X_GZ: &[u8] = include_bytes!("../../data/diabetes_data_raw.csv.gz");
const DIABETES_Y_GZ: &[u8] = include_bytes!("../../data/diabetes_target.csv.gz");

/// The set's table as its file holds it, decoded once per process.
pub fn table(name: DatasetName) -> &'static Table {
    static TABLES: [OnceLock<Table>; 5] = [const { OnceLock::new() }; 5];
    let index = DatasetName::ALL
        .iter()
        .position(|&n| n == name)
        .expect("every name is in ALL");
    TABLES[index].get_or_init(|| match name {
        DatasetName::Iris => with_header(IRIS),
        DatasetName::Wine => with_header(WINE),
        DatasetName::BreastCancer => with_header(BREAST_CANCER),
        DatasetName::Digits => digits(),
        DatasetName::Diabetes => diabetes(),
    })
}

/// The data set of `spec` under `seed` (module doc), or the first problem
/// with the spec, naming its field.
pub fn load(spec: &DatasetSpec, seed: u64) -> Result<BuiltinData, InputError> {
    let spec = spec.clone().with_defaults();
    let name = spec.name;
    let table = table(name);
    let (classes, labels) = classes_and_labels(&spec, table)?;
    at_least("data.n_train", spec.n_train)?;
    at_least("data.n_test", spec.n_test)?;

    let mut rng = generator(seed, RngStream::DatasetShuffle);
    let keys: Vec<u64> = (0..table.rows).map(|_| rng.next_u64()).collect();
    let mut order: Vec<usize> = (0..table.rows).collect();
    order.sort_by_key(|&i| (keys[i], i));
    let position = |i: usize| classes.iter().position(|&c| c as f64 == table.y[i]);
    if !classes.is_empty() {
        order.retain(|&i| position(i).is_some());
    }
    let available = order.len();
    let of_classes = if classes.is_empty() {
        String::new()
    } else {
        format!(" of classes {classes:?}")
    };
    if spec.n_train > available {
        return Err(InputError::new(
            "data.n_train",
            format!(
                "found {}, but {} has {available} rows{of_classes}; allowed: n_train + n_test \
                 <= {available}",
                spec.n_train,
                name.name()
            ),
        ));
    }
    if spec.n_test > available - spec.n_train {
        return Err(InputError::new(
            "data.n_test",
            format!(
                "found {}, but {} has {available} rows{of_classes} and n_train takes {}; \
                 allowed: n_test <= {}",
                spec.n_test,
                name.name(),
                spec.n_train,
                available - spec.n_train
            ),
        ));
    }
    let train_rows = order[..spec.n_train].to_vec();
    let test_rows = order[spec.n_train..spec.n_train + spec.n_test].to_vec();

    let gather = |rows: &[usize]| {
        DMatrix::from_row_iterator(
            rows.len(),
            table.dim,
            rows.iter().flat_map(|&i| table.row(i).iter().copied()),
        )
    };
    let (mut train_x, mut test_x) = (gather(&train_rows), gather(&test_rows));
    if spec.standardize {
        if name == DatasetName::Digits {
            train_x /= 16.0;
            test_x /= 16.0;
        } else {
            for j in 0..table.dim {
                let (mean, scale) = mean_and_scale(train_x.column(j).iter().copied());
                for x in train_x
                    .column_mut(j)
                    .iter_mut()
                    .chain(test_x.column_mut(j).iter_mut())
                {
                    *x = (*x - mean) / scale;
                }
            }
        }
    }

    let targets = |rows: &[usize]| -> DMatrix<f64> {
        match labels {
            None => DMatrix::from_iterator(rows.len(), 1, rows.iter().map(|&i| table.y[i])),
            Some(Labels::Onehot) => DMatrix::from_fn(rows.len(), classes.len(), |r, c| {
                f64::from(position(rows[r]) == Some(c))
            }),
            Some(labels) => DMatrix::from_iterator(
                rows.len(),
                1,
                rows.iter().map(|&i| {
                    let k = position(i).expect("the rows kept have a class of the list");
                    match labels {
                        Labels::Signed => 2.0 * k as f64 - 1.0,
                        _ => k as f64, // index, binary
                    }
                }),
            ),
        }
    };
    let (mut train_y, mut test_y) = (targets(&train_rows), targets(&test_rows));
    if labels.is_none() && spec.standardize {
        let (mean, scale) = mean_and_scale(train_y.iter().copied());
        for y in train_y.iter_mut().chain(test_y.iter_mut()) {
            *y = (*y - mean) / scale;
        }
    }
    Ok(BuiltinData {
        train_x,
        train_y,
        test_x,
        test_y,
        input_shape: name.input_shape(),
        class_names: classes
            .iter()
            .map(|&c| table.class_names[c].clone())
            .collect(),
        train_rows,
        test_rows,
    })
}

/// The classes kept and the labels of a classification set (checked
/// against it), or no classes and no labels for a regression set.
fn classes_and_labels(
    spec: &DatasetSpec,
    table: &Table,
) -> Result<(Vec<usize>, Option<Labels>), InputError> {
    let name = spec.name.name();
    let Some(n_classes) = spec.name.n_classes() else {
        let field = match (&spec.classes, spec.labels) {
            (Some(_), _) => "classes",
            (None, Some(_)) => "labels",
            (None, None) => return Ok((Vec::new(), None)),
        };
        return Err(InputError::new(
            format!("data.{field}"),
            format!(
                "{name} is a regression set (its targets are real numbers) and takes no \
                 `{field}`; allowed: `classes` and `labels` with the classification sets {}",
                classification_sets()
            ),
        ));
    };
    let classes = spec.classes.clone().unwrap_or_default();
    let labels = spec.labels.unwrap_or(Labels::Index);
    let allowed = || {
        let names: Vec<String> = (0..n_classes)
            .map(|c| match table.class_names[c].as_str() {
                same if same == c.to_string() => same.to_owned(),
                other => format!("{c} ({other})"),
            })
            .collect();
        format!("a class of {name}: {}", names.join(", "))
    };
    if classes.is_empty() {
        return Err(InputError::new(
            "data.classes",
            format!(
                "found no classes; allowed: at least one class, each {}",
                allowed()
            ),
        ));
    }
    for (k, &c) in classes.iter().enumerate() {
        if c >= n_classes {
            return Err(InputError::new(
                format!("data.classes[{k}]"),
                format!(
                    "found {c}, which is not a class of {name}; allowed: {}",
                    allowed()
                ),
            ));
        }
        if let Some(first) = classes[..k].iter().position(|&d| d == c) {
            return Err(InputError::new(
                format!("data.classes[{k}]"),
                format!("found {c}, already data.classes[{first}]; allowed: each class once"),
            ));
        }
    }
    if matches!(labels, Labels::Signed | Labels::Binary) && classes.len() != 2 {
        let kind = if labels == Labels::Signed {
            "signed"
        } else {
            "binary"
        };
        return Err(InputError::new(
            "data.labels",
            format!(
                "found `{kind}` with {} classes {classes:?}; allowed: `signed` and `binary` \
                 with exactly two classes (e.g. \"classes\": [0, 1]), `index` or `onehot` \
                 with any number",
                classes.len()
            ),
        ));
    }
    Ok((classes, Some(labels)))
}

/// The names of the sets with classes, for messages.
fn classification_sets() -> String {
    let names: Vec<String> = DatasetName::ALL
        .iter()
        .filter(|n| n.n_classes().is_some())
        .map(|n| format!("`{}`", n.name()))
        .collect();
    names.join(", ")
}

fn at_least(location: &str, n: usize) -> Result<(), InputError> {
    if n >= 1 {
        Ok(())
    } else {
        Err(InputError::new(
            location,
            format!("found {n}, allowed: a whole number >= 1"),
        ))
    }
}

/// The mean and the standard deviation (ddof 0, two passes) of `values`;
/// a standard deviation of 0 is returned as 1, so that a constant column
/// is only centred.
fn mean_and_scale(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let n = values.clone().count() as f64;
    let mean = values.clone().sum::<f64>() / n;
    let var = values.map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let std = var.sqrt();
    (mean, if std > 0.0 { std } else { 1.0 })
}

// ---------------------------------------------------------------- files

/// A file whose first line is `rows,dim,<class names>` and whose rows are
/// dim numbers then the class index (iris, wine, breast_cancer).
fn with_header(bytes: &[u8]) -> Table {
    let text = std::str::from_utf8(bytes).expect("the embedded file is UTF-8");
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .expect("a header")
        .split(',')
        .map(str::trim)
        .collect();
    let rows: usize = header[0].parse().expect("the header's row count");
    let dim: usize = header[1].parse().expect("the header's column count");
    let class_names = header[2..].iter().map(|s| (*s).to_owned()).collect();
    let table = numeric_rows(lines, ',', dim, rows, class_names);
    assert_eq!(table.rows, rows, "rows as the header says");
    table
}

/// The digits: 64 pixel counts then the digit per line, gzipped, no header.
fn digits() -> Table {
    let text = gunzip(DIGITS_GZ);
    let names = (0..10).map(|c| c.to_string()).collect();
    numeric_rows(text.lines(), ',', 64, 1797, names)
}

/// diabetes: the raw features, space separated, and the targets, one a
/// line, each file gzipped.
fn diabetes() -> Table {
    let features = gunzip(DIABETES_X_GZ);
    let targets = gunzip(DIABETES_Y_GZ);
    let x: Vec<f64> = features
        .split_whitespace()
        .map(|s| s.parse().expect("a number"))
        .collect();
    let y: Vec<f64> = targets
        .split_whitespace()
        .map(|s| s.parse().expect("a number"))
        .collect();
    assert_eq!(x.len(), y.len() * 10, "10 features per target");
    Table {
        rows: y.len(),
        dim: 10,
        x,
        y,
        class_names: Vec::new(),
    }
}

/// Lines of `dim` numbers then the target, separated by `sep`.
fn numeric_rows<'a>(
    lines: impl Iterator<Item = &'a str>,
    sep: char,
    dim: usize,
    expected_rows: usize,
    class_names: Vec<String>,
) -> Table {
    let mut x = Vec::with_capacity(expected_rows * dim);
    let mut y = Vec::with_capacity(expected_rows);
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let cells: Vec<f64> = line
            .split(sep)
            .map(|c| c.trim().parse().expect("a number"))
            .collect();
        assert_eq!(cells.len(), dim + 1, "dim inputs and a target per row");
        x.extend_from_slice(&cells[..dim]);
        y.push(cells[dim]);
    }
    Table {
        rows: y.len(),
        dim,
        x,
        y,
        class_names,
    }
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .expect("the embedded file is gzipped UTF-8");
    text
}
