//! conv1d / conv2d {channels, kernel, stride, padding, bias}: the
//! cross-correlation out[o, p] = b[o] + Σ_{c, j} W[o, c, j] in[c, s p + j − pad]
//! (SPEC §10), W (out_ch, in_ch, k[, k]) row-major then b.
//!
//! Forward by im2col: the patches of the whole batch form one
//! (P · rows) x (in_ch · K) matrix (row p rows + r, column c K + j, K = k^d),
//! and one product with Wᵀ gives the output, whose rows x (out_ch · P)
//! column-major storage is the same as (P · rows) x out_ch.
//!
//! Backward: ∂f/∂patches = δ W (one product), scattered back to the input
//! positions (col2im). The per-(example, output) gradient of W and b is
//! small (out_ch · (in_ch · K + 1) numbers), so it is kept as one explicit
//! Jacobian block: row r C + c, column o (in_ch K) + q is
//! Σ_p δ_{rc}[o, p] patches[p, r, q], and the bias column o is Σ_p δ_{rc}[o, p].
use super::{Backward, Forward, Layer, LayerError, Slots, TaylorIo};
use crate::linalg::{gemm, slice_view, slice_view_mut};
use crate::model::{Block, add_bias, normal_vec};
use crate::spec::Padding;
use crate::vecmath::{add_assign, hadamard_accumulate, hadamard_accumulate_rows};
use rand_chacha::ChaCha20Rng;

#[derive(Debug)]
pub(crate) struct Conv {
    /// in_ch, and the input's spatial positions per channel.
    in_ch: usize,
    in_len: usize,
    out_ch: usize,
    /// K = k^d, P = output positions per channel.
    taps: usize,
    positions: usize,
    /// For output position p and kernel offset j, the input position
    /// (row-major over the spatial axes) at p K + j, or None in the padding.
    gather: Vec<Option<usize>>,
    bias: bool,
    offset: usize,
    shape: Vec<usize>,
}

impl Conv {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        d: usize,
        input: &[usize],
        channels: usize,
        kernel: usize,
        stride: usize,
        padding: Padding,
        bias: bool,
        offset: usize,
    ) -> Result<Conv, LayerError> {
        let kind = if d == 1 { "conv1d" } else { "conv2d" };
        if input.len() != d + 1 {
            let wanted = if d == 1 {
                "[channels, length]"
            } else {
                "[channels, height, width]"
            };
            return Err((
                "kind",
                format!("{kind} needs an input of shape {wanted}, found shape {input:?}"),
            ));
        }
        let positive = |field: &'static str, v: usize| {
            if v == 0 {
                Err((field, "found 0, allowed: a whole number >= 1".to_owned()))
            } else {
                Ok(())
            }
        };
        positive("channels", channels)?;
        positive("kernel", kernel)?;
        positive("stride", stride)?;
        let pad = match padding {
            Padding::Valid => 0,
            Padding::Same if kernel.is_multiple_of(2) => {
                return Err((
                    "kernel",
                    format!("found {kernel}, but padding \"same\" needs an odd kernel"),
                ));
            }
            Padding::Same => (kernel - 1) / 2,
        };
        let spatial = &input[1..];
        let mut out = Vec::with_capacity(d);
        for &len in spatial {
            if len + 2 * pad < kernel {
                return Err((
                    "kernel",
                    format!(
                        "found {kernel}, larger than its input of shape {input:?} (padded by \
                         {pad}); allowed: at most {}",
                        len + 2 * pad
                    ),
                ));
            }
            out.push((len + 2 * pad - kernel) / stride + 1);
        }
        let positions: usize = out.iter().product();
        let taps = kernel.pow(d as u32);
        let mut gather = Vec::with_capacity(positions * taps);
        for p in 0..positions {
            let p_idx = unravel(p, &out);
            for j in 0..taps {
                let j_idx = unravel(j, &vec![kernel; d]);
                let mut flat = 0;
                let mut inside = true;
                for a in 0..d {
                    let pos = (stride * p_idx[a] + j_idx[a]) as isize - pad as isize;
                    inside &= pos >= 0 && (pos as usize) < spatial[a];
                    flat = flat * spatial[a] + pos.max(0) as usize;
                }
                gather.push(inside.then_some(flat));
            }
        }
        let mut shape = vec![channels];
        shape.extend(&out);
        Ok(Conv {
            in_ch: input[0],
            in_len: spatial.iter().product(),
            out_ch: channels,
            taps,
            positions,
            gather,
            bias,
            offset,
            shape,
        })
    }

    /// in_ch · K, the columns of the patch matrix.
    fn patch_len(&self) -> usize {
        self.in_ch * self.taps
    }

    fn weights(&self) -> usize {
        self.out_ch * self.patch_len()
    }
}

