//! The exact path kernel of gradient descent (SPEC §1): for one step from
//! w_k to w_{k+1} = w_k − ε ∇L(w_k), the fundamental theorem of calculus along
//! the segment gives exactly
//!   f(w_{k+1}; q) − f(w_k; q) = Σ_i −ε l'_i(w_k) ∫₀¹ ∇f(w_k + sΔ; q) · ∇f(w_k; x_i) ds,
//! so summing over steps decomposes f(w_K) − f(w_0) with no O(ε) error. The
//! integral over s is taken by Gauss–Legendre quadrature. With C outputs the
//! same holds per output c, with Σ_{i,c'} −ε l'_{ic'} K^e_k(q, x_i)_{cc'}.
use crate::data::Dataset;
use crate::flow::FlowProblem;
use crate::kernel::{KernelPlan, Scratch};
use crate::model::{Model, Tape};
use crate::segment_kinks::SegmentKinks;
use crate::stepper::Step;
use gauss_quad::legendre::GaussLegendre;
use std::num::NonZeroUsize;

/// Gauss–Legendre nodes per step. The integrand is analytic in s for smooth
/// models and Δ = O(ε), so the rule's error, O((|Δ| ‖∇²f‖ / ‖∇f‖)^{2n}),
/// is far below rounding for n = 8 at any stable ε; for polynomial models
/// (linear, diag_linear, deep linear) of degree below 16 in s it is exact.
pub const NODES: usize = 8;

/// The most pieces a step's segment is split into (see `add_step`).
pub const MAX_PIECES: usize = 64;

/// Accumulates Σ_k ε (−l'_i(w_k)) K^e_k(q_m, x_i) step by step.
pub struct ExactPathKernel<'m> {
    model: &'m dyn Model,
    plan: KernelPlan,
    query: Tape,
    scratch: Scratch,
    /// (s, weight) on [0, 1].
    rule: Vec<(f64, f64)>,
    w_s: Vec<f64>,
    kernel: Vec<f64>,
    segment: Vec<f64>,
    /// This step's −ε l' ∫ K, column-major (M C) x N.
    increment: Vec<f64>,
    /// f(w_{k+1}; q) of the step being added, example-major.
    f_end: Vec<f64>,
    /// The query points' kinks along the step's segment: its pieces.
    kinks: SegmentKinks,
    /// Σ_k ε (−l') K^e_k, column-major (M C) x N.
    pub coef_integral: Vec<f64>,
}

