//! The augmented gradient flow (SPEC §1): the state (w, K^p, A) with
//!   dw/dt   = −Σ_i l'_i ∇_w f(x_i),
//!   dK^p/dt = K^g(q_m, x_i),
//!   dA/dt   = −l'_i K^g(q_m, x_i),
//! so that the path kernel and the coefficient integrals come out of the same
//! integration as w, at the method's order. With C outputs (SPEC §8) l' has
//! N C entries, K^g a C x C block per pair and A a C-vector per pair:
//!   dA_{ic}(q)/dt = −Σ_{c'} l'_{ic'} K^g_{cc'}(q, x_i).
use crate::data::Dataset;
use crate::error::LastLoss;
use crate::kernel::{InputGrams, KernelPlan, Scratch};
use crate::kinks::{Kink, KinkMap};
use crate::loss::Loss;
use crate::model::{Block, Model, Tape};
use crate::sliding::{MAX_SLIDING, MAX_SUBSETS, Sliding};
use crate::spec::Reduction;
use crate::stepper::OdeSystem;
use nalgebra::DMatrix;
use std::ops::Range;

/// Where each part lives in the flat state: w, then K^p, column-major
/// (M C) x (N C) (row q C + c, column i C + c'), then A, column-major
/// (M C) x N (row q C + c). With C = 1 both are M x N.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub n_params: usize,
    pub n_train: usize,
    pub n_query: usize,
    /// C, the model's outputs.
    pub n_outputs: usize,
}

impl Layout {
    pub fn dim(&self) -> usize {
        self.n_params + self.kernel_len() + self.coef_len()
    }
    /// M N C², the entries of K^p.
    pub fn kernel_len(&self) -> usize {
        self.n_train * self.n_query * self.n_outputs * self.n_outputs
    }
    /// M N C, the entries of A.
    pub fn coef_len(&self) -> usize {
        self.n_train * self.n_query * self.n_outputs
    }
    pub fn w<'a>(&self, y: &'a [f64]) -> &'a [f64] {
        &y[..self.n_params]
    }
    pub fn path_kernel<'a>(&self, y: &'a [f64]) -> &'a [f64] {
        &y[self.n_params..self.n_params + self.kernel_len()]
    }
    pub fn coef_integral<'a>(&self, y: &'a [f64]) -> &'a [f64] {
        &y[self.n_params + self.kernel_len()..]
    }
}

/// dA_i = −Σ_{c'} l'_{ic'} K_{·,(i,c')} for every training point i: `da` is
/// (M C) x N and `kernel` (M C) x (N C), both column-major, `lprime` N C.
pub fn coefficient_rates(da: &mut [f64], kernel: &[f64], lprime: &[f64], c: usize) {
    let rows = da.len() / (lprime.len() / c).max(1);
    for ((a_col, k_cols), lp) in da
        .chunks_exact_mut(rows)
        .zip(kernel.chunks_exact(rows * c))
        .zip(lprime.chunks_exact(c))
    {
        crate::vecmath::scaled_copy(a_col, &k_cols[..rows], -lp[0]);
        for (k_col, &l) in k_cols.chunks_exact(rows).zip(lp).skip(1) {
            a_col.iter_mut().zip(k_col).for_each(|(a, &k)| *a += -l * k);
        }
    }
}

