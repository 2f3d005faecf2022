//! Filippov sliding modes (issue 12 item 2, proofs.md E5-E7): a problem
//! whose sliding solution is known in closed form, the identity's two
//! readings on a sliding segment, and issue 12's relu network.
use pathkernel::data::Dataset;
use pathkernel::experiment::{Experiment, Outcome};
use pathkernel::model;
use pathkernel::spec::{Format, Spec};
use serde_json::{Value, json};
use std::path::Path;

const EPS: f64 = f64::EPSILON;

fn run(value: &Value) -> (Spec, Outcome) {
    let spec = Spec::parse(&value.to_string(), Format::Json).expect("a valid spec");
    let data = Dataset::resolve(&spec, Path::new(".")).expect("data");
    let out = Experiment::new(spec.clone(), data)
        .run(&mut |_| {})
        .expect("the run succeeds");
    (spec, out)
}

/// f = v x + c on x_1 = 1 (y* = 1) and x_2 = 0 (y* = 10), absolute loss
/// summed, w0 = 0, queries 0.5 and 2. Until f(x_1) reaches 1 the field is
/// F_− = (1, 2) (both points below target), so f(x_1) = 3t reaches it at
/// t* = 1/3, w = (1/3, 2/3). Above, F_+ = (−1, 0). The rates of g = f(x_1)
/// − 1 are a_− = 3, a_+ = −1: both point in, λ = 3/4, and the sliding
/// field is F = (−1/2, 1/2): v = 1/3 − (t − t*)/2, c = 2/3 + (t − t*)/2,
/// so w(1) = (0, 1) (f(x_2) = c stays far below 10).
fn closed_form(method: &str) -> Value {
    json!({"seed": 1,
        "data": {"source": "inline", "train_x": [[1.0], [0.0]], "train_y": [1.0, 10.0],
                 "test_x": [[0.5], [2.0]]},
        "model": {"arch": "linear"}, "init": {"w0": [0.0, 0.0]},
        "loss": {"kind": "absolute"}, "reduction": "sum",
        "flow": {"t_end": 1.0, "method": method, "rtol": 1e-10, "atol": 1e-12, "events": true}})
}

/// E5: the constrained flow keeps the kink at zero and follows the closed
/// form. The sliding field is constant and the event located to a few
/// ulps of t* (E2), so w(1) is exact up to the rounding of ~20 steps of
/// O(1) numbers: 64 ε bounds it, and the kink function |v + c − 1| is
/// within 1e-12 (the issue's requirement) at the end.
#[test]
fn sliding_on_a_loss_kink_follows_the_closed_form() {
    for method in ["dopri5", "dop853", "verner98"] {
        let (_, out) = run(&closed_form(method));
        let (v, c) = (out.w_end[0], out.w_end[1]);
        assert!((v - 0.0).abs() <= 64.0 * EPS, "{method}: v = {v:e}");
        assert!((c - 1.0).abs() <= 64.0 * EPS, "{method}: c = {c}");
        assert!(
            (v + c - 1.0).abs() <= 1e-12,
            "{method}: g = {:e}",
            v + c - 1.0
        );
        let slide = out
            .conditions
            .events
            .iter()
            .find(|e| e.event == Some("slide"));
        let slide = slide.expect("a slide event");
        assert_eq!((slide.kink.kind, slide.kink.point), ("loss", 0));
        assert!(
            (slide.t - 1.0 / 3.0).abs() <= 8.0 * EPS,
            "{method}: t* = {}",
            slide.t
        );
        assert!(
            out.conditions
                .events
                .iter()
                .all(|e| e.event != Some("release"))
        );
    }
}

