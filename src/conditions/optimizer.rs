//! The conditions a discrete optimizer's run adds (SPEC §9, issue 11): what
//! the Domingos form of sgd/adam silently assumes.
//!
//! - Batch coverage: a point in no batch has l'_{k,i} = 0 at every step, so
//!   its A_i is 0 and the machine does not depend on it at all.
//! - Sign flips of the per-step kernel ∇f(q)ᵀ P_k ∇f(x_i): where it flips,
//!   a_i(q) is no longer a weighted average of the −l'_{k,i}.
//! - The decay term's size against the change of f: how much of f(w_K) −
//!   f(w_0) lives in the offset D(q) rather than in the kernel sum.
//! - Adam's preconditioner spread max_j P_k[j] / min_j P_k[j]: 1 for sgd;
//!   large when Adam's step is sign-like (coordinates with tiny √vhat get
//!   huge weight), so K^p weights parameters very unevenly.
//!
//! A [`Watch`] is fed each step inside the discrete loop and allocates
//! nothing there; [`Watch::finish`] turns it into [`OptimizerConditions`].
use serde::Serialize;

/// decay_term_ratio above this is named in the verdict: the offset then
/// carries more than 10% of the change of f, as the search's decay-offset
/// claim measures.
pub const DECAY_TOL: f64 = 0.1;

/// The optimizer's part of `conditions` (flattened into it); see the module doc.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct OptimizerConditions {
    /// Per training point, the number of batches that held it (an index
    /// twice in one batch counts once).
    pub batch_coverage: Vec<usize>,
    pub batch_coverage_min: usize,
    pub batch_coverage_max: usize,
    /// Over the steps, the entries of the per-step kernel ∇f(q)ᵀ P_k ∇f(x_i)
    /// whose nonzero sign differs from the last nonzero sign that entry had
    /// (P_k = I for sgd). Every entry counts each flip.
    pub preconditioned_kernel_sign_flips: usize,
    /// The flips per entry, (M C) rows of N C, laid out as path_kernel's
    /// matrix with C = 1 (row m C + c, column i C + c').
    pub preconditioned_kernel_flips_per_pair: Vec<Vec<usize>>,
    /// max_q |decay_term(q)| / max_q |y_end(q) − y0(q)|; null when f did not
    /// change but the decay term is not 0.
    pub decay_term_ratio: Option<f64>,
    /// Adam: max over the steps of max_j P_k[j] / min_j P_k[j].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preconditioner_spread_max: Option<f64>,
    /// Adam: the spread of the last step's P_k.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preconditioner_spread_end: Option<f64>,
}

/// Accumulates [`OptimizerConditions`] step by step.
pub struct Watch {
    coverage: Vec<usize>,
    /// The step (plus one) that last counted each point, so that a point
    /// twice in one batch counts once.
    seen_at: Vec<usize>,
    /// The last nonzero sign of each kernel entry (0: none yet).
    signs: Vec<i8>,
    flips: Vec<usize>,
    rows: usize,
    spread_max: Option<f64>,
    spread_end: Option<f64>,
    steps: usize,
}

impl Watch {
    /// A watch over N training points and a kernel of `rows` x `columns`
    /// entries ((M C) x (N C)).
    pub fn new(n_train: usize, rows: usize, columns: usize) -> Watch {
        Watch {
            coverage: vec![0; n_train],
            seen_at: vec![0; n_train],
            signs: vec![0; rows * columns],
            flips: vec![0; rows * columns],
            rows,
            spread_max: None,
            spread_end: None,
            steps: 0,
        }
    }

