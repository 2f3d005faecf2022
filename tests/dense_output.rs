//! proofs.md E12: dop853's dense output of order 7 (Hairer's CONTD8), its
//! three extra stages, and its use for events.
use pathkernel::events::{Interpolant, StepData};
use pathkernel::order_conditions::{conditions, rooted_trees};
use pathkernel::stepper::{Control, OdeSystem, RungeKutta, Stats};
use pathkernel::tableau::Tableau;
use pathkernel::tableau::dop853_dense::{DENSE_A, DENSE_C, dense_weights};

const EPS: f64 = f64::EPSILON;

/// The 16 stages of dop853's dense output as one tableau: the method's 12,
/// k13 = f(t + h, y1) (row b, c = 1), and k14..k16 (rows of DENSE_A).
fn extended() -> (Vec<f64>, Vec<Vec<f64>>) {
    let tab = Tableau::dop853();
    let mut c = tab.c.clone();
    let mut a = tab.a.clone();
    c.push(1.0);
    a.push(tab.b.clone());
    for (row, ci) in DENSE_A.iter().zip(DENSE_C) {
        c.push(ci);
        a.push(row[..a.len()].to_vec());
    }
    (c, a)
}

/// The extra stages are consistent (c_i = Σ_j a_ij, to the rounding of 16
/// terms of 30-digit constants: 16 eps max|a|), and the weights interpolate:
/// b(0) = 0, b(1) = b exactly, Σ_i b_i(θ) = θ (the order-1 condition).
#[test]
fn dense_stages_are_consistent_and_weights_interpolate() {
    let (c, a) = extended();
    for (i, (row, ci)) in a.iter().zip(&c).enumerate() {
        let scale = row.iter().fold(1.0_f64, |m, x| m.max(x.abs()));
        let sum: f64 = row.iter().sum();
        assert!(
            (sum - ci).abs() <= 16.0 * EPS * scale,
            "stage {}: {sum} {ci}",
            i + 1
        );
    }
    let b = Tableau::dop853().b;
    assert_eq!(dense_weights(0.0), [0.0; 16]);
    assert_eq!(&dense_weights(1.0)[..12], &b[..]);
    assert_eq!(&dense_weights(1.0)[12..], &[0.0; 4]);
    for theta in [0.1, 0.5, 0.9] {
        let sum: f64 = dense_weights(theta).iter().sum();
        assert!(
            (sum - theta).abs() <= 1e3 * EPS,
            "θ = {theta}: Σ b_i = {sum}"
        );
    }
}

/// The dense output has order 7 at every θ: its weights b(θ) on the 16
/// stages satisfy Σ_i b_i(θ) Φ_i(t) = θ^|t| / γ(t) for every rooted tree of
/// order <= 7 (HNW §II.6, Theorem 6.1), each within the rounding bound of
/// `order_conditions` (its magnitude term, 2x for the weights' own nested
/// evaluation); and not order 8: at interior θ some order-8 condition
/// misses by more than 1e3 times its bound.
#[test]
fn dense_weights_satisfy_the_order_conditions_to_seven() {
    let (_, a) = extended();
    let trees = rooted_trees(8);
    for theta in [0.1, 0.25, 0.5, 0.7, 0.9] {
        let b = dense_weights(theta);
        let mut worst8 = 0.0_f64;
        for cond in conditions(&a, &b, &trees) {
            let tree = &trees[cond.tree];
            let target = theta.powi(tree.order as i32) / tree.gamma as f64;
            let miss = (cond.phi - target).abs();
            if tree.order <= 7 {
                assert!(
                    miss <= 2.0 * cond.bound,
                    "θ = {theta}, tree {} of order {}: miss {miss:e}, bound {:e}",
                    cond.tree,
                    tree.order,
                    cond.bound
                );
            } else {
                worst8 = worst8.max(miss / cond.bound);
            }
        }
        assert!(worst8 > 1e3, "θ = {theta}: order 8 holds too ({worst8:e})");
    }
}

