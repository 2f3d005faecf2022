//! Property versions of the engine claims of proofs.md (C4, C6, C7, C10,
//! C11) over random small experiments: every architecture, the smooth
//! losses and activations, random data, w0 and step sizes.
//!
//! The draws are deliberately small (N ≤ 8, M ≤ 4, D ≤ 3, depth ≤ 2,
//! width ≤ 8; models from `strategies::ModelRanges::flow_checks`), with
//! continuous data, init scales and step sizes. Randomness inside a case comes
//! only from its drawn seed, through ChaCha (data; w0 through the spec's
//! seed), so every failure replays. Default case counts keep all
//! properties together well under a minute in release; PROPTEST_CASES
//! overrides them (`PROPTEST_CASES=2000 cargo test --release properties`).
use nalgebra::{DMatrix, SymmetricEigen};
use pathkernel::data::Dataset;
use pathkernel::error::RunError;
use pathkernel::experiment::{Experiment, Outcome};
use pathkernel::flow::FlowProblem;
use pathkernel::loss::{Loss, TargetKind};
use pathkernel::spec::{Format, ModelSpec, Reduction, Spec};
use pathkernel::stepper::{Control, OdeSystem, RungeKutta};
use pathkernel::strategies::{self, ModelRanges};
use pathkernel::tableau::{ErrorEstimator, Tableau};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, StandardNormal};
use serde_json::{Value, json};
use std::path::Path;

const EPS: f64 = f64::EPSILON;

/// One random experiment, without its flow.
#[derive(Clone, Debug)]
struct Case {
    model: ModelSpec,
    loss: Loss,
    reduction: Reduction,
    n: usize,
    m: usize,
    d: usize,
    seed: u64,
}

/// The losses with a continuous second derivative, cauchy's c in [0.5, 2).
/// huber and squared_hinge are only C¹ (l'' jumps), absolute and hinge not
/// even that: their orders are C13's subject, not C4's.
fn smooth_loss_strategy() -> BoxedStrategy<Loss> {
    let kinds = [
        Loss::Squared,
        Loss::Logistic,
        Loss::Bce,
        Loss::Exponential,
        Loss::LogCosh,
        Loss::Cauchy { c: 1.0 },
    ];
    strategies::loss(&kinds, 0.5..2.0)
}

fn case_strategy(smooth_model: bool) -> impl Strategy<Value = Case> {
    (
        strategies::model_spec(&ModelRanges::flow_checks(smooth_model)),
        smooth_loss_strategy(),
        prop_oneof![Just(Reduction::Sum), Just(Reduction::Mean)],
        1usize..=8,
        1usize..=4,
        1usize..=3,
        any::<u64>(),
    )
        .prop_map(|(model, loss, reduction, n, m, d, seed)| Case {
            model,
            loss,
            reduction,
            n,
            m,
            d,
            seed,
        })
}

impl Case {
    /// The spec with inline data drawn from the seed (inputs uniform in
    /// [−1, 1]^D, targets of the loss's kind) and w0 from the spec's seed.
    fn spec(&self, flow: Value) -> Spec {
        let mut rng = ChaCha20Rng::seed_from_u64(self.seed);
        let mut rows = |count: usize| -> Vec<Vec<f64>> {
            (0..count)
                .map(|_| (0..self.d).map(|_| rng.random_range(-1.0..1.0)).collect())
                .collect()
        };
        let (train_x, test_x) = (rows(self.n), rows(self.m));
        let train_y: Vec<f64> = (0..self.n)
            .map(|_| match self.loss.target_kind() {
                TargetKind::Real => rng.random_range(-1.0..1.0),
                TargetKind::PlusMinusOne => {
                    if rng.random_bool(0.5) {
                        1.0
                    } else {
                        -1.0
                    }
                }
                TargetKind::ZeroOne => f64::from(u8::from(rng.random_bool(0.5))),
                TargetKind::ClassIndex => unreachable!("the flow properties draw scalar losses"),
            })
            .collect();
        let value = json!({
            "seed": self.seed,
            "data": {"source": "inline", "train_x": train_x, "train_y": train_y, "test_x": test_x},
            "model": self.model,
            "loss": self.loss,
            "reduction": self.reduction,
            "flow": flow
        });
        Spec::parse(&value.to_string(), Format::Json).expect("a valid spec")
    }

    fn experiment(&self) -> Experiment {
        let spec = self.spec(json!({"t_end": 1.0, "method": "rk4", "step": 1.0}));
        let data = Dataset::resolve(&spec, Path::new(".")).expect("inline data");
        Experiment::new(spec, data)
    }

