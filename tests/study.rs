//! The identity studies shared by the vector-output and layered-model
//! tests: running a spec, its stiffness, the observed order of the residual
//! as the step halves (C4) and the gd exact path kernel's rounding bound
//! (C6), with the step choices derived in tests/identity.rs.
use nalgebra::{DMatrix, SymmetricEigen};
use pathkernel::data::Dataset;
use pathkernel::experiment::{Experiment, Outcome};
use pathkernel::spec::{Format, Reduction, Spec};
use serde_json::{Value, json};
use std::path::Path;

const EPS: f64 = f64::EPSILON;

pub fn parse(value: Value) -> Spec {
    Spec::parse(&value.to_string(), Format::Json).expect("a valid spec")
}

pub fn run_on(spec: &Spec, data: Dataset) -> Outcome {
    Experiment::new(spec.clone(), data)
        .run(&mut |_| {})
        .expect("the flow runs")
}

pub fn run(spec: &Spec) -> Outcome {
    run_on(spec, Dataset::resolve(spec, Path::new(".")).expect("data"))
}

pub fn with_flow(spec: &Spec, flow: Value) -> Spec {
    let mut value = serde_json::to_value(spec).unwrap();
    value["flow"] = flow;
    parse(value)
}

pub fn max_abs(v: impl IntoIterator<Item = f64>) -> f64 {
    v.into_iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// S = max over (m, c) of |f(w0)| + |f(w_T)| + Σ_i |A_i|: the scale of the
/// numbers whose sum is the residual.
pub fn scale(out: &Outcome) -> f64 {
    (0..out.y0.len())
        .map(|r| out.y0[r].abs() + out.y_end[r].abs() + out.coef_integral.row(r).abs().sum())
        .fold(0.0, f64::max)
}

/// λ, the largest eigenvalue of c K^g over the training points (N C x N C),
/// at w0 and w(T): the flow's stiffness for the squared loss; for
/// cross_entropy the loss Hessian softmax's diag(p) − p pᵀ has eigenvalues
/// at most 1/2, so λ bounds it too.
pub fn stiffness(spec: &Spec) -> f64 {
    let mut data = Dataset::resolve(spec, Path::new(".")).unwrap();
    data.test_x = data.train_x.clone();
    let n = data.train_x.nrows() as f64;
    let probe = with_flow(
        spec,
        json!({"t_end": spec.flow.t_end, "method": "dop853", "rtol": 1e-8}),
    );
    let out = run_on(&probe, data);
    let weight = match spec.reduction {
        Reduction::Sum => 1.0,
        Reduction::Mean => 1.0 / n,
    };
    let top = |k: &DMatrix<f64>| {
        SymmetricEigen::new((k + k.transpose()) * 0.5)
            .eigenvalues
            .max()
    };
    weight * top(&out.tangent_kernel0).max(top(&out.tangent_kernel_end))
}

/// C4: the identity's residual falls at the method's order (gd 1 ± 0.1,
/// rk4 4 ± 0.3) on `spec`, with the steps chosen as identity.rs's C4 test
/// chooses them: hλ ≤ ρ at the largest step moves the last observed order
/// by about 0.36 κ ρ/2 (κ = 1/(p+2)), so ρ = 1/4 for gd (0.015) and ρ = 1
/// for rk4 (0.03), whose residual at ρ = 1/4 can sink to within 100 times
/// rounding; the residual must stay 100 times above rounding at the
/// smallest step.
pub fn assert_orders(spec: &Spec) {
    let lambda = stiffness(spec);
    let t_end = spec.flow.t_end;
    for (method, p, rho, tolerance) in [("gd", 1.0, 0.25, 0.1), ("rk4", 4.0, 1.0, 0.3)] {
        let h = 2f64.powi((rho / lambda).log2().floor() as i32).min(t_end);
        let mut floor = 0.0;
        let r: Vec<f64> = (0..3)
            .map(|k| {
                let step = h / 2f64.powi(k);
                let key = if method == "gd" { "lr" } else { "step" };
                let out = run(&with_flow(
                    spec,
                    json!({"t_end": t_end, "method": method, key: step}),
                ));
                floor = EPS * (t_end / step) * scale(&out);
                out.max_abs_residual()
            })
            .collect();
        assert!(
            r[2] > 100.0 * floor,
            "{method}: r = {r:?} near rounding {floor:e}"
        );
        let order = (r[1] / r[2]).log2();
        assert!(
            (order - p).abs() < tolerance,
            "{method}: residuals {r:?}, observed order {order}, expected {p}"
        );
    }
}

/// C27: on `spec` (smooth), gd's Domingos-form residual falls at order
/// 1 ± 0.1 and its second-order residual r − r2 at order 2 ± 0.2 over
/// h, h/2, h/4 with hλ ≤ 1/4 at h (the range of `assert_orders`: r − r2 =
/// h² (C_2 + C_3 h + ...), so the last observed order is 2 + ~0.36 κ hλ/2,
/// within 0.02 for κ ≤ 1/4); r − r2 must stay 100 times above its rounding
/// 8 K ε (S + max|r2|) at h/4.
pub fn assert_second_order(spec: &Spec) {
    let lambda = stiffness(spec);
    let t_end = spec.flow.t_end;
    let h = 2f64.powi((0.25 / lambda).log2().floor() as i32).min(t_end);
    let mut floor = 0.0;
    let (r, r2): (Vec<f64>, Vec<f64>) = (0..3)
        .map(|k| {
            let lr = h / 2f64.powi(k);
            let out = run(&with_flow(
                spec,
                json!({"t_end": t_end, "method": "gd", "lr": lr}),
            ));
            let term = out.second_order_term.as_ref().expect("gd has r2");
            floor = 8.0 * EPS * (t_end / lr) * (scale(&out) + max_abs(term.iter().copied()));
            (
                out.max_abs_residual(),
                out.second_order_max_abs_residual().unwrap(),
            )
        })
        .unzip();
    assert!(
        r2[2] > 100.0 * floor,
        "r - r2 = {r2:?} near rounding {floor:e}"
    );
    let (first, second) = ((r[1] / r[2]).log2(), (r2[1] / r2[2]).log2());
    assert!((first - 1.0).abs() < 0.1, "residuals {r:?}: order {first}");
    assert!(
        (second - 2.0).abs() < 0.2,
        "r - r2 = {r2:?}: order {second}"
    );
}

/// C6: the gd exact path kernel closes the identity on `spec` within the
/// rounding bound 8 K ε S of identity.rs (40 steps at half the stability
/// limit), with a Riemann-sum residual far above it.
pub fn assert_exact_at_rounding(spec: &Spec) {
    let lambda = stiffness(spec);
    let steps = 40.0;
    let lr = 0.5 * 2.0 / lambda;
    let out = run(&with_flow(
        spec,
        json!({"t_end": steps * lr, "method": "gd", "lr": lr, "exact_path_kernel": true}),
    ));
    let exact = out.exact_max_abs_residual().unwrap();
    let bound = 8.0 * steps * EPS * scale(&out);
    assert!(exact <= bound, "exact residual {exact:e} above {bound:e}");
    assert!(out.max_abs_residual() > 1e3 * bound);
}

/// C12 as a user checks it: the run moved its outputs by more than
/// `moved`, and dop853 at rtol 1e-12 left max|r| within 1e-10 of that
/// change (the bound derived in identity.rs's C12 test).
pub fn assert_tight_identity(out: &Outcome, moved: f64) {
    let change = max_abs(out.y_end.iter().zip(&out.y0).map(|(a, b)| a - b));
    assert!(change > moved, "the outputs barely moved: {change}");
    assert!(
        out.max_abs_residual() <= 1e-10 * change,
        "{:e} of a change {change}",
        out.max_abs_residual()
    );
}
