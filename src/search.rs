//! `pathkernel search`: hunts for minimal, replayable counterexamples to a
//! named claim about the theorem or its readings.
//!
//! Experiments are drawn from [`crate::strategies`] by proptest's runner,
//! seeded through ChaCha from `--seed`, so a search is deterministic; the
//! first failing case is shrunk by proptest to a minimal one, whose w0 is
//! then written out so the spec is self-contained. Each claim measures a
//! dimensionless *violation*, normalised by its threshold: the claim fails
//! on a case when the violation exceeds 1. A run that fails (diverges, or
//! an adaptive run that hits its max_steps) is no evidence either way and
//! counts as a pass.
use crate::conditions::{AVERAGE_TOL, LOSS_RISE_TOL};
use crate::data::Dataset;
use crate::error::{Error, InputError};
use crate::experiment::{Experiment, Outcome, integration};
use crate::report::write_atomic;
use crate::spec::{InitSpec, Method, Spec};
use crate::strategies::{self, Space};
use nalgebra::{DMatrix, SymmetricEigen};
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use std::cell::RefCell;
use std::path::{Path, PathBuf};

/// The claims the search knows, each with its threshold (see [`Claim::statement`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Claim {
    Order,
    GdLimit,
    WeightedAverage,
    FixedCoefficients,
    Lazy,
    MonotoneLoss,
    Psd,
}

/// gd-limit: the residual may be at most this fraction of the change in predictions.
pub const GD_LIMIT_TOL: f64 = 0.1;
/// order: the observed order may fall at most this far below the method's.
pub const ORDER_SLACK: f64 = 0.5;
/// order: the spec runs at h, h/2, ..., h/2^this; the claim fails when the
/// order observed over each of the last two halvings is low, so a failure
/// persists as h shrinks rather than being a transient of large steps.
pub const ORDER_HALVINGS: u32 = 3;
/// order and gd-limit: residuals below this times the problem's scale are
/// rounding, not truncation error: each of at most 4 x 256 steps adds a few
/// ulps (1e-16) of |A|, so rounding stays below 1e-12 of the scale.
pub const ORDER_FLOOR: f64 = 1e-10;
/// fixed-coefficients: the best single a may leave this relative residual in A.
pub const FIXED_COEF_TOL: f64 = 0.01;
/// lazy: |K^p − T K^g(0)|_F may be this fraction of |T K^g(0)|_F.
pub const LAZY_TOL: f64 = 0.1;
/// psd: λ_min may be as low as −this × trace. K^p is a non-negative
/// combination of Gram matrices; each entry's rounding is at most P u times
/// sqrt(K(x,x) K(x',x')) <= trace, and with P <= 10^3 and N <= 12 the
/// eigenvalue error is below 1e-12 trace.
pub const PSD_TOL: f64 = 1e-10;

/// The outcome of a claim on one experiment.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Dimensionless, normalised by the threshold: > 1 means the claim fails.
    pub violation: f64,
    /// What was measured, in words and numbers.
    pub detail: String,
}

impl Evaluation {
    pub fn fails(&self) -> bool {
        self.violation > 1.0
    }
    fn pass(detail: impl Into<String>) -> Evaluation {
        Evaluation {
            violation: 0.0,
            detail: detail.into(),
        }
    }
}

impl Claim {
    pub const ALL: [Claim; 7] = [
        Claim::Order,
        Claim::GdLimit,
        Claim::WeightedAverage,
        Claim::FixedCoefficients,
        Claim::Lazy,
        Claim::MonotoneLoss,
        Claim::Psd,
    ];