/// One dop853 step of y' = (1 + y)² from y0 = 0 (exact y = t / (1 − t)),
/// stages by the extended tableau written out here, and the errors at θ of
/// its dense output and of cubic Hermite on the same step. y0 = 0 keeps
/// the values' rounding at eps θh, far below both errors.
fn dense_errors(h: f64, theta: f64) -> (f64, f64) {
    let (_, a) = extended();
    let f = |y: f64| (1.0 + y) * (1.0 + y);
    let mut k: Vec<f64> = Vec::new();
    for row in &a {
        let y = h * row.iter().zip(&k).map(|(a, k)| a * k).sum::<f64>();
        k.push(f(y));
    }
    let y1 = h * Tableau::dop853()
        .b
        .iter()
        .zip(&k)
        .map(|(b, k)| b * k)
        .sum::<f64>();
    let stages: Vec<Vec<f64>> = k.iter().map(|&k| vec![k]).collect();
    let data = StepData {
        h,
        y0: &[0.0],
        y1: &[y1],
        f0: &stages[0],
        f1: &stages[12],
        k: &stages[..12],
        extra: &stages[13..],
    };
    let exact = theta * h / (1.0 - theta * h);
    let mut out = [0.0];
    Interpolant::Dop853.eval(&data, theta, &mut out);
    let dense = out[0] - exact;
    Interpolant::Hermite.eval(&data, theta, &mut out);
    (dense, out[0] - exact)
}

/// The dense output's local error falls as h^8 (order 7) where cubic
/// Hermite on the same order-8 step falls as h^4 (order 3): the observed
/// exponents log2(e(h)/e(h/2)) at h = 0.1 are within 0.5 of 8 and of 4.
/// The next term is O(h) relatively: the Taylor coefficients of t/(1 − t)
/// are all 1, so it is about (p + 2) h/2 ~ 0.5 of the leading one at h =
/// 0.1, which moves the exponent by log2(1.5)/2 ~ 0.3 (measured 0.23-0.30
/// for dop853, 0.18-0.21 for Hermite). The errors at h = 0.05 (1e-14 and
/// 3e-7) are far above the rounding of 16 terms of size 6 h (3e-17).
#[test]
fn dense_output_error_falls_at_order_seven() {
    for theta in [0.3, 0.7] {
        let (d1, h1) = dense_errors(0.1, theta);
        let (d2, h2) = dense_errors(0.05, theta);
        let (dense, hermite) = ((d1 / d2).log2(), (h1 / h2).log2());
        assert!(
            (dense - 8.0).abs() < 0.5,
            "θ = {theta}: dense exponent {dense}"
        );
        assert!(
            (hermite - 4.0).abs() < 0.5,
            "θ = {theta}: Hermite exponent {hermite}"
        );
    }
}

/// y' = (1 + 2λ) y with one kink g = y − 2: λ = 0 below (y' = y), 1 above
/// (y' = 3y), both pointing up, so y crosses at t* = ln 2 and then y(t) =
/// 2 e^{3(t − t*)}. Counts its evaluations.
struct Kinked {
    lambda: f64,
    last: f64,
    calls: usize,
}

impl OdeSystem for Kinked {
    fn dim(&self) -> usize {
        1
    }
    fn rhs(&mut self, _t: f64, y: &[f64], dy: &mut [f64]) {
        self.calls += 1;
        let l = if self.lambda.is_nan() {
            f64::from(u8::from(y[0] > 2.0))
        } else {
            self.lambda
        };
        dy[0] = (1.0 + 2.0 * l) * y[0];
        self.last = y[0];
    }
    fn switches(&self) -> usize {
        1
    }
    fn switch_values(&mut self, out: &mut [f64]) {
        out[0] = self.last - 2.0;
    }
    fn lock_switches(&mut self, lambda: &[f64]) {
        self.lambda = lambda[0];
    }
    fn switches_at(&mut self, _t: f64, y: &[f64], out: &mut [f64]) {
        out[0] = y[0] - 2.0;
    }
}

