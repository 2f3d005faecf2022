//! Adam and AdamW, as torch.optim.Adam/AdamW and optax.adam/adamw define
//! them (SPEC §9), at step k (t = k + 1):
//!   m_k = beta1 m_{k−1} + (1 − beta1) g_k,  v_k = beta2 v_{k−1} + (1 − beta2) g_k²,
//!   mhat = m_k / (1 − beta1^t),  vhat = v_k / (1 − beta2^t),
//!   w_{k+1} = w_k − eta_k (mhat / (sqrt(vhat) + eps) + lambda_d w_k).
//! (optax.scale_by_adam: "mu_hat = mu / (1 − b1^t); nu_hat = nu / (1 −
//! b2^t); updates = mu_hat / (sqrt(nu_hat + eps_root) + eps)", eps_root 0;
//! torch's Adam divides m by (sqrt(v) / sqrt(1 − beta2^t) + eps) and scales
//! by lr / (1 − beta1^t): the same to rounding.) As a linear map of the
//! gradients the step is P_k = diag(1 / (sqrt(vhat_k) + eps)) applied to
//! d_k = mhat_k, with v_k (hence P_k) taken from the whole g_k.
use super::{Linear, Optimizer};
use crate::spec::FlowSpec;

pub struct Adam {
    beta1: f64,
    beta2: f64,
    eps: f64,
    v: Vec<f64>,
    /// P_k.
    p: Vec<f64>,
    /// 1 / (1 − beta1^{k+1}).
    correction1: f64,
}

impl Adam {
    pub fn new(flow: &FlowSpec, p: usize) -> Adam {
        Adam {
            beta1: flow.beta1.unwrap_or(0.9),
            beta2: flow.beta2.unwrap_or(0.999),
            eps: flow.eps.unwrap_or(1e-8),
            v: vec![0.0; p],
            p: vec![0.0; p],
            correction1: 1.0,
        }
    }
}

impl Optimizer for Adam {
    fn begin(&mut self, k: usize, g: &[f64]) {
        let t = i32::try_from(k + 1).unwrap_or(i32::MAX);
        let (b2, eps) = (self.beta2, self.eps);
        let correction2 = 1.0 - b2.powi(t);
        self.correction1 = 1.0 / (1.0 - self.beta1.powi(t));
        for ((v, p), &g) in self.v.iter_mut().zip(&mut self.p).zip(g) {
            *v = b2 * *v + (1.0 - b2) * g * g;
            *p = 1.0 / ((*v / correction2).sqrt() + eps);
        }
    }

    fn linear(&self) -> Linear {
        Linear {
            decay: self.beta1,
            gain: 1.0 - self.beta1,
            pass: 0.0,
            keep: self.correction1,
        }
    }

    fn preconditioner(&self) -> Option<&[f64]> {
        Some(&self.p)
    }

    fn is_memoryless(&self) -> bool {
        false
    }
}
