//! Every training point's optimizer buffer (its momentum, or Adam's first
//! moment, SPEC §9), and the sums Σ_k L_kᵀ G_{k,i} over the run, formed
//! when a point is drawn rather than at every step (proofs.md §12, 8.5).
//!
//! A point outside step k's batch feeds its buffer no gradient, so the
//! step only scales it by the decay. With Π_k the product of the decays
//! since the last rebase, buf_i(k) = Π_k Y_i, and Y_i changes only when i
//! is drawn: Y_i += (gain_k / Π_k) x_{k,i}. A stream of query matrices L_k
//! (P_k times the query Jacobian, or P_k gbar_k) then gives point i
//!
//!   Σ_k c_k Π_k L_kᵀ Y_i(k) = R_Kᵀ Y_i − Z_i,   c_k = −eta_k keep_k,
//!
//! with one running sum R_k = Σ_{j≤k} c_j Π_j L_j ((M C) x P) and Z_i =
//! Σ_d (gain_d / Π_d) R_{d−1}ᵀ x_{d,i} taken at i's draws: a step costs a
//! product over its batch, not over all N points. R_Kᵀ Y_i − Z_i cancels
//! the steps before a draw, by up to 1/Π, so before Π falls below
//! [`REBASE_BELOW`] every point is contracted (one product over all N),
//! Π is folded into the Y_i and the sums restart.
//!
//! A step makes one pass over the parameters, a block at a time
//! (`query::BLOCK_ROWS`): each block of every stream's R is read from
//! memory once, multiplied with the batch's rows (R_{k−1}ᵀ x) and then
//! updated (R_k = R_{k−1} + c_k Π_k L_k) while it is in cache, with L_k's
//! block formed there from its factors when it is not stored (`query`).
use super::query::{BLOCK_COLUMNS, BLOCK_ROWS, Query, blocks};
use crate::linalg::{gemm_deep as gemm, slice_view, slice_view_mut};
use crate::optimizer::Linear;
use crate::vecmath::{axpy, axpy_norm, axpy_product_norm};

/// Π is kept at or above this (2^−3): the terms R_Kᵀ Y_i − Z_i cancels
/// weigh at most 8 times their eager weight (proofs.md §12, 8.5). Lower
/// costs fewer rebases (one every ln 8 / ln(1/decay) steps: 20 at 0.9)
/// but more rounding: at 2^−6 the adam bench's exact residual was 18
/// times the eager sums', at 2^−3 4 times, in the same time (the steps are bound
/// by memory traffic, not by the rebases' products).
pub const REBASE_BELOW: f64 = 1.0 / 8.0;

/// The N buffers of a run, P x N column-major, with their common scale Π,
/// and the deferred sums of each stream of query matrices.
pub struct PointBuffers {
    p: usize,
    n: usize,
    /// Y_i, P x N: buf_i = scale · Y_i.
    vectors: Vec<f64>,
    scale: f64,
    /// Σ_i |Y_i| as the same recurrence on magnitudes (P), for the bound.
    magnitude: Vec<f64>,
    /// The batch of the last step (the points with a gradient) and those
    /// gradients, P x |batch|.
    batch: Vec<usize>,
    inputs: Vec<f64>,
    /// Every stream's R side by side, P x `width` (each column-major as
    /// its L), so that one product per block serves all streams.
    running: Vec<f64>,
    width: usize,
    /// R is zero (no step since the last rebase).
    empty: bool,
    /// A product over the batch or over all N, `width` x N.
    product: Vec<f64>,
    /// A step's tiles, (rows, columns), and a block of L formed.
    block: (usize, usize),
    scratch: Vec<f64>,
    streams: Vec<Stream>,
}

/// One stream's deferred sums: point i's total is `total_i + R ᵀ Y_i − Z_i`.
struct Stream {
    width: usize,
    /// Its first column in `running` and rows in `product`.
    offset: usize,
    /// Σ_j |c_j Π_j| ‖L_j(·, q)‖₁ since the rebase (width), when the
    /// stream keeps a bound.
    running_size: Option<Vec<f64>>,
    /// Z, width x N.
    opened: Vec<f64>,
    /// The contracted part, width x N.
    total: Vec<f64>,
    /// Σ_q of the forward-error bound's magnitudes (width), when kept.
    bound: Vec<f64>,
}

impl PointBuffers {
    /// Zero buffers for N points of P parameters, and one stream per entry
    /// of `streams`: (width of its query matrices, whether it keeps a
    /// forward-error bound).
    pub fn new(p: usize, n: usize, streams: &[(usize, bool)]) -> PointBuffers {
        let width = streams.iter().map(|s| s.0).sum();
        let mut offset = 0;
        PointBuffers {
            p,
            n,
            vectors: vec![0.0; p * n],
            scale: 1.0,
            magnitude: vec![0.0; p],
            batch: Vec::with_capacity(n),
            inputs: vec![0.0; p * n],
            running: vec![0.0; p * width],
            width,
            empty: true,
            product: vec![0.0; width * n],
            block: (BLOCK_ROWS, BLOCK_COLUMNS),
            scratch: vec![0.0; BLOCK_ROWS],
            streams: streams
                .iter()
                .map(|&(width, bounded)| {
                    offset += width;
                    Stream {
                        width,
                        offset: offset - width,
                        running_size: bounded.then(|| vec![0.0; width]),
                        opened: vec![0.0; width * n],
                        total: vec![0.0; width * n],
                        bound: vec![0.0; width],
                    }
                })
                .collect(),
        }
    }

