//! Where a deferred stream's query matrix L_k (P x width, `buffers`) comes
//! from: formed, or held as the factors of a Jacobian sum (`Jacobians`)
//! and formed a block of parameters at a time, where it is read. An
//! (M C) x P matrix is 18 MB on the bench specs: writing it out and
//! reading it back costs more than forming each block twice in cache.
use crate::jacobian::Jacobians;
use std::ops::Range;

/// Parameters per block: a block of both streams' running sums ((M C)
/// columns each), of the batch's gradients and of the factors' stacks
/// stays in a core's L2 (2 MiB here) while a step updates and reads it.
pub const BLOCK_ROWS: usize = 256;

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
