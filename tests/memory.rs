//! The memory estimate (src/spec/memory.rs) against hand counts: every term
//! of SPEC's augmented state, the tapes, the optimizers' buffers, the steps'
//! record and the report, each in a case where it decides the peak. The
//! sizes are small integers, so every sum below is exact in f64.
use pathkernel::spec::{Format, GIB, MemoryEstimate, Spec};
use serde_json::{Value, json};

/// D = 2 inputs, N = 4 training and M = 2 query points (M N = 8).
const D: usize = 2;
const N: usize = 4;
const M: usize = 2;
/// The data as resolved and stacked: 2 (N + M)(D + 1) numbers.
const DATA: f64 = 2.0 * 6.0 * 3.0;

fn spec(model: Value, flow: Value) -> Spec {
    let v = json!({
        "seed": 1,
        "data": {"source": "synthetic", "function": "sine", "n_train": N, "n_test": M, "dim": D},
        "model": model,
        "loss": {"kind": "squared"},
        "reduction": "sum",
        "flow": flow,
    });
    Spec::parse(&v.to_string(), Format::Json).unwrap()
}

fn estimate(model: Value, flow: Value) -> MemoryEstimate {
    spec(model, flow).memory_estimate(D, N, M)
}

fn mlp(c: usize) -> Value {
    json!({"arch": "mlp", "hidden": [3], "activation": "tanh", "outputs": c})
}

fn dopri5() -> Value {
    json!({"t_end": 1.0, "method": "dopri5"})
}

/// mlp 2 → [3] → 1 under dopri5, where the integration outweighs the report.
#[test]
fn an_adaptive_mlp_run_is_counted_term_by_term() {
    // P = (2·3 + 3) + (3·1 + 1) = 13; state P + 2 M N = 29; 7 stages + 3.
    let e = estimate(mlp(1), dopri5());
    assert_eq!((e.state, e.copies), (29.0, 10.0));
    // Per tape row: D + 2C + (2 + 2C)·3 = 16; gradient buffers 3 + C = 4.
    // Run: 10·29 + 6·16 + 4·4 + 3·8 = 426. Report: 4·8 + 13 + 7·8 +
    // (6·8 + 2·13)·28/8 = 360, smaller. The data add 36.
    assert_eq!(e.bytes, 8.0 * (DATA + 426.0));
    // The part that grows with P: 10 copies of P and the tapes, 10·13 + 6·16.
    assert_eq!(e.model_bytes, 8.0 * 226.0);
}

/// A linear model under heun: few copies, so the report (and with it the
/// steps' record) decides the peak.
#[test]
fn the_report_decides_when_the_state_is_small() {
    // P = 3, state 19, 2 stages + 3; K = t_end / h = 2 steps.
    let e = estimate(
        json!({"arch": "linear"}),
        json!({"t_end": 1.0, "method": "heun", "step": 0.5}),
    );
    assert_eq!((e.state, e.copies), (19.0, 5.0));
    // Run: 5·19 + 6·(D + 2) + 4·1 + 3·8 = 147, plus the record K = 2.
    // Report: 4·8 + 3 + 7·8 + (6·8 + 2·3)·3.5 + 2·(1 + 3.5) = 289.
    assert_eq!(e.bytes, 8.0 * (DATA + 289.0));
    assert_eq!(e.model_bytes, 8.0 * (5.0 * 3.0 + 6.0 * 4.0));
}

/// gd holds the second-order term's Taylor tape, and `exact_path_kernel`
/// a query tape, the point on the segment and three accumulators.
#[test]
fn gd_with_the_exact_path_kernel_adds_its_tapes() {
    let e = estimate(
        mlp(1),
        json!({"t_end": 1.0, "method": "gd", "lr": 0.5, "exact_path_kernel": true}),
    );
    assert_eq!((e.state, e.copies), (29.0, 4.0));
    // 4·29 + 6·16 + 4·4 + 3·8 = 252; exact: 2·16 + 13 + 3·8 = 69;
    // Taylor tape: 3·2·16 + 13 = 109; record K = 2: 252 + 69 + 109 + 2.
    assert_eq!(e.bytes, 8.0 * (DATA + 432.0));
    // Without it the run's 252 + 109 + 2 = 363 falls below the report's
    // 360 + 2·(1 + 3.5) = 369.
    let plain = estimate(mlp(1), json!({"t_end": 1.0, "method": "gd", "lr": 0.5}));
    assert_eq!(plain.bytes, 8.0 * (DATA + 369.0));
}

