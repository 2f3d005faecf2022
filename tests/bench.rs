//! `pathkernel bench` (src/bench/): the CI gate (the bench specs' counts and
//! residuals against the committed counts-only baseline), a planted
//! regression caught and named, and the comparison's tolerances.
use crate::common::assert_fails;
use pathkernel::bench::{Baseline, Entry, Times, compare};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The committed baseline: counts and residuals of every bench spec.
fn committed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/baseline.json")
}

/// The bench specs the gate runs: those that take well under a second.
const GATE: [&str; 2] = ["small", "medium"];

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pathkernel"))
        .arg("bench")
        .args(args)
        .output()
        .unwrap()
}

fn read(path: &Path) -> Baseline {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The CI gate: no change in the gate specs' evaluations, steps or
/// residual against the committed baseline, which covers every bench spec.
#[test]
fn the_bench_specs_counts_match_the_committed_baseline() {
    let baseline = read(&committed());
    let names: Vec<&str> = baseline.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "adam",
            "classifier",
            "cnn",
            "large",
            "medium",
            "sgd_momentum",
            "small"
        ]
    );
    assert!(baseline.entries.iter().all(|e| e.time.is_none()));
    let path = committed();
    let mut args = GATE.to_vec();
    args.extend(["--repeat", "1", "--baseline", path.to_str().unwrap()]);
    let out = bench(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in GATE {
        assert!(text.contains(&format!("{name:<12} rhs_evals")), "{text}");
    }
    assert!(!text.contains("FLAGGED"), "{text}");
}

/// One more evaluation than the baseline: exit 1, naming the spec and the
/// figure. A residual four times the baseline's is flagged as well.
#[test]
fn a_planted_regression_exits_1_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut planted = read(&committed());
    let small = planted
        .entries
        .iter_mut()
        .find(|e| e.name == "small")
        .unwrap();
    let evals = small.rhs_evals;
    small.rhs_evals -= 1;
    small.max_abs_residual /= 4.0;
    let path = dir.path().join("planted.json");
    std::fs::write(&path, serde_json::to_string(&planted).unwrap()).unwrap();
    let out = bench(&[
        "small",
        "--repeat",
        "1",
        "--baseline",
        path.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let expected = format!("small: rhs_evals changed from {} to {evals}", evals - 1);
    assert!(err.contains(&expected), "{err}");
    assert!(err.contains("small: max_abs_residual moved"), "{err}");
    assert!(err.contains("2 regression(s)"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("FLAGGED"));
}

#[test]
fn save_writes_a_baseline_that_compares_equal_and_bad_input_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("b.json");
    let s = saved.to_str().unwrap();
    let out = bench(&["small", "--repeat", "2", "--save", s, "--counts-only"]);
    assert!(out.status.success());
    let b = read(&saved);
    assert_eq!(b.entries.len(), 1);
    assert_eq!(b.entries[0].time, None);
    assert!(
        bench(&["small", "--repeat", "1", "--baseline", s])
            .status
            .success()
    );
    // With times: the median and spread of the runs, and a FLOP rate.
    let timed = dir.path().join("t.json");
    let out = bench(&["small", "--repeat", "3", "--save", timed.to_str().unwrap()]);
    assert!(out.status.success());
    let t = read(&timed).entries[0].time.clone().unwrap();
    assert_eq!(t.runs, 3);
    assert!(t.min <= t.median && t.median <= t.max && t.min > 0.0);

    assert_fails(
        &bench(&["small", "--repeat", "0"]),
        2,
        &["--repeat", "found 0"],
    );
    assert_fails(&bench(&["no/such.json"]), 2, &["no/such.json"]);
    std::fs::write(dir.path().join("bad.json"), "{}").unwrap();
    let bad = dir.path().join("bad.json");
    assert_fails(
        &bench(&["small", "--baseline", bad.to_str().unwrap()]),
        2,
        &["bad.json", "not a baseline"],
    );
}

fn entry(evals: usize, residual: f64, time: Option<(f64, f64, f64)>) -> Entry {
    Entry {
        name: "x".into(),
        n_params: 10,
        rhs_evals: evals,
        steps: 10,
        rejected_steps: 0,
        max_abs_residual: residual,
        scale: 1.0,
        time: time.map(|(min, median, max)| Times {
            runs: 3,
            median,
            min,
            max,
        }),
        gflops: None,
    }
}

fn flags(now: Entry, base: Entry) -> Vec<&'static str> {
    let baseline = Baseline {
        version: 1,
        generator: String::new(),
        entries: vec![base],
    };
    compare(&[now], &baseline)
        .into_iter()
        .filter(|f| f.flag.is_some())
        .map(|f| f.figure)
        .collect()
}

#[test]
fn tolerances_counts_exact_residual_a_factor_two_time_the_spread() {
    let base = entry(100, 1e-9, Some((0.9, 1.0, 1.1)));
    assert!(flags(base.clone(), base.clone()).is_empty());
    // Any change of a count, either way.
    assert_eq!(flags(entry(101, 1e-9, None), base.clone()), ["rhs_evals"]);
    assert_eq!(flags(entry(99, 1e-9, None), base.clone()), ["rhs_evals"]);
    // The residual: within a factor 2 either way passes.
    assert!(flags(entry(100, 1.9e-9, None), base.clone()).is_empty());
    assert!(flags(entry(100, 0.6e-9, None), base.clone()).is_empty());
    assert_eq!(
        flags(entry(100, 2.1e-9, None), base.clone()),
        ["max_abs_residual"]
    );
    assert_eq!(
        flags(entry(100, 0.4e-9, None), base.clone()),
        ["max_abs_residual"]
    );
    // ... and at rounding level (16 K u S = 16 * 10 * 2.2e-16 * 1 = 3.6e-14) never.
    let rounding = entry(100, 1e-16, None);
    assert!(flags(entry(100, 3.5e-14, None), rounding.clone()).is_empty());
    assert_eq!(
        flags(entry(100, 3.7e-14, None), rounding),
        ["max_abs_residual"]
    );
    // Time: only a median above the baseline's slowest run.
    assert!(flags(entry(100, 1e-9, Some((1.0, 1.09, 1.2))), base.clone()).is_empty());
    assert_eq!(
        flags(entry(100, 1e-9, Some((1.1, 1.15, 1.2))), base.clone()),
        ["seconds"]
    );
}
