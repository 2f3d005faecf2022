//! C27 (proofs.md §10): the second-order Taylor pass through every batched
//! model equals second-order dual numbers (num-dual's Dual2 through the
//! per-example reference of SPEC §3 and §10) and a central difference; on
//! gd runs the term vanishes for a linear model, closes the identity to
//! rounding for a model quadratic in w, and the second-order residual falls
//! at order 2 where the Domingos-form residual falls at order 1.
use crate::model::{ROUNDING, arch_strategy, conditioning};
use crate::study::{self, max_abs, parse, run, scale};
use nalgebra::DMatrix;
use pathkernel::model::{self, Model, reference};
use pathkernel::second_order::SecondOrder;
use pathkernel::spec::{LayerSpec, ModelSpec, Spec};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, StandardNormal};
use serde_json::{Value, json};

const EPS: f64 = f64::EPSILON;

fn normal(rng: &mut ChaCha20Rng) -> f64 {
    StandardNormal.sample(rng)
}

fn row(x: &DMatrix<f64>, r: usize) -> Vec<f64> {
    x.row(r).iter().copied().collect()
}

/// Compares the model's Taylor pass at w along dw with Dual2 on every row
/// and output: value, f' and f''. Each jet entry is the same sum of
/// products as the dual arithmetic forms, in another order, so the C1
/// bound applies per derivative order, with the conditioning factor once
/// per derivative (f'' has terms through two weight layers at once), and,
/// for layer_norm, its 1/σ <= 1/sqrt(eps) amplification of the input's
/// rounding once per derivative of 1/σ (C20; s' = −s³ v'/2 and
/// s'' = 3 s⁵ v'²/4 − s³ v''/2 carry up to two more powers of 1/σ).
fn check_jets(spec: &ModelSpec, m: &dyn Model, w: &[f64], dw: &[f64], x: &DMatrix<f64>, cond: f64) {
    let mut tape = m.taylor_tape(x);
    m.taylor(w, dw, &mut tape);
    let out = tape.output();
    let c = m.outputs();
    let wd: Vec<num_dual::Dual2_64> = w
        .iter()
        .zip(dw)
        .map(|(&w, &d)| num_dual::Dual2_64::new(w, d, 0.0))
        .collect();
    let refs: Vec<Vec<num_dual::Dual2_64>> = (0..x.nrows())
        .map(|r| reference::outputs(spec, &wd, &row(x, r)))
        .collect();
    let layer_norm = matches!(spec, ModelSpec::Layers { layers, .. }
        if layers.iter().any(|l| matches!(l, LayerSpec::LayerNorm { .. })));
    let amplification = if layer_norm {
        1.0 / 1e-5f64.sqrt()
    } else {
        1.0
    };
    let parts = |f: &num_dual::Dual2_64| [f.re, f.v1, f.v2];
    for order in 0..3 {
        let scale = refs
            .iter()
            .flatten()
            .fold(1.0f64, |a, f| a.max(parts(f)[order].abs()));
        let tol =
            ROUNDING * scale * cond.powi(order as i32 + 1) * amplification.powi(order as i32 + 1);
        for (r, f) in refs.iter().enumerate() {
            for k in 0..c {
                let got = [&out.value, &out.first, &out.second][order][(r, k)];
                let want = parts(&f[k])[order];
                assert!(
                    (got - want).abs() <= tol,
                    "{spec:?}\norder {order}, row {r}, output {k}: {got} vs Dual2 {want} (tol {tol:e})"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(crate::cases(64))]

    /// C27 on every architecture of SPEC §3 (every activation, C in
    /// {1, 2, 3, 5}, weights of scale 0.5 and 3).
    #[test]
    fn taylor_pass_equals_second_order_duals(spec in arch_strategy(), dim in 1usize..4, rows in 1usize..5,
                                             w_scale in prop_oneof![Just(0.5), Just(3.0)], seed in any::<u64>()) {
        let m = model::build(&spec, dim);
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let w: Vec<f64> = (0..m.n_params()).map(|_| w_scale * normal(&mut rng)).collect();
        let dw: Vec<f64> = (0..m.n_params()).map(|_| normal(&mut rng)).collect();
        let x = DMatrix::from_fn(rows, dim, |_, _| normal(&mut rng));
        check_jets(&spec, m.as_ref(), &w, &dw, &x, conditioning(&spec, w_scale));
    }

    /// C27 on random layered models (SPEC §10: conv1d/conv2d with random
    /// strides and paddings, every activation, layer_norm, avg_pool,
    /// flatten, dense; C in {1, 2, 3}).
    #[test]
    fn layered_taylor_pass_equals_second_order_duals(seed in any::<u64>(), c in 1usize..4, rows in 1usize..4) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let (spec, dim) = crate::layers::random_layers(&mut rng, c);
        let m = model::build(&spec, dim);
        let w: Vec<f64> = m.init(&mut rng).iter().map(|&v| v + 0.5 * normal(&mut rng)).collect();
        let dw: Vec<f64> = (0..m.n_params()).map(|_| normal(&mut rng)).collect();
        let x = DMatrix::from_fn(rows, dim, |_, _| normal(&mut rng));
        check_jets(&spec, m.as_ref(), &w, &dw, &x, 1.0);
    }
}

/// A sanity check independent of num-dual: f'' against the central
/// difference (f(w + hΔ) − 2 f(w) + f(w − hΔ)) / h², whose error is at
/// most h² max|f''''| / 12 + 4 u max|f| / h²: at h = 2e-4 with |Δ| = 1,
/// about 3.3e-9 |f''''| + 1.1e-8 |f|, so 1e-7 (1 + max|f|) for the smooth
/// models here (|f''''| along a unit direction of order 1 to 10).
#[test]
fn taylor_second_derivative_matches_a_central_difference() {
    let specs = [
        json!({"arch": "mlp", "hidden": [5, 4], "activation": "tanh", "outputs": 2}),
        json!({"arch": "resmlp", "width": 3, "blocks": 2, "activation": "gelu"}),
        json!({"arch": "diag_linear"}),
    ];
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    for spec in specs {
        let spec: ModelSpec = serde_json::from_value(spec).unwrap();
        let m = model::build(&spec, 3);
        let w = m.init(&mut rng);
        let dw: Vec<f64> = (0..m.n_params()).map(|_| normal(&mut rng)).collect();
        let x = DMatrix::from_fn(4, 3, |_, _| normal(&mut rng));
        check_central_difference(m.as_ref(), &w, &dw, &x);
    }
    let cnn = crate::layers::smooth_cnn(json!({"t_end": 1.0, "method": "rk4", "step": 0.5}));
    let m = model::build(&cnn.model, 16);
    let w = m.init(&mut rng);
    let dw: Vec<f64> = (0..m.n_params()).map(|_| 0.3 * normal(&mut rng)).collect();
    let x = DMatrix::from_fn(3, 16, |_, _| normal(&mut rng));
    check_central_difference(m.as_ref(), &w, &dw, &x);
}

fn check_central_difference(m: &dyn Model, w: &[f64], dw: &[f64], x: &DMatrix<f64>) {
    let norm = dw.iter().map(|d| d * d).sum::<f64>().sqrt();
    let dw: Vec<f64> = dw.iter().map(|d| d / norm).collect();
    let dw = dw.as_slice();
    let h = 2e-4;
    let f = |t: f64| {
        let wt: Vec<f64> = w.iter().zip(dw).map(|(a, d)| a + t * d).collect();
        let mut tape = m.tape(x);
        m.forward(&wt, &mut tape);
        tape.output
    };
    let (plus, mid, minus) = (f(h), f(0.0), f(-h));
    let mut tape = m.taylor_tape(x);
    m.taylor(w, dw, &mut tape);
    let second = &tape.output().second;
    let big = max_abs(mid.iter().copied());
    for k in 0..mid.len() {
        let fd = (plus[k] - 2.0 * mid[k] + minus[k]) / (h * h);
        assert!(
            (second[k] - fd).abs() <= 1e-7 * (1.0 + big),
            "f'' {} vs central difference {fd}",
            second[k]
        );
    }
}

/// A model linear in w (the linear model, any C) has ∇²f = 0: every gd
/// step adds exactly 0 (the Taylor pass multiplies zero input derivatives).
#[test]
fn linear_model_has_no_second_order_term() {
    let x = [[0.1, -0.4], [0.7, 0.2], [-0.5, 0.9], [0.3, 0.3]];
    let out = run(&parse(json!({
        "seed": 3,
        "data": {"source": "inline", "train_x": x, "train_y": [[1.0, 0.0], [0.5, -1.0], [0.0, 2.0], [1.0, 1.0]],
                 "test_x": [[0.2, 0.2], [-1.0, 0.5]]},
        "model": {"arch": "linear", "outputs": 2},
        "loss": {"kind": "squared"},
        "flow": {"t_end": 1.0, "method": "gd", "lr": 0.125}
    })));
    let term = out.second_order_term.as_ref().unwrap();
    assert!(term.iter().all(|&v| v == 0.0), "{term:?}");
}

/// One hidden layer with the identity activation: f = W2 (W1 x + b1) + b2
/// is a polynomial of degree 2 in w, so Taylor's expansion along each step
/// stops at the second order and f(w_{k+1}) − f(w_k) − ∇f(w_k)·Δ_k =
/// ½ Δ_kᵀ ∇²f Δ_k exactly: the second-order residual is rounding alone,
/// within 8 K ε (S + Σ_k |r2 increments|) (the bound of C6 with the
/// second-order term's own additions), while the Domingos-form residual
/// is far above it. Any loss: l' enters only through Δ_k.
#[test]
fn quadratic_model_second_order_closes_the_identity() {
    for (loss, bias) in [("squared", true), ("logistic", false)] {
        let function = if loss == "squared" { "sine" } else { "xor" };
        let steps = 40.0;
        let out = run(&parse(json!({
            "seed": 4,
            "data": {"source": "synthetic", "function": function, "n_train": 8, "n_test": 5, "dim": 3},
            "model": {"arch": "mlp", "hidden": [4], "activation": "identity", "bias": bias},
            "loss": {"kind": loss},
            "reduction": "mean",
            "flow": {"t_end": steps * 0.25, "method": "gd", "lr": 0.25}
        })));
        let term = out.second_order_term.as_ref().unwrap();
        let r2 = out.second_order_max_abs_residual().unwrap();
        let bound = 8.0 * steps * EPS * (scale(&out) + max_abs(term.iter().copied()));
        assert!(
            r2 <= bound,
            "{loss}: second-order residual {r2:e} above {bound:e}"
        );
        assert!(
            out.max_abs_residual() > 1e3 * bound,
            "{loss}: {:e}",
            out.max_abs_residual()
        );
    }
}

/// C27's orders on smooth models: gd's Domingos-form residual 1 ± 0.1 and
/// its second-order residual 2 ± 0.2 (`study::assert_second_order`).
#[test]
fn second_order_residual_falls_at_order_two() {
    let rk4 = json!({"t_end": 1.0, "method": "rk4", "step": 0.5});
    let specs: Vec<Spec> = vec![
        smooth_mlp(rk4.clone()),
        crate::vector::two_outputs(json!({"t_end": 0.5, "method": "rk4", "step": 0.25})),
        crate::vector::classifier(rk4.clone()),
        crate::layers::smooth_cnn(rk4),
    ];
    for spec in specs {
        study::assert_second_order(&spec);
    }
}

/// A tanh mlp [8, 8], C = 1, squared loss on the sine task.
fn smooth_mlp(flow: Value) -> Spec {
    parse(json!({
        "seed": 8,
        "data": {"source": "synthetic", "function": "sine", "n_train": 10, "n_test": 4, "dim": 2},
        "model": {"arch": "mlp", "hidden": [8, 8], "activation": "tanh"},
        "loss": {"kind": "squared"},
        "reduction": "mean",
        "flow": flow
    }))
}

/// SecondOrder accumulates ½ f'' per step, example-major: two steps along
/// the same direction add twice the one-step term.
#[test]
fn second_order_accumulates_half_the_second_derivative() {
    let spec: ModelSpec = serde_json::from_value(
        json!({"arch": "mlp", "hidden": [3], "activation": "sin", "outputs": 2}),
    )
    .unwrap();
    let m = model::build(&spec, 2);
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let w = m.init(&mut rng);
    let dw: Vec<f64> = (0..m.n_params()).map(|_| normal(&mut rng)).collect();
    let x = DMatrix::from_fn(3, 2, |_, _| normal(&mut rng));
    let mut acc = SecondOrder::new(m.as_ref(), &x);
    acc.add_step(&w, &dw);
    acc.add_step(&w, &dw);
    for r in 0..3 {
        let want = reference::second_directional(&spec, &w, &dw, &row(&x, r));
        for (k, want) in want.iter().enumerate() {
            let got = acc.term[r * 2 + k];
            assert!(
                (got - want).abs() <= 1e-12 * want.abs().max(1.0),
                "{got} vs {want}"
            );
        }
    }
}
