//! SGD with momentum and Nesterov momentum, as torch.optim.SGD (dampening
//! 0) and optax.sgd define it (SPEC §9):
//!   buf_k = mu buf_{k−1} + g_k (buf_{−1} = 0, so buf_0 = g_0, torch's
//!   first-step copy), d_k = g_k + mu buf_k (nesterov) or buf_k,
//!   w_{k+1} = w_k − eta_k d_k (− eta_k lambda_d w_k, decoupled decay).
//! (torch docs, SGD: "b_t ← μ b_{t−1} + (1 − τ) g_t; if nesterov g_t ←
//! g_t + μ b_t else g_t ← b_t; θ_t ← θ_{t−1} − γ g_t".)
use super::{Linear, Optimizer};
use crate::spec::FlowSpec;

pub struct Sgd {
    momentum: f64,
    nesterov: bool,
}

impl Sgd {
    pub fn new(flow: &FlowSpec) -> Sgd {
        Sgd {
            momentum: flow.momentum.unwrap_or(0.0),
            nesterov: flow.nesterov.unwrap_or(false),
        }
    }
}

impl Optimizer for Sgd {
    fn begin(&mut self, _k: usize, _g: &[f64]) {}

    fn linear(&self) -> Linear {
        let mu = self.momentum;
        let (pass, keep) = if self.nesterov { (1.0, mu) } else { (0.0, 1.0) };
        Linear {
            decay: mu,
            gain: 1.0,
            pass,
            keep,
        }
    }

    fn preconditioner(&self) -> Option<&[f64]> {
        None
    }

    fn is_memoryless(&self) -> bool {
        self.momentum == 0.0
    }
}
