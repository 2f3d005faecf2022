//! The options of an sgd/adam flow (SPEC §9) for the search: every way of
//! batching (full, in order, epoch shuffles, with replacement, explicit
//! lists), momentum and Nesterov, coupled and decoupled weight decay, the
//! step, cosine and warmup schedules, and Adam's betas and eps. Each choice
//! is an index into a list ordered simplest first (full batch, no momentum,
//! no decay, constant schedule, the default betas), so shrinking heads for
//! plain full-batch sgd. Every draw is a valid flow for any N.
use crate::spec::{FlowSpec, Method, ScheduleKind, ScheduleSpec, Shuffle};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

/// How the batches are made, simplest first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Batching {
    /// batch_size N (the default).
    #[default]
    Full,
    /// "none": 0..N-1 in order.
    InOrder,
    Epoch,
    Replacement,
    /// An explicit list: batch k holds pattern[(k b + j) mod len] mod N,
    /// j < b; the pattern [0] trains on x_0 alone.
    Explicit,
}

/// The drawn options; see the module doc.
#[derive(Clone, Debug, Default)]
pub(super) struct OptimizerShape {
    batching: Batching,
    /// 1 to 12, clamped to N.
    batch_size: usize,
    pattern: Vec<usize>,
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
    decoupled: Option<bool>,
    /// 0 constant, 1 step (gamma 0.5), 2 cosine (final_lr 0).
    schedule: usize,
    step_size: usize,
    warmup_steps: usize,
    beta1: f64,
    beta2: f64,
    eps: f64,
}

pub(super) fn optimizer_shape() -> BoxedStrategy<OptimizerShape> {
    let batching = (
        select(vec![
            Batching::Full,
            Batching::InOrder,
            Batching::Epoch,
            Batching::Replacement,
            Batching::Explicit,
        ]),
        1..=12usize,
        vec(0..12usize, 1..=4),
    );
    let sgd = (select(vec![0.0, 0.5, 0.9]), any::<bool>());
    let decay = (
        select(vec![0.0, 0.01, 0.1, 1.0]),
        select(vec![None, Some(false), Some(true)]),
    );
    let schedule = (0..=2usize, 1..=8usize, select(vec![0, 2, 4]));
    let adam = (
        select(vec![0.9, 0.0, 0.5]),
        select(vec![0.999, 0.9, 0.5]),
        select(vec![1e-8, 1e-4]),
    );
    (batching, sgd, decay, schedule, adam)
        .prop_map(
            |(
                (batching, batch_size, pattern),
                (momentum, nesterov),
                (weight_decay, decoupled),
                (schedule, step_size, warmup_steps),
                (beta1, beta2, eps),
            )| OptimizerShape {
                batching,
                batch_size,
                pattern,
                momentum,
                nesterov,
                weight_decay,
                decoupled,
                schedule,
                step_size,
                warmup_steps,
                beta1,
                beta2,
                eps,
            },
        )
        .boxed()
}

impl OptimizerShape {
    /// An sgd/adam flow of K steps at base rate lr over N points, with
    /// t_end = Σ eta_k written out (as SPEC requires when given).
    pub(super) fn flow(&self, method: Method, lr: f64, steps: usize, n: usize) -> FlowSpec {
        let mut flow = FlowSpec::new(f64::NAN, method);
        flow.lr = Some(lr);
        let b = self.batch_size.clamp(1, n.max(1));
        match self.batching {
            Batching::Full => {}
            Batching::Explicit => {
                let len = self.pattern.len();
                flow.batches = Some(
                    (0..steps)
                        .map(|k| {
                            (0..b)
                                .map(|j| self.pattern[(k * b + j) % len] % n)
                                .collect()
                        })
                        .collect(),
                );
            }
            drawn => {
                flow.batch_size = Some(b);
                flow.shuffle = Some(match drawn {
                    Batching::InOrder => Shuffle::None,
                    Batching::Replacement => Shuffle::Replacement,
                    _ => Shuffle::Epoch,
                });
            }
        }
        flow.steps = Some(steps);
        if method == Method::Sgd && self.momentum > 0.0 {
            flow.momentum = Some(self.momentum);
            flow.nesterov = self.nesterov.then_some(true);
        }
        if method == Method::Adam {
            flow.beta1 = Some(self.beta1);
            flow.beta2 = Some(self.beta2);
            flow.eps = Some(self.eps);
        }
        if self.weight_decay > 0.0 {
            flow.weight_decay = Some(self.weight_decay);
            flow.decoupled = self.decoupled;
        }
        let kind = [
            ScheduleKind::Constant,
            ScheduleKind::Step,
            ScheduleKind::Cosine,
        ][self.schedule];
        if kind != ScheduleKind::Constant || self.warmup_steps > 0 {
            flow.schedule = Some(ScheduleSpec {
                kind,
                gamma: (kind == ScheduleKind::Step).then_some(0.5),
                step_size: (kind == ScheduleKind::Step).then_some(self.step_size),
                final_lr: (kind == ScheduleKind::Cosine).then_some(0.0),
                warmup_steps: self.warmup_steps,
            });
        }
        flow.t_end = crate::schedule::each_step_size(&flow).sum();
        flow
    }
}
