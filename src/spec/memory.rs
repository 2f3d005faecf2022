//! How much memory a run needs, estimated from P, N, M, D and the method
//! before anything that size is allocated, and the limit it must stay under:
//! a spec too big for the machine is bad input (exit 2), not an abort when
//! the allocator gives up half-way through a run.
//!
//! Two limits use the one estimate: the user's (`--max-memory`, default
//! [`DEFAULT_MAX_MEMORY_GIB`]), checked by the command line once the data
//! are known, and [`MAX_MEMORY_GIB`], the most that flag accepts, which every
//! spec with synthetic data meets as it is read (so that a typo like
//! `n_train: 1e12` is refused before the generator draws a point).
use super::{ModelSpec, Spec};
use crate::error::InputError;
use crate::tableau::Tableau;

/// Bytes in a GiB.
pub const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
/// The memory limit of a run when `--max-memory` is not given.
pub const DEFAULT_MAX_MEMORY_GIB: f64 = 4.0;
/// The most `--max-memory` accepts: past this a spec is refused whatever
/// the flag says (it is then almost surely a typo).
pub const MAX_MEMORY_GIB: f64 = 1024.0;

/// Bytes a pretty-printed report spends per number: the shortest round-trip
/// digits (about 20 characters), the indentation, a comma and a newline (a
/// report of 3.1e6 numbers measured 23 a number).
const REPORT_TEXT_BYTES: f64 = 28.0;

/// The estimate, in f64 so that absurd sizes cannot overflow.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemoryEstimate {
    /// P + M N (C² + C), the numbers in the augmented state (P + 2 M N for C = 1).
    pub state: f64,
    /// Copies of the state the integrator keeps: one per stage, plus the
    /// current state, the stage input and the new state.
    pub copies: f64,
    /// Peak bytes: the data, plus the larger of the integration (state
    /// copies, the model's tapes over N + M rows, the kernel buffers, the
    /// exact path kernel's) and the report (the outcome's M x N matrices,
    /// the report's copies and its text).
    pub bytes: f64,
    /// The share of `bytes` that grows with P alone (the parameters and the
    /// layer widths) rather than with N and M: where a refusal points.
    pub model_bytes: f64,
}

impl Spec {
    /// The memory a run of this spec needs with D inputs, N training and M
    /// query points.
    pub fn memory_estimate(&self, dim: usize, n_train: usize, n_test: usize) -> MemoryEstimate {
        let p = self.model.n_params(dim) as f64;
        let (d, n, m) = (dim as f64, n_train as f64, n_test as f64);
        let c = self.model.outputs() as f64;
        let mn = m * n;
        // K^p holds C² numbers a pair, A holds C (SPEC §8).
        let (kernel, coefs) = (mn * c * c, mn * c);
        let state = p + kernel + coefs;
        let stages = Tableau::by_name(self.flow.method.name()).map_or(16, |t| t.stages());
        let copies = stages as f64 + 3.0;
        let (per_row, widths) = tape_numbers(&self.model, dim, c);
        // Data: as resolved, and stacked into the batch of the tape.
        let data = 2.0 * (n + m) * (d + 1.0);
        // A tape over N + M rows, the gradient buffers over N rows, the two
        // M x N kernel products and the snapshot's kernel.
        let mut run = copies * state + (n + m) * per_row + n * widths + 3.0 * mn;
        if self.flow.exact_path_kernel {
            // A tape over the M query points, the point on the segment and
            // three M x N accumulators.
            run += m * per_row + p + 3.0 * mn;
        }
        if self.flow.method == super::Method::Gd {
            // The second-order term's Taylor tape (three jets of the query
            // points' layer values, within 3 of the tape's numbers per row)
            // and the step Δ.
            run += 3.0 * m * per_row + p;
        }
        if self.flow.method.is_optimizer() {
            // sgd/adam (src/discrete): the exact form's query tape, two
            // P x (M C) Jacobians (at w_k, gbar_k) and the factors of up to 8
            // segment nodes; with momentum or Adam the per-point buffers and
            // the batch's gradients (2 P N: the N x P buffers of SPEC §9),
            // the two deferred sums' running (M C) x P matrices and their
            // (M C) x N parts and products (`discrete::buffers`); Adam's P x (N C) training
            // Jacobian and the two preconditioned query Jacobians.
            run += m * per_row + 8.0 * m * c * per_row + 2.0 * p * m * c + 3.0 * mn * c;
            let memory = self.flow.method == crate::spec::Method::Adam
                || self.flow.momentum.is_some_and(|mu| mu != 0.0);
            if memory {
                run += 2.0 * p * n + 2.0 * p * m * c + 6.0 * mn * c;
            }
            if self.flow.method == crate::spec::Method::Adam {
                run += p * n * c + 2.0 * p * m * c;
            }
        }
        // The outcome's four M x N matrices and w_end; the report's six
        // (a as Option<f64>, 16 bytes) and its text.
        // The steps' record, which grows with K, not with the model: the
        // step sizes (SPEC §13) and, for sgd/adam, the batches' indices
        // (SPEC §9), kept during the run and written into the report.
        let k = self.flow.fixed_steps().map_or(0.0, |k| k as f64);
        let batch = if self.flow.method.is_optimizer() {
            self.flow.batch_size.map_or(n, |b| b as f64)
        } else {
            0.0
        };
        let record = k * (1.0 + batch);
        let report = 4.0 * mn
            + p
            + 7.0 * mn
            + (6.0 * mn + 2.0 * p) * REPORT_TEXT_BYTES / 8.0
            + record * (1.0 + REPORT_TEXT_BYTES / 8.0);
        let numbers = data + (run + record).max(report);
        MemoryEstimate {
            state,
            copies,
            bytes: 8.0 * numbers,
            model_bytes: 8.0 * (copies * p + (n + m) * per_row),
        }
    }

