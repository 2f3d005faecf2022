//! Residual MLP (SPEC §3, §8): u_0 = W_in x + b_in; per block
//! u <- u + W_2 σ(W_1 u + b_1) + b_2; f = W_out u + b_out (C outputs).
use super::layers::DenseMap;
use super::taylor::{Jet, TaylorTape, activation_jet};
use super::{Block, Model, Tape, add_bias, normal_vec};
use crate::activation::Activation;
use crate::linalg::{gemm, slice_view, slice_view_mut, view, view_mut};
use nalgebra::DMatrix;
use rand_chacha::ChaCha20Rng;

/// Tape indices. inputs: x = 0, u_k = 1 + 2k, a_k = σ(h_k) = 2 + 2k.
/// deltas: ∂f/∂u_k = 2k, ∂f/∂h_k = 2k + 1, and the output's δ = 1 at 2B + 1.
/// scratch: h_k = k, σ'(h_k) = B + k.
#[derive(Clone, Debug)]
pub struct ResMlp {
    dim: usize,
    width: usize,
    n_blocks: usize,
    outputs: usize,
    activation: Activation,
    init_scale: f64,
    blocks: Vec<Block>,
    n_params: usize,
}

impl ResMlp {
    pub fn new(
        dim: usize,
        width: usize,
        n_blocks: usize,
        outputs: usize,
        activation: Activation,
        init_scale: f64,
    ) -> ResMlp {
        let mut blocks = Vec::new();
        let mut offset = 0;
        let mut dense =
            |input: usize, delta: usize, fan_in: usize, fan_out: usize, blocks: &mut Vec<Block>| {
                blocks.push(Block::Dense {
                    offset,
                    input,
                    delta,
                    scale: 1.0,
                });
                blocks.push(Block::Bias {
                    offset: offset + fan_in * fan_out,
                    delta,
                });
                offset += fan_in * fan_out + fan_out;
            };
        dense(0, 0, dim, width, &mut blocks);
        for k in 0..n_blocks {
            dense(1 + 2 * k, 2 * k + 1, width, width, &mut blocks);
            dense(2 + 2 * k, 2 * k + 2, width, width, &mut blocks);
        }
        dense(
            1 + 2 * n_blocks,
            2 * n_blocks + 1,
            width,
            outputs,
            &mut blocks,
        );
        ResMlp {
            dim,
            width,
            n_blocks,
            outputs,
            activation,
            init_scale,
            blocks,
            n_params: offset,
        }
    }

    /// (Wᵀ view, bias slice) of the dense layer whose Dense block is `blocks[2 j]`.
    fn layer<'w>(
        &self,
        w: &'w [f64],
        j: usize,
        fan_in: usize,
        fan_out: usize,
    ) -> (faer::MatRef<'w, f64>, &'w [f64]) {
        let Block::Dense { offset, .. } = self.blocks[2 * j] else {
            unreachable!("blocks alternate dense, bias")
        };
        let wt = slice_view(&w[offset..offset + fan_in * fan_out], fan_in, fan_out);
        (
            wt,
            &w[offset + fan_in * fan_out..offset + fan_in * fan_out + fan_out],
        )
    }
}

impl ResMlp {
    /// The dense layer whose Dense block is `blocks[2 j]`, as a map.
    fn map(&self, j: usize, fan_in: usize, fan_out: usize) -> DenseMap {
        let Block::Dense { offset, .. } = self.blocks[2 * j] else {
            unreachable!("blocks alternate dense, bias")
        };
        DenseMap::new(fan_in, fan_out, true, offset, 1.0)
    }
}

impl Model for ResMlp {
    fn n_params(&self) -> usize {
        self.n_params
    }
    fn input_dim(&self) -> usize {
        self.dim
    }
    fn outputs(&self) -> usize {
        self.outputs
    }
    fn blocks(&self) -> &[Block] {
        &self.blocks
    }
    fn is_smooth(&self) -> bool {
        self.n_blocks == 0 || self.activation.is_smooth()
    }

    fn tape(&self, x: &DMatrix<f64>) -> Tape {
        let (rows, w, b, c) = (x.nrows(), self.width, self.n_blocks, self.outputs);
        let wide = || DMatrix::zeros(rows, w);
        let inputs = std::iter::once(x.clone())
            .chain((0..2 * b + 1).map(|_| wide()))
            .collect();
        let deltas = (0..2 * b + 1)
            .map(|_| DMatrix::zeros(rows * c, w))
            .chain([DMatrix::zeros(rows * c, c)])
            .collect();
        let scratch = (0..2 * b).map(|_| wide()).collect();
        Tape {
            output: DMatrix::zeros(rows, c),
            inputs,
            deltas,
            explicit: Vec::new(),
            scratch,
            locks: Vec::new(),
        }
    }

