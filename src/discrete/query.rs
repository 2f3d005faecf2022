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
