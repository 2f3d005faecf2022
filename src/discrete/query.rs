//! Where a deferred stream's query matrix L_k (P x width, `buffers`) comes
//! from: formed, or held as the factors of a Jacobian sum (`Jacobians`)
//! and formed a block of parameters at a time, where it is read. An
//! (M C) x P matrix is 18 MB on the bench specs: writing it out and
//! reading it back costs more than forming each block twice in cache.
use crate::jacobian::Jacobians;
use std::ops::Range;

/// A step's tiles (`buffers`): `BLOCK_ROWS` parameters by `BLOCK_COLUMNS`
/// query columns of the running sums (256 KB), with the batch's gradients
/// over the same parameters (512 KB at a batch of 32) and the factors of
/// the tile's columns, stay in a core's L2 (2 MiB here) while the step
/// multiplies and updates them; the factors of all columns (1 MB on the
/// bench specs, 8 nodes) are read once per block of rows.
pub const BLOCK_ROWS: usize = 2048;
pub const BLOCK_COLUMNS: usize = 16;

/// A stream's L_k.
#[derive(Clone, Copy)]
pub enum Query<'a> {
    /// Column q is `l[q P..(q + 1) P]`.
    Formed(&'a [f64]),
    /// The held nodes' sum (`Jacobians::column_rows`).
    Factors(&'a Jacobians),
}

impl Query<'_> {
    /// Rows `rows` of column q (of P rows), formed in `scratch` (at least
    /// `rows.len()` long) when they are not stored.
    pub fn rows<'s>(
        &'s self,
        p: usize,
        q: usize,
        rows: Range<usize>,
        scratch: &'s mut [f64],
    ) -> &'s [f64] {
        match *self {
            Query::Formed(l) => &l[q * p + rows.start..q * p + rows.end],
            Query::Factors(jac) => {
                let out = &mut scratch[..rows.len()];
                jac.column_rows(q, rows, out);
                out
            }
        }
    }

    /// Rows `rows` of column q into `out`.
    pub fn rows_into(&self, p: usize, q: usize, rows: Range<usize>, out: &mut [f64]) {
        match *self {
            Query::Formed(l) => out.copy_from_slice(&l[q * p + rows.start..q * p + rows.end]),
            Query::Factors(jac) => jac.column_rows(q, rows, out),
        }
    }

    /// (L(·, q) · v, Σ_p |L(p, q) v(p)|), by blocks of [`BLOCK_ROWS`].
    pub fn dot_and_size(&self, q: usize, v: &[f64], scratch: &mut [f64]) -> (f64, f64) {
        blocks(v.len(), BLOCK_ROWS).fold((0.0, 0.0), |(sum, size), rows| {
            let (s, m) = crate::vecmath::dot_and_size(
                self.rows(v.len(), q, rows.clone(), scratch),
                &v[rows],
            );
            (sum + s, size + m)
        })
    }
}

/// 0..p in blocks of `size` rows.
pub fn blocks(p: usize, size: usize) -> impl Iterator<Item = Range<usize>> {
    (0..p)
        .step_by(size)
        .map(move |start| start..(start + size).min(p))
}

/// Rows per block of [`weighted_product`]: both operands' blocks ((M C)
/// and (N C) columns, 1.5 MB on the bench specs) stay in L2 while their
/// product is taken.
pub const PRODUCT_ROWS: usize = 512;

/// out = Aᵀ diag(d) B ((a_cols x b_cols), column-major) for A (P x a_cols)
/// and B (P x b_cols): Adam's per-step kernel ∇f(q)ᵀ P_k ∇f(x), with each
/// block of [`PRODUCT_ROWS`] parameters of both formed (and A's scaled by
/// d) into `blocks` just before it enters the product, so that neither
/// Jacobian is written out whole and read back. `blocks` holds
/// PRODUCT_ROWS (a_cols + b_cols) numbers.
pub fn weighted_product(
    out: &mut [f64],
    (a, a_cols): (Query<'_>, usize),
    d: &[f64],
    (b, b_cols): (Query<'_>, usize),
    blocks_buf: &mut [f64],
) {
    let p = d.len();
    let (ab, bb) = blocks_buf.split_at_mut(PRODUCT_ROWS * a_cols);
    for rows in blocks(p, PRODUCT_ROWS) {
        let len = rows.len();
        for (q, col) in ab.chunks_exact_mut(len).take(a_cols).enumerate() {
            a.rows_into(p, q, rows.clone(), col);
            col.iter_mut()
                .zip(&d[rows.clone()])
                .for_each(|(v, &d)| *v *= d);
        }
        for (i, col) in bb.chunks_exact_mut(len).take(b_cols).enumerate() {
            b.rows_into(p, i, rows.clone(), col);
        }
        let lhs = crate::linalg::slice_view(&ab[..len * a_cols], len, a_cols).transpose();
        let rhs = crate::linalg::slice_view(&bb[..len * b_cols], len, b_cols);
        let dst = crate::linalg::slice_view_mut(out, a_cols, b_cols);
        crate::linalg::gemm_deep(dst, rows.start > 0, lhs, rhs, 1.0);
    }
}
