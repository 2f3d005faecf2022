//! proofs.md C21: a relu conv net's kinks, which lie inside its conv
//! feature map, cost a fixed-step method what C13 (b) and (c) predict for
//! an mlp, and events (E2) restore rk4's order 4. The net: conv1d (1 → 2
//! channels, kernel 2) on inputs of length 4, relu, flatten, dense 2, tanh,
//! dense 1 (P = 23); one or two training points and two query points; w0 and data found
//! by scanning seeds with `pathkernel run` and events until exactly one
//! feature-map unit crossed 0 on [0, 1] (its conditions.events), then
//! written out so the test does not depend on the init's draws.
//! Every tolerance is derived in a comment from the bound proofs.md gives.
use crate::events::orders;
use crate::identity::{
    assert_query_kink_costs_order_one, crossing, data_of, fine_path, parse, residual_at,
};
use num_dual::Dual64;
use pathkernel::experiment::Experiment;
use pathkernel::model::reference;
use pathkernel::spec::Spec;
use serde_json::json;

const KERNEL: usize = 2;
const CHANNELS: usize = 2;
const LENGTH: usize = 4;
/// The runs' end; the reference path goes 1/16 further, past the last
/// step of any coarse run (⌈T/h⌉ h < T + h).
const T: f64 = 0.5;

/// One experiment on the net, squared loss, reduction sum.
struct Case {
    train_x: Vec<Vec<f64>>,
    train_y: Vec<f64>,
    test_x: Vec<Vec<f64>>,
    w0: Vec<f64>,
}

impl Case {
    fn spec(&self) -> Spec {
        parse(json!({
            "data": {"source": "inline", "train_x": self.train_x, "train_y": self.train_y,
                     "test_x": self.test_x},
            "model": {"arch": "layers", "input_shape": [1, LENGTH], "layers": [
                {"kind": "conv1d", "channels": CHANNELS, "kernel": KERNEL},
                {"kind": "activation", "name": "relu"},
                {"kind": "flatten"},
                {"kind": "dense", "units": 2},
                {"kind": "activation", "name": "tanh"},
                {"kind": "dense", "units": 1}]},
            "init": {"w0": self.w0},
            "loss": {"kind": "squared"},
            "flow": {"t_end": T, "method": "rk4", "step": T}
        }))
    }

    /// Training points, then query points.
    fn points(&self) -> Vec<&[f64]> {
        self.train_x
            .iter()
            .chain(&self.test_x)
            .map(|x| &x[..])
            .collect()
    }

    /// dw/dt = −Σ_k (f(w; x_k) − y*_k) ∇f(w; x_k), from the dual-number
    /// reference model.
    fn field(&self, spec: &Spec, w: &[f64]) -> Vec<f64> {
        let mut dw = vec![0.0; w.len()];
        for (x, y) in self.train_x.iter().zip(&self.train_y) {
            let residual = output(spec, w, x) - y;
            for (d, g) in dw.iter_mut().zip(reference::gradient(&spec.model, w, x)) {
                *d -= residual * g;
            }
        }
        dw
    }
}

/// A unit of the first query point (point 2) crosses 0 at t* ≈ 0.274; no
/// training pre-activation changes sign. K^g's largest eigenvalue on the
/// training points is λ ≈ 5.7 at w0 and 10.9 at t = 1 (w0 drawn with
/// init_scale 1.5).
fn query_case() -> Case {
    Case {
        train_x: vec![
            vec![0.86, 0.4, 0.53, 0.62],
            vec![-0.43, -0.66, -0.97, -0.53],
        ],
        train_y: vec![-1.73, 0.02],
        test_x: vec![
            vec![-0.76, 0.86, 0.71, -0.33],
            vec![0.42, 0.73, 0.58, -0.85],
        ],
        w0: vec![
            -0.05737125431557385,
            -0.17574141212274522,
            -2.8819153554774597,
            -2.637255666774218,
            0.0,
            0.0,
            -0.34866545578493136,
            -0.9167667639796344,
            0.637115662040495,
            0.3505777142280277,
            -0.12847546165461535,
            -0.3269924527557949,
            0.7593149039565187,
            0.6137435388138408,
            0.47386408453094614,
            0.19117271972995167,
            0.2353237772243863,
            -0.24926590195524012,
            0.0,
            0.0,
            -0.31170478451825023,
            -0.4445657743157011,
            0.0,
        ],
    }
}

