//! Parameter gradients and tangent kernels from a model's Jacobian factors.
//!
//! For a dense block z = s W u the per-example Jacobian is s δ uᵀ, so
//!   Σ_r c_r ∇_W f(x_r)      = s Δᵀ diag(c) U            (one matrix product),
//!   ∇_W f(q) · ∇_W f(x)      = s² (δ_q · δ_x)(u_q · u_x),
//! and the tangent kernel of a layer over two batches is
//! s² (Δ_q Δ_xᵀ) ∘ (U_q U_xᵀ), plus Δ_q Δ_xᵀ for its bias: O(M N (in + out))
//! work, where the per-example Jacobians would cost O(M N P).
//!
//! With C outputs (SPEC §8) the δ matrices hold a row per example and
//! output (row r C + c), so Δ_q Δ_xᵀ is the (M C) x (N C) matrix of every
//! δ_{qc} · δ_{xc'} while U_q U_xᵀ stays M x N: the kernel's entry
//! ((q, c), (x, c')) is s² (δ_{qc} · δ_{xc'}) (u_q · u_x), each input Gram
//! entry serving a C x C block. Kernels are column-major (M C) x (N C),
//! row q C + c and column x C + c', so that C = 1 is the scalar layout.
use crate::linalg::{gemm, slice_view, slice_view_mut, view};
use crate::model::{Block, Model, Tape};
use crate::symmetric;
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
    /// C > 1: each δ group's input Gram (|ra| x |rb|), formed before the
    /// column blocks that share it.
    grams: Vec<Vec<f64>>,
    /// C > 1: one Δ_q Δ_xᵀ column block per worker thread.
    blocks: Vec<Vec<f64>>,
}

/// Entries of one column block of a C > 1 kernel (128 KiB): the block of
/// Δ_q Δ_xᵀ and the kernel's own block stay in a core's L2 cache from the
/// product to the Hadamard accumulation, instead of streaming the whole
/// (M C) x (N C) kernel through memory once per δ group.
const BLOCK_ENTRIES: usize = 1 << 14;

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

