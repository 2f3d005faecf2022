//! Layered models (SPEC §10): a list of layers, each one file implementing
//! [`Layer`], chained by [`Layered`].
//!
//! Every value between layers is a column-major rows x features matrix with
//! the features in SPEC's row-major order (channel, then height, then
//! width), so that flatten moves nothing and a rows x (channels · P) map is
//! also the (P · rows) x channels matrix a convolution's one product writes
//! (row p rows + r). The sensitivities ∂f_c/∂(output of layer l) are
//! (rows · C) x features, row r C + c, as everywhere in `crate::model`.
//!
//! Tape: `inputs[l]` is the input of layer l (`inputs[0]` the batch);
//! `deltas[l]` the sensitivity of layer l's output (the last one the unit
//! seed); `explicit` the Jacobian rows of parameters without dense
//! structure (convolutions, layer norm); `scratch` each layer's own buffers.
//! A new layer kind is a file here and one arm in [`build`].
mod activation;
mod avg_pool;
mod conv;
mod dense;
mod flatten;
mod layer_norm;

pub(crate) use dense::DenseMap;

use super::taylor::{Jet, TaylorTape};
use super::{Block, Model, Tape};
use crate::error::InputError;
use crate::spec::{LayerSpec, ModelSpec};
use nalgebra::DMatrix;
use rand_chacha::ChaCha20Rng;

/// The shape of one example's features: [channels, spatial...] or [features].
pub(crate) type Shape = Vec<usize>;

/// A spec problem in one layer: the field and what is wrong.
pub(crate) type LayerError = (&'static str, String);

/// Where a layer's parameters and buffers sit in the model and on the tape.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slots {
    /// Index of its input in `tape.inputs` (its own index l).
    pub input: usize,
    /// Index of its output's sensitivity in `tape.deltas` (also l).
    pub delta: usize,
    /// Index of its first explicit Jacobian block in `tape.explicit`.
    pub explicit: usize,
}

/// One layer's view of the tape in the forward pass.
pub(crate) struct Forward<'a> {
    /// rows x input features.
    pub input: &'a DMatrix<f64>,
    /// rows x output features.
    pub output: &'a mut DMatrix<f64>,
    pub scratch: &'a mut [DMatrix<f64>],
}

/// One layer's view of the tape in the backward pass.
pub(crate) struct Backward<'a> {
    pub input: &'a DMatrix<f64>,
    /// ∂f/∂(output), (rows · C) x output features.
    pub g_out: &'a DMatrix<f64>,
    /// ∂f/∂(input) to write, when a layer below has parameters.
    pub g_in: Option<&'a mut DMatrix<f64>>,
    pub scratch: &'a mut [DMatrix<f64>],
    /// Its explicit Jacobian blocks to write ((rows · C) x width each).
    pub explicit: &'a mut [DMatrix<f64>],
    /// C.
    pub outputs: usize,
}

/// One layer's view of the Taylor tape (`crate::model::taylor`).
pub(crate) struct TaylorIo<'a> {
    /// The input's jet, rows x input features.
    pub input: &'a Jet,
    /// The output's jet to write, rows x output features.
    pub output: &'a mut Jet,
    /// Its buffers of [`Layer::taylor_scratch`].
    pub scratch: &'a mut [DMatrix<f64>],
}