/// The right-hand side with every buffer it needs, allocated at set-up.
pub struct FlowProblem<'m> {
    model: &'m dyn Model,
    loss: Loss,
    /// Training targets, row-major: `target_columns` per example.
    targets: Vec<f64>,
    target_columns: usize,
    /// 1 for reduction "sum", 1/N for "mean".
    weight: f64,
    layout: Layout,
    plan: KernelPlan,
    /// The training inputs stacked over the query inputs: one batch, so each
    /// layer is one matrix product per evaluation.
    tape: Tape,
    scratch: Scratch,
    /// The kernel's Gram matrices of the inputs, constant along the flow.
    input_grams: InputGrams,
    /// l'_{ic} at the last evaluation (entry i C + c), with the reduction's weight.
    lprime: Vec<f64>,
    /// f(x_i) of the last evaluation, example-major (entry i C + c).
    outputs: Vec<f64>,
    /// L at the last evaluation.
    loss_value: f64,
    /// (t, L) at the last evaluation where L was finite.
    last_finite_loss: Option<(f64, f64)>,
    /// t of the last evaluation.
    last_time: f64,
    /// The kink functions: the stepper's switching functions.
    kinks: KinkMap,
    /// The branch of each kink function (see [`OdeSystem::lock_switches`]).
    locks: Vec<f64>,
    /// The sliding mode, for a kinked flow (`crate::sliding`).
    sliding: Option<Sliding>,
    /// On a sliding segment, integrate K^p and A with the kinks' derivative
    /// conventions (relu'(0) = 0: the lower branch G_0) instead of
    /// Filippov's combination; w still follows Filippov (proofs.md E13).
    convention: bool,
    /// Switches released since the last [`FlowProblem::drain_released`].
    released: Vec<usize>,
    /// The tape's rows that are query points: n..n + m, or 0..n + m when
    /// the training points are queries too ([`FlowProblem::with_training_queries`]).
    queries: Range<usize>,
}

