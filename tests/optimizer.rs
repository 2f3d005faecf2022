//! The discrete optimizers of SPEC §9 (proofs.md §9): updates against steps
//! computed by hand, sgd with its defaults against gd, the linear model's
//! two decompositions, batches and schedules, bad input, and properties:
//! the exact decomposition closes to its rounding floor (C33), and the
//! Domingos residual falls at order 1 and the second-order one at order 2
//! under `converge`'s refinement (C34 for plain sgd, C57 with memory).
use crate::common::assert_fails;
use pathkernel::data::Dataset;
use pathkernel::experiment::{Experiment, Outcome};
use pathkernel::spec::{Format, Spec};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

const EPS: f64 = f64::EPSILON;

/// f = v x + c on x = (1, 2) with targets (0, 1), w0 = (v, c) = (1, 0),
/// squared loss summed: grad L = Σ_i (f(x_i) − y_i) (x_i, 1); query x = 0.5.
fn line(flow: Value) -> Value {
    json!({
        "seed": 1,
        "data": {"source": "inline", "train_x": [[1.0], [2.0]], "train_y": [0.0, 1.0], "test_x": [[0.5]]},
        "model": {"arch": "linear"},
        "init": {"w0": [1.0, 0.0]},
        "loss": {"kind": "squared"},
        "reduction": "sum",
        "flow": flow,
    })
}

pub(crate) fn run(spec: &Value) -> (Experiment, Outcome) {
    let (exp, out) = try_run(spec);
    (exp, out.expect("the run succeeds"))
}

/// The run of `spec`, which may diverge (an unstable drawn learning rate).
fn try_run(spec: &Value) -> (Experiment, Result<Outcome, pathkernel::error::RunError>) {
    let spec = Spec::parse(&spec.to_string(), Format::Json).expect("a valid spec");
    let data = Dataset::resolve(&spec, Path::new(".")).expect("inline data");
    let exp = Experiment::new(spec, data);
    let out = exp.run(&mut |_| {});
    (exp, out)
}

#[track_caller]
fn close(got: &[f64], want: &[f64], rel: f64) {
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= rel * scale, "got {got:?}, want {want:?}");
    }
}

// Hand computation on `line`: step 0 at w = (1, 0) has f = (1, 2), l' = (1, 1),
// g = (1·1 + 1·2, 1 + 1) = (3, 2).

#[test]
fn sgd_momentum_three_steps_by_hand() {
    // buf0 = (3, 2), w1 = (0.7, −0.2); f = (0.5, 1.2), l' = (0.5, 0.2),
    // g = (0.9, 0.7), buf1 = 0.5 (3, 2) + g = (2.4, 1.7), w2 = (0.46, −0.37);
    // f = (0.09, 0.55), l' = (0.09, −0.45), g = (−0.81, −0.36),
    // buf2 = (0.39, 0.49), w3 = (0.421, −0.419).
    let (_, out) = run(&line(
        json!({"method": "sgd", "lr": 0.1, "steps": 3, "momentum": 0.5}),
    ));
    close(&out.w_end, &[0.421, -0.419], 1e-15);
}

#[test]
fn sgd_nesterov_two_steps_by_hand() {
    // d0 = g + 0.5 buf0 = (4.5, 3), w1 = (0.55, −0.3); f = (0.25, 0.8),
    // l' = (0.25, −0.2), g = (−0.15, 0.05), buf1 = (1.35, 1.05),
    // d1 = g + 0.5 buf1 = (0.525, 0.575), w2 = (0.4975, −0.3575).
    let flow = json!({"method": "sgd", "lr": 0.1, "steps": 2, "momentum": 0.5, "nesterov": true});
    let (_, out) = run(&line(flow));
    close(&out.w_end, &[0.4975, -0.3575], 1e-15);
}

