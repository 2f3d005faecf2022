//! A bench baseline (what `pathkernel bench --save` writes) and the
//! comparison of a new measurement with it.
//!
//! Tolerances (proofs.md §8, C26): the counts (evaluations, steps,
//! rejected steps) of a spec are a deterministic function of the code, so
//! any change is flagged; the residual is flagged when it moves by more
//! than a factor [`RESIDUAL_FACTOR`] either way and by more than the
//! rounding floor [`rounding_floor`]; the time only when the new median is
//! above the baseline's slowest run (its own spread).
use serde::{Deserialize, Serialize};

/// The residual may move by this factor before it is flagged.
pub const RESIDUAL_FACTOR: f64 = 2.0;
/// Roundings per step in the floor c K u S of proofs.md §3.5.
pub const ROUNDINGS_PER_STEP: f64 = 16.0;

/// c K u S (proofs.md §3.5): below this the residual is rounding, whose
/// value may move by any factor when a sum is reordered.
pub fn rounding_floor(steps: usize, scale: f64) -> f64 {
    ROUNDINGS_PER_STEP * steps.max(1) as f64 * f64::EPSILON * scale
}

/// Wall times of K runs of one spec, in seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Times {
    pub runs: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// What one bench spec measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The spec's file stem (`small`).
    pub name: String,
    pub n_params: usize,
    pub rhs_evals: usize,
    pub steps: usize,
    pub rejected_steps: usize,
    pub max_abs_residual: f64,
    /// S = max_q (|f(w0; q)| + |f(w_T; q)| + Σ_i |A_i(q)|), the scale of
    /// the residual's rounding floor (proofs.md §3.5).
    pub scale: f64,
    /// None in a counts-only baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Times>,
    /// FLOPs of the matrix products per second at the median time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gflops: Option<f64>,
}

/// A saved set of entries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    pub version: u32,
    /// The tool that measured it.
    pub generator: String,
    pub entries: Vec<Entry>,
}

/// One figure of one spec, against the baseline.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub name: String,
    pub figure: &'static str,
    pub baseline: f64,
    pub now: f64,
    /// Why it is flagged, or None.
    pub flag: Option<String>,
}

impl Finding {
    pub fn ratio(&self) -> f64 {
        self.now / self.baseline
    }
}

/// Every figure of `now` that the baseline also has, flagged where it
/// changed beyond its tolerance.
pub fn compare(now: &[Entry], baseline: &Baseline) -> Vec<Finding> {
    let mut out = Vec::new();
    for e in now {
        let Some(b) = baseline.entries.iter().find(|b| b.name == e.name) else {
            continue;
        };
        let mut add = |figure, base: f64, new: f64, flag: Option<String>| {
            out.push(Finding {
                name: e.name.clone(),
                figure,
                baseline: base,
                now: new,
                flag,
            });
        };
        for (figure, base, new) in [
            ("rhs_evals", b.rhs_evals, e.rhs_evals),
            ("steps", b.steps, e.steps),
            ("rejected_steps", b.rejected_steps, e.rejected_steps),
        ] {
            let flag = (base != new)
                .then(|| format!("{figure} changed from {base} to {new} (counts must not change)"));
            add(figure, base as f64, new as f64, flag);
        }
        let (base, new) = (b.max_abs_residual, e.max_abs_residual);
        let floor = rounding_floor(b.steps.max(e.steps), b.scale.max(e.scale));
        let beyond = (new > RESIDUAL_FACTOR * base || base > RESIDUAL_FACTOR * new)
            && (new - base).abs() > floor;
        let flag = beyond.then(|| {
            format!(
                "max_abs_residual moved from {base:e} to {new:e}, more than a factor \
                 {RESIDUAL_FACTOR} and the rounding floor {floor:e}"
            )
        });
        add("max_abs_residual", base, new, flag);
        if let (Some(bt), Some(nt)) = (&b.time, &e.time) {
            let flag = (nt.median > bt.max).then(|| {
                format!(
                    "the median time {:.4} s is above the baseline's slowest run, {:.4} s",
                    nt.median, bt.max
                )
            });
            add("seconds", bt.median, nt.median, flag);
        }
    }
    out
}
