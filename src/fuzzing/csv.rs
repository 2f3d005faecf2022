//! CSV data files from arbitrary bytes.
use super::assert_one_line;
use crate::data::Dataset;
use crate::loss::Loss;
use crate::spec::{Format, Spec};
/// Property: any bytes as the train file (and, after the first NUL byte,
/// as the test file; else the same bytes), with a loss chosen by the first
/// byte, give data or one [`InputError`](crate::error::InputError) of one
/// line placed in one of the two files. Data read have N, M, D >= 1 rows of
/// finite numbers, test rows of D columns, and labels that fit the loss.
pub fn csv_bytes(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let (train, test) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, rest),
    };
    // A directory each call: removed when done, so replays leave nothing.
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let dir = scratch.path();
    let (train_name, test_name) = ("train.csv", "test.csv");
    std::fs::write(dir.join(train_name), train).expect("writes the train file");
    std::fs::write(dir.join(test_name), test).expect("writes the test file");
    let losses = Loss::all();
    let loss = losses[first as usize % losses.len()].name();
    let text = serde_json::json!({
        "data": {"source": "csv", "train": train_name, "test": test_name},
        "model": {"arch": "linear"},
        "loss": {"kind": loss},
        "flow": {"t_end": 1.0, "method": "rk4", "step": 0.5}
    })
    .to_string();
    let spec = Spec::parse(&text, Format::Json).expect("the csv spec is valid");
    match Dataset::resolve(&spec, dir) {
        Err(e) => {
            assert_one_line(&e);
            let (train_path, test_path) = (
                dir.join(train_name).display().to_string(),
                dir.join(test_name).display().to_string(),
            );
            assert!(
                e.location.starts_with(&train_path) || e.location.starts_with(&test_path),
                "the error is not placed in a file: {e}"
            );
        }
        Ok(data) => {
            let (n, m, d) = (data.train_x.nrows(), data.test_x.nrows(), data.dim());
            assert!(n >= 1 && m >= 1 && d >= 1, "empty data: {n} {m} {d}");
            assert_eq!(data.train_y.nrows(), n);
            assert_eq!(
                data.train_y.ncols(),
                spec.loss.target_columns(spec.model.outputs())
            );
            assert_eq!(data.test_x.ncols(), d);
            let numbers = data.train_x.iter().chain(&data.train_y).chain(&data.test_x);
            assert!(numbers.clone().all(|x| x.is_finite()), "non-finite data");
            let kind = spec.loss.target_kind();
            assert!(
                data.train_y.iter().all(|&y| kind.accepts(y)),
                "labels vs loss"
            );
        }
    }
}