#[test]
fn sgd_coupled_and_decoupled_decay_by_hand() {
    // Coupled (through the buffer): g0 = (3, 2) + 0.1 (1, 0) = (3.1, 2),
    // w1 = (0.69, −0.2); f = (0.49, 1.18), g1 = (0.85, 0.67) + 0.1 w1 =
    // (0.919, 0.65), buf1 = (2.469, 1.65), w2 = (0.4431, −0.365).
    let flow =
        json!({"method": "sgd", "lr": 0.1, "steps": 2, "momentum": 0.5, "weight_decay": 0.1});
    close(&run(&line(flow)).1.w_end, &[0.4431, -0.365], 1e-15);
    // Decoupled (on w directly): w1 = w0 − 0.1 (3, 2) − 0.01 w0 = (0.69, −0.2);
    // buf1 = 0.5 (3, 2) + (0.85, 0.67) = (2.35, 1.67),
    // w2 = w1 − 0.1 buf1 − 0.01 w1 = (0.4481, −0.365).
    let flow = json!({"method": "sgd", "lr": 0.1, "steps": 2, "momentum": 0.5,
                      "weight_decay": 0.1, "decoupled": true});
    close(&run(&line(flow)).1.w_end, &[0.4481, -0.365], 1e-15);
}

#[test]
fn adam_bias_corrections_two_steps_by_hand() {
    // eps = 0: step 0's mhat = g, vhat = g², so w1 = w0 − 0.1 (1, 1) = (0.9, −0.1).
    // Step 1: f = (0.8, 1.7), l' = (0.8, 0.7), g = (2.2, 1.5);
    // m = 0.9 (0.3, 0.2) + 0.1 g = (0.49, 0.33), v = 0.999 (0.009, 0.004)
    // + 0.001 g² = (0.013831, 0.006246); mhat = m / 0.19, vhat = v / 0.001999.
    let flow = json!({"method": "adam", "lr": 0.1, "steps": 2, "eps": 0.0});
    let (_, out) = run(&line(flow));
    let step = |m: f64, v: f64| 0.1 * (m / 0.19) / (v / 0.001999f64).sqrt();
    close(
        &out.w_end,
        &[0.9 - step(0.49, 0.013831), -0.1 - step(0.33, 0.006246)],
        1e-14,
    );
    // AdamW's decoupled decay: w1 = w0 − 0.1 ((1, 1) + 0.5 w0) = (0.85, −0.1).
    let flow = json!({"method": "adam", "lr": 0.1, "steps": 1, "eps": 0.0, "weight_decay": 0.5});
    close(&run(&line(flow)).1.w_end, &[0.85, -0.1], 1e-15);
    // Adam's coupled decay enters g: g0 = (3.5, 2), still mhat / sqrt(vhat) = (1, 1).
    let flow = json!({"method": "adam", "lr": 0.1, "steps": 1, "eps": 0.0, "weight_decay": 0.5,
                      "decoupled": false});
    close(&run(&line(flow)).1.w_end, &[0.9, -0.1], 1e-15);
}

#[test]
fn schedules_and_batches_as_specified() {
    let flow = json!({"method": "sgd", "lr": 0.4, "steps": 5, "batch_size": 1, "shuffle": "none",
                      "schedule": {"kind": "step", "step_size": 2, "gamma": 0.5, "warmup_steps": 2}});
    let (exp, out) = run(&line(flow));
    // 0.4 γ^⌊k/2⌋ · min(1, (k+1)/2)
    close(&out.step_sizes, &[0.2, 0.4, 0.2, 0.2, 0.1], 1e-15);
    assert_eq!(exp.spec.flow.t_end, 1.1);
    let batches = &out.optimizer.as_ref().unwrap().batches;
    assert_eq!(batches, &vec![vec![0], vec![1], vec![0], vec![1], vec![0]]);
    let flow = json!({"method": "sgd", "lr": 0.4, "steps": 4, "schedule": {"kind": "cosine", "final_lr": 0.1}});
    let (_, out) = run(&line(flow));
    // 0.1 + 0.3 (1 + cos(π k / 4)) / 2
    let want: Vec<f64> = (0..4)
        .map(|k| 0.1 + 0.3 * (1.0 + (std::f64::consts::PI * k as f64 / 4.0).cos()) / 2.0)
        .collect();
    close(&out.step_sizes, &want, 1e-15);
}

