//! `pathkernel learn` (SPEC §13) against an independent reference
//! (tests/reference/ref_learn.py, beside pathkernel_ref.py): plain Python
//! written from SPEC.md alone. It recomputes the training and query rows'
//! K^p, A and K^g by integrating the run with those points as queries (the
//! flow never reads them), fits kernel ridge regression by Gauss–Jordan
//! with brute-force leave-one-out (N refits per ridge, no eigendecomposition
//! formula) over the grid README.md states, a* by its least-squares formula,
//! and every predictor's test error and distance from the network.
//!
//! Tolerance: 1e-10 of each field's largest magnitude (the reference's REL).
//! The kernels differ by rounding only (same steps, same w0); the cases'
//! targets are noisy or off the model's reach, so the chosen ridges are at
//! least 1e-4 s_max (observed: 1e-4, 3.2e-4 and 10 s_max) and (K + λ I),
//! of condition number at most 1 + s_max/λ, amplifies that rounding by at
//! most 1e4, to about 1e-12 (see ref_learn.py's docstring). A wrong LOO
//! formula, grid, symmetrisation or a* moves a field by far more.
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

/// Six training points and three query points in D = 2, with targets.
fn spec(train_y: Value, test_y: Value, model: Value, loss: &str, flow: Value) -> Value {
    json!({
        "seed": 3,
        "data": {
            "source": "inline",
            "train_x": [[0.5, -0.2], [0.1, 0.9], [-0.7, 0.3], [0.3, 0.4], [-0.2, -0.8], [0.9, 0.1]],
            "train_y": train_y,
            "test_x": [[0.2, -0.6], [0.0, 0.0], [-0.4, 0.8]],
            "test_y": test_y,
        },
        "model": model,
        "loss": { "kind": loss },
        "reduction": "sum",
        "flow": flow,
    })
}

/// Runs the binary's `run` and `learn` on `spec`, then the reference on
/// both files; panics with the reference's output on any disagreement.
#[track_caller]
fn agrees(spec: Value) {
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("spec.json");
    let report = dir.path().join("report.json");
    let learned = dir.path().join("learn.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let bin = env!("CARGO_BIN_EXE_pathkernel");
    for args in [
        vec![
            "run",
            spec_path.to_str().unwrap(),
            "--out",
            report.to_str().unwrap(),
        ],
        vec![
            "learn",
            report.to_str().unwrap(),
            "--out",
            learned.to_str().unwrap(),
        ],
    ] {
        let out = Command::new(bin).args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/ref_learn.py");
    let check = Command::new("python3")
        .arg(&script)
        .arg(&report)
        .arg(&learned)
        .output()
        .unwrap_or_else(|e| panic!("python3 is required for the reference check: {e}"));
    assert!(
        check.status.success(),
        "reference disagrees with learn for spec\n{spec}\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn mlp_tanh_squared_rk4() {
    agrees(spec(
        json!([0.8, -0.5, 0.3, 1.2, -0.9, 0.1]),
        json!([0.4, 0.0, -0.3]),
        json!({"arch": "mlp", "hidden": [4], "activation": "tanh"}),
        "squared",
        json!({"t_end": 1.0, "method": "rk4", "step": 0.1}),
    ));
}

/// Targets near a smooth function of x (x0 - x1 plus a little noise), so
/// that leave-one-out picks a ridge inside the grid.
#[test]
fn mlp_softplus_ntk_squared_heun_interior_ridge() {
    agrees(spec(
        json!([0.72, -0.78, -1.02, -0.12, 0.61, 0.83]),
        json!([0.79, 0.02, -1.18]),
        json!({"arch": "mlp", "hidden": [8], "activation": "softplus", "parameterization": "ntk"}),
        "squared",
        json!({"t_end": 2.0, "method": "heun", "step": 0.1}),
    ));
}

/// Labels -1/+1 under the logistic loss: accuracies by sign.
#[test]
fn mlp_sigmoid_logistic_gd_accuracy() {
    agrees(spec(
        json!([1, -1, -1, 1, 1, 1]),
        json!([1, 1, -1]),
        json!({"arch": "mlp", "hidden": [3, 2], "activation": "sigmoid"}),
        "logistic",
        json!({"t_end": 1.0, "method": "gd", "lr": 0.05}),
    ));
}

/// A linear model: K^p = T K^g (a kernel of rank D + 1 = 3 < N = 6, so the
/// small ridges are singular-ish and leave-one-out must avoid them).
#[test]
fn linear_huber_rk4_low_rank_kernel() {
    agrees(spec(
        json!([0.8, -0.5, 0.3, 1.2, -0.9, 0.1]),
        json!([0.4, 0.0, -0.3]),
        json!({"arch": "linear"}),
        "huber",
        json!({"t_end": 1.0, "method": "rk4", "step": 0.25}),
    ));
}
