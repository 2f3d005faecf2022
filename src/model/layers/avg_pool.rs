//! avg_pool {size}: the mean over non-overlapping size^d windows of every
//! channel, along every spatial axis; a remainder that fills no window is
//! dropped (SPEC §10).
use super::{Backward, Forward, Layer, LayerError, TaylorIo};
use crate::vecmath::{add_assign, scaled_copy};

#[derive(Debug)]
pub(crate) struct AvgPool {
    channels: usize,
    in_len: usize,
    /// The input positions of each output position's window, size^d per
    /// output position (row-major over the spatial axes).
    windows: Vec<usize>,
    window: usize,
    positions: usize,
    shape: Vec<usize>,
}

impl AvgPool {
    pub fn new(input: &[usize], size: usize) -> Result<AvgPool, LayerError> {
        if input.len() < 2 {
            return Err((
                "kind",
                format!(
                    "avg_pool needs an input with channels and spatial axes, found shape \
                     {input:?}"
                ),
            ));
        }
        if size == 0 {
            return Err(("size", "found 0, allowed: a whole number >= 1".to_owned()));
        }
        let spatial = &input[1..];
        if let Some(&len) = spatial.iter().find(|&&len| len < size) {
            return Err((
                "size",
                format!(
                    "found {size}, a window past the edge of its input of shape {input:?} \
                     (an axis of length {len}); allowed: at most {}",
                    spatial.iter().min().copied().unwrap_or(0)
                ),
            ));
        }
        let out: Vec<usize> = spatial.iter().map(|&len| len / size).collect();
        let positions: usize = out.iter().product();
        let d = spatial.len();
        let window = size.pow(d as u32);
        let mut windows = Vec::with_capacity(positions * window);
        for p in 0..positions {
            for j in 0..window {
                let (mut pf, mut jf) = (p, j);
                let mut idx = vec![0; d];
                for a in (0..d).rev() {
                    idx[a] = (pf % out[a]) * size + jf % size;
                    pf /= out[a];
                    jf /= size;
                }
                let flat = idx
                    .iter()
                    .zip(spatial)
                    .fold(0, |flat, (&i, &len)| flat * len + i);
                windows.push(flat);
            }
        }
        let mut shape = vec![input[0]];
        shape.extend(&out);
        Ok(AvgPool {
            channels: input[0],
            in_len: spatial.iter().product(),
            windows,
            window,
            positions,
            shape,
        })
    }
}

impl Layer for AvgPool {
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }
    fn forward(&self, _w: &[f64], io: Forward<'_>) {
        let rows = io.input.nrows();
        let x = io.input.as_slice();
        let out = io.output.as_mut_slice();
        let scale = 1.0 / self.window as f64;
        for ch in 0..self.channels {
            for p in 0..self.positions {
                let dst = &mut out[(ch * self.positions + p) * rows..][..rows];
                dst.fill(0.0);
                for &s in &self.windows[p * self.window..(p + 1) * self.window] {
                    add_assign(dst, &x[(ch * self.in_len + s) * rows..][..rows]);
                }
                dst.iter_mut().for_each(|v| *v *= scale);
            }
        }
    }
    fn backward(&self, _w: &[f64], io: Backward<'_>) {
        let Some(g_in) = io.g_in else { return };
        let rc = io.g_out.nrows();
        let g = io.g_out.as_slice();
        let g_in = g_in.as_mut_slice();
        g_in.fill(0.0);
        let scale = 1.0 / self.window as f64;
        for ch in 0..self.channels {
            for p in 0..self.positions {
                let src = &g[(ch * self.positions + p) * rc..][..rc];
                for &s in &self.windows[p * self.window..(p + 1) * self.window] {
                    scaled_copy(&mut g_in[(ch * self.in_len + s) * rc..][..rc], src, scale);
                }
            }
        }
    }
    /// Linear without parameters: each part of the jet is pooled alike.
    fn taylor(&self, w: &[f64], _dw: &[f64], io: TaylorIo<'_>) {
        for (output, input) in io.output.parts_mut().into_iter().zip(io.input.parts()) {
            self.forward(
                w,
                Forward {
                    input,
                    output,
                    scratch: &mut [],
                },
            );
        }
    }
}