/// Epoch batches are permutations cut in order, drawn from the seed alone.
#[test]
fn epoch_batches_are_permutations_from_the_seed() {
    let spec = |seed: u64| {
        let mut s = line(json!({"method": "sgd", "lr": 0.01, "steps": 7, "batch_size": 2}));
        s["seed"] = json!(seed);
        s["data"] =
            json!({"source": "synthetic", "function": "sine", "n_train": 5, "n_test": 2, "dim": 1});
        s
    };
    let batches = |seed| run(&spec(seed)).1.optimizer.unwrap().batches;
    let b = batches(4);
    assert_eq!(b, batches(4));
    assert_ne!(b, batches(5));
    assert_eq!(
        b.iter().map(Vec::len).collect::<Vec<_>>(),
        [2, 2, 1, 2, 2, 1, 2]
    );
    let mut epoch: Vec<usize> = b[..3].concat();
    epoch.sort();
    assert_eq!(epoch, [0, 1, 2, 3, 4]);
}

fn small_mlp(flow: Value) -> Value {
    json!({
        "seed": 5,
        "data": {"source": "synthetic", "function": "sine", "n_train": 6, "n_test": 3, "dim": 2},
        "model": {"arch": "mlp", "hidden": [5], "activation": "tanh"},
        "loss": {"kind": "squared"},
        "reduction": "mean",
        "flow": flow,
    })
}

/// SPEC §9: "gd" is sgd with the defaults; their reports agree to rounding
/// (here: the same operations in the same order, so bit for bit).
#[test]
fn sgd_with_defaults_is_gd() {
    let (_, gd) = run(&small_mlp(
        json!({"t_end": 1.5, "method": "gd", "lr": 0.1, "exact_path_kernel": true}),
    ));
    let (_, sgd) = run(&small_mlp(json!({"method": "sgd", "lr": 0.1, "steps": 15})));
    let terms = sgd.optimizer.as_ref().unwrap();
    assert!(
        terms
            .decay_term
            .iter()
            .chain(&terms.exact_decay_term)
            .all(|&d| d == 0.0)
    );
    close(&sgd.w_end, &gd.w_end, 4.0 * EPS);
    close(
        sgd.path_kernel.as_slice(),
        gd.path_kernel.as_slice(),
        16.0 * EPS,
    );
    close(
        sgd.coef_integral.as_slice(),
        gd.coef_integral.as_slice(),
        16.0 * EPS,
    );
    close(&sgd.kernel_machine(), &gd.kernel_machine(), 16.0 * EPS);
    let (e_sgd, e_gd) = (
        sgd.exact_coef_integral.unwrap(),
        gd.exact_coef_integral.unwrap(),
    );
    close(e_sgd.as_slice(), e_gd.as_slice(), 16.0 * EPS);
}

/// With f linear in w, ∇f does not move along a segment: gbar_k = ∇f(w_k),
/// so the exact and Domingos forms coincide and both close (C35).
#[test]
fn linear_model_exact_and_domingos_coincide() {
    for flow in [
        json!({"method": "sgd", "lr": 0.05, "steps": 12, "batch_size": 4, "momentum": 0.9,
               "nesterov": true, "weight_decay": 0.1}),
        json!({"method": "adam", "lr": 0.05, "steps": 12, "batch_size": 3, "weight_decay": 0.1,
               "schedule": {"kind": "cosine"}}),
    ] {
        let mut spec = small_mlp(flow);
        spec["model"] = json!({"arch": "linear", "outputs": 2});
        spec["data"]["train_y"] = json!(null);
        spec["data"] = json!({"source": "dataset", "name": "iris", "n_train": 12, "n_test": 4,
                              "classes": [0, 1], "labels": "onehot"});
        let (_, out) = run(&spec);
        let exact = out.exact_coef_integral.as_ref().unwrap();
        let scale = exact
            .amax()
            .max(out.y_end.iter().fold(0.0f64, |m, v| m.max(v.abs())));
        close(
            out.coef_integral.as_slice(),
            exact.as_slice(),
            1e-13 * scale / exact.amax(),
        );
        let t = out.optimizer.as_ref().unwrap();
        close(&t.decay_term, &t.exact_decay_term, 1e-13);
        assert!(
            out.max_abs_residual() <= 1e-13 * scale,
            "{}",
            out.max_abs_residual()
        );
    }
}