/// A unit of the one training point crosses 0 at t* ≈ 0.231 (its speed
/// falls from 0.41 to 0.24: v_+/(2 v_−) ≈ 0.29, so rk4 meets all three
/// stage patterns); no query pre-activation changes sign. K^g(x, x) ≈ 2.9
/// at w0 and 2.4 at t = 0.56.
fn train_case() -> Case {
    Case {
        train_x: vec![vec![-0.88, -0.22, -0.58, 0.01]],
        train_y: vec![-0.3],
        test_x: vec![
            vec![0.21, -0.89, 0.11, -0.45],
            vec![-0.54, 0.07, -0.79, 0.65],
        ],
        w0: vec![
            -0.6444127868041329,
            0.018521957700343445,
            -0.3641641446699115,
            -0.49058570804124185,
            0.0,
            0.0,
            -0.050514857800651805,
            0.4221445997968745,
            0.1467189911537109,
            -0.2920911916099577,
            -0.5607759065113923,
            -0.28329662546460943,
            -0.26385179134722403,
            -0.5952398818514018,
            -0.7042092074021982,
            0.02369189826612571,
            -0.16501230424354163,
            0.23017050119014051,
            0.0,
            0.0,
            -0.12435289963538344,
            -0.7412567877517983,
            0.0,
        ],
    }
}

/// f(w; x) from the reference model.
fn output(spec: &Spec, w: &[f64], x: &[f64]) -> f64 {
    let w: Vec<Dual64> = w.iter().map(|&v| Dual64::from(v)).collect();
    reference::output(&spec.model, &w, x).re
}

/// ∇f(w; x) · d, exactly (one dual-number pass).
fn slope(spec: &Spec, w: &[f64], d: &[f64], x: &[f64]) -> f64 {
    let w: Vec<Dual64> = w.iter().zip(d).map(|(&a, &b)| Dual64::new(a, b)).collect();
    reference::output(&spec.model, &w, x).eps
}

/// w + s d.
fn shift(w: &[f64], d: &[f64], s: f64) -> Vec<f64> {
    w.iter().zip(d).map(|(a, b)| a + s * b).collect()
}

/// The one kink at `points[at]` where the reference path (step `h_ref`)
/// crosses it: t*, w*, the field ẇ there and w* ∓ δ ẇ (δ = 1e-5),
/// asserted to lie on either side; with the kink function s.
struct Straddle {
    t_star: f64,
    w: Vec<f64>,
    v: Vec<f64>,
    before: Vec<f64>,
    after: Vec<f64>,
}

fn straddle<'a>(
    case: &'a Case,
    spec: &Spec,
    h_ref: f64,
    at: usize,
) -> (Straddle, impl Fn(&[f64]) -> f64 + use<'a>) {
    let exp = Experiment::new(spec.clone(), data_of(spec));
    let path = fine_path(&exp, T + 1.0 / 16.0, h_ref);
    let s = the_kink(&path, &case.points(), at);
    let (t_star, w) = crossing(&path, &s);
    let v = case.field(spec, &w);
    let delta = 1e-5;
    let (before, after) = (shift(&w, &v, -delta), shift(&w, &v, delta));
    assert!(
        s(&before) < 0.0 && s(&after) > 0.0,
        "w* ± δẇ straddle the kink"
    );
    let straddle = Straddle {
        t_star,
        w,
        v,
        before,
        after,
    };
    (straddle, s)
}

/// The conv layer's pre-activations z_{o,p}(w; x) = b_o + Σ_j W[o, 0, j]
/// x[p + j] (SPEC §10: W (2, 1, 2) then b at the front of w), affine in w.
fn feature_map(w: &[f64], x: &[f64]) -> Vec<f64> {
    let positions = LENGTH - KERNEL + 1;
    (0..CHANNELS * positions)
        .map(|u| {
            let (o, p) = (u / positions, u % positions);
            let taps = &w[o * KERNEL..(o + 1) * KERNEL];
            w[CHANNELS * KERNEL + o] + taps.iter().zip(&x[p..]).map(|(a, b)| a * b).sum::<f64>()
        })
        .collect()
}

