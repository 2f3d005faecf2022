//! Multilayer perceptron D -> h1 -> ... -> hk -> C (SPEC §3, §8), batched.
use super::taylor::{Jet, TaylorTape, activation_jet};
use super::{Block, Model, Tape};
use crate::activation::Activation;
use crate::spec::Parameterization;
use nalgebra::DMatrix;
use rand_chacha::ChaCha20Rng;

/// One dense layer z = scale · W u + b: the dense-layer routine of
/// `layers`, which mlp shares.
type Layer = super::layers::DenseMap;

/// A multilayer perceptron; `hidden: []` is the linear model.
#[derive(Clone, Debug)]
pub struct Mlp {
    dim: usize,
    layers: Vec<Layer>,
    activation: Activation,
    parameterization: Parameterization,
    init_scale: f64,
    blocks: Vec<Block>,
    n_params: usize,
}

impl Mlp {
    pub fn new(
        dim: usize,
        hidden: &[usize],
        outputs: usize,
        activation: Activation,
        bias: bool,
        parameterization: Parameterization,
        init_scale: f64,
    ) -> Mlp {
        let sizes: Vec<usize> = std::iter::once(dim)
            .chain(hidden.iter().copied())
            .chain([outputs])
            .collect();
        let mut layers = Vec::new();
        let mut blocks = Vec::new();
        let mut offset = 0;
        for (l, pair) in sizes.windows(2).enumerate() {
            let (fan_in, fan_out) = (pair[0], pair[1]);
            let scale = match parameterization {
                Parameterization::Standard => 1.0,
                Parameterization::Ntk => 1.0 / (fan_in as f64).sqrt(),
            };
            let layer = Layer::new(fan_in, fan_out, bias, offset, scale);
            blocks.extend(layer.blocks(l, l));
            offset += layer.n_params();
            layers.push(layer);
        }
        Mlp {
            dim,
            layers,
            activation,
            parameterization,
            init_scale,
            blocks,
            n_params: offset,
        }
    }

    /// The linear model f = V x + c, laid out as the one-layer mlp.
    pub fn linear(dim: usize, outputs: usize, init_scale: f64) -> Mlp {
        Mlp::new(
            dim,
            &[],
            outputs,
            Activation::Identity,
            true,
            Parameterization::Standard,
            init_scale,
        )
    }

    fn hidden_layers(&self) -> usize {
        self.layers.len() - 1
    }
}

impl Model for Mlp {
    fn n_params(&self) -> usize {
        self.n_params
    }
    fn input_dim(&self) -> usize {
        self.dim
    }
    fn outputs(&self) -> usize {
        self.layers[self.layers.len() - 1].fan_out
    }
    fn blocks(&self) -> &[Block] {
        &self.blocks
    }
    fn is_smooth(&self) -> bool {
        self.hidden_layers() == 0 || self.activation.is_smooth()
    }

    /// inputs: x, u_1..u_{k}; deltas: δ_1..δ_{k+1}; scratch: z_1..z_k, then σ'(z_1)..σ'(z_k).
    fn tape(&self, x: &DMatrix<f64>) -> Tape {
        let rows = x.nrows();
        let hidden: Vec<usize> = self.layers[..self.hidden_layers()]
            .iter()
            .map(|l| l.fan_out)
            .collect();
        let inputs = std::iter::once(x.clone())
            .chain(hidden.iter().map(|&h| DMatrix::zeros(rows, h)))
            .collect();
        let c = self.outputs();
        let deltas = self
            .layers
            .iter()
            .map(|l| DMatrix::zeros(rows * c, l.fan_out))
            .collect();
        let scratch = hidden
            .iter()
            .chain(hidden.iter())
            .map(|&h| DMatrix::zeros(rows, h))
            .collect();
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
        let k = self.hidden_layers();
        for (l, layer) in self.layers.iter().enumerate() {
            let (before, after) = tape.inputs.split_at_mut(l + 1);
            let z: &mut [f64] = if l < k {
                tape.scratch[l].as_mut_slice()
            } else {
                tape.output.as_mut_slice()
            };
            layer.forward(w, &before[l], z);
            if l < k {
                let (pre, dact) = tape.scratch.split_at_mut(k);
                self.activation.apply_slices(
                    pre[l].as_slice(),
                    after[0].as_mut_slice(),
                    dact[l].as_mut_slice(),
                );
                if let Some(locks) = tape.locks.get(l) {
                    crate::kinks::lock_activation(
                        self.activation,
                        locks,
                        pre[l].as_slice(),
                        after[0].as_mut_slice(),
                        dact[l].as_mut_slice(),
                    );
                }
            }
        }
    }

    fn backward(&self, w: &[f64], tape: &mut Tape) {
        let k = self.hidden_layers();
        Tape::seed_outputs(&mut tape.deltas[k]);
        for l in (1..=k).rev() {
            let layer = &self.layers[l];
            let (lower, upper) = tape.deltas.split_at_mut(l);
            layer.backward(w, &upper[0], &mut lower[l - 1]);
            crate::vecmath::multiply_assign_rows(
                lower[l - 1].as_mut_slice(),
                tape.scratch[k + l - 1].as_slice(),
                tape.output.nrows(),
                self.outputs(),
            );
        }
    }

    fn init(&self, rng: &mut ChaCha20Rng) -> Vec<f64> {
        let mut w = Vec::with_capacity(self.n_params);
        for layer in &self.layers {
            let std = match self.parameterization {
                Parameterization::Standard => self.init_scale / (layer.fan_in as f64).sqrt(),
                Parameterization::Ntk => self.init_scale,
            };
            layer.init(rng, std, &mut w);
        }
        w
    }

    fn unit_delta(&self) -> Option<usize> {
        Some(self.hidden_layers())
    }

    /// jets: x, then z_l and u_l for each hidden layer, then the output.
    fn taylor_tape(&self, x: &DMatrix<f64>) -> TaylorTape {
        let rows = x.nrows();
        let mut jets = vec![Jet::constant(x)];
        for layer in &self.layers[..self.hidden_layers()] {
            jets.push(Jet::zeros(rows, layer.fan_out));
            jets.push(Jet::zeros(rows, layer.fan_out));
        }
        jets.push(Jet::zeros(rows, self.outputs()));
        TaylorTape {
            jets,
            scratch: Vec::new(),
        }
    }

    fn taylor(&self, w: &[f64], dw: &[f64], tape: &mut TaylorTape) {
        let k = self.hidden_layers();
        for (l, layer) in self.layers.iter().enumerate() {
            let (before, after) = tape.jets.split_at_mut(2 * l + 1);
            layer.taylor(w, dw, &before[2 * l], &mut after[0]);
            if l < k {
                let (z, u) = after.split_at_mut(1);
                activation_jet(self.activation, &z[0], &mut u[0]);
            }
        }
    }

    fn kink_preactivations<'t>(&self, tape: &'t Tape) -> Vec<&'t DMatrix<f64>> {
        if self.is_smooth() {
            Vec::new()
        } else {
            tape.scratch[..self.hidden_layers()].iter().collect()
        }
    }

    /// z_l is jet 2 l + 1 (see `taylor_tape`).
    fn kink_jet<'t>(&self, tape: &'t TaylorTape, l: usize) -> Option<&'t Jet> {
        (!self.is_smooth() && l < self.hidden_layers()).then(|| &tape.jets[2 * l + 1])
    }
}
