//! Specs from arbitrary bytes and arbitrary structured specs, read,
//! resolved and (when small) run.
use super::{Num, assert_finite_report, assert_one_line, assert_reads_back};
use crate::data::Dataset;
use crate::experiment::{Experiment, integration};
use crate::flow::FlowProblem;
use crate::model::{self, reference};
use crate::report::Report;
use crate::spec::{DataSpec, Format, ModelSpec, Spec};
use crate::stepper::{OdeSystem, RungeKutta, Step};
use arbitrary::{Arbitrary, Unstructured};
use serde_json::{Value, json};
use std::path::Path;

/// Most bytes a spec's estimated run may take for these targets to resolve
/// its data (and, for the structured target, run it).
const SMALL_BYTES: f64 = 16.0 * 1024.0 * 1024.0;
/// Most steps of a fuzzed run: fixed-step specs with more are not run, and
/// adaptive ones get at most this `max_steps`.
const MAX_STEPS: usize = 64;
/// Set, this environment variable makes the structured targets print each
/// spec (or model case) they run: how to read what a crash file decodes
/// to. tests/fuzz_replay.rs takes its value as the one file to replay.
pub const SHOW: &str = "PATHKERNEL_FUZZ_SHOW";

/// Property: any bytes, read as a JSON and as a TOML spec, give a spec or
/// one [`InputError`](crate::error::InputError) of one line. A spec read is
/// valid, holds its defaults, and reads back to itself from its JSON (as the
/// report's `spec` field carries it). When its data are not files and its
/// run is small, resolving the data gives a typed error or data that fit
/// the spec: N, M, D >= 1 rows of finite numbers, one target per row,
/// labels the loss accepts, init.w0 of length P.
pub fn spec_bytes(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for format in [Format::Json, Format::Toml] {
        match Spec::parse(text, format) {
            Err(e) => assert_one_line(&e),
            Ok(spec) => {
                check_spec(&spec);
                let _ = resolve_small(&spec);
            }
        }
    }
}

/// A spec read is valid, with defaults filled, and survives a JSON round trip.
fn check_spec(spec: &Spec) {
    spec.validate().expect("a spec read is valid");
    assert_eq!(&spec.clone().with_defaults(), spec, "defaults not filled");
    let json = serde_json::to_string(spec).expect("a spec serialises");
    let back = Spec::parse(&json, Format::Json)
        .unwrap_or_else(|e| panic!("the spec's own JSON is refused: {e}\n{json}"));
    assert_eq!(
        &back, spec,
        "the spec's JSON reads back differently: {json}"
    );
}

/// The data of a spec that reads no file and is small, checked against it.
fn resolve_small(spec: &Spec) -> Option<Dataset> {
    let shape = match &spec.data {
        DataSpec::Csv { .. } => return None,
        DataSpec::Synthetic {
            n_train,
            n_test,
            dim,
            ..
        } => Some((*dim, *n_train, *n_test)),
        DataSpec::Inline {
            train_x, test_x, ..
        } => train_x
            .first()
            .map(|r| (r.len(), train_x.len(), test_x.len())),
        DataSpec::Dataset(data) => Some((data.name.dim(), data.n_train, data.n_test)),
    };
    if let Some((d, n, m)) = shape
        && spec.memory_estimate(d, n, m).bytes > SMALL_BYTES
    {
        return None;
    }
    let data = match Dataset::resolve(spec, Path::new(".")) {
        Err(e) => {
            assert_one_line(&e);
            return None;
        }
        Ok(data) => data,
    };
    let (n, m, d) = (data.train_x.nrows(), data.test_x.nrows(), data.dim());
    assert!(n >= 1 && m >= 1 && d >= 1, "empty data: {n} {m} {d}");
    assert_eq!(data.train_y.nrows(), n);
    assert_eq!(
        data.train_y.ncols(),
        spec.loss.target_columns(spec.model.outputs())
    );
    assert_eq!(data.test_x.ncols(), d);
    if let Some((sd, sn, sm)) = shape {
        assert_eq!(
            (d, n, m),
            (sd, sn, sm),
            "the data differ from the spec's sizes"
        );
    }
    let numbers = data.train_x.iter().chain(&data.train_y).chain(&data.test_x);
    assert!(numbers.clone().all(|x| x.is_finite()), "non-finite data");
    let kind = spec.loss.target_kind();
    assert!(
        data.train_y.iter().all(|&y| kind.accepts(y)),
        "labels vs loss"
    );
    if let Some(init) = &spec.init {
        assert_eq!(init.w0.len(), spec.model.n_params(d), "init.w0 length");
    }
    Some(data)
}

