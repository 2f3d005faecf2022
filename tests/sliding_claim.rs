//! proofs.md E13-E14: the `sliding` claim (the identity with SPEC §1's
//! relu'(0) = 0 on a sliding segment) against E6's prediction, computed
//! here independently, and the `order` claim on kinked models with events
//! (the control, expected to hold).
use crate::counterexamples::draws;
use pathkernel::activation::Activation;
use pathkernel::data::Dataset;
use pathkernel::experiment::{Experiment, Outcome};
use pathkernel::loss::Loss;
use pathkernel::search::Claim;
use pathkernel::spec::Spec;
use std::path::Path;

fn corpus(name: &str) -> Spec {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/counterexamples");
    Spec::from_path(&dir.join(name)).expect("a committed spec")
}

fn run(spec: &Spec, convention: bool) -> Outcome {
    let data = Dataset::resolve(spec, Path::new(".")).expect("inline data");
    let mut exp = Experiment::new(spec.clone(), data);
    exp.convention_kernel = convention;
    exp.run(&mut |_| {}).expect("runs")
}

/// The corpus case sliding.json by hand: f(x) = v relu(u · x), w = (u1, u2,
/// v) from (1/4, 1/4, 1/4), x1 = (−1/4, 1/2) with y* = −1, x2 = (1/2, 0)
/// with y* = 0, squared loss, sum; query q = (0, 1/4). Both units' points
/// start active; z1 = u · x1 falls to 0, where x2's field pushes it up and
/// x1's down: a sliding mode. On it (z1 = 0, l'_1 = f(x1) − y*_1 = 1)
/// Filippov's λ = a_− / (a_− − a_+) with a_− = x1 · u̇(G_0), a_+ = a_− −
/// l'_1 v |x1|², and E6's residual of the convention grows at
///   dr/dt = λ (−l'_1) ∇f(q) · D = −λ v² (q · x1),   D = (v x1, 0).
/// Returns (t*, r(T)) by RK4 at h = 1e-3 (error ~ h^4 = 1e-12 of the unit
/// scale), the slide located by bisection on the step to 1e-15.
fn predicted(t_end: f64) -> (f64, f64) {
    let (x1, x2, q) = ([-0.25, 0.5], [0.5, 0.0], [0.0, 0.25]);
    let dot = |a: [f64; 2], b: [f64; 2]| a[0] * b[0] + a[1] * b[1];
    let relu = |z: f64| z.max(0.0);
    // State (u1, u2, v, r); `slide`: on the segment.
    let field = |s: [f64; 4], slide: bool| -> [f64; 4] {
        let (u, v) = ([s[0], s[1]], s[2]);
        let (z1, z2) = (dot(u, x1), dot(u, x2));
        let (l1, l2) = (v * relu(z1) + 1.0, v * relu(z2));
        let s2 = f64::from(u8::from(z2 > 0.0));
        // G_0: x1 on its lower branch (slope 0); G_1 adds x1's term.
        let g0 = [
            -l2 * v * s2 * x2[0],
            -l2 * v * s2 * x2[1],
            -l2 * relu(z2) - l1 * relu(z1),
        ];
        let jump = [-l1 * v * x1[0], -l1 * v * x1[1]];
        let lambda = if slide {
            let a_minus = x1[0] * g0[0] + x1[1] * g0[1];
            let a_plus = a_minus + dot(x1, jump);
            a_minus / (a_minus - a_plus)
        } else {
            1.0
        };
        let dr = if slide {
            -lambda * l1 * v * v * dot(q, x1) * f64::from(u8::from(dot(u, q) > 0.0))
        } else {
            0.0
        };
        [
            g0[0] + lambda * jump[0],
            g0[1] + lambda * jump[1],
            g0[2],
            dr,
        ]
    };
    let rk4 = |s: [f64; 4], h: f64, slide: bool| -> [f64; 4] {
        let add = |a: [f64; 4], b: [f64; 4], c: f64| std::array::from_fn(|i| a[i] + c * b[i]);
        let k1 = field(s, slide);
        let k2 = field(add(s, k1, h / 2.0), slide);
        let k3 = field(add(s, k2, h / 2.0), slide);
        let k4 = field(add(s, k3, h), slide);
        std::array::from_fn(|i| s[i] + h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]))
    };
    let h = 1e-3;
    let (mut s, mut t) = ([0.25, 0.25, 0.25, 0.0], 0.0);
    loop {
        let next = rk4(s, h, false);
        if dot([next[0], next[1]], x1) <= 0.0 {
            let (mut lo, mut hi) = (0.0, h);
            while hi - lo > 1e-15 {
                let mid = 0.5 * (lo + hi);
                let z = rk4(s, mid, false);
                if dot([z[0], z[1]], x1) > 0.0 {
                    lo = mid
                } else {
                    hi = mid
                }
            }
            s = rk4(s, hi, false);
            t += hi;
            break;
        }
        s = next;
        t += h;
    }
    let t_star = t;
    let steps = ((t_end - t) / h).ceil() as usize;
    let hs = (t_end - t) / steps as f64;
    for _ in 0..steps {
        s = rk4(s, hs, true);
    }
    (t_star, s[3])
}

