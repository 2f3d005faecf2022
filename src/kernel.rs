//! Parameter gradients and tangent kernels from a model's Jacobian factors.
//!
//! For a dense block z = s W u the per-example Jacobian is s δ uᵀ, so
//!   Σ_r c_r ∇_W f(x_r)      = s Δᵀ diag(c) U            (one matrix product),
//!   ∇_W f(q) · ∇_W f(x)      = s² (δ_q · δ_x)(u_q · u_x),
//! and the tangent kernel of a layer over two batches is
//! s² (Δ_q Δ_xᵀ) ∘ (U_q U_xᵀ), plus Δ_q Δ_xᵀ for its bias: O(M N (in + out))
//! work, where the per-example Jacobians would cost O(M N P).
use crate::linalg::{gemm, slice_view, slice_view_mut, view};
use crate::model::{Block, Model, Tape};
use nalgebra::DMatrix;
use std::ops::Range;

/// The blocks of a model grouped by the δ they share, so that Δ_q Δ_xᵀ is
/// formed once per group.
#[derive(Clone, Debug)]
pub struct KernelPlan {
    groups: Vec<Group>,
    explicit: Vec<(usize, usize)>,
    blocks: Vec<Block>,
}

#[derive(Clone, Debug)]
struct Group {
    delta: usize,
    /// (input index, scale²) of each dense block using this δ.
    dense: Vec<(usize, f64)>,
    bias: bool,
    /// The output layer's δ, all ones: its kernel is Σ s² U_a U_bᵀ (+ 1),
    /// with no δ product and no Hadamard product.
    unit: bool,
}

/// Reusable buffers for [`KernelPlan`]'s products, sized at construction.
#[derive(Clone, Debug)]
pub struct Scratch {
    s1: Vec<f64>,
    s2: Vec<f64>,
    /// c ∘ Δ for each δ index, over the gradient's rows.
    weighted: Vec<DMatrix<f64>>,
}

/// The input Gram matrices Σ s² U_a U_bᵀ of the δ groups whose dense blocks
/// all read the model's input (`inputs[0]`, the batch itself), for one pair
/// of tapes and row ranges: they do not change along a flow, so a flow forms
/// them once (for an mlp, the first layer's X_q X_xᵀ).
#[derive(Clone, Debug)]
pub struct InputGrams {
    /// Per δ group, its Gram matrix if it is constant.
    grams: Vec<Option<Vec<f64>>>,
}

impl KernelPlan {
    /// The constant input Grams for rows `ra` of `ta` against rows `rb` of
    /// `tb`; pass them to [`KernelPlan::tangent_kernel`] only with the
    /// same tapes' inputs and ranges.
    pub fn input_grams(
        &self,
        ta: &Tape,
        ra: Range<usize>,
        tb: &Tape,
        rb: Range<usize>,
    ) -> InputGrams {
        let n = ra.len() * rb.len();
        let grams = self
            .groups
            .iter()
            .map(|group| {
                group.input_gram_is_constant().then(|| {
                    let mut gram = vec![0.0; n];
                    input_gram(group, (ta, ra.clone()), (tb, rb.clone()), &mut gram);
                    gram
                })
            })
            .collect();
        InputGrams { grams }
    }
}

impl Group {
    /// Whether the group's input Gram is formed once per flow: every dense
    /// block reads the model's input, and the group is not the output
    /// layer's (whose kernel has no Hadamard product to reuse it in).
    fn input_gram_is_constant(&self) -> bool {
        !self.unit && !self.dense.is_empty() && self.dense.iter().all(|&(input, _)| input == 0)
    }
}

impl KernelPlan {
    /// Whether the kernel block of δ index `delta` reuses a constant input
    /// Gram along a flow (see [`InputGrams`]), for the work model.
    pub fn input_gram_is_constant(&self, delta: usize) -> bool {
        self.groups
            .iter()
            .any(|g| g.delta == delta && g.input_gram_is_constant())
    }
}

