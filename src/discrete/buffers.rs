//! Every training point's optimizer buffer (its momentum, or Adam's first
//! moment, SPEC §9), kept as a P-vector times a scalar: buf_i = σ_i B_i.
//!
//! A point outside step k's batch feeds its buffer no gradient, so the
//! step only scales it, buf ← decay · buf (`Linear`): σ_i absorbs that,
//! and a step touches the P-vectors of its batch only, not all N. Its
//! direction d_i = pass · x_i + keep · σ_i B_i and the share G_{k,i} =
//! −eta_k P_k d_i are never formed either: a sum L ᵀ G_k (L the query
//! points' Jacobian or gbar_k) is (P_k L)ᵀ B times the column scales
//! −eta_k keep σ_i, plus the batch's −eta_k pass (P_k L)ᵀ x_i. Each
//! product is the same as the eager one's up to rounding.
use crate::linalg::{gemm_deep as gemm, slice_view, slice_view_mut};
use crate::optimizer::Linear;

/// Scales below this are folded into their vector (2^−600), so that σ
/// cannot underflow while B_i holds ordinary numbers.
const FOLD_BELOW: f64 = 2.409919865102884e-181;

/// The N buffers of a run, P x N column-major, with their scales.
pub struct PointBuffers {
    p: usize,
    vectors: Vec<f64>,
    scales: Vec<f64>,
    /// The batch of the last step (the points with a gradient) and those
    /// gradients, P x |batch|.
    batch: Vec<usize>,
    inputs: Vec<f64>,
    /// (P_k L)ᵀ x_i over the batch, (rows of L) x |batch|.
    batch_product: Vec<f64>,
}

impl PointBuffers {
    /// Zero buffers for N points of P parameters, against up to `width`
    /// query columns.
    pub fn new(p: usize, n: usize, width: usize) -> PointBuffers {
        PointBuffers {
            p,
            vectors: vec![0.0; p * n],
            scales: vec![1.0; n],
            batch: Vec::with_capacity(n),
            inputs: vec![0.0; p * n],
            batch_product: vec![0.0; width * n],
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

    /// One step of every buffer: the batch's gradients enter, all others decay.
    pub fn advance(&mut self, l: Linear) {
        let p = self.p;
        for s in self.scales.iter_mut() {
            *s *= l.decay;
        }
        for (k, &i) in self.batch.iter().enumerate() {
            let b = &mut self.vectors[i * p..(i + 1) * p];
            let x = &self.inputs[k * p..(k + 1) * p];
            let s = self.scales[i];
            b.iter_mut()
                .zip(x)
                .for_each(|(b, &x)| *b = s * *b + l.gain * x);
            self.scales[i] = 1.0;
        }
        for (i, s) in self.scales.iter_mut().enumerate() {
            if *s != 1.0 && s.abs() < FOLD_BELOW {
                crate::vecmath::scale(&mut self.vectors[i * p..(i + 1) * p], *s);
                *s = 1.0;
            }
        }
    }

    /// out = Lᵀ G_k, (cols of `pl`) x N, with `pl` = P_k L (P x width):
    /// Σ_i L(q) · G_{k,i} for every query column q and point i.
    pub fn contract(&mut self, pl: &[f64], width: usize, eta: f64, l: Linear, out: &mut [f64]) {
        let (p, n) = (self.p, self.scales.len());
        let lhs = slice_view(pl, p, width).transpose();
        gemm(
            slice_view_mut(out, width, n),
            false,
            lhs,
            slice_view(&self.vectors, p, n),
            1.0,
        );
        for (column, &s) in out.chunks_exact_mut(width).zip(&self.scales) {
            crate::vecmath::scale(column, -eta * l.keep * s);
        }
        if l.pass == 0.0 || self.batch.is_empty() {
            return;
        }
        let b = self.batch.len();
        let product = &mut self.batch_product[..width * b];
        gemm(
            slice_view_mut(product, width, b),
            false,
            lhs,
            slice_view(&self.inputs[..p * b], p, b),
            1.0,
        );
        for (&i, add) in self.batch.iter().zip(product.chunks_exact(width)) {
            let column = &mut out[i * width..(i + 1) * width];
            crate::vecmath::axpy(column, -eta * l.pass, add);
        }
    }
}
