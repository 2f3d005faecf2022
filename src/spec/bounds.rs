//! The bound on every loop a spec sets going: a run may take at most
//! [`MAX_STEPS`] steps, so a typo such as `t_end: 1.8e19` with `lr: 0.01`
//! is refused before any work (exit 2) rather than running for ever.
//!
//! The limit is what the cheapest run can do in a day on the project's
//! machine: a gd step of a linear model on one training point took 0.7 µs
//! of CPU time (10^7 steps in 7.0 s, measured 2026-11-30 under load), so
//! 86,400 s buys about 1.2 x 10^11 steps, and any model worth checking is
//! slower per step. A run that needs more is better split (a larger step,
//! a shorter T) than left to run for days.
use crate::error::InputError;

/// Most steps a run may take: a fixed-step run's K = T / h, an adaptive
/// run's `max_steps`, and (when it lands) sgd/adam's `steps`.
pub const MAX_STEPS: u64 = 100_000_000_000;

/// Ok when `steps` (a count that may be fractional or absurd, as T / h
/// is before validation) is at most [`MAX_STEPS`]; else a refusal naming
/// `location`, the count and the limit. `what` says how the count arose.
pub fn check_steps(location: &str, steps: f64, what: &str) -> Result<(), InputError> {
    if steps <= MAX_STEPS as f64 {
        return Ok(());
    }
    Err(InputError::new(
        location,
        format!(
            "found {what} = {steps:e} steps, allowed: at most {MAX_STEPS:e} steps (about a day \
             of the cheapest run on one machine; see README, \"Bounds\"): take a larger step \
             or a shorter t_end"
        ),
    ))
}
