//! The training loop of the discrete optimizers (SPEC §9): batches drawn
//! before the run, eta_k from the schedule, each step's update by an
//! [`Optimizer`], and both decompositions of f(w_K) − f(w_0) accumulated
//! step by step ([`decomposition`]). `Experiment::run` dispatches here for
//! sgd and adam; gd keeps the flow's path (Euler on the augmented state).
pub mod buffers;
pub mod decomposition;
pub mod query;

use crate::batches;
use crate::conditions::Tracker;
use crate::conditions::optimizer::Watch;
use crate::error::RunError;
use crate::experiment::{Experiment, Outcome, snapshot};
use crate::flow::FlowProblem;
use crate::optimizer;
use crate::schedule;
use crate::second_order::SecondOrder;
use crate::spec::Reduction;
use crate::stepper::Stats;
use decomposition::Decomposition;
use nalgebra::DMatrix;
use std::sync::atomic::Ordering;

/// What an sgd/adam run adds to its outcome (SPEC §9); per-query vectors
/// example-major (M C).
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerTerms {
    /// B_k, as replayed.
    pub batches: Vec<Vec<usize>>,
    /// D(q) = Σ_k ∇f(w_k; q) · D_k.
    pub decay_term: Vec<f64>,
    /// D^e(q) = Σ_k gbar_k(q) · D_k.
    pub exact_decay_term: Vec<f64>,
    /// Σ_k of each step's rounding floor: the scale of the exact residual.
    pub exact_floor: Vec<f64>,
}

/// Runs an sgd/adam experiment (on the calling thread; see `Experiment::run`).
pub fn run(exp: &Experiment, progress: &mut (dyn FnMut(f64) + Send)) -> Result<Outcome, RunError> {
    let model = exp.model.as_ref();
    let spec = &exp.spec;
    let mut flow = FlowProblem::new(model, spec.loss, spec.reduction, &exp.data);
    let layout = flow.layout();
    let (p, n, m, c) = (
        layout.n_params,
        layout.n_train,
        layout.n_query,
        layout.n_outputs,
    );
    let batches = batches::draw(&spec.flow, n, spec.seed);
    let etas = schedule::step_sizes(&spec.flow);
    let decays = optimizer::decays(&spec.flow);
    let mut opt = optimizer::build(&spec.flow, p);

    let (loss0, y0, tangent_kernel0) = snapshot(&mut flow, &exp.w0, 0.0)?;
    let mut tracker = Tracker::new(model, spec.loss, &flow);
    tracker.sample(model, &flow, 0.0, tangent_kernel0.as_slice());
    let mut loss_trace = crate::trace::LossTrace::new();
    loss_trace.push(0.0, loss0);
    let mut watch = Watch::new(n, m * c, n * c);
    let memory = !opt.is_memoryless();
    let mut terms = Decomposition::new(
        model,
        &flow,
        &exp.data,
        memory,
        opt.preconditioner().is_some(),
    );
    let mut scratch = flow.plan().scratch(flow.tape(), 0, n);
    let mut w = exp.w0.clone();
    let mut w_next = vec![0.0; p];
    let (mut g, mut buffer, mut direction) = (vec![0.0; p], vec![0.0; p], vec![0.0; p]);
    let mut lprime = vec![0.0; n * c];
    let mut counts = vec![0usize; n];
    // r2 = Σ_k ½ Δ_kᵀ ∇²f(w_k; q) Δ_k (SPEC §9), beside both decompositions.
    let mut second = SecondOrder::new(model, &exp.data.test_x);
    let mut delta = vec![0.0; p];
    let mut t = 0.0;
    for (k, (batch, &eta)) in batches.iter().zip(&etas).enumerate() {
        if exp
            .interrupt
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
        {
            return Err(RunError::Interrupted { t });
        }
        flow.evaluate(t, &w);
        if !flow.loss().is_finite() || !crate::vecmath::all_finite(flow.outputs()) {
            return Err(RunError::Diverged {
                t,
                loss: flow.last_finite_loss(),
                what: "the loss or an output is not finite".into(),
            });
        }
        loss_trace.push(t, flow.loss());
        batch_lprime(&flow, batch, spec.reduction, &mut counts, &mut lprime);
        flow.plan()
            .weighted_gradient(flow.tape(), 0..n, &lprime, 1.0, &mut scratch, &mut g);
        let (lambda_c, lambda_d) = decays;
        g.iter_mut().zip(&w).for_each(|(g, &w)| *g += lambda_c * w);
        opt.begin(k, &g);
        opt.carry(&mut buffer, &g, &mut direction);
        step(
            &mut w_next,
            &w,
            &direction,
            opt.preconditioner(),
            eta,
            lambda_d,
        );
        terms.add_step(&mut flow, opt.as_ref(), eta, &lprime, &w, &w_next, decays);
        delta
            .iter_mut()
            .zip(w_next.iter().zip(&w))
            .for_each(|(d, (b, a))| *d = b - a);
        second.add_step(&w, &delta);
        tracker.sample(model, &flow, t, terms.kernel());
        watch.step(batch, terms.kernel(), opt.preconditioner());
        t += eta;
        std::mem::swap(&mut w, &mut w_next);
        progress(t);
    }
    terms.finish(batches.len());
    let (loss_end, y_end, tangent_kernel_end) = snapshot(&mut flow, &w, t)?;
    tracker.sample(model, &flow, t, tangent_kernel_end.as_slice());
    loss_trace.push(t, loss_end);
    let path_kernel = DMatrix::from_column_slice(m * c, n * c, &terms.path_kernel);
    let coef_integral = DMatrix::from_column_slice(m * c, n, &terms.coef_integral);
    let conditions = tracker
        .finish(
            t,
            c,
            &path_kernel,
            &coef_integral,
            &tangent_kernel0,
            &tangent_kernel_end,
        )
        .with_optimizer(watch.finish(&terms.decay_term, &y0, &y_end));
    let outcome = Outcome {
        n_outputs: c,
        w_end: w,
        stats: Stats {
            steps: batches.len(),
            rejected_steps: 0,
            rhs_evals: batches.len(),
        },
        loss0,
        loss_end,
        y0,
        y_end,
        path_kernel,
        coef_integral,
        tangent_kernel0,
        tangent_kernel_end,
        exact_coef_integral: Some(DMatrix::from_column_slice(
            m * c,
            n,
            &terms.exact_coef_integral,
        )),
        conditions,
        loss_trace: loss_trace.finish(),
        step_sizes: etas,
        optimizer: Some(OptimizerTerms {
            batches,
            decay_term: terms.decay_term,
            exact_decay_term: terms.exact_decay_term,
            exact_floor: terms.exact_floor,
        }),
        second_order_term: Some(second.term),
    };
    Ok(outcome.finite_second_order())
}