/// A small spec of every shape, as a fuzzer may build it.
#[derive(Arbitrary, Debug)]
struct FuzzSpec {
    seed: u8,
    data: FuzzData,
    model: FuzzModel,
    w0: Option<Vec<Num>>,
    loss: u8,
    loss_parameter: Option<Num>,
    mean: bool,
    method: u8,
    t_end: Num,
    step: FuzzStep,
    rtol: Option<Num>,
    atol: Option<Num>,
    exact_path_kernel: bool,
    max_steps: Option<u8>,
}

#[derive(Arbitrary, Debug)]
enum FuzzData {
    Synthetic {
        function: u8,
        n_train: u8,
        n_test: u8,
        dim: u8,
        noise: Num,
    },
    Inline {
        train_x: Vec<Vec<Num>>,
        train_y: Vec<Num>,
        test_x: Vec<Vec<Num>>,
    },
}

#[derive(Arbitrary, Debug)]
enum FuzzModel {
    Linear(Option<Num>),
    Mlp {
        hidden: Vec<u8>,
        activation: u8,
        bias: Option<bool>,
        ntk: bool,
        init_scale: Option<Num>,
    },
    Resmlp {
        width: u8,
        blocks: u8,
        activation: u8,
    },
    DiagLinear(Option<Num>),
}

#[derive(Arbitrary, Debug)]
enum FuzzStep {
    None,
    /// t_end / K for K in 1..=16: a step that divides.
    Divides(u8),
    Raw(Num),
}

const METHODS: [&str; 6] = ["gd", "heun", "rk4", "dopri5", "dop853", "verner98"];
const FUNCTIONS: [&str; 4] = ["sine", "linear", "xor", "moons"];

impl FuzzSpec {
    fn json(&self) -> Value {
        let data = match &self.data {
            FuzzData::Synthetic {
                function,
                n_train,
                n_test,
                dim,
                noise,
            } => json!({"source": "synthetic", "function": FUNCTIONS[*function as usize % 4],
                "n_train": n_train % 9, "n_test": n_test % 6, "dim": dim % 5, "noise": noise.json()}),
            FuzzData::Inline {
                train_x,
                train_y,
                test_x,
            } => {
                let rows = |rows: &[Vec<Num>]| -> Vec<Vec<Value>> {
                    rows.iter()
                        .take(8)
                        .map(|r| r.iter().take(4).map(|x| x.json()).collect())
                        .collect()
                };
                let y: Vec<Value> = train_y.iter().take(8).map(|x| x.json()).collect();
                json!({"source": "inline", "train_x": rows(train_x), "train_y": y,
                       "test_x": rows(test_x)})
            }
        };
        let activation = |a: u8| crate::activation::Activation::ALL[a as usize % 9].name();
        let mut model = match &self.model {
            FuzzModel::Linear(s) => json!({"arch": "linear", "init_scale": s.map(Num::json)}),
            FuzzModel::Mlp {
                hidden,
                activation: a,
                bias,
                ntk,
                init_scale,
            } => json!({"arch": "mlp",
                "hidden": hidden.iter().take(3).map(|h| h % 5).collect::<Vec<_>>(),
                "activation": activation(*a), "bias": bias,
                "parameterization": if *ntk { "ntk" } else { "standard" },
                "init_scale": init_scale.map(Num::json)}),
            FuzzModel::Resmlp {
                width,
                blocks,
                activation: a,
            } => json!({"arch": "resmlp", "width": width % 4, "blocks": blocks % 3,
                        "activation": activation(*a)}),
            FuzzModel::DiagLinear(s) => {
                json!({"arch": "diag_linear", "init_scale": s.map(Num::json)})
            }
        };
        let losses = crate::loss::Loss::all();
        let loss = losses[self.loss as usize % losses.len()];
        let mut loss = json!({"kind": loss.name()});
        if let (Some(p), "huber" | "cauchy") = (self.loss_parameter, loss["kind"].as_str().unwrap())
        {
            let key = if loss["kind"] == "huber" {
                "delta"
            } else {
                "c"
            };
            loss[key] = p.json();
        }
        let method = METHODS[self.method as usize % METHODS.len()];
        let mut flow = json!({"t_end": self.t_end.json(), "method": method,
                              "rtol": self.rtol.map(Num::json), "atol": self.atol.map(Num::json),
                              "max_steps": self.max_steps});
        let step = match self.step {
            FuzzStep::None => None,
            FuzzStep::Divides(k) => Some(json!(self.t_end.0 / f64::from(k % 16 + 1))),
            FuzzStep::Raw(h) => Some(h.json()),
        };
        flow[if method == "gd" { "lr" } else { "step" }] = json!(step);
        if self.exact_path_kernel {
            flow["exact_path_kernel"] = json!(true);
        }
        let mut spec = json!({"seed": self.seed, "data": data, "model": model, "loss": loss,
                              "reduction": if self.mean { "mean" } else { "sum" }, "flow": flow});
        if let Some(w0) = &self.w0 {
            spec["init"] = json!({"w0": w0.iter().take(64).map(|x| x.json()).collect::<Vec<_>>()});
        }
        // Absent optional fields, not nulls.
        strip_nulls(&mut spec);
        strip_nulls(&mut model);
        spec
    }
}