/// E6: the identity on the sliding segment. With Filippov's l'_1 = (1 − λ)
/// (−1) + λ (+1) = 1/2 there, A_1(q) = ∫₀^{t*} (q + 1) dt − ∫_{t*}^1 (q + 1)/2
/// dt = 0 and A_2(q) = 1 (K^g(q, x_2) = 1, −l'_2 = 1), so the kernel
/// machine is 0 + 0 + 1 = f(w(1); q) = 1: residual 0. With the convention
/// l'(y*) = 0 (SPEC §2) the sliding segment adds nothing to A_1, whose
/// value stays A_1(t*) = (q + 1)/3, and the residual E6 predicts is
/// r(q) = −∫_{t*}^1 (−l'_λ) ... = −(1 − t*) (q + 1)/2 = −(q + 1)/3. The test
/// reads A_1(t*) from the same run stopped at t* (identical up to there)
/// and checks both readings. Tolerances: the run's residual at rounding
/// (64 ε, as above); A to 64 ε of its scale (q + 1 ≤ 3).
#[test]
fn the_identity_on_a_sliding_segment_holds_with_filippovs_derivative() {
    let (_, out) = run(&closed_form("dopri5"));
    let mut stopped = closed_form("dopri5");
    stopped["flow"]["t_end"] = json!(1.0 / 3.0);
    let (_, before) = run(&stopped);
    for (m, q) in [0.5, 2.0].into_iter().enumerate() {
        let a1 = out.coef_integral[(m, 0)];
        let a2 = out.coef_integral[(m, 1)];
        assert!(a1.abs() <= 64.0 * EPS * 3.0, "A_1({q}) = {a1:e}");
        assert!((a2 - 1.0).abs() <= 64.0 * EPS * 3.0, "A_2({q}) = {a2}");
        assert!(out.residual()[m].abs() <= 64.0 * EPS * 3.0);
        // The convention's reading: A_1 frozen at A_1(t*).
        let conventional = out.y_end[m] - out.y0[m] - before.coef_integral[(m, 0)] - a2;
        let predicted = -(q + 1.0) / 3.0;
        assert!(
            (conventional - predicted).abs() <= 1e-12,
            "q = {q}: convention's residual {conventional} vs predicted {predicted}"
        );
    }
}

/// max_m |y_end − y0|, the scale of the residual bounds (C12).
/// The run's max |residual| is at most `fraction` of max |y_end − y0|.
fn assert_residual_within(out: &Outcome, fraction: f64) {
    let r = out.max_abs_residual();
    assert!(r <= fraction * spread(out), "residual {r:e}");
}

fn spread(out: &Outcome) -> f64 {
    out.y_end
        .iter()
        .zip(&out.y0)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
}

/// Issue 12's relu network, with events.
fn issue_spec(flow: Value) -> Value {
    json!({"seed": 3, "data": {"source": "synthetic", "function": "sine", "n_train": 12, "n_test": 5, "dim": 3},
           "model": {"arch": "mlp", "hidden": [16, 8], "activation": "relu", "parameterization": "ntk"},
           "loss": {"kind": "squared"}, "reduction": "mean", "flow": flow})
}

/// For every kink that slides at the end (slid, not released): |g| at
/// w_end and the drift bound E5 gives for it. g is a first integral of the
/// sliding field (λ makes ∇g · F = 0 at every state), so |g(T)| is the sum
/// of the steps' local errors along ∇g: each at most sqrt(P) (atol + rtol
/// max|w|) (the error control's RMS bound on the embedded estimate, which
/// bounds the propagated higher-order solution's error too) times |∇g|,
/// taken at w_end with a factor 2 for its change along the path. |∇g| is
/// computed exactly, P first-order Taylor passes along the unit vectors.
fn sliding_kinks(spec: &Spec, out: &Outcome, (rtol, atol): (f64, f64)) -> Vec<(f64, f64)> {
    let data = Dataset::resolve(spec, Path::new(".")).unwrap();
    let model = model::build(&spec.model, data.train_x.ncols());
    let mut tape = model.tape(&data.train_x);
    model.forward(&out.w_end, &mut tape);
    let mut held = Vec::new();
    for e in &out.conditions.events {
        match e.event {
            Some("slide") => held.push(e.kink),
            Some("release") => held.retain(|k| *k != e.kink),
            _ => {}
        }
    }
    let p = out.w_end.len();
    let w_max = out.w_end.iter().fold(0.0f64, |m, w| m.max(w.abs()));
    let local = (p as f64).sqrt() * (atol + rtol * w_max);
    let mut jets = model.taylor_tape(&data.train_x);
    let mut unit = vec![0.0; p];
    held.iter()
        .map(|k| {
            let (l, r, u) = (k.layer.unwrap(), k.point, k.unit);
            let g = model.kink_preactivations(&tape)[l][(r, u)];
            let mut norm2 = 0.0;
            for i in 0..p {
                unit[i] = 1.0;
                model.taylor(&out.w_end, &unit, &mut jets);
                norm2 += model.kink_jet(&jets, l).unwrap().first[(r, u)].powi(2);
                unit[i] = 0.0;
            }
            let bound = 2.0 * out.stats.steps as f64 * local * norm2.sqrt();
            (g.abs(), bound)
        })
        .collect()
}

