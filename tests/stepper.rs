//! The Runge–Kutta engine: each method's observed order on reference
//! problems, fixed-step bookkeeping, and adaptive error control.
use pathkernel::stepper::{Control, OdeSystem, RungeKutta, Stats, StepFailure};
use pathkernel::tableau::{ErrorEstimator, Tableau};

/// y' = λ y.
struct Decay(f64);
impl OdeSystem for Decay {
    fn dim(&self) -> usize {
        1
    }
    fn rhs(&mut self, _t: f64, y: &[f64], dy: &mut [f64]) {
        dy[0] = self.0 * y[0];
    }
}

/// x'' = −x as (x, v).
struct Oscillator;
impl OdeSystem for Oscillator {
    fn dim(&self) -> usize {
        2
    }
    fn rhs(&mut self, _t: f64, y: &[f64], dy: &mut [f64]) {
        dy[0] = y[1];
        dy[1] = -y[0];
    }
}

fn solve<S: OdeSystem>(
    sys: &mut S,
    tab: Tableau,
    y0: &[f64],
    t_end: f64,
    control: Control,
) -> (Vec<f64>, Stats) {
    let mut y = y0.to_vec();
    let mut rk = RungeKutta::new(tab, y.len());
    let stats = rk
        .integrate(sys, &mut y, t_end, control, &mut |_, _| {})
        .expect("integrates");
    (y, stats)
}

fn fixed(t_end: f64, h: f64) -> Control {
    Control::Fixed {
        step: h,
        steps: (t_end / h).round() as usize,
    }
}

/// The runs of a method to check: `fixed`, and `adaptive` too when the
/// method has an error estimator.
fn controls(tab: &Tableau, fixed: Control, adaptive: Control) -> Vec<Control> {
    match tab.error {
        ErrorEstimator::None => vec![fixed],
        _ => vec![fixed, adaptive],
    }
}

/// Every method with its claimed order.
fn methods() -> Vec<Tableau> {
    vec![
        Tableau::euler(),
        Tableau::heun(),
        Tableau::rk4(),
        Tableau::dopri5(),
        Tableau::dop853(),
    ]
}

/// The smallest step of an order study, a power of 2 so that it divides
/// T = 1. The global error of an order-p method on a problem of unit scale
/// over T = 1 is about h^p / (p+1)! (the first unmatched Taylor term of
/// e^{hλ}, accumulated over 1/h steps), so h = (1e-9 (p+1)!)^{1/p} puts it
/// near 1e-9, far above the accumulated rounding (about ε/h); for low orders
/// that h would take too many steps, and 2^-14 (error ≥ 1e-9, rounding
/// ≈ 2e-12) is used instead. The largest step, 4 h ≤ 1, stays inside every
/// method's stability region for |λ| = 1.
fn asymptotic_step(p: u32) -> f64 {
    let factorial: f64 = (1..=p + 1).map(f64::from).product();
    let h = (1e-9 * factorial)
        .powf(1.0 / p as f64)
        .clamp(2f64.powi(-14), 0.25);
    2f64.powi(h.log2().floor() as i32)
}

/// Observed orders log2(e(h)/e(h/2)) over h, h/2, h/4.
fn observed_orders(tab: &Tableau, problem: &dyn Fn(f64) -> f64) -> Vec<f64> {
    let h = 4.0 * asymptotic_step(tab.order);
    let errors: Vec<f64> = (0..3).map(|k| problem(h / 2f64.powi(k))).collect();
    errors.windows(2).map(|e| (e[0] / e[1]).log2()).collect()
}

