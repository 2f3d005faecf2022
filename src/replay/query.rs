//! The new query points of `pathkernel kernel --query FILE`: a JSON array
//! of rows, or CSV rows (the data files' conventions: comma-separated, an
//! optional header, every cell a finite number), each row D inputs.
use crate::data::csv_files::Table;
use crate::error::InputError;
use nalgebra::DMatrix;
use serde_json::Value;
use std::path::Path;

/// The rows of `path`, each of `dim` numbers (the model's inputs): a JSON
/// array when the file's first non-blank character is `[`, else CSV.
pub fn read_query(path: &Path, dim: usize) -> Result<DMatrix<f64>, InputError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::new(&file, format!("cannot read the query points: {e}")))?;
    let (rows, lines) = if text.trim_start().starts_with('[') {
        json_rows(&text, &file)?
    } else {
        let table = Table::read(path)?;
        let lines = table.lines.iter().map(|l| format!("{file}:{l}")).collect();
        (table.rows, lines)
    };
    if rows.is_empty() {
        return Err(InputError::new(
            &file,
            "found no query points, allowed: at least one row",
        ));
    }
    if let Some((row, at)) = rows.iter().zip(&lines).find(|(r, _)| r.len() != dim) {
        return Err(InputError::new(
            at,
            format!(
                "found a row of {} numbers, expected {dim} (the model's inputs, as in the \
                 report's train_x)",
                row.len()
            ),
        ));
    }
    Ok(DMatrix::from_row_iterator(
        rows.len(),
        dim,
        rows.into_iter().flatten(),
    ))
}

/// The rows of a JSON array of arrays of numbers, and where each is (its
/// position from 1), to name it in a message.
fn json_rows(text: &str, file: &str) -> Result<(Vec<Vec<f64>>, Vec<String>), InputError> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        InputError::new(
            format!("{file}:{}:{}", e.line(), e.column()),
            format!("invalid JSON: {e}"),
        )
    })?;
    let expected = "expected an array of rows, each an array of numbers";
    let Value::Array(rows) = value else {
        return Err(InputError::new(file, expected));
    };
    let mut out = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let numbers = row
            .as_array()
            .and_then(|r| r.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>());
        match numbers {
            Some(r) => out.push(r),
            None => {
                return Err(InputError::new(
                    format!("{file}: row {}", i + 1),
                    format!("found {row}, {expected}"),
                ));
            }
        }
    }
    let positions = (1..=out.len())
        .map(|i| format!("{file}: row {i}"))
        .collect();
    Ok((out, positions))
}
