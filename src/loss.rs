//! Per-example losses l(y*, y) and their derivatives in y (SPEC §2).
use serde::{Deserialize, Serialize};

/// A per-example loss, with its parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Loss {
    Squared,
    Logistic,
    Bce,
    Exponential,
    Huber {
        #[serde(default = "one")]
        delta: f64,
    },
    LogCosh,
    Cauchy {
        #[serde(default = "one")]
        c: f64,
    },
    Absolute,
    Hinge,
    SquaredHinge,
}

fn one() -> f64 {
    1.0
}

impl Loss {
    /// l(target, y).
    pub fn value(&self, target: f64, y: f64) -> f64 {
        todo!("{target}{y}")
    }
    /// dl/dy at (target, y), with SPEC's conventions at kinks.
    pub fn derivative(&self, target: f64, y: f64) -> f64 {
        todo!("{target}{y}")
    }
    /// False for absolute and hinge.
    pub fn is_smooth(&self) -> bool {
        !matches!(self, Loss::Absolute | Loss::Hinge)
    }
}