/// Each method converges at its order on y' = −y, and on the oscillator.
/// The observed order approaches p as h → 0 with a correction O(h); at these
/// steps the correction is below 0.3 for every method (checked for the
/// first order by the next term of the expansion: e(h) = C h^p (1 + O(h))).
#[test]
fn observed_order_matches_the_tableau() {
    for tab in methods() {
        let p = tab.order as f64;
        let decay = |h: f64| {
            let (y, _) = solve(&mut Decay(-1.0), tab.clone(), &[1.0], 1.0, fixed(1.0, h));
            (y[0] - (-1.0f64).exp()).abs()
        };
        let osc = |h: f64| {
            let (y, _) = solve(
                &mut Oscillator,
                tab.clone(),
                &[1.0, 0.0],
                1.0,
                fixed(1.0, h),
            );
            ((y[0] - 1f64.cos()).powi(2) + (y[1] + 1f64.sin()).powi(2)).sqrt()
        };
        for (name, problem) in [
            ("decay", &decay as &dyn Fn(f64) -> f64),
            ("oscillator", &osc),
        ] {
            let orders = observed_orders(&tab, problem);
            let last = *orders.last().unwrap();
            assert!(
                (last - p).abs() < 0.3,
                "{} on {name}: observed orders {orders:?}, claimed {p}",
                tab.name
            );
        }
    }
}

/// Fixed-step runs take exactly K steps of s evaluations each and end at T.
#[test]
fn fixed_steps_are_counted_and_land_on_t_end() {
    for tab in methods() {
        let s = tab.stages();
        let mut ends = Vec::new();
        let mut rk = RungeKutta::new(tab.clone(), 1);
        let mut y = vec![1.0];
        let stats = rk
            .integrate(
                &mut Decay(-1.0),
                &mut y,
                0.7,
                fixed(0.7, 0.1),
                &mut |_, step| ends.push(step.t1),
            )
            .unwrap();
        assert_eq!(stats.steps, 7);
        assert_eq!(ends.last(), Some(&0.7));
        let fsal_saving = if tab.is_fsal() { 6 } else { 0 };
        assert_eq!(stats.rhs_evals, 7 * s - fsal_saving, "{}", tab.name);
    }
}

/// Adaptive runs meet their tolerance: the global error on the oscillator
/// over T = 10 shrinks with rtol, and stays within a modest multiple of it
/// (local control gives global error of the order of the tolerance times
/// the problem's error growth, which is linear for the oscillator).
#[test]
fn adaptive_error_tracks_the_tolerance() {
    for tab in [Tableau::dopri5(), Tableau::dop853()] {
        let mut previous = f64::INFINITY;
        for rtol in [1e-6, 1e-8, 1e-10] {
            let control = Control::Adaptive {
                rtol,
                atol: rtol * 1e-2,
                max_steps: 100_000,
            };
            let (y, stats) = solve(&mut Oscillator, tab.clone(), &[1.0, 0.0], 10.0, control);
            let err = ((y[0] - 10f64.cos()).powi(2) + (y[1] + 10f64.sin()).powi(2)).sqrt();
            assert!(err < 100.0 * rtol, "{} rtol {rtol}: error {err}", tab.name);
            assert!(
                err < previous,
                "{}: error did not shrink with rtol",
                tab.name
            );
            assert!(stats.rhs_evals > stats.steps);
            previous = err;
        }
    }
}

