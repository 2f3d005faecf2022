//! Two relu units sliding together at one training point (proofs.md E15):
//! the multilinear selection against an independent reference of the
//! selection itself, the ε → 0 limit of the flow with smoothed units,
//! written here from SPEC §3 alone (not through src/). The identity and
//! the held constraints cannot tell selections apart: both hold exactly
//! for any field that keeps the kinks.
use pathkernel::data::Dataset;
use pathkernel::error::RunError;
use pathkernel::experiment::{Experiment, Outcome};
use pathkernel::sliding::{RateSystem, mobius, same_point_subsets, weight};
use pathkernel::spec::{Format, Spec};
use serde_json::{Value, json};
use std::path::Path;

const EPS: f64 = f64::EPSILON;

/// f = v relu(a relu(u x + b1) + b2) + c (mlp, hidden [1, 1]; layout u,
/// b1, a, b2, v, c), x_1 = 1 (y* = 0), x_2 = 0.5 (y* = 2), squared loss
/// summed. Both units are active at x_2 throughout; at x_1, z_a = u + b1
/// reaches 0 at t = 0.031 and slides with z_b(x_1) = b2 > 0, then z_b
/// reaches 0 at t = 0.188 and both slide to T with slopes s_a = (x_1 x_2 +
/// 1)/(x_1² + 1) = 3/4 and s_b = −l'_2/l'_1 (E15's worked example).
const W0: [f64; 6] = [-1.0, 1.05, 1.0, 0.1, 1.0, 1.0];
const X: [f64; 2] = [1.0, 0.5];
const Y: [f64; 2] = [0.0, 2.0];

fn chain(flow: Value) -> Value {
    json!({"seed": 1,
        "data": {"source": "inline", "train_x": [[X[0]], [X[1]]], "train_y": [Y[0], Y[1]],
                 "test_x": [[0.8], [-0.3], [2.0]]},
        "model": {"arch": "mlp", "hidden": [1, 1], "activation": "relu"},
        "init": {"w0": W0},
        "loss": {"kind": "squared"}, "reduction": "sum",
        "flow": flow})
}

fn adaptive() -> Value {
    chain(
        json!({"t_end": 1.0, "method": "dop853", "rtol": 1e-12, "atol": 1e-14,
                 "events": true}),
    )
}

fn experiment(value: &Value) -> Experiment {
    let spec = Spec::parse(&value.to_string(), Format::Json).expect("a valid spec");
    let data = Dataset::resolve(&spec, Path::new(".")).expect("data");
    Experiment::new(spec, data)
}

fn run(value: &Value) -> Outcome {
    experiment(value)
        .run(&mut |_| {})
        .expect("the run succeeds")
}

/// softplus_ε(z) = ε log(1 + e^{z/ε}) and its slope, the logistic of z/ε,
/// which runs from 0 to 1 over a width of a few ε.
fn softplus(z: f64, eps: f64) -> (f64, f64) {
    let t = z / eps;
    let s = 1.0 / (1.0 + (-t).exp());
    let value = if t > 0.0 {
        t + (-t).exp().ln_1p()
    } else {
        t.exp().ln_1p()
    };
    (eps * value, s)
}

/// −∇L of the chain with softplus_ε units.
fn smoothed_field(w: &[f64; 6], eps: f64) -> [f64; 6] {
    let [u, b1, a, b2, v, c] = *w;
    let mut dw = [0.0; 6];
    for (x, y) in X.iter().zip(Y) {
        let (ha, sa) = softplus(u * x + b1, eps);
        let (hb, sb) = softplus(a * ha + b2, eps);
        let lp = v * hb + c - y;
        let grad = [
            v * sb * a * sa * x,
            v * sb * a * sa,
            v * sb * ha,
            v * sb,
            hb,
            1.0,
        ];
        for (d, g) in dw.iter_mut().zip(grad) {
            *d -= lp * g;
        }
    }
    dw
}

