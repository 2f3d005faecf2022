//! The discrete optimizers' part of a flow spec (SPEC §9): batches, the
//! learning-rate schedule, momentum, Adam's moments and weight decay, their
//! defaults and their checks. The updates themselves are `crate::optimizer`.
use super::validate::{at_least, in_range, positive};
use super::{FlowSpec, Method};
use crate::error::InputError;
use serde::{Deserialize, Serialize};

/// How an sgd/adam run cuts the training points into batches (SPEC §9).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shuffle {
    /// A permutation per epoch, cut into consecutive batches.
    #[default]
    Epoch,
    /// Each batch drawn uniformly with replacement.
    Replacement,
    /// 0..N-1 in order, cut per epoch.
    None,
}

/// The learning-rate schedule's shape (SPEC §9).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    #[default]
    Constant,
    Step,
    Cosine,
}

/// eta_k = lr · schedule(k); `crate::schedule` evaluates it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    pub kind: ScheduleKind,
    /// "step": the factor per `step_size` steps (default 0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gamma: Option<f64>,
    /// "step": steps per factor gamma (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_size: Option<usize>,
    /// "cosine": the lr reached at k = K (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_lr: Option<f64>,
    /// W > 0 multiplies eta_k by min(1, (k + 1) / W).
    #[serde(default)]
    pub warmup_steps: usize,
}

impl Method {
    /// True for the discrete optimizers of SPEC §9 (not gd, which is Euler
    /// on the flow and keeps its own path).
    pub fn is_optimizer(self) -> bool {
        matches!(self, Method::Sgd | Method::Adam)
    }
}

impl FlowSpec {
    /// K of an sgd/adam run: `steps`, else the number of explicit batches.
    pub fn optimizer_steps(&self) -> usize {
        self.steps
            .or(self.batches.as_ref().map(Vec::len))
            .unwrap_or(0)
    }

    /// The spec with SPEC §9's defaults written out (batch_size needs N and
    /// is filled by the experiment), and t_end = Σ eta_k when absent (NaN).
    pub(super) fn with_optimizer_defaults(mut self) -> FlowSpec {
        if !self.method.is_optimizer() {
            return self;
        }
        let adam = self.method == Method::Adam;
        if self.batches.is_none() {
            self.shuffle.get_or_insert_default();
        }
        if adam {
            self.beta1.get_or_insert(0.9);
            self.beta2.get_or_insert(0.999);
            self.eps.get_or_insert(1e-8);
        } else {
            self.momentum.get_or_insert(0.0);
            self.nesterov.get_or_insert(false);
        }
        self.weight_decay.get_or_insert(0.0);
        self.decoupled.get_or_insert(adam);
        let schedule = self.schedule.get_or_insert_default();
        match schedule.kind {
            ScheduleKind::Step => {
                schedule.gamma.get_or_insert(0.1);
            }
            ScheduleKind::Cosine => {
                schedule.final_lr.get_or_insert(0.0);
            }
            ScheduleKind::Constant => {}
        }
        // (Over the step bound, `validate` refuses the spec: no Σ over
        // K step sizes is formed for it.)
        if self.t_end.is_nan()
            && self.lr.is_some_and(|lr| lr > 0.0)
            && (1..=MAX_OPTIMIZER_STEPS).contains(&self.optimizer_steps())
        {
            self.t_end = crate::schedule::each_step_size(&self).sum();
        }
        self
    }
}

/// The most steps an sgd/adam spec may take: each step's eta_k and batch
/// are kept (SPEC §9, `step_sizes` and `batches`), so K is bounded by
/// memory long before the step bound of `spec::bounds` (10^8 steps: 0.8 GB
/// of step sizes alone). A larger K is refused before t_end = Σ eta_k is
/// even formed.
pub const MAX_OPTIMIZER_STEPS: usize = 100_000_000;

/// The fields only sgd or adam take, with the methods that take each.
const OPTIMIZER_FIELDS: [(&str, &str); 12] = [
    ("steps", "sgd and adam"),
    ("batch_size", "sgd and adam"),
    ("shuffle", "sgd and adam"),
    ("batches", "sgd and adam"),
    ("weight_decay", "sgd and adam"),
    ("decoupled", "sgd and adam"),
    ("schedule", "sgd and adam"),
    ("momentum", "sgd"),
    ("nesterov", "sgd"),
    ("beta1", "adam"),
    ("beta2", "adam"),
    ("eps", "adam"),
];

/// Which of the optimizer fields are present.
fn present(flow: &FlowSpec) -> [bool; 12] {
    [
        flow.steps.is_some(),
        flow.batch_size.is_some(),
        flow.shuffle.is_some(),
        flow.batches.is_some(),
        flow.weight_decay.is_some(),
        flow.decoupled.is_some(),
        flow.schedule.is_some(),
        flow.momentum.is_some(),
        flow.nesterov.is_some(),
        flow.beta1.is_some(),
        flow.beta2.is_some(),
        flow.eps.is_some(),
    ]
}

/// Refuses an optimizer field on a method that does not take it.
pub(super) fn foreign_fields(flow: &FlowSpec) -> Result<(), InputError> {
    let method = flow.method.name();
    for ((field, takers), here) in OPTIMIZER_FIELDS.iter().zip(present(flow)) {
        if here && !takers.split(" and ").any(|m| m == method) {
            return Err(InputError::new(
                format!("flow.{field}"),
                format!("method `{method}` does not take `{field}`; it is for method {takers}"),
            ));
        }
    }
    Ok(())
}