    /// f is linear in w (linear model, or an MLP without hidden layers):
    /// the identity is then a linear invariant, kept to rounding by every
    /// Runge–Kutta method (C9 (d)).
    fn linear_in_w(&self) -> bool {
        match &self.model {
            ModelSpec::Linear { .. } => true,
            ModelSpec::Mlp { hidden, .. } => hidden.is_empty(),
            _ => false,
        }
    }
}

/// The same experiment with another flow (and optionally other data).
fn run(exp: &Experiment, flow: Value) -> Outcome {
    try_run(exp, flow).expect("the flow runs")
}

fn try_run(exp: &Experiment, flow: Value) -> Result<Outcome, RunError> {
    let mut value = serde_json::to_value(&exp.spec).unwrap();
    value["flow"] = flow;
    let spec = Spec::parse(&value.to_string(), Format::Json).expect("a valid flow");
    Experiment::new(spec, exp.data.clone()).run(&mut |_| {})
}

fn fixed(method: &str, h: f64, steps: usize) -> Value {
    let key = if method == "gd" { "lr" } else { "step" };
    json!({"t_end": steps as f64 * h, "method": method, key: h})
}

/// −∇L(w), from the flow's right-hand side.
fn descent(flow: &mut FlowProblem<'_>, w: &[f64]) -> Vec<f64> {
    let p = w.len();
    let y = flow.initial_state(w);
    let mut dy = vec![0.0; y.len()];
    flow.rhs(0.0, &y, &mut dy);
    dy.truncate(p);
    dy
}

/// The largest |eigenvalue| of ∇²L at w, by 40 power iterations on
/// central differences of ∇L (step 1e-5 relative to |w|, error ~1e-10
/// relative). Power iteration approaches from below; with 40 iterations
/// it is within a few % unless the top two eigenvalues are within a few
/// % of each other, which makes no difference to a step-size choice.
fn hessian_norm(exp: &Experiment, w: &[f64], seed: u64) -> f64 {
    let spec = &exp.spec;
    let mut flow = FlowProblem::new(exp.model.as_ref(), spec.loss, spec.reduction, &exp.data);
    let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x5eed);
    let mut v: Vec<f64> = (0..w.len())
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let scale = 1e-5 * w.iter().fold(1.0f64, |m, x| m.max(x.abs()));
    let mut norm = 0.0;
    for _ in 0..40 {
        let len = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if len == 0.0 {
            return 0.0;
        }
        v.iter_mut().for_each(|x| *x /= len);
        let plus: Vec<f64> = w.iter().zip(&v).map(|(a, b)| a + scale * b).collect();
        let minus: Vec<f64> = w.iter().zip(&v).map(|(a, b)| a - scale * b).collect();
        let (gp, gm) = (descent(&mut flow, &plus), descent(&mut flow, &minus));
        v = gm
            .iter()
            .zip(&gp)
            .map(|(a, b)| (a - b) / (2.0 * scale))
            .collect();
        norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    }
    norm
}

/// λ: the largest |eigenvalue| of ∇²L along the flow over [0, T]: at w0
/// and at up to 16 of the accepted states of a dop853 run (rtol 1e-8),
/// evenly spread by index. The endpoints alone are not enough: a resmlp
/// path passed through λ = 11 between ends with λ ≈ 1. Floored at 1e-3/T
/// so that a nearly flat loss gets a finite step.
fn stiffness(exp: &Experiment, t_end: f64, seed: u64) -> f64 {
    let spec = &exp.spec;
    let mut flow = FlowProblem::new(exp.model.as_ref(), spec.loss, spec.reduction, &exp.data);
    let layout = flow.layout();
    let mut y = flow.initial_state(&exp.w0);
    let mut states = vec![exp.w0.clone()];
    let control = Control::Adaptive {
        rtol: 1e-8,
        atol: 1e-10,
        max_steps: 100_000,
    };
    RungeKutta::new(Tableau::dop853(), layout.dim())
        .integrate(&mut flow, &mut y, t_end, control, &mut |_, step| {
            states.push(layout.w(step.y1).to_vec());
        })
        .expect("the probe run");
    let every = states.len().div_ceil(16).max(1);
    let mut lambda = states
        .iter()
        .step_by(every)
        .map(|w| hessian_norm(exp, w, seed))
        .fold(0.0, f64::max);
    lambda = lambda.max(hessian_norm(exp, states.last().unwrap(), seed));
    lambda.max(1e-3 / t_end)
}

/// S = max_m (|f(w0; q_m)| + |f(w_T; q_m)| + Σ_i |A_i(q_m)|), the scale of
/// the numbers whose sum is the residual (proofs.md 3.5).
fn scale(out: &Outcome) -> f64 {
    (0..out.y0.len())
        .map(|m| out.y0[m].abs() + out.y_end[m].abs() + out.coef_integral.row(m).abs().sum())
        .fold(0.0, f64::max)
}