/// w(T) of the smoothed flow by classical RK4 at h = ε/20: its stiffness
/// is ~|rate|/ε, so h λ ~ 1/20, inside RK4's stability interval and in its
/// asymptotic range (halving h moves w(1) by 1e-12 at ε = 1e-2, measured
/// when writing this test).
fn smoothed(eps: f64, t_end: f64) -> [f64; 6] {
    let steps = (20.0 * t_end / eps).round() as usize;
    let h = t_end / steps as f64;
    let mut w = W0;
    let at = |w: &[f64; 6], k: &[f64; 6], s: f64| std::array::from_fn(|i| w[i] + s * k[i]);
    for _ in 0..steps {
        let k1 = smoothed_field(&w, eps);
        let k2 = smoothed_field(&at(&w, &k1, h / 2.0), eps);
        let k3 = smoothed_field(&at(&w, &k2, h / 2.0), eps);
        let k4 = smoothed_field(&at(&w, &k3, h), eps);
        w = std::array::from_fn(|i| w[i] + h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]));
    }
    w
}

fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// The kink functions at x_1: z_a = u x_1 + b1, z_b = a relu(z_a) + b2.
fn kinks_at_x1(w: &[f64]) -> (f64, f64) {
    let za = w[0] * X[0] + w[1];
    (za, w[2] * za.max(0.0) + w[3])
}

/// E15: pathkernel's w(T) is the limit of the smoothed flows. The
/// smoothed w_ε(T) = w_0(T) + C ε + O(ε²) (E15 (iv)), so the distances
/// d(ε) = |w(T) − w_ε(T)| fall by 10 per decade of ε: the fitted exponent
/// over ε = 1e-2, 1e-3, 1e-4 is within 0.1 of 1, and the Richardson limit
/// w_ε2 − (w_ε1 − w_ε2)/9 (ε1 = 1e-3, ε2 = 1e-4) is within d(1e-4)/10 of
/// w(T) (the O(ε²) remainder there is ~ε1 ε2 |D|, 1e-3 of d(1e-4) for
/// D ~ C). The linearised selection (E11) cannot hold the two kinks at
/// all here: its k x k system is singular (G_a = G_0, E15 (iii)), so its
/// run stops at the second kink with RunError::Sliding.
#[test]
fn two_relu_units_sliding_at_one_point_follow_the_smoothed_limit() {
    let out = run(&adaptive());
    let slides: Vec<_> = out
        .conditions
        .events
        .iter()
        .filter(|e| e.event == Some("slide"))
        .map(|e| (e.kink.point, e.kink.layer, e.t))
        .collect();
    assert_eq!(slides.len(), 2, "{:?}", out.conditions.events);
    assert_eq!((slides[0].0, slides[0].1), (0, Some(0)));
    assert_eq!((slides[1].0, slides[1].1), (0, Some(1)));
    assert!(
        out.conditions
            .events
            .iter()
            .all(|e| e.event != Some("release"))
    );
    let (za, zb) = kinks_at_x1(&out.w_end);
    eprintln!("slides {slides:?}; z_a {za:e}, z_b {zb:e}");
    assert!(
        za.abs() <= 1e-12 && zb.abs() <= 1e-12,
        "z_a {za:e}, z_b {zb:e}"
    );
    let eps = [1e-2, 1e-3, 1e-4];
    let refs: Vec<[f64; 6]> = eps.iter().map(|&e| smoothed(e, 1.0)).collect();
    let d: Vec<f64> = refs.iter().map(|r| distance(&out.w_end, r)).collect();
    let (lx, ly): (Vec<f64>, Vec<f64>) = eps.iter().zip(&d).map(|(e, d)| (e.ln(), d.ln())).unzip();
    let (mx, my) = (lx.iter().sum::<f64>() / 3.0, ly.iter().sum::<f64>() / 3.0);
    let slope = lx
        .iter()
        .zip(&ly)
        .map(|(x, y)| (x - mx) * (y - my))
        .sum::<f64>()
        / lx.iter().map(|x| (x - mx).powi(2)).sum::<f64>();
    eprintln!("d(eps) = {d:?}, fitted exponent {slope}");
    assert!((slope - 1.0).abs() <= 0.1, "d(ε) = {d:?}: exponent {slope}");
    let limit: Vec<f64> = (0..6)
        .map(|i| refs[2][i] - (refs[1][i] - refs[2][i]) / 9.0)
        .collect();
    let off = distance(&out.w_end, &limit);
    eprintln!("|w(T) - Richardson limit| = {off:e}");
    assert!(off <= d[2] / 10.0, "{off:e} against d(1e-4) = {:e}", d[2]);
    let mut old = experiment(&adaptive());
    old.linearised_selection = true;
    match old.run(&mut |_| {}) {
        Err(err @ RunError::Sliding { t, .. }) => {
            // The old selection cannot hold the second kink: it comes back
            // across, which the message says (not Newton's failure, E15).
            let message = err.to_string();
            assert!(message.contains("came straight back"), "{message}");
            assert!(
                message.contains("unit 0 in kinked layer 1 at training point 0"),
                "{message}"
            );
            assert!(
                t >= slides[1].2 - 1e-3 && t <= slides[1].2 + 1e-3,
                "t = {t}"
            );
        }
        other => panic!("the linearised selection ran: {:?}", other.map(|o| o.w_end)),
    }
}

