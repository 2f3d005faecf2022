//! The experiment spec (SPEC §4): its types, parsing and validation.
//!
//! Reading a spec ([`Spec::parse`], [`Spec::from_path`]) refuses anything
//! wrong with one message naming the field, what was found and what is
//! allowed; `read` turns the text into the types, `validate` checks what the
//! types alone cannot.
use crate::activation::Activation;
use crate::loss::Loss;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

mod bounds;
mod dataset;
mod memory;
mod message;
mod optimizer;
mod read;
mod validate;

pub use bounds::{MAX_STEPS, check_steps};
pub use dataset::{DatasetName, DatasetSpec, Labels};
pub use memory::{DEFAULT_MAX_MEMORY_GIB, GIB, MAX_MEMORY_GIB, MemoryEstimate};
pub use optimizer::{MAX_OPTIMIZER_STEPS, ScheduleKind, ScheduleSpec, Shuffle};
pub use read::{Format, parse_value};

/// rtol of an adaptive run when the spec gives none (SPEC §4).
pub const DEFAULT_RTOL: f64 = 1e-8;
/// atol of an adaptive run when the spec gives none (SPEC §4).
pub const DEFAULT_ATOL: f64 = 1e-10;

/// A whole experiment, as read from JSON (or TOML), every default filled in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    #[serde(default)]
    pub seed: u64,
    pub data: DataSpec,
    pub model: ModelSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<InitSpec>,
    pub loss: Loss,
    #[serde(default)]
    pub reduction: Reduction,
    pub flow: FlowSpec,
}

/// Declares an internally tagged spec enum (the JSON shape of SPEC §4) and,
/// from the same body, a private externally tagged twin that deserializes into
/// it. serde buffers an internally tagged enum's content and so loses the path
/// to an error inside it; `read` moves the tag outside and reads the twin, so
/// that errors name `model.hidden[1]`, not just `model`. One body for both
/// keeps their fields and defaults from drifting apart.
macro_rules! tagged_enum {
    (
        $(#[$attr:meta])*
        pub enum $name:ident (tag $tag:literal, twin $twin:ident $remote:literal) { $($body:tt)* }
    ) => {
        $(#[$attr])*
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = $tag, rename_all = "snake_case", deny_unknown_fields)]
        pub enum $name { $($body)* }

        #[derive(Deserialize)]
        #[serde(remote = $remote, rename_all = "snake_case", deny_unknown_fields)]
        #[allow(dead_code)]
        enum $twin { $($body)* }
    };
}

tagged_enum! {
    /// Where the data come from: a generator, arrays in the spec, CSV files
    /// or a built-in data set.
    pub enum DataSpec (tag "source", twin DataSpecTwin "DataSpec") {
        /// A generator of `crate::data` (each documented there), drawn from
        /// the seed's data stream.
        Synthetic {
            function: SyntheticFunction,
            n_train: usize,
            n_test: usize,
            dim: usize,
            #[serde(default)]
            noise: f64,
        },
        Inline {
            train_x: Vec<Vec<f64>>,
            /// One number per row, or (C > 1, SPEC §8) a row of C numbers.
            train_y: Targets,
            test_x: Vec<Vec<f64>>,
            /// The query points' targets, in train_y's form (optional): a
            /// report then has test_y and test_error, and `learn` and the
            /// claim kernel-generalises measure test errors with them.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            test_y: Option<Targets>,
        },
        /// Paths relative to the spec file's directory.
        Csv {
            train: PathBuf,
            test: PathBuf,
        },
        /// A built-in data set (SPEC §11), loaded by `crate::data::builtin`.
        Dataset(DatasetSpec),
    }
}

/// Inline training targets: one number per training row (C = 1, or class
/// labels for cross_entropy), or one row of C numbers per training row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Targets {
    Numbers(Vec<f64>),
    Rows(Vec<Vec<f64>>),
}