impl<'m> FlowProblem<'m> {
    pub fn new(
        model: &'m dyn Model,
        loss: Loss,
        reduction: Reduction,
        data: &Dataset,
    ) -> FlowProblem<'m> {
        FlowProblem::build(model, loss, reduction, data, false)
    }

    /// The flow whose query points are the training points followed by
    /// data.test_x (`learn`'s training-by-training path kernel): the tape
    /// holds each training point once, so its forward and backward passes
    /// serve both the gradient and the kernel's rows, where stacking the
    /// training points into test_x would pass them through the model twice.
    pub fn with_training_queries(
        model: &'m dyn Model,
        loss: Loss,
        reduction: Reduction,
        data: &Dataset,
    ) -> FlowProblem<'m> {
        FlowProblem::build(model, loss, reduction, data, true)
    }

    fn build(
        model: &'m dyn Model,
        loss: Loss,
        reduction: Reduction,
        data: &Dataset,
        training_queries: bool,
    ) -> FlowProblem<'m> {
        let (n, extra) = (data.train_x.nrows(), data.test_x.nrows());
        let queries = if training_queries { 0 } else { n }..n + extra;
        let m = queries.len();
        let batch = DMatrix::from_fn(n + extra, model.input_dim(), |r, c| {
            if r < n {
                data.train_x[(r, c)]
            } else {
                data.test_x[(r - n, c)]
            }
        });
        let tape = model.tape(&batch);
        let plan = KernelPlan::new(model);
        let scratch = plan.scratch(&tape, m * n, n);
        let input_grams = plan.input_grams(&tape, queries.clone(), &tape, 0..n);
        let c = model.outputs();
        let kinks = KinkMap::new(model, &tape, loss, n);
        let loss_kinked = crate::kinks::loss_margin(loss, 1.0, 0.0).is_some();
        let dim = model.n_params() + m * n * c * c + m * n * c;
        let sliding = (!kinks.is_empty()
            && (loss_kinked
                || model
                    .kink_jet(&model.taylor_tape(&data.train_x), 0)
                    .is_some()))
        .then(|| Sliding::new(model, &data.train_x, dim));
        FlowProblem {
            model,
            loss,
            targets: data.train_y.transpose().as_slice().to_vec(),
            target_columns: data.train_y.ncols(),
            weight: match reduction {
                Reduction::Sum => 1.0,
                Reduction::Mean => 1.0 / n as f64,
            },
            layout: Layout {
                n_params: model.n_params(),
                n_train: n,
                n_query: m,
                n_outputs: c,
            },
            plan,
            tape,
            scratch,
            input_grams,
            lprime: vec![0.0; n * c],
            outputs: vec![0.0; (n + extra) * c],
            loss_value: f64::NAN,
            last_finite_loss: None,
            last_time: f64::NAN,
            locks: vec![f64::NAN; kinks.len()],
            kinks,
            sliding,
            convention: false,
            released: Vec::with_capacity(MAX_SLIDING),
            queries,
        }
    }

    /// Integrates K^p and A on sliding segments with the derivative
    /// conventions of SPEC §1 (relu'(0) = 0) rather than Filippov's
    /// weights: the identity then carries E6's residual (the `sliding`
    /// claim). For relu-type kinks only: a loss kink's convention (l' = 0)
    /// is neither branch.
    pub fn read_kernels_by_convention(&mut self) {
        self.convention = true;
    }

    /// Kinks held at one training point follow the linearised selection of
    /// proofs.md E11 (G_0 and the G_l only), not the multilinear one (E15):
    /// the field before E15, kept to compare the two.
    pub fn linearise_selection(&mut self) {
        if let Some(s) = self.sliding.as_mut() {
            s.linearised = true;
        }
    }

    /// Calls `each` with every kink whose sliding mode was released since
    /// the last call (the stepper releases some at a step's end, some when
    /// another kink's sliding mode pushes their λ out of [0, 1]).
    pub fn drain_released(&mut self, mut each: impl FnMut(Kink)) {
        for &j in &self.released {
            each(self.kinks.kink(j));
        }
        self.released.clear();
    }

    /// The kink functions held at zero at the last step's end: those in a
    /// sliding mode and those released there (still at zero), until
    /// [`FlowProblem::drain_released`]. Their signs are rounding.
    pub fn held_kinks(&self) -> impl Iterator<Item = usize> + '_ {
        let sliding = self.sliding.iter().flat_map(|s| &s.switches);
        sliding.chain(&self.released).copied()
    }

    /// What switching function j of the flow is (see [`KinkMap`]).
    pub fn kink(&self, j: usize) -> Kink {
        self.kinks.kink(j)
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The initial augmented state: w0, then zero kernel and coefficients.
    pub fn initial_state(&self, w0: &[f64]) -> Vec<f64> {
        let mut y = vec![0.0; self.layout.dim()];
        y[..w0.len()].copy_from_slice(w0);
        y
    }

    /// Forward and backward pass at w (at time t), and l' and L from the outputs.
    pub fn evaluate(&mut self, t: f64, w: &[f64]) {
        self.model.forward(w, &mut self.tape);
        self.model.backward(w, &mut self.tape);
        let rows = self.tape.rows();
        self.tape.outputs_into(0..rows, &mut self.outputs);
        let (c, columns) = (self.layout.n_outputs, self.target_columns);
        let mut total = 0.0;
        for ((lp, target), f) in self
            .lprime
            .chunks_exact_mut(c)
            .zip(self.targets.chunks_exact(columns))
            .zip(self.outputs.chunks_exact(c))
        {
            total += self.loss.row(target, f, self.weight, lp);
        }
        let n = self.layout.n_train;
        self.kinks.locked_derivatives(
            self.loss,
            &self.targets,
            &self.outputs[..n * c],
            self.weight,
            &mut self.lprime,
        );
        self.loss_value = self.weight * total;
        self.last_time = t;
        if self.loss_value.is_finite() {
            self.last_finite_loss = Some((t, self.loss_value));
        }
    }

    /// (t, L) at the last evaluation where the loss was finite.
    pub fn last_finite_loss(&self) -> LastLoss {
        LastLoss(self.last_finite_loss)
    }

    /// t of the last evaluation.
    pub fn last_time(&self) -> f64 {
        self.last_time
    }

    /// The loss function l.
    pub fn loss_fn(&self) -> Loss {
        self.loss
    }

    /// L at the last evaluation.
    pub fn loss(&self) -> f64 {
        self.loss_value
    }

    /// l'_{ic} (with the reduction's weight) at the last evaluation, entry i C + c.
    pub fn lprime(&self) -> &[f64] {
        &self.lprime
    }

    /// The tape of the last evaluation: rows 0..N training, N..N+M query.
    pub fn tape(&self) -> &Tape {
        &self.tape
    }

    pub fn plan(&self) -> &KernelPlan {
        &self.plan
    }

    /// f at the training points (first) and query points, at the last
    /// evaluation, example-major (entry r C + c).
    pub fn outputs(&self) -> &[f64] {
        &self.outputs
    }

    /// f at the query points at the last evaluation, example-major.
    pub fn query_outputs(&self) -> &[f64] {
        let c = self.layout.n_outputs;
        &self.outputs[self.queries.start * c..self.queries.end * c]
    }

    /// The training targets, row-major, [`FlowProblem::target_columns`] per point.
    pub fn targets(&self) -> &[f64] {
        &self.targets
    }

    /// Target columns per training point: 1 for class labels, else C.
    pub fn target_columns(&self) -> usize {
        self.target_columns
    }

    /// Floating-point operations of one right-hand-side evaluation (a
    /// multiply-add counts 2), from the shapes of the matrix products: the
    /// forward and backward passes over N + M rows, the gradient over N rows,
    /// and each dense block's kernel: Δ_q Δ_xᵀ, U_q U_xᵀ (unless it is the
    /// constant input Gram, formed once) and their Hadamard product, or for
    /// the output layer (δ = 1) U_q U_xᵀ alone. Elementwise work
    /// (activations, axpys) is left out.
    pub fn flops_per_evaluation(&self) -> f64 {
        let Layout {
            n_train: n,
            n_query: m,
            n_outputs: c,
            ..
        } = self.layout;
        let (n, m, c) = (n as f64, m as f64, c as f64);
        let mut flops = 0.0;
        for block in self.model.blocks() {
            let (fan_in, fan_out, kernel) = match *block {
                Block::Dense { input, delta, .. } => {
                    let (a, b) = (
                        self.tape.inputs[input].ncols() as f64,
                        self.tape.deltas[delta].ncols() as f64,
                    );
                    // Δ_q Δ_xᵀ over (M C) x (N C) and its Hadamard product
                    let deltas = 2.0 * (m * c) * (n * c) * b + 2.0 * (m * c) * (n * c);
                    let kernel = if self.model.unit_delta() == Some(delta) {
                        2.0 * m * n * a
                    } else if self.plan.input_gram_is_constant(delta) {
                        deltas
                    } else {
                        2.0 * m * n * a + deltas
                    };
                    (a, b, kernel)
                }
                Block::Bias { .. } => continue,
                Block::Explicit { jac, .. } => {
                    let a = self.tape.explicit[jac].ncols() as f64;
                    (a, 0.0, 2.0 * (m * c) * (n * c) * a)
                }
            };
            let layer = fan_in * fan_out.max(1.0);
            // forward over the batch, backward over its C outputs, gradient
            // over the training rows
            flops += 2.0 * (n + m) * layer * (1.0 + c) + 2.0 * n * layer + kernel;
        }
        flops
    }

    /// K^g(q_m, x_i) at the last evaluation, column-major (M C) x (N C), into `out`.
    pub fn tangent_kernel(&mut self, out: &mut [f64]) {
        let n = self.layout.n_train;
        self.plan.tangent_kernel(
            &self.tape,
            self.queries.clone(),
            &self.tape,
            0..n,
            &mut self.scratch,
            Some(&self.input_grams),
            out,
        );
    }
}

