//! Per-example gradients as explicit P-vectors, from a tape's Jacobian
//! factors: what an optimizer with memory needs, since a momentum buffer
//! or Adam's first moment carries each training point's past gradients
//! through later steps and so cannot stay in factored form. Plain sgd and
//! the flows never call this (`crate::kernel` works on the factors).
//!
//! For a dense block z = s W u the gradient of output c of example r with
//! respect to W_ab is s δ_{rc,a} u_{r,b}; of a bias, δ_{rc,a}; of an
//! explicit block, its row r C + c.
//!
//! A weighted sum of Jacobians over several tapes (the Gauss–Legendre
//! nodes of a segment, `crate::discrete`) is formed the same way: each
//! node's factors are copied (small: rows x width), and each dense block of
//! Σ_s w_s s δ^s u^sᵀ is written once, as a sum of outer products held in
//! cache, instead of one P-long pass over the output per node.
use crate::model::{Block, Model, Tape};

/// Reusable buffers for the factors of up to `nodes` tapes over up to
/// `rows` examples.
pub struct Jacobians {
    blocks: Vec<Block>,
    outputs: usize,
    capacity: usize,
    max_rows: usize,
    /// Widths of the tape's inputs, δs and explicit blocks.
    widths: [Vec<usize>; 3],
    /// The examples of the sum under way, and the columns per example
    /// (C for Jacobians, 1 for weighted gradients).
    rows: Vec<usize>,
    per_row: usize,
    /// Nodes copied since the last write, and whether `out` holds a part.
    nodes: usize,
    written: bool,
    /// Per tape input used by a dense block: [example][node][b] (empty if unused).
    inputs: Vec<Vec<f64>>,
    /// Per δ: [column][node][a], the node's weight applied.
    deltas: Vec<Vec<f64>>,
    /// Per explicit block: [column][node][t], weighted.
    explicit: Vec<Vec<f64>>,
}

impl Jacobians {
    /// Buffers for up to `rows` examples (times C columns) and sums over
    /// up to `nodes` tapes at a time, for tapes shaped like `tape`.
    pub fn new(model: &dyn Model, tape: &Tape, rows: usize, nodes: usize) -> Jacobians {
        let blocks = model.blocks().to_vec();
        let c = tape.outputs();
        let used = |i: usize| {
            blocks
                .iter()
                .any(|b| matches!(*b, Block::Dense { input, .. } if input == i))
        };
        let inputs = tape
            .inputs
            .iter()
            .enumerate()
            .map(|(i, u)| vec![0.0; if used(i) { rows * nodes * u.ncols() } else { 0 }])
            .collect();
        let per_column = |width: usize| vec![0.0; rows * c * nodes * width];
        let widths = |m: &[nalgebra::DMatrix<f64>]| m.iter().map(|x| x.ncols()).collect();
        Jacobians {
            outputs: c,
            capacity: nodes,
            max_rows: rows,
            widths: [
                widths(&tape.inputs),
                widths(&tape.deltas),
                widths(&tape.explicit),
            ],
            rows: Vec::with_capacity(rows),
            per_row: c,
            nodes: 0,
            written: false,
            inputs,
            deltas: tape.deltas.iter().map(|d| per_column(d.ncols())).collect(),
            explicit: tape
                .explicit
                .iter()
                .map(|e| per_column(e.ncols()))
                .collect(),
            blocks,
        }
    }

    /// Column k of `out` (of P entries) = Σ_c weights[r C + c] ∇_w f_c(x_r)
    /// for the k-th example r of `rows` (`weights` indexed by the tape's
    /// rows): each training point's share l'_i ∇f(x_i) of a batch gradient.
    pub fn gradients(&mut self, tape: &Tape, rows: &[usize], weights: &[f64], out: &mut [f64]) {
        self.begin(rows, 1);
        self.add_node(tape, 1.0, Some(weights), out);
        self.finish(out);
    }

    /// Column k C + c of `out` = ∇_w f_c(x_r) for the k-th example r of
    /// `rows`: a Jacobian, (P x (rows · C)) column-major.
    pub fn jacobian(&mut self, tape: &Tape, rows: &[usize], out: &mut [f64]) {
        self.begin(rows, self.outputs);
        self.add_node(tape, 1.0, None, out);
        self.finish(out);
    }

    /// Starts `out` = Σ_s weight_s ∇_w f(w_s; x_r) over the tapes that
    /// [`Jacobians::add_node`] sees, columns as [`Jacobians::jacobian`]'s.
    pub fn begin_sum(&mut self, rows: &[usize]) {
        self.begin(rows, self.outputs);
    }