/// One kind of layer. Parameters are addressed in the whole w, at the
/// offset the layer was built with.
pub(crate) trait Layer: Send + Sync + std::fmt::Debug {
    /// The shape of its output for one example.
    fn output_shape(&self) -> &[usize];
    /// Its number of parameters.
    fn n_params(&self) -> usize {
        0
    }
    /// Appends its initial parameters (SPEC §10) to `w`, drawing from `rng`.
    fn init(&self, _rng: &mut ChaCha20Rng, _init_scale: f64, _w: &mut Vec<f64>) {}
    /// How its parameters enter the Jacobian, in parameter order.
    fn blocks(&self, _slots: Slots) -> Vec<Block> {
        Vec::new()
    }
    /// The widths of the explicit Jacobian blocks it fills.
    fn explicit_widths(&self) -> Vec<usize> {
        Vec::new()
    }
    /// The (rows, cols) of its scratch matrices for a batch of `rows` with C outputs.
    fn scratch(&self, _rows: usize, _c: usize) -> Vec<(usize, usize)> {
        Vec::new()
    }
    fn forward(&self, w: &[f64], io: Forward<'_>);
    /// Writes `g_in` (if asked) and its explicit blocks from `g_out`.
    fn backward(&self, w: &[f64], io: Backward<'_>);
    /// The (rows, cols) of its Taylor-pass buffers for a batch of `rows`.
    fn taylor_scratch(&self, _rows: usize) -> Vec<(usize, usize)> {
        Vec::new()
    }
    /// Its output's jet along the direction `dw` from its input's jet.
    fn taylor(&self, w: &[f64], dw: &[f64], io: TaylorIo<'_>);
    /// True when f is not smooth in its input (relu-type activations).
    /// The activation of a kinked activation layer (relu-type), else None.
    fn kink_activation(&self) -> Option<crate::activation::Activation> {
        None
    }
    fn is_kinked(&self) -> bool {
        false
    }
}

/// The layer a spec entry describes, for inputs of `shape`, its parameters
/// at `offset`: the one match over layer kinds.
fn build(spec: &LayerSpec, shape: &[usize], offset: usize) -> Result<Box<dyn Layer>, LayerError> {
    Ok(match *spec {
        LayerSpec::Dense { units, bias } => {
            Box::new(dense::Dense::new(shape, units, bias, offset)?)
        }
        LayerSpec::Conv1d {
            channels,
            kernel,
            stride,
            padding,
            bias,
        } => Box::new(conv::Conv::new(
            1, shape, channels, kernel, stride, padding, bias, offset,
        )?),
        LayerSpec::Conv2d {
            channels,
            kernel,
            stride,
            padding,
            bias,
        } => Box::new(conv::Conv::new(
            2, shape, channels, kernel, stride, padding, bias, offset,
        )?),
        LayerSpec::Activation { name } => Box::new(activation::Act::new(shape, name)),
        LayerSpec::AvgPool { size } => Box::new(avg_pool::AvgPool::new(shape, size)?),
        LayerSpec::Flatten {} => Box::new(flatten::Flatten::new(shape)),
        LayerSpec::LayerNorm { eps, affine } => {
            Box::new(layer_norm::LayerNorm::new(shape, eps, affine, offset)?)
        }
    })
}

/// A model made of layers (SPEC §10).
#[derive(Debug)]
pub struct Layered {
    dim: usize,
    outputs: usize,
    init_scale: f64,
    layers: Vec<Box<dyn Layer>>,
    /// Index of each layer's first scratch matrix and explicit block.
    scratch_at: Vec<usize>,
    explicit_at: Vec<usize>,
    /// Index of each layer's first Taylor-pass buffer.
    taylor_at: Vec<usize>,
    /// The first layer with parameters: sensitivities below it are not formed.
    first_param: usize,
    blocks: Vec<Block>,
    n_params: usize,
}

impl Layered {
    /// The model of a `layers` spec for inputs of dimension `dim`, or the
    /// spec's first problem, naming the field (`model.layers[2].kernel`).
    pub fn from_spec(spec: &ModelSpec, dim: usize) -> Result<Layered, InputError> {
        let ModelSpec::Layers {
            input_shape,
            layers,
            init_scale,
            outputs,
        } = spec
        else {
            panic!("Layered::from_spec needs a `layers` spec");
        };
        let features: usize = input_shape.iter().product();
        if input_shape.is_empty() || input_shape.contains(&0) {
            return Err(InputError::new(
                "model.input_shape",
                format!(
                    "found {input_shape:?}, allowed: 1 to 3 whole numbers >= 1 \
                     ([D], [channels, length] or [channels, height, width])"
                ),
            ));
        }
        if input_shape.len() > 3 {
            return Err(InputError::new(
                "model.input_shape",
                format!("found {} dimensions, allowed: 1 to 3", input_shape.len()),
            ));
        }
        if features != dim {
            return Err(InputError::new(
                "model.input_shape",
                format!(
                    "found {input_shape:?}, whose product {features} is not the data's D = {dim} \
                     inputs per row; allowed: a shape with D features"
                ),
            ));
        }
        let mut built: Vec<Box<dyn Layer>> = Vec::new();
        let mut shape: Shape = input_shape.clone();
        let mut offset = 0;
        for (i, spec) in layers.iter().enumerate() {
            let layer = build(spec, &shape, offset).map_err(|(field, why)| {
                InputError::new(format!("model.layers[{i}].{field}"), why)
            })?;
            offset += layer.n_params();
            shape = layer.output_shape().to_vec();
            built.push(layer);
        }
        match layers.last() {
            Some(LayerSpec::Dense { units, .. }) if units == outputs => {}
            Some(LayerSpec::Dense { units, .. }) => {
                return Err(InputError::new(
                    format!("model.layers[{}].units", layers.len() - 1),
                    format!(
                        "found {units}, but the last layer must be dense with `outputs` = \
                         {outputs} units (SPEC §10)"
                    ),
                ));
            }
            _ => {
                return Err(InputError::new(
                    "model.layers",
                    format!(
                        "the last layer must be dense with `outputs` = {outputs} units \
                         (SPEC §10); found {}",
                        if layers.is_empty() {
                            "no layers".to_owned()
                        } else {
                            format!("a `{}` layer last", kind(&layers[layers.len() - 1]))
                        }
                    ),
                ));
            }
        }
        Ok(Layered::new(dim, *outputs, *init_scale, built, offset))
    }

    fn new(
        dim: usize,
        outputs: usize,
        init_scale: f64,
        layers: Vec<Box<dyn Layer>>,
        n_params: usize,
    ) -> Layered {
        let (mut scratch_at, mut explicit_at, mut blocks) = (Vec::new(), Vec::new(), Vec::new());
        let mut taylor_at = Vec::new();
        let (mut scratch, mut explicit, mut taylor) = (0, 0, 0);
        for (l, layer) in layers.iter().enumerate() {
            scratch_at.push(scratch);
            explicit_at.push(explicit);
            taylor_at.push(taylor);
            taylor += layer.taylor_scratch(1).len();
            blocks.extend(layer.blocks(Slots {
                input: l,
                delta: l,
                explicit,
            }));
            scratch += layer.scratch(1, 1).len();
            explicit += layer.explicit_widths().len();
        }
        scratch_at.push(scratch);
        explicit_at.push(explicit);
        taylor_at.push(taylor);
        let first_param = layers
            .iter()
            .position(|l| l.n_params() > 0)
            .unwrap_or(layers.len());
        Layered {
            dim,
            outputs,
            init_scale,
            layers,
            scratch_at,
            explicit_at,
            taylor_at,
            first_param,
            blocks,
            n_params,
        }
    }

    /// The widest layer's output (or the input), in features.
    pub fn widest(&self) -> usize {
        self.layers
            .iter()
            .map(|l| l.output_shape().iter().product::<usize>())
            .fold(self.dim, usize::max)
    }

    /// Numbers the tape keeps per example (inputs, sensitivities, scratch,
    /// explicit rows) and the summed widths of the sensitivities the
    /// gradient weighs, with C outputs: for the memory estimate.
    pub fn numbers_per_row(&self) -> (f64, f64) {
        let c = self.outputs;
        let mut tape = (self.dim + 2 * c) as f64;
        let mut weighted = 0.0;
        for (l, layer) in self.layers.iter().enumerate() {
            let out: usize = layer.output_shape().iter().product();
            if l + 1 < self.layers.len() {
                tape += out as f64;
            }
            if l >= self.first_param {
                tape += (c * out) as f64;
            }
            // Scratch scales with rows: measure it at 1 row.
            tape += layer
                .scratch(1, c)
                .iter()
                .map(|&(r, k)| (r * k) as f64)
                .sum::<f64>();
            tape += layer
                .explicit_widths()
                .iter()
                .map(|&w| (c * w) as f64)
                .sum::<f64>();
            if layer
                .blocks(Slots {
                    input: l,
                    delta: l,
                    explicit: 0,
                })
                .iter()
                .any(|b| !matches!(b, Block::Explicit { .. }))
            {
                weighted += out as f64;
            }
        }
        (tape, weighted)
    }
}

/// The `kind` of a layer spec as written.
fn kind(spec: &LayerSpec) -> &'static str {
    match spec {
        LayerSpec::Dense { .. } => "dense",
        LayerSpec::Conv1d { .. } => "conv1d",
        LayerSpec::Conv2d { .. } => "conv2d",
        LayerSpec::Activation { .. } => "activation",
        LayerSpec::AvgPool { .. } => "avg_pool",
        LayerSpec::Flatten {} => "flatten",
        LayerSpec::LayerNorm { .. } => "layer_norm",
    }
}

impl Model for Layered {
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
        !self.layers.iter().any(|l| l.is_kinked())
    }

    fn tape(&self, x: &DMatrix<f64>) -> Tape {
        let (rows, c) = (x.nrows(), self.outputs);
        let features = |l: &dyn Layer| l.output_shape().iter().product::<usize>();
        let inputs = std::iter::once(x.clone())
            .chain(
                self.layers[..self.layers.len() - 1]
                    .iter()
                    .map(|l| DMatrix::zeros(rows, features(l.as_ref()))),
            )
            .collect();
        let deltas = self
            .layers
            .iter()
            .enumerate()
            .map(|(l, layer)| {
                if l >= self.first_param {
                    DMatrix::zeros(rows * c, features(layer.as_ref()))
                } else {
                    DMatrix::zeros(0, 0)
                }
            })
            .collect();
        let scratch = self
            .layers
            .iter()
            .flat_map(|l| l.scratch(rows, c))
            .map(|(r, k)| DMatrix::zeros(r, k))
            .collect();
        let explicit = self
            .layers
            .iter()
            .flat_map(|l| l.explicit_widths())
            .map(|w| DMatrix::zeros(rows * c, w))
            .collect();
        Tape {
            output: DMatrix::zeros(rows, c),
            inputs,
            deltas,
            explicit,
            scratch,
            locks: Vec::new(),
        }
    }

    fn forward(&self, w: &[f64], tape: &mut Tape) {
        let last = self.layers.len() - 1;
        let mut kinked = 0;
        for (l, layer) in self.layers.iter().enumerate() {
            let (before, after) = tape.inputs.split_at_mut(l + 1);
            let output = if l < last {
                &mut after[0]
            } else {
                &mut tape.output
            };
            layer.forward(
                w,
                Forward {
                    input: &before[l],
                    output: &mut *output,
                    scratch: &mut tape.scratch[self.scratch_at[l]..self.scratch_at[l + 1]],
                },
            );
            if let Some(activation) = layer.kink_activation() {
                if let Some(locks) = tape.locks.get(kinked) {
                    crate::kinks::lock_activation(
                        activation,
                        locks,
                        before[l].as_slice(),
                        output.as_mut_slice(),
                        tape.scratch[self.scratch_at[l]].as_mut_slice(),
                    );
                }
                kinked += 1;
            }
        }
    }

    fn backward(&self, w: &[f64], tape: &mut Tape) {
        let last = self.layers.len() - 1;
        Tape::seed_outputs(&mut tape.deltas[last]);
        for l in (self.first_param..=last).rev() {
            let (lower, upper) = tape.deltas.split_at_mut(l);
            let g_in = (l > self.first_param).then(|| &mut lower[l - 1]);
            self.layers[l].backward(
                w,
                Backward {
                    input: &tape.inputs[l],
                    g_out: &upper[0],
                    g_in,
                    scratch: &mut tape.scratch[self.scratch_at[l]..self.scratch_at[l + 1]],
                    explicit: &mut tape.explicit[self.explicit_at[l]..self.explicit_at[l + 1]],
                    outputs: self.outputs,
                },
            );
        }
    }

    fn init(&self, rng: &mut ChaCha20Rng) -> Vec<f64> {
        let mut w = Vec::with_capacity(self.n_params);
        for layer in &self.layers {
            layer.init(rng, self.init_scale, &mut w);
        }
        w
    }

    fn unit_delta(&self) -> Option<usize> {
        Some(self.layers.len() - 1)
    }

    /// jets[l] is layer l's input, jets[L] the output.
    fn taylor_tape(&self, x: &DMatrix<f64>) -> TaylorTape {
        let rows = x.nrows();
        let jets = std::iter::once(Jet::constant(x))
            .chain(
                self.layers
                    .iter()
                    .map(|l| Jet::zeros(rows, l.output_shape().iter().product())),
            )
            .collect();
        let scratch = self
            .layers
            .iter()
            .flat_map(|l| l.taylor_scratch(rows))
            .map(|(r, k)| DMatrix::zeros(r, k))
            .collect();
        TaylorTape { jets, scratch }
    }

    fn taylor(&self, w: &[f64], dw: &[f64], tape: &mut TaylorTape) {
        for (l, layer) in self.layers.iter().enumerate() {
            let (before, after) = tape.jets.split_at_mut(l + 1);
            layer.taylor(
                w,
                dw,
                TaylorIo {
                    input: &before[l],
                    output: &mut after[0],
                    scratch: &mut tape.scratch[self.taylor_at[l]..self.taylor_at[l + 1]],
                },
            );
        }
    }

    fn kink_preactivations<'t>(&self, tape: &'t Tape) -> Vec<&'t DMatrix<f64>> {
        self.layers
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_kinked())
            .map(|(l, _)| &tape.inputs[l])
            .collect()
    }

    /// Layer l's input is jet l (jet 0 the batch).
    fn kink_jet<'t>(&self, tape: &'t TaylorTape, l: usize) -> Option<&'t Jet> {
        self.layers
            .iter()
            .enumerate()
            .filter(|(_, layer)| layer.is_kinked())
            .nth(l)
            .map(|(at, _)| &tape.jets[at])
    }
}
