//! Per-example gradients as explicit P-vectors, from a tape's Jacobian
//! factors: what an optimizer with memory needs, since a momentum buffer
//! or Adam's first moment carries each training point's past gradients
//! through later steps and so cannot stay in factored form. Plain sgd and
//! the flows never call this (`crate::kernel` works on the factors).
//!
//! For a dense block z = s W u the gradient of output c of example r with
//! respect to W_ab is s δ_{rc,a} u_{r,b}; of a bias, δ_{rc,a}; of an
//! explicit block, its row r C + c.
use crate::model::{Block, Model, Tape};
use nalgebra::DMatrix;
use std::ops::Range;

/// Reusable buffers for one tape's rows.
pub struct Jacobians {
    blocks: Vec<Block>,
    /// Per δ index, the δ rows combined by the weights (rows x width).
    combined: Vec<DMatrix<f64>>,
}

impl Jacobians {
    /// Buffers for gradients over up to `rows` examples (times C for
    /// [`Jacobians::jacobian`]) of tapes shaped like `tape`.
    pub fn new(model: &dyn Model, tape: &Tape, rows: usize) -> Jacobians {
        let c = tape.outputs();
        Jacobians {
            blocks: model.blocks().to_vec(),
            combined: tape
                .deltas
                .iter()
                .map(|d| DMatrix::zeros(rows * c, d.ncols()))
                .collect(),
        }
    }

    /// Column r (of P entries) of `out` = Σ_c weights[r C + c] ∇_w f_c(x_r)
    /// for the examples `rows` of `tape` (r from 0): each training point's
    /// share l'_i ∇f(x_i) of a batch gradient.
    pub fn gradients(&mut self, tape: &Tape, rows: Range<usize>, weights: &[f64], out: &mut [f64]) {
        let c = tape.outputs();
        let n = rows.len();
        for (comb, delta) in self.combined.iter_mut().zip(&tape.deltas) {
            for a in 0..delta.ncols() {
                for r in 0..n {
                    let w = &weights[r * c..(r + 1) * c];
                    let row = (rows.start + r) * c;
                    comb[(r, a)] = (0..c).map(|k| w[k] * delta[(row + k, a)]).sum();
                }
            }
        }
        self.fill(tape, rows, 1, Some(weights), out);
    }

    /// Column r C + c of `out` = ∇_w f_c(x_r) for the examples `rows` of
    /// `tape`: the query points' Jacobian, (P x (rows · C)) column-major.
    pub fn jacobian(&mut self, tape: &Tape, rows: Range<usize>, out: &mut [f64]) {
        let c = tape.outputs();
        let n = rows.len() * c;
        for (comb, delta) in self.combined.iter_mut().zip(&tape.deltas) {
            for a in 0..delta.ncols() {
                for j in 0..n {
                    comb[(j, a)] = delta[(rows.start * c + j, a)];
                }
            }
        }
        self.fill(tape, rows, c, None, out);
    }

    /// Writes column j = r · per_row + k from the combined δ of row j: the
    /// dense and bias blocks from the factors, explicit blocks combined by
    /// `weights` (per_row 1) or, without weights, copied (per_row C).
    fn fill(
        &self,
        tape: &Tape,
        rows: Range<usize>,
        per_row: usize,
        weights: Option<&[f64]>,
        out: &mut [f64],
    ) {
        let c = tape.outputs();
        let p = out.len() / (rows.len() * per_row).max(1);
        for (j, column) in out.chunks_exact_mut(p).enumerate() {
            let r = rows.start + j / per_row;
            for block in &self.blocks {
                match *block {
                    Block::Dense {
                        offset,
                        input,
                        delta,
                        scale,
                    } => {
                        let u = &tape.inputs[input];
                        let comb = &self.combined[delta];
                        let fan_in = u.ncols();
                        for a in 0..comb.ncols() {
                            let d = scale * comb[(j, a)];
                            let dst = &mut column[offset + a * fan_in..offset + (a + 1) * fan_in];
                            for (b, x) in dst.iter_mut().enumerate() {
                                *x = d * u[(r, b)];
                            }
                        }
                    }
                    Block::Bias { offset, delta } => {
                        let comb = &self.combined[delta];
                        for a in 0..comb.ncols() {
                            column[offset + a] = comb[(j, a)];
                        }
                    }
                    Block::Explicit { offset, jac } => {
                        let e = &tape.explicit[jac];
                        for t in 0..e.ncols() {
                            column[offset + t] = match weights {
                                Some(weights) => {
                                    let w = &weights[j * c..(j + 1) * c];
                                    (0..c).map(|k| w[k] * e[(r * c + k, t)]).sum()
                                }
                                None => e[(r * c + j % c, t)],
                            };
                        }
                    }
                }
            }
        }
    }
}
