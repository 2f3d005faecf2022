//! Data from CSV files: numeric columns, the last T columns of the train
//! file the targets (T = 1, or C for a C-output model under a per-component
//! loss, SPEC §8); the test file has the D input columns and optionally the
//! targets, which are ignored.
//!
//! Format: comma-separated, fields trimmed, double quotes allowed, blank
//! lines skipped. The first line is a header, and skipped, when none of its
//! cells is a number; a first line with some numeric and some other cells is
//! a data row with a bad cell. Every cell of a data row must be a finite
//! number as Rust's `f64` parser reads it. Errors name `file:line[:column]`
//! (lines and columns from 1).
use super::Dataset;
use crate::error::{InputError, shown};
use nalgebra::DMatrix;
use std::path::Path;

/// The numeric rows of one file and the line each came from.
pub(crate) struct Table {
    pub file: String,
    pub rows: Vec<Vec<f64>>,
    pub lines: Vec<u64>,
    /// The column count, read from the header or the first row.
    pub width: usize,
}

/// The data set from the two files, the train file's name as displayed and
/// the line of each training row (for later messages on targets).
/// `targets` is T, the target columns at the end of each train row.
pub(super) fn read(
    train: &Path,
    test: &Path,
    targets: usize,
) -> Result<(Dataset, String, Vec<u64>), InputError> {
    let train = Table::read(train)?;
    let what = if targets == 1 {
        "the target".to_owned()
    } else {
        format!("{targets} targets")
    };
    if train.width < targets + 1 {
        return Err(InputError::new(
            format!("{}:{}", train.file, train.lines[0]),
            format!(
                "found {}, expected at least {}: the inputs, then {what}",
                columns(train.width),
                targets + 1
            ),
        ));
    }
    let dim = train.width - targets;
    let test = Table::read(test)?;
    if test.width != dim && test.width != dim + targets {
        return Err(InputError::new(
            format!("{}:{}", test.file, test.lines[0]),
            format!(
                "found {}, expected {dim} (the inputs, as in {}) or {} (the inputs and \
                 {})",
                columns(test.width),
                train.file,
                dim + targets,
                if targets == 1 {
                    "an ignored target".to_owned()
                } else {
                    format!("{targets} ignored targets")
                }
            ),
        ));
    }
    let train_x = DMatrix::from_row_iterator(
        train.rows.len(),
        dim,
        train.rows.iter().flat_map(|row| row[..dim].iter().copied()),
    );
    let train_y = DMatrix::from_row_iterator(
        train.rows.len(),
        targets,
        train.rows.iter().flat_map(|row| row[dim..].iter().copied()),
    );
    let test_x = DMatrix::from_row_iterator(
        test.rows.len(),
        dim,
        test.rows.iter().flat_map(|row| row[..dim].iter().copied()),
    );
    let data = Dataset {
        train_x,
        train_y,
        test_x,
        test_y: None,
    };
    Ok((data, train.file, train.lines))
}

impl Table {
    /// Reads a whole file: at least one data row, all of one width.
    pub(crate) fn read(path: &Path) -> Result<Table, InputError> {
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| {
            InputError::new(file.clone(), format!("cannot read the data file: {e}"))
        })?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(bytes.as_slice());
        let mut table = Table {
            file,
            rows: Vec::new(),
            lines: Vec::new(),
            width: 0,
        };
        let mut width_line = 0;
        for (index, record) in reader.records().enumerate() {
            let record = record.map_err(|e| {
                let line = e
                    .position()
                    .map_or(String::new(), |p| format!(":{}", p.line()));
                InputError::new(format!("{}{line}", table.file), format!("invalid CSV: {e}"))
            })?;
            let line = record.position().map_or(0, |p| p.line());
            if index == 0 {
                table.width = record.len();
                width_line = line;
                if record.iter().all(|cell| cell.parse::<f64>().is_err()) {
                    continue; // a header
                }
            }
            if record.len() != table.width {
                return Err(InputError::new(
                    format!("{}:{line}", table.file),
                    format!(
                        "found {}, expected {} as on line {width_line}",
                        columns(record.len()),
                        table.width
                    ),
                ));
            }
            let row = record
                .iter()
                .enumerate()
                .map(|(j, cell)| {
                    number(cell).map_err(|mut problem| {
                        if index == 0 {
                            problem.push_str(" (a header line has no numeric cell)");
                        }
                        InputError::new(format!("{}:{line}:{}", table.file, j + 1), problem)
                    })
                })
                .collect::<Result<Vec<f64>, InputError>>()?;
            table.rows.push(row);
            table.lines.push(line);
        }
        if table.rows.is_empty() {
            return Err(InputError::new(
                table.file,
                "found no data rows (the file is empty or holds only a header), allowed: at least one",
            ));
        }
        Ok(table)
    }
}

/// A cell as a finite number.
fn number(cell: &str) -> Result<f64, String> {
    match cell.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        Ok(_) => Err(format!("found `{}`, allowed: a finite number", shown(cell))),
        Err(_) if cell.is_empty() => Err("found an empty cell, expected a number".to_owned()),
        Err(_) => Err(format!("found `{}`, expected a number", shown(cell))),
    }
}

fn columns(n: usize) -> String {
    if n == 1 {
        "1 column".to_owned()
    } else {
        format!("{n} columns")
    }
}
