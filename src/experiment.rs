//! An experiment: a validated spec with its resolved data, the model it
//! describes and w0; running it integrates the augmented flow and collects
//! everything the report needs.
use crate::conditions::{Conditions, Tracker};
use crate::data::Dataset;
use crate::error::{LastLoss, RunError};
use crate::events::EventKind;
use crate::exact::ExactPathKernel;
use crate::flow::FlowProblem;
use crate::model::{self, Model};
use crate::rng::{RngStream, generator};
use crate::second_order::SecondOrder;
use crate::spec::{FlowSpec, Method, Spec};
use crate::stepper::{Control, RungeKutta, Stats, Step, StepFailure};
use crate::tableau::Tableau;
use crate::trace::LossTrace;
use nalgebra::DMatrix;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

pub struct Experiment {
    pub spec: Spec,
    pub data: Dataset,
    pub model: Box<dyn Model>,
    pub w0: Vec<f64>,
    /// When set (by a Ctrl-C handler), a run stops before its next step.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// The query points are the training points followed by data.test_x
    /// (`learn`'s replay; gradient flow and gd without the exact path
    /// kernel or the second-order term, which it does not read).
    pub training_queries: bool,
    /// K^p and A on sliding segments by SPEC §1's conventions instead of
    /// Filippov's weights (`FlowProblem::read_kernels_by_convention`).
    pub convention_kernel: bool,
    /// Kinks held at one training point follow the linearised selection
    /// (proofs.md E11), not the multilinear one (E15): for comparison only.
    pub linearised_selection: bool,
}

/// What a run produces. Per-output vectors are example-major (entry
/// m C + c); kernels are (M C) x (N C) (row m C + c, column i C + c') and
/// coefficient matrices (M C) x N, so with C = 1 every matrix is M x N with
/// query points as rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// C, the model's outputs.
    pub n_outputs: usize,
    pub w_end: Vec<f64>,
    pub stats: Stats,
    /// The accepted steps' sizes h, in order (gd: eta_k = lr each step):
    /// what a replay retraces (SPEC §13).
    pub step_sizes: Vec<f64>,
    pub loss0: f64,
    pub loss_end: f64,
    pub y0: Vec<f64>,
    pub y_end: Vec<f64>,
    pub path_kernel: DMatrix<f64>,
    pub coef_integral: DMatrix<f64>,
    pub tangent_kernel0: DMatrix<f64>,
    pub tangent_kernel_end: DMatrix<f64>,
    /// gd with exact_path_kernel: Σ_k ε Σ_{c'} (−l'_{ic'}) K^e_k(q_m, x_i)_{·c'}.
    pub exact_coef_integral: Option<DMatrix<f64>>,
    /// Discrete methods (gd): r2(q_m) = Σ_k ½ Δ_kᵀ ∇²f(w_k; q_m) Δ_k,
    /// example-major (`crate::second_order`).
    pub second_order_term: Option<Vec<f64>>,
    /// What held along the path (sampled after each accepted step).
    pub conditions: Conditions,
    /// L at t = 0, after each accepted step (at its last evaluation) and
    /// at T, thinned (`crate::trace`).
    pub loss_trace: LossTrace,
    /// sgd/adam: the batches and the decay terms (SPEC §9).
    pub optimizer: Option<crate::discrete::OptimizerTerms>,
}