    /// Adds one tape (forward and backward done) with its weight; `out`
    /// receives a part whenever the buffers are full.
    pub fn add_node(&mut self, tape: &Tape, weight: f64, combine: Option<&[f64]>, out: &mut [f64]) {
        if self.nodes == self.capacity {
            self.write(out);
        }
        let (s, cap, c) = (self.nodes, self.capacity, self.outputs);
        for (stack, u) in self.inputs.iter_mut().zip(&tape.inputs) {
            if stack.is_empty() {
                continue;
            }
            let width = u.ncols();
            for (k, &r) in self.rows.iter().enumerate() {
                let dst = &mut stack[(k * cap + s) * width..][..width];
                for (b, x) in dst.iter_mut().enumerate() {
                    *x = u[(r, b)];
                }
            }
        }
        let columns = self.rows.len() * self.per_row;
        let pairs = self.deltas.iter_mut().zip(&tape.deltas);
        let pairs = pairs.chain(self.explicit.iter_mut().zip(&tape.explicit));
        for (stack, d) in pairs {
            let width = d.ncols();
            for j in 0..columns {
                let r = self.rows[j / self.per_row];
                let dst = &mut stack[(j * cap + s) * width..][..width];
                match combine {
                    Some(w) => {
                        let w = &w[r * c..(r + 1) * c];
                        for (a, x) in dst.iter_mut().enumerate() {
                            let v: f64 = (0..c).map(|k| w[k] * d[(r * c + k, a)]).sum();
                            *x = weight * v;
                        }
                    }
                    None => {
                        let row = r * c + j % self.per_row;
                        for (a, x) in dst.iter_mut().enumerate() {
                            *x = weight * d[(row, a)];
                        }
                    }
                }
            }
        }
        self.nodes += 1;
    }

    /// Writes (or adds) the nodes not yet written: `out` is complete.
    pub fn finish(&mut self, out: &mut [f64]) {
        if self.nodes > 0 || !self.written {
            self.write(out);
        }
    }

    /// Whether every node since [`Jacobians::begin_sum`] is still held
    /// (none written to `out`): then [`Jacobians::column_rows`] can form
    /// the sum a piece at a time.
    pub fn held(&self) -> bool {
        !self.written
    }

    /// out = the entries `rows` (parameter indices) of column j of the
    /// held nodes' sum, the same numbers [`Jacobians::finish`] would write:
    /// a column formed where it is read, piece by piece, never stored
    /// whole (`crate::discrete::buffers`). Needs [`Jacobians::held`].
    pub fn column_rows(&self, j: usize, rows: std::ops::Range<usize>, out: &mut [f64]) {
        assert!(self.held(), "the nodes were written out");
        self.add_rows(j, rows, out, false);
    }

    /// out (+= when `accumulate`, else =) the entries `rows` of column j of
    /// the held nodes' sum: the one loop behind [`Jacobians::column_rows`]
    /// and [`Jacobians::write`]'s whole columns.
    fn add_rows(&self, j: usize, rows: std::ops::Range<usize>, out: &mut [f64], accumulate: bool) {
        let k = j / self.per_row;
        let (s, cap) = (self.nodes, self.capacity);
        let [in_widths, delta_widths, explicit_widths] = &self.widths;
        for block in &self.blocks {
            let (offset, len) = match *block {
                Block::Dense {
                    offset,
                    input,
                    delta,
                    ..
                } => (offset, in_widths[input] * delta_widths[delta]),
                Block::Bias { offset, delta } => (offset, delta_widths[delta]),
                Block::Explicit { offset, jac } => (offset, explicit_widths[jac]),
            };
            let (lo, hi) = (offset.max(rows.start), (offset + len).min(rows.end));
            if lo >= hi {
                continue;
            }
            let dst = &mut out[lo - rows.start..hi - rows.start];
            let part = lo - offset..hi - offset;
            match *block {
                Block::Dense {
                    input,
                    delta,
                    scale,
                    ..
                } => {
                    let (fan_in, fan_out) = (in_widths[input], delta_widths[delta]);
                    let u = &self.inputs[input][k * cap * fan_in..][..s * fan_in];
                    let d = &self.deltas[delta][j * cap * fan_out..][..s * fan_out];
                    crate::vecmath::outer_sum(dst, d, u, scale, s, part.start, accumulate);
                }
                Block::Bias { delta, .. } => {
                    let stack = &self.deltas[delta][j * cap * len..][..s * len];
                    node_sum(dst, stack, len, part, accumulate);
                }
                Block::Explicit { jac, .. } => {
                    let stack = &self.explicit[jac][j * cap * len..][..s * len];
                    node_sum(dst, stack, len, part, accumulate);
                }
            }
        }
    }

    fn begin(&mut self, rows: &[usize], per_row: usize) {
        assert!(
            rows.len() <= self.max_rows,
            "more rows than the buffers hold"
        );
        self.rows.clear();
        self.rows.extend_from_slice(rows);
        self.per_row = per_row;
        self.nodes = 0;
        self.written = false;
    }

    /// out (+)= the copied nodes' sum, column by column; then no node is held.
    fn write(&mut self, out: &mut [f64]) {
        let columns = self.rows.len() * self.per_row;
        let p = out.len() / columns.max(1);
        for (j, column) in out.chunks_exact_mut(p).enumerate().take(columns) {
            self.add_rows(j, 0..p, column, self.written);
        }
        self.nodes = 0;
        self.written = true;
    }
}

/// dst (+)= Σ_s stack[s][part] for the node rows of `stack` (each `len`
/// long; dst is `part` long).
fn node_sum(
    dst: &mut [f64],
    stack: &[f64],
    len: usize,
    part: std::ops::Range<usize>,
    accumulate: bool,
) {
    if !accumulate {
        dst.fill(0.0);
    }
    for row in stack.chunks_exact(len) {
        crate::vecmath::add_assign(dst, &row[part.clone()]);
    }
}
