//! Hidden-layer activations (SPEC §3).
use num_dual::Dual64;
use serde::{Deserialize, Serialize};

/// A scalar activation applied elementwise to hidden pre-activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Identity,
    Tanh,
    Sigmoid,
    Softplus,
    Gelu,
    Silu,
    Sin,
    Relu,
    LeakyRelu,
}

impl Activation {
    /// Every activation, in SPEC order.
    pub const ALL: [Activation; 9] = [
        Activation::Identity,
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Softplus,
        Activation::Gelu,
        Activation::Silu,
        Activation::Sin,
        Activation::Relu,
        Activation::LeakyRelu,
    ];

    /// sigma(z)
    pub fn apply(self, z: f64) -> f64 {
        todo!("{z}")
    }
    /// sigma'(z), with SPEC's conventions at kinks.
    pub fn derivative(self, z: f64) -> f64 {
        todo!("{z}")
    }
    /// sigma applied to a dual number (forward-mode reference).
    pub fn apply_dual(self, z: Dual64) -> Dual64 {
        todo!("{z}")
    }
    /// False for relu and leaky_relu (a kink at 0).
    pub fn is_smooth(self) -> bool {
        !matches!(self, Activation::Relu | Activation::LeakyRelu)
    }
}
