//! dense {units, bias}: z = scale · W u + b, W (out, in) row-major then b.
//! [`DenseMap`] is the one dense-layer routine, shared with `crate::model::Mlp`.
use super::{Backward, Forward, Layer, LayerError, Slots, TaylorIo};
use crate::linalg::{gemm, slice_view, slice_view_mut, view, view_mut};
use crate::model::taylor::Jet;
use crate::model::{Block, add_bias, normal_vec};
use nalgebra::DMatrix;
use rand_chacha::ChaCha20Rng;

/// A dense map z = scale · W u + b, W of shape (out, in) at `offset` in w,
/// b (if any) at `bias_offset`.
#[derive(Clone, Debug)]
pub(crate) struct DenseMap {
    pub fan_in: usize,
    pub fan_out: usize,
    pub offset: usize,
    pub bias_offset: Option<usize>,
    pub scale: f64,
}

impl DenseMap {
    /// The map with W at `offset` and b right after it when `bias`.
    pub fn new(fan_in: usize, fan_out: usize, bias: bool, offset: usize, scale: f64) -> DenseMap {
        DenseMap {
            fan_in,
            fan_out,
            offset,
            bias_offset: bias.then_some(offset + fan_in * fan_out),
            scale,
        }
    }

    /// Its number of parameters.
    pub fn n_params(&self) -> usize {
        self.fan_in * self.fan_out
            + if self.bias_offset.is_some() {
                self.fan_out
            } else {
                0
            }
    }

    /// Wᵀ as an (in x out) column-major view: the row-major W read as is.
    pub fn weights_t<'w>(&self, w: &'w [f64]) -> faer::MatRef<'w, f64> {
        slice_view(
            &w[self.offset..self.offset + self.fan_in * self.fan_out],
            self.fan_in,
            self.fan_out,
        )
    }

    /// z = scale · W u + b for the batch u (rows x in), z column-major rows x out.
    pub fn forward(&self, w: &[f64], u: &DMatrix<f64>, z: &mut [f64]) {
        let rows = u.nrows();
        gemm(
            slice_view_mut(z, rows, self.fan_out),
            false,
            view(u),
            self.weights_t(w),
            self.scale,
        );
        if let Some(b) = self.bias_offset {
            add_bias(z, rows, &w[b..b + self.fan_out]);
        }
    }

    /// below = scale · δ W: the sensitivity of the input from the output's.
    pub fn backward(&self, w: &[f64], delta: &DMatrix<f64>, below: &mut DMatrix<f64>) {
        gemm(
            view_mut(below),
            false,
            view(delta),
            self.weights_t(w).transpose(),
            self.scale,
        );
    }

    /// The Taylor pass (`crate::model::taylor`) from the input's jet u:
    /// z = s W u + b, z' = s (ΔW u + W u') + Δb, z'' = s (2 ΔW u' + W u'').
    pub fn taylor(&self, w: &[f64], dw: &[f64], u: &Jet, z: &mut Jet) {
        let rows = u.value.nrows();
        let (wt, dwt) = (self.weights_t(w), self.weights_t(dw));
        self.forward(w, &u.value, z.value.as_mut_slice());
        gemm(
            view_mut(&mut z.first),
            false,
            view(&u.first),
            wt,
            self.scale,
        );
        gemm(
            view_mut(&mut z.first),
            true,
            view(&u.value),
            dwt,
            self.scale,
        );
        if let Some(b) = self.bias_offset {
            add_bias(z.first.as_mut_slice(), rows, &dw[b..b + self.fan_out]);
        }
        gemm(
            view_mut(&mut z.second),
            false,
            view(&u.second),
            wt,
            self.scale,
        );
        gemm(
            view_mut(&mut z.second),
            true,
            view(&u.first),
            dwt,
            2.0 * self.scale,
        );
    }

    /// Its Dense block (and Bias block) for the input and δ at these tape indices.
    pub fn blocks(&self, input: usize, delta: usize) -> Vec<Block> {
        let mut blocks = vec![Block::Dense {
            offset: self.offset,
            input,
            delta,
            scale: self.scale,
        }];
        if let Some(offset) = self.bias_offset {
            blocks.push(Block::Bias { offset, delta });
        }
        blocks
    }

    /// Appends W ~ Normal(0, std²) and b = 0.
    pub fn init(&self, rng: &mut ChaCha20Rng, std: f64, w: &mut Vec<f64>) {
        w.extend(normal_vec(rng, self.fan_in * self.fan_out, std));
        if self.bias_offset.is_some() {
            w.extend(std::iter::repeat_n(0.0, self.fan_out));
        }
    }
}

/// The dense layer of SPEC §10 (standard parameterization).
#[derive(Debug)]
pub(crate) struct Dense {
    map: DenseMap,
    shape: [usize; 1],
}

impl Dense {
    pub fn new(
        input: &[usize],
        units: usize,
        bias: bool,
        offset: usize,
    ) -> Result<Dense, LayerError> {
        if input.len() != 1 {
            return Err((
                "kind",
                format!(
                    "a dense layer needs a flat input, found shape {input:?}; allowed: a \
                     flatten layer before it"
                ),
            ));
        }
        if units == 0 {
            return Err(("units", "found 0, allowed: a whole number >= 1".to_owned()));
        }
        Ok(Dense {
            map: DenseMap::new(input[0], units, bias, offset, 1.0),
            shape: [units],
        })
    }
}

impl Layer for Dense {
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }
    fn n_params(&self) -> usize {
        self.map.n_params()
    }
    fn init(&self, rng: &mut ChaCha20Rng, init_scale: f64, w: &mut Vec<f64>) {
        self.map
            .init(rng, init_scale / (self.map.fan_in as f64).sqrt(), w);
    }
    fn blocks(&self, slots: Slots) -> Vec<Block> {
        self.map.blocks(slots.input, slots.delta)
    }
    fn forward(&self, w: &[f64], io: Forward<'_>) {
        self.map.forward(w, io.input, io.output.as_mut_slice());
    }
    fn backward(&self, w: &[f64], io: Backward<'_>) {
        if let Some(g_in) = io.g_in {
            self.map.backward(w, io.g_out, g_in);
        }
    }
    fn taylor(&self, w: &[f64], dw: &[f64], io: TaylorIo<'_>) {
        self.map.taylor(w, dw, io.input, io.output);
    }
}