impl Outcome {
    /// yhat(q_m) = f(w0; q_m) + Σ_i A_i(q_m) (+ D(q_m), the decay term of
    /// sgd/adam, part of the machine's offset).
    pub fn kernel_machine(&self) -> Vec<f64> {
        let decay = self.optimizer.as_ref().map(|o| o.decay_term.as_slice());
        machine(&self.y0, &self.coef_integral, decay)
    }
    /// r(q_m) = f(w(T); q_m) − yhat(q_m).
    pub fn residual(&self) -> Vec<f64> {
        self.y_end
            .iter()
            .zip(self.kernel_machine())
            .map(|(y, k)| y - k)
            .collect()
    }
    pub fn max_abs_residual(&self) -> f64 {
        max_abs(&self.residual())
    }
    /// a_i(q_m) = A_i(q_m) / K^p(q_m, x_i); None where K^p = 0. With C > 1
    /// the C-vector K^p(q_m, x_i)⁻¹ A_i(q_m), None (the whole vector) where
    /// the block's 1-norm reciprocal condition number is below
    /// [`crate::blocks::RCOND_MIN`] (SPEC §8).
    pub fn coefficients(&self) -> DMatrix<Option<f64>> {
        if self.n_outputs == 1 {
            return self
                .coef_integral
                .zip_map(&self.path_kernel, |a, k| (k != 0.0).then(|| a / k));
        }
        crate::blocks::solve_blocks(&self.path_kernel, &self.coef_integral, self.n_outputs)
    }
    /// f(w0; q_m) + Σ_i A^e_i(q_m) (+ D^e(q_m) for sgd/adam).
    pub fn exact_kernel_machine(&self) -> Option<Vec<f64>> {
        let decay = self
            .optimizer
            .as_ref()
            .map(|o| o.exact_decay_term.as_slice());
        self.exact_coef_integral
            .as_ref()
            .map(|a| machine(&self.y0, a, decay))
    }
    /// f(w_K; q_m) − the exact kernel machine.
    pub fn exact_residual(&self) -> Option<Vec<f64>> {
        let km = self.exact_kernel_machine()?;
        Some(self.y_end.iter().zip(km).map(|(y, k)| y - k).collect())
    }
    pub fn exact_max_abs_residual(&self) -> Option<f64> {
        self.exact_residual().map(|r| max_abs(&r))
    }
    /// The residual less the second-order term: O(ε²) for a smooth model.
    pub fn second_order_residual(&self) -> Option<Vec<f64>> {
        let term = self.second_order_term.as_ref()?;
        Some(
            self.residual()
                .iter()
                .zip(term)
                .map(|(r, t)| r - t)
                .collect(),
        )
    }
    /// Δᵀ ∇²f Δ can overflow on a step whose curvature is not
    /// representable though f and ∇f are: the report then omits the
    /// second-order fields rather than hold a non-finite number (SPEC §5).
    pub(crate) fn finite_second_order(mut self) -> Outcome {
        if self
            .second_order_residual()
            .is_some_and(|r| !r.iter().all(|v| v.is_finite()))
        {
            self.second_order_term = None;
        }
        self
    }
    pub fn second_order_max_abs_residual(&self) -> Option<f64> {
        self.second_order_residual().map(|r| max_abs(&r))
    }
}

fn machine(y0: &[f64], a: &DMatrix<f64>, decay: Option<&[f64]>) -> Vec<f64> {
    y0.iter()
        .zip(a.row_iter())
        .enumerate()
        .map(|(m, (b, row))| match decay {
            Some(d) => b + row.sum() + d[m],
            None => b + row.sum(),
        })
        .collect()
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, r| m.max(r.abs()))
}

/// The tableau and step control a flow spec asks for.
pub fn integration(flow: &FlowSpec) -> (Tableau, Control) {
    let tableau = match flow.method {
        Method::Gd => Tableau::euler(),
        Method::Heun => Tableau::heun(),
        Method::Rk4 => Tableau::rk4(),
        Method::Dopri5 => Tableau::dopri5(),
        Method::Dop853 => Tableau::dop853(),
        Method::Verner98 => Tableau::verner98(),
        // One gradient a step, as gd (the discrete loop runs them).
        Method::Sgd | Method::Adam => Tableau::euler(),
    };
    let control = match (flow.fixed_step(), flow.fixed_steps()) {
        (Some(step), Some(steps)) => Control::Fixed { step, steps },
        _ => {
            let (rtol, atol) = flow.tolerances();
            Control::Adaptive {
                rtol,
                atol,
                max_steps: flow.max_steps,
            }
        }
    };
    (tableau, control)
}

impl Experiment {
    /// Err(Interrupted) when the Ctrl-C flag is up: checked after a run
    /// too, so a Ctrl-C after its last step still writes nothing.
    pub fn check_interrupt(&self) -> Result<(), RunError> {
        match &self.interrupt {
            Some(flag) if flag.load(std::sync::atomic::Ordering::SeqCst) => {
                Err(RunError::Interrupted {
                    t: self.spec.flow.t_end,
                })
            }
            _ => Ok(()),
        }
    }

    /// The experiment of a validated spec and its data; w0 is init.w0 when
    /// given, else drawn from the seed.
    pub fn new(spec: Spec, data: Dataset) -> Experiment {
        let model = model::build(&spec.model, data.train_x.ncols());
        let mut spec = spec;
        if spec.flow.method.is_optimizer() && spec.flow.batches.is_none() {
            // SPEC §9's default batch size, N, written out in the report's spec.
            spec.flow.batch_size.get_or_insert(data.train_x.nrows());
        }
        let w0 = match &spec.init {
            Some(init) => init.w0.clone(),
            None => model.init(&mut generator(spec.seed, RngStream::Init)),
        };
        Experiment {
            spec,
            data,
            model,
            w0,
            interrupt: None,
            training_queries: false,
            convention_kernel: false,
            linearised_selection: false,
        }
    }

