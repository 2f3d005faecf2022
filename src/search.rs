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
//!
//! One concept per file: `claims` (what each claim says and where it is
//! drawn), `measure` (a claim on one experiment; `generalises` for the
//! claim that needs `learn`, `sliding` for the one that runs with
//! events), `runner` (drawing and
//! shrinking), `summary` (the text and files a search leaves).

mod claims;
mod generalises;
mod measure;
mod runner;
mod sliding;
mod stiffness;
mod summary;

pub use claims::{
    Claim, DECAY_OFFSET_TOL, FIXED_COEF_TOL, GD_LIMIT_TOL, GENERALISES_MSE_FLOOR, GENERALISES_TOL,
    LAZY_TOL, ORDER_FLOOR, ORDER_HALVINGS, ORDER_SLACK, PSD_TOL, SECOND_ORDER_TOL, SLIDING_TOL,
};
pub use generalises::{TestErrors, test_errors};
pub use measure::Evaluation;
pub use runner::{Found, Options, Progress, search};
pub use sliding::sliding_flow;
pub use summary::{command, text, write};
