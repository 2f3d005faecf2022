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
//! sums are products of the query Jacobian (or gbar_k) with G_k.
use crate::exact::{ExactPathKernel, excess, rounding_floor};
use crate::flow::{FlowProblem, coefficient_rates};
use crate::jacobian::Jacobians;
use crate::linalg::{gemm, slice_view, slice_view_mut};
use crate::model::Model;
use crate::optimizer::Optimizer;

/// The accumulated terms of both decompositions; matrices column-major,
/// kernels (M C) x (N C), coefficients (M C) x N, per-query vectors M C.
pub struct Decomposition<'m> {
    memory: bool,
    dims: (usize, usize, usize, usize),
    exact: ExactPathKernel<'m>,
    jac: Jacobians,
    /// ∇f(w_k; q): P x (M C).
    jq: Vec<f64>,
    /// P_k ∇f(w_k; q) (preconditioned optimizers), P x (M C).
    jq_pre: Vec<f64>,
    /// ∇f(w_k; x_i) for the preconditioned kernel, P x (N C).
    jtr: Vec<f64>,
    /// gbar_k: P x (M C), and one node's Jacobian.
    gbar: Vec<f64>,
    node: Vec<f64>,
    /// Memory: each point's gradient share, buffer and G_{k,i} (P x N).
    inputs: Vec<f64>,
    buffers: Vec<f64>,
    shares: Vec<f64>,
    /// The decay's input λ_c w_k, buffer, direction and D_k.
    decay_input: Vec<f64>,
    decay_buffer: Vec<f64>,
    decay_direction: Vec<f64>,
    decay_step: Vec<f64>,
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
            memory,
            dims: (p, n, m, c),
            exact: ExactPathKernel::new(model, data),
            jac: Jacobians::new(model, flow.tape(), n + m),
            jq: vec![0.0; p * m * c],
            jq_pre: sized(preconditioned, p * m * c),
            jtr: sized(preconditioned, p * n * c),
            gbar: vec![0.0; p * m * c],
            node: vec![0.0; p * m * c],
            inputs: sized(memory, p * n),
            buffers: sized(memory, p * n),
            shares: sized(memory, p * n),
            decay_input: vec![0.0; p],
            decay_buffer: vec![0.0; p],
            decay_direction: vec![0.0; p],
            decay_step: vec![0.0; p],
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
        let tape = flow.tape();
        self.jac.jacobian(tape, n..n + m, &mut self.jq);
        // The kernel at w_k: K^g, or ∇f(q)ᵀ P_k ∇f(x).
        match pre {
            None => flow.tangent_kernel(&mut self.kernel),
            Some(pk) => {
                let tape = flow.tape();
                self.jac.jacobian(tape, 0..n, &mut self.jtr);
                for (dst, src) in self.jq_pre.chunks_exact_mut(p).zip(self.jq.chunks_exact(p)) {
                    crate::vecmath::product_into(dst, src, pk);
                }
                let a = slice_view(&self.jq_pre, p, mc).transpose();
                let b = slice_view(&self.jtr, p, n * c);
                gemm(
                    slice_view_mut(&mut self.kernel, mc, n * c),
                    false,
                    a,
                    b,
                    1.0,
                );
            }
        }
        axpy(&mut self.path_kernel, eta, &self.kernel);
        // D_k = −eta_k P_k d(λ_c w) − eta_k λ_d w.
        crate::vecmath::scaled_copy(&mut self.decay_input, w, lambda_c);
        opt.carry(
            &mut self.decay_buffer,
            &self.decay_input,
            &mut self.decay_direction,
        );
        self.decay_step.copy_from_slice(&self.decay_direction);
        scale_share(&mut self.decay_step, pre, eta);
        axpy(&mut self.decay_step, -eta * lambda_d, w);
        // The Domingos sums at w_k.
        let jq = slice_view(&self.jq, p, mc).transpose();
        gemm(
            slice_view_mut(&mut self.decay_term, mc, 1),
            true,
            jq,
            slice_view(&self.decay_step, p, 1),
            1.0,
        );
        if self.memory {
            let tape = flow.tape();
            self.jac.gradients(tape, 0..n, lprime, &mut self.inputs);
            for ((buffer, input), g) in self
                .buffers
                .chunks_exact_mut(p)
                .zip(self.inputs.chunks_exact(p))
                .zip(self.shares.chunks_exact_mut(p))
            {
                // The direction, then in place G_{k,i} = −eta_k P_k d.
                opt.carry(buffer, input, g);
                scale_share(g, pre, eta);
            }
            let g = slice_view(&self.shares, p, n);
            gemm(
                slice_view_mut(&mut self.increment, mc, n),
                false,
                jq,
                g,
                1.0,
            );
        } else {
            coefficient_rates(&mut self.increment, &self.kernel, lprime, c);
            self.increment.iter_mut().for_each(|v| *v *= eta);
        }
        crate::vecmath::add_assign(&mut self.coef_integral, &self.increment);
        self.add_exact(flow, lprime, eta, w, w_next);
    }

    /// The exact sums over the segment from w to w_next.
    fn add_exact(
        &mut self,
        flow: &FlowProblem<'_>,
        lprime: &[f64],
        eta: f64,
        w: &[f64],
        w_next: &[f64],
    ) {
        let (p, n, m, c) = self.dims;
        let mc = m * c;
        let memory = self.memory;
        // gbar is needed for the shares with memory, and for a decay.
        let need_gbar = memory || self.decay_step.iter().any(|&d| d != 0.0);
        let Decomposition {
            exact,
            jac,
            gbar,
            node,
            shares,
            decay_step,
            exact_increment,
            exact_decay,
            ..
        } = self;
        exact.begin_segment(w, w_next);
        let f0 = &flow.outputs()[n * c..(n + m) * c];
        exact.refine_segment(w, w_next, |exact, pieces| {
            gbar.fill(0.0);
            let mut at_node = |tape: &crate::model::Tape, weight: f64| {
                if need_gbar {
                    jac.jacobian(tape, 0..m, node);
                    axpy(gbar, weight, node);
                }
            };
            exact.integrate_segment(flow.tape(), n, w, w_next, pieces, !memory, &mut at_node);
            let gb = slice_view(gbar, p, mc).transpose();
            if memory {
                let g = slice_view(shares, p, n);
                gemm(slice_view_mut(exact_increment, mc, n), false, gb, g, 1.0);
            } else {
                exact.increments(lprime, eta, c);
                exact_increment.copy_from_slice(exact.increment());
            }
            if need_gbar {
                let d = slice_view(decay_step, p, 1);
                gemm(slice_view_mut(exact_decay, mc, 1), false, gb, d, 1.0);
            } else {
                exact_decay.fill(0.0);
            }
            excess(f0, exact.f_end(), exact_increment, exact_decay)
        });
        let f1 = self.exact.f_end();
        for (q, floor) in self.exact_floor.iter_mut().enumerate() {
            *floor += rounding_floor(f0, f1, &self.exact_increment, &self.exact_decay, q);
        }
        crate::vecmath::add_assign(&mut self.exact_coef_integral, &self.exact_increment);
        crate::vecmath::add_assign(&mut self.exact_decay_term, &self.exact_decay);
    }
}

/// y += a x.
fn axpy(y: &mut [f64], a: f64, x: &[f64]) {
    y.iter_mut().zip(x).for_each(|(y, &x)| *y += a * x);
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