fn max_abs<'a>(v: impl IntoIterator<Item = &'a f64>) -> f64 {
    v.into_iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// T and the step: T = τ/λ0 (λ0 at w0, τ drawn) so that the flow moves
/// by a fixed amount of its own time scale, then h ≤ ρ/λ with λ along the
/// path, as a whole fraction of T.
fn steps_for(exp: &Experiment, tau: f64, rho: f64, seed: u64) -> (f64, f64, usize) {
    let lambda0 = hessian_norm(exp, &exp.w0, seed).max(1e-3);
    let t_end = tau / lambda0;
    let lambda = stiffness(exp, t_end, seed);
    let steps = (t_end * lambda / rho).ceil().max(1.0) as usize;
    (t_end, t_end / steps as f64, steps)
}

/// The signed identity residuals r(q_m) = g_m(y_K) of one fixed-step run
/// of `tableau` (g_m = f(w; q_m) − Σ_i A_i(q_m) − f(w0; q_m), proofs.md
/// 3.1), with the rounding scale S = max_m S_m of proofs.md 3.5: S_m is the
/// largest |f(w; q_m)| + Σ_i |A_i(q_m)| + |f(w0; q_m)| over the steps plus
/// the larger of Σ_j |w_j ∂_j f(q_m)| at w0 and w_T, which is how far
/// rounding w by ε relative moves f(q_m). The second term is needed where
/// f is a cancelling sum: diag_linear from u = v has f(w0) = 0 while its
/// terms (u_j² − v_j²) x_j are of size α² (a case with S from the first term
/// alone had its residual scattered by ~40 ε K S).
struct Residuals {
    h: f64,
    steps: usize,
    r: Vec<f64>,
    scale: f64,
}

impl Residuals {
    /// The rounding floor ε K S of proofs.md 3.5.
    fn floor(&self) -> f64 {
        EPS * self.steps as f64 * self.scale
    }
}

fn residuals(exp: &Experiment, tableau: &Tableau, h: f64, steps: usize) -> Residuals {
    let (n, m) = (exp.data.train_x.nrows(), exp.data.test_x.nrows());
    let mut f0 = Vec::new();
    let mut r = vec![0.0; m];
    let mut sizes = vec![0.0f64; m];
    let y_end = integrate_fixed(exp, tableau, h, steps, &mut |flow, y1| {
        if f0.is_empty() {
            f0 = flow.outputs()[n..].to_vec();
            return;
        }
        let a = flow.layout().coef_integral(y1);
        for q in 0..m {
            let f = flow.outputs()[n + q];
            let a_sum: f64 = (0..n).map(|i| a[q + i * m]).sum();
            let a_abs: f64 = (0..n).map(|i| a[q + i * m].abs()).sum();
            r[q] = f - a_sum - f0[q];
            sizes[q] = sizes[q].max(f.abs() + a_abs + f0[q].abs());
        }
    });
    let w_end = &y_end[..exp.w0.len()];
    let scale = (0..m)
        .map(|q| {
            let x = &exp.data.test_x;
            sizes[q]
                + moved_by_rounding(exp, &exp.w0, x, q).max(moved_by_rounding(exp, w_end, x, q))
        })
        .fold(0.0, f64::max);
    Residuals { h, steps, r, scale }
}

/// Integrates the augmented flow (proofs.md 3.1) with `tableau` at a fixed
/// step; `each` sees the flow evaluated at w0 (with y0) and then at the end
/// of every step (with y1). Returns y(T).
fn integrate_fixed(
    exp: &Experiment,
    tableau: &Tableau,
    h: f64,
    steps: usize,
    each: &mut dyn FnMut(&FlowProblem<'_>, &[f64]),
) -> Vec<f64> {
    let spec = &exp.spec;
    let mut flow = FlowProblem::new(exp.model.as_ref(), spec.loss, spec.reduction, &exp.data);
    let layout = flow.layout();
    let mut y = flow.initial_state(&exp.w0);
    flow.evaluate(0.0, &exp.w0);
    each(&flow, &y);
    RungeKutta::new(tableau.clone(), layout.dim())
        .integrate(
            &mut flow,
            &mut y,
            steps as f64 * h,
            Control::Fixed { step: h, steps },
            &mut |flow: &mut FlowProblem<'_>, step| {
                flow.evaluate(step.t1, layout.w(step.y1));
                each(flow, step.y1);
            },
        )
        .expect("the flow runs");
    y
}

/// Σ_j |w_j ∂_j f(w; x)| for x the row `row` of `xs`: how far rounding w
/// by ε relative can move f(x), in units of ε (proofs.md 3.5).
fn moved_by_rounding(exp: &Experiment, w: &[f64], xs: &DMatrix<f64>, row: usize) -> f64 {
    let x: Vec<f64> = xs.row(row).iter().copied().collect();
    let grad = pathkernel::model::reference::gradient(&exp.spec.model, w, &x);
    w.iter().zip(&grad).map(|(w, g)| (w * g).abs()).sum()
}

/// Kutta's third-order method (HNW §II.1): a method of order 3 that C4's
/// decision must reject.
fn kutta3() -> Tableau {
    Tableau {
        name: "kutta3",
        order: 3,
        c: vec![0.0, 0.5, 1.0],
        a: vec![vec![], vec![0.5], vec![-1.0, 2.0]],
        b: vec![1.0 / 6.0, 2.0 / 3.0, 1.0 / 6.0],
        error: ErrorEstimator::None,
    }
}

/// rk4 with its last stage moved: a42 = δ, a43 = 1 − δ (rk4: 0, 1). The
/// row sum c4 = 1 and (Ac)_4 = 1/2 stay, so every condition of order ≤ 3
/// holds, and of the order-4 conditions only the tall tree's moves:
/// Σ b A A c = (1 − δ)/24 instead of 1/24. (No single coefficient of rk4
/// can break order 4 alone: every b_i and row sum enters order 1 or 2.)
fn rk4_broken(delta: f64) -> Tableau {
    let mut t = Tableau::rk4();
    t.name = "rk4-broken";
    t.order = 3;
    t.a[3] = vec![0.0, delta, 1.0 - delta];
    t
}

/// The residuals of `tableau` at h, h/2, h/4, … (at most 5 halvings), while
/// some query's |r| stays above 100 times its rounding floor (the first run
/// below it ends the list): rounding then moves each r by < 8 % (C9 (d):
/// |r_rounding| ≤ 8 ε K S).
fn halvings(exp: &Experiment, tableau: &Tableau, h: f64, steps: usize) -> Vec<Residuals> {
    let mut levels = Vec::new();
    for k in 0..=5 {
        let level = residuals(exp, tableau, h / f64::from(1 << k), steps << k);
        if max_abs(&level.r) <= 100.0 * level.floor() {
            break;
        }
        levels.push(level);
    }
    levels
}

/// θ of C4's decision: a last Richardson difference below θ ‖G‖ means G has
/// already converged (the last halving's observed order is within
/// log2(1 ± θ) ≈ ±0.14 of 4). An order-3 method has ‖D‖ ≈ ‖G‖/2 once its h³
/// term dominates, far above θ ‖G‖.
const THETA: f64 = 0.1;

/// C4's decision on the levels h_k = h/2^k of [`halvings`] (proofs.md C4).
/// With the signed residual vector over the queries, G_k = r(h_k)/h_k⁴ and
/// the Richardson differences D_k = G_k − G_{k+1}: for a method of order 4,
/// G(h) = C4 + C5 h + O(h²), so D(h) = C5 h/2 + O(h²) halves with h; for a
/// method of order 3, G(h) = C3/h + O(1) and D(h) = −C3/(2h) + O(1)
/// doubles. Order 4 holds when the last difference did not grow, or G has
/// converged: ‖D_{n−2}‖ ≤ max(‖D_{n−3}‖, θ ‖G_{n−1}‖) + ν, ν the rounding of
/// the three G involved (8 ε K S / h⁴ per component). The θ branch is for
/// differences still pre-asymptotic (C5 h against C6 h²: a resmlp case had
/// ‖D‖ 1.7e-5, 2.7e-5, then 1.8e-5, 1.2e-5 below the floor, with G ≈ 8e-4
/// and max-abs orders 4.03, 4.05). None with fewer than three levels; Err
/// with the evidence when order 4 fails.
fn order_four(levels: &[Residuals]) -> Option<Result<(), String>> {
    let n = levels.len();
    if n < 3 {
        return None;
    }
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let g: Vec<Vec<f64>> = levels
        .iter()
        .map(|l| l.r.iter().map(|r| r / l.h.powi(4)).collect())
        .collect();
    let d: Vec<f64> = g
        .windows(2)
        .map(|w| {
            norm(
                &w[0]
                    .iter()
                    .zip(&w[1])
                    .map(|(a, b)| a - b)
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let sqrt_m = (levels[0].r.len() as f64).sqrt();
    let noise = |l: &Residuals| 8.0 * l.floor() / l.h.powi(4) * sqrt_m;
    let nu = noise(&levels[n - 3]) + 2.0 * noise(&levels[n - 2]) + noise(&levels[n - 1]);
    let converged = THETA * norm(&g[n - 1]);
    if d[n - 2] <= d[n - 3].max(converged) + nu {
        Some(Ok(()))
    } else {
        let orders: Vec<f64> = levels
            .windows(2)
            .map(|w| (max_abs(&w[0].r) / max_abs(&w[1].r)).log2())
            .collect();
        Some(Err(format!(
            "‖D_k‖ = {d:?} grows, past θ ‖G‖ = {converged:e} (ν = {nu:e}); max-abs orders {orders:?}, h = {}",
            levels[0].h
        )))
    }
}

/// rk4 passes C4's decision and the three order-3 tableaux above (kutta3,
/// rk4_broken with δ = 1 and 1/4) fail it, on the first 48 cases of the
/// property's strategy (a fixed, deterministic draw). Every case where the
/// decision is made must go the right way: the decision is worth nothing
/// if it cannot tell order 3 from order 4.
#[test]
fn order_four_decision_rejects_order_three_methods() {
    use pathkernel::order_conditions::max_residual_by_order;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    // The mutations are what they claim: the order-4 conditions alone fail
    // (those of order ≤ 3 hold to the rounding of a few products of
    // coefficients ≤ 2, ~1e-16).
    for t in [kutta3(), rk4_broken(1.0), rk4_broken(0.25)] {
        let by_order = max_residual_by_order(&t.a, &t.b, 4);
        assert!(
            by_order[..3].iter().all(|&e| e < 1e-15),
            "{}: {by_order:?}",
            t.name
        );
        assert!(by_order[3] > 1e-3, "{}: {by_order:?}", t.name);
    }
    let mut runner = TestRunner::deterministic();
    let strategy = (case_strategy(true), 0.5..2.0f64);
    let (mut decided, mut chances) = (0, 0);
    for _ in 0..48 {
        let (case, tau) = strategy.new_tree(&mut runner).unwrap().current();
        if case.linear_in_w() {
            continue;
        }
        let exp = case.experiment();
        let (_, h, steps) = steps_for(&exp, tau, 0.125, case.seed);
        let verdict = |t: &Tableau| order_four(&halvings(&exp, t, h, steps));
        if let Some(v) = verdict(&Tableau::rk4()) {
            assert!(v.is_ok(), "rk4 on {case:?}: {v:?}");
        }
        for t in [kutta3(), rk4_broken(1.0), rk4_broken(0.25)] {
            chances += 1;
            if let Some(v) = verdict(&t) {
                assert!(v.is_err(), "{} passes as order 4 on {case:?}", t.name);
                decided += 1;
            }
        }
    }
    // Not vacuous: an order-3 residual stays far above the floor, so
    // nearly every chance is decided (all 93 of 31 nonlinear draws × 3).
    assert!(
        decided * 4 >= chances * 3,
        "only {decided} of {chances} decided"
    );
}

/// The size of the weights along a run, max(|w0|∞, |w_end|∞): each step
/// rounds w at the size it has then, and a run that shrinks w (a linear
/// model converging near 0 from |w0| ≈ 1) carries the rounding of its
/// early steps, so |w_end| alone is not the scale (a case with |w_end| =
/// 1.5e-3 differed by 600 ulps of w_end, 0.6 ulp of w0).
fn weight_scale(exp: &Experiment, out: &Outcome) -> f64 {
    max_abs(&exp.w0).max(max_abs(&out.w_end))
}

proptest! {
    #![proptest_config(crate::cases(64))]

    /// C4: for a smooth model and loss rk4's identity residual falls at
    /// order 4 (proofs.md C4). The steps start at h = T/K ≤ ρ/λ, ρ = 1/8,
    /// λ the largest |eigenvalue| of ∇²L along the path, and halve while r
    /// stays above 100 times its rounding floor ε K S, at most 5 times;
    /// [`order_four`] decides on the signed residuals of the last three
    /// levels. Not on the max-abs residual's observed order: max_m |r_m| is
    /// not smooth in h, and where the h⁴ coefficient nearly cancels (a
    /// diag_linear case had orders 5.1, then 3.66, 3.09 at another T, with
    /// r·16^k growing 2.4× over two halvings) the order of r is
    /// pre-asymptotic at every step above rounding, while the Richardson
    /// differences of r/h⁴ already halve. ρ = 1/8 and not 1/4: a resmlp
    /// case whose residual reached the floor after two halvings had ‖D‖
    /// grow 1.5× from hλ = 1/4 (its differences changed sign there) and
    /// shrink from hλ = 1/8 on. For f linear in w, g_q is linear and every
    /// step keeps it to rounding (C9 (d)): |r| ≤ 8 K ε S at every step size.
    #[test]
    fn rk4_residual_falls_at_order_four(case in case_strategy(true), tau in 0.5..2.0f64) {
        let exp = case.experiment();
        let (_, h, steps) = steps_for(&exp, tau, 0.125, case.seed);
        if case.linear_in_w() {
            for k in 0..=2 {
                let level = residuals(&exp, &Tableau::rk4(), h / f64::from(1 << k), steps << k);
                let r = max_abs(&level.r);
                prop_assert!(r <= 8.0 * level.floor(), "linear in w: r = {r:e} > 8 ε K S = {:e}", 8.0 * level.floor());
            }
            return Ok(());
        }
        if let Some(Err(evidence)) = order_four(&halvings(&exp, &Tableau::rk4(), h, steps)) {
            prop_assert!(false, "{}", evidence);
        }
    }

    /// C6: gd's exact path kernel closes the identity to rounding for any
    /// stable learning rate lr = α 2/λ, α ∈ [0.05, 0.5] (λ the largest
    /// |eigenvalue| of ∇²L along the flow over the run's span, which gd
    /// follows while stable; a case where λ was taken over another span had
    /// gd blow up and the quadrature fail; the descent lemma needs
    /// lr < 2/λ along the path, α ≤ 1/2 leaves a factor 2 for λ to grow).
    /// Smooth activations only: the 8-node Gauss rule is accurate for
    /// analytic integrands (proofs.md 3.3), not across a relu kink.
    /// Bound (proofs.md C6): per step the update's rounding moves f(q) by
    /// ε Σ_j |w_j ∂_j f(q)| ≤ ε |w| |∇f(q)|, A's accumulation adds ε S, the
    /// kernel products γ_P of Σ_j |∂_j f(q) ∂_j f(x_i)| ≤ |∇f(q)| |∇f(x_i)|
    /// on each increment lr |l'_i|; so |r_exact| ≤ c ε (K (S + |w| G_q) +
    /// P T N max|l'| G_q G_x), G the gradient norms and |l'| at w0 and w_T
    /// (the larger). The test takes c = 8.
    #[test]
    fn gd_exact_path_kernel_is_exact_at_any_stable_rate(
        case in case_strategy(true),
        alpha in 0.05..0.5f64,
        steps in 5usize..40,
    ) {
        let exp = case.experiment();
        // λ at w0 gives the time span; λ along the flow over that span
        // (which gd follows while stable) gives the rate.
        let lambda0 = hessian_norm(&exp, &exp.w0, case.seed).max(1e-3);
        let lambda = stiffness(&exp, steps as f64 * alpha * 2.0 / lambda0, case.seed);
        let lr = alpha * 2.0 / lambda;
        let mut flow = fixed("gd", lr, steps);
        flow["exact_path_kernel"] = json!(true);
        let out = run(&exp, flow);
        let exact = out.exact_max_abs_residual().unwrap();
        let norms = |w: &[f64], x: &DMatrix<f64>| -> f64 {
            (0..x.nrows())
                .map(|r| {
                    let row: Vec<f64> = x.row(r).iter().copied().collect();
                    let g = pathkernel::model::reference::gradient(&exp.spec.model, w, &row);
                    g.iter().map(|v| v * v).sum::<f64>().sqrt()
                })
                .fold(0.0, f64::max)
        };
        let g_q = norms(&exp.w0, &exp.data.test_x).max(norms(&out.w_end, &exp.data.test_x));
        let g_x = norms(&exp.w0, &exp.data.train_x).max(norms(&out.w_end, &exp.data.train_x));
        let w_norm = |w: &[f64]| w.iter().map(|v| v * v).sum::<f64>().sqrt();
        let w_size = w_norm(&exp.w0).max(w_norm(&out.w_end));
        let mut fp = FlowProblem::new(exp.model.as_ref(), exp.spec.loss, exp.spec.reduction, &exp.data);
        fp.evaluate(0.0, &exp.w0);
        let lp0 = max_abs(fp.lprime());
        fp.evaluate(0.0, &out.w_end);
        let lp = lp0.max(max_abs(fp.lprime()));
        let (k, p, t_end) = (steps as f64, exp.w0.len() as f64, lr * steps as f64);
        let bound = 8.0 * EPS
            * (k * (scale(&out) + w_size * g_q) + p * t_end * case.n as f64 * lp * g_q * g_x);
        prop_assert!(exact <= bound, "exact residual {exact:e} > {bound:e}");
    }

    /// C7: with rk4 (b_s ≥ 0) the path kernel on the training points,
    /// K^p = Σ_n h Σ_s b_s J_s J_sᵀ, is symmetric positive semidefinite,
    /// K^p(x, x) ≥ 0, and |K^p(x, x')| ≤ √(K^p(x, x) K^p(x', x')), for every
    /// activation (relu included: each J_s J_sᵀ is a Gram matrix whatever
    /// the kinks). Bound: each K^g entry has error γ_P of
    /// |∇f(x)||∇f(x')| ≤ max diag, the accumulation over K steps (K + 4) ε
    /// of the entry's size, so each entry of the computed K^p is within
    /// e = (P + K + 4) ε max|K^p| of a PSD matrix's and its eigenvalues
    /// within N e (Gershgorin): the test allows 2 N e.
    #[test]
    fn path_kernel_on_training_points_is_psd(
        case in case_strategy(false),
        tau in 0.5..2.0f64,
    ) {
        let mut exp = case.experiment();
        exp.data.test_x = exp.data.train_x.clone();
        // No adaptive probe here (a relu path may slide along a kink, where
        // an adaptive method crawls): λ at w0 only. K^p is PSD for any run
        // that completes (b_s ≥ 0); hλ0 ≤ 1/4 only keeps the run near the
        // flow. A flat start (small λ0, so a long T = τ/λ0) can stiffen
        // later: an mlp [2, 2] leaky_relu case diverged at t ≈ 563 with
        // hλ0 = 1/4. So the step halves (at most 8 times) until the run
        // completes; a case that diverges at every step is no evidence.
        let lambda0 = hessian_norm(&exp, &exp.w0, case.seed).max(1e-3);
        let base = (4.0 * tau).ceil() as usize;
        let h = tau / lambda0 / base as f64;
        let completed = (0..=8).find_map(|k| {
            let steps = base << k;
            match try_run(&exp, fixed("rk4", h / f64::from(1 << k), steps)) {
                Ok(out) => Some((steps, out)),
                Err(RunError::Diverged { .. }) => None,
                Err(other) => panic!("the flow runs: {other}"),
            }
        });
        let Some((steps, out)) = completed else {
            return Err(TestCaseError::reject("diverges at every step"));
        };
        let k = &out.path_kernel;
        let n = k.nrows();
        let p = exp.w0.len() as f64;
        let e = (p + steps as f64 + 4.0) * EPS * max_abs(k.iter());
        for a in 0..n {
            prop_assert!(k[(a, a)] >= -e, "K^p(x_{a}, x_{a}) = {:e}", k[(a, a)]);
            for b in 0..n {
                prop_assert!((k[(a, b)] - k[(b, a)]).abs() <= 2.0 * e, "asymmetric at ({a}, {b})");
                let cs = (k[(a, a)].max(0.0) * k[(b, b)].max(0.0)).sqrt();
                prop_assert!(k[(a, b)].abs() <= cs + 2.0 * e, "Cauchy–Schwarz fails at ({a}, {b})");
            }
        }
        let lowest = SymmetricEigen::new((k + k.transpose()) * 0.5).eigenvalues.min();
        prop_assert!(lowest >= -2.0 * n as f64 * e, "eigenvalue {lowest:e} < −{:e}", 2.0 * n as f64 * e);
    }

    /// C10 (exchangeability): permuting the training rows leaves w(t)
    /// unchanged and permutes the columns of K^p and A, up to the rounding
    /// of summing in another order: a few ε per stage, grown along the flow
    /// by at most e^{λT} (Grönwall): 16 K ε S e^{λT} (smooth cases only, so
    /// that rounding cannot flip a kink decision).
    #[test]
    fn permuting_training_rows_permutes_columns(
        case in case_strategy(true),
        tau in 0.5..2.0f64,
        perm_seed in any::<u64>(),
    ) {
        let exp = case.experiment();
        let (t_end, h, steps) = steps_for(&exp, tau, 0.5, case.seed);
        let lambda_t = stiffness(&exp, t_end, case.seed) * t_end;
        let n = case.n;
        let mut perm: Vec<usize> = (0..n).collect();
        let mut rng = ChaCha20Rng::seed_from_u64(perm_seed);
        for i in (1..n).rev() {
            perm.swap(i, rng.random_range(0..=i));
        }
        let mut permuted = Experiment::new(exp.spec.clone(), exp.data.clone());
        for (new, &old) in perm.iter().enumerate() {
            permuted.data.train_x.set_row(new, &exp.data.train_x.row(old));
            permuted.data.train_y[new] = exp.data.train_y[old];
        }
        let a = run(&exp, fixed("rk4", h, steps));
        let b = run(&permuted, fixed("rk4", h, steps));
        let tol = |s: f64| 16.0 * steps as f64 * EPS * s * lambda_t.exp();
        let (s, kp, w) = (scale(&a), max_abs(a.path_kernel.iter()), weight_scale(&exp, &a));
        for (x, y) in a.w_end.iter().zip(&b.w_end) {
            prop_assert!((x - y).abs() <= tol(w), "w_end differs: {x} vs {y}");
        }
        for (x, y) in a.y_end.iter().zip(&b.y_end) {
            prop_assert!((x - y).abs() <= tol(s), "y_end differs: {x} vs {y}");
        }
        for (new, &old) in perm.iter().enumerate() {
            for q in 0..case.m {
                prop_assert!((b.path_kernel[(q, new)] - a.path_kernel[(q, old)]).abs() <= tol(kp));
                prop_assert!((b.coef_integral[(q, new)] - a.coef_integral[(q, old)]).abs() <= tol(s));
            }
        }
    }

    /// C10 (time rescaling): under "mean" the gradient is the "sum"
    /// gradient over N, so the run with mean to time T N (step h N) equals
    /// the run with sum to T (step h): same w_end, y_end and A, and K^p N
    /// times larger. (SPEC has no loss scale; scaling L by c = 1/N is this
    /// case of "scaling the loss by c equals running for time c T".) The
    /// two runs take the same steps up to rounding: 16 K ε S e^{λT}.
    #[test]
    fn mean_over_time_tn_equals_sum_over_time_t(case in case_strategy(true), tau in 0.5..2.0f64) {
        let mut sum_case = case.clone();
        sum_case.reduction = Reduction::Sum;
        let sum = sum_case.experiment();
        let mut mean_case = case.clone();
        mean_case.reduction = Reduction::Mean;
        let mean = mean_case.experiment();
        let (t_end, h, steps) = steps_for(&sum, tau, 0.5, case.seed);
        let lambda_t = stiffness(&sum, t_end, case.seed) * t_end;
        let n = case.n as f64;
        let a = run(&sum, fixed("rk4", h, steps));
        let b = run(&mean, fixed("rk4", h * n, steps));
        let tol = |s: f64| 16.0 * steps as f64 * EPS * s * lambda_t.exp();
        let (s, kp, w) = (scale(&a), max_abs(a.path_kernel.iter()), weight_scale(&sum, &a));
        for (x, y) in a.w_end.iter().zip(&b.w_end) {
            prop_assert!((x - y).abs() <= tol(w), "w_end: {x} vs {y}");
        }
        for (x, y) in a.y_end.iter().zip(&b.y_end) {
            prop_assert!((x - y).abs() <= tol(s), "y_end: {x} vs {y}");
        }
        for (x, y) in a.coef_integral.iter().zip(b.coef_integral.iter()) {
            prop_assert!((x - y).abs() <= tol(s), "A: {x} vs {y}");
        }
        for (x, y) in a.path_kernel.iter().zip(b.path_kernel.iter()) {
            prop_assert!((n * x - y).abs() <= tol(n * kp), "K^p: {} vs {y}", n * x);
        }
    }

    /// C11: L never increases along the flow. Along rk4 steps with hλ ≤ 1/4
    /// the exact decrease over a step, ≥ h |∇L|² (1 − O(hλ)), dominates the
    /// step's error in L: every elementary differential of the local error
    /// carries the vector field −∇L at each leaf, so ∇L · (local error) is
    /// O(h⁵ λ⁴ |∇L|²) (to leading order in |∇L|). What remains is rounding:
    /// of L itself, a sum of N nonnegative terms, each to a few ulps (C2), so
    /// 64 (N + 1) ε L; and of the outputs, each f(x_i) off by up to ε (|f| +
    /// Σ_j |w_j ∂_j f(x_i)|) (proofs.md 3.5) from evaluation and from storing
    /// w, which moves L by |l'_i| times that: 8 ε Σ_i |l'_i| (...). The second
    /// term matters only near a minimum: a resmlp case at L = 3.3e-27 (|f −
    /// y*| ≈ 8e-14) rose by 1 % in a step, 3.6e-29, ≈ |f − y*| ε × 200.
    #[test]
    fn loss_never_increases_along_the_flow(case in case_strategy(true), tau in 0.5..4.0f64) {
        let exp = case.experiment();
        let (_, h, steps) = steps_for(&exp, tau, 0.25, case.seed);
        let p = exp.w0.len();
        let mut states: Vec<(f64, Vec<f64>)> = Vec::with_capacity(steps + 1);
        integrate_fixed(&exp, &Tableau::rk4(), h, steps, &mut |flow, y| {
            states.push((flow.loss(), y[..p].to_vec()));
        });
        let spec = &exp.spec;
        let mut flow = FlowProblem::new(exp.model.as_ref(), spec.loss, spec.reduction, &exp.data);
        for (k, pair) in states.windows(2).enumerate() {
            let ((before, w), (after, _)) = (&pair[0], &pair[1]);
            let mut tol = 64.0 * (case.n as f64 + 1.0) * EPS * before;
            if *after > before + tol {
                flow.evaluate(0.0, w);
                let outputs = flow.outputs().to_vec();
                tol += 8.0 * EPS * (0..case.n)
                    .map(|i| {
                        let moved = moved_by_rounding(&exp, w, &exp.data.train_x, i);
                        flow.lprime()[i].abs() * (outputs[i].abs() + moved)
                    })
                    .sum::<f64>();
            }
            prop_assert!(after <= &(before + tol), "step {k}: L went from {before} to {after}");
        }
    }
}