/// E15 (i)-(ii) at fixed steps: rk4 with events at K, 2K, 4K steps keeps
/// its order on the residual (C4's bound, 4 ± 0.3), and the held kinks
/// stay at rounding at each h (their drift is the steps' local error
/// along ∇g, E5 (i); the Newton λ and the corner fields are smooth in w
/// on the surface).
#[test]
fn two_relu_units_sliding_at_one_point_keep_rk4s_order() {
    let mut residuals = Vec::new();
    for steps in [32, 64, 128] {
        let out = run(&chain(
            json!({"t_end": 1.0, "method": "rk4", "step": 1.0 / steps as f64,
                                    "events": true}),
        ));
        let slides = out
            .conditions
            .events
            .iter()
            .filter(|e| e.event == Some("slide"))
            .count();
        assert_eq!(slides, 2, "{steps} steps");
        // z_a and z_b (= b2 on z_a = 0) are linear in w on the surface, and
        // Runge-Kutta steps keep linear first integrals exactly: what is
        // left is rounding, a few ulps of |w| per stage and step.
        let (za, zb) = kinks_at_x1(&out.w_end);
        let size = out.w_end.iter().fold(1.0f64, |m, w| m.max(w.abs()));
        let bound = 16.0 * EPS * steps as f64 * size;
        eprintln!(
            "K = {steps}: z_a {za:e}, z_b {zb:e}, max|r| {:e}",
            out.max_abs_residual()
        );
        assert!(
            za.abs() <= bound && zb.abs() <= bound,
            "z_a {za:e}, z_b {zb:e}"
        );
        residuals.push(out.max_abs_residual());
    }
    for pair in residuals.windows(2) {
        let order = (pair[0] / pair[1]).log2();
        assert!((order - 4.0).abs() <= 0.3, "{residuals:?}: order {order}");
    }
}

/// The subsets of one point's held kinks, proper subsets first.
#[test]
fn same_point_subsets_list_each_points_groups_by_size() {
    let mut out = Vec::new();
    same_point_subsets(&[3, 1, 3, 3], &mut out);
    assert!(
        out.windows(2)
            .all(|p| p[0].count_ones() <= p[1].count_ones())
    );
    let mut sorted = out.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [0b0101, 0b1001, 0b1100, 0b1101]);
    same_point_subsets(&[0, 1, 2], &mut out);
    assert!(out.is_empty());
}