    /// Integrates the flow; `progress` sees the time after each accepted step.
    ///
    /// The work runs on a thread of rayon's pool, so that the matrix
    /// products' parallel halves go on that thread's own deque: submitted
    /// from outside the pool they would go through a shared queue that
    /// allocates as it grows.
    pub fn run(&self, progress: &mut (dyn FnMut(f64) + Send)) -> Result<Outcome, RunError> {
        if self.spec.flow.method.is_optimizer() {
            return rayon::scope(|_| crate::discrete::run(self, progress));
        }
        rayon::scope(|_| self.run_here(None, progress))
    }

    /// The run retraced on the given accepted steps (a report's
    /// `step_sizes`) instead of the spec's step control: with the run's
    /// w0 and training data, w(t) is the run's bit for bit, whatever the
    /// query points (SPEC §13).
    pub fn replay(
        &self,
        steps: &[f64],
        progress: &mut (dyn FnMut(f64) + Send),
    ) -> Result<Outcome, RunError> {
        rayon::scope(|_| self.run_here(Some(steps), progress))
    }

    fn run_here(
        &self,
        given: Option<&[f64]>,
        progress: &mut (dyn FnMut(f64) + Send),
    ) -> Result<Outcome, RunError> {
        let model = self.model.as_ref();
        let (loss, reduction) = (self.spec.loss, self.spec.reduction);
        let mut flow = if self.training_queries {
            FlowProblem::with_training_queries(model, loss, reduction, &self.data)
        } else {
            FlowProblem::new(model, loss, reduction, &self.data)
        };
        if self.convention_kernel {
            flow.read_kernels_by_convention();
        }
        if self.linearised_selection {
            flow.linearise_selection();
        }
        let layout = flow.layout();
        let (n, m, c) = (layout.n_train, layout.n_query, layout.n_outputs);
        let t_end = self.spec.flow.t_end;

        let (tableau, control) = integration(&self.spec.flow);
        let (loss0, y0, tangent_kernel0) = snapshot(&mut flow, &self.w0, 0.0)?;
        let mut tracker = Tracker::new(model, self.spec.loss, &flow);
        tracker.sample(model, &flow, 0.0, tangent_kernel0.as_slice());
        let mut loss_trace = LossTrace::new();
        loss_trace.push(0.0, loss0);
        let mut y = flow.initial_state(&self.w0);
        let mut exact = (self.spec.flow.exact_path_kernel && !self.training_queries)
            .then(|| ExactPathKernel::new(model, &self.data));
        let mut second =
            (self.spec.flow.method == Method::Gd && !self.training_queries).then(|| {
                (
                    SecondOrder::new(model, &self.data.test_x),
                    vec![0.0; model.n_params()],
                )
            });
        let mut step_sizes = Vec::with_capacity(match (given, control) {
            (Some(steps), _) => steps.len(),
            (None, Control::Fixed { steps, .. }) => steps,
            (None, Control::Adaptive { .. }) => 0,
        });
        let mut observer = |flow: &mut FlowProblem<'_>, step: &Step<'_>| {
            step_sizes.push(step.h);
            let kernel = layout.path_kernel(step.last_derivative);
            tracker.sample(model, flow, flow.last_time(), kernel);
            loss_trace.push(flow.last_time(), flow.loss());
            if let Some(j) = step.event {
                // Releases come from the flow's log, which has them all.
                if step.event_kind != EventKind::Release {
                    tracker.event(step.t1, flow.kink(j), step.event_kind.name());
                }
            }
            flow.drain_released(|kink| tracker.event(step.t1, kink, EventKind::Release.name()));
            if let Some(e) = exact.as_mut() {
                e.add_step(flow, step);
            }
            if let Some((term, delta)) = second.as_mut() {
                let (w0, w1) = (layout.w(step.y0), layout.w(step.y1));
                for ((d, &a), &b) in delta.iter_mut().zip(w0).zip(w1) {
                    *d = b - a;
                }
                term.add_step(w0, delta);
            }
            progress(step.t1);
        };
        let mut rk = RungeKutta::new(tableau, layout.dim());
        rk.locate_events(self.spec.flow.events);
        if let Some(flag) = &self.interrupt {
            rk.interrupt_on(flag.clone());
        }
        let integrated = match given {
            Some(steps) => rk.integrate_given(&mut flow, &mut y, t_end, steps, &mut observer),
            None => rk.integrate(&mut flow, &mut y, t_end, control, &mut observer),
        };
        let stats = match integrated {
            Ok(stats) => stats,
            Err((StepFailure::Interrupted { t }, _)) => return Err(RunError::Interrupted { t }),
            Err((failure, _)) => {
                flow.evaluate(failure_time(failure), layout.w(&y));
                let kink = |j: usize| flow.kink(j).to_string();
                let hint = if self.spec.flow.events {
                    "; with events, a sliding mode that could not be integrated (proofs.md E6)"
                        .to_owned()
                } else {
                    "; `flow.events` locates kinks instead of stepping across them".to_owned()
                };
                return Err(run_error(failure, flow.last_finite_loss(), kink, hint));
            }
        };
        let w_end = layout.w(&y).to_vec();
        let (loss_end, y_end, tangent_kernel_end) = snapshot(&mut flow, &w_end, t_end)?;
        tracker.sample(model, &flow, t_end, tangent_kernel_end.as_slice());
        loss_trace.push(t_end, loss_end);
        let (path_kernel, coef_integral) = (
            DMatrix::from_column_slice(m * c, n * c, layout.path_kernel(&y)),
            DMatrix::from_column_slice(m * c, n, layout.coef_integral(&y)),
        );
        let conditions = tracker.finish(
            t_end,
            c,
            &path_kernel,
            &coef_integral,
            &tangent_kernel0,
            &tangent_kernel_end,
        );
        let outcome = Outcome {
            n_outputs: c,
            stats,
            step_sizes,
            loss0,
            loss_end,
            y0,
            y_end,
            path_kernel,
            coef_integral,
            tangent_kernel0,
            tangent_kernel_end,
            exact_coef_integral: exact
                .map(|e| DMatrix::from_column_slice(m * c, n, &e.coef_integral)),
            second_order_term: second.map(|(s, _)| s.term),
            w_end,
            conditions,
            loss_trace: loss_trace.finish(),
            optimizer: None,
        };
        Ok(outcome.finite_second_order())
    }
}