/// The checks of an sgd/adam flow that need no data (batch_size and the
/// batch indices against N are `crate::data`'s).
pub(super) fn validate(flow: &FlowSpec) -> Result<(), InputError> {
    let method = flow.method.name();
    for field in ["step", "rtol", "atol"] {
        let given = match field {
            "step" => flow.step.is_some(),
            "rtol" => flow.rtol.is_some(),
            _ => flow.atol.is_some(),
        };
        if given {
            return Err(InputError::new(
                format!("flow.{field}"),
                format!("method `{method}` takes `lr` and `steps`, not `{field}`"),
            ));
        }
    }
    if flow.exact_path_kernel {
        return Err(InputError::new(
            "flow.exact_path_kernel",
            format!("method `{method}` always reports its exact decomposition; omit the field"),
        ));
    }
    let Some(lr) = flow.lr else {
        return Err(InputError::new(
            "flow.lr",
            format!("method `{method}` needs `lr`, a learning rate > 0"),
        ));
    };
    positive("flow.lr", lr)?;
    if let Some(batches) = &flow.batches {
        for (field, given) in [
            ("batch_size", flow.batch_size.is_some()),
            ("shuffle", flow.shuffle.is_some()),
        ] {
            if given {
                return Err(InputError::new(
                    format!("flow.{field}"),
                    "is for drawn batches; explicit `batches` are replayed as given: omit one of the two",
                ));
            }
        }
        at_least("flow.batches", batches.len(), 1)?;
        for (k, batch) in batches.iter().enumerate() {
            at_least(&format!("flow.batches[{k}]"), batch.len(), 1)?;
        }
        if let Some(steps) = flow.steps
            && steps != batches.len()
        {
            return Err(InputError::new(
                "flow.steps",
                format!(
                    "found {steps}, but `batches` lists {} batches; allowed: {} (or omit `steps`)",
                    batches.len(),
                    batches.len()
                ),
            ));
        }
    } else {
        let Some(steps) = flow.steps else {
            return Err(InputError::new(
                "flow.steps",
                format!(
                    "method `{method}` needs `steps`, a whole number >= 1 (or explicit `batches`)"
                ),
            ));
        };
        at_least("flow.steps", steps, 1)?;
        if steps > MAX_OPTIMIZER_STEPS {
            return Err(InputError::new(
                "flow.steps",
                format!(
                    "found {steps}, allowed: at most {MAX_OPTIMIZER_STEPS} (sgd and adam keep \
                     every step's size and batch, in memory and in the report)"
                ),
            ));
        }
    }
    if let Some(b) = flow.batch_size {
        at_least("flow.batch_size", b, 1)?;
    }
    let unit = "a number in [0, 1)";
    for (field, value) in [
        ("momentum", flow.momentum),
        ("beta1", flow.beta1),
        ("beta2", flow.beta2),
    ] {
        if let Some(v) = value
            && !(0.0..1.0).contains(&v)
        {
            return Err(InputError::new(
                format!("flow.{field}"),
                format!("found {v:?}, allowed: {unit}"),
            ));
        }
    }
    let nonnegative = "a finite number >= 0";
    if let Some(eps) = flow.eps {
        in_range("flow.eps", eps, 0.0, f64::INFINITY, nonnegative)?;
    }
    if let Some(wd) = flow.weight_decay {
        in_range("flow.weight_decay", wd, 0.0, f64::INFINITY, nonnegative)?;
    }
    if let Some(schedule) = &flow.schedule {
        validate_schedule(schedule)?;
    }
    validate_t_end(flow)
}

fn validate_schedule(s: &ScheduleSpec) -> Result<(), InputError> {
    let kind = match s.kind {
        ScheduleKind::Constant => "constant",
        ScheduleKind::Step => "step",
        ScheduleKind::Cosine => "cosine",
    };
    let wrong = |field: &str, takes: &str| {
        Err(InputError::new(
            format!("flow.schedule.{field}"),
            format!("schedule kind `{kind}` does not take `{field}`; it is for kind `{takes}`"),
        ))
    };
    if s.kind != ScheduleKind::Step {
        if s.gamma.is_some() {
            return wrong("gamma", "step");
        }
        if s.step_size.is_some() {
            return wrong("step_size", "step");
        }
    }
    if s.kind != ScheduleKind::Cosine && s.final_lr.is_some() {
        return wrong("final_lr", "cosine");
    }
    if s.kind == ScheduleKind::Step {
        let Some(size) = s.step_size else {
            return Err(InputError::new(
                "flow.schedule.step_size",
                "schedule kind `step` needs `step_size`, a whole number >= 1",
            ));
        };
        at_least("flow.schedule.step_size", size, 1)?;
    }
    // A negative factor or final lr makes some eta_k negative: ascent.
    let negative = "a finite number >= 0 (a negative value makes the step size eta_k negative)";
    if let Some(gamma) = s.gamma {
        in_range("flow.schedule.gamma", gamma, 0.0, f64::INFINITY, negative)?;
    }
    if let Some(final_lr) = s.final_lr {
        in_range(
            "flow.schedule.final_lr",
            final_lr,
            0.0,
            f64::INFINITY,
            negative,
        )?;
    }
    Ok(())
}

/// t_end, when given, must be Σ eta_k (to 1e-9 relative): the report's
/// spec writes it out, and it must read back.
fn validate_t_end(flow: &FlowSpec) -> Result<(), InputError> {
    let total: f64 = crate::schedule::step_sizes(flow).iter().sum();
    if (flow.t_end - total).abs() <= 1e-9 * total {
        return Ok(());
    }
    Err(InputError::new(
        "flow.t_end",
        format!(
            "found {:?}, but method `{}` ends at t_K = Σ eta_k = {total:?}; allowed: that value, or omit t_end",
            flow.t_end,
            flow.method.name()
        ),
    ))
}