/// E13: on the committed counterexample the run with events slides from
/// t* (within 1e-9 of the independent computation: its bisection to 1e-15
/// and RK4's 1e-12), the report's identity (Filippov's weights, E6) holds
/// to C12's 1e-10 of max|y_end − y0|, and the identity read with relu'(0)
/// = 0 on the segment misses by E6's prediction: within 1e-9 absolute (the
/// two integrations' errors, ~1e-12 each, with 1e3 of margin) of r(T) =
/// 8.5e-5, i.e. 1.1% of the change, far above the claim's threshold.
#[test]
fn the_convention_residual_on_a_sliding_segment_is_e6_s_prediction() {
    let spec = corpus("sliding.json");
    let (t_star, r_pred) = predicted(spec.flow.t_end);
    let filippov = run(&spec, false);
    let slide = filippov
        .conditions
        .events
        .iter()
        .find(|e| e.event == Some("slide"))
        .expect("a sliding mode");
    assert!(
        (slide.t - t_star).abs() <= 1e-9,
        "slide at {} against {t_star}",
        slide.t
    );
    let change = (filippov.y_end[0] - filippov.y0[0]).abs();
    assert!(filippov.max_abs_residual() <= 1e-10 * change);
    let convention = run(&spec, true);
    let r = convention.residual()[0];
    assert!(
        (r - r_pred).abs() <= 1e-9,
        "residual {r:e} against {r_pred:e} predicted"
    );
    assert!(r.abs() > 1e-3 * change);
    // Same path: the convention changes K^p and A only, never w.
    assert_eq!(convention.w_end, filippov.w_end);
}

/// The `order` claim's space with relu and leaky_relu models and the
/// squared, absolute, hinge and squared_hinge losses (E14's control).
fn kinked_space() -> pathkernel::strategies::Space {
    let mut space = Claim::Order.space();
    space.activations = vec![Activation::Relu, Activation::LeakyRelu];
    space.losses = vec![
        Loss::Squared,
        Loss::Absolute,
        Loss::Hinge,
        Loss::SquaredHinge,
    ];
    space
}

/// E14, the control: the `order` claim on relu and leaky_relu models and
/// the kinked losses, run with events, holds (issue 12 item 5): 96 draws
/// of its space (fixed steps, heun, rk4, dopri5) with kinked models and
/// losses, and its committed counterexample (a kinked loss, heun), pass.
/// Most draws are no evidence (residuals at rounding, or a kink starting
/// at its zero that fixed-step events cannot integrate, E14); the test
/// asks for a few with evidence.
#[test]
fn order_holds_on_kinked_models_with_events() {
    let mut specs = draws(&kinked_space(), 5, 96);
    specs.push(corpus("order.json"));
    let (mut evidence, mut failed) = (0, Vec::new());
    for mut spec in specs {
        spec.flow.events = true;
        let e = Claim::Order.evaluate(&spec);
        if !e.detail.contains("at rounding level") {
            println!("{:.3} {}", e.violation, e.detail);
        }
        evidence += usize::from(!e.detail.starts_with("no evidence"));
        if e.fails() {
            failed.push(e.detail);
        }
    }
    println!("evidence {evidence} of 97");
    assert!(failed.is_empty(), "{failed:?}");
    assert!(evidence >= 4, "{evidence} of 97 with evidence");
}

/// E14's case (1), draw 36 of `draws(space, 5, 96)` (heun, dense –
/// layer_norm – leaky_relu, squared, mean): two units of one layer slide at
/// training point 1, where the multilinear selection equals the linear one
/// (no path crosses two units of one layer: M_S = 0, E15 (iii)). Its
/// orders over h..h/8 (1.33, 1.46) fail the claim, but the finest step is
/// outside C4's asymptotic range (h/8 λ = 0.149 > 1/8, λ = 19.1 at w0):
/// the measure says "pre-asymptotic h", and further halvings reach heun's
/// order 2 (within 0.1 over h/64 .. h/512, measured 1.95, 1.98, 1.99).
#[test]
fn the_two_slide_order_draw_is_pre_asymptotic() {
    let mut spec = draws(&kinked_space(), 5, 96).swap_remove(36);
    spec.flow.events = true;
    let e = Claim::Order.evaluate(&spec);
    assert!(
        e.detail.starts_with("no evidence: pre-asymptotic h") && e.detail.contains("0.149"),
        "{}",
        e.detail
    );
    let new = run(&spec, false);
    let data = Dataset::resolve(&spec, Path::new(".")).expect("inline data");
    let mut old = Experiment::new(spec.clone(), data);
    old.linearised_selection = true;
    let old = old.run(&mut |_| {}).expect("runs");
    let apart = old
        .w_end
        .iter()
        .zip(&new.w_end)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(apart <= 1e-12, "the selections' w(T) differ by {apart:e}");
    let h = spec.flow.fixed_step().expect("fixed steps");
    let residuals: Vec<f64> = (6..=9)
        .map(|k| {
            spec.flow.set_fixed_step(h / f64::from(1u32 << k));
            run(&spec, false).max_abs_residual()
        })
        .collect();
    for pair in residuals.windows(2) {
        let order = (pair[0] / pair[1]).log2();
        assert!((order - 2.0).abs() <= 0.1, "{residuals:?}: order {order}");
    }
}