/// E5 on issue 12's spec: dop853 at rtol 1e-12 integrates its two sliding
/// modes (from t = 0.2046 and 0.5017) with max_abs_residual below 1e-10 of
/// max |y_end − y0| (C12's bound for this tolerance, proofs.md E2), and
/// the sliding kinks stay at zero within their drift bound (E5,
/// [`sliding_kinks`]);
/// dopri5 at rtol 1e-8 does it in fewer than 2,000 evaluations of the
/// right-hand side, each field evaluated on a sliding segment counted.
#[test]
fn issue_spec_integrates_its_sliding_modes() {
    let (spec, out) = run(&issue_spec(
        json!({"t_end": 1.0, "method": "dop853", "rtol": 1e-12, "atol": 1e-14, "events": true}),
    ));
    assert_residual_within(&out, 1e-10);
    let held = sliding_kinks(&spec, &out, (1e-12, 1e-14));
    assert_eq!(held.len(), 2, "two kinks slide at t = 1");
    assert!(held.iter().all(|(g, b)| g <= b), "{held:?}");
    let (_, out) = run(&issue_spec(
        json!({"t_end": 1.0, "method": "dopri5", "rtol": 1e-8, "atol": 1e-10, "events": true}),
    ));
    assert!(
        out.stats.rhs_evals < 2000,
        "{} evaluations",
        out.stats.rhs_evals
    );
}

/// E5 on a relu resmlp (width 3, two blocks): the unit 0 of the second
/// block's pre-activation at training point 2 slides from t = 0.3196
/// (found by scanning seeds: before resmlp had kink jets, this run stopped
/// with exit 1 there). The resmlp's Taylor pass carries dh_k/dt of each
/// block, so λ is exact and the sliding kink is a first integral (E5 (i)):
/// with dop853 at rtol 1e-12 it stays within its drift bound and within
/// 1e-12 of its surface (issue 12's requirement), and the residual meets
/// C12's 1e-10 of max |y_end − y0|.
#[test]
fn resmlp_integrates_its_sliding_modes() {
    let (spec, out) = run(&json!({"seed": 6,
        "data": {"source": "synthetic", "function": "sine", "n_train": 6, "n_test": 3, "dim": 2},
        "model": {"arch": "resmlp", "width": 3, "blocks": 2, "activation": "relu"},
        "loss": {"kind": "squared"}, "reduction": "mean",
        "flow": {"t_end": 1.0, "method": "dop853", "rtol": 1e-12, "atol": 1e-14, "events": true}}));
    let slide = out
        .conditions
        .events
        .iter()
        .find(|e| e.event == Some("slide"))
        .expect("a slide event");
    assert_eq!(slide.kink.layer, Some(1), "the second block's kink slides");
    assert!((slide.t - 0.3196).abs() < 1e-4, "t = {}", slide.t);
    assert_residual_within(&out, 1e-10);
    let held = sliding_kinks(&spec, &out, (1e-12, 1e-14));
    assert!(
        !held.is_empty() && held.iter().all(|(g, b)| g <= b && *g <= 1e-12),
        "{held:?}"
    );
}