fn strip_nulls(v: &mut Value) {
    if let Value::Object(fields) = v {
        fields.retain(|_, x| !x.is_null());
        fields.values_mut().for_each(strip_nulls);
    }
}

/// Property: an arbitrary small spec (every arch, data source, loss and
/// method, with arbitrary numbers) is refused with one line, or its data
/// are refused with one line, or it runs (at most [`MAX_STEPS`] steps) to
/// a [`RunError`](crate::error::RunError) or to a report that is finite,
/// reads back bit for bit, and whose residual is consistent with the
/// method: for a model linear in w (linear, mlp with no hidden layer) the
/// identity is exact for every Runge–Kutta method, so |r| is within the
/// rounding bound of [`linear_residual_bound`]. The run is the same, bit for
/// bit, as the flow integrated here outside `Experiment`.
pub fn spec_structured(data: &[u8]) {
    let Ok(fuzz) = FuzzSpec::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    run_checked(&fuzz.json().to_string());
}

/// The properties of [`spec_structured`] for the spec `text` (JSON).
pub(super) fn run_checked(text: &str) {
    if std::env::var_os(SHOW).is_some() {
        eprintln!("{text}");
    }
    let mut spec = match Spec::parse(text, Format::Json) {
        Err(e) => return assert_one_line(&e),
        Ok(spec) => spec,
    };
    check_spec(&spec);
    let Some(data) = resolve_small(&spec) else {
        return;
    };
    if spec.flow.fixed_steps().is_some_and(|k| k > MAX_STEPS) {
        return;
    }
    spec.flow.max_steps = spec.flow.max_steps.min(MAX_STEPS);
    let exp = Experiment::new(spec, data);
    let outcome = match exp.run(&mut |_| {}) {
        Err(e) => {
            let text = e.to_string();
            assert!(!text.contains('\n'), "{text:?}");
            assert!(
                !matches!(e, crate::error::RunError::Interrupted { .. }),
                "{e}"
            );
            return;
        }
        Ok(outcome) => outcome,
    };
    let report = Report::new(&exp, &outcome);
    assert_finite_report(&report);
    assert_reads_back(&report);
    if let Some((w_end, bound)) = linear_residual_bound(&exp) {
        assert!(
            w_end
                .iter()
                .zip(&outcome.w_end)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "the experiment's run differs from the same flow integrated alone"
        );
        for (m, (r, b)) in report.residual.flatten().iter().zip(&bound).enumerate() {
            assert!(
                r.abs() <= *b,
                "query {m}: |r| = {:e} > bound {b:e}",
                r.abs()
            );
        }
    }
}

/// The flow with the magnitudes its rounding errors scale with, tracked
/// over every evaluation, for a model f(w; x) = g(x) · w linear in w.
struct Tracked<'m> {
    flow: FlowProblem<'m>,
    /// g(q_m) and g(x_i), constant in w.
    g_query: Vec<Vec<f64>>,
    g_train: Vec<Vec<f64>>,
    /// Per query m: the largest |g(q_m)|·|w| + Σ_i |A_mi| over the states seen.
    state: Vec<f64>,
    /// Per query m: the largest Σ_i |l'_i| |g(q_m)|·|g(x_i)| over evaluations,
    /// which bounds every term summed into dw · g(q_m) and into Σ_i dA_mi.
    terms: Vec<f64>,
    /// The largest Σ_i |l'_i| over evaluations: a kernel entry that is
    /// subnormal errs by up to half the least subnormal, times l'_i.
    lprime_sum: f64,
}

fn l1(a: &[f64]) -> f64 {
    a.iter().map(|x| x.abs()).sum()
}

fn abs_dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| (a * b).abs()).sum()
}

impl Tracked<'_> {
    fn see(&mut self, y: &[f64]) {
        let layout = self.flow.layout();
        let (w, a) = (layout.w(y), layout.coef_integral(y));
        let m = layout.n_query;
        for (q, g) in self.g_query.iter().enumerate() {
            let a_sum: f64 = a.iter().skip(q).step_by(m).map(|x| x.abs()).sum();
            self.state[q] = self.state[q].max(abs_dot(g, w) + a_sum);
        }
    }
}