impl Targets {
    /// The number of training rows the targets are for.
    pub fn len(&self) -> usize {
        match self {
            Targets::Numbers(v) => v.len(),
            Targets::Rows(r) => r.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyntheticFunction {
    Sine,
    Linear,
    Xor,
    Moons,
}

impl SyntheticFunction {
    /// True for the generators whose targets are labels -1/+1.
    pub fn is_classification(self) -> bool {
        matches!(self, SyntheticFunction::Xor | SyntheticFunction::Moons)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parameterization {
    #[default]
    Standard,
    Ntk,
}

tagged_enum! {
    /// The architecture and its hyperparameters (SPEC §3).
    pub enum ModelSpec (tag "arch", twin ModelSpecTwin "ModelSpec") {
        Linear {
            #[serde(default = "one")]
            init_scale: f64,
            /// C, the number of outputs (SPEC §8); omitted from a report when 1.
            #[serde(default = "one_output", skip_serializing_if = "is_one_output")]
            outputs: usize,
        },
        Mlp {
            hidden: Vec<usize>,
            #[serde(default = "tanh")]
            activation: Activation,
            #[serde(default = "yes")]
            bias: bool,
            #[serde(default)]
            parameterization: Parameterization,
            #[serde(default = "one")]
            init_scale: f64,
            #[serde(default = "one_output", skip_serializing_if = "is_one_output")]
            outputs: usize,
        },
        Resmlp {
            width: usize,
            blocks: usize,
            #[serde(default = "tanh")]
            activation: Activation,
            #[serde(default = "one")]
            init_scale: f64,
            #[serde(default = "one_output", skip_serializing_if = "is_one_output")]
            outputs: usize,
        },
        DiagLinear {
            #[serde(default = "one")]
            init_scale: f64,
        },
        /// A list of layers (SPEC §10), built by `crate::model::layers`.
        Layers {
            input_shape: Vec<usize>,
            layers: Vec<LayerSpec>,
            #[serde(default = "one")]
            init_scale: f64,
            #[serde(default = "one_output", skip_serializing_if = "is_one_output")]
            outputs: usize,
        },
    }
}

tagged_enum! {
    /// One layer of a `layers` model (SPEC §10), tagged by `kind`.
    pub enum LayerSpec (tag "kind", twin LayerSpecTwin "LayerSpec") {
    Dense {
        units: usize,
        #[serde(default = "yes")]
        bias: bool,
    },
    Conv1d {
        channels: usize,
        kernel: usize,
        #[serde(default = "one_usize")]
        stride: usize,
        #[serde(default)]
        padding: Padding,
        #[serde(default = "yes")]
        bias: bool,
    },
    Conv2d {
        channels: usize,
        kernel: usize,
        #[serde(default = "one_usize")]
        stride: usize,
        #[serde(default)]
        padding: Padding,
        #[serde(default = "yes")]
        bias: bool,
    },
    Activation {
        name: Activation,
    },
    AvgPool {
        size: usize,
    },
    Flatten {},
    LayerNorm {
        #[serde(default = "layer_norm_eps")]
        eps: f64,
        #[serde(default = "yes")]
        affine: bool,
    },
}
}

/// Zero padding of a convolution (SPEC §10): none, or (k - 1) / 2 on each
/// side of every spatial axis (k odd).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    #[default]
    Valid,
    Same,
}

impl ModelSpec {
    /// P, the length of the flat parameter vector for inputs of dimension
    /// `dim`, from SPEC §3's layouts. Saturates at `usize::MAX` rather than
    /// overflow, so an absurd size is refused by a length check, not a panic.
    pub fn n_params(&self, dim: usize) -> usize {
        let add = usize::saturating_add;
        let mul = usize::saturating_mul;
        let outputs = self.outputs();
        match self {
            ModelSpec::Linear { .. } => mul(add(dim, 1), outputs),
            ModelSpec::Mlp { hidden, bias, .. } => {
                let mut fan_in = dim;
                let mut total = 0usize;
                for &out in hidden.iter().chain(std::iter::once(&outputs)) {
                    total = add(total, mul(out, fan_in));
                    if *bias {
                        total = add(total, out);
                    }
                    fan_in = out;
                }
                total
            }
            ModelSpec::Resmlp { width, blocks, .. } => {
                let w = *width;
                let input = add(mul(dim, w), w);
                let block = add(mul(2, mul(w, w)), mul(2, w));
                add(add(input, mul(*blocks, block)), mul(add(w, 1), outputs))
            }
            ModelSpec::DiagLinear { .. } => mul(2, dim),
            ModelSpec::Layers { .. } => crate::model::layers::Layered::from_spec(self, dim)
                .map_or(usize::MAX, |m| crate::model::Model::n_params(&m)),
        }
    }

    /// The widest layer's width for inputs of dimension `dim` (the inputs
    /// count as a layer), which sizes the activations kept per point.
    pub fn widest(&self, dim: usize) -> usize {
        let widest = match self {
            ModelSpec::Linear { .. } | ModelSpec::DiagLinear { .. } => dim,
            ModelSpec::Mlp { hidden, .. } => hidden.iter().copied().fold(dim, usize::max),
            ModelSpec::Resmlp { width, .. } => dim.max(*width),
            ModelSpec::Layers { .. } => {
                crate::model::layers::Layered::from_spec(self, dim).map_or(dim, |m| m.widest())
            }
        };
        widest.max(self.outputs())
    }

    /// C, the number of outputs (SPEC §8): `outputs`, 1 for diag_linear.
    pub fn outputs(&self) -> usize {
        match *self {
            ModelSpec::Linear { outputs, .. }
            | ModelSpec::Mlp { outputs, .. }
            | ModelSpec::Resmlp { outputs, .. }
            | ModelSpec::Layers { outputs, .. } => outputs,
            ModelSpec::DiagLinear { .. } => 1,
        }
    }

    /// The same architecture with C = `c` outputs (diag_linear, which has
    /// one, unchanged).
    pub fn with_outputs(mut self, c: usize) -> ModelSpec {
        match &mut self {
            ModelSpec::Linear { outputs, .. }
            | ModelSpec::Mlp { outputs, .. }
            | ModelSpec::Resmlp { outputs, .. } => *outputs = c,
            ModelSpec::DiagLinear { .. } => {}
            // The last layer is dense with `outputs` units (SPEC §10).
            ModelSpec::Layers {
                outputs, layers, ..
            } => {
                *outputs = c;
                if let Some(LayerSpec::Dense { units, .. }) = layers.last_mut() {
                    *units = c;
                }
            }
        }
        self
    }

    /// The architecture's name as written in a spec.
    pub fn arch(&self) -> &'static str {
        match self {
            ModelSpec::Linear { .. } => "linear",
            ModelSpec::Mlp { .. } => "mlp",
            ModelSpec::Resmlp { .. } => "resmlp",
            ModelSpec::DiagLinear { .. } => "diag_linear",
            ModelSpec::Layers { .. } => "layers",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitSpec {
    pub w0: Vec<f64>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reduction {
    #[default]
    Sum,
    Mean,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Gd,
    Heun,
    Rk4,
    Dopri5,
    Dop853,
    /// Verner's 9(8) pair: adaptive like dopri5 and dop853, or fixed with `step`.
    Verner98,
    /// Minibatch SGD with momentum, Nesterov and weight decay (SPEC §9).
    Sgd,
    /// Adam, or AdamW with decoupled weight decay (SPEC §9).
    Adam,
}

impl Method {
    /// The name as written in a spec.
    pub fn name(self) -> &'static str {
        match self {
            Method::Gd => "gd",
            Method::Heun => "heun",
            Method::Rk4 => "rk4",
            Method::Dopri5 => "dopri5",
            Method::Dop853 => "dop853",
            Method::Verner98 => "verner98",
            Method::Sgd => "sgd",
            Method::Adam => "adam",
        }
    }

    /// True for the embedded pairs, which may run adaptively.
    pub fn has_error_estimate(self) -> bool {
        matches!(self, Method::Dopri5 | Method::Dop853 | Method::Verner98)
    }
}

/// The integration: T, the method and its step or tolerances. `step` (or
/// `lr` for gd) makes any method fixed-step; the embedded pairs (dopri5,
/// dop853, verner98) without a step are adaptive with `rtol` and `atol`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSpec {
    /// T; for sgd/adam Σ eta_k, filled in when absent (read as NaN, which
    /// no spec can hold: the strict reader refuses non-finite numbers).
    #[serde(default = "absent_t_end")]
    pub t_end: f64,
    pub method: Method,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtol: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atol: Option<f64>,
    #[serde(default)]
    pub exact_path_kernel: bool,
    /// End steps at kinks (relu-type units, kinked losses) located as
    /// events (proofs.md §9). Omitted from a report when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub events: bool,
    /// Most accepted steps an adaptive run may take before it fails.
    #[serde(default = "default_max_steps")]
    pub max_steps: usize,
    // The discrete optimizers' fields (SPEC §9, `optimizer`), each for sgd
    // and/or adam only; defaults are filled in by `with_defaults`.
    /// K, the number of optimizer steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shuffle: Option<Shuffle>,
    /// K explicit batches (index multisets), replayed as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batches: Option<Vec<Vec<usize>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub momentum: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nesterov: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoupled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta1: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta2: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleSpec>,
}

impl FlowSpec {
    /// A flow of `method` to T with no step, tolerance or optimizer field
    /// set (each then set by the caller).
    pub fn new(t_end: f64, method: Method) -> FlowSpec {
        FlowSpec {
            t_end,
            method,
            step: None,
            lr: None,
            rtol: None,
            atol: None,
            exact_path_kernel: false,
            events: false,
            max_steps: default_max_steps(),
            steps: None,
            batch_size: None,
            shuffle: None,
            batches: None,
            momentum: None,
            nesterov: None,
            weight_decay: None,
            decoupled: None,
            beta1: None,
            beta2: None,
            eps: None,
            schedule: None,
        }
    }

    /// The fixed step h (`lr` for gd, else `step`), or None for an adaptive run.
    pub fn fixed_step(&self) -> Option<f64> {
        match self.method {
            Method::Gd | Method::Sgd | Method::Adam => self.lr,
            _ => self.step,
        }
    }

    /// Sets the fixed step h where [`FlowSpec::fixed_step`] reads it (`lr`
    /// for gd, else `step`): how a study reruns a spec at a smaller step.
    pub fn set_fixed_step(&mut self, h: f64) {
        match self.method {
            Method::Gd | Method::Sgd | Method::Adam => self.lr = Some(h),
            _ => self.step = Some(h),
        }
    }

    /// True when the run chooses its own steps (an embedded pair without a step).
    pub fn is_adaptive(&self) -> bool {
        self.method.has_error_estimate() && self.step.is_none()
    }

    /// K = round(T / h), the number of steps of a fixed-step run (SPEC §4).
    /// `validate` has checked that T / h is within 1e-9 of K.
    pub fn fixed_steps(&self) -> Option<usize> {
        if self.method.is_optimizer() {
            return Some(self.optimizer_steps());
        }
        self.fixed_step().map(|h| (self.t_end / h).round() as usize)
    }

    /// (rtol, atol) of an adaptive run, SPEC's defaults where none is given.
    pub fn tolerances(&self) -> (f64, f64) {
        (
            self.rtol.unwrap_or(DEFAULT_RTOL),
            self.atol.unwrap_or(DEFAULT_ATOL),
        )
    }
}

impl Spec {
    /// The spec with every default written out (the tolerances of an
    /// adaptive run), so that it serialises as it runs.
    pub fn with_defaults(mut self) -> Spec {
        if let DataSpec::Dataset(data) = self.data {
            self.data = DataSpec::Dataset(data.with_defaults());
        }
        if self.flow.is_adaptive() {
            let (rtol, atol) = self.flow.tolerances();
            self.flow.rtol = Some(rtol);
            self.flow.atol = Some(atol);
        }
        self.flow = self.flow.with_optimizer_defaults();
        self
    }
}

fn one() -> f64 {
    1.0
}
fn one_output() -> usize {
    1
}
fn is_one_output(c: &usize) -> bool {
    *c == 1
}
fn one_usize() -> usize {
    1
}
fn layer_norm_eps() -> f64 {
    1e-5
}
fn yes() -> bool {
    true
}
fn tanh() -> Activation {
    Activation::Tanh
}
fn absent_t_end() -> f64 {
    f64::NAN
}
fn default_max_steps() -> usize {
    1_000_000
}