/// A blow-up in finite time (y' = y², y(0) = 1, at t = 1) stops the
/// adaptive run with a step at the floor, never a non-finite state or a
/// wrong "success".
#[test]
fn adaptive_run_fails_cleanly_on_blow_up() {
    struct Blowup;
    impl OdeSystem for Blowup {
        fn dim(&self) -> usize {
            1
        }
        fn rhs(&mut self, _t: f64, y: &[f64], dy: &mut [f64]) {
            dy[0] = y[0] * y[0];
        }
    }
    let mut rk = RungeKutta::new(Tableau::dopri5(), 1);
    let mut y = vec![1.0];
    let control = Control::Adaptive {
        rtol: 1e-8,
        atol: 1e-10,
        max_steps: 100_000,
    };
    let err = rk
        .integrate(&mut Blowup, &mut y, 16.0, control, &mut |_, _| {})
        .unwrap_err();
    match err.0 {
        StepFailure::StepTooSmall { t, h } => {
            // The numerical blow-up time differs from 1 by about the tolerance.
            assert!((t - 1.0).abs() < 1e-6, "{err:?}");
            // The floor is 10 ε max(|t|, t_end), and a step shrinks by at most
            // a factor 5 (dopri5) at a time, so the failing step lies within
            // a factor 5 below it. t_end = 16 ≫ 1: the floor is set by t_end.
            let floor = 10.0 * f64::EPSILON * 16.0;
            assert!(floor / 5.0 < h && h <= floor, "{err:?}");
        }
        StepFailure::TooManySteps { .. } => {
            panic!("the step reaches its floor well before 10^5 attempts: {err:?}")
        }
        StepFailure::NonFinite { t } => {
            panic!("adaptive runs reject non-finite steps, got NonFinite at {t}")
        }
        StepFailure::Interrupted { t } => panic!("interrupted at {t} with no interrupt flag"),
        StepFailure::Chatter { t, .. } | StepFailure::Sliding { t, .. } => {
            panic!("a smooth system cannot chatter or slide, at {t}")
        }
    }
    assert!(y[0].is_finite());
}

/// The oscillator with two quadratures, ∫x dt and ∫v² dt, which the
/// right-hand side never reads: with `coupled` set the stages skip them.
/// Records the derivative of its last evaluation.
struct Quadratures {
    coupled: bool,
    last: Vec<f64>,
}
impl OdeSystem for Quadratures {
    fn dim(&self) -> usize {
        4
    }
    fn coupled_dim(&self) -> usize {
        if self.coupled { 2 } else { 4 }
    }
    fn rhs(&mut self, _t: f64, y: &[f64], dy: &mut [f64]) {
        dy.copy_from_slice(&[y[1], -y[0], y[0], y[1] * y[1]]);
        self.last.copy_from_slice(dy);
    }
}

/// Forming only the coupled part of each stage changes nothing: the stages
/// of the quadratures are never read, so every method, fixed and adaptive,
/// gives bitwise the same solution and statistics either way. The observer's
/// `last_derivative` is the derivative of the system's last evaluation.
#[test]
fn stages_skip_components_the_right_hand_side_never_reads() {
    let adaptive = Control::Adaptive {
        rtol: 1e-9,
        atol: 1e-12,
        max_steps: 100_000,
    };
    for tab in methods() {
        for control in controls(&tab, fixed(3.0, 0.01), adaptive) {
            let run = |coupled: bool| {
                let mut sys = Quadratures {
                    coupled,
                    last: vec![0.0; 4],
                };
                let mut rk = RungeKutta::new(tab.clone(), 4);
                let mut y = vec![1.0, 0.0, 0.0, 0.0];
                let mut observed = 0;
                let stats = rk
                    .integrate(&mut sys, &mut y, 3.0, control, &mut |sys, step| {
                        assert_eq!(step.last_derivative, &sys.last[..], "{}", tab.name);
                        assert_eq!(step.index, observed, "{}", tab.name);
                        observed += 1;
                    })
                    .expect("integrates");
                assert_eq!(observed, stats.steps);
                (y, stats)
            };
            let (full, full_stats) = run(false);
            let (skipped, skipped_stats) = run(true);
            assert_eq!(full, skipped, "{}", tab.name);
            assert_eq!(full_stats, skipped_stats, "{}", tab.name);
            // ∫₀³ cos = sin 3 and ∫₀³ sin² = 3/2 − sin 6 / 4, to the method's accuracy.
            let exact = [3f64.sin(), 1.5 - 6f64.sin() / 4.0];
            let tol = if tab.name == "euler" { 0.05 } else { 1e-4 };
            assert!(
                (full[2] - exact[0]).abs() < tol,
                "{}: {}",
                tab.name,
                full[2]
            );
            assert!(
                (full[3] - exact[1]).abs() < tol,
                "{}: {}",
                tab.name,
                full[3]
            );
        }
    }
}