    /// Step k: its batch, its kernel ∇f(q)ᵀ P_k ∇f(x_i) (column-major
    /// (M C) x (N C)) and its P_k (None for the identity).
    pub fn step(&mut self, batch: &[usize], kernel: &[f64], preconditioner: Option<&[f64]>) {
        self.steps += 1;
        for &i in batch {
            if self.seen_at[i] != self.steps {
                self.seen_at[i] = self.steps;
                self.coverage[i] += 1;
            }
        }
        for ((last, flips), &k) in self.signs.iter_mut().zip(&mut self.flips).zip(kernel) {
            let sign = (k > 0.0) as i8 - (k < 0.0) as i8;
            if sign != 0 {
                *flips += usize::from(*last == -sign);
                *last = sign;
            }
        }
        if let Some(p) = preconditioner {
            let spread = spread(p);
            self.spread_end = Some(spread);
            self.spread_max = Some(self.spread_max.map_or(spread, |s| s.max(spread)));
        }
    }

    /// The conditions of the run, with its decay term D(q) and f at both ends.
    pub fn finish(self, decay_term: &[f64], y0: &[f64], y_end: &[f64]) -> OptimizerConditions {
        let change = y_end
            .iter()
            .zip(y0)
            .fold(0.0_f64, |m, (e, b)| m.max((e - b).abs()));
        let decay = decay_term.iter().fold(0.0_f64, |m, d| m.max(d.abs()));
        let columns = self.flips.len().checked_div(self.rows).unwrap_or(0);
        let per_pair = (0..self.rows)
            .map(|r| {
                (0..columns)
                    .map(|j| self.flips[j * self.rows + r])
                    .collect()
            })
            .collect();
        OptimizerConditions {
            batch_coverage_min: self.coverage.iter().copied().min().unwrap_or(0),
            batch_coverage_max: self.coverage.iter().copied().max().unwrap_or(0),
            batch_coverage: self.coverage,
            preconditioned_kernel_sign_flips: self.flips.iter().sum(),
            preconditioned_kernel_flips_per_pair: per_pair,
            decay_term_ratio: super::ratio(decay, change),
            preconditioner_spread_max: self.spread_max.map(super::finite_or_max),
            preconditioner_spread_end: self.spread_end.map(super::finite_or_max),
        }
    }
}

/// max_j p_j / min_j p_j (P_k is positive; with eps = 0 an entry may be +∞,
/// and the spread reads f64::MAX in the report).
fn spread(p: &[f64]) -> f64 {
    let (lo, hi) = p.iter().fold((f64::INFINITY, 0.0_f64), |(lo, hi), &v| {
        (lo.min(v), hi.max(v))
    });
    if p.is_empty() { 1.0 } else { hi / lo }
}

impl OptimizerConditions {
    /// The parts of the verdict that matter for this run: points in no
    /// batch, kernel sign flips, a decay term above [`DECAY_TOL`] of the
    /// change, and Adam's spread.
    pub fn describe(&self) -> Vec<String> {
        let mut parts = Vec::new();
        let missed: Vec<usize> = (0..self.batch_coverage.len())
            .filter(|&i| self.batch_coverage[i] == 0)
            .collect();
        if let Some(first) = missed.first() {
            parts.push(format!(
                "{} of {} training points in no batch (first x_{first}): their A_i is 0",
                missed.len(),
                self.batch_coverage.len()
            ));
        }
        if self.preconditioned_kernel_sign_flips > 0 {
            let pairs = self
                .preconditioned_kernel_flips_per_pair
                .iter()
                .flatten()
                .filter(|&&f| f > 0)
                .count();
            let flips = self.preconditioned_kernel_sign_flips;
            let s = |n: usize| if n == 1 { "" } else { "s" };
            parts.push(format!(
                "the per-step kernel changed sign {flips} time{} on {pairs} entr{}",
                s(flips),
                if pairs == 1 { "y" } else { "ies" }
            ));
        }
        match self.decay_term_ratio {
            Some(r) if r > DECAY_TOL => {
                parts.push(format!("decay term {r:.1e} of the change of f"));
            }
            None => parts.push("decay term nonzero where f did not change".to_owned()),
            _ => {}
        }
        if let (Some(max), Some(end)) = (
            self.preconditioner_spread_max,
            self.preconditioner_spread_end,
        ) {
            parts.push(format!(
                "Adam's P_k spread up to {max:.1e} ({end:.1e} at the end)"
            ));
        }
        parts
    }
}
