//! activation {name}: u = σ(z) elementwise (SPEC §3's activations).
use super::{Backward, Forward, Layer, TaylorIo};
use crate::activation::Activation;

#[derive(Debug)]
pub(crate) struct Act {
    activation: Activation,
    shape: Vec<usize>,
}

impl Act {
    pub fn new(input: &[usize], activation: Activation) -> Act {
        Act {
            activation,
            shape: input.to_vec(),
        }
    }
}

impl Layer for Act {
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }
    /// σ'(z), rows x features.
    fn scratch(&self, rows: usize, _c: usize) -> Vec<(usize, usize)> {
        vec![(rows, self.shape.iter().product())]
    }
    fn forward(&self, _w: &[f64], io: Forward<'_>) {
        self.activation.apply_slices(
            io.input.as_slice(),
            io.output.as_mut_slice(),
            io.scratch[0].as_mut_slice(),
        );
    }
    fn backward(&self, _w: &[f64], io: Backward<'_>) {
        if let Some(g_in) = io.g_in {
            g_in.copy_from(io.g_out);
            crate::vecmath::multiply_assign_rows(
                g_in.as_mut_slice(),
                io.scratch[0].as_slice(),
                io.input.nrows(),
                io.outputs,
            );
        }
    }
    fn taylor(&self, _w: &[f64], _dw: &[f64], io: TaylorIo<'_>) {
        crate::model::taylor::activation_jet(self.activation, io.input, io.output);
    }
    fn is_kinked(&self) -> bool {
        !self.activation.is_smooth()
    }
    fn kink_activation(&self) -> Option<Activation> {
        self.is_kinked().then_some(self.activation)
    }
}
