//! Diagonal linear network f = Σ_j (u_j² − v_j²) x_j (SPEC §3), the standard
//! example of the rich (non-lazy) regime at small init scale.
use super::taylor::{Jet, TaylorTape};
use super::{Block, Model, Tape};
use nalgebra::DMatrix;
use rand_chacha::ChaCha20Rng;

/// Layout u (D), v (D). Its Jacobian rows [2 u ∘ x, −2 v ∘ x] are only 2D
/// wide, so they are kept explicitly.
#[derive(Clone, Debug)]
pub struct DiagLinear {
    dim: usize,
    init_scale: f64,
    blocks: [Block; 1],
}

impl DiagLinear {
    pub fn new(dim: usize, init_scale: f64) -> DiagLinear {
        DiagLinear {
            dim,
            init_scale,
            blocks: [Block::Explicit { offset: 0, jac: 0 }],
        }
    }
}

impl Model for DiagLinear {
    fn n_params(&self) -> usize {
        2 * self.dim
    }
    fn input_dim(&self) -> usize {
        self.dim
    }
    fn blocks(&self) -> &[Block] {
        &self.blocks
    }
    fn is_smooth(&self) -> bool {
        true
    }
    fn tape(&self, x: &DMatrix<f64>) -> Tape {
        let rows = x.nrows();
        Tape {
            output: DMatrix::zeros(rows, 1),
            inputs: vec![x.clone()],
            deltas: Vec::new(),
            explicit: vec![DMatrix::zeros(rows, 2 * self.dim)],
            scratch: Vec::new(),
            locks: Vec::new(),
        }
    }
    fn forward(&self, w: &[f64], tape: &mut Tape) {
        let (u, v) = w.split_at(self.dim);
        let x = &tape.inputs[0];
        tape.output.fill(0.0);
        for j in 0..self.dim {
            let beta = u[j] * u[j] - v[j] * v[j];
            tape.output.column_mut(0).axpy(beta, &x.column(j), 1.0);
        }
    }
    fn backward(&self, w: &[f64], tape: &mut Tape) {
        let (u, v) = w.split_at(self.dim);
        let x = &tape.inputs[0];
        let jac = &mut tape.explicit[0];
        for j in 0..self.dim {
            jac.column_mut(j)
                .zip_apply(&x.column(j), |g, xj| *g = 2.0 * u[j] * xj);
            jac.column_mut(self.dim + j)
                .zip_apply(&x.column(j), |g, xj| *g = -2.0 * v[j] * xj);
        }
    }
    /// jets: x, the output.
    fn taylor_tape(&self, x: &DMatrix<f64>) -> TaylorTape {
        TaylorTape {
            jets: vec![Jet::constant(x), Jet::zeros(x.nrows(), 1)],
            scratch: Vec::new(),
        }
    }
    /// f' = Σ_j 2 (u_j Δu_j − v_j Δv_j) x_j, f'' = Σ_j 2 (Δu_j² − Δv_j²) x_j.
    fn taylor(&self, w: &[f64], dw: &[f64], tape: &mut TaylorTape) {
        let (u, v) = w.split_at(self.dim);
        let (du, dv) = dw.split_at(self.dim);
        let (x, out) = tape.jets.split_at_mut(1);
        let (x, out) = (&x[0].value, &mut out[0]);
        for part in out.parts_mut() {
            part.fill(0.0);
        }
        for j in 0..self.dim {
            let coefficients = [
                u[j] * u[j] - v[j] * v[j],
                2.0 * (u[j] * du[j] - v[j] * dv[j]),
                2.0 * (du[j] * du[j] - dv[j] * dv[j]),
            ];
            for (part, beta) in out.parts_mut().into_iter().zip(coefficients) {
                part.column_mut(0).axpy(beta, &x.column(j), 1.0);
            }
        }
    }
    fn init(&self, _rng: &mut ChaCha20Rng) -> Vec<f64> {
        vec![self.init_scale; 2 * self.dim]
    }
}
