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
pub(crate) fn agrees(spec: Value) {
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

// ---------------------------------------------------------------------------
// SPEC §8: C > 1 outputs ("model.outputs"), N x C real targets (each loss per
// component, summed over c) and cross_entropy on integer labels. The reference
// recomputes every field with the C x C blocks ([m][i][c][c'], c the query
// point's output, c' the training point's), a = K^p^{-1} A per block (null
// where the block's 1-norm reciprocal condition number is below 1e-12), and
// n_outputs = C. Two hidden layers or a resmlp make the blocks non-symmetric,
// so that a transposed block (c and c' swapped) cannot pass.

/// The same points as `data`, with any `train_y` (rows of C reals, or labels).
fn data_v(train_y: Value) -> Value {
    let mut d = data([0.0; 4]);
    d["train_y"] = train_y;
    d
}

fn spec_v(train_y: Value, model: Value, loss: Value, reduction: &str, flow: Value) -> Value {
    let mut s = spec([0.0; 4], model, loss, reduction, flow);
    s["data"] = data_v(train_y);
    s
}

fn real2() -> Value {
    json!([[0.8, -0.3], [-0.5, 0.6], [0.3, 0.1], [1.2, -0.9]])
}

fn real3() -> Value {
    json!([
        [0.8, -0.3, 0.1],
        [-0.5, 0.6, 0.2],
        [0.3, 0.1, -0.7],
        [1.2, -0.9, 0.4]
    ])
}

fn signs2() -> Value {
    json!([[1.0, -1.0], [-1.0, 1.0], [1.0, 1.0], [-1.0, -1.0]])
}

fn signs3() -> Value {
    json!([
        [1.0, -1.0, 1.0],
        [-1.0, 1.0, 1.0],
        [1.0, 1.0, -1.0],
        [-1.0, -1.0, -1.0]
    ])
}

fn labels2() -> Value {
    json!([0, 1, 1, 0])
}

fn labels3() -> Value {
    json!([0, 2, 1, 2])
}

#[test]
fn vector_linear_c2_squared_gd_exact_path_kernel() {
    agrees(spec_v(
        real2(),
        json!({"arch": "linear", "outputs": 2}),
        json!({"kind": "squared"}),
        "sum",
        json!({"t_end": 1.0, "method": "gd", "lr": 0.05, "exact_path_kernel": true}),
    ));
}

#[test]
fn vector_linear_c3_cross_entropy_mean_rk4() {
    agrees(spec_v(
        labels3(),
        json!({"arch": "linear", "outputs": 3}),
        json!({"kind": "cross_entropy"}),
        "mean",
        json!({"t_end": 1.0, "method": "rk4", "step": 0.1}),
    ));
}

#[test]
fn vector_mlp_tanh_c3_cross_entropy_sum_rk4() {
    agrees(spec_v(
        labels3(),
        json!({"arch": "mlp", "hidden": [3, 2], "activation": "tanh", "outputs": 3}),
        json!({"kind": "cross_entropy"}),
        "sum",
        json!({"t_end": 0.5, "method": "rk4", "step": 0.05}),
    ));
}

/// The query point at the origin meets relu's kink at w0 (relu'(0) = 0).
#[test]
fn vector_mlp_relu_c2_squared_mean_heun() {
    agrees(spec_v(
        real2(),
        json!({"arch": "mlp", "hidden": [4], "activation": "relu", "outputs": 2}),
        json!({"kind": "squared"}),
        "mean",
        json!({"t_end": 1.0, "method": "heun", "step": 0.1}),
    ));
}

/// A margin loss per component: hinge on N x 2 targets of ±1.
#[test]
fn vector_mlp_sigmoid_ntk_c2_hinge_rk4() {
    agrees(spec_v(
        signs2(),
        json!({"arch": "mlp", "hidden": [3, 2], "activation": "sigmoid", "parameterization": "ntk", "outputs": 2}),
        json!({"kind": "hinge"}),
        "sum",
        json!({"t_end": 0.5, "method": "rk4", "step": 0.1}),
    ));
}

/// Without biases every gradient vanishes at the origin: the whole 3 x 3
/// block of K^p is zero there and a[1][i] is null.
#[test]
fn vector_mlp_tanh_no_bias_c3_squared_heun() {
    agrees(spec_v(
        real3(),
        json!({"arch": "mlp", "hidden": [3, 2], "activation": "tanh", "bias": false, "outputs": 3}),
        json!({"kind": "squared"}),
        "sum",
        json!({"t_end": 0.5, "method": "heun", "step": 0.05}),
    ));
}

#[test]
fn vector_resmlp_c3_cross_entropy_mean_dopri5_fixed_step() {
    agrees(spec_v(
        labels3(),
        json!({"arch": "resmlp", "width": 2, "blocks": 2, "activation": "tanh", "outputs": 3}),
        json!({"kind": "cross_entropy"}),
        "mean",
        json!({"t_end": 1.0, "method": "dopri5", "step": 0.25}),
    ));
}

/// resmlp with its default activation, N x 2 real targets.
#[test]
fn vector_resmlp_default_activation_c2_squared_rk4() {
    agrees(spec_v(
        real2(),
        json!({"arch": "resmlp", "width": 3, "blocks": 1, "outputs": 2}),
        json!({"kind": "squared"}),
        "sum",
        json!({"t_end": 0.5, "method": "rk4", "step": 0.1}),
    ));
}

#[test]
fn vector_mlp_gelu_c2_cross_entropy_mean_gd_exact_path_kernel() {
    agrees(spec_v(
        labels2(),
        json!({"arch": "mlp", "hidden": [3, 2], "activation": "gelu", "outputs": 2}),
        json!({"kind": "cross_entropy"}),
        "mean",
        json!({"t_end": 1.0, "method": "gd", "lr": 0.1, "exact_path_kernel": true}),
    ));
}

/// The logistic loss per component on N x 3 targets of ±1; leaky_relu meets
/// its kink at the origin (derivative 0.01).
#[test]
fn vector_mlp_leaky_relu_ntk_c3_logistic_gd() {
    agrees(spec_v(
        signs3(),
        json!({"arch": "mlp", "hidden": [4], "activation": "leaky_relu", "parameterization": "ntk", "outputs": 3}),
        json!({"kind": "logistic"}),
        "sum",
        json!({"t_end": 0.5, "method": "gd", "lr": 0.05}),
    ));
}

/// hidden: [] with C outputs is the C-output linear model (ntk scaling).
#[test]
fn vector_mlp_no_hidden_ntk_c2_cross_entropy_heun() {
    agrees(spec_v(
        labels2(),
        json!({"arch": "mlp", "hidden": [], "activation": "tanh", "parameterization": "ntk", "outputs": 2}),
        json!({"kind": "cross_entropy"}),
        "sum",
        json!({"t_end": 1.0, "method": "heun", "step": 0.1}),
    ));
}

/// Logits of about ±2500: the softmax saturates, the loss is in the
/// thousands and everything stays finite (SPEC §8: no spurious overflow).
#[test]
fn vector_linear_c2_cross_entropy_far_logits_gd() {
    let mut s = spec_v(
        json!([1, 0, 1, 0]),
        json!({"arch": "linear", "outputs": 2}),
        json!({"kind": "cross_entropy"}),
        "sum",
        json!({"t_end": 0.5, "method": "gd", "lr": 0.05, "exact_path_kernel": true}),
    );
    s["init"] = json!({"w0": [5000.0, 0.0, -5000.0, 0.0, 0.0, 0.0]});
    agrees(s);
}

/// An adaptive run with C = 2: the path is the tool's, so the reference
/// checks what w0 and w_end determine.
#[test]
fn vector_mlp_tanh_c2_cross_entropy_adaptive_dopri5() {
    agrees(spec_v(
        labels2(),
        json!({"arch": "mlp", "hidden": [3, 2], "activation": "tanh", "outputs": 2}),
        json!({"kind": "cross_entropy"}),
        "sum",
        json!({"t_end": 1.0, "method": "dopri5", "rtol": 1e-9, "atol": 1e-12}),
    ));
}

/// "outputs": 1 written out is the scalar model: the shapes of §5, and
/// n_outputs / model.outputs either absent or 1.
#[test]
fn vector_explicit_one_output_is_scalar_rk4() {
    agrees(spec(
        REAL,
        json!({"arch": "mlp", "hidden": [3], "activation": "tanh", "outputs": 1}),
        json!({"kind": "squared"}),
        "sum",
        json!({"t_end": 1.0, "method": "rk4", "step": 0.1}),
    ));
}

/// The reference's own self-consistency checks (tests/reference/test_ref_self.py):
/// its vector code against finite differences, closed forms and its scalar
/// code. (`python3 test_ref_self.py --mutants` also plants bugs in a copy of
/// the script and requires each to be caught; too slow to run here.)
#[test]
fn reference_script_self_test() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/test_ref_self.py");
    let out = Command::new("python3")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("python3 is required for the reference self-test: {e}"));
    assert!(
        out.status.success(),
        "the reference's self-test fails:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------- SPEC §9
// sgd and adam against the reference's own loop (per-point buffers for
// every point, P_k elementwise, gbar by Gauss–Legendre): every option of
// §9 in at least one case; w_end to 1e-12 relative.

#[test]
fn sgd_nesterov_coupled_decay_cosine_warmup_epochs() {
    agrees(spec(
        REAL,
        json!({"arch": "mlp", "hidden": [3], "activation": "tanh"}),
        json!({"kind": "squared"}),
        "mean",
        json!({"method": "sgd", "lr": 0.2, "steps": 9, "batch_size": 3, "momentum": 0.8,
               "nesterov": true, "weight_decay": 0.05,
               "schedule": {"kind": "cosine", "final_lr": 0.02, "warmup_steps": 3}}),
    ));
}

#[test]
fn sgd_plain_decoupled_decay_step_schedule_replacement() {
    agrees(spec(
        SIGNS,
        json!({"arch": "mlp", "hidden": [3], "activation": "softplus"}),
        json!({"kind": "logistic"}),
        "sum",
        json!({"method": "sgd", "lr": 0.1, "steps": 7, "batch_size": 2, "shuffle": "replacement",
               "weight_decay": 0.1, "decoupled": true,
               "schedule": {"kind": "step", "step_size": 3, "gamma": 0.5}}),
    ));
}

#[test]
fn sgd_momentum_resmlp_in_order() {
    agrees(spec(
        REAL,
        json!({"arch": "resmlp", "width": 3, "blocks": 1}),
        json!({"kind": "huber", "delta": 0.5}),
        "mean",
        json!({"method": "sgd", "lr": 0.1, "steps": 6, "batch_size": 3, "shuffle": "none",
               "momentum": 0.9}),
    ));
}

#[test]
fn adamw_explicit_batches_with_a_repeated_index() {
    agrees(spec(
        REAL,
        json!({"arch": "mlp", "hidden": [3], "activation": "sin"}),
        json!({"kind": "squared"}),
        "mean",
        json!({"method": "adam", "lr": 0.05, "batches": [[0, 0, 2], [1, 3], [3], [2, 1, 0, 3]],
               "weight_decay": 0.1}),
    ));
}

#[test]
fn adam_coupled_decay_diag_linear_sum() {
    agrees(spec(
        REAL,
        json!({"arch": "diag_linear", "init_scale": 0.5}),
        json!({"kind": "log_cosh"}),
        "sum",
        json!({"method": "adam", "lr": 0.02, "steps": 8, "batch_size": 2, "beta1": 0.5,
               "beta2": 0.9, "eps": 1e-6, "weight_decay": 0.2, "decoupled": false}),
    ));
}

#[test]
fn vector_adam_c2_cross_entropy_and_vector_sgd_momentum() {
    agrees(spec(
        BITS,
        json!({"arch": "mlp", "hidden": [3], "activation": "tanh", "outputs": 2}),
        json!({"kind": "cross_entropy"}),
        "mean",
        json!({"method": "adam", "lr": 0.05, "steps": 6, "batch_size": 3,
               "schedule": {"kind": "cosine"}}),
    ));
    agrees(spec(
        BITS,
        json!({"arch": "linear", "outputs": 2}),
        json!({"kind": "cross_entropy"}),
        "sum",
        json!({"method": "sgd", "lr": 0.1, "steps": 5, "batch_size": 2, "momentum": 0.5,
               "weight_decay": 0.01}),
    ));
}