    /// The claim called `name` on the command line.
    pub fn by_name(name: &str) -> Option<Claim> {
        Claim::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Claim::Order => "order",
            Claim::GdLimit => "gd-limit",
            Claim::WeightedAverage => "weighted-average",
            Claim::FixedCoefficients => "fixed-coefficients",
            Claim::Lazy => "lazy",
            Claim::MonotoneLoss => "monotone-loss",
            Claim::Psd => "psd",
        }
    }

    /// What the claim says and how its violation is measured.
    pub fn statement(self) -> &'static str {
        match self {
            Claim::Order => {
                "a fixed-step method of order p makes the identity residual fall as h^p: of the orders \
                 observed over h/2 -> h/4 and h/4 -> h/8, log2(r(h/2^k)/r(h/2^(k+1))), the larger is at least \
                 p - 0.5 (violation = (p - larger) / 0.5; residuals below 1e-10 of max(1, |y_end|, \
                 sum_i |A_i|) are rounding and prove nothing)"
            }
            Claim::GdLimit => {
                "at the spec's learning rate gd is a kernel machine up to the Domingos residual: \
                 max|r| <= 0.1 max|y_end - y0| (violation = max|r| / (0.1 max|y_end - y0|); \
                 residuals below 1e-10 of max(1, |y_end|, sum_i |A_i|) are rounding and pass)"
            }
            Claim::WeightedAverage => {
                "each a_i(x) lies within the range of -l'_i along the path \
                 (violation = conditions.weighted_average_excess / 1e-6)"
            }
            Claim::FixedCoefficients => {
                "one coefficient vector a serves every query point: the best single a leaves at most 1% \
                 of A unexplained (violation = conditions.coefficient_variation / 0.01)"
            }
            Claim::Lazy => {
                "the path kernel stays within 10% of T times the initial tangent kernel \
                 (violation = conditions.path_kernel_drift / 0.1)"
            }
            Claim::MonotoneLoss => {
                "the loss never increases between sampled states, gd's iterates or dopri5's steps \
                 (violation = conditions.loss_increase / 1e-9)"
            }
            Claim::Psd => {
                "the path-kernel Gram matrix on the training set is positive semidefinite: \
                 lambda_min(sym K^p) >= -1e-10 trace (violation = -lambda_min / (1e-10 trace))"
            }
        }
    }

    /// The part of SPEC's space the claim is about.
    pub fn space(self) -> Space {
        let mut space = Space::default();
        match self {
            // Fixed steps, 4 <= K <= 32, so that the 8K-step rerun stays
            // cheap and one step is not the whole path; gd is order 1 even
            // at kinks, so it cannot fail and is left out.
            Claim::Order => {
                space.methods = vec![Method::Heun, Method::Rk4, Method::Dopri5];
                space.adaptive = false;
                space.min_step_exponent = 4;
                space.max_step_exponent = 10;
            }
            Claim::GdLimit | Claim::WeightedAverage => space.methods = vec![Method::Gd],
            Claim::FixedCoefficients => space.n_query = 2..=6,
            Claim::Lazy => {}
            // The tracker samples accepted states only for these two.
            Claim::MonotoneLoss => space.methods = vec![Method::Gd, Method::Dopri5],
            // Methods with b >= 0, for which K^p is a non-negative
            // combination of Gram matrices (dopri5's b5 < 0).
            Claim::Psd => {
                space.methods = space
                    .methods
                    .iter()
                    .copied()
                    .filter(|&m| nonnegative_weights(m))
                    .collect();
                space.queries_are_training = true;
                space.n_train = 1..=8;
            }
        }
        space
    }

    /// Runs the experiment (more than once for `order`) and measures the
    /// claim. A panic of the engine is a failure of every claim (violation
    /// f64::MAX), so that the search shrinks it too.
    pub fn evaluate(self, spec: &Spec) -> Evaluation {
        use std::panic::{AssertUnwindSafe, catch_unwind};
        catch_unwind(AssertUnwindSafe(|| self.measure(spec))).unwrap_or_else(|what| {
            let why = what
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| what.downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            Evaluation {
                violation: f64::MAX,
                detail: format!("the run panicked: {why}"),
            }
        })
    }

    fn measure(self, spec: &Spec) -> Evaluation {
        let outcome = match run(spec) {
            Ok(o) => o,
            Err(e) => return Evaluation::pass(format!("no evidence: {e}")),
        };
        match self {
            Claim::Order => order(spec, &outcome),
            Claim::GdLimit => gd_limit(&outcome),
            Claim::WeightedAverage => weighted_average(&outcome),
            Claim::FixedCoefficients => {
                let v = outcome.conditions.coefficient_variation.unwrap_or(0.0);
                Evaluation {
                    violation: v / FIXED_COEF_TOL,
                    detail: format!(
                        "the best single coefficient vector leaves {v:.3e} of A unexplained; \
                         K^g moved {:.3e}",
                        outcome.conditions.tangent_kernel_change.unwrap_or(f64::NAN)
                    ),
                }
            }
            Claim::Lazy => {
                let drift = outcome.conditions.path_kernel_drift.unwrap_or(f64::MAX);
                Evaluation {
                    violation: drift / LAZY_TOL,
                    detail: format!(
                        "|K^p - T K^g(0)| / |T K^g(0)| = {drift:.3e}; K^g(T) moved {:.3e} from K^g(0)",
                        outcome.conditions.tangent_kernel_change.unwrap_or(f64::MAX)
                    ),
                }
            }
            Claim::MonotoneLoss => {
                let rise = outcome.conditions.loss_increase;
                Evaluation {
                    violation: rise / LOSS_RISE_TOL,
                    detail: format!(
                        "the loss rose by {rise:.3e} of L(w0) between two samples \
                         (L {:.6e} -> {:.6e})",
                        outcome.loss0, outcome.loss_end
                    ),
                }
            }
            Claim::Psd => psd(&outcome),
        }
    }
}

