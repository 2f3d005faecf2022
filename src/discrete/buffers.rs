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
use crate::linalg::{gemm_deep as gemm, slice_view, slice_view_mut};
use crate::optimizer::Linear;
use crate::vecmath::axpy;

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
    streams: Vec<Stream>,
}

/// One stream's deferred sums: point i's total is `total_i + R ᵀ Y_i − Z_i`.
struct Stream {
    width: usize,
    /// R, P x width (as L).
    running: Vec<f64>,
    /// Σ_j |c_j Π_j| ‖L_j(·, q)‖₁ since the rebase (width), when the
    /// stream keeps a bound.
    running_size: Option<Vec<f64>>,
    /// Z, width x N.
    opened: Vec<f64>,
    /// The contracted part, width x N.
    total: Vec<f64>,
    /// A product over the batch or over all N, width x N.
    product: Vec<f64>,
    /// Σ_q of the forward-error bound's magnitudes (width), when kept.
    bound: Vec<f64>,
    /// R is zero (no step since the last rebase).
    empty: bool,
}

impl PointBuffers {
    /// Zero buffers for N points of P parameters, and one stream per entry
    /// of `streams`: (width of its query matrices, whether it keeps a
    /// forward-error bound).
    pub fn new(p: usize, n: usize, streams: &[(usize, bool)]) -> PointBuffers {
        PointBuffers {
            p,
            n,
            vectors: vec![0.0; p * n],
            scale: 1.0,
            magnitude: vec![0.0; p],
            batch: Vec::with_capacity(n),
            inputs: vec![0.0; p * n],
            streams: streams
                .iter()
                .map(|&(width, bounded)| Stream {
                    width,
                    running: vec![0.0; p * width],
                    running_size: bounded.then(|| vec![0.0; width]),
                    opened: vec![0.0; width * n],
                    total: vec![0.0; width * n],
                    product: vec![0.0; width * n],
                    bound: vec![0.0; width],
                    empty: true,
                })
                .collect(),
        }
    }

    /// The batch's rows and room for their gradients (P x |batch|), to be
    /// filled before [`PointBuffers::advance`].
    pub fn batch_inputs(&mut self, batch: impl Iterator<Item = usize>) -> (&[usize], &mut [f64]) {
        self.batch.clear();
        self.batch.extend(batch);
        let len = self.p * self.batch.len();
        (&self.batch, &mut self.inputs[..len])
    }

    /// One step of every buffer: all decay, the batch's gradients enter.
    /// Call before this step's [`PointBuffers::add`]s.
    pub fn advance(&mut self, l: Linear) {
        let next = self.scale * l.decay;
        if next < REBASE_BELOW {
            self.rebase(next);
        } else {
            self.scale = next;
        }
        let (p, b) = (self.p, self.batch.len());
        if b == 0 {
            return;
        }
        let f = l.gain / self.scale;
        let x = &self.inputs[..p * b];
        for s in self.streams.iter_mut().filter(|s| !s.empty) {
            let (w, product) = (s.width, &mut s.product[..s.width * b]);
            transposed_product(product, &s.running, w, x, b);
            for (&i, column) in self.batch.iter().zip(product.chunks_exact(w)) {
                axpy(&mut s.opened[i * w..(i + 1) * w], f, column);
            }
        }
        for (&i, x) in self.batch.iter().zip(self.inputs.chunks_exact(p)) {
            axpy(&mut self.vectors[i * p..(i + 1) * p], f, x);
            let size = self.magnitude.iter_mut().zip(x);
            size.for_each(|(m, &x)| *m += f.abs() * x.abs());
        }
    }

    /// Adds this step's query matrix `pl` = P_k L_k (P x width) to
    /// stream `stream`: Σ_i L_kᵀ G_{k,i} enters every point's total.
    pub fn add(&mut self, stream: usize, pl: &[f64], eta: f64, l: Linear) {
        self.add_preconditioned(stream, pl, None, eta, l);
    }