/// l'_{k,i} = n_i c_k dl/dy at the last evaluation for the n_i times i is
/// in the batch (a multiset), 0 off it; c_k = 1 ("sum") or 1 / |B_k| ("mean").
fn batch_lprime(
    flow: &FlowProblem<'_>,
    batch: &[usize],
    reduction: Reduction,
    counts: &mut [usize],
    lprime: &mut [f64],
) {
    let c = flow.layout().n_outputs;
    let columns = flow.target_columns();
    let ck = match reduction {
        Reduction::Sum => 1.0,
        Reduction::Mean => 1.0 / batch.len() as f64,
    };
    lprime.fill(0.0);
    batch.iter().for_each(|&i| counts[i] += 1);
    for &i in batch {
        if counts[i] == 0 {
            continue; // done at its first occurrence
        }
        let target = &flow.targets()[i * columns..(i + 1) * columns];
        let f = &flow.outputs()[i * c..(i + 1) * c];
        let weight = counts[i] as f64 * ck;
        flow.loss_fn()
            .row(target, f, weight, &mut lprime[i * c..(i + 1) * c]);
        counts[i] = 0;
    }
}

/// w_next = w + (−eta P_k d − eta λ_d w).
fn step(w_next: &mut [f64], w: &[f64], d: &[f64], pre: Option<&[f64]>, eta: f64, lambda_d: f64) {
    for (j, ((wn, &w), &d)) in w_next.iter_mut().zip(w).zip(d).enumerate() {
        let pd = pre.map_or(d, |p| p[j] * d);
        *wn = w + (-eta * pd - eta * lambda_d * w);
    }
}