fn refused(flow: Value, fragments: &[&str]) {
    let spec = small_mlp(flow);
    let err = Spec::parse(&spec.to_string(), Format::Json)
        .and_then(|s| Dataset::resolve(&s, Path::new(".")).map(|_| ()))
        .expect_err("a refused spec");
    let text = err.to_string();
    for f in fragments {
        assert!(text.contains(f), "`{f}` not in: {text}");
    }
}

#[test]
fn bad_optimizer_specs_are_refused_naming_the_field() {
    let sgd = |extra: Value| {
        let mut f = json!({"method": "sgd", "lr": 0.1, "steps": 3});
        f.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        f
    };
    refused(
        sgd(json!({"batch_size": 0})),
        &["flow.batch_size", "found 0"],
    );
    refused(
        sgd(json!({"batch_size": 7})),
        &["flow.batch_size", "found 7", "N = 6"],
    );
    refused(
        json!({"method": "sgd", "lr": 0.1, "batches": [[0, 1], [2, 6]]}),
        &["flow.batches[1][1]", "index 6"],
    );
    refused(
        json!({"method": "adam", "lr": 0.1, "steps": 3, "beta1": 1.0}),
        &["flow.beta1", "[0, 1)"],
    );
    refused(
        json!({"method": "adam", "lr": 0.1, "steps": 3, "beta2": -0.1}),
        &["flow.beta2"],
    );
    refused(
        json!({"method": "adam", "lr": 0.1, "steps": 3, "eps": -1e-8}),
        &["flow.eps", ">= 0"],
    );
    refused(
        sgd(json!({"weight_decay": -0.1})),
        &["flow.weight_decay", ">= 0"],
    );
    refused(
        json!({"method": "sgd", "lr": 0.1, "steps": 0}),
        &["flow.steps", "found 0"],
    );
    refused(
        sgd(json!({"schedule": {"kind": "cosine", "final_lr": -0.01}})),
        &["flow.schedule.final_lr", "negative"],
    );
    refused(
        sgd(json!({"schedule": {"kind": "step", "step_size": 2, "gamma": -0.5}})),
        &["flow.schedule.gamma", "negative"],
    );
    refused(
        sgd(json!({"schedule": {"kind": "step"}})),
        &["flow.schedule.step_size"],
    );
    refused(
        sgd(json!({"beta1": 0.9})),
        &["flow.beta1", "for method adam"],
    );
    refused(
        json!({"method": "adam", "lr": 0.1, "steps": 3, "momentum": 0.9}),
        &["flow.momentum", "for method sgd"],
    );
    refused(
        json!({"t_end": 1.0, "method": "gd", "lr": 0.1, "momentum": 0.9}),
        &["flow.momentum", "method `gd`"],
    );
    refused(
        json!({"t_end": 1.0, "method": "rk4", "step": 0.1, "batch_size": 2}),
        &["flow.batch_size"],
    );
    refused(sgd(json!({"t_end": 5.0})), &["flow.t_end", "Σ eta_k"]);
    refused(json!({"method": "sgd", "steps": 3}), &["flow.lr"]);
}