/// L, f at the query points and K^g at w; a non-finite value means the flow
/// diverged at time t.
pub(crate) fn snapshot(
    flow: &mut FlowProblem<'_>,
    w: &[f64],
    t: f64,
) -> Result<(f64, Vec<f64>, DMatrix<f64>), RunError> {
    let layout = flow.layout();
    let (n, m, c) = (layout.n_train, layout.n_query, layout.n_outputs);
    flow.evaluate(t, w);
    let loss = flow.loss();
    let outputs = flow.query_outputs().to_vec();
    let mut kernel = vec![0.0; layout.kernel_len()];
    flow.tangent_kernel(&mut kernel);
    let finite = loss.is_finite() && outputs.iter().chain(&kernel).all(|v| v.is_finite());
    if !finite {
        let what = if loss.is_finite() {
            "a non-finite output or kernel"
        } else {
            "the loss is not finite"
        };
        return Err(RunError::Diverged {
            t,
            loss: flow.last_finite_loss(),
            what: what.into(),
        });
    }
    Ok((
        loss,
        outputs,
        DMatrix::from_column_slice(m * c, n * c, &kernel),
    ))
}

/// The time at which the integration stopped.
fn failure_time(failure: StepFailure) -> f64 {
    match failure {
        StepFailure::NonFinite { t }
        | StepFailure::StepTooSmall { t, .. }
        | StepFailure::TooManySteps { t, .. }
        | StepFailure::Interrupted { t }
        | StepFailure::Chatter { t, .. }
        | StepFailure::Sliding { t, .. } => t,
    }
}

/// The run error of a failure; `kink` names switching function j.
fn run_error(
    failure: StepFailure,
    loss: LastLoss,
    kink: impl Fn(usize) -> String,
    hint: String,
) -> RunError {
    match failure {
        StepFailure::NonFinite { t } => RunError::Diverged {
            t,
            loss,
            what: "the state became non-finite".into(),
        },
        StepFailure::StepTooSmall { t, h } => RunError::StepTooSmall { t, h, loss },
        StepFailure::TooManySteps { t, max_steps } => RunError::TooManySteps { t, max_steps, loss },
        StepFailure::Interrupted { t } => RunError::Interrupted { t },
        StepFailure::Chatter {
            t,
            switch,
            crossings,
            since,
        } => RunError::Chatter {
            t,
            kink: kink(switch),
            crossings,
            since,
            hint,
            loss,
        },
        StepFailure::Sliding {
            t,
            switch,
            unsolved,
        } => RunError::Sliding {
            t,
            kink: kink(switch),
            cause: if unsolved {
                "is held with other kinks of its training point, and their sliding system \
                 (proofs.md E15) has no solution here (Newton's method failed)"
            } else {
                "crossed its zero and came straight back, so the vector fields on both sides \
                 point into this kink (a Filippov sliding mode), which could not be held here \
                 (at most 4 kinks slide at once)"
            },
            loss,
        },
    }
}
