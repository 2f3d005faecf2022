//! The report against an independent reference (tests/reference/pathkernel_ref.py):
//! plain Python written from SPEC.md alone, with hand-written backprop per
//! example, textbook Runge–Kutta coefficients and its own Gauss–Legendre
//! nodes. Each case runs the real binary on a small inline spec, then the
//! script on the report; the script recomputes every field of SPEC §5 at the
//! same method and step and fails on any difference above rounding, so a
//! convention error (layout, ntk scaling, a loss or its kink, the reduction,
//! the definitions of K^p, A, a, the counting of evaluations) cannot hide
//! behind tests written from the same understanding as the code.
//!
//! Together the cases cover every architecture, activation and loss, both
//! parameterizations, bias off, sum and mean, gd (with and without the exact
//! path kernel), heun, rk4, fixed-step dopri5 and dop853, structural zeros of
//! K^p (null a) and kinks met exactly at w0. python3 is required: its absence
//! fails the test rather than skipping it.
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

/// Four training points and three query points in D = 2; the query point at
/// the origin meets relu's kink at w0 (biases start at 0) and gives K^p = 0
/// for models without biases.
fn data(train_y: [f64; 4]) -> Value {
    json!({
        "source": "inline",
        "train_x": [[0.5, -0.2], [0.1, 0.9], [-0.7, 0.3], [0.3, 0.4]],
        "train_y": train_y,
        "test_x": [[0.2, -0.6], [0.0, 0.0], [-0.4, 0.8]],
    })
}

const REAL: [f64; 4] = [0.8, -0.5, 0.3, 1.2];
const SIGNS: [f64; 4] = [1.0, -1.0, 1.0, -1.0];
const BITS: [f64; 4] = [1.0, 0.0, 1.0, 0.0];

fn spec(train_y: [f64; 4], model: Value, loss: Value, reduction: &str, flow: Value) -> Value {
    json!({
        "seed": 3,
        "data": data(train_y),
        "model": model,
        "loss": loss,
        "reduction": reduction,
        "flow": flow,
    })
}