/// True when every weight b_j of the method is >= 0.
fn nonnegative_weights(method: Method) -> bool {
    let mut flow = crate::spec::FlowSpec {
        t_end: 1.0,
        method,
        step: None,
        lr: None,
        rtol: None,
        atol: None,
        exact_path_kernel: false,
        max_steps: 1,
    };
    match method {
        Method::Gd => flow.lr = Some(1.0),
        _ => flow.step = Some(1.0),
    }
    integration(&flow).0.b.iter().all(|&b| b >= 0.0)
}

/// The experiment of a spec with inline data, run; a panic is an error too.
fn run(spec: &Spec) -> Result<Outcome, Error> {
    let data = Dataset::resolve(spec, Path::new("."))?;
    let exp = Experiment::new(spec.clone(), data);
    Ok(exp.run(&mut |_| {})?)
}

fn max_abs(v: impl IntoIterator<Item = f64>) -> f64 {
    v.into_iter().fold(0.0, |m, x| m.max(x.abs()))
}

fn order(spec: &Spec, first: &Outcome) -> Evaluation {
    let Some(h) = spec.flow.fixed_step() else {
        return Evaluation::pass("no evidence: not a fixed-step spec");
    };
    let p = f64::from(integration(&spec.flow).0.order);
    let mut residuals = vec![first.max_abs_residual()];
    let mut finest = None;
    for k in 1..=ORDER_HALVINGS {
        let mut s = spec.clone();
        let hk = h / f64::from(1u32 << k);
        match s.flow.method {
            Method::Gd => s.flow.lr = Some(hk),
            _ => s.flow.step = Some(hk),
        }
        match run(&s) {
            Ok(o) => {
                residuals.push(o.max_abs_residual());
                finest = Some(o);
            }
            Err(e) => return Evaluation::pass(format!("no evidence: at step {hk}: {e}")),
        }
    }
    let out = finest.expect("at least one rerun");
    let floor = ORDER_FLOOR * scale(&out);
    let listed = format!(
        "max|r| at h, h/2, h/4, h/8 = {}",
        residuals
            .iter()
            .map(|r| format!("{r:.3e}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if residuals[1..].iter().any(|&r| r <= floor) {
        return Evaluation::pass(format!("no evidence: {listed}, at rounding level"));
    }
    let observed: Vec<f64> = residuals[1..]
        .windows(2)
        .map(|w| (w[0] / w[1]).log2())
        .collect();
    let best = observed.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    Evaluation {
        violation: (p - best) / ORDER_SLACK,
        detail: format!(
            "{listed}: observed orders {} over the last two halvings, for a method of order {p}; {}",
            observed
                .iter()
                .map(|o| format!("{o:.3}"))
                .collect::<Vec<_>>()
                .join(", "),
            out.conditions.verdict
        ),
    }
}

/// The scale of a run's predictions and sums, max(1, |y_end|, Σ_i |A_i|):
/// rounding in the residual is a few ulps of it per step.
fn scale(out: &Outcome) -> f64 {
    1f64.max(max_abs(out.y_end.iter().copied()))
        .max(max_abs(out.coef_integral.row_iter().map(|r| r.abs().sum())))
}

fn gd_limit(out: &Outcome) -> Evaluation {
    let change = max_abs(out.y_end.iter().zip(&out.y0).map(|(e, b)| e - b));
    let r = out.max_abs_residual();
    if r <= ORDER_FLOOR * scale(out) {
        return Evaluation::pass(format!("max|r| = {r:.3e} is at rounding level"));
    }
    Evaluation {
        violation: r / (GD_LIMIT_TOL * change),
        detail: format!(
            "max|r| = {r:.3e} is {:.3e} of max|y_end - y0| = {change:.3e}; L {:.6e} -> {:.6e}",
            r / change,
            out.loss0,
            out.loss_end
        ),
    }
}

fn weighted_average(out: &Outcome) -> Evaluation {
    let c = &out.conditions;
    // The worst pair, for the detail.
    let mut worst = (f64::NEG_INFINITY, 0, 0);
    for (i, (kc, ac)) in out
        .path_kernel
        .column_iter()
        .zip(out.coef_integral.column_iter())
        .enumerate()
    {
        let scale = c.neg_lprime_min[i]
            .abs()
            .max(c.neg_lprime_max[i].abs())
            .max(f64::MIN_POSITIVE);
        for (m, (&k, &a)) in kc.iter().zip(ac.iter()).enumerate() {
            if k != 0.0 {
                let coef = a / k;
                let outside = (c.neg_lprime_min[i] - coef).max(coef - c.neg_lprime_max[i]);
                if outside / scale > worst.0 {
                    worst = (outside / scale, m, i);
                }
            }
        }
    }
    let (_, m, i) = worst;
    let a = out.coef_integral[(m, i)] / out.path_kernel[(m, i)];
    Evaluation {
        violation: c.weighted_average_excess / AVERAGE_TOL,
        detail: format!(
            "{} a_{i}(q_{m}) = {a:.6e} = A / K^p = {:.6e} / {:.6e}, against [{:.6e}, {:.6e}], the \
             range of -l'_{i}; K^g(q_{m}, x_{i}) went {:.6e} -> {:.6e}; K^g changed sign on {} of {} pairs",
            if c.weighted_average_excess > AVERAGE_TOL {
                "outside:"
            } else {
                "every a_i(q_m) within its range; the nearest edge:"
            },
            out.coef_integral[(m, i)],
            out.path_kernel[(m, i)],
            c.neg_lprime_min[i],
            c.neg_lprime_max[i],
            out.tangent_kernel0[(m, i)],
            out.tangent_kernel_end[(m, i)],
            c.kernel_sign_changes,
            c.kernel_pairs
        ),
    }
}

fn psd(out: &Outcome) -> Evaluation {
    let k = &out.path_kernel;
    if k.nrows() != k.ncols() {
        return Evaluation::pass("no evidence: the query points are not the training points");
    }
    let sym: DMatrix<f64> = (k + k.transpose()) * 0.5;
    let trace = sym.trace();
    let lambda_min = SymmetricEigen::new(sym)
        .eigenvalues
        .iter()
        .fold(f64::INFINITY, |a, &b| a.min(b));
    let violation = if trace > 0.0 {
        (-lambda_min).max(0.0) / (PSD_TOL * trace)
    } else {
        0.0
    };
    Evaluation {
        violation,
        detail: format!("lambda_min = {lambda_min:.3e}, trace = {trace:.3e}"),
    }
}

/// How a search is run.
#[derive(Clone, Debug)]
pub struct Options {
    pub claim: Claim,
    /// Passing cases to try before concluding that none fails.
    pub cases: u32,
    pub seed: u64,
    /// Most shrinking steps (each one run of the claim).
    pub max_shrink_iters: u32,
    /// Draw only smooth activations and losses ([`Space::smooth`]).
    pub smooth: bool,
}

impl Options {
    /// The space the search draws from.
    pub fn space(&self) -> Space {
        let space = self.claim.space();
        if self.smooth { space.smooth() } else { space }
    }
}

/// Where a search stands, for a progress display.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Progress {
    pub cases: u32,
    pub shrink_steps: u32,
    /// Largest violation seen among the drawn cases.
    pub best: f64,
    /// The violation of the current smallest failing case, once one failed.
    pub shrinking: Option<f64>,
}

/// What a search found.
#[derive(Clone, Debug, PartialEq)]
pub enum Found {
    /// No case failed.
    Nothing { cases: u32, best: f64 },
    /// A failing case, shrunk; `spec` is self-contained (inline data and init.w0).
    Counterexample {
        spec: Box<Spec>,
        evaluation: Evaluation,
        cases: u32,
        shrink_steps: u32,
    },
}

/// The runner's 32-byte ChaCha seed from a u64 seed.
fn rng_seed(seed: u64) -> [u8; 32] {
    let mut bytes = *b"pathkernel search ------ 8 bytes";
    bytes[24..].copy_from_slice(&seed.to_le_bytes());
    bytes
}

/// Draws experiments for `options.claim` until one fails (then shrinks it)
/// or `options.cases` pass. `progress` sees every evaluation.
pub fn search(options: &Options, progress: &dyn Fn(&Progress)) -> Result<Found, InputError> {
    // Every field that shrinking or generation reads is set here, so that
    // no PROPTEST_* variable of the environment can change the result.
    let config = Config {
        cases: options.cases,
        max_shrink_iters: options.max_shrink_iters,
        max_flat_map_regens: 1_000_000,
        max_local_rejects: 65_536,
        max_global_rejects: 1024,
        max_shrink_time: 0,
        failure_persistence: None,
        fork: false,
        timeout: 0,
        verbose: 0,
        rng_algorithm: RngAlgorithm::ChaCha,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &rng_seed(options.seed));
    let mut runner = TestRunner::new_with_rng(config, rng);
    let state = RefCell::new(Progress::default());
    let claim = options.claim;
    let result = runner.run(&strategies::experiment(&options.space()), |spec| {
        let eval = claim.evaluate(&spec);
        let mut p = state.borrow_mut();
        if p.shrinking.is_some() {
            p.shrink_steps += 1;
        } else {
            p.cases += 1;
            p.best = p.best.max(eval.violation);
        }
        if eval.fails() {
            p.shrinking = Some(eval.violation);
        }
        progress(&p);
        if eval.fails() {
            Err(TestCaseError::fail(eval.detail))
        } else {
            Ok(())
        }
    });
    let p = *state.borrow();
    Ok(match result {
        Ok(()) => Found::Nothing {
            cases: p.cases,
            best: p.best,
        },
        Err(TestError::Fail(_, spec)) => {
            let spec = self_contained(spec);
            let evaluation = claim.evaluate(&spec);
            Found::Counterexample {
                spec: Box::new(spec),
                evaluation,
                cases: p.cases,
                shrink_steps: p.shrink_steps,
            }
        }
        // No filters and no rejections: the runner has no reason to abort.
        Err(TestError::Abort(why)) => {
            return Err(InputError::new(
                "--claim",
                format!("the search aborted: {}", why.message()),
            ));
        }
    })
}

/// The spec with init.w0 written out (the w0 its run uses).
fn self_contained(mut spec: Spec) -> Spec {
    if spec.init.is_none()
        && let Ok(data) = Dataset::resolve(&spec, Path::new("."))
    {
        let w0 = Experiment::new(spec.clone(), data).w0;
        spec.init = Some(InitSpec { w0 });
    }
    spec
}

/// A short description of an experiment's size, for the text.
fn describe(spec: &Spec) -> String {
    let (n, m, d) = match &spec.data {
        crate::spec::DataSpec::Inline {
            train_x, test_x, ..
        } => (train_x.len(), test_x.len(), train_x[0].len()),
        _ => (0, 0, 0),
    };
    let model = serde_json::to_string(&spec.model).unwrap_or_default();
    let loss = serde_json::to_string(&spec.loss).unwrap_or_default();
    let step = match spec.flow.fixed_step() {
        Some(h) => format!("step {h}"),
        None => {
            let (rtol, atol) = spec.flow.tolerances();
            format!("rtol {rtol:e}, atol {atol:e}")
        }
    };
    format!(
        "model {model}, P = {}; loss {loss}, reduction {:?}; N = {n}, M = {m}, D = {d}; {} with {step} to T = {}",
        spec.model.n_params(d),
        spec.reduction,
        spec.flow.method.name(),
        spec.flow.t_end
    )
}

/// The files a search writes into `dir`: the spec (when something was
/// found) and the text. Both are written atomically; their contents depend
/// only on the options.
pub fn write(dir: &Path, options: &Options, found: &Found) -> Result<Vec<PathBuf>, InputError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        InputError::new(
            dir.display().to_string(),
            format!("cannot create the output directory: {e}"),
        )
    })?;
    let name = options.claim.name();
    let text_path = dir.join(format!("{name}.txt"));
    let mut written = Vec::new();
    if let Found::Counterexample { spec, .. } = found {
        let spec_path = dir.join(format!("{name}.json"));
        let json = serde_json::to_string_pretty(spec.as_ref()).expect("a spec always serialises");
        write_atomic(&spec_path, &format!("{json}\n"), "the counterexample")?;
        written.push(spec_path);
    }
    write_atomic(&text_path, &text(options, found), "the search summary")?;
    written.push(text_path);
    Ok(written)
}

