//! A cell's row of the sweep's summary: what one run measured, as one line
//! of CSV under a header. Numbers are written as the report writes them
//! (shortest round-trip form), so every column but `seconds` is the same
//! bytes whatever the shard, the `--jobs` or the machine's thread count.
use crate::report::Report;
use serde_json::Value;

/// The columns after `cell` and the axes, in order.
pub const MEASURES: [&str; 14] = [
    "status",
    "max_abs_residual",
    "exact_max_abs_residual",
    "path_kernel_drift",
    "tangent_kernel_change",
    "coefficient_variation",
    "loss0",
    "loss_end",
    "test_mse",
    "test_accuracy",
    "steps",
    "rejected_steps",
    "rhs_evals",
    "seconds",
];

/// The header: `cell`, the axes' field paths, then [`MEASURES`].
pub fn header(fields: &[&str]) -> Vec<String> {
    std::iter::once("cell")
        .chain(fields.iter().copied())
        .chain(MEASURES)
        .map(str::to_owned)
        .collect()
}

/// The row of a finished run: `ok` and its measures; an absent one empty.
pub fn finished(cell: usize, values: Vec<String>, report: &Report, seconds: f64) -> Vec<String> {
    let c = &report.conditions;
    let test = report.test_error.as_ref().map(|e| &e.model);
    let measures = [
        "ok".to_owned(),
        number(Some(report.max_abs_residual)),
        number(report.exact_max_abs_residual),
        number(c.path_kernel_drift),
        number(c.tangent_kernel_change),
        number(c.coefficient_variation),
        number(Some(report.loss0)),
        number(Some(report.loss_end)),
        number(test.map(|e| e.mse)),
        number(test.and_then(|e| e.accuracy)),
        report.steps.to_string(),
        report.rejected_steps.to_string(),
        report.rhs_evals.to_string(),
        format!("{seconds:.6}"),
    ];
    row(cell, values, measures)
}

/// The row of a run that failed (diverged, or reached max_steps): the
/// message as its status and no measures. The failure is the cell's
/// result, so the cell counts as finished.
pub fn failed(cell: usize, values: Vec<String>, message: &str, seconds: f64) -> Vec<String> {
    let mut measures: [String; MEASURES.len()] = Default::default();
    measures[0] = format!("failed: {message}");
    measures[MEASURES.len() - 1] = format!("{seconds:.6}");
    row(cell, values, measures)
}

fn row(cell: usize, values: Vec<String>, measures: [String; MEASURES.len()]) -> Vec<String> {
    std::iter::once(cell.to_string())
        .chain(values)
        .chain(measures)
        .collect()
}

/// A number as the report writes it, or empty.
fn number(v: Option<f64>) -> String {
    v.map_or_else(String::new, |v| Value::from(v).to_string())
}

/// Records (the header first) as CSV text.
pub fn to_csv(records: &[Vec<String>]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in records {
        w.write_record(r).expect("writing CSV to memory");
    }
    String::from_utf8(w.into_inner().expect("flushing to memory")).expect("UTF-8 fields")
}