impl Conv {
    /// The batch's patches ((P · rows) x in_ch K) of x (rows x in_ch · L).
    fn im2col(&self, x: &[f64], rows: usize, patches: &mut [f64]) {
        let (p_n, k_n) = (self.positions, self.taps);
        for (q, column) in patches.chunks_exact_mut(p_n * rows).enumerate() {
            let (c, j) = (q / k_n, q % k_n);
            for (p, dst) in column.chunks_exact_mut(rows).enumerate() {
                match self.gather[p * k_n + j] {
                    Some(s) => {
                        let src = (c * self.in_len + s) * rows;
                        dst.copy_from_slice(&x[src..src + rows]);
                    }
                    None => dst.fill(0.0),
                }
            }
        }
    }

    /// out (+)= alpha · patches Wᵀ, W the weights read from `w` at the
    /// layer's offset: the convolution without its bias.
    fn product(
        &self,
        w: &[f64],
        patches: &[f64],
        rows: usize,
        out: &mut [f64],
        accumulate: bool,
        alpha: f64,
    ) {
        let p_rows = self.positions * rows;
        let wt = slice_view(
            &w[self.offset..self.offset + self.weights()],
            self.patch_len(),
            self.out_ch,
        );
        gemm(
            slice_view_mut(out, p_rows, self.out_ch),
            accumulate,
            slice_view(patches, p_rows, self.patch_len()),
            wt,
            alpha,
        );
    }

    /// out += b, b read from `w` after the weights (when the layer has one).
    fn add_bias_of(&self, w: &[f64], rows: usize, out: &mut [f64]) {
        if self.bias {
            let b = self.offset + self.weights();
            add_bias(out, self.positions * rows, &w[b..b + self.out_ch]);
        }
    }
}

/// The row-major multi-index of `flat` in `dims`.
fn unravel(mut flat: usize, dims: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for a in (0..dims.len()).rev() {
        idx[a] = flat % dims[a];
        flat /= dims[a];
    }
    idx
}