    fn forward(&self, w: &[f64], tape: &mut Tape) {
        let (rows, width, nb) = (tape.rows(), self.width, self.n_blocks);
        let (w_in, b_in) = self.layer(w, 0, self.dim, width);
        {
            let (x, rest) = tape.inputs.split_at_mut(1);
            gemm(view_mut(&mut rest[0]), false, view(&x[0]), w_in, 1.0);
            add_bias(rest[0].as_mut_slice(), rows, b_in);
        }
        for k in 0..nb {
            let (w1, b1) = self.layer(w, 1 + 2 * k, width, width);
            let (w2, b2) = self.layer(w, 2 + 2 * k, width, width);
            let (done, todo) = tape.inputs.split_at_mut(2 + 2 * k);
            let u = &done[1 + 2 * k];
            let (pre, dact) = tape.scratch.split_at_mut(nb);
            gemm(view_mut(&mut pre[k]), false, view(u), w1, 1.0);
            add_bias(pre[k].as_mut_slice(), rows, b1);
            let (a, next) = todo.split_at_mut(1);
            self.activation.apply_slices(
                pre[k].as_slice(),
                a[0].as_mut_slice(),
                dact[k].as_mut_slice(),
            );
            if let Some(locks) = tape.locks.get(k) {
                crate::kinks::lock_activation(
                    self.activation,
                    locks,
                    pre[k].as_slice(),
                    a[0].as_mut_slice(),
                    dact[k].as_mut_slice(),
                );
            }
            next[0].copy_from(u);
            gemm(view_mut(&mut next[0]), true, view(&a[0]), w2, 1.0);
            add_bias(next[0].as_mut_slice(), rows, b2);
        }
        let (w_out, b_out) = self.layer(w, 1 + 2 * nb, width, self.outputs);
        let out = slice_view_mut(tape.output.as_mut_slice(), rows, self.outputs);
        gemm(out, false, view(&tape.inputs[1 + 2 * nb]), w_out, 1.0);
        add_bias(tape.output.as_mut_slice(), rows, b_out);
    }

    fn backward(&self, w: &[f64], tape: &mut Tape) {
        let (width, nb) = (self.width, self.n_blocks);
        let (w_out, _) = self.layer(w, 1 + 2 * nb, width, self.outputs);
        let (lower, top) = tape.deltas.split_at_mut(2 * nb + 1);
        Tape::seed_outputs(&mut top[0]);
        gemm(
            view_mut(&mut lower[2 * nb]),
            false,
            view(&top[0]),
            w_out.transpose(),
            1.0,
        );
        for k in (0..nb).rev() {
            let (w1, _) = self.layer(w, 1 + 2 * k, width, width);
            let (w2, _) = self.layer(w, 2 + 2 * k, width, width);
            let (below, above) = lower.split_at_mut(2 * k + 2);
            let g_next = &above[0];
            let (g_u, dh) = below.split_at_mut(2 * k + 1);
            gemm(
                view_mut(&mut dh[0]),
                false,
                view(g_next),
                w2.transpose(),
                1.0,
            );
            crate::vecmath::multiply_assign_rows(
                dh[0].as_mut_slice(),
                tape.scratch[nb + k].as_slice(),
                tape.output.nrows(),
                self.outputs,
            );
            g_u[2 * k].copy_from(g_next);
            gemm(
                view_mut(&mut g_u[2 * k]),
                true,
                view(&dh[0]),
                w1.transpose(),
                1.0,
            );
        }
    }

    fn init(&self, rng: &mut ChaCha20Rng) -> Vec<f64> {
        let mut w = Vec::with_capacity(self.n_params);
        let mut dense = |w: &mut Vec<f64>, fan_in: usize, fan_out: usize| {
            w.extend(normal_vec(
                rng,
                fan_in * fan_out,
                self.init_scale / (fan_in as f64).sqrt(),
            ));
            w.extend(std::iter::repeat_n(0.0, fan_out));
        };
        dense(&mut w, self.dim, self.width);
        for _ in 0..2 * self.n_blocks {
            dense(&mut w, self.width, self.width);
        }
        dense(&mut w, self.width, self.outputs);
        w
    }

    fn unit_delta(&self) -> Option<usize> {
        Some(2 * self.n_blocks + 1)
    }

    /// jets: x, u_0, then h_k, a_k, u_{k+1} per block, then the output.
    fn taylor_tape(&self, x: &DMatrix<f64>) -> TaylorTape {
        let rows = x.nrows();
        let jets = std::iter::once(Jet::constant(x))
            .chain((0..1 + 3 * self.n_blocks).map(|_| Jet::zeros(rows, self.width)))
            .chain([Jet::zeros(rows, self.outputs)])
            .collect();
        TaylorTape {
            jets,
            scratch: Vec::new(),
        }
    }

    fn taylor(&self, w: &[f64], dw: &[f64], tape: &mut TaylorTape) {
        let (width, nb) = (self.width, self.n_blocks);
        let jets = &mut tape.jets;
        {
            let (x, rest) = jets.split_at_mut(1);
            self.map(0, self.dim, width)
                .taylor(w, dw, &x[0], &mut rest[0]);
        }
        for k in 0..nb {
            let (done, todo) = jets.split_at_mut(2 + 3 * k);
            let u = &done[1 + 3 * k];
            let [h, a, next, ..] = todo else {
                unreachable!("three jets per block")
            };
            self.map(1 + 2 * k, width, width).taylor(w, dw, u, h);
            activation_jet(self.activation, h, a);
            self.map(2 + 2 * k, width, width).taylor(w, dw, a, next);
            next.add_assign(u);
        }
        let (done, out) = jets.split_at_mut(2 + 3 * nb);
        self.map(1 + 2 * nb, width, self.outputs)
            .taylor(w, dw, &done[1 + 3 * nb], &mut out[0]);
    }

    fn kink_preactivations<'t>(&self, tape: &'t Tape) -> Vec<&'t DMatrix<f64>> {
        if self.is_smooth() {
            Vec::new()
        } else {
            tape.scratch[..self.n_blocks].iter().collect()
        }
    }

    /// h_k, block k's pre-activation, is jet 2 + 3 k (see `taylor_tape`).
    fn kink_jet<'t>(&self, tape: &'t TaylorTape, l: usize) -> Option<&'t Jet> {
        (!self.is_smooth() && l < self.n_blocks).then(|| &tape.jets[2 + 3 * l])
    }
}
