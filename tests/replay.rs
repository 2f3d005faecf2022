//! The replay of SPEC §13: a run retraced on its report's `step_sizes`
//! with other query points follows the same w(t) bit for bit (every method,
//! adaptive runs with rejected steps, C > 1, a layered model), and with
//! its own query points gives its K^p and A bit for bit. `pathkernel
//! kernel` reads the report back (JSON and npz) and refuses bad input with
//! one message.
use crate::common::assert_fails;
use nalgebra::DMatrix;
use pathkernel::data::Dataset;
use pathkernel::experiment::{Experiment, Outcome};
use pathkernel::replay::{self, RunRecord, halved};
use pathkernel::spec::{Format, Spec};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};

fn run(spec: &Value) -> (Experiment, Outcome) {
    let spec = Spec::parse(&spec.to_string(), Format::Json).unwrap();
    let data = Dataset::resolve(&spec, Path::new(".")).unwrap();
    let exp = Experiment::new(spec, data);
    let out = exp.run(&mut |_| {}).unwrap();
    (exp, out)
}

#[track_caller]
fn assert_bits(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(x.to_bits(), y.to_bits(), "{what}[{i}]: {x} vs {y}");
    }
}

/// `m` points in [-1.3, 1.3]^d, none of them the run's (a fixed sequence).
fn new_points(m: usize, d: usize) -> DMatrix<f64> {
    DMatrix::from_fn(m, d, |r, c| {
        let k = (r * d + c) as f64;
        ((0.7548776662 * (k + 1.0)).fract() * 2.0 - 1.0) * 1.3
    })
}

/// The replay's claims for the run of `spec`: with its own query points,
/// the same w_end, K^p and A in every bit; with three more new points, the
/// same w_end in every bit and the same steps.
fn check_replay(spec: Value) -> Outcome {
    let (exp, out) = run(&spec);
    let record = RunRecord::of_run(&exp, &out);
    assert_eq!(out.step_sizes.len(), out.stats.steps);
    let own = replay::experiment(&record, record.test_x.clone(), None).unwrap();
    let again = replay::replay(&own, &record.step_sizes).unwrap();
    assert_bits(&again.w_end, &out.w_end, "w_end (own points)");
    assert_bits(
        again.path_kernel.as_slice(),
        out.path_kernel.as_slice(),
        "path_kernel",
    );
    assert_bits(
        again.coef_integral.as_slice(),
        out.coef_integral.as_slice(),
        "coef_integral",
    );
    assert_eq!(again.stats.rejected_steps, 0);
    let (m, d) = (record.test_x.nrows() + 3, record.train_x.ncols());
    let other = replay::experiment(&record, new_points(m, d), None).unwrap();
    let moved = replay::replay(&other, &record.step_sizes).unwrap();
    assert_bits(&moved.w_end, &out.w_end, "w_end (new points)");
    assert_bits(&moved.step_sizes, &out.step_sizes, "step_sizes");
    assert_eq!(moved.y_end.len(), m * out.n_outputs);
    out
}

fn sine(method: Value) -> Value {
    json!({"seed": 4, "data": {"source": "synthetic", "function": "sine", "n_train": 24,
           "n_test": 5, "dim": 2},
           "model": {"arch": "mlp", "hidden": [12], "activation": "tanh"},
           "loss": {"kind": "squared"}, "reduction": "sum", "flow": method})
}

#[test]
fn gd_replays_bit_for_bit() {
    check_replay(sine(json!({"t_end": 0.5, "method": "gd", "lr": 0.01})));
}

/// sgd and adam (SPEC §9): drawn batches (epoch shuffling from the seed)
/// and a schedule replay to the same w_end, K^p, A and eta_k; the exact
/// decomposition's A^e too.
#[test]
fn sgd_and_adam_replay_bit_for_bit() {
    for flow in [
        json!({"method": "sgd", "lr": 0.02, "steps": 15, "batch_size": 5, "momentum": 0.9,
               "weight_decay": 0.01, "schedule": {"kind": "cosine"}}),
        json!({"method": "adam", "lr": 0.01, "steps": 15, "batch_size": 7, "weight_decay": 0.01}),
    ] {
        let out = check_replay(sine(flow));
        assert!(out.optimizer.is_some() && out.exact_coef_integral.is_some());
    }
}