impl Layer for Conv {
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }
    fn n_params(&self) -> usize {
        self.weights() + if self.bias { self.out_ch } else { 0 }
    }
    fn init(&self, rng: &mut ChaCha20Rng, init_scale: f64, w: &mut Vec<f64>) {
        let std = init_scale / (self.patch_len() as f64).sqrt();
        w.extend(normal_vec(rng, self.weights(), std));
        if self.bias {
            w.extend(std::iter::repeat_n(0.0, self.out_ch));
        }
    }
    fn blocks(&self, slots: Slots) -> Vec<Block> {
        vec![Block::Explicit {
            offset: self.offset,
            jac: slots.explicit,
        }]
    }
    fn explicit_widths(&self) -> Vec<usize> {
        vec![self.n_params()]
    }
    /// The patches ((P · rows) x in_ch K) and their sensitivities
    /// ((P · rows · C) x in_ch K).
    fn scratch(&self, rows: usize, c: usize) -> Vec<(usize, usize)> {
        vec![
            (self.positions * rows, self.patch_len()),
            (self.positions * rows * c, self.patch_len()),
        ]
    }

    fn forward(&self, w: &[f64], io: Forward<'_>) {
        let rows = io.input.nrows();
        let patches = io.scratch[0].as_mut_slice();
        self.im2col(io.input.as_slice(), rows, patches);
        let out = io.output.as_mut_slice();
        self.product(w, patches, rows, out, false, 1.0);
        self.add_bias_of(w, rows, out);
    }

    /// With Patches linear in u: z' = P(u') W + P(u) ΔW + Δb and
    /// z'' = P(u'') W + 2 P(u') ΔW, through one patch buffer in turn.
    fn taylor(&self, w: &[f64], dw: &[f64], io: TaylorIo<'_>) {
        let rows = io.input.value.nrows();
        let patches = io.scratch[0].as_mut_slice();
        let (u, z) = (io.input, io.output);
        self.im2col(u.second.as_slice(), rows, patches);
        self.product(w, patches, rows, z.second.as_mut_slice(), false, 1.0);
        self.im2col(u.first.as_slice(), rows, patches);
        self.product(dw, patches, rows, z.second.as_mut_slice(), true, 2.0);
        self.product(w, patches, rows, z.first.as_mut_slice(), false, 1.0);
        self.im2col(u.value.as_slice(), rows, patches);
        self.product(dw, patches, rows, z.first.as_mut_slice(), true, 1.0);
        self.add_bias_of(dw, rows, z.first.as_mut_slice());
        self.product(w, patches, rows, z.value.as_mut_slice(), false, 1.0);
        self.add_bias_of(w, rows, z.value.as_mut_slice());
    }
    /// The patch matrix of the Taylor pass.
    fn taylor_scratch(&self, rows: usize) -> Vec<(usize, usize)> {
        vec![(self.positions * rows, self.patch_len())]
    }

    fn backward(&self, w: &[f64], io: Backward<'_>) {
        let (rows, c) = (io.input.nrows(), io.outputs);
        let rc = rows * c;
        let (p_n, k_n) = (self.positions, self.taps);
        let g = io.g_out.as_slice();
        let (patches, dpatches) = io.scratch.split_at_mut(1);
        if let Some(g_in) = io.g_in {
            let dp = dpatches[0].as_mut_slice();
            let wt = slice_view(
                &w[self.offset..self.offset + self.weights()],
                self.patch_len(),
                self.out_ch,
            );
            gemm(
                slice_view_mut(dp, p_n * rc, self.patch_len()),
                false,
                slice_view(g, p_n * rc, self.out_ch),
                wt.transpose(),
                1.0,
            );
            let g_in = g_in.as_mut_slice();
            g_in.fill(0.0);
            for (q, column) in dp.chunks_exact(p_n * rc).enumerate() {
                let (ch, j) = (q / k_n, q % k_n);
                for (p, src) in column.chunks_exact(rc).enumerate() {
                    if let Some(s) = self.gather[p * k_n + j] {
                        let dst = (ch * self.in_len + s) * rc;
                        add_assign(&mut g_in[dst..dst + rc], src);
                    }
                }
            }
        }
        let patches = patches[0].as_slice();
        let jac = io.explicit[0].as_mut_slice();
        jac.fill(0.0);
        let (weights, bias) = jac.split_at_mut(self.weights() * rc);
        for (oq, dst) in weights.chunks_exact_mut(rc).enumerate() {
            let (o, q) = (oq / self.patch_len(), oq % self.patch_len());
            for p in 0..p_n {
                let delta = &g[(o * p_n + p) * rc..(o * p_n + p + 1) * rc];
                let patch = &patches[(q * p_n + p) * rows..(q * p_n + p + 1) * rows];
                if c == 1 {
                    hadamard_accumulate(dst, delta, patch, 0.0);
                } else {
                    hadamard_accumulate_rows(dst, delta, patch, 0.0, c);
                }
            }
        }
        for (o, dst) in bias.chunks_exact_mut(rc).enumerate() {
            for p in 0..p_n {
                add_assign(dst, &g[(o * p_n + p) * rc..(o * p_n + p + 1) * rc]);
            }
        }
    }
}
