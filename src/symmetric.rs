//! The symmetric block of a tangent kernel (proofs.md C51). When a
//! kernel's first s rows and first s columns are the same examples (`learn`'s
//! replay: the training points are the leading query points), its leading
//! s x s block is symmetric, and so is every factor product that builds it
//! (Δ Δᵀ, U Uᵀ, J Jᵀ). [`product`] then forms only that block's upper
//! triangle, by blocks (the off-diagonal ones by [`gemm`], the diagonal ones
//! split again down to [`BASE`] and formed whole), [`hadamard_accumulate`]
//! skips what [`product`] left out, and [`mirror`] copies the upper triangle
//! below the diagonal at the end: about half the block's work, and the block
//! symmetric by construction. Each entry is still its own dot product of the
//! same factors, so the upper triangle is the full product's.
use crate::linalg::gemm;
use crate::model::Tape;
use faer::{MatMut, MatRef};
use std::ops::Range;

/// Diagonal blocks narrower than this (two of the SIMD kernel's 48-row
/// panels) are formed whole rather than split again.
const BASE: usize = 96;

/// s for rows `ra` of `ta` against columns `rb` of `tb`: the number of
/// leading rows that are the leading columns' examples (the same tape and
/// start), or 0. C > 1 kernels (formed by column blocks) are not split: 0.
pub fn prefix(ta: &Tape, ra: &Range<usize>, tb: &Tape, rb: &Range<usize>) -> usize {
    if std::ptr::eq(ta, tb) && ra.start == rb.start && ta.outputs() == 1 {
        ra.len().min(rb.len())
    } else {
        0
    }
}

/// dst = alpha lhs rhs (dst += with `accumulate`) on every entry but the
/// strict lower triangle of its leading s x s block, which is left as it
/// was where the diagonal blocks do not cover it (s = 0: all of dst).
pub fn product(
    dst: MatMut<'_, f64>,
    accumulate: bool,
    lhs: MatRef<'_, f64>,
    rhs: MatRef<'_, f64>,
    alpha: f64,
    s: usize,
) {
    if s == 0 {
        return gemm(dst, accumulate, lhs, rhs, alpha);
    }
    let (rows, cols) = (dst.nrows(), dst.ncols());
    let (top, bottom) = dst.split_at_row_mut(s);
    let (block, right) = top.split_at_col_mut(s);
    let (lt, lb) = lhs.split_at_row(s);
    let (rl, rr) = rhs.split_at_col(s);
    upper(block, accumulate, lt, rl, alpha);
    if cols > s {
        gemm(right, accumulate, lt, rr, alpha);
    }
    if rows > s {
        gemm(bottom, accumulate, lb, rhs, alpha);
    }
}

/// The upper triangle of the square dst = alpha lhs rhs: the top-right
/// quarter by one product, beside the two diagonal quarters recursively.
/// The split depends only on the shape, so the result does not depend on
/// the number of threads.
fn upper(
    dst: MatMut<'_, f64>,
    accumulate: bool,
    lhs: MatRef<'_, f64>,
    rhs: MatRef<'_, f64>,
    alpha: f64,
) {
    let n = dst.nrows();
    if n < 2 * BASE {
        return gemm(dst, accumulate, lhs, rhs, alpha);
    }
    let h = n / 2;
    let (d11, d12, _, d22) = dst.split_at_mut(h, h);
    let (l1, l2) = lhs.split_at_row(h);
    let (r1, r2) = rhs.split_at_col(h);
    rayon::join(
        || {
            upper(d11, accumulate, l1, r1, alpha);
            upper(d22, accumulate, l2, r2, alpha);
        },
        || gemm(d12, accumulate, l1, r2, alpha),
    );
}

/// The rows of column j that [`product`] formed and the kernel keeps: the
/// upper triangle's and those below the s x s block.
fn kept(j: usize, rows: usize, s: usize) -> [Range<usize>; 2] {
    if j < s {
        [0..j + 1, s..rows]
    } else {
        [0..rows, rows..rows]
    }
}

/// out += a ∘ (b + bias) on the entries [`kept`], all three column-major
/// with `rows` rows, split across threads by columns (elementwise, so the
/// result does not depend on the split).
pub fn hadamard_accumulate(
    out: &mut [f64],
    a: &[f64],
    b: &[f64],
    bias: f64,
    rows: usize,
    s: usize,
) {
    use rayon::prelude::*;
    out.par_chunks_mut(rows)
        .zip(a.par_chunks(rows))
        .zip(b.par_chunks(rows))
        .enumerate()
        .with_min_len(16)
        .for_each(|(j, ((o, a), b))| {
            for r in kept(j, rows, s) {
                crate::vecmath::hadamard_accumulate(&mut o[r.clone()], &a[r.clone()], &b[r], bias);
            }
        });
}

/// Copies the upper triangle of out's leading s x s block (column-major,
/// `rows` rows) onto its strict lower triangle, by tiles that stay in cache.
pub fn mirror(out: &mut [f64], rows: usize, s: usize) {
    const TILE: usize = 32;
    for jb in (0..s).step_by(TILE) {
        for ib in (jb..s).step_by(TILE) {
            for j in jb..(jb + TILE).min(s) {
                for i in ib.max(j + 1)..(ib + TILE).min(s) {
                    out[i + j * rows] = out[j + i * rows];
                }
            }
        }
    }
}