impl OdeSystem for FlowProblem<'_> {
    fn dim(&self) -> usize {
        self.layout.dim()
    }

    /// The right-hand side reads w only: K^p and A are quadratures.
    fn coupled_dim(&self) -> usize {
        self.layout.n_params
    }

    /// The kink functions of [`KinkMap`]: relu-type pre-activations at the
    /// training and query points, and a kinked loss's margins.
    fn switches(&self) -> usize {
        self.kinks.len()
    }

    /// A sliding kink reads as on its lower side (−1): its release is
    /// decided by its Filippov coefficient, not by its rounding-level value.
    fn switch_values(&mut self, out: &mut [f64]) {
        self.kinks
            .values(self.model, &self.tape, self.loss, &self.targets, out);
        for &j in self.sliding.iter().flat_map(|s| &s.switches) {
            out[j] = -1.0;
        }
    }

    /// A forward pass at w only: the values need no derivatives. It leaves
    /// l', L and the outputs of the last `rhs` as they were.
    fn lock_switches(&mut self, lambda: &[f64]) {
        self.locks.copy_from_slice(lambda);
        self.kinks.lock(&mut self.tape, lambda);
    }

    fn field_jumps(&self, j: usize) -> bool {
        self.kinks.field_jumps(j, self.loss)
    }

    /// Adds j to the sliding kinks when, with it, j's Filippov λ lies
    /// strictly inside (0, 1): at a crossing, both one-sided fields then
    /// point into j's surface. (Another kink's λ may then lie outside
    /// [0, 1]: the caller releases it.)
    fn slide(&mut self, j: usize, t: f64, y: &[f64]) -> bool {
        let Some(s) = self.sliding.as_mut() else {
            return false;
        };
        if s.switches.len() == MAX_SLIDING || !self.kinks.field_jumps(j, self.loss) {
            return false;
        }
        let kink = self.kinks.kink(j);
        let c = self.layout.n_outputs;
        let target = match kink.layer {
            None => self.targets[kink.point * c + kink.unit],
            Some(_) => 0.0,
        };
        s.switches.push(j);
        s.kinks.push((kink, target));
        let previous = self.locks[j];
        let mut probe = std::mem::take(&mut s.probe);
        let solved = self.sliding_field(t, y, &mut probe);
        let s = self.sliding.as_mut().expect("kinked");
        s.probe = probe;
        s.extra_evals += 1;
        let own = s.lambda.last().copied().unwrap_or(f64::NAN);
        let engaged = solved && own > 0.0 && own < 1.0;
        if !engaged {
            s.clear_failure();
            s.switches.pop();
            s.kinks.pop();
            self.locks[j] = previous;
            self.kinks.lock(&mut self.tape, &self.locks);
        }
        engaged
    }

    fn sliding(&self) -> Option<(usize, f64)> {
        self.sliding.as_ref()?.worst()
    }

    fn sliding_coefficient(&self, j: usize) -> f64 {
        self.sliding.as_ref().map_or(f64::NAN, |s| s.coefficient(j))
    }

    fn release(&mut self, j: usize, branch: f64) {
        if let Some(s) = self.sliding.as_mut()
            && let Some(l) = s.switches.iter().position(|&x| x == j)
        {
            s.switches.remove(l);
            s.kinks.remove(l);
            s.lambda.remove(l);
            s.clear_failure();
            self.locks[j] = branch;
            self.released.push(j);
        }
        self.kinks.lock(&mut self.tape, &self.locks);
    }

    fn extra_evals(&mut self) -> usize {
        self.sliding
            .as_mut()
            .map_or(0, |s| std::mem::take(&mut s.extra_evals))
    }

    fn switches_at(&mut self, _t: f64, w: &[f64], out: &mut [f64]) {
        self.model.forward(w, &mut self.tape);
        self.switch_values(out);
    }

    fn rhs(&mut self, t: f64, y: &[f64], dy: &mut [f64]) {
        if self
            .sliding
            .as_ref()
            .is_some_and(|s| !s.switches.is_empty())
        {
            self.sliding_field(t, y, dy);
        } else {
            self.field(t, y, dy);
        }
    }
}