/// E7: releases. On issue 12's spec to t = 3 one sliding kink is released
/// when a third one's sliding mode pushes its λ out of [0, 1] (t = 1.48)
/// and another at t = 1.93 (its λ leaves [0, 1] within a step); the run
/// stays within its tolerance (dopri5 at rtol 1e-8: residual below 1e-6 of
/// max |y_end − y0|, C12's bound with K ≈ 50 steps) and the kinks that
/// still slide stay at zero within their drift bound (E5).
#[test]
fn sliding_modes_are_released_where_their_coefficient_leaves_the_unit_interval() {
    let (spec, out) = run(&issue_spec(
        json!({"t_end": 3.0, "method": "dopri5", "rtol": 1e-8, "atol": 1e-10, "events": true}),
    ));
    let releases = out
        .conditions
        .events
        .iter()
        .filter(|e| e.event == Some("release"))
        .count();
    assert!(releases >= 2, "{releases} releases");
    assert_residual_within(&out, 1e-6);
    let held = sliding_kinks(&spec, &out, (1e-8, 1e-10));
    assert!(
        !held.is_empty() && held.iter().all(|(g, b)| g <= b),
        "{held:?}"
    );
    // The release that a new sliding mode forces happens at that event.
    let events = &out.conditions.events;
    let forced = events.iter().any(|e| {
        e.event == Some("release")
            && events
                .iter()
                .any(|s| s.event == Some("slide") && s.t == e.t && s.kink != e.kink)
    });
    assert!(forced, "no release at a slide event");
    // A kink released and not held again has left its surface: beyond the
    // drift bound that a held kink obeys (E5 (i)).
    let data = Dataset::resolve(&spec, Path::new(".")).unwrap();
    let model = model::build(&spec.model, data.train_x.ncols());
    let mut tape = model.tape(&data.train_x);
    model.forward(&out.w_end, &mut tape);
    let last = |k: &pathkernel::kinks::Kink| {
        events
            .iter()
            .rev()
            .find(|e| e.kink == *k && e.event.is_some())
    };
    let kinks = model.kink_preactivations(&tape);
    let left: Vec<f64> = events
        .iter()
        .filter(|e| e.event == Some("release") && last(&e.kink).unwrap().t == e.t)
        .map(|e| kinks[e.kink.layer.unwrap()][(e.kink.point, e.kink.unit)].abs())
        .collect();
    let drift = held.iter().fold(0.0f64, |m, (_, b)| m.max(*b));
    assert!(
        !left.is_empty() && left.iter().all(|g| *g > drift),
        "{left:?} vs {drift:e}"
    );
}

/// The one-unit relu model of [`within_step_release`]: f(x) = a relu(W x +
/// b) + c, w = (W, b, a, c), on x_1 = 1 (y* = −1) and x_2 = 1.5 (y* = 1),
/// squared loss summed.
const ONE_UNIT: ([f64; 2], [f64; 2]) = ([1.0, 1.5], [-1.0, 1.0]);

/// The gradient flow of that model written out by hand (the reference):
/// off the kink −Σ_k l'_k ∇f(x_k), ∇f(x) = (a x, a, z, 1) (the unit
/// active at both points); sliding on z_1 = W x_1 + b = 0 (x_2 active), Filippov's
/// field −l'_2 ∇f(x_2) − l'_1 (λ a x_1, λ a, 0, 1) with
/// λ = −l'_2 a (x_1 x_2 + 1) / (l'_1 a (x_1² + 1)) (∇z_1 · F = 0).
/// Returns the field and λ (NaN off the kink).
fn one_unit_field(w: &[f64; 4], sliding: bool) -> ([f64; 4], f64) {
    let ([x1, x2], [y1, y2]) = ONE_UNIT;
    let z = |x: f64| w[0] * x + w[1];
    assert!(z(x2) > 0.0, "x_2 stays active");
    // Off the kink, the branch with the unit active at both points (as
    // E2's locked branches, continued past z_1 = 0 within a step).
    let grad = |x: f64| [w[2] * x, w[2], z(x), 1.0];
    let f = |x: f64| w[2] * z(x) + w[3];
    // On the surface f(x_1) = c.
    let l1 = if sliding { w[3] - y1 } else { f(x1) - y1 };
    let l2 = f(x2) - y2;
    let g2 = grad(x2);
    let (g1, lambda) = if sliding {
        let lambda = -l2 * (x1 * x2 + 1.0) / (l1 * (x1 * x1 + 1.0));
        ([lambda * w[2] * x1, lambda * w[2], 0.0, 1.0], lambda)
    } else {
        (grad(x1), f64::NAN)
    };
    (std::array::from_fn(|p| -l1 * g1[p] - l2 * g2[p]), lambda)
}