/// Möbius differences recover a multilinear field in three slopes from
/// its 2^3 corners (the subsets of size 3 subtract those of size 2): with
/// G(λ) = Σ_S Π_S λ c_S (c_S per component), M_S = c_S and G_∅ + Σ_l λ_l
/// (G_l − G_∅) + Σ_{|S|>=2} Π_S λ M_S = G(λ) at any λ, to rounding of
/// O(1) sums (16 ε).
#[test]
fn mobius_differences_rebuild_a_trilinear_field() {
    let c = |s: u8, d: usize| ((s as f64 + 1.0) * (d as f64 + 2.0)).sin();
    let at = |mask: u8, d: usize| {
        (0..8u8)
            .filter(|t| t & mask == *t)
            .map(|t| c(t, d))
            .sum::<f64>()
    };
    let mut subsets = Vec::new();
    same_point_subsets(&[0, 0, 0], &mut subsets);
    let mut corners: Vec<Vec<f64>> = subsets
        .iter()
        .map(|&s| (0..3).map(|d| at(s, d)).collect())
        .collect();
    mobius(
        &subsets,
        &mut corners,
        |d| at(0, d),
        |l, d| at(1 << l, d) - at(0, d),
    );
    for (&s, m) in subsets.iter().zip(&corners) {
        for (d, v) in m.iter().enumerate() {
            assert!((v - c(s, d)).abs() <= 16.0 * EPS, "M_{s:b}[{d}] = {v}");
        }
    }
    let lambda = [0.3, 0.7, 0.45];
    for d in 0..3 {
        let exact: f64 = (0..8u8).map(|s| weight(s, &lambda) * c(s, d)).sum();
        let rebuilt = at(0, d)
            + (0..3)
                .map(|l| lambda[l] * (at(1 << l, d) - at(0, d)))
                .sum::<f64>()
            + subsets
                .iter()
                .zip(&corners)
                .map(|(&s, m)| weight(s, &lambda) * m[d])
                .sum::<f64>();
        assert!(
            (exact - rebuilt).abs() <= 16.0 * EPS,
            "{exact} vs {rebuilt}"
        );
    }
}

/// Newton's steps on r(λ) = r0 + S λ + m λ_a λ_b (S column-major 2 x 2)
/// whose root is `root`, from `start`; asserts it lands within 4 ulps.
fn newton_steps(singles: [f64; 4], mixed: [f64; 4], root: [f64; 2], start: [f64; 2]) -> usize {
    let r0: [f64; 2] = std::array::from_fn(|j| {
        -(singles[j] * root[0] + singles[2 + j] * root[1] + mixed[j] * root[0] * root[1])
    });
    let system = RateSystem {
        r0: &r0,
        singles: &singles,
        subsets: &[0b11],
        mixed: &[mixed],
    };
    let mut lambda = start;
    let steps = system.newton(&mut lambda).expect("converges");
    assert!(distance(&lambda, &root) <= 4.0 * EPS, "{lambda:?}");
    steps
}

/// E15 (ii): Newton's method on a general bilinear system converges
/// quadratically from 0.1 away (at most 6 steps to 4 ulps: the error
/// squares each step, 1e-1 → 1e-2 → 1e-4 → 1e-8 → 1e-16, with a
/// contraction constant ~|m|/|J| ≈ 1), and on a triangular one (the
/// feedforward chain's, r_b free of λ_a) it ends in k + 1 = 3 steps.
#[test]
fn newton_solves_multilinear_systems_to_rounding() {
    let root = [0.3, 0.6];
    let general = newton_steps(
        [1.0, 0.4, -0.5, 2.0],
        [0.8, -1.2, 0.0, 0.0],
        root,
        [0.4, 0.5],
    );
    assert!(general <= 6, "{general} steps");
    // Triangular: r_a = r0_a − λ_a λ_b, r_b = r0_b + 2 λ_b.
    let triangular = newton_steps(
        [0.0, 0.0, 0.0, 2.0],
        [-1.0, 0.0, 0.0, 0.0],
        root,
        [0.5, 0.5],
    );
    assert!(triangular <= 3, "{triangular} steps");
}
