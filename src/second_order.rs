//! The second-order term of a discrete method (SPEC §9, issue 11):
//! r2(q) = Σ_k ½ Δ_kᵀ ∇²_w f(w_k; q) Δ_k, Δ_k = w_{k+1} − w_k. By Taylor's
//! theorem along each step, f(w_{k+1}; q) − f(w_k; q) − ∇f(w_k; q) · Δ_k is
//! ½ Δ_kᵀ ∇²f Δ_k plus O(|Δ_k|³), so the Domingos-form residual (the sum of
//! the first-order remainders) minus r2 is O(ε²) where the residual is O(ε)
//! (proofs.md §10). Each term is one second-order Taylor pass through the
//! batched model (`crate::model::taylor`), never a P x P Hessian.
use crate::model::{Model, TaylorTape};
use nalgebra::DMatrix;

/// Accumulates r2 over the query points, step by step; allocation-free
/// after `new`.
pub struct SecondOrder<'m> {
    model: &'m dyn Model,
    tape: TaylorTape,
    /// Σ_k ½ Δ_kᵀ ∇²f_c(w_k; q_m) Δ_k, example-major (entry m C + c).
    pub term: Vec<f64>,
}

impl<'m> SecondOrder<'m> {
    /// For the query points `query_x` (M x D).
    pub fn new(model: &'m dyn Model, query_x: &DMatrix<f64>) -> SecondOrder<'m> {
        SecondOrder {
            model,
            tape: model.taylor_tape(query_x),
            term: vec![0.0; query_x.nrows() * model.outputs()],
        }
    }

    /// Adds ½ Δ_kᵀ ∇²f(w_k; q) Δ_k for the step from `w_k` by `delta_k`.
    pub fn add_step(&mut self, w_k: &[f64], delta_k: &[f64]) {
        self.model.taylor(w_k, delta_k, &mut self.tape);
        let second = &self.tape.output().second;
        let c = second.ncols();
        for (j, column) in second.column_iter().enumerate() {
            for (m, &v) in column.iter().enumerate() {
                self.term[m * c + j] += 0.5 * v;
            }
        }
    }
}
