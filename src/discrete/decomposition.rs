//! Both decompositions of a discrete optimizer's run (SPEC §9), step by
//! step. Step k moves w by Δ_k = Σ_i G_{k,i} + D_k, point i's share G_{k,i}
//! and the weight decay's D_k carried through the optimizer's buffers.
//!
//! - Exact: f(w_{k+1}; q) − f(w_k; q) = gbar_k(q) · Δ_k, gbar_k(q) = ∫₀¹
//!   ∇f(w_k + s Δ_k; q) ds (Gauss–Legendre, with the self-checking split of
//!   `crate::exact`), so A^e_i += gbar_k · G_{k,i}, D^e += gbar_k · D_k.
//! - Domingos (left point): the same with ∇f(w_k; q) for gbar_k, and the
//!   path kernel Σ_k eta_k ∇f(w_k; q)ᵀ P_k ∇f(w_k; x_i).
//!
//! Without memory (plain sgd) G_{k,i} = −eta_k l'_{k,i} ∇f(w_k; x_i), so
//! both sums over i are kernels in factored form (`crate::kernel`, and the
//! exact path kernel's segment kernel) and no per-point P-vector exists.
//! With memory each point's buffer is a P-vector (N x P numbers), and the
//! sums are products of the query Jacobian (or gbar_k) with them, deferred
//! to each point's draws by `buffers`; each step's exact closing check
//! then uses the shares' sum Σ_i G_{k,i}, carried through a buffer of its
//! own as the decay's D_k is.
use super::buffers::PointBuffers;
use super::query::{BLOCK_ROWS, PRODUCT_ROWS, Query};
use crate::exact::{ExactPathKernel, NODES, closing_sums, excess, excess_by, rounding_floor};
use crate::flow::{FlowProblem, coefficient_rates};
use crate::jacobian::Jacobians;
use crate::linalg::{gemm_deep as gemm, slice_view, slice_view_mut};
use crate::model::Model;
use crate::optimizer::{Linear, Optimizer};
use crate::vecmath::axpy;

/// The accumulated terms of both decompositions; matrices column-major,
/// kernels (M C) x (N C), coefficients (M C) x N, per-query vectors M C.
pub struct Decomposition<'m> {
    dims: (usize, usize, usize, usize),
    exact: ExactPathKernel<'m>,
    /// Jacobians at w_k, and gbar_k's sum over the segment's nodes.
    jac: Jacobians,
    node_sum: Jacobians,
    /// The rows of the query points on the flow's tape, of the training
    /// points, and of the query points on the exact form's tape.
    query_rows: Vec<usize>,
    train_rows: Vec<usize>,
    segment_rows: Vec<usize>,
    /// ∇f(w_k; q): P x (M C).
    jq: Vec<f64>,
    /// P_k ∇f(w_k; q) (preconditioned optimizers), P x (M C).
    jq_pre: Vec<f64>,
    /// ∇f(w_k; q) held as factors (the buffers' sum, P_k's kernel).
    query_factors: Jacobians,
    /// Blocks of both Jacobians for P_k's kernel (`query::weighted_product`).
    product_blocks: Vec<f64>,
    /// gbar_k and P_k gbar_k: P x (M C).
    gbar: Vec<f64>,
    gbar_pre: Vec<f64>,
    /// Memory: each point's buffer and the deferred sums (`PointBuffers`).
    buffers: Option<PointBuffers>,
    /// Memory: the batch's summed shares Σ_i x_{k,i} carried to Σ_i
    /// G_{k,i}; and per query entry gbar_k · Σ_i G_{k,i} with its
    /// magnitude |gbar_k| · |Σ_i G_{k,i}|.
    shares: Carried,
    share_sum: Vec<f64>,
    share_size: Vec<f64>,
    /// A block of gbar_k formed from its factors for the check.
    scratch: Vec<f64>,
    /// The decay's input λ_c w_k carried to D_k (before λ_d's part).
    decay: Carried,
    /// K^g (P_k-weighted) at w_k, and this step's increments.
    kernel: Vec<f64>,
    increment: Vec<f64>,
    exact_increment: Vec<f64>,
    exact_decay: Vec<f64>,
    pub path_kernel: Vec<f64>,
    pub coef_integral: Vec<f64>,
    pub decay_term: Vec<f64>,
    pub exact_coef_integral: Vec<f64>,
    pub exact_decay_term: Vec<f64>,
    /// Σ_k of each step's rounding floor (`crate::exact::rounding_floor`),
    /// per query entry: what the exact residual is bounded by (proofs.md §9).
    pub exact_floor: Vec<f64>,
}