/// One classical rk4 step of [`one_unit_field`].
fn one_unit_step(w: &[f64; 4], h: f64, sliding: bool) -> [f64; 4] {
    let at = |w: &[f64; 4], k: &[f64; 4], s: f64| std::array::from_fn(|p| w[p] + s * k[p]);
    let k1 = one_unit_field(w, sliding).0;
    let k2 = one_unit_field(&at(w, &k1, h / 2.0), sliding).0;
    let k3 = one_unit_field(&at(w, &k2, h / 2.0), sliding).0;
    let k4 = one_unit_field(&at(w, &k3, h), sliding).0;
    std::array::from_fn(|p| w[p] + h / 6.0 * (k1[p] + 2.0 * k2[p] + 2.0 * k3[p] + k4[p]))
}

/// Integrates from (t, w) with rk4 steps of 1e-4 until `stop` turns true
/// within a step, then bisects the length of the last step's sub-step (60
/// halvings: to rounding); returns the time and state there.
fn one_unit_until(
    (mut t, mut w): (f64, [f64; 4]),
    sliding: bool,
    stop: impl Fn(&[f64; 4]) -> bool,
) -> (f64, [f64; 4]) {
    let h = 1e-4;
    loop {
        let next = one_unit_step(&w, h, sliding);
        if stop(&next) {
            let (mut lo, mut hi) = (0.0, h);
            for _ in 0..60 {
                let mid = (lo + hi) / 2.0;
                if stop(&one_unit_step(&w, mid, sliding)) {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            return (t + hi, one_unit_step(&w, hi, sliding));
        }
        (t, w) = (t + h, next);
    }
}

/// E7 (i), a release inside a step. The one-unit model from w0 = (1,
/// −0.5, 0.5, 1): z_1 falls to 0 and slides (both one-sided fields point
/// in), and along the slide λ = −l'_2 (x_1 x_2 + 1)/(l'_1 (x_1² + 1))
/// drifts (l'_1, l'_2 change as c and a move) until it leaves [0, 1]: the
/// flow releases the kink there, with no other event near, so only the
/// within-step cut (`cut_release`) can place it. Reference: the hand-written
/// field above, rk4 at h = 1e-4 (global error ~ h⁴ = 1e-16 per unit of
/// scale) with the slide and the release bisected to rounding. The tool
/// (dop853, rtol 1e-12) carries a state error of about K tol |w| ~ 1e-11
/// (K ≈ 30 steps), which moves λ by |∇λ| 1e-11 and the release time by
/// that over |dλ/dt| (both O(1) here): 1e-9 allows a factor 100. After the
/// release the identity holds to C12's 1e-10 max |y_end − y0| and z_1 has
/// left its surface to the side λ left through (beyond 1e-6; a held kink
/// stays within 1e-12).
#[test]
fn within_step_release() {
    let w0 = [1.0, -0.5, 0.5, 1.0];
    let z1 = |w: &[f64; 4]| w[0] * ONE_UNIT.0[0] + w[1];
    let slide = one_unit_until((0.0, w0), false, |w| z1(w) <= 0.0);
    let leaves = |w: &[f64; 4]| !(0.0..=1.0).contains(&one_unit_field(w, true).1);
    let (t_release, w_release) = one_unit_until(slide, true, leaves);
    let upper = one_unit_field(&w_release, true).1 > 1.0;
    let (_, out) = run(&json!({
        "data": {"source": "inline", "train_x": [[1.0], [1.5]], "train_y": [-1.0, 1.0],
                 "test_x": [[0.0], [2.0]]},
        "model": {"arch": "mlp", "hidden": [1], "activation": "relu"},
        "init": {"w0": w0}, "loss": {"kind": "squared"},
        "flow": {"t_end": 2.0, "method": "dop853", "rtol": 1e-12, "atol": 1e-14, "events": true}}));
    let events: Vec<(Option<&str>, f64)> = out
        .conditions
        .events
        .iter()
        .map(|e| (e.event, e.t))
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].0, Some("slide"));
    assert!(
        (events[0].1 - slide.0).abs() <= 1e-9,
        "{events:?} vs {}",
        slide.0
    );
    assert_eq!(events[1].0, Some("release"));
    assert!(
        (events[1].1 - t_release).abs() <= 1e-9,
        "{events:?} vs {t_release}"
    );
    assert!(
        out.max_abs_residual() <= 1e-10 * spread(&out),
        "{:e}",
        out.max_abs_residual()
    );
    let z_end = out.w_end[0] + out.w_end[1];
    assert!(
        if upper { z_end > 1e-6 } else { z_end < -1e-6 },
        "z_1(T) = {z_end:e}, released to the {} side",
        if upper { "upper" } else { "lower" }
    );
}