/// Counts the right-hand-side evaluations it is asked for.
struct Counted<S> {
    inner: S,
    calls: usize,
}
impl<S: OdeSystem> OdeSystem for Counted<S> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn rhs(&mut self, t: f64, y: &[f64], dy: &mut [f64]) {
        self.calls += 1;
        self.inner.rhs(t, y, dy);
    }
}

/// `Stats::rhs_evals` is the number of evaluations actually made, fixed and
/// adaptive (the work model and the report's counts rest on it), and a
/// fixed run of zero steps evaluates nothing and leaves y alone.
#[test]
fn evaluation_count_is_the_number_of_calls() {
    let adaptive = Control::Adaptive {
        rtol: 1e-6,
        atol: 1e-9,
        max_steps: 100_000,
    };
    for tab in methods() {
        for control in controls(&tab, fixed(2.0, 0.1), adaptive) {
            let mut sys = Counted {
                inner: Oscillator,
                calls: 0,
            };
            let (_, stats) = solve(&mut sys, tab.clone(), &[1.0, 0.0], 2.0, control);
            assert_eq!(stats.rhs_evals, sys.calls, "{} {control:?}", tab.name);
        }
        if matches!(tab.error, ErrorEstimator::None) {
            continue;
        }
        // y' = −50 y at a loose tolerance: the step is limited by stability,
        // so steps are rejected. Each attempt, accepted or not, costs s − 1
        // stages; on top come f(0), the starting step's probe, and for a
        // method without FSAL the first stage of every step after the first.
        let mut sys = Counted {
            inner: Decay(-50.0),
            calls: 0,
        };
        let loose = Control::Adaptive {
            rtol: 1e-3,
            atol: 1e-6,
            max_steps: 100_000,
        };
        let (_, stats) = solve(&mut sys, tab.clone(), &[1.0], 1.0, loose);
        let s = tab.stages();
        let first_stages = if tab.is_fsal() { 0 } else { stats.steps - 1 };
        assert!(stats.rejected_steps > 0, "{}", tab.name);
        assert_eq!(
            sys.calls,
            2 + (s - 1) * (stats.steps + stats.rejected_steps) + first_stages,
            "{} {stats:?}",
            tab.name
        );
        let mut sys = Counted {
            inner: Decay(-1.0),
            calls: 0,
        };
        let control = Control::Fixed {
            step: 0.1,
            steps: 0,
        };
        let (y, stats) = solve(&mut sys, tab.clone(), &[1.0], 0.0, control);
        assert_eq!((y, stats, sys.calls), (vec![1.0], Stats::default(), 0));
    }
}