/// s2 = Σ s² U_a U_bᵀ over the dense blocks of a δ group.
fn input_gram(
    group: &Group,
    (ta, ra): (&Tape, Range<usize>),
    (tb, rb): (&Tape, Range<usize>),
    s2: &mut [f64],
) {
    let (na, nb) = (ra.len(), rb.len());
    for (k, &(input, scale2)) in group.dense.iter().enumerate() {
        let ua = view(&ta.inputs[input]).subrows(ra.start, na);
        let ub = view(&tb.inputs[input]).subrows(rb.start, nb);
        gemm(
            slice_view_mut(s2, na, nb),
            k > 0,
            ua,
            ub.transpose(),
            scale2,
        );
    }
}

impl KernelPlan {
    pub fn new(model: &dyn Model) -> KernelPlan {
        let mut groups: Vec<Group> = Vec::new();
        let mut explicit = Vec::new();
        let group_of = |delta: usize, groups: &mut Vec<Group>| -> usize {
            groups
                .iter()
                .position(|g| g.delta == delta)
                .unwrap_or_else(|| {
                    groups.push(Group {
                        unit: model.unit_delta() == Some(delta),
                        delta,
                        dense: Vec::new(),
                        bias: false,
                    });
                    groups.len() - 1
                })
        };
        for block in model.blocks() {
            match *block {
                Block::Dense {
                    input,
                    delta,
                    scale,
                    ..
                } => {
                    let g = group_of(delta, &mut groups);
                    groups[g].dense.push((input, scale * scale));
                }
                Block::Bias { delta, .. } => {
                    let g = group_of(delta, &mut groups);
                    groups[g].bias = true;
                }
                Block::Explicit { offset, jac } => explicit.push((offset, jac)),
            }
        }
        KernelPlan {
            groups,
            explicit,
            blocks: model.blocks().to_vec(),
        }
    }

    /// Buffers for kernels of at most `kernel_entries` entries and gradients
    /// over `grad_rows` rows of `tape`.
    pub fn scratch(&self, tape: &Tape, kernel_entries: usize, grad_rows: usize) -> Scratch {
        Scratch {
            s1: vec![0.0; kernel_entries],
            s2: vec![0.0; kernel_entries],
            weighted: tape
                .deltas
                .iter()
                .map(|d| DMatrix::zeros(grad_rows, d.ncols()))
                .collect(),
        }
    }

    /// K[i, j] = ∇_w f(a_i) · ∇_w f(b_j) for rows `ra` of `ta` and rows `rb`
    /// of `tb`, written column-major into `out` (|ra| x |rb|). The tapes may
    /// come from different parameter vectors (a cross kernel). `constant`:
    /// the constant input Grams of the same tapes and ranges, formed once by
    /// [`KernelPlan::input_grams`], or None to form every product.
    #[allow(clippy::too_many_arguments)]
    pub fn tangent_kernel(
        &self,
        ta: &Tape,
        ra: Range<usize>,
        tb: &Tape,
        rb: Range<usize>,
        scratch: &mut Scratch,
        constant: Option<&InputGrams>,
        out: &mut [f64],
    ) {
        let (na, nb) = (ra.len(), rb.len());
        let n = na * nb;
        out.fill(0.0);
        let s1 = &mut scratch.s1[..n];
        for (index, group) in self.groups.iter().enumerate() {
            if group.unit {
                for &(input, scale2) in &group.dense {
                    let ua = view(&ta.inputs[input]).subrows(ra.start, na);
                    let ub = view(&tb.inputs[input]).subrows(rb.start, nb);
                    gemm(
                        slice_view_mut(out, na, nb),
                        true,
                        ua,
                        ub.transpose(),
                        scale2,
                    );
                }
                if group.bias {
                    crate::vecmath::add_scalar(out, 1.0);
                }
                continue;
            }
            let da = view(&ta.deltas[group.delta]).subrows(ra.start, na);
            let db = view(&tb.deltas[group.delta]).subrows(rb.start, nb);
            gemm(slice_view_mut(s1, na, nb), false, da, db.transpose(), 1.0);
            if group.dense.is_empty() {
                crate::vecmath::add_assign(out, s1);
                continue;
            }
            let s2 = match constant.and_then(|c| c.grams[index].as_deref()) {
                Some(gram) => gram,
                None => {
                    let s2 = &mut scratch.s2[..n];
                    input_gram(group, (ta, ra.clone()), (tb, rb.clone()), s2);
                    s2
                }
            };
            let bias = if group.bias { 1.0 } else { 0.0 };
            hadamard_accumulate(out, s1, s2, bias);
        }
        for &(_, jac) in &self.explicit {
            let ja = view(&ta.explicit[jac]).subrows(ra.start, na);
            let jb = view(&tb.explicit[jac]).subrows(rb.start, nb);
            gemm(slice_view_mut(out, na, nb), true, ja, jb.transpose(), 1.0);
        }
    }