/// A kink met inside the first step, and a sliding mode that starts at
/// t = 0. Both used to stop the run with "slides" at the first step: the
/// "back across right after its event" rule read the first step's
/// predecessor (index 0) as an event. The problem of `closed_form`: (i)
/// with rk4 at h = 1/2 the crossing at t* = 1/3 lies in the first step;
/// (ii) from w0 = (1/3, 2/3), on the kink at t = 0, it slides at once with
/// the constant field (−1/2, 1/2), so w(1) = (−1/6, 7/6). The fields are
/// constant, so rk4 is exact up to rounding: 64 ε as in E5's test.
#[test]
fn kinks_at_the_first_step_and_at_t0_are_handled() {
    let mut first_step = closed_form("rk4");
    first_step["flow"] = json!({"t_end": 1.0, "method": "rk4", "step": 0.5, "events": true});
    let mut at_start = first_step.clone();
    at_start["init"]["w0"] = json!([1.0 / 3.0, 2.0 / 3.0]);
    for (name, spec, want, t_slide) in [
        (
            "crossing in the first step",
            first_step,
            [0.0, 1.0],
            1.0 / 3.0,
        ),
        ("sliding from t = 0", at_start, [-1.0 / 6.0, 7.0 / 6.0], 0.0),
    ] {
        let (_, out) = run(&spec);
        for (got, want) in out.w_end.iter().zip(want) {
            assert!(
                (got - want).abs() <= 64.0 * EPS,
                "{name}: w_end {:?}",
                out.w_end
            );
        }
        let slide = out
            .conditions
            .events
            .iter()
            .find(|e| e.event == Some("slide"));
        let slide = slide.unwrap_or_else(|| panic!("{name}: no slide event"));
        assert!(
            (slide.t - t_slide).abs() <= 64.0 * EPS,
            "{name}: slide at {}",
            slide.t
        );
    }
}

/// squared_hinge's l' is continuous at its kink, so no sliding mode can
/// hold it (E5, E14): the field is one field on the surface. The search's
/// draw (issue 12, E14's control) starts with training point 1's margin
/// at exactly 0 and the flow tangent to it: its dopri5 runs "slid" on the
/// margin (h = 1/4 from t = 4e-16, h = 1/8 from t = 0.063) and so followed
/// another path, or, without the slide, stopped as "slides" by the
/// straight-back rule. Now every step size runs (`run` expects success)
/// with no slide event.
#[test]
fn a_squared_hinge_margin_never_slides() {
    let spec = json!({"seed": 13097,
        "data": {"source": "inline",
            "train_x": [[1.0, -0.75, -0.25], [0.25, -0.75, -1.0], [0.25, -0.25, -0.75]],
            "train_y": [1.0, -1.0, 1.0], "test_x": [[0.0, 0.25, -0.75], [-0.75, 0.0, 0.5]]},
        "model": {"arch": "diag_linear", "init_scale": 0.08838834764831845},
        "init": {"w0": [-1.5, 0.75, 0.75, 0.25, -0.5, 1.0]},
        "loss": {"kind": "squared_hinge"}, "reduction": "sum",
        "flow": {"t_end": 1.0, "method": "dopri5", "step": 0.125, "events": true}});
    for h in [0.25, 0.125, 0.0625, 0.03125] {
        let mut s = spec.clone();
        s["flow"]["step"] = json!(h);
        let (_, out) = run(&s);
        let slides = out
            .conditions
            .events
            .iter()
            .filter(|e| e.event == Some("slide"));
        assert_eq!(slides.count(), 0, "h = {h}: {:?}", out.conditions.events);
    }
}
