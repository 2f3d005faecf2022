//! The experiment spec (SPEC §4): its types, parsing and validation.
use crate::activation::Activation;
use crate::loss::Loss;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataSpec {
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
        train_y: Vec<f64>,
        test_x: Vec<Vec<f64>>,
    },
    Csv {
        train: PathBuf,
        test: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyntheticFunction {
    Sine,
    Linear,
    Xor,
    Moons,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parameterization {
    #[default]
    Standard,
    Ntk,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "arch", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelSpec {
    Linear {
        #[serde(default = "one")]
        init_scale: f64,
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
    },
    Resmlp {
        width: usize,
        blocks: usize,
        #[serde(default = "tanh")]
        activation: Activation,
        #[serde(default = "one")]
        init_scale: f64,
    },
    DiagLinear {
        #[serde(default = "one")]
        init_scale: f64,
    },
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
}

/// The integration: T, the method and its step or tolerances. `step` (or
/// `lr` for gd) makes any method fixed-step; dopri5 and dop853 without a
/// step are adaptive with `rtol` and `atol`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSpec {
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
    /// Most accepted steps an adaptive run may take before it fails.
    #[serde(default = "default_max_steps")]
    pub max_steps: usize,
}

fn one() -> f64 {
    1.0
}
fn yes() -> bool {
    true
}
fn tanh() -> Activation {
    Activation::Tanh
}
fn default_max_steps() -> usize {
    1_000_000
}