#[test]
fn fixed_step_methods_replay_bit_for_bit() {
    check_replay(sine(json!({"t_end": 1.0, "method": "rk4", "step": 0.02})));
    check_replay(sine(json!({"t_end": 1.0, "method": "heun", "step": 0.02})));
}

#[test]
fn adaptive_runs_with_rejected_steps_replay_bit_for_bit() {
    let out = check_replay(sine(
        json!({"t_end": 3.0, "method": "dopri5", "rtol": 1e-3, "atol": 1e-3}),
    ));
    assert!(out.stats.rejected_steps > 0, "{:?}", out.stats);
    check_replay(sine(
        json!({"t_end": 3.0, "method": "dop853", "rtol": 1e-6, "atol": 1e-8}),
    ));
    check_replay(sine(
        json!({"t_end": 3.0, "method": "verner98", "rtol": 1e-6, "atol": 1e-8}),
    ));
}

#[test]
fn vector_outputs_replay_bit_for_bit() {
    check_replay(json!({"seed": 2,
        "data": {"source": "dataset", "name": "iris", "n_train": 30, "n_test": 7, "labels": "index"},
        "model": {"arch": "mlp", "hidden": [6], "activation": "tanh", "outputs": 3},
        "loss": {"kind": "cross_entropy"}, "reduction": "mean",
        "flow": {"t_end": 2.0, "method": "dopri5", "rtol": 1e-5, "atol": 1e-7}}));
}

#[test]
fn a_layered_model_replays_bit_for_bit() {
    check_replay(json!({"seed": 1,
        "data": {"source": "dataset", "name": "digits", "n_train": 20, "n_test": 4,
                 "classes": [0, 3, 8], "labels": "index"},
        "model": {"arch": "layers", "input_shape": [1, 8, 8], "outputs": 3,
                  "layers": [{"kind": "conv2d", "channels": 2, "kernel": 3},
                             {"kind": "activation", "name": "tanh"},
                             {"kind": "avg_pool", "size": 2},
                             {"kind": "flatten"},
                             {"kind": "dense", "units": 3}]},
        "loss": {"kind": "cross_entropy"}, "reduction": "mean",
        "flow": {"t_end": 1.0, "method": "dop853", "rtol": 1e-6, "atol": 1e-8}}));
}

#[test]
fn halved_steps_split_every_step_in_two() {
    assert_eq!(halved(&[0.5, 0.25]), vec![0.25, 0.25, 0.125, 0.125]);
}

// ------------------------------------------------------------ the command