/// dop853 with events on the kinked exponential, adaptive and fixed: one
/// event, where the method's own solution meets the kink to rounding (E2
/// (iv): |g| <= 16 eps max(|g0|, |g1|), and |g| <= 4 over a step of h <= 1
/// from y >= 1: 64 eps); its time within the global error of t* (the
/// solution's error up to t*, at most 1e-10 y as below, over the slope
/// y' = 2: 1e-10); y(1) within 1e-10 relatively (C12: rtol 1e-12 over a
/// few dozen steps; fixed h = 1/8, local errors h^9 e^3 / 9! ~ 1e-12); and
/// stats.rhs_evals is the number of calls made, the dense output's three
/// stages per event included (SPEC §4: every evaluation counts).
/// The kinked exponential to t = 1 by dop853 with events: the events
/// (t, y) and the final y, with the evaluations counted and the calls made.
fn run_kinked(control: Control, hermite: bool) -> (Vec<(f64, f64)>, f64, Stats, usize) {
    let mut sys = Kinked {
        lambda: f64::NAN,
        last: 1.0,
        calls: 0,
    };
    let mut rk = RungeKutta::new(Tableau::dop853(), 1);
    rk.locate_events(true);
    if hermite {
        rk.interpolate_by_hermite();
    }
    let mut y = [1.0];
    let mut events = Vec::new();
    let stats = rk
        .integrate(&mut sys, &mut y, 1.0, control, &mut |_, step| {
            if step.event.is_some() {
                events.push((step.t1, step.y1[0]));
            }
        })
        .expect("integrates");
    (events, y[0], stats, sys.calls)
}

const CONTROLS: [Control; 2] = [
    Control::Adaptive {
        rtol: 1e-12,
        atol: 1e-14,
        max_steps: 10_000,
    },
    Control::Fixed {
        step: 0.125,
        steps: 8,
    },
];

#[test]
fn dop853_events_count_their_dense_stages_and_land_on_the_kink() {
    let t_star = 2f64.ln();
    let exact = 2.0 * (3.0 * (1.0 - t_star)).exp();
    for control in CONTROLS {
        for hermite in [false, true] {
            let (events, y, stats, calls) = run_kinked(control, hermite);
            let what = format!("{control:?}, Hermite {hermite}");
            assert_eq!(stats.rhs_evals, calls, "{what}");
            assert_eq!(events.len(), 1, "{what}: {events:?}");
            let (t, y1) = events[0];
            assert!(
                (y1 - 2.0).abs() <= 64.0 * EPS,
                "{what}: y = {y1} at the event"
            );
            assert!((t - t_star).abs() <= 1e-10, "{what}: event at {t}");
            assert!((y - exact).abs() <= 1e-10 * exact, "{what}: {y} {exact}");
        }
    }
}

/// What the order-7 dense output buys (E12): the secant refinement of E2
/// (iv) starts from the dense zero, off the method's own by the
/// interpolant's error (dop853's O(h^8) against Hermite's O(h^4)), so it
/// needs fewer stage sets (12 evaluations each) than the 3 extra stages
/// cost: fewer evaluations in all, adaptive and fixed (measured 174
/// against 195 and 150 against 171: two secant stage sets saved per event
/// for three stages).
#[test]
fn dop853_dense_output_saves_secant_steps() {
    for control in CONTROLS {
        let (.., dense, _) = run_kinked(control, false);
        let (.., hermite, _) = run_kinked(control, true);
        assert!(
            dense.rhs_evals < hermite.rhs_evals,
            "{control:?}: {} against {}",
            dense.rhs_evals,
            hermite.rhs_evals
        );
    }
}