/// Runs the binary on `spec`, then the reference on the report; panics with
/// the reference's output on any disagreement.
#[track_caller]
fn agrees(spec: Value) {
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("spec.json");
    let report_path = dir.path().join("report.json");
    std::fs::write(&spec_path, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_pathkernel"))
        .arg("run")
        .arg(&spec_path)
        .arg("--out")
        .arg(&report_path)
        .output()
        .expect("the binary starts");
    assert!(
        run.status.success(),
        "pathkernel run failed on {spec}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/pathkernel_ref.py");
    let check = Command::new("python3")
        .arg(&script)
        .arg(&report_path)
        .arg("--spec")
        .arg(&spec_path)
        .output()
        .unwrap_or_else(|e| {
            panic!("python3 is required for the reference check and could not be started: {e}")
        });
    let out = String::from_utf8_lossy(&check.stdout);
    let err = String::from_utf8_lossy(&check.stderr);
    assert!(
        check.status.success(),
        "reference disagrees with the report (exit {:?}) for spec\n{}\n{out}{err}",
        check.status.code(),
        serde_json::to_string(&spec).unwrap()
    );
}

#[test]
fn linear_squared_gd_exact_path_kernel() {
    agrees(spec(
        REAL,
        json!({"arch": "linear"}),
        json!({"kind": "squared"}),
        "sum",
        json!({"t_end": 1.0, "method": "gd", "lr": 0.05, "exact_path_kernel": true}),
    ));
}

#[test]
fn mlp_tanh_squared_mean_rk4() {
    agrees(spec(
        REAL,
        json!({"arch": "mlp", "hidden": [3], "activation": "tanh"}),
        json!({"kind": "squared"}),
        "mean",
        json!({"t_end": 1.0, "method": "rk4", "step": 0.1}),
    ));
}

#[test]
fn mlp_sigmoid_ntk_logistic_heun() {
    agrees(spec(
        SIGNS,
        json!({"arch": "mlp", "hidden": [3, 2], "activation": "sigmoid", "parameterization": "ntk"}),
        json!({"kind": "logistic"}),
        "sum",
        json!({"t_end": 0.5, "method": "heun", "step": 0.05}),
    ));
}

#[test]
fn mlp_softplus_bce_mean_rk4() {
    agrees(spec(
        BITS,
        json!({"arch": "mlp", "hidden": [4], "activation": "softplus", "init_scale": 2.0}),
        json!({"kind": "bce"}),
        "mean",
        json!({"t_end": 1.0, "method": "rk4", "step": 0.125}),
    ));
}

#[test]
fn mlp_gelu_ntk_no_bias_exponential_heun() {
    agrees(spec(
        SIGNS,
        json!({"arch": "mlp", "hidden": [3], "activation": "gelu", "parameterization": "ntk", "bias": false}),
        json!({"kind": "exponential"}),
        "sum",
        json!({"t_end": 0.4, "method": "heun", "step": 0.05}),
    ));
}

/// delta 0.3 puts some points in each branch of the Huber loss.
#[test]
fn mlp_silu_huber_rk4() {
    agrees(spec(
        REAL,
        json!({"arch": "mlp", "hidden": [3], "activation": "silu"}),
        json!({"kind": "huber", "delta": 0.3}),
        "sum",
        json!({"t_end": 1.0, "method": "rk4", "step": 0.1}),
    ));
}

#[test]
fn mlp_sin_log_cosh_mean_gd_exact_path_kernel() {
    agrees(spec(
        REAL,
        json!({"arch": "mlp", "hidden": [2, 2], "activation": "sin"}),
        json!({"kind": "log_cosh"}),
        "mean",
        json!({"t_end": 1.0, "method": "gd", "lr": 0.1, "exact_path_kernel": true}),
    ));
}

/// The query point at the origin has every pre-activation exactly 0 at w0:
/// tangent_kernel0 there depends on relu'(0) = 0.
#[test]
fn mlp_relu_cauchy_rk4() {
    agrees(spec(
        REAL,
        json!({"arch": "mlp", "hidden": [4], "activation": "relu"}),
        json!({"kind": "cauchy", "c": 0.5}),
        "sum",
        json!({"t_end": 0.5, "method": "rk4", "step": 0.05}),
    ));
}

/// As above with leaky_relu'(0) = 0.01.
#[test]
fn mlp_leaky_relu_squared_hinge_ntk_gd() {
    agrees(spec(
        SIGNS,
        json!({"arch": "mlp", "hidden": [4], "activation": "leaky_relu", "parameterization": "ntk"}),
        json!({"kind": "squared_hinge"}),
        "sum",
        json!({"t_end": 0.5, "method": "gd", "lr": 0.05}),
    ));
}

/// w0 = 0 puts the first point (target 0) exactly on the kink of the
/// absolute loss at the first step, where the derivative is 0.
#[test]
fn linear_absolute_at_kink_gd() {
    let mut s = spec(
        [0.0, -0.5, 0.3, 1.2],
        json!({"arch": "linear"}),
        json!({"kind": "absolute"}),
        "sum",
        json!({"t_end": 0.5, "method": "gd", "lr": 0.05}),
    );
    s["init"] = json!({"w0": [0.0, 0.0, 0.0]});
    agrees(s);
}

/// f(w0) = 1 everywhere: the points with target +1 sit exactly at y* y = 1,
/// where the hinge's derivative is 0.
#[test]
fn linear_hinge_at_kink_rk4() {
    let mut s = spec(
        SIGNS,
        json!({"arch": "linear"}),
        json!({"kind": "hinge"}),
        "mean",
        json!({"t_end": 0.5, "method": "rk4", "step": 0.1}),
    );
    s["init"] = json!({"w0": [0.0, 0.0, 1.0]});
    agrees(s);
}

#[test]
fn resmlp_tanh_squared_hinge_rk4() {
    agrees(spec(
        SIGNS,
        json!({"arch": "resmlp", "width": 2, "blocks": 2, "activation": "tanh"}),
        json!({"kind": "squared_hinge"}),
        "sum",
        json!({"t_end": 0.5, "method": "rk4", "step": 0.1}),
    ));
}

/// resmlp with its default activation, fixed-step dopri5.
#[test]
fn resmlp_default_activation_squared_dopri5_fixed_step() {
    agrees(spec(
        REAL,
        json!({"arch": "resmlp", "width": 3, "blocks": 1}),
        json!({"kind": "squared"}),
        "mean",
        json!({"t_end": 1.0, "method": "dopri5", "step": 0.25}),
    ));
}

/// K^g vanishes at the origin for diag_linear: a is null there.
#[test]
fn diag_linear_squared_dop853_fixed_step() {
    agrees(spec(
        REAL,
        json!({"arch": "diag_linear", "init_scale": 0.5}),
        json!({"kind": "squared"}),
        "sum",
        json!({"t_end": 1.0, "method": "dop853", "step": 0.25}),
    ));
}

/// A deep linear network (identity, no biases): null a at the origin.
#[test]
fn deep_linear_squared_mean_heun() {
    agrees(spec(
        REAL,
        json!({"arch": "mlp", "hidden": [3, 2], "activation": "identity", "bias": false}),
        json!({"kind": "squared"}),
        "mean",
        json!({"t_end": 1.0, "method": "heun", "step": 0.1}),
    ));
}

/// hidden: [] is the linear model, here under the ntk scaling.
#[test]
fn mlp_no_hidden_ntk_squared_gd() {
    agrees(spec(
        REAL,
        json!({"arch": "mlp", "hidden": [], "activation": "tanh", "parameterization": "ntk"}),
        json!({"kind": "squared"}),
        "sum",
        json!({"t_end": 1.0, "method": "gd", "lr": 0.1}),
    ));
}

/// An adaptive run: the path is the tool's, so the reference checks what
/// w0 and w_end determine (outputs, losses, tangent kernels, a, the kernel
/// machine and residual from the reported integrals).
#[test]
fn mlp_tanh_squared_adaptive_dopri5() {
    agrees(spec(
        REAL,
        json!({"arch": "mlp", "hidden": [3], "activation": "tanh"}),
        json!({"kind": "squared"}),
        "sum",
        json!({"t_end": 1.0, "method": "dopri5", "rtol": 1e-9, "atol": 1e-12}),
    ));
}
