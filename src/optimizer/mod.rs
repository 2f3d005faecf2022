//! The discrete optimizers of SPEC §9, each one file implementing
//! [`Optimizer`]: how a stream of gradients enters its buffers and which
//! preconditioner P_k its step applies. `crate::discrete` runs the loop and
//! both decompositions for any of them; a new optimizer is a file here and
//! an arm of [`build`].
//!
//! Every update is linear in the gradients once P_k is fixed, so the same
//! [`Optimizer::carry`] serves the whole gradient g_k (the step taken),
//! each training point's share of it (the exact decomposition's G_{k,i})
//! and the coupled weight decay's (D_k): their sum is the step, to
//! rounding.
mod adam;
mod sgd;

pub use adam::Adam;
pub use sgd::Sgd;

use crate::spec::{FlowSpec, Method};

/// The linear map an optimizer's step applies to one stream of gradients x
/// once step k has begun: buffer' = decay · buffer + gain · x, direction
/// d = pass · x + keep · buffer'. Written as four numbers so that a buffer
/// fed no gradient (a point outside the batch) is only scaled, which lets
/// `crate::discrete` keep the per-point buffers as vectors times scalars.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Linear {
    pub decay: f64,
    pub gain: f64,
    pub pass: f64,
    pub keep: f64,
}

/// A discrete optimizer's state and step rule.
pub trait Optimizer: Send {
    /// Starts step k (from 0) with the whole gradient g_k (coupled decay
    /// included): updates what is not linear in the gradients (Adam's
    /// second moment, hence P_k) and the step's constants.
    fn begin(&mut self, k: usize, g: &[f64]);
    /// The step's map of one stream of gradients (see [`Linear`]).
    fn linear(&self) -> Linear;
    /// Carries one stream of gradients `input` through a momentum buffer of
    /// its own: updates `buffer` and writes the step's direction d (before
    /// P_k and −eta_k). Linear in (buffer, input).
    fn carry(&self, buffer: &mut [f64], input: &[f64], direction: &mut [f64]) {
        let l = self.linear();
        for ((b, &x), d) in buffer.iter_mut().zip(input).zip(direction) {
            *b = l.decay * *b + l.gain * x;
            *d = l.pass * x + l.keep * *b;
        }
    }
    /// P_k of the step begun, or None for the identity (sgd).
    fn preconditioner(&self) -> Option<&[f64]>;
    /// True when d = input and no buffer is kept (sgd without momentum):
    /// the decomposition then needs no per-point P-vectors.
    fn is_memoryless(&self) -> bool;
}

/// The optimizer a validated sgd/adam flow describes, over P parameters.
pub fn build(flow: &FlowSpec, p: usize) -> Box<dyn Optimizer> {
    match flow.method {
        Method::Sgd => Box::new(Sgd::new(flow)),
        Method::Adam => Box::new(Adam::new(flow, p)),
        other => unreachable!("method `{}` is not an optimizer", other.name()),
    }
}

/// (lambda_c, lambda_d): the weight decay added to the gradient (coupled)
/// and the one applied to w directly (decoupled), SPEC §9.
pub fn decays(flow: &FlowSpec) -> (f64, f64) {
    let wd = flow.weight_decay.unwrap_or(0.0);
    if flow.decoupled.unwrap_or(flow.method == Method::Adam) {
        (0.0, wd)
    } else {
        (wd, 0.0)
    }
}

/// The steps an optimizer's buffers remember, 1 / (1 − beta) for the
/// slowest of its decays (sgd's momentum; Adam's beta1 and beta2), of a
/// parsed flow (defaults written out); None without memory (plain sgd, gd
/// and the integrators). `converge`'s refined runs reach their orders only
/// once each batch spans many times this (proofs.md C57).
pub fn memory_steps(flow: &FlowSpec) -> Option<f64> {
    let beta = match flow.method {
        Method::Sgd => flow.momentum.unwrap_or(0.0),
        Method::Adam => flow.beta1.unwrap_or(0.0).max(flow.beta2.unwrap_or(0.0)),
        _ => 0.0,
    };
    (beta > 0.0).then(|| 1.0 / (1.0 - beta))
}

/// The refinement `converge` runs: lr halved, twice the steps, each batch
/// of `batches` (the run's) used for two consecutive half steps, and the
/// schedule's step counts doubled, so that the refined runs approach the
/// same continuous-time path (t_k = Σ eta_j) with the same batches.
pub fn refined(flow: &FlowSpec, batches: &[Vec<usize>]) -> FlowSpec {
    let mut out = flow.clone();
    out.lr = flow.lr.map(|lr| lr / 2.0);
    out.batches = Some(
        batches
            .iter()
            .flat_map(|b| [b.clone(), b.clone()])
            .collect(),
    );
    out.steps = Some(2 * batches.len());
    out.batch_size = None;
    out.shuffle = None;
    if let Some(s) = out.schedule.as_mut() {
        s.step_size = s.step_size.map(|n| 2 * n);
        s.warmup_steps *= 2;
        s.final_lr = s.final_lr.map(|f| f / 2.0);
    }
    out.t_end = crate::schedule::each_step_size(&out).sum();
    out
}