/// The step-size controller of Hairer–Nørsett–Wanner §II.4 (and DOPRI5),
/// replayed on y' = λy, where each stage is known in closed form: the first
/// step is the book's starting step (exponent 1/(q+1) for an estimate of
/// order q) and, after an accepted step with scaled error err, the next step
/// is h / clamp(err^{1/(q+1)} / 0.9, 1/fac_max, fac_min_inverse). The test
/// computes err from the tableau in its own order of summation, so h agrees
/// to the rounding of that cancelling sum (bounded below); a wrong exponent,
/// safety factor or bound moves h by percents.
#[test]
fn adaptive_steps_follow_the_controller() {
    // λ = −2: d2 ≠ d1, so the starting step's probe evaluation matters.
    let (rtol, atol, t_end, lam) = (1e-6, 1e-9, 5.0, -2.0f64);
    // (tableau, max shrink, max grow) as the DOPRI5 and DOP853 codes.
    for (tab, max_shrink, max_grow) in [
        (Tableau::dopri5(), 5.0, 10.0),
        (Tableau::verner98(), 1.0 / 0.333, 6.0),
    ] {
        let ErrorEstimator::Embedded { e, order } = tab.error.clone() else {
            panic!("{} has an embedded estimate", tab.name)
        };
        let expo = 1.0 / (order as f64 + 1.0);
        let scale = |a: f64, b: f64| atol + rtol * a.abs().max(b.abs());
        // The starting step for f = λy from y0 = 1: d0 = 1/sc, d1 = |λ|/sc,
        // h0 = 0.01/|λ|, d2 = |f(y0 + h0 f0) − f0| / sc / h0 = λ²/sc.
        let sc = scale(1.0, 1.0);
        let h0 = 0.01 / lam.abs();
        let big = lam.abs().max(lam * lam) / sc;
        let h_start = (100.0 * h0).min((0.01 / big).powf(expo)).min(t_end);
        // err of a step of size h from y0, with the stages of y' = λy.
        let error = |y0: f64, h: f64| {
            let mut k: Vec<f64> = Vec::new();
            for row in &tab.a {
                let stage = y0 + h * row.iter().zip(&k).map(|(a, k)| a * k).sum::<f64>();
                k.push(lam * stage);
            }
            let y1 = y0 + h * tab.b.iter().zip(&k).map(|(b, k)| b * k).sum::<f64>();
            let est = h * e.iter().zip(&k).map(|(e, k)| e * k).sum::<f64>();
            let size = h * e.iter().zip(&k).map(|(e, k)| (e * k).abs()).sum::<f64>();
            ((est / scale(y0, y1)).abs(), size / scale(y0, y1))
        };
        let mut steps = Vec::new();
        let mut y = vec![1.0];
        let mut rk = RungeKutta::new(tab.clone(), 1);
        let control = Control::Adaptive {
            rtol,
            atol,
            max_steps: 100_000,
        };
        let stats = rk
            .integrate(&mut Decay(lam), &mut y, t_end, control, &mut |_, s| {
                steps.push((s.y0[0], s.h))
            })
            .unwrap();
        assert_eq!(stats.rejected_steps, 0, "{}", tab.name);
        assert!(steps.len() > 3, "{}", tab.name);
        let close = |a: f64, b: f64, rel: f64| (a - b).abs() <= rel * b.abs();
        assert!(
            close(steps[0].1, h_start, 1e-12),
            "{}: first step {} expected {h_start}",
            tab.name,
            steps[0].1
        );
        // The last step is cut (or stretched) to end at t_end.
        for pair in steps[..steps.len() - 1].windows(2) {
            let ((y0, h), (_, h_next)) = (pair[0], pair[1]);
            // Σ e_i k_i cancels (Σ e_i = 0): both sums of it carry an error
            // up to a few ε Σ |e_i k_i|, which the power scales by expo.
            let (err, size) = error(y0, h);
            let rel = expo * 16.0 * f64::EPSILON * size / err + 1e-12;
            let fac = (err.powf(expo) / 0.9).clamp(1.0 / max_grow, max_shrink);
            assert!(
                close(h_next, h / fac, rel),
                "{}: step {h} then {h_next}, expected {}",
                tab.name,
                h / fac
            );
        }
    }
}

/// y' = p t^{p−1}: the order conditions Σ b_i c_i^{k−1} = 1/k (k ≤ p) make a
/// method of order p integrate it exactly, y(1) = 1, if and only if each
/// stage is evaluated at its time t + c_i h: a check of the time argument,
/// which the autonomous problems above never read. Exact up to the rounding
/// of the sums (a few ε per step).
#[test]
fn stages_are_evaluated_at_their_times() {
    struct Power(i32);
    impl OdeSystem for Power {
        fn dim(&self) -> usize {
            1
        }
        fn rhs(&mut self, t: f64, _y: &[f64], dy: &mut [f64]) {
            dy[0] = self.0 as f64 * t.powi(self.0 - 1);
        }
    }
    let adaptive = Control::Adaptive {
        rtol: 1e-6,
        atol: 1e-9,
        max_steps: 100_000,
    };
    for tab in methods() {
        let p = tab.order as i32;
        for control in controls(&tab, fixed(1.0, 0.25), adaptive) {
            let (y, stats) = solve(&mut Power(p), tab.clone(), &[0.0], 1.0, control);
            let bound = 16.0 * f64::EPSILON * (stats.steps as f64 + 1.0);
            assert!((y[0] - 1.0).abs() <= bound, "{}: y(1) = {}", tab.name, y[0]);
        }
    }
}