/// The one feature-map unit at `points[at]` whose pre-activation changes
/// sign along the reference path, as s(w) = ±z rising through 0; asserts
/// that it changes sign on one path step only and that no other unit at
/// any point changes sign at all (so that w(t) is smooth where `at` is a
/// query point, and one kink is crossed).
fn the_kink<'a>(
    path: &[(f64, Vec<f64>)],
    points: &[&'a [f64]],
    at: usize,
) -> impl Fn(&[f64]) -> f64 + use<'a> {
    let mut flips = Vec::new();
    for (i, x) in points.iter().enumerate() {
        for u in 0..feature_map(&path[0].1, x).len() {
            let side = |w: &[f64]| feature_map(w, x)[u] > 0.0;
            let n = path
                .windows(2)
                .filter(|p| side(&p[0].1) != side(&p[1].1))
                .count();
            if n > 0 {
                flips.push((i, u, n));
            }
        }
    }
    assert!(
        flips.len() == 1 && flips[0].0 == at && flips[0].2 == 1,
        "(point, unit, sign changes): {flips:?}"
    );
    let (x, u) = (points[at], flips[0].1);
    let sign = if feature_map(&path[0].1, x)[u] < 0.0 {
        1.0
    } else {
        -1.0
    };
    move |w| sign * feature_map(w, x)[u]
}

/// C13 (c) on the conv net: a relu unit of the feature map at the query
/// point q crosses 0 at t* while the training points' units keep their
/// sides, so w(t) is smooth and t ↦ f(q; w(t)) has one kink, where its
/// derivative jumps by J = (∇_+ f(q) − ∇_− f(q)) · ẇ. A step is a
/// quadrature rule for that derivative, so r(q) = J h φ(θ) + O(h²) with
/// rk4's φ = 1/6 − θ (θ < ½), 5/6 − θ (θ > ½) and heun's ½ − θ, for the
/// kink at t_n + θh. J is measured as the difference of the exact slopes
/// ∇f(q) · ẇ at w* ± δ ẇ (δ = 1e-5, on either side, since z_q(w*) is at
/// the reference's O(h_ref²) ≈ 1e-8 of 0): O(δ) relative error. The
/// remainder relative to J h is O(h λ) as for the mlp (identity.rs
/// `relu_kink_at_a_query_point_costs_order_one`): at h = t*/(32 + θ),
/// h λ ≤ 0.09 (λ ≤ 11), and the same 0.01 is allowed in r/(J h) against
/// values of φ spaced by ≥ 0.15; at fixed θ the observed order over
/// k = 32, 64, 128 is 1 within 0.05.
#[test]
fn relu_conv_kink_at_a_query_point_costs_order_one() {
    let case = query_case();
    let spec = case.spec();
    let (q, query) = (case.points()[2], 0);
    let (
        Straddle {
            t_star,
            v,
            before,
            after,
            ..
        },
        _,
    ) = straddle(&case, &spec, 1.0 / 4096.0, 2);
    let jump = slope(&spec, &after, &v, q) - slope(&spec, &before, &v, q);
    assert_query_kink_costs_order_one(&spec, (t_star, jump, 32.0), T, query);
}