#[test]
fn a_bad_optimizer_spec_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    std::fs::write(
        &path,
        small_mlp(json!({"method": "adam", "lr": 0.1, "steps": 3, "beta2": 1.5})).to_string(),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pathkernel"))
        .args([
            "run",
            path.to_str().unwrap(),
            "--out",
            dir.path().join("r.json").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_fails(&out, 2, &["flow.beta2", "found 1.5"]);
    assert!(!dir.path().join("r.json").exists());
}

/// A random sgd/adam flow: every option of SPEC §9 drawn.
pub(crate) fn optimizer_flow() -> impl Strategy<Value = Value> {
    flow_of(any::<bool>())
}

/// A random sgd flow (every option but Adam's).
fn sgd_flow() -> impl Strategy<Value = Value> {
    flow_of(Just(false))
}

/// A random flow, Adam where `adam` draws true.
fn flow_of(adam: impl Strategy<Value = bool>) -> impl Strategy<Value = Value> {
    (
        adam,
        0.01..0.3f64,
        3usize..12,
        1usize..=6,
        prop_oneof![Just("epoch"), Just("replacement"), Just("none")],
        (0.0..0.95f64, any::<bool>()),
        (0.0..0.2f64, any::<bool>()),
        0usize..3,
    )
        .prop_map(|(adam, lr, steps, batch, shuffle, (mu, nesterov), (wd, decoupled), schedule)| {
            let schedule = match schedule {
                0 => json!({"kind": "constant"}),
                1 => json!({"kind": "step", "step_size": 2, "gamma": 0.7, "warmup_steps": 2}),
                _ => json!({"kind": "cosine", "final_lr": lr / 10.0}),
            };
            let mut f = json!({"method": if adam { "adam" } else { "sgd" }, "lr": lr, "steps": steps,
                               "batch_size": batch, "shuffle": shuffle, "weight_decay": wd,
                               "decoupled": decoupled, "schedule": schedule});
            if adam {
                f["lr"] = json!(lr / 10.0);
                f["schedule"] = json!({"kind": "constant"});
            } else {
                f["momentum"] = json!(mu);
                f["nesterov"] = json!(nesterov);
            }
            f
        })
}

/// A random smooth model on 6 training and 3 query points, as the fields
/// of a spec to set (the C = 2 model with cross_entropy on iris's classes).
fn smooth_model() -> impl Strategy<Value = (Value, u64)> {
    let iris = json!({"source": "dataset", "name": "iris", "n_train": 6, "n_test": 3});
    (
        prop_oneof![
            Just(json!({"model": {"arch": "mlp", "hidden": [4], "activation": "tanh"}})),
            Just(
                json!({"model": {"arch": "mlp", "hidden": [3, 3], "activation": "softplus", "outputs": 3},
                        "loss": {"kind": "cross_entropy"}, "data": iris})
            ),
            Just(json!({"model": {"arch": "resmlp", "width": 3, "blocks": 1}})),
            Just(
                json!({"model": {"arch": "mlp", "hidden": [4], "activation": "gelu", "parameterization": "ntk"}})
            ),
            Just(json!({"model": {"arch": "diag_linear"}})),
        ],
        any::<u64>(),
    )
}

/// small_mlp's spec with the drawn model's fields and seed.
pub(crate) fn with_model(flow: Value, fields: Value, seed: u64) -> Value {
    let mut spec = small_mlp(flow);
    for (k, v) in fields.as_object().unwrap() {
        spec[k] = v.clone();
    }
    spec["seed"] = json!(seed);
    spec
}

/// `converge`'s refinement (issue 11 item 4): lr halved, each of the run's
/// batches used for two consecutive half steps, the schedule's step
/// counts doubled, mu kept per step. The order properties cannot see the
/// batches' order (C57: a refinement that pairs each batch with another
/// one still gives orders 1 and 2 on these short paths), so it is pinned here.
#[test]
fn refined_uses_each_batch_for_two_half_steps() {
    let spec = Spec::parse(
        &small_mlp(json!({"method": "sgd", "lr": 0.1, "steps": 3, "batch_size": 2, "momentum": 0.5,
                          "schedule": {"kind": "step", "step_size": 2, "gamma": 0.5, "warmup_steps": 1}}))
        .to_string(),
        Format::Json,
    )
    .unwrap();
    let batches = vec![vec![0, 1], vec![2, 3], vec![4, 5]];
    let finer = pathkernel::optimizer::refined(&spec.flow, &batches);
    let twice = [[0, 1], [0, 1], [2, 3], [2, 3], [4, 5], [4, 5]]
        .map(Vec::from)
        .to_vec();
    assert_eq!(finer.batches, Some(twice));
    assert_eq!(
        (finer.lr, finer.steps, finer.momentum),
        (Some(0.05), Some(6), Some(0.5))
    );
    let schedule = finer.schedule.as_ref().unwrap();
    assert_eq!((schedule.step_size, schedule.warmup_steps), (Some(4), 2));
}

/// The exact form's closing check with memory (proofs.md §12 8.5, C33):
/// a step's floor is φ_k(q) = 64 ε (|f_k| + |f_{k+1}| + Σ_p |gbar_k(p, q)
/// Σ_i G_{k,i}(p)| + |ΔD_k|), and the run's `exact_floor` is Σ_k φ_k plus
/// the deferred sums' γ_n B ≥ 0. On a line without decay gbar_k = ∇f(q) =
/// (q, 1) and Σ_i G_{k,i} = Δ_k = w_1 − w_0 exactly in real numbers, so one
/// Adam step's floor is at least φ_0 by hand. Near a fit (|g| = 5e-3
/// here) Adam's step is lr sign(g): a check that summed the shares without
/// P_k would weigh a step of lr |g|, 5e-3 of this one, with f_0(q) = 0.
#[test]
fn adams_closing_floor_weighs_the_preconditioned_step() {
    let (_, out) = run(&json!({
        "seed": 1,
        "data": {"source": "inline", "train_x": [[1.0], [2.0]], "train_y": [2.001, 3.001], "test_x": [[-1.0]]},
        "model": {"arch": "linear"},
        "init": {"w0": [1.0, 1.0]},
        "loss": {"kind": "squared"},
        "reduction": "sum",
        "flow": {"method": "adam", "lr": 0.25, "steps": 1, "shuffle": "none"},
    }));
    let (dv, dc) = (out.w_end[0] - 1.0, out.w_end[1] - 1.0);
    // f(w; −1) = c − v: 0 at w0.
    let f1 = out.w_end[1] - out.w_end[0];
    let phi = 64.0 * EPS * (f1.abs() + dv.abs() + dc.abs());
    // (dv, dc computed from w_end carry a relative rounding of ε each.)
    let floor = out.optimizer.as_ref().unwrap().exact_floor[0];
    assert!(
        floor >= phi * (1.0 - 4.0 * EPS),
        "floor {floor:e} < φ_0 = {phi:e}"
    );
    assert!(
        (dv - 0.25).abs() < 1e-3 && (dc - 0.25).abs() < 1e-3,
        "a sign-like step: {dv}, {dc}"
    );
}

proptest! {
    #![proptest_config(crate::cases(24))]

    /// C33: the exact decomposition closes to its rounding floor for every
    /// optimizer, batch size and schedule: |r_e(q)| ≤ (1 + (N + K + 2) / 64)
    /// Σ_k 64 ε (|f_k(q)| + |f_{k+1}(q)| + Σ_i |ΔA^e_{k,i}(q)| + |ΔD^e_k(q)|)
    /// (proofs.md §9.3).
    #[test]
    fn exact_decomposition_closes_for_every_optimizer(
        (model, seed) in smooth_model(),
        flow in optimizer_flow(),
    ) {
        // The claim is for stable learning rates (proofs.md C33): a drawn lr
        // at which the run diverges (diag_linear is quadratic in w, so sgd
        // on it can overflow within 8 steps at lr 0.28), or ends with a loss
        // above its start (a resmlp under Nesterov at lr 0.3: loss 0.15 to
        // 1e26, steps far outside the Gauss–Legendre rule's asymptotic
        // range), is outside it.
        let (exp, out) = try_run(&with_model(flow, model, seed));
        prop_assume!(out.is_ok(), "diverged: {:?}", out.err());
        let out = out.unwrap();
        prop_assume!(out.loss_end <= out.loss0);
        let terms = out.optimizer.as_ref().unwrap();
        let (n, k) = (exp.data.train_x.nrows() as f64, out.stats.steps as f64);
        for (r, floor) in out.exact_residual().unwrap().iter().zip(&terms.exact_floor) {
            let bound = (1.0 + (n + k + 2.0) / 64.0) * floor;
            prop_assert!(r.abs() <= bound, "exact residual {r:e} > {bound:e}");
        }
    }

    /// C34: the Domingos-form residual falls at order 1 under `converge`'s
    /// refinement (lr / 2, each batch twice) for smooth models, from 128
    /// steps with K lr ≤ 0.3, sgd without momentum, refined to 256, 512 and
    /// 1024 steps, and the second-order residual at order 2 (C57), judged
    /// by [`assert_orders`] (proofs.md C34).
    #[test]
    fn domingos_residual_falls_at_order_one(
        (model, seed) in smooth_model(),
        flow in sgd_flow(),
    ) {
        let mut spec = with_model(flow, model, seed);
        if spec["flow"]["momentum"].is_number() {
            spec["flow"]["momentum"] = json!(0.0);
        }
        asymptotic(&mut spec, 128, 0.3);
        assert_orders(&spec)?;
    }

    /// C57 for momentum: mu ≤ 0.9 (plain and Nesterov, every decay, batch
    /// and schedule option as C34 draws them). The run is 4 steps of lr ≤
    /// 0.3 (1 − mu) / 4 (the heavy-ball limit w' = −g / (1 − mu) then
    /// travels as far in time as C34's flow), refined to 256, 512 and 1024
    /// steps: each batch spans s = 64, 128, 256 steps, at least 6.4 / (1 −
    /// mu), so the buffer's transient after each change of batch is a small
    /// part of the batch's steps. diag_linear is left out: at its start u =
    /// v its leading coefficient cancels (proofs.md C57).
    #[test]
    fn momentum_residuals_fall_at_orders_one_and_two(
        (model, seed) in smooth_model()
            .prop_filter("a cancels", |(m, _)| m["model"]["arch"] != "diag_linear"),
        flow in sgd_flow(),
    ) {
        let mut spec = with_model(flow, model, seed);
        let mu = spec["flow"]["momentum"].as_f64().unwrap().min(0.9);
        spec["flow"]["momentum"] = json!(mu);
        asymptotic(&mut spec, 4, 0.3 * (1.0 - mu));
        assert_orders(&spec)?;
    }

    /// C57 for Adam: beta2 ≤ 0.9 and beta1 ≤ min(sqrt(beta2), 0.9), so
    /// |mhat| / sqrt(vhat) is bounded and every step is O(lr) whatever
    /// eps, eps in [0.01, 1] (the limit w' = −g / (|g| + eps) has a field
    /// Lipschitz with constant ‖∇g‖ / eps, which the steps must resolve),
    /// coupled and decoupled decay and every batch option; 4 steps of lr ≤
    /// 0.3 / 4 refined to 256, 512 and 1024 steps, each batch spanning at
    /// least 6.4 / (1 − beta) steps for both betas (proofs.md C57).
    /// diag_linear is left out as for momentum (its leading coefficient
    /// cancels at u = v; a draw at PROPTEST_CASES = 1000, beta1 = 0 with
    /// coupled decay, finest order 0.56 on residuals of 1e-7).
    #[test]
    fn adam_residuals_fall_at_orders_one_and_two(
        (model, seed) in smooth_model()
            .prop_filter("a cancels", |(m, _)| m["model"]["arch"] != "diag_linear"),
        flow in flow_of(Just(true)),
        u in 0.0..1.0f64,
        beta2 in 0.0..0.9f64,
        log_eps in -2.0..0.0f64,
    ) {
        let beta1 = (u * beta2.sqrt()).min(0.9);
        let mut spec = with_model(flow, model, seed);
        spec["flow"]["beta1"] = json!(beta1);
        spec["flow"]["beta2"] = json!(beta2);
        spec["flow"]["eps"] = json!(10f64.powf(log_eps));
        asymptotic(&mut spec, 4, 0.3);
        assert_orders(&spec)?;
    }
}

/// Puts `spec` in the orders' asymptotic range: `steps` steps of lr ≤
/// time / steps (refined by [`assert_orders`]), each phase of a step
/// schedule a quarter of the run and its warmup an eighth (the drawn
/// 2-step phases would end the run's motion within about 20 of 128 steps,
/// leaving the coarse levels pre-asymptotic).
fn asymptotic(spec: &mut Value, steps: usize, time: f64) {
    spec["flow"]["steps"] = json!(steps);
    spec["flow"]["lr"] = json!(
        spec["flow"]["lr"]
            .as_f64()
            .unwrap()
            .min(time / steps as f64)
    );
    let schedule = &mut spec["flow"]["schedule"];
    if schedule["kind"] == "step" {
        schedule["step_size"] = json!((steps / 4).max(1));
        schedule["warmup_steps"] = json!(steps / 8);
    }
}

/// C34 and C57's test: `spec` refined by `converge`'s rule (lr / 2, each
/// batch twice) to 256, 512 and 1024 steps, the three levels run. Per
/// query point r(h) = a h + b h² + O(h³) and r(h) − r2(h) = a' h² + b' h³ +
/// O(h⁴): [`assert_fit`] judges the Domingos residual at order 1 and, where
/// it is above rounding (not for diag_linear, whose third derivative is
/// 0), the second-order one at order 2. Cases whose residual is at
/// rounding (below 1e-9 of the outputs) are skipped.
fn assert_orders(spec: &Value) -> Result<(), TestCaseError> {
    let mut spec = Spec::parse(&spec.to_string(), Format::Json).expect("a valid spec");
    let data = Dataset::resolve(&spec, Path::new(".")).expect("inline data");
    let mut batches = pathkernel::batches::draw(&spec.flow, data.train_x.nrows(), spec.seed);
    while batches.len() < 256 {
        spec.flow = pathkernel::optimizer::refined(&spec.flow, &batches);
        batches = spec.flow.batches.clone().unwrap();
    }
    let (mut first, mut second, mut scale) = (Vec::new(), Vec::new(), 0.0f64);
    for level in 0..3 {
        let exp = Experiment::new(spec.clone(), data.clone());
        let out = exp.run(&mut |_| {}).unwrap();
        scale = out
            .y_end
            .iter()
            .chain(&out.y0)
            .fold(scale, |m, v| m.max(v.abs()));
        first.push(out.residual());
        second.push(out.second_order_residual().expect("discrete runs have r2"));
        if level < 2 {
            spec = pathkernel::converge::refine(&spec, &out);
        }
    }
    prop_assume!(norm(&first[2]) > 1e-9 * scale);
    assert_fit(&first, 1)?;
    if norm(&second[2]) > 1e-9 * scale {
        assert_fit(&second, 2)?;
    }
    Ok(())
}

fn norm(r: &[f64]) -> f64 {
    r.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// r(h) = a h^p + b h^(p+1) + O(h^(p+2)) per query point over three
/// `levels` (coarsest first): a and b fitted from the two finest
/// must predict the next coarser level's residual vector to 25% (a residual
/// that tends to a constant, or falls at any other order, cannot), and the
/// finest observed order must lie in [p − 0.3, p + 1.2] (above p while
/// b h / a is still large: p + log2((1 + x) / (1 + x / 2)), x = b h / a).
fn assert_fit(levels: &[Vec<f64>], p: i32) -> Result<(), TestCaseError> {
    let [coarse, mid, fine] = [&levels[0], &levels[1], &levels[2]];
    // Per point, with u = a h^p and v = b h^(p+1) at the finest h:
    // fine = u + v, mid = 2^p u + 2^(p+1) v, so v = (mid − 2^p fine) / 2^p,
    // and the coarser level is 4^p u + 4^(p+1) v = 4^p fine + 3 · 2^p (mid − 2^p fine).
    let (two, four) = (2f64.powi(p), 4f64.powi(p));
    let predicted: Vec<f64> = fine
        .iter()
        .zip(mid)
        .map(|(f, m)| four * f + 3.0 * two * (m - two * f))
        .collect();
    let miss: Vec<f64> = predicted.iter().zip(coarse).map(|(p, c)| p - c).collect();
    let order = (norm(mid) / norm(fine)).log2();
    let range = f64::from(p) - 0.3..=f64::from(p) + 1.2;
    prop_assert!(
        norm(&miss) <= 0.25 * norm(coarse) && range.contains(&order),
        "order {p}: residuals {levels:?}: finest order {order}, coarse level predicted {predicted:?}"
    );
    Ok(())
}
