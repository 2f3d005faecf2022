//! Every loop is bounded (src/spec/bounds.rs): a step count over
//! `MAX_STEPS` is refused before any work, with exit 2 naming the field and
//! the limit; a run's summary says how long it took.
use crate::common::{assert_fails, entries};
use pathkernel::spec::{Format, MAX_STEPS, Spec};
use serde_json::{Value, json};
use std::process::Command;

fn spec_with(flow: Value) -> String {
    json!({
        "seed": 1,
        "data": {"source": "inline", "train_x": [[1.0], [2.0]], "train_y": [0.5, -1.0],
                 "test_x": [[-1.0]]},
        "model": {"arch": "linear"},
        "loss": {"kind": "squared"},
        "flow": flow
    })
    .to_string()
}

/// Runs the binary on `spec` (written to a temporary directory) with
/// `args` after the spec's path.
fn run(command: &str, spec: &str, args: &[&str]) -> (std::process::Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spec.json");
    std::fs::write(&path, spec).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pathkernel"))
        .arg(command)
        .arg(&path)
        .args(args)
        .output()
        .unwrap();
    (out, dir)
}

#[test]
fn a_step_count_over_the_limit_is_refused_before_any_work() {
    let limit = format!("{:e}", MAX_STEPS as f64);
    assert_eq!(limit, "1e11");
    let cases = [
        // The example: 1.8e21 gd steps ran for ever.
        (
            json!({"t_end": 18446744073709551616.0_f64, "method": "gd", "lr": 0.01}),
            "flow.lr",
        ),
        (
            json!({"t_end": 1.0, "method": "rk4", "step": 1e-12}),
            "flow.step",
        ),
        (
            json!({"t_end": 1.0, "method": "dopri5", "max_steps": 200_000_000_000u64}),
            "flow.max_steps",
        ),
    ];
    for (flow, field) in cases {
        let spec = spec_with(flow);
        let err = Spec::parse(&spec, Format::Json).unwrap_err();
        assert!(err.to_string().contains(field), "{err}");
        let (out, dir) = run("run", &spec, &["--out", "r.json"]);
        assert_fails(&out, 2, &[field, &limit, "steps"]);
        assert_eq!(entries(dir.path()).len(), 1, "only the spec");
    }
    // At the limit a spec is accepted (not run here: it is a day's work).
    let at = spec_with(json!({"t_end": 1e11, "method": "gd", "lr": 1.0}));
    Spec::parse(&at, Format::Json).unwrap();
    let over = spec_with(json!({"t_end": 1.000001e11, "method": "gd", "lr": 1.0}));
    assert!(Spec::parse(&over, Format::Json).is_err());
}

#[test]
fn converge_refuses_halvings_whose_last_run_is_over_the_limit() {
    // 10^6 steps doubled 17 times is 1.3e11 steps.
    let spec = spec_with(json!({"t_end": 1.0, "method": "gd", "lr": 1e-6}));
    let (out, _dir) = run("converge", &spec, &["--halvings", "17"]);
    assert_fails(&out, 2, &["--halvings", "1.31072e11", "1e11"]);
}

#[test]
fn the_summary_gives_wall_time_and_evaluations_per_second() {
    let spec = spec_with(json!({"t_end": 1.0, "method": "rk4", "step": 0.25}));
    let (out, _dir) = run("run", &spec, &[]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text.lines().nth(3).unwrap();
    assert!(line.starts_with("  wall time "), "{text}");
    let rate: f64 = line
        .split(", ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no rate in {line}"));
    // rk4, 4 steps: 16 evaluations in a positive time.
    assert!(rate > 0.0 && rate.is_finite(), "{line}");
    assert!(
        line.ends_with(" right-hand-side evaluations per second"),
        "{line}"
    );
    assert!(
        text.lines()
            .nth(2)
            .unwrap()
            .contains("16 right-hand-side evaluations")
    );
}

/// A step record that cannot fit is refused before any work, never an
/// allocation failure: sgd/adam's K is bounded by what its step sizes and
/// batches take (`MAX_OPTIMIZER_STEPS`, named as `flow.steps`, even far past
/// the general bound), and a gd run within the step bound whose K step
/// sizes exceed the memory limit is refused by the memory estimate.
#[test]
fn a_step_record_too_large_for_memory_is_refused() {
    use pathkernel::spec::MAX_OPTIMIZER_STEPS;
    let sgd = |steps: u64| json!({"method": "sgd", "lr": 0.1, "steps": steps});
    for steps in [MAX_OPTIMIZER_STEPS as u64 + 1, 2 * MAX_STEPS] {
        let (out, _dir) = run("run", &spec_with(sgd(steps)), &[]);
        assert_fails(&out, 2, &["flow.steps", &format!("found {steps}")]);
    }
    let gd = json!({"t_end": 1.0, "method": "gd", "lr": 1e-10});
    let (out, _dir) = run("run", &spec_with(gd), &[]);
    assert_fails(&out, 2, &["GiB of memory"]);
}