/// C13 (b) on the conv net: a relu unit of the feature map at training
/// point x_1 crosses 0 at t* (transversally: its speeds v_∓ = ∇z · F_∓
/// before and after have one sign), and the field jumps by
/// D = F_+ − F_− = −l'_1 (∇_+ f(x_1) − ∇_− f(x_1)). Per crossing
/// r(q) = h² β Dᵀ∇²f(q)D + O(h³) with rk4's β = 1/72 when the stages past
/// the kink are (2, 3, 4) (θ < v_+/(2 v_−)) or (4) (θ > ½), and 1/8 when
/// they are (2, 4) (stage 3 at w_n + (h/2) k_2 falls back: v_+/(2 v_−) <
/// θ < ½). The test takes θ in each pattern that the speeds leave room
/// for, at least 0.05 from its ends (the pattern's edges move by O(h)).
/// D and v_± come from the exact field at w* ± δ ẇ (δ = 1e-5, O(δ)
/// relative error), Dᵀ∇²f(q)D from second-order dual numbers at w*. No
/// query unit crosses, so f(q; ·) is smooth around the path. As for the
/// mlp (identity.rs `loss_kink_at_a_training_point_costs_rk4_two_orders`),
/// at h = t*/(32 + θ) the O(h³) remainder and the smooth O(h⁴) residual
/// are O(h/t_scale) and O(h²) relative: 10 % allowed; over k = 32, 64 at
/// θ = 0.75 the observed order is 2 within 0.1.
#[test]
fn relu_conv_kink_at_a_training_point_costs_rk4_two_orders() {
    let case = train_case();
    let spec = case.spec();
    let (
        Straddle {
            t_star,
            w,
            before,
            after,
            ..
        },
        s,
    ) = straddle(&case, &spec, 1.0 / 8192.0, 0);
    let (f_minus, f_plus) = (case.field(&spec, &before), case.field(&spec, &after));
    let d: Vec<f64> = f_plus.iter().zip(&f_minus).map(|(a, b)| a - b).collect();
    // s is affine in w, so ∇s · F = s(w + F) − s(w).
    let speed = |f: &[f64]| s(&shift(&w, f, 1.0)) - s(&w);
    let (v_minus, v_plus) = (speed(&f_minus), speed(&f_plus));
    assert!(
        v_minus > 0.0 && v_plus > 0.0,
        "transversal: {v_minus}, {v_plus}"
    );
    let switch = v_plus / (2.0 * v_minus);
    let mut patterns = vec![(0.75, 1.0 / 72.0)];
    if switch < 0.4 {
        patterns.push(((switch + 0.5) / 2.0, 1.0 / 8.0));
    }
    if switch > 0.1 {
        patterns.push((switch.min(0.5) / 2.0, 1.0 / 72.0));
    }
    assert!(patterns.len() >= 2, "v_+/(2 v_−) = {switch}");
    let dhd: Vec<f64> = case
        .test_x
        .iter()
        .map(|q| reference::second_directional(&spec.model, &w, &d, q)[0])
        .collect();
    for (theta, bracket) in patterns {
        let h = t_star / (32.0 + theta);
        let r = residual_at(&spec, "rk4", h, T);
        for (m, (r, dhd)) in r.iter().zip(&dhd).enumerate() {
            let ratio = r / (h * h * dhd);
            assert!(
                (ratio / bracket - 1.0).abs() < 0.1,
                "θ = {theta}, q_{m}: r/(h² Dᵀ∇²f D) = {ratio}, predicted {bracket}"
            );
        }
    }
    let hs = [t_star / 32.75, t_star / 64.75];
    let (r1, r2) = (
        residual_at(&spec, "rk4", hs[0], T),
        residual_at(&spec, "rk4", hs[1], T),
    );
    for m in 0..case.test_x.len() {
        let order = (r1[m] / r2[m]).ln() / (hs[0] / hs[1]).ln();
        assert!((order - 2.0).abs() < 0.1, "q_{m}: observed order {order}");
    }
}

/// E2 on the conv net: with `flow.events` both kinks above are located and
/// stepped to, each step integrates a smooth field, and rk4's residual
/// falls at order 4 ± 0.3 (C4's tolerance; h λ <= 1/8 with K = 64 at
/// T = 1/2 for the query case, λ <= 11, and K = 16 for the training
/// case, λ <= 3) over K, 2K, 4K steps, where without events it falls
/// at order 1 (query) and 2 (training point).
#[test]
fn events_restore_rk4_order_on_a_relu_conv_net() {
    for (name, case, k) in [("query", query_case(), 64), ("training", train_case(), 16)] {
        let spec = case.spec();
        let mut value = serde_json::to_value(&spec).unwrap();
        value["flow"] = json!({"t_end": T, "method": "rk4", "step": T / k as f64, "events": true});
        let events = parse(value);
        let out = Experiment::new(events.clone(), data_of(&events))
            .run(&mut |_| {})
            .expect("runs");
        assert_eq!(out.conditions.event_count, 1, "{name}: one kink crossed");
        for order in orders(&events, T, k) {
            assert!((order - 4.0).abs() < 0.3, "{name}: observed order {order}");
        }
    }
}
