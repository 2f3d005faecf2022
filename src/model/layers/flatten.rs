//! flatten: the features in row-major order (channel, height, width), which
//! is how every value is already stored, so this layer only copies.
use super::{Backward, Forward, Layer, TaylorIo};

#[derive(Debug)]
pub(crate) struct Flatten {
    shape: [usize; 1],
}

impl Flatten {
    pub fn new(input: &[usize]) -> Flatten {
        Flatten {
            shape: [input.iter().product()],
        }
    }
}

impl Layer for Flatten {
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }
    fn forward(&self, _w: &[f64], io: Forward<'_>) {
        io.output.copy_from(io.input);
    }
    fn backward(&self, _w: &[f64], io: Backward<'_>) {
        if let Some(g_in) = io.g_in {
            g_in.copy_from(io.g_out);
        }
    }
    /// Linear without parameters: each part of the jet is flattened alike.
    fn taylor(&self, _w: &[f64], _dw: &[f64], io: TaylorIo<'_>) {
        for (o, i) in io.output.parts_mut().into_iter().zip(io.input.parts()) {
            o.copy_from(i);
        }
    }
}