/// y' = 0: every stage is 0, so the error estimate is exactly zero, which
/// DOP853's norm, E5 / sqrt(n (E5 + 0.01 E3)), must read as zero (its
/// denominator is replaced by 1), not as 0/0; then the steps grow at the
/// controller's largest factor to t_end, from the starting step's branch
/// for a vanishing derivative.
#[test]
fn zero_error_estimate_is_accepted() {
    struct Still;
    impl OdeSystem for Still {
        fn dim(&self) -> usize {
            1
        }
        fn rhs(&mut self, _t: f64, _y: &[f64], dy: &mut [f64]) {
            dy[0] = 0.0;
        }
    }
    let control = Control::Adaptive {
        rtol: 1e-6,
        atol: 1e-9,
        max_steps: 1000,
    };
    // HNW's starting step with f ≡ 0: d1 < 1e-5 gives h0 = 1e-6, and
    // d1 = d2 = 0 ≤ 1e-15 gives h1 = max(1e-3 h0, 1e-6); h = min(100 h0, h1).
    for (tab, max_grow) in [
        (Tableau::dopri5(), 10.0),
        (Tableau::dop853(), 6.0),
        (Tableau::verner98(), 6.0),
    ] {
        let mut y = vec![3.0];
        let mut steps = Vec::new();
        let mut rk = RungeKutta::new(tab.clone(), 1);
        let stats = rk
            .integrate(&mut Still, &mut y, 1e3, control, &mut |_, s| {
                steps.push(s.h)
            })
            .unwrap();
        assert_eq!(y, vec![3.0], "{}", tab.name);
        assert_eq!(stats.rejected_steps, 0, "{}", tab.name);
        assert_eq!(steps[0], 1e-6, "{}", tab.name);
        // Zero error: each step grows by the largest factor (the last is cut).
        for pair in steps[..steps.len() - 1].windows(2) {
            let ratio = pair[1] / pair[0];
            assert!((ratio - max_grow).abs() < 1e-12, "{}: {steps:?}", tab.name);
        }
    }
}

/// Long states are combined chunk by chunk (sequentially above one chunk,
/// across threads above four): independent decays y_j' = −y_j with
/// amplitudes a_j and atol = 0 have the same scaled error in every
/// component, so the run takes the steps of the scalar run and y_j(T) is
/// a_j times its result. The two agree to the rounding of the norm's sum
/// of n equal squares (relative n ε ≈ 4e-12 on h, carried to y at O(1)),
/// far below what a chunk combined from the wrong offset would give (a
/// factor a_i / a_j).
#[test]
fn long_states_are_combined_by_chunks() {
    struct Decays(usize);
    impl OdeSystem for Decays {
        fn dim(&self) -> usize {
            self.0
        }
        fn rhs(&mut self, _t: f64, y: &[f64], dy: &mut [f64]) {
            dy.iter_mut().zip(y).for_each(|(d, y)| *d = -y);
        }
    }
    let control = Control::Adaptive {
        rtol: 1e-8,
        atol: 0.0,
        max_steps: 10_000,
    };
    let (single, single_stats) = solve(&mut Decay(-1.0), Tableau::dopri5(), &[1.0], 2.0, control);
    for n in [3 * 4096 + 5, 5 * 4096 + 7] {
        let amplitudes: Vec<f64> = (0..n).map(|j| 1.0 + j as f64 / 64.0).collect();
        let (y, stats) = solve(&mut Decays(n), Tableau::dopri5(), &amplitudes, 2.0, control);
        assert_eq!(stats.steps, single_stats.steps, "n = {n}");
        for (j, (&y, &a)) in y.iter().zip(&amplitudes).enumerate() {
            let expected = a * single[0];
            assert!(
                (y - expected).abs() <= 1e-10 * expected,
                "n = {n}, component {j}: {y} expected {expected}"
            );
        }
    }
}