    /// Ok when a run with D inputs, N training and M query points needs at
    /// most `max_memory_gib` GiB by [`Spec::memory_estimate`]; else a refusal
    /// naming the sizes, the estimate and the way to raise the limit.
    pub fn check_size(
        &self,
        dim: usize,
        n_train: usize,
        n_test: usize,
        max_memory_gib: f64,
    ) -> Result<(), InputError> {
        let estimate = self.memory_estimate(dim, n_train, n_test);
        let gib = estimate.bytes / GIB;
        if gib <= max_memory_gib {
            return Ok(());
        }
        let location = if 2.0 * estimate.model_bytes >= estimate.bytes {
            "model"
        } else {
            "data"
        };
        let remedy = if max_memory_gib < MAX_MEMORY_GIB {
            format!("raise the limit with --max-memory <GiB> (at most {MAX_MEMORY_GIB})")
        } else {
            "that is past what --max-memory allows: reduce the sizes".to_owned()
        };
        Err(InputError::new(
            location,
            format!(
                "found P = {} parameters, N = {n_train} training and M = {n_test} query points \
                 (D = {dim}) with method `{}`: an estimated {} of memory (the state P + 2 M N = \
                 {} numbers, {} copies), allowed: at most {max_memory_gib} GiB; {remedy}",
                self.model.n_params(dim),
                self.flow.method.name(),
                readable_bytes(estimate.bytes),
                estimate.state,
                estimate.copies,
            ),
        ))
    }
}

/// Numbers a model's tape keeps per row of its batch (the layer inputs, the
/// output sensitivities and the activations' scratch), and the sum of the
/// widths of its sensitivities (the gradient's buffers per training row).
/// With C outputs each δ holds C rows an example (SPEC §8).
fn tape_numbers(model: &ModelSpec, dim: usize, c: f64) -> (f64, f64) {
    let d = dim as f64;
    match model {
        ModelSpec::Linear { .. } => (d + 2.0 * c, c),
        // The inputs, then per hidden layer its activations, C δ rows and
        // two scratch.
        ModelSpec::Mlp { hidden, .. } => {
            let widths: f64 = hidden.iter().map(|&h| h as f64).sum();
            (d + 2.0 * c + (2.0 + 2.0 * c) * widths, widths + c)
        }
        // 2 blocks + 1 layers of the width, each with inputs and C δ rows,
        // and two scratch per block.
        ModelSpec::Resmlp { width, blocks, .. } => {
            let (w, b) = (*width as f64, *blocks as f64);
            let layers = 2.0 * b + 1.0;
            (
                d + 2.0 * c + (layers * (1.0 + c) + 2.0 * b) * w,
                layers * w + c,
            )
        }
        // The inputs and the explicit Jacobian of 2 D columns.
        ModelSpec::DiagLinear { .. } => (3.0 * d + 1.0, 0.0),
        // Each layer's output, sensitivities, scratch and explicit rows.
        ModelSpec::Layers { .. } => crate::model::Layered::from_spec(model, dim)
            .map_or((f64::INFINITY, 0.0), |m| m.numbers_per_row()),
    }
}

/// Bytes as GiB (or MiB below one GiB), three significant digits.
fn readable_bytes(bytes: f64) -> String {
    if bytes >= GIB {
        format!("{:.3} GiB", bytes / GIB)
    } else {
        format!("{:.3} MiB", bytes / (1024.0 * 1024.0))
    }
}