/// s2 = Σ s² U_a U_bᵀ over the dense blocks of a δ group (a symmetric
/// leading block's upper triangle only, `crate::symmetric`).
fn input_gram(
    group: &Group,
    (ta, ra): (&Tape, Range<usize>),
    (tb, rb): (&Tape, Range<usize>),
    s2: &mut [f64],
) {
    let (na, nb) = (ra.len(), rb.len());
    let sym = symmetric::prefix(ta, &ra, tb, &rb);
    for (k, &(input, scale2)) in group.dense.iter().enumerate() {
        let ua = view(&ta.inputs[input]).subrows(ra.start, na);
        let ub = view(&tb.inputs[input]).subrows(rb.start, nb);
        symmetric::product(
            slice_view_mut(s2, na, nb),
            k > 0,
            ua,
            ub.transpose(),
            scale2,
            sym,
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

    /// Buffers for kernels over at most `pairs` pairs of examples (each a
    /// C x C block) and gradients over `grad_rows` examples of `tape`.
    pub fn scratch(&self, tape: &Tape, pairs: usize, grad_rows: usize) -> Scratch {
        let c = tape.outputs();
        let (grams, blocks) = if c > 1 {
            let threads = rayon::current_num_threads().max(1);
            (
                vec![vec![0.0; pairs]; self.groups.len()],
                // a block is at least one column of (|ra| C) <= pairs C entries
                vec![vec![0.0; BLOCK_ENTRIES.max(pairs * c)]; threads],
            )
        } else {
            (Vec::new(), Vec::new())
        };
        Scratch {
            grams,
            blocks,
            s1: if c > 1 { Vec::new() } else { vec![0.0; pairs] },
            s2: vec![0.0; pairs],
            // Only the δ of dense and bias blocks are weighed; others
            // (a layered model's intermediate sensitivities) get no buffer.
            weighted: tape
                .deltas
                .iter()
                .enumerate()
                .map(|(k, d)| {
                    if self.groups.iter().any(|g| g.delta == k) {
                        DMatrix::zeros(grad_rows, d.ncols())
                    } else {
                        DMatrix::zeros(0, 0)
                    }
                })
                .collect(),
        }
    }

    /// K[(i, c), (j, c')] = ∇_w f_c(a_i) · ∇_w f_{c'}(b_j) for examples `ra`
    /// of `ta` and `rb` of `tb`, written column-major into `out`
    /// ((|ra| C) x (|rb| C), row i C + c, column j C + c'). The tapes may
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
        if ta.outputs() > 1 {
            return self.tangent_kernel_blocks((ta, ra), (tb, rb), scratch, constant, out);
        }
        let n = na * nb;
        // The leading rows that are the leading columns' examples: their
        // block is formed as its upper triangle and mirrored.
        let sym = symmetric::prefix(ta, &ra, tb, &rb);
        out.fill(0.0);
        let s1 = &mut scratch.s1[..n];
        for (index, group) in self.groups.iter().enumerate() {
            if group.unit {
                for &(input, scale2) in &group.dense {
                    let ua = view(&ta.inputs[input]).subrows(ra.start, na);
                    let ub = view(&tb.inputs[input]).subrows(rb.start, nb);
                    symmetric::product(
                        slice_view_mut(out, na, nb),
                        true,
                        ua,
                        ub.transpose(),
                        scale2,
                        sym,
                    );
                }
                if group.bias {
                    crate::vecmath::add_scalar(out, 1.0);
                }
                continue;
            }
            let da = view(&ta.deltas[group.delta]).subrows(ra.start, na);
            let db = view(&tb.deltas[group.delta]).subrows(rb.start, nb);
            let s1_view = slice_view_mut(s1, na, nb);
            symmetric::product(s1_view, false, da, db.transpose(), 1.0, sym);
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
            if sym > 0 {
                symmetric::hadamard_accumulate(out, s1, s2, bias, na, sym);
            } else {
                hadamard_accumulate(out, s1, s2, bias);
            }
        }
        for &(_, jac) in &self.explicit {
            let ja = view(&ta.explicit[jac]).subrows(ra.start, na);
            let jb = view(&tb.explicit[jac]).subrows(rb.start, nb);
            let out_view = slice_view_mut(out, na, nb);
            symmetric::product(out_view, true, ja, jb.transpose(), 1.0, sym);
        }
        symmetric::mirror(out, na, sym);
    }

    /// [`KernelPlan::tangent_kernel`] for C > 1, by column blocks of
    /// [`BLOCK_ENTRIES`]: each block of out is formed whole (every δ
    /// group's product and Hadamard accumulation, the output layer's
    /// diagonal, the explicit blocks) while it is in cache. Blocks are a
    /// fixed partition of the columns and each is computed alone, so the
    /// result does not depend on how many threads share them.
    fn tangent_kernel_blocks(
        &self,
        (ta, ra): (&Tape, Range<usize>),
        (tb, rb): (&Tape, Range<usize>),
        scratch: &mut Scratch,
        constant: Option<&InputGrams>,
        out: &mut [f64],
    ) {
        use rayon::prelude::*;
        let (na, nb, c) = (ra.len(), rb.len(), ta.outputs());
        let (rows, n) = (na * c, na * nb);
        // The groups' input Grams, each shared by every column block.
        for (index, group) in self.groups.iter().enumerate() {
            let formed = constant.and_then(|k| k.grams[index].as_ref()).is_some();
            if !group.dense.is_empty() && !formed {
                let gram = &mut scratch.grams[index][..n];
                input_gram(group, (ta, ra.clone()), (tb, rb.clone()), gram);
            }
        }
        let width = (BLOCK_ENTRIES / rows).max(1);
        let blocks = (nb * c).div_ceil(width);
        let per_thread = blocks.div_ceil(scratch.blocks.len());
        let grams = &scratch.grams;
        let gram_of = |index: usize| -> &[f64] {
            match constant.and_then(|k| k.grams[index].as_deref()) {
                Some(gram) => gram,
                None => &grams[index][..n],
            }
        };
        let run = |(chunk, (out, s1)): (usize, (&mut [f64], &mut Vec<f64>))| {
            for (b, out) in out.chunks_mut(rows * width).enumerate() {
                let j0 = (chunk * per_thread + b) * width;
                let w = out.len() / rows;
                out.fill(0.0);
                for (index, group) in self.groups.iter().enumerate() {
                    let bias = if group.bias { 1.0 } else { 0.0 };
                    if group.unit {
                        // δ_{qc} · δ_{xc'} = [c = c']
                        add_block_diagonal(out, gram_of(index), bias, na, c, j0);
                        continue;
                    }
                    let s1 = &mut s1[..rows * w];
                    let da = view(&ta.deltas[group.delta]).subrows(ra.start * c, rows);
                    let db = view(&tb.deltas[group.delta]).subrows(rb.start * c + j0, w);
                    gemm(slice_view_mut(s1, rows, w), false, da, db.transpose(), 1.0);
                    if group.dense.is_empty() {
                        crate::vecmath::add_assign(out, s1);
                        continue;
                    }
                    let gram = gram_of(index);
                    for (jj, (o, a)) in out.chunks_mut(rows).zip(s1.chunks(rows)).enumerate() {
                        let x = (j0 + jj) / c;
                        let g = &gram[x * na..(x + 1) * na];
                        crate::vecmath::hadamard_accumulate_rows(o, a, g, bias, c);
                    }
                }
                for &(_, jac) in &self.explicit {
                    let ja = view(&ta.explicit[jac]).subrows(ra.start * c, rows);
                    let jb = view(&tb.explicit[jac]).subrows(rb.start * c + j0, w);
                    gemm(slice_view_mut(out, rows, w), true, ja, jb.transpose(), 1.0);
                }
            }
        };
        out[..rows * nb * c]
            .par_chunks_mut(rows * width * per_thread)
            .zip(scratch.blocks.par_iter_mut())
            .enumerate()
            .for_each(run);
    }

    /// grad = alpha Σ_{r,k} c_{rk} ∇_w f_k(x_r) over examples `rows` of
    /// `tape`, `c` example-major (entry r C + k), with one matrix product per
    /// dense block: the C sensitivities of an example are combined first,
    /// Σ_k c_{rk} δ_{rk}, so the product runs over examples, not outputs.
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
        let outputs = tape.outputs();
        let deltas = rows.start * outputs..rows.end * outputs;
        for (weighted, delta) in scratch.weighted.iter_mut().zip(&tape.deltas) {
            if weighted.is_empty() {
                continue;
            }
            let total = delta.nrows();
            let columns = weighted.as_mut_slice().chunks_exact_mut(n);
            for (dst, src) in columns.zip(delta.as_slice().chunks_exact(total)) {
                let src = &src[deltas.clone()];
                if outputs == 1 {
                    crate::vecmath::product_into(dst, src, c);
                    continue;
                }
                for ((d, s), w) in dst
                    .iter_mut()
                    .zip(src.chunks_exact(outputs))
                    .zip(c.chunks_exact(outputs))
                {
                    *d = s.iter().zip(w).map(|(&s, &w)| s * w).sum();
                }
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
                    let jt = view(j).subrows(deltas.start, deltas.len()).transpose();
                    gemm(g, false, jt, slice_view(c, deltas.len(), 1), alpha);
                }
            }
        }
    }
}

/// Adds (gram + bias) to the diagonal entries (i C + k, j C + k) of the
/// kernel's columns j0.. held in `out` ((na C) x w), gram being na x nb:
/// the output layer's block, whose δ_{qc} · δ_{xc'} is [c = c'].
fn add_block_diagonal(out: &mut [f64], gram: &[f64], bias: f64, na: usize, c: usize, j0: usize) {
    for (jj, col) in out.chunks_mut(na * c).enumerate() {
        let (x, k) = ((j0 + jj) / c, (j0 + jj) % c);
        for (i, &g) in gram[x * na..(x + 1) * na].iter().enumerate() {
            col[i * c + k] += g;
            col[i * c + k] += bias;
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