/// sgd and adam (no tableau: 16 + 3 copies): the query tapes, the two
/// Jacobians and the segment factors; momentum's and Adam's buffers; the
/// batches' indices in the record.
#[test]
fn optimizer_buffers_follow_momentum_adam_and_the_batches() {
    let sgd = |extra: Value| {
        let mut flow = json!({"method": "sgd", "lr": 0.1, "steps": 3});
        for (k, v) in extra.as_object().unwrap() {
            flow[k] = v.clone();
        }
        estimate(mlp(1), flow)
    };
    // 19·29 + 6·16 + 4·4 + 3·8 = 687; + 2·16 + 8·2·16 + 2·13·2 + 3·8 = 364.
    let base = 687.0 + 364.0;
    // Record K (1 + batch): 3·(1 + 2) with batches of 2, 3·(1 + N) without.
    let plain = sgd(json!({"batch_size": 2}));
    assert_eq!(plain.copies, 19.0);
    assert_eq!(plain.bytes, 8.0 * (DATA + base + 9.0));
    assert_eq!(sgd(json!({})).bytes, 8.0 * (DATA + base + 15.0));
    // Momentum 0 keeps no buffers; momentum 0.9 keeps 2 P N + 2 P M C +
    // 6 M N C (the buffers and batch gradients, the deferred sums' running
    // (M C) x P matrices and their (M C) x N parts): 104 + 52 + 48 = 204.
    let zero = sgd(json!({"batch_size": 2, "momentum": 0.0}));
    assert_eq!(zero.bytes, plain.bytes);
    let momentum = sgd(json!({"batch_size": 2, "momentum": 0.9}));
    assert_eq!(momentum.bytes, 8.0 * (DATA + base + 204.0 + 9.0));
    // Adam: those buffers, and P N C + 2 P M C = 52 + 52.
    let adam = estimate(
        mlp(1),
        json!({"method": "adam", "lr": 0.01, "steps": 3, "batch_size": 2}),
    );
    assert_eq!(adam.bytes, 8.0 * (DATA + base + 204.0 + 104.0 + 9.0));
}

/// Two outputs: K^p holds C² = 4 numbers a pair, A holds 2; each δ holds
/// C rows an example, and the optimizers' Jacobians have M C columns.
#[test]
fn two_outputs_count_c_squared_kernels_and_c_rows() {
    // P = (2·3 + 3) + (3·2 + 2) = 17; state 17 + 4·8 + 2·8 = 65.
    let e = estimate(mlp(2), dopri5());
    assert_eq!(e.state, 65.0);
    // Tape row D + 2C + (2 + 2C)·3 = 24, buffers 3 + 2 = 5:
    // 10·65 + 6·24 + 4·5 + 3·8 = 838 (the report's 392 is smaller).
    assert_eq!(e.bytes, 8.0 * (DATA + 838.0));
    // Adam: 19·65 + 144 + 20 + 24 = 1423; + 2·24 + 8·2·2·24 + 2·17·2·2
    // + 3·8·2 = 1000; + 2·17·4 + 2·17·2·2 + 6·8·2 = 368; + 17·4·2 +
    // 2·17·2·2 = 272;
    // record 3·(1 + 2) = 9.
    let adam = estimate(
        mlp(2),
        json!({"method": "adam", "lr": 0.01, "steps": 3, "batch_size": 2}),
    );
    assert_eq!(
        adam.bytes,
        8.0 * (DATA + 1423.0 + 1000.0 + 368.0 + 272.0 + 9.0)
    );
}

/// The tapes of the other architectures, per row and per training row.
#[test]
fn each_architecture_has_its_tape() {
    let verner98 = json!({"t_end": 1.0, "method": "verner98"});
    // linear, C = 2: P = 6, state 54, 19 copies; row D + 2C = 6, buffers C.
    // 19·54 + 6·6 + 4·2 + 24 = 1094 (report 304).
    let e = estimate(json!({"arch": "linear", "outputs": 2}), verner98.clone());
    assert_eq!((e.state, e.copies), (54.0, 19.0));
    assert_eq!(e.bytes, 8.0 * (DATA + 1094.0));
    // resmlp width 3, 2 blocks (5 layers), D = 2: P = 61, state 77;
    // row D + 2C + (5(1 + C) + 4)·3 = 46, buffers 5·3 + C = 16:
    // 10·77 + 6·46 + 4·16 + 24 = 1134 (report 744).
    let resmlp = |c: usize| json!({"arch": "resmlp", "width": 3, "blocks": 2, "outputs": c});
    let e = estimate(resmlp(1), dopri5());
    assert_eq!(e.bytes, 8.0 * (DATA + 1134.0));
    assert_eq!(e.model_bytes, 8.0 * (10.0 * 61.0 + 6.0 * 46.0));
    // C = 2: P = 65, state 113; row 6 + 19·3 = 63, buffers 17:
    // 1130 + 378 + 68 + 24 = 1600.
    assert_eq!(estimate(resmlp(2), dopri5()).bytes, 8.0 * (DATA + 1600.0));
    // diag_linear: P = 2D = 4, state 20; row 3D + 1 = 7, no buffers:
    // 19·20 + 6·7 + 0 + 24 = 446 (report 288).
    let e = estimate(json!({"arch": "diag_linear"}), verner98);
    assert_eq!(e.bytes, 8.0 * (DATA + 446.0));
}

/// The refusal names the estimate in MiB below a GiB, the state and the
/// copies; the limit is in GiB of 2^30 bytes.
#[test]
fn a_refusal_reads_the_estimate_in_mib_and_the_limit_in_gib() {
    assert_eq!(GIB, 1_073_741_824.0);
    let s = spec(mlp(1), dopri5());
    // 3696 bytes = 0.0035 MiB.
    let error = s.check_size(D, N, M, 1e-9).unwrap_err();
    for fragment in [
        "an estimated 0.004 MiB of memory",
        "= 29 numbers, 10 copies",
        "at most 0.000000001 GiB",
        "raise the limit",
    ] {
        assert!(error.problem.contains(fragment), "{fragment}: {error}");
    }
    // Exactly the estimate passes.
    s.check_size(D, N, M, 3696.0 / GIB).unwrap();
}