impl FlowProblem<'_> {
    /// The field with every kink on its locked branch.
    fn field(&mut self, t: f64, y: &[f64], dy: &mut [f64]) {
        let Layout {
            n_params: p,
            n_train: n,
            n_outputs: c,
            ..
        } = self.layout;
        self.evaluate(t, &y[..p]);
        let (dw, dk) = dy.split_at_mut(p);
        self.plan
            .weighted_gradient(&self.tape, 0..n, &self.lprime, -1.0, &mut self.scratch, dw);
        let (dkp, da) = dk.split_at_mut(self.layout.kernel_len());
        self.tangent_kernel(dkp);
        coefficient_rates(da, dkp, &self.lprime, c);
    }

    /// Filippov's sliding field into `dy` (proofs.md E5): G_0 (every
    /// sliding kink on its lower branch), each G_l (kink l alone on its
    /// upper one), their rates from a Taylor pass each, λ from the k x k
    /// system, F = G_0 + Σ_l λ_l (G_l − G_0). Where held kinks share a
    /// training point, also the corner G_S of each such subset S, λ from
    /// the multilinear system and F = G(λ) (E15). False where λ is not
    /// available (no kink jets, a singular system): `dy` is then G_0.
    fn sliding_field(&mut self, t: f64, y: &[f64], dy: &mut [f64]) -> bool {
        let p = self.layout.n_params;
        let mut s = self.sliding.take().expect("a kinked flow");
        for &j in &s.switches {
            self.locks[j] = 0.0;
        }
        self.kinks.lock(&mut self.tape, &self.locks);
        self.field(t, y, dy);
        let mut ok = s.base(self.model, &y[..p], &dy[..p], self.loss);
        let mut corners = std::mem::take(&mut s.corners);
        for (l, corner) in s.switches.iter().zip(corners.iter_mut()) {
            self.locks[*l] = 1.0;
            self.kinks.lock(&mut self.tape, &self.locks);
            self.field(t, y, corner);
            self.locks[*l] = 0.0;
            s.extra_evals += 1;
        }
        for corner in &corners[..s.switches.len()] {
            ok &= s.corner(self.model, &y[..p], &corner[..p], self.loss);
        }
        let mixed = !s.same_point_subsets().is_empty();
        if mixed {
            ok &= self.mixed_corners(&mut s, t, y, dy, &corners);
        }
        ok = ok && s.solve();
        if ok {
            let combined = if self.convention { p } else { dy.len() };
            for (d, k) in dy[..combined].iter_mut().enumerate() {
                let base = *k;
                *k = base
                    + s.lambda
                        .iter()
                        .zip(&corners)
                        .map(|(l, g)| l * (g[d] - base))
                        .sum::<f64>();
            }
            if mixed {
                s.add_mixed(dy, combined);
            }
        }
        s.corners = corners;
        self.sliding = Some(s);
        ok
    }

    /// The corner field G_S of every subset S of held kinks at one training
    /// point (S's kinks on their upper branch, the others on their lower),
    /// one evaluation and one Taylor pass each, then their Möbius
    /// differences (`g0` = G_0, `corners` the G_l).
    fn mixed_corners(
        &mut self,
        s: &mut Sliding,
        t: f64,
        y: &[f64],
        g0: &[f64],
        corners: &[Vec<f64>],
    ) -> bool {
        let p = self.layout.n_params;
        let mut mixed = s.take_mixed_corners();
        let mut ok = true;
        let mut masks = [0; MAX_SUBSETS];
        let n = s.subsets().len();
        masks[..n].copy_from_slice(s.subsets());
        for (&mask, corner) in masks[..n].iter().zip(mixed.iter_mut()) {
            for (l, &j) in s.switches.iter().enumerate() {
                self.locks[j] = f64::from(mask >> l & 1);
            }
            self.kinks.lock(&mut self.tape, &self.locks);
            self.field(t, y, corner);
            s.extra_evals += 1;
        }
        for &j in &s.switches {
            self.locks[j] = 0.0;
        }
        for (i, corner) in mixed[..n].iter().enumerate() {
            ok &= s.mixed_corner(i, self.model, &y[..p], &corner[..p], self.loss);
        }
        s.mobius(mixed, g0, corners);
        ok
    }
}