    /// As [`PointBuffers::add`] with P_k L_k = diag(`pre`) `lq` formed
    /// column by column inside the running sum, when the map has no pass
    /// term (Adam); `pre` None: `lq` is P_k L_k.
    pub fn add_preconditioned(
        &mut self,
        stream: usize,
        pl: &[f64],
        pre: Option<&[f64]>,
        eta: f64,
        l: Linear,
    ) {
        let (p, b) = (self.p, self.batch.len());
        let s = &mut self.streams[stream];
        let w = s.width;
        let c = -eta * l.keep * self.scale;
        let columns = s.running.chunks_exact_mut(p).zip(pl.chunks_exact(p));
        match (s.running_size.as_mut(), pre) {
            (Some(size), None) => {
                for ((r, l), size) in columns.zip(size.iter_mut()) {
                    *size += c.abs() * crate::vecmath::axpy_norm(r, c, l);
                }
            }
            (Some(size), Some(d)) => {
                for ((r, l), size) in columns.zip(size.iter_mut()) {
                    *size += c.abs() * crate::vecmath::axpy_product_norm(r, c, d, l);
                }
            }
            (None, None) => axpy(&mut s.running, c, pl),
            (None, Some(d)) => {
                for (r, l) in columns {
                    crate::vecmath::axpy_product_norm(r, c, d, l);
                }
            }
        }
        s.empty = false;
        assert!(
            pre.is_none() || l.pass == 0.0,
            "a pass term needs P_k L_k formed"
        );
        if l.pass == 0.0 || b == 0 {
            return;
        }
        // The direction's pass · x_{k,i}: −eta pass L_kᵀ x_{k,i} now.
        let product = &mut s.product[..w * b];
        transposed_product(product, pl, w, &self.inputs[..p * b], b);
        for (&i, add) in self.batch.iter().zip(product.chunks_exact(w)) {
            axpy(&mut s.total[i * w..(i + 1) * w], -eta * l.pass, add);
        }
        if s.running_size.is_some() {
            // Σ_i |L(·, q)|ᵀ|x_i| ≤ ‖L(·, q)‖₁ max_p Σ_i |x_i(p)|.
            let x = &self.inputs[..p * b];
            let most = (0..p)
                .map(|j| x.iter().skip(j).step_by(p).map(|v| v.abs()).sum::<f64>())
                .fold(0.0, f64::max);
            let pass = (eta * l.pass).abs() * most;
            for (bound, column) in s.bound.iter_mut().zip(pl.chunks_exact(p)) {
                *bound += pass * column.iter().map(|v| v.abs()).sum::<f64>();
            }
        }
    }

    /// As [`PointBuffers::add`] for a stream without a bound and a map
    /// without a pass term, with `add_to(R, c)` adding c P_k L_k to R
    /// itself (so that P_k L_k need not be formed).
    pub fn add_with(
        &mut self,
        stream: usize,
        eta: f64,
        l: Linear,
        add_to: impl FnOnce(&mut [f64], f64),
    ) {
        let s = &mut self.streams[stream];
        debug_assert!(l.pass == 0.0 && s.running_size.is_none());
        add_to(&mut s.running, -eta * l.keep * self.scale);
        s.empty = false;
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
        let n = self.n;
        for s in self.streams.iter_mut().filter(|s| !s.empty) {
            let w = s.width;
            transposed_product(&mut s.product, &s.running, w, &self.vectors, n);
            for ((t, &v), z) in s.total.iter_mut().zip(&s.product).zip(&mut s.opened) {
                *t += v - *z;
                *z = 0.0;
            }
            s.running.fill(0.0);
            if let Some(size) = s.running_size.as_mut() {
                // Σ_p |R|(p, q) Σ_i |Y_i|(p) ≤ Σ_j |c_j Π_j| ‖L_j(·, q)‖₁ max_p Σ_i |Y_i|(p).
                let most = self.magnitude.iter().copied().fold(0.0, f64::max);
                for (bound, size) in s.bound.iter_mut().zip(size.iter_mut()) {
                    *bound += 2.0 * *size * most;
                    *size = 0.0;
                }
            }
            s.empty = true;
        }
        crate::vecmath::scale(&mut self.vectors, folded);
        crate::vecmath::scale(&mut self.magnitude, folded.abs());
        self.scale = 1.0;
    }
}

/// out = Lᵀ X, (width x cols), for L (P x width) and X (P x cols): formed
/// as its transpose Xᵀ L, so that the P-deep product packs the narrow X
/// rather than the whole of L.
fn transposed_product(out: &mut [f64], l: &[f64], width: usize, x: &[f64], cols: usize) {
    let p = x.len() / cols.max(1);
    let dst = slice_view_mut(out, width, cols).transpose_mut();
    let lhs = slice_view(x, p, cols).transpose();
    gemm(dst, false, lhs, slice_view(l, p, width), 1.0);
}