impl<'m> ExactPathKernel<'m> {
    pub fn new(model: &'m dyn Model, data: &Dataset) -> ExactPathKernel<'m> {
        let (n, m, c) = (data.train_x.nrows(), data.test_x.nrows(), model.outputs());
        let query = model.tape(&data.test_x);
        let plan = KernelPlan::new(model);
        let scratch = plan.scratch(&query, m * n, 0);
        let kinks = SegmentKinks::new(model, &query);
        let rule = GaussLegendre::new(NonZeroUsize::new(NODES).expect("NODES > 0"))
            .as_node_weight_pairs()
            .iter()
            .map(|&(x, w)| (0.5 * (x + 1.0), 0.5 * w))
            .collect();
        ExactPathKernel {
            model,
            plan,
            query,
            scratch,
            rule,
            w_s: vec![0.0; model.n_params()],
            kernel: vec![0.0; m * n * c * c],
            segment: vec![0.0; m * n * c * c],
            increment: vec![0.0; m * n * c],
            f_end: vec![0.0; m * c],
            kinks,
            coef_integral: vec![0.0; m * n * c],
        }
    }

    /// Adds one gd step. `flow` must hold its evaluation at the step's start
    /// (as the stepper's observer guarantees for Euler).
    ///
    /// Σ_i −ε l'_i K^e_k(q, x_i) must equal f(w_{k+1}; q) − f(w_k; q), which
    /// measures the quadrature error of each step exactly. A step whose
    /// telescoping residual is above rounding level (`closes`) is split into
    /// 2, 4, ... pieces of 8 nodes each, while splitting still shrinks it
    /// (a rule's error falls by 2^16 per halving; rounding does not), up to
    /// `MAX_PIECES`: long steps whose pre-activations move by more than ~0.1
    /// need it (proofs.md 3.3).
    pub fn add_step(&mut self, flow: &FlowProblem<'_>, step: &Step<'_>) {
        let layout = flow.layout();
        let (n, m, c) = (layout.n_train, layout.n_query, layout.n_outputs);
        let (w0, w1) = (layout.w(step.y0), layout.w(step.y1));
        self.begin_segment(w0, w1);
        let f0 = &flow.outputs()[n * c..(n + m) * c];
        self.refine_segment(w0, w1, |this, pieces| {
            this.integrate_segment(flow.tape(), n, w0, w1, pieces, true, &mut |_, _| {});
            this.increments(flow.lprime(), step.h, c);
            excess(f0, &this.f_end, &this.increment, &[])
        });
        for (a, &inc) in self.coef_integral.iter_mut().zip(&self.increment) {
            *a += inc;
        }
    }

    /// Prepares the segment from w0 to w1: f(w1; q) into
    /// [`ExactPathKernel::f_end`], and the segment's pieces, split where a
    /// query pre-activation of a relu-type unit changes sign (proofs.md E4).
    pub fn begin_segment(&mut self, w0: &[f64], w1: &[f64]) {
        let m = self.query.rows();
        self.model.forward(w1, &mut self.query);
        self.query.outputs_into(0..m, &mut self.f_end);
        self.kinks.locate(self.model, &mut self.query, w0, w1);
    }

    /// Runs `attempt(self, pieces)` (the step's decomposition, returning
    /// its [`excess`]) under [`refine`]. With kinks, a first attempt that
    /// does not close scans the segment for crossings its ends do not show
    /// (a pre-activation that crosses and comes back) before splitting.
    pub fn refine_segment(
        &mut self,
        w0: &[f64],
        w1: &[f64],
        mut attempt: impl FnMut(&mut ExactPathKernel<'m>, usize) -> f64,
    ) {
        if !self.kinks.is_empty() {
            if attempt(self, 1) <= 1.0 {
                return;
            }
            self.kinks.scan(self.model, &mut self.query, w0, w1);
        }
        refine(|pieces| attempt(self, pieces));
    }

    /// f(w1; q) of the last [`ExactPathKernel::begin_segment`], example-major.
    pub fn f_end(&self) -> &[f64] {
        &self.f_end
    }

    /// The last [`ExactPathKernel::increments`], column-major (M C) x N.
    pub fn increment(&self) -> &[f64] {
        &self.increment
    }

    /// segment = ∫₀¹ K(w0 + s (w1 − w0)) ds, each piece between the kink
    /// breakpoints of the last [`ExactPathKernel::begin_segment`] cut into
    /// `pieces` equal parts,
    /// the query points at w_s against the rows 0..n of `train` (taken at
    /// the step's start), when `kernel`; and at each node `at_node` sees the
    /// query tape (forward and backward done at w_s) and the node's weight.
    #[allow(clippy::too_many_arguments)]
    pub fn integrate_segment(
        &mut self,
        train: &Tape,
        n: usize,
        w0: &[f64],
        w1: &[f64],
        pieces: usize,
        kernel: bool,
        at_node: &mut dyn FnMut(&Tape, f64),
    ) {
        let m = self.query.rows();
        self.segment.fill(0.0);
        let breaks = self.kinks.breaks();
        let parts = breaks.windows(2).flat_map(|b| {
            let width = (b[1] - b[0]) / pieces as f64;
            (0..pieces).map(move |piece| (b[0] + piece as f64 * width, width))
        });
        for (start, width) in parts {
            for &(s, weight) in &self.rule {
                let s = start + s * width;
                for ((ws, &a), &b) in self.w_s.iter_mut().zip(w0).zip(w1) {
                    *ws = a + s * (b - a);
                }
                self.model.forward(&self.w_s, &mut self.query);
                self.model.backward(&self.w_s, &mut self.query);
                at_node(&self.query, weight * width);
                if !kernel {
                    continue;
                }
                self.plan.tangent_kernel(
                    &self.query,
                    0..m,
                    train,
                    0..n,
                    &mut self.scratch,
                    None,
                    &mut self.kernel,
                );
                self.segment
                    .iter_mut()
                    .zip(&self.kernel)
                    .for_each(|(acc, &k)| *acc += weight * width * k);
            }
        }
    }

    /// increment(q, x_i)_c = −ε Σ_{c'} l'_{ic'} segment(q, x_i)_{cc'}.
    pub fn increments(&mut self, lprime: &[f64], eps: f64, c: usize) {
        let m = self.query.rows();
        if c == 1 {
            for ((inc_col, k_col), &lp) in self
                .increment
                .chunks_exact_mut(m)
                .zip(self.segment.chunks_exact(m))
                .zip(lprime)
            {
                inc_col
                    .iter_mut()
                    .zip(k_col)
                    .for_each(|(inc, &k)| *inc = -eps * lp * k);
            }
            return;
        }
        crate::flow::coefficient_rates(&mut self.increment, &self.segment, lprime, c);
        self.increment.iter_mut().for_each(|v| *v *= eps);
    }
}

/// Runs `attempt(pieces)` (a step's decomposition with its segment split
/// into `pieces`, returning its [`excess`]) for 1, 2, 4, ... pieces while
/// the excess is above 1 and splitting still halves it (a rule's error
/// falls by 2^16 per halving; rounding does not), up to `MAX_PIECES`; the
/// last attempt's results stand.
pub fn refine(mut attempt: impl FnMut(usize) -> f64) {
    let mut pieces = 1;
    let mut previous = f64::INFINITY;
    loop {
        let excess = attempt(pieces);
        // (A non-finite step is the run's failure to report, not the rule's.)
        if excess <= 1.0 || excess > 0.5 * previous || !excess.is_finite() || pieces == MAX_PIECES {
            break;
        }
        previous = excess;
        pieces *= 2;
    }
}

/// max over q (and output) of |f(w1; q) − f(w0; q) − Σ_i increment(q, x_i)
/// − decay(q)| over its [`rounding_floor`]: `increment` column-major
/// (M C) x N, `decay` (M C) or empty for none.
pub fn excess(f0: &[f64], f1: &[f64], increment: &[f64], decay: &[f64]) -> f64 {
    excess_by(f0.len(), |q| closing(f0, f1, increment, decay, q))
}

/// max over the `entries` of gap / floor, from each entry's (gap, floor).
pub fn excess_by(entries: usize, closing: impl Fn(usize) -> (f64, f64)) -> f64 {
    (0..entries)
        .map(|q| {
            let (gap, floor) = closing(q);
            gap / floor.max(f64::MIN_POSITIVE)
        })
        .fold(0.0, f64::max)
}

/// The rounding level of one step's decomposition at query entry q,
/// 64 ε (|f(w0; q)| + |f(w1; q)| + Σ_i |increment| + |decay|): what
/// [`excess`] divides by, and what a run's exact residual is bounded by.
pub fn rounding_floor(f0: &[f64], f1: &[f64], increment: &[f64], decay: &[f64], q: usize) -> f64 {
    closing(f0, f1, increment, decay, q).1
}

/// (|f1 − f0 − Σ_i increment − decay|, its rounding floor) at entry q.
fn closing(f0: &[f64], f1: &[f64], increment: &[f64], decay: &[f64], q: usize) -> (f64, f64) {
    let m = f0.len();
    let d = decay.get(q).copied().unwrap_or(0.0);
    let row = increment.iter().skip(q).step_by(m);
    let (sum, size) = row.fold((d, d.abs()), |(s, a), &v| (s + v, a + v.abs()));
    closing_sums(f0[q], f1[q], sum, size)
}

/// (|f1 − f0 − sum|, 64 ε (|f0| + |f1| + size)): one entry's closing gap
/// and rounding floor, given the step's summed terms and their magnitude.
pub fn closing_sums(f0: f64, f1: f64, sum: f64, size: f64) -> (f64, f64) {
    let floor = 64.0 * f64::EPSILON * (f0.abs() + f1.abs() + size);
    (((f1 - f0) - sum).abs(), floor)
}