impl<'m> Decomposition<'m> {
    /// Buffers for a run of `flow`'s model and data; `memory`: per-point
    /// buffers (momentum, Adam); `preconditioned`: a P_k other than I.
    pub fn new(
        model: &'m dyn Model,
        flow: &FlowProblem<'_>,
        data: &crate::data::Dataset,
        memory: bool,
        preconditioned: bool,
    ) -> Decomposition<'m> {
        let l = flow.layout();
        let (p, n, m, c) = (l.n_params, l.n_train, l.n_query, l.n_outputs);
        let sized = |yes: bool, len: usize| vec![0.0; if yes { len } else { 0 }];
        Decomposition {
            dims: (p, n, m, c),
            exact: ExactPathKernel::new(model, data),
            jac: Jacobians::new(model, flow.tape(), n.max(m), 1),
            node_sum: Jacobians::new(model, flow.tape(), m, NODES),
            query_rows: (n..n + m).collect(),
            train_rows: (0..n).collect(),
            segment_rows: (0..m).collect(),
            jq: vec![0.0; p * m * c],
            jq_pre: sized(preconditioned, p * m * c),
            query_factors: Jacobians::new(model, flow.tape(), m, 1),
            product_blocks: sized(preconditioned, PRODUCT_ROWS * (m + n) * c),
            gbar: vec![0.0; p * m * c],
            gbar_pre: sized(preconditioned && memory, p * m * c),
            buffers: memory.then(|| PointBuffers::new(p, n, &[(m * c, false), (m * c, true)])),
            shares: Carried::new(if memory { p } else { 0 }),
            share_sum: sized(memory, m * c),
            share_size: sized(memory, m * c),
            scratch: sized(memory, BLOCK_ROWS),
            decay: Carried::new(p),
            kernel: vec![0.0; l.kernel_len()],
            increment: vec![0.0; l.coef_len()],
            exact_increment: vec![0.0; l.coef_len()],
            exact_decay: vec![0.0; m * c],
            path_kernel: vec![0.0; l.kernel_len()],
            coef_integral: vec![0.0; l.coef_len()],
            decay_term: vec![0.0; m * c],
            exact_coef_integral: vec![0.0; l.coef_len()],
            exact_decay_term: vec![0.0; m * c],
            exact_floor: vec![0.0; m * c],
        }
    }

    /// The kernel of the last step, K^g(w_k) weighted by P_k, (M C) x (N C).
    pub fn kernel(&self) -> &[f64] {
        &self.kernel
    }

    /// Adds step k, from `w` to `w_next`: `flow` holds its evaluation at w
    /// (w_k), `opt` has begun step k, `lprime` holds l'_{k,i} (zero off the
    /// batch) and (lambda_c, lambda_d) the decays.
    #[allow(clippy::too_many_arguments)]
    pub fn add_step(
        &mut self,
        flow: &mut FlowProblem<'_>,
        opt: &dyn Optimizer,
        eta: f64,
        lprime: &[f64],
        w: &[f64],
        w_next: &[f64],
        (lambda_c, lambda_d): (f64, f64),
    ) {
        let (p, n, m, c) = self.dims;
        let mc = m * c;
        let pre = opt.preconditioner();
        // D_k = −eta_k P_k d(λ_c w) − eta_k λ_d w.
        crate::vecmath::scaled_copy(&mut self.decay.input, w, lambda_c);
        self.decay.carry(opt, eta);
        axpy(&mut self.decay.step, -eta * lambda_d, w);
        let decays = self.decay.step.iter().any(|&d| d != 0.0);
        let linear = opt.linear();
        // ∇f(w_k; q) enters the buffers' and the decay's sums, and P_k's
        // kernel; where only the buffers' sum and the kernel read it, it
        // is held as factors and formed a block at a time (`query`).
        let direct = !decays && linear.pass == 0.0;
        if (self.buffers.is_some() && !direct) || decays {
            self.jac
                .jacobian(flow.tape(), &self.query_rows, &mut self.jq);
        }
        if self.buffers.is_some() || pre.is_some() {
            let tape = flow.tape();
            self.query_factors.begin_sum(&self.query_rows);
            self.query_factors.add_node(tape, 1.0, None, &mut []);
        }
        // The kernel at w_k: K^g, or ∇f(q)ᵀ P_k ∇f(x).
        match pre {
            None => flow.tangent_kernel(&mut self.kernel),
            Some(pk) => {
                let tape = flow.tape();
                self.jac.begin_sum(&self.train_rows);
                self.jac.add_node(tape, 1.0, None, &mut []);
                super::query::weighted_product(
                    &mut self.kernel,
                    (Query::Factors(&self.query_factors), mc),
                    pk,
                    (Query::Factors(&self.jac), n * c),
                    &mut self.product_blocks,
                );
            }
        }
        axpy(&mut self.path_kernel, eta, &self.kernel);
        // The Domingos sums at w_k.
        if decays {
            let jq = slice_view(&self.jq, p, mc).transpose();
            gemm(
                slice_view_mut(&mut self.decay_term, mc, 1),
                true,
                jq,
                slice_view(&self.decay.step, p, 1),
                1.0,
            );
        }
        if let Some(buffers) = self.buffers.as_mut() {
            // The batch: the points with a gradient this step.
            let batch = (0..n).filter(|&i| lprime[i * c..(i + 1) * c].iter().any(|&v| v != 0.0));
            let (rows, inputs) = buffers.batch_inputs(batch);
            self.jac.gradients(flow.tape(), rows, lprime, inputs);
            // Σ_i G_{k,i}, for the exact form's closing check.
            self.shares.input.fill(0.0);
            for x in inputs.chunks_exact(p) {
                crate::vecmath::add_assign(&mut self.shares.input, x);
            }
            self.shares.carry(opt, eta);
        } else {
            coefficient_rates(&mut self.increment, &self.kernel, lprime, c);
            self.increment.iter_mut().for_each(|v| *v *= eta);
            crate::vecmath::add_assign(&mut self.coef_integral, &self.increment);
        }
        self.add_exact(flow, linear, lprime, eta, w, w_next);
        self.step_buffers((pre, linear), eta, direct);
    }

    /// The exact sums over the segment from w to w_next; `linear`: the
    /// step's map (`Optimizer`).
    fn add_exact(
        &mut self,
        flow: &FlowProblem<'_>,
        linear: Linear,
        lprime: &[f64],
        eta: f64,
        w: &[f64],
        w_next: &[f64],
    ) {
        let (p, n, m, c) = self.dims;
        let mc = m * c;
        // gbar is needed for the shares with memory, and for a decay.
        let memory = self.buffers.is_some();
        let decays = self.decay.step.iter().any(|&d| d != 0.0);
        let need_gbar = memory || decays;
        let Decomposition {
            exact,
            node_sum,
            segment_rows,
            gbar,
            decay,
            shares,
            share_sum,
            share_size,
            exact_increment,
            exact_decay,
            scratch,
            ..
        } = self;
        exact.begin_segment(w, w_next);
        let f0 = &flow.outputs()[n * c..(n + m) * c];
        exact.refine_segment(w, w_next, |exact, pieces| {
            node_sum.begin_sum(segment_rows);
            let mut at_node = |tape: &crate::model::Tape, weight: f64| {
                if need_gbar {
                    node_sum.add_node(tape, weight, None, gbar);
                }
            };
            exact.integrate_segment(flow.tape(), n, w, w_next, pieces, !memory, &mut at_node);
            // With memory and no decay or pass term, nothing reads gbar_k
            // whole: it stays in its nodes' factors (`query`) unless the
            // nodes outgrew them.
            if need_gbar && (decays || linear.pass != 0.0 || !node_sum.held()) {
                node_sum.finish(gbar);
            }
            if decays {
                let gb = slice_view(gbar, p, mc).transpose();
                let d = slice_view(&decay.step, p, 1);
                gemm(slice_view_mut(exact_decay, mc, 1), false, gb, d, 1.0);
            } else {
                exact_decay.fill(0.0);
            }
            if memory {
                // Σ_i gbar_k · G_{k,i} = gbar_k · Σ_i G_{k,i}: the points'
                // own sums are deferred (`buffers`).
                let gbar = gbar_query(node_sum, gbar);
                for q in 0..mc {
                    let (sum, size) = gbar.dot_and_size(q, &shares.step, scratch);
                    share_sum[q] = sum + exact_decay[q];
                    share_size[q] = size + exact_decay[q].abs();
                }
                let f1 = exact.f_end();
                excess_by(mc, |q| {
                    closing_sums(f0[q], f1[q], share_sum[q], share_size[q])
                })
            } else {
                exact.increments(lprime, eta, c);
                exact_increment.copy_from_slice(exact.increment());
                excess(f0, exact.f_end(), exact_increment, exact_decay)
            }
        });
        let f1 = self.exact.f_end();
        for (q, floor) in self.exact_floor.iter_mut().enumerate() {
            *floor += if memory {
                closing_sums(f0[q], f1[q], self.share_sum[q], self.share_size[q]).1
            } else {
                rounding_floor(f0, f1, &self.exact_increment, &self.exact_decay, q)
            };
        }
        crate::vecmath::add_assign(&mut self.exact_decay_term, &self.exact_decay);
        if self.buffers.is_none() {
            crate::vecmath::add_assign(&mut self.exact_coef_integral, &self.exact_increment);
        }
    }

    /// The step of the point buffers (with memory): the Domingos form's
    /// query Jacobian (held as factors when `direct`, else formed, with
    /// P_k applied) and the exact form's gbar_k enter their running sums.
    fn step_buffers(&mut self, (pre, linear): (Option<&[f64]>, Linear), eta: f64, direct: bool) {
        let Some(buffers) = self.buffers.as_mut() else {
            return;
        };
        let domingos = match (direct, pre) {
            (true, _) => (Query::Factors(&self.query_factors), pre),
            (false, Some(pk)) => {
                let pairs = self
                    .jq_pre
                    .chunks_exact_mut(self.dims.0)
                    .zip(self.jq.chunks_exact(self.dims.0));
                for (dst, src) in pairs {
                    crate::vecmath::product_into(dst, src, pk);
                }
                (Query::Formed(&self.jq_pre), None)
            }
            (false, None) => (Query::Formed(&self.jq), None),
        };
        let exact = match pre {
            Some(pk) if linear.pass != 0.0 => {
                let pairs = self
                    .gbar_pre
                    .chunks_exact_mut(self.dims.0)
                    .zip(self.gbar.chunks_exact(self.dims.0));
                for (dst, src) in pairs {
                    crate::vecmath::product_into(dst, src, pk);
                }
                (Query::Formed(&self.gbar_pre), None)
            }
            _ => (gbar_query(&self.node_sum, &self.gbar), pre),
        };
        buffers.step(linear, eta, &[domingos, exact]);
    }

    /// Completes the deferred sums after the run's `steps` steps: A and
    /// A^e of every point, and the exact floor's share of their rounding
    /// (γ_n of the pairs' magnitudes, n = P + 6 K + 8: proofs.md §12, 8.5).
    pub fn finish(&mut self, steps: usize) {
        let Some(buffers) = self.buffers.as_mut() else {
            return;
        };
        buffers.finish();
        self.coef_integral.copy_from_slice(buffers.total(DOMINGOS));
        self.exact_coef_integral
            .copy_from_slice(buffers.total(EXACT));
        let roundings = (self.dims.0 + 6 * steps + 8) as f64;
        let gamma = roundings * f64::EPSILON / (1.0 - roundings * f64::EPSILON);
        for (floor, size) in self.exact_floor.iter_mut().zip(buffers.magnitude(EXACT)) {
            *floor += gamma * size;
        }
    }
}