/// The summary of a search, printed and written to `<claim>.txt`.
pub fn text(options: &Options, found: &Found) -> String {
    let name = options.claim.name();
    let head = format!(
        "claim {name}: {}\nsearch: seed {}, up to {} cases{}\n",
        options.claim.statement(),
        options.seed,
        options.cases,
        if options.smooth {
            ", smooth activations and losses only"
        } else {
            ""
        }
    );
    match found {
        Found::Nothing { cases, best } => format!(
            "{head}result: no counterexample in {cases} cases (largest violation {best:.3e}, fails above 1)\n"
        ),
        Found::Counterexample {
            spec,
            evaluation,
            cases,
            shrink_steps,
        } => format!(
            "{head}result: FAILS, violation {:.6e} (fails above 1), found at case {cases}, \
             shrunk in {shrink_steps} steps\nminimal case: {}\nwhat failed: {}\nreplay: pathkernel run {name}.json{}\n",
            evaluation.violation,
            describe(spec),
            evaluation.detail,
            if options.claim == Claim::Order {
                format!(" ; pathkernel converge {name}.json --halvings 3")
            } else {
                String::new()
            }
        ),
    }
}

/// `pathkernel search`: runs the search with a progress bar on standard
/// error (drawn only on a terminal), writes its files into `out` and
/// returns the summary to print.
pub fn command(options: &Options, out: &Path) -> Result<String, Error> {
    use indicatif::{ProgressBar, ProgressStyle};
    let bar = ProgressBar::new(u64::from(options.cases));
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} cases {elapsed}")
            .expect("a valid template"),
    );
    let show = |p: &Progress| {
        bar.set_position(u64::from(p.cases));
        bar.set_message(match p.shrinking {
            None => format!("{}: best violation {:.3e}", options.claim.name(), p.best),
            Some(v) => format!("shrinking, step {}: violation {v:.3e}", p.shrink_steps),
        });
    };
    let found = search(options, &show);
    bar.finish_and_clear();
    let found = found?;
    write(out, options, &found)?;
    Ok(text(options, &found))
}