impl OdeSystem for Tracked<'_> {
    fn dim(&self) -> usize {
        self.flow.dim()
    }
    fn rhs(&mut self, t: f64, y: &[f64], dy: &mut [f64]) {
        self.flow.rhs(t, y, dy);
        self.see(y);
        for (q, gq) in self.g_query.iter().enumerate() {
            let sum: f64 = self
                .flow
                .lprime()
                .iter()
                .zip(&self.g_train)
                .map(|(lp, gx)| lp.abs() * abs_dot(gq, gx))
                .sum();
            self.terms[q] = self.terms[q].max(sum);
        }
        let lprime_sum: f64 = self.flow.lprime().iter().map(|l| l.abs()).sum();
        self.lprime_sum = self.lprime_sum.max(lprime_sum);
    }
}

/// For a model linear in w: the final w of the flow integrated here, and per
/// query point a bound on |r| from rounding alone. Each accepted step adds
/// h Σ_j b_j k_j to w and to A; in exact arithmetic g(q)·Δw = Σ_i ΔA_i, so
/// r = 0. In floating point (unit roundoff u, s stages, K steps, P
/// parameters, N points, D inputs) the stage sums and updates err by at
/// most (s + 2) u times the state magnitude per step, forming the gradient
/// and kernel terms by (N + D + 4) u times their absolute sum (at most
/// Σ h Σ|b_j| max terms over the run), and evaluating f(w_T) and the
/// kernel machine by (P + N + 2) u times the state magnitude; 4 u covers
/// γ_n = n u / (1 - n u) and the two sides of the identity. Where values
/// are subnormal each operation may also err by half the least subnormal,
/// and an error in w is magnified by |g(q)| in f(q).
fn linear_residual_bound(exp: &Experiment) -> Option<(Vec<f64>, Vec<f64>)> {
    let linear = match &exp.spec.model {
        ModelSpec::Linear { .. } => true,
        ModelSpec::Mlp { hidden, .. } => hidden.is_empty(),
        _ => false,
    };
    if !linear {
        return None;
    }
    let spec = &exp.spec;
    let model = model::build(&spec.model, exp.data.dim());
    let rows = |x: &nalgebra::DMatrix<f64>| -> Vec<Vec<f64>> {
        x.row_iter()
            .map(|r| {
                let x: Vec<f64> = r.iter().copied().collect();
                reference::gradient(&spec.model, &exp.w0, &x)
            })
            .collect()
    };
    let flow = FlowProblem::new(model.as_ref(), spec.loss, spec.reduction, &exp.data);
    let (n, m) = (exp.data.train_x.nrows(), exp.data.test_x.nrows());
    let mut sys = Tracked {
        flow,
        g_query: rows(&exp.data.test_x),
        g_train: rows(&exp.data.train_x),
        state: vec![0.0; m],
        terms: vec![0.0; m],
        lprime_sum: 0.0,
    };
    let (tableau, control) = integration(&spec.flow);
    let (s, b_abs) = (
        tableau.stages() as f64,
        tableau.b.iter().map(|b| b.abs()).sum::<f64>(),
    );
    let mut y = sys.flow.initial_state(&exp.w0);
    sys.see(&y);
    let mut steps = 0.0;
    let mut time = 0.0;
    let mut observer = |sys: &mut Tracked<'_>, step: &Step<'_>| {
        sys.see(step.y1);
        steps += 1.0;
        time += step.h.abs();
    };
    let mut rk = RungeKutta::new(tableau, y.len());
    rk.integrate(&mut sys, &mut y, spec.flow.t_end, control, &mut observer)
        .ok()?;
    let (p, d) = (model.n_params() as f64, exp.data.dim() as f64);
    let (n, u) = (n as f64, f64::EPSILON / 2.0);
    // Σ h may overflow (h near f64::MAX) where the terms are 0: 0 then.
    let over_time = |x: f64| if x == 0.0 { 0.0 } else { time * b_abs * x };
    let bound = (0..m)
        .map(|q| {
            4.0 * u
                * ((steps + 1.0) * (s + 2.0) * sys.state[q]
                    + (n + d + 4.0) * over_time(sys.terms[q])
                    + (p + n + 2.0) * sys.state[q])
                // Underflow: each operation may err by half the least
                // subnormal η. Those on w (forming the gradient terms and
                // the stage sums, P + N + D + 8 of them a stage for each
                // component) reach f(q) times |g(q)|_1; a kernel entry's
                // (D + 2 operations) is multiplied by |l'_i| into A.
                + f64::from_bits(1)
                    * ((1.0 + l1(&sys.g_query[q]))
                        * ((steps + 1.0) * (s + 2.0) * (p + n + d + 8.0) + n * over_time(1.0))
                        + (n + d + 3.0) * over_time(sys.lprime_sum))
        })
        .collect();
    Some((sys.flow.layout().w(&y).to_vec(), bound))
}