/// gbar_k as its nodes' factors while they are all held, else formed.
fn gbar_query<'a>(node_sum: &'a Jacobians, gbar: &'a [f64]) -> Query<'a> {
    if node_sum.held() {
        Query::Factors(node_sum)
    } else {
        Query::Formed(gbar)
    }
}

/// The deferred streams of `PointBuffers`: the Domingos form's query
/// Jacobian and the exact form's gbar_k.
const DOMINGOS: usize = 0;
const EXACT: usize = 1;

/// A stream of gradients carried through a buffer of its own
/// (`Optimizer::carry`) to its step −eta_k P_k d: the coupled decay's
/// λ_c w_k (to D_k), and the batch's summed shares (to Σ_i G_{k,i}).
struct Carried {
    input: Vec<f64>,
    buffer: Vec<f64>,
    direction: Vec<f64>,
    step: Vec<f64>,
}

impl Carried {
    fn new(p: usize) -> Carried {
        Carried {
            input: vec![0.0; p],
            buffer: vec![0.0; p],
            direction: vec![0.0; p],
            step: vec![0.0; p],
        }
    }

    /// One step of `input` (set by the caller): step = −eta P_k d.
    fn carry(&mut self, opt: &dyn Optimizer, eta: f64) {
        opt.carry(&mut self.buffer, &self.input, &mut self.direction);
        self.step.copy_from_slice(&self.direction);
        scale_share(&mut self.step, opt.preconditioner(), eta);
    }
}

/// d ← −eta P_k d in place.
fn scale_share(d: &mut [f64], pre: Option<&[f64]>, eta: f64) {
    match pre {
        Some(pk) => d
            .iter_mut()
            .zip(pk)
            .for_each(|(d, &p)| *d = -eta * (p * *d)),
        None => d.iter_mut().for_each(|d| *d *= -eta),
    }
}