    /// The same buffers with a step's pass in tiles of `rows` parameters
    /// by `columns` (the tests' way to cross tile boundaries with few
    /// parameters).
    pub fn with_tiles(mut self, rows: usize, columns: usize) -> PointBuffers {
        self.block = (rows.max(1), columns.max(1));
        self.scratch = vec![0.0; rows.max(1)];
        self
    }

    /// The batch's rows and room for their gradients (P x |batch|), to be
    /// filled before [`PointBuffers::step`].
    pub fn batch_inputs(&mut self, batch: impl Iterator<Item = usize>) -> (&[usize], &mut [f64]) {
        self.batch.clear();
        self.batch.extend(batch);
        let len = self.p * self.batch.len();
        (&self.batch, &mut self.inputs[..len])
    }

    /// One step: every buffer decays and the batch's gradients enter; then
    /// stream s adds its query matrix P_k L_k, given as `queries[s]` =
    /// (L_k, P_k as a diagonal or None for I), so that Σ_i L_kᵀ G_{k,i}
    /// enters every point's total. A map with a pass term needs each L_k
    /// formed and P_k = I (the caller forms P_k L_k).
    pub fn step(&mut self, l: Linear, eta: f64, queries: &[(Query<'_>, Option<&[f64]>)]) {
        assert_eq!(queries.len(), self.streams.len(), "one query a stream");
        let next = self.scale * l.decay;
        if next < REBASE_BELOW {
            self.rebase(next);
        } else {
            self.scale = next;
        }
        let (p, b, width) = (self.p, self.batch.len(), self.width);
        let (block, group) = self.block;
        let c = -eta * l.keep * self.scale;
        let products = !self.empty && b > 0;
        let PointBuffers {
            running,
            inputs,
            product,
            scratch,
            streams,
            ..
        } = self;
        let x = slice_view(&inputs[..p * b], p, b);
        // Tiles of `block` rows by `group` columns: a tile of R is read
        // once, multiplied and updated while in cache; the batch's rows
        // and the factors of a block's columns are reused from cache.
        for rows in blocks(p, block) {
            for columns in blocks(width, group) {
                let len = rows.len();
                if products {
                    // R_{k−1}ᵀ x over this tile, before the tile moves on.
                    let all = slice_view(running, p, width).subcols(columns.start, columns.len());
                    let dst = slice_view_mut(&mut product[..width * b], width, b);
                    let dst = dst.subrows_mut(columns.start, columns.len());
                    let lhs = x.subrows(rows.start, len).transpose();
                    let rhs = all.subrows(rows.start, len);
                    gemm(dst.transpose_mut(), rows.start > 0, lhs, rhs, 1.0);
                }
                for column in columns {
                    let (s, q) = stream_of(streams, column);
                    let (query, pre) = queries[s];
                    let s = &mut streams[s];
                    let l = query.rows(p, q, rows.clone(), scratch);
                    let r = &mut running[column * p..][rows.clone()];
                    let pre = pre.map(|d| &d[rows.clone()]);
                    let size = match pre {
                        None if s.running_size.is_some() => axpy_norm(r, c, l),
                        None => {
                            axpy(r, c, l);
                            0.0
                        }
                        Some(d) => axpy_product_norm(r, c, d, l),
                    };
                    if let Some(sizes) = s.running_size.as_mut() {
                        sizes[q] += c.abs() * size;
                    }
                }
            }
        }
        self.empty = false;
        let f = l.gain / self.scale;
        if products {
            for (&i, column) in self.batch.iter().zip(self.product.chunks_exact(width)) {
                for s in &mut self.streams {
                    let z = &mut s.opened[i * s.width..(i + 1) * s.width];
                    axpy(z, f, &column[s.offset..s.offset + s.width]);
                }
            }
        }
        for (&i, x) in self.batch.iter().zip(self.inputs.chunks_exact(p)) {
            axpy(&mut self.vectors[i * p..(i + 1) * p], f, x);
            let size = self.magnitude.iter_mut().zip(x);
            size.for_each(|(m, &x)| *m += f.abs() * x.abs());
        }
        if l.pass != 0.0 && b > 0 {
            for (s, &(query, pre)) in (0..queries.len()).zip(queries) {
                let Query::Formed(pl) = query else {
                    panic!("a pass term needs P_k L_k formed");
                };
                assert!(pre.is_none(), "a pass term needs P_k L_k formed");
                self.add_pass(s, pl, eta * l.pass);
            }
        }
    }

    /// The direction's pass · x_{k,i}: −eta pass L_kᵀ x_{k,i} enters the
    /// batch's totals now (`eta_pass` = eta pass).
    fn add_pass(&mut self, stream: usize, pl: &[f64], eta_pass: f64) {
        let (p, b) = (self.p, self.batch.len());
        let s = &mut self.streams[stream];
        let w = s.width;
        let product = &mut self.product[..w * b];
        transposed_product(product, pl, w, &self.inputs[..p * b], b);
        for (&i, add) in self.batch.iter().zip(product.chunks_exact(w)) {
            axpy(&mut s.total[i * w..(i + 1) * w], -eta_pass, add);
        }
        if s.running_size.is_some() {
            // Σ_i |L(·, q)|ᵀ|x_i| ≤ ‖L(·, q)‖₁ max_p Σ_i |x_i(p)|.
            let x = &self.inputs[..p * b];
            let most = (0..p)
                .map(|j| x.iter().skip(j).step_by(p).map(|v| v.abs()).sum::<f64>())
                .fold(0.0, f64::max);
            let pass = eta_pass.abs() * most;
            for (bound, column) in s.bound.iter_mut().zip(pl.chunks_exact(p)) {
                *bound += pass * column.iter().map(|v| v.abs()).sum::<f64>();
            }
        }
    }

    /// Contracts every point (all streams' totals complete), as at a rebase.
    pub fn finish(&mut self) {
        self.rebase(self.scale);
    }

    /// Point i's sums of stream `stream` (width x N), complete after
    /// [`PointBuffers::finish`].
    pub fn total(&self, stream: usize) -> &[f64] {
        &self.streams[stream].total
    }

    /// An upper bound of twice Σ_i of the stream's magnitudes Σ|c_j Π_j /
    /// Π_d gain_d L_j(q) x_{d,i}| over the pairs its sums formed, plus the
    /// pass terms' (width; complete after `finish`): the forward error of
    /// Σ_i total_i is within γ_n of this (proofs.md §12, 8.5). Each L_j's
    /// column enters by its 1-norm times the largest Σ_i |Y_i|(p), so that
    /// keeping it costs no pass over an (M C) x P matrix of its own. Zero
    /// for a stream without a bound.
    pub fn magnitude(&self, stream: usize) -> &[f64] {
        &self.streams[stream].bound
    }

    /// total += Rᵀ Y − Z for every stream; then Y ← folded · Y (the buffers
    /// at the current step's decay), Π = 1 and the sums restart.
    fn rebase(&mut self, folded: f64) {
        let (n, width) = (self.n, self.width);
        if !self.empty {
            transposed_product(&mut self.product, &self.running, width, &self.vectors, n);
            let most = self.magnitude.iter().copied().fold(0.0, f64::max);
            for s in &mut self.streams {
                let (w, o) = (s.width, s.offset);
                let columns = self.product.chunks_exact(width).map(|c| &c[o..o + w]);
                let pairs = s
                    .total
                    .chunks_exact_mut(w)
                    .zip(s.opened.chunks_exact_mut(w));
                for ((t, z), v) in pairs.zip(columns) {
                    for ((t, z), &v) in t.iter_mut().zip(z.iter_mut()).zip(v) {
                        *t += v - *z;
                        *z = 0.0;
                    }
                }
                if let Some(size) = s.running_size.as_mut() {
                    // Σ_p |R|(p, q) Σ_i |Y_i|(p) ≤ Σ_j |c_j Π_j| ‖L_j(·, q)‖₁ max_p Σ_i |Y_i|(p).
                    for (bound, size) in s.bound.iter_mut().zip(size.iter_mut()) {
                        *bound += 2.0 * *size * most;
                        *size = 0.0;
                    }
                }
            }
            self.running.fill(0.0);
            self.empty = true;
        }
        crate::vecmath::scale(&mut self.vectors, folded);
        crate::vecmath::scale(&mut self.magnitude, folded.abs());
        self.scale = 1.0;
    }
}

/// The stream of `column` (of R's side-by-side columns), and its column there.
fn stream_of(streams: &[Stream], column: usize) -> (usize, usize) {
    let s = streams
        .iter()
        .position(|s| column < s.offset + s.width)
        .expect("a column of some stream");
    (s, column - streams[s].offset)
}

/// out = Lᵀ X, (width x cols), for L (P x width) and X (P x cols): formed
/// as its transpose Xᵀ L, so that the P-deep product packs the narrow X
/// rather than the whole of L.
fn transposed_product(out: &mut [f64], l: &[f64], width: usize, x: &[f64], cols: usize) {
    let p = x.len() / cols.max(1);
    let dst = slice_view_mut(&mut out[..width * cols], width, cols).transpose_mut();
    let lhs = slice_view(x, p, cols).transpose();
    gemm(dst, false, lhs, slice_view(l, p, width), 1.0);
}
