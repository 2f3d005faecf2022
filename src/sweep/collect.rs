//! `pathkernel collect DIR`: the rows of every finished cell of a sweep's
//! directory (from any number of shards) merged, in cell order, into
//! `DIR/summary.csv`, and a compact table of them.
use super::row::MEASURES;
use super::{Grid, cell_path};
use crate::error::InputError;
use crate::report::write_atomic;
use std::path::Path;

/// The columns the printed table shows after `cell` and the axes.
const SHOWN: [&str; 5] = [
    "status",
    "max_abs_residual",
    "path_kernel_drift",
    "coefficient_variation",
    "loss_end",
];

/// Merges the rows; returns the table (and a note of missing cells).
pub fn command(dir: &Path) -> Result<String, InputError> {
    let record = dir.join("grid.json");
    let grid = Grid::from_path(&record).map_err(|e| {
        InputError::new(
            "DIR",
            format!(
                "{} is not a sweep's directory: {}: {}",
                dir.display(),
                e.location,
                e.problem
            ),
        )
    })?;
    let mut header: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for cell in 0..grid.len() {
        let path = cell_path(dir, cell, "csv");
        let Ok(text) = std::fs::read_to_string(&path) else {
            missing.push(cell);
            continue;
        };
        let wrong = |why: &str| InputError::new(path.display().to_string(), why.to_owned());
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(text.as_bytes());
        let records: Vec<Vec<String>> = reader
            .records()
            .map(|r| r.map(|r| r.iter().map(str::to_owned).collect()))
            .collect::<Result<_, _>>()
            .map_err(|e| wrong(&format!("not a row of a sweep: {e}")))?;
        let [h, row] = <[Vec<String>; 2]>::try_from(records)
            .map_err(|_| wrong("not a row of a sweep: expected a header and one row"))?;
        if header.as_ref().is_some_and(|first| *first != h) {
            return Err(wrong("its header differs from the other cells' rows"));
        }
        if row.first() != Some(&cell.to_string()) {
            return Err(wrong("its cell index is not the one its name gives"));
        }
        header.get_or_insert(h);
        rows.push(row);
    }
    let header = header.unwrap_or_else(|| {
        let fields: Vec<&str> = grid.axes.iter().map(|a| a.field.as_str()).collect();
        super::row::header(&fields)
    });
    let mut records = vec![header.clone()];
    records.extend(rows.iter().cloned());
    let summary = dir.join("summary.csv");
    write_atomic(&summary, &super::row::to_csv(&records), "the summary")?;
    Ok(table(&header, &rows, grid.axes.len(), &missing, &summary))
}

/// `cell`, the axes and the [`SHOWN`] measures, in aligned columns.
fn table(
    header: &[String],
    rows: &[Vec<String>],
    axes: usize,
    missing: &[usize],
    summary: &Path,
) -> String {
    let offset = 1 + axes;
    let columns: Vec<usize> = (0..offset)
        .chain(
            SHOWN
                .iter()
                .map(|s| offset + MEASURES.iter().position(|m| m == s).expect("a measure")),
        )
        .collect();
    let cells = |r: &[String]| -> Vec<String> {
        columns
            .iter()
            .map(|&c| short(r.get(c).map_or("", String::as_str)))
            .collect()
    };
    let lines: Vec<Vec<String>> = std::iter::once(cells(header))
        .chain(rows.iter().map(|r| cells(r)))
        .collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in &lines {
        let padded: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(text, &w)| format!("{text:>w$}"))
            .collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    }
    out.push_str(&format!(
        "{} rows written to {}\n",
        rows.len(),
        summary.display()
    ));
    if !missing.is_empty() {
        let listed: Vec<String> = missing.iter().take(20).map(usize::to_string).collect();
        let more = if missing.len() > 20 { ", ..." } else { "" };
        out.push_str(&format!(
            "{} cells not finished yet: {}{more}\n",
            missing.len(),
            listed.join(", ")
        ));
    }
    out
}

/// A number in four significant digits (a table is for reading); other
/// text, shortened to 40 characters.
fn short(text: &str) -> String {
    if let Ok(v) = text.parse::<f64>()
        && text.contains(['.', 'e'])
    {
        return format!("{v:.3e}");
    }
    if text.chars().count() > 40 {
        let cut: String = text.chars().take(37).collect();
        return format!("{cut}...");
    }
    text.to_owned()
}
