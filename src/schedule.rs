//! Learning-rate schedules (SPEC §9): eta_k = lr · schedule(k) for the K
//! steps of an sgd/adam run, computed once before the run (they depend on
//! k and K only) and reported as `step_sizes`.
use crate::spec::{FlowSpec, ScheduleKind};

/// eta_0 .. eta_{K-1} of an sgd/adam flow (empty without lr or steps).
///
/// "constant": lr; "step": lr gamma^floor(k / step_size); "cosine":
/// final_lr + (lr − final_lr)(1 + cos(π k / K)) / 2; each times
/// min(1, (k + 1) / W) when warmup_steps W > 0 (the warmup overlaps the
/// schedule, this tool's definition; optax's warmup_cosine_decay_schedule
/// runs the decay after the warmup instead).
pub fn step_sizes(flow: &FlowSpec) -> Vec<f64> {
    each_step_size(flow).collect()
}

/// The eta_k of [`step_sizes`] one at a time, in order: t_end = Σ eta_k
/// without holding K numbers (summed in the same order, so bit for bit the
/// sum of the list).
pub fn each_step_size(flow: &FlowSpec) -> impl Iterator<Item = f64> {
    let (lr, k_total) = match flow.lr {
        Some(lr) => (lr, flow.optimizer_steps()),
        None => (0.0, 0),
    };
    let schedule = flow.schedule.clone().unwrap_or_default();
    (0..k_total).map(move |k| {
        let base = match schedule.kind {
            ScheduleKind::Constant => lr,
            ScheduleKind::Step => {
                let size = schedule.step_size.unwrap_or(1).max(1);
                let exponent = i32::try_from(k / size).unwrap_or(i32::MAX);
                lr * schedule.gamma.unwrap_or(0.1).powi(exponent)
            }
            ScheduleKind::Cosine => {
                let final_lr = schedule.final_lr.unwrap_or(0.0);
                let phase = std::f64::consts::PI * k as f64 / k_total as f64;
                final_lr + (lr - final_lr) * (1.0 + phase.cos()) / 2.0
            }
        };
        let w = schedule.warmup_steps;
        if w > 0 && k + 1 < w {
            base * ((k + 1) as f64 / w as f64)
        } else {
            base
        }
    })
}
