//! Reproducibility (issue 5): the same spec gives a byte-identical report on
//! every run and with any number of threads, and every number in it reads
//! back to the f64 the run held.
//!
//! The spec is large enough that the parallel paths are taken: an mlp
//! [256, 256] on N = 256, M = 128 multiplies (N + M) x 256 by 256 x 256 per
//! layer, 2.5e7 multiply-adds, far above the 2^19 where the matrix products
//! split across threads, and its state (P + 2 M N = 1.3e5 numbers) is above
//! the 4 x 4096 where the stage combinations and the error norm do.
use pathkernel::data::Dataset;
use pathkernel::experiment::Experiment;
use pathkernel::report::Report;
use pathkernel::spec::{Format, Spec};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Stdio};

fn spec() -> Value {
    json!({
        "seed": 11,
        "data": {"source": "synthetic", "function": "sine", "n_train": 256, "n_test": 128, "dim": 4},
        "model": {"arch": "mlp", "hidden": [256, 256], "activation": "tanh"},
        "loss": {"kind": "squared"},
        "reduction": "mean",
        "flow": {"t_end": 0.1, "method": "dopri5", "step": 0.025}
    })
}

/// The report text of `run` with RAYON_NUM_THREADS = `threads` (or rayon's
/// default, one per core, when None).
fn report_with(dir: &Path, threads: Option<usize>, name: &str) -> String {
    let spec_path = dir.join("spec.json");
    std::fs::write(&spec_path, spec().to_string()).unwrap();
    let out = dir.join(name);
    let mut command = Command::new(env!("CARGO_BIN_EXE_pathkernel"));
    command
        .args([
            "run",
            spec_path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .env_remove("RAYON_NUM_THREADS");
    if let Some(n) = threads {
        command.env("RAYON_NUM_THREADS", n.to_string());
    }
    let status = command.output().unwrap();
    assert_eq!(status.status.code(), Some(0), "{status:?}");
    std::fs::read_to_string(out).unwrap()
}

#[test]
fn reports_are_byte_identical_across_runs_and_thread_counts() {
    let dir = tempfile::tempdir().unwrap();
    let first = report_with(dir.path(), None, "a.json");
    let report: Value = serde_json::from_str(&first).unwrap();
    // The run took several steps, so the parallel paths ran repeatedly.
    assert!(
        report["steps"].as_u64().unwrap() >= 2,
        "{}",
        report["steps"]
    );
    for (threads, name) in [(None, "b.json"), (Some(1), "c.json"), (Some(2), "d.json")] {
        let again = report_with(dir.path(), threads, name);
        assert!(first == again, "RAYON_NUM_THREADS = {threads:?} differs");
    }
}

/// Every number of the report reads back to the f64 the run held: the file
/// is the text of the same experiment run in this process, and its numbers
/// read back (serde_json with float_roundtrip, correctly rounded) equal
/// that run's, bit for bit.
#[test]
fn report_numbers_read_back_to_the_run_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let text = report_with(dir.path(), None, "report.json");
    let read: Value = serde_json::from_str(&text).unwrap();
    let spec = Spec::parse(&spec().to_string(), Format::Json).unwrap();
    let data = Dataset::resolve(&spec, Path::new(".")).unwrap();
    let exp = Experiment::new(spec, data);
    let outcome = exp.run(&mut |_| {}).unwrap();
    let report = Report::new(&exp, &outcome);
    // The binary wrote exactly what the library computes here.
    assert!(
        text == report.to_json() + "\n",
        "the file differs from the run here"
    );
    let held = serde_json::to_value(report).unwrap();
    let fields = held.as_object().unwrap();
    for (field, value) in fields {
        if field == "generator" {
            continue;
        }
        let (a, b) = (numbers(&read[field]), numbers(value));
        assert_eq!(a.len(), b.len(), "{field}");
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert_eq!(
                x.to_bits(),
                y.to_bits(),
                "{field}[{i}]: read {x:e}, held {y:e}"
            );
        }
    }
}

/// Every number in a JSON value, depth first.
fn numbers(v: &Value) -> Vec<f64> {
    match v {
        Value::Number(n) => vec![n.as_f64().unwrap()],
        Value::Array(items) => items.iter().flat_map(numbers).collect(),
        Value::Object(fields) => fields.values().flat_map(numbers).collect(),
        _ => Vec::new(),
    }
}