fn pathkernel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pathkernel"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `spec` into `dir/r.json` (with `arrays`) and returns its report.
fn report(dir: &Path, spec: &Value, arrays: &str) -> Value {
    let path = dir.join("s.json");
    std::fs::write(&path, spec.to_string()).unwrap();
    let r = dir.join("r.json");
    let out = pathkernel(&[
        "run",
        path.to_str().unwrap(),
        "--out",
        r.to_str().unwrap(),
        "--arrays",
        arrays,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(r).unwrap()).unwrap()
}

fn kernel(dir: &Path, query: &str, extra: &[&str]) -> Output {
    let q = dir.join(query);
    let r = dir.join("r.json");
    let mut args = vec![
        "kernel",
        r.to_str().unwrap(),
        "--query",
        q.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    pathkernel(&args)
}

#[test]
fn kernel_reads_a_report_and_reproduces_its_own_points() {
    let dir = tempfile::tempdir().unwrap();
    let spec = sine(json!({"t_end": 3.0, "method": "dopri5", "rtol": 1e-3, "atol": 1e-3}));
    let run = report(dir.path(), &spec, "json");
    assert!(run["rejected_steps"].as_u64().unwrap() > 0);
    std::fs::write(dir.path().join("q.json"), run["test_x"].to_string()).unwrap();
    let csv: String = run["test_x"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{},{}\n", r[0], r[1]))
        .collect();
    std::fs::write(dir.path().join("q.csv"), format!("x1,x2\n{csv}")).unwrap();
    for query in ["q.json", "q.csv"] {
        let k = dir.path().join("k.json");
        let out = kernel(dir.path(), query, &["--out", k.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("bit for bit"), "{text}");
        let got: Value = serde_json::from_str(&std::fs::read_to_string(&k).unwrap()).unwrap();
        for field in [
            "w_end",
            "path_kernel",
            "coef_integral",
            "a",
            "y0",
            "y_end",
            "kernel_machine",
            "residual",
            "step_sizes",
        ] {
            assert_eq!(got[field], run[field], "{query}: {field}");
        }
        assert_eq!(got["replay"]["w_end_identical"], json!(true));
        // The halved-step estimate is about the integrator's error (the
        // identity's residual is of the same origin): not zero, not large.
        let e = got["replay"]["max_abs_coef_integral_error"]
            .as_f64()
            .unwrap();
        assert!(e > 0.0 && e < 1e-1, "{e}");
        assert_eq!(got["coef_integral_error"].as_array().unwrap().len(), 5);
    }
}

/// `--error-estimate none` replays once: the same K^p, A and kernel machine
/// as the default, bit for bit, and no *_error fields or halved-step
/// numbers; the summary says there is no estimate. A bad value is one
/// message naming the option, exit 2, nothing written.
#[test]
fn kernel_without_an_error_estimate_replays_once() {
    let dir = tempfile::tempdir().unwrap();
    let spec = sine(json!({"t_end": 1.0, "method": "dopri5", "rtol": 1e-6, "atol": 1e-8}));
    report(dir.path(), &spec, "json");
    std::fs::write(dir.path().join("q.json"), "[[0.5, -0.5], [0.1, 0.2]]").unwrap();
    let read = |name: &str, extra: &[&str]| -> (Value, String) {
        let k = dir.path().join(name);
        let mut args = vec!["--out", k.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = kernel(dir.path(), "q.json", &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = serde_json::from_str(&std::fs::read_to_string(&k).unwrap()).unwrap();
        (got, String::from_utf8(out.stdout).unwrap())
    };
    let (halved, halved_text) = read("h.json", &[]);
    let (explicit, _) = read("e.json", &["--error-estimate", "halved"]);
    let (none, none_text) = read("n.json", &["--error-estimate", "none"]);
    assert_eq!(halved, explicit);
    let estimate = [
        "path_kernel_error",
        "coef_integral_error",
        "kernel_machine_error",
    ];
    let replay_estimate = [
        "halved_rhs_evals",
        "max_abs_path_kernel_error",
        "max_abs_coef_integral_error",
        "max_abs_kernel_machine_error",
    ];
    for field in estimate {
        assert!(halved.get(field).is_some(), "{field}");
        assert!(none.get(field).is_none(), "{field}");
    }
    for field in replay_estimate {
        assert!(halved["replay"].get(field).is_some(), "{field}");
        assert!(none["replay"].get(field).is_none(), "{field}");
    }
    let (mut h, mut n) = (halved.clone(), none.clone());
    for v in [&mut h, &mut n] {
        let fields = v.as_object_mut().unwrap();
        for field in estimate.iter().chain(&["replay"]) {
            fields.remove(*field);
        }
    }
    assert_eq!(h, n, "the replay's own numbers depend on the estimate");
    assert_eq!(halved["replay"]["rhs_evals"], none["replay"]["rhs_evals"]);
    assert!(
        halved_text.contains("halved steps change them"),
        "{halved_text}"
    );
    assert!(none_text.contains("no error estimate"), "{none_text}");
    assert!(!none_text.contains("halved steps change"), "{none_text}");
    let bad = dir.path().join("bad.json");
    let out = kernel(
        dir.path(),
        "q.json",
        &[
            "--out",
            bad.to_str().unwrap(),
            "--error-estimate",
            "quarter",
        ],
    );
    // clap's usage error: exit 2, the option, the value and what is allowed.
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    for fragment in ["--error-estimate", "quarter", "halved", "none"] {
        assert!(err.contains(fragment), "`{fragment}` not in: {err}");
    }
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    assert!(!bad.exists());
}

/// On an sgd report the summary says what the replay did (reran the
/// batches and steps), not that an error control chose the steps.
#[test]
fn kernel_on_sgd_says_it_replayed_the_batches() {
    let dir = tempfile::tempdir().unwrap();
    let spec = sine(json!({"method": "sgd", "lr": 0.02, "steps": 6, "batch_size": 5}));
    report(dir.path(), &spec, "json");
    std::fs::write(dir.path().join("q.json"), "[[0.5, -0.5]]").unwrap();
    let out = kernel(dir.path(), "q.json", &[]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("replayed batches and steps eta_k"), "{text}");
    assert!(!text.contains("error control"), "{text}");
    assert!(!text.contains("halved steps change"), "{text}");
}

#[test]
fn kernel_reads_arrays_from_the_npz() {
    let dir = tempfile::tempdir().unwrap();
    // P = (2 + 1) 64 + (64 + 1) 64 + 64 + 1 = 4417 > 4096: w0 goes to the npz.
    let spec = json!({"seed": 3, "data": {"source": "synthetic", "function": "sine",
            "n_train": 6, "n_test": 3, "dim": 2},
        "model": {"arch": "mlp", "hidden": [64, 64], "activation": "tanh"},
        "loss": {"kind": "squared"}, "reduction": "mean",
        "flow": {"t_end": 0.2, "method": "rk4", "step": 0.1}});
    let run = report(dir.path(), &spec, "npz");
    assert_eq!(run["w0"], json!({"npz": "w0"}));
    std::fs::write(dir.path().join("q.json"), "[[0.1, 0.2], [0.3, -0.4]]").unwrap();
    let k = dir.path().join("k.json");
    let out = kernel(
        dir.path(),
        "q.json",
        &["--out", k.to_str().unwrap(), "--arrays", "npz"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_str(&std::fs::read_to_string(&k).unwrap()).unwrap();
    assert_eq!(got["replay"]["w_end_identical"], json!(true));
    assert_eq!(got["w_end"], json!({"npz": "w_end"}));
    assert!(dir.path().join("k.npz").exists());
}

#[test]
fn bad_input_to_kernel_exits_2_with_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let spec = sine(json!({"t_end": 0.2, "method": "rk4", "step": 0.1}));
    let run = report(dir.path(), &spec, "json");
    let p = dir.path();
    std::fs::write(p.join("three.csv"), "1,2,3\n4,5,6\n").unwrap();
    assert_fails(
        &kernel(p, "three.csv", &[]),
        2,
        &["three.csv:1", "expected 2"],
    );
    std::fs::write(p.join("rows.json"), "[[1, 2], [3]]").unwrap();
    assert_fails(
        &kernel(p, "rows.json", &[]),
        2,
        &["rows.json: row 2", "expected 2"],
    );
    std::fs::write(p.join("empty.csv"), "").unwrap();
    assert_fails(
        &kernel(p, "empty.csv", &[]),
        2,
        &["empty.csv", "no data rows"],
    );
    std::fs::write(p.join("empty.json"), "[]").unwrap();
    assert_fails(
        &kernel(p, "empty.json", &[]),
        2,
        &["empty.json", "no query points"],
    );
    std::fs::write(p.join("text.json"), "[[1, \"a\"]]").unwrap();
    assert_fails(&kernel(p, "text.json", &[]), 2, &["text.json: row 1"]);
    let q = p.join("rows.json");
    std::fs::write(&q, "[[0.5, 0.5]]").unwrap();
    let edited = |edit: &dyn Fn(&mut Value), fragments: &[&str]| {
        let mut r = run.clone();
        edit(&mut r);
        let path = p.join("bad.json");
        std::fs::write(&path, r.to_string()).unwrap();
        let out = pathkernel(&[
            "kernel",
            path.to_str().unwrap(),
            "--query",
            q.to_str().unwrap(),
        ]);
        assert_fails(&out, 2, fragments);
    };
    edited(
        &|r| r["version"] = json!(2),
        &["bad.json: version", "another version"],
    );
    edited(
        &|r| {
            r.as_object_mut().unwrap().remove("step_sizes");
        },
        &["bad.json: step_sizes", "missing"],
    );
    edited(
        &|r| {
            r.as_object_mut().unwrap().remove("w0");
        },
        &["bad.json: w0", "missing"],
    );
    edited(
        &|r| r["train_x"] = json!("x"),
        &["bad.json: train_x", "rows of numbers"],
    );
    edited(
        &|r| r["step_sizes"][0] = json!(-1.0),
        &["bad.json: step_sizes", "positive"],
    );
    let missing = p.join("none.json");
    let out = pathkernel(&[
        "kernel",
        missing.to_str().unwrap(),
        "--query",
        q.to_str().unwrap(),
    ]);
    assert_fails(&out, 2, &["none.json", "cannot read the report"]);
    std::fs::write(p.join("w.json"), "{").unwrap();
    let out = pathkernel(&[
        "kernel",
        p.join("w.json").to_str().unwrap(),
        "--query",
        q.to_str().unwrap(),
    ]);
    assert_fails(&out, 2, &["w.json:", "not a JSON report"]);
}