    /// grad = alpha Σ_r c_r ∇_w f(x_r) over rows `rows` of `tape`, with one
    /// matrix product per dense block.
    pub fn weighted_gradient(
        &self,
        tape: &Tape,
        rows: Range<usize>,
        c: &[f64],
        alpha: f64,
        scratch: &mut Scratch,
        grad: &mut [f64],
    ) {
        let n = rows.len();
        for (weighted, delta) in scratch.weighted.iter_mut().zip(&tape.deltas) {
            let total = delta.nrows();
            let columns = weighted.as_mut_slice().chunks_exact_mut(n);
            for (dst, src) in columns.zip(delta.as_slice().chunks_exact(total)) {
                crate::vecmath::product_into(dst, &src[rows.clone()], c);
            }
        }
        for block in &self.blocks {
            match *block {
                Block::Dense {
                    offset,
                    input,
                    delta,
                    scale,
                } => {
                    let cd = &scratch.weighted[delta];
                    let (fan_in, fan_out) = (tape.inputs[input].ncols(), cd.ncols());
                    let g = slice_view_mut(
                        &mut grad[offset..offset + fan_in * fan_out],
                        fan_in,
                        fan_out,
                    );
                    let u = view(&tape.inputs[input]).subrows(rows.start, n);
                    gemm(g, false, u.transpose(), view(cd), alpha * scale);
                }
                Block::Bias { offset, delta } => {
                    let cd = &scratch.weighted[delta];
                    for (g, col) in grad[offset..offset + cd.ncols()]
                        .iter_mut()
                        .zip(cd.as_slice().chunks_exact(n))
                    {
                        *g = alpha * crate::vecmath::sum(col);
                    }
                }
                Block::Explicit { offset, jac } => {
                    let j = &tape.explicit[jac];
                    let g = slice_view_mut(&mut grad[offset..offset + j.ncols()], j.ncols(), 1);
                    let jt = view(j).subrows(rows.start, n).transpose();
                    gemm(g, false, jt, slice_view(c, n, 1), alpha);
                }
            }
        }
    }
}

/// out += a ∘ (b + bias), split across threads for large kernels
/// (elementwise, so the result does not depend on the split).
fn hadamard_accumulate(out: &mut [f64], a: &[f64], b: &[f64], bias: f64) {
    use rayon::prelude::*;
    const CHUNK: usize = 1 << 14;
    let run = |((o, a), b): ((&mut [f64], &[f64]), &[f64])| {
        crate::vecmath::hadamard_accumulate(o, a, b, bias)
    };
    if out.len() > 2 * CHUNK {
        out.par_chunks_mut(CHUNK)
            .zip(a.par_chunks(CHUNK))
            .zip(b.par_chunks(CHUNK))
            .for_each(run);
    } else {
        run(((out, a), b));
    }
}
