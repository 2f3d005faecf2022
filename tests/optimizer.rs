//! The discrete optimizers of SPEC §9 (proofs.md §9): updates against steps
//! computed by hand, sgd with its defaults against gd, the linear model's
//! two decompositions, batches and schedules, bad input, and properties:
//! the exact decomposition closes to its rounding floor (C33) and the
//! Domingos residual falls at order 1 under `converge`'s refinement (C34).
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
    /// steps with K lr ≤ 0.3, sgd without momentum, refined three times
    /// (1024 steps at the finest). r(h) = a h + b h² + O(h³) per query point: the
    /// two finest levels fix a and b, which must predict the next coarser
    /// level's residual vector to 25% (an O(1) or O(h⁰·⁵) residual cannot),
    /// and the finest observed order lies in [0.7, 2.2] (proofs.md C34).
    #[test]
    fn domingos_residual_falls_at_order_one(
        (model, seed) in smooth_model(),
        flow in sgd_flow(),
    ) {
        let mut spec = with_model(flow, model, seed);
        // Plain sgd only: the refinement keeps mu and Adam's betas per
        // step, so with memory the refined runs have no common limit path
        // (proofs.md C34).
        spec["flow"]["steps"] = json!(128);
        spec["flow"]["lr"] = json!(spec["flow"]["lr"].as_f64().unwrap().min(0.3 / 128.0));
        if spec["flow"]["momentum"].is_number() {
            spec["flow"]["momentum"] = json!(0.0);
        }
        // The asymptotic range: each phase of a step schedule spans many
        // steps (the drawn 2-step phases would end the run's motion within
        // about 20 of its 128 steps, leaving the coarse levels pre-asymptotic).
        let schedule = &mut spec["flow"]["schedule"];
        if schedule["kind"] == "step" {
            schedule["step_size"] = json!(32);
            schedule["warmup_steps"] = json!(16);
        }
        let (mut exp, out) = run(&spec);
        let mut residuals = vec![out.residual()];
        let mut batches = out.optimizer.unwrap().batches;
        let scale = out.y_end.iter().chain(&out.y0).fold(0.0f64, |m, v| m.max(v.abs()));
        for _ in 0..3 {
            let flow = pathkernel::optimizer::refined(&exp.spec.flow, &batches);
            let mut s = exp.spec.clone();
            s.flow = flow;
            let s = Spec::parse(&serde_json::to_string(&s).unwrap(), Format::Json).unwrap();
            exp = Experiment::new(s, exp.data.clone());
            let out = exp.run(&mut |_| {}).unwrap();
            residuals.push(out.residual());
            batches = out.optimizer.unwrap().batches;
        }
        let norm = |r: &[f64]| r.iter().map(|v| v * v).sum::<f64>().sqrt();
        let (fine, mid, coarse) = (&residuals[3], &residuals[2], &residuals[1]);
        prop_assume!(norm(fine) > 1e-9 * scale);
        // Per point, with u = a h and v = b h² at the finest h:
        // fine = u + v, mid = 2u + 4v, so v = (mid - 2 fine) / 2,
        // u = fine - v, and the coarser level is 4u + 16v = 4 fine + 6 (mid - 2 fine).
        let predicted: Vec<f64> = fine.iter().zip(mid).map(|(f, m)| 4.0 * f + 6.0 * (m - 2.0 * f)).collect();
        let miss: Vec<f64> = predicted.iter().zip(coarse).map(|(p, c)| p - c).collect();
        let order = (norm(mid) / norm(fine)).log2();
        prop_assert!(
            norm(&miss) <= 0.25 * norm(coarse) && (0.7..=2.2).contains(&order),
            "residuals {residuals:?}: finest order {order}, coarse level predicted {predicted:?}"
        );
    }
}
