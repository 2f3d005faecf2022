//! The convergence study of `pathkernel converge`: a fixed-step spec rerun
//! at ever finer steps, each residual printed with its observed order
//! log2(r(h) / r(h/2)). For a discrete method (gd) the table also shows
//! the second-order residual (order 2 on smooth models, proofs.md §10) and,
//! with the exact path kernel, the exact residual (rounding level).
use crate::experiment::Outcome;
use crate::spec::{Method, Spec};

/// The spec one level finer, at the same t_end. Fixed-step methods and gd
/// halve their step (gd: lr / 2, twice the steps); sgd and adam halve lr and
/// use each of the run's batches (`run`'s, replayed) for two consecutive
/// half steps ([`crate::optimizer::refined`]).
pub fn refine(spec: &Spec, run: &Outcome) -> Spec {
    let mut finer = spec.clone();
    match spec.flow.method {
        Method::Sgd | Method::Adam => {
            let batches = &run
                .optimizer
                .as_ref()
                .expect("an sgd/adam outcome has its batches")
                .batches;
            finer.flow = crate::optimizer::refined(&spec.flow, batches);
        }
        Method::Gd
        | Method::Heun
        | Method::Rk4
        | Method::Dopri5
        | Method::Dop853
        | Method::Verner98 => {
            let h = spec
                .flow
                .fixed_step()
                .expect("converge refines fixed-step specs");
            finer.flow.set_fixed_step(h / 2.0);
        }
    }
    finer
}

/// One run of the study: its step and counts and the largest residual of
/// each form it has.
#[derive(Clone, Debug, PartialEq)]
pub struct Level {
    pub step: f64,
    pub steps: usize,
    pub rhs_evals: usize,
    /// max |r|, the Domingos (left-point) form for a discrete method.
    pub residual: f64,
    /// max |r − r2| (discrete methods).
    pub second_order_residual: Option<f64>,
    /// max |f(w_end) − exact kernel machine| (with the exact path kernel).
    pub exact_residual: Option<f64>,
}

impl Level {
    pub fn new(spec: &Spec, out: &Outcome) -> Level {
        Level {
            step: spec
                .flow
                .fixed_step()
                .expect("converge runs fixed-step specs"),
            steps: out.stats.steps,
            rhs_evals: out.stats.rhs_evals,
            residual: out.max_abs_residual(),
            second_order_residual: out.second_order_max_abs_residual(),
            exact_residual: out.exact_max_abs_residual(),
        }
    }

    /// The residual columns this level has, in table order.
    fn columns(&self) -> Vec<f64> {
        std::iter::once(self.residual)
            .chain(self.second_order_residual)
            .chain(self.exact_residual)
            .collect()
    }

    /// The table's header for levels shaped like this one.
    pub fn header(&self) -> String {
        let mut line = format!(
            "{:>12} {:>8} {:>10} {:>14} {:>8}",
            "step", "steps", "rhs_evals", "max |r|", "order"
        );
        if self.second_order_residual.is_some() {
            line += &format!(" {:>14} {:>8}", "max |r - r2|", "order");
        }
        if self.exact_residual.is_some() {
            line += &format!(" {:>14} {:>8}", "max |r_exact|", "order");
        }
        line + "\n"
    }

    /// Its table line, each residual followed by its observed order
    /// against `previous` (the level one step coarser), or "-".
    pub fn line(&self, previous: Option<&Level>) -> String {
        let mut line = format!(
            "{:>12.6e} {:>8} {:>10}",
            self.step, self.steps, self.rhs_evals
        );
        let before = previous.map(Level::columns);
        for (j, r) in self.columns().into_iter().enumerate() {
            let order = before
                .as_ref()
                .map(|b| format!("{:8.3}", observed_order(b[j], r)))
                .unwrap_or_else(|| format!("{:>8}", "-"));
            line += &format!(" {r:>14.6e} {order}");
        }
        line + "\n"
    }
}

/// How many of its memories (`optimizer::memory_steps`) each batch must
/// span before `converge`'s orders are asymptotic: proofs.md C57's fit
/// holds from 6.4, and its measured orders are within 0.1 of 1 and 2 from
/// about 10.
pub const MEMORY_MULTIPLE: f64 = 10.0;

/// Whether a study's finest run is still inside its optimizer's memory
/// transient: each of the first run's batches is used for 2^k consecutive
/// steps at the k-th halving, and the refined runs approach their limit
/// only once that span is many times the memory (proofs.md C57).
pub struct Transient {
    memory: f64,
    first_steps: usize,
    /// Every batch the same multiset (full batches): the gradient does not
    /// jump between them, so the whole run counts as one batch's span.
    one_batch: bool,
}

impl Transient {
    /// From the study's first spec and run; None for an optimizer without
    /// memory or another method.
    pub fn of(spec: &Spec, run: &Outcome) -> Option<Transient> {
        let memory = crate::optimizer::memory_steps(&spec.flow)?;
        let batches = &run.optimizer.as_ref()?.batches;
        let sorted = |b: &Vec<usize>| {
            let mut b = b.clone();
            b.sort_unstable();
            b
        };
        let first = batches.first().map(sorted);
        Some(Transient {
            memory,
            first_steps: batches.len().max(1),
            one_batch: batches.iter().all(|b| Some(sorted(b)) == first),
        })
    }

    /// The line under the table when the finest run (`steps` steps) gives
    /// each batch fewer than [`MEMORY_MULTIPLE`] memories.
    pub fn note(&self, steps: usize) -> Option<String> {
        let span = if self.one_batch {
            steps
        } else {
            steps / self.first_steps
        };
        let needed = MEMORY_MULTIPLE * self.memory;
        (span as f64 <= needed).then(|| {
            format!(
                "note: the finest run spans each batch with {span} steps, not more than \
                 {MEMORY_MULTIPLE} times the optimizer's memory 1 / (1 - beta) = {:.1}: it is \
                 still inside the memory's transient, and the orders need not be asymptotic \
                 (proofs.md C57)\n",
                self.memory
            )
        })
    }
}

/// log2(r(h) / r(h/2)), the order at which r falls as the step halves.
pub fn observed_order(coarse: f64, fine: f64) -> f64 {
    (coarse / fine).log2()
}
