//! Hidden-layer activations (SPEC §3).
//!
//! `apply` and `derivative` run in the innermost loop, so they are
//! allocation-free, branch-light and stable for every finite z: everything
//! that could overflow is written with exp(-|z|) <= 1, which can only
//! underflow. `apply_dual` is an independent forward-mode reference built
//! from num-dual's elementary functions, so its derivative never comes from
//! `derivative`; the gradient tests compare the two.
use num_dual::DualNum;
use serde::{Deserialize, Serialize};
use std::f64::consts::{FRAC_1_SQRT_2, TAU};

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

/// The slope of leaky_relu for z <= 0 (SPEC §3: max(0.01 z, z)).
const LEAKY_SLOPE: f64 = 0.01;
/// 1 / sqrt(2 pi), the normal density at 0.
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

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

    /// The SPEC name (the serde form).
    pub fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::Softplus => "softplus",
            Activation::Gelu => "gelu",
            Activation::Silu => "silu",
            Activation::Sin => "sin",
            Activation::Relu => "relu",
            Activation::LeakyRelu => "leaky_relu",
        }
    }

    /// sigma(z)
    #[inline]
    pub fn apply(self, z: f64) -> f64 {
        match self {
            Activation::Identity => z,
            Activation::Tanh => z.tanh(),
            Activation::Sigmoid => sigmoid(z),
            Activation::Softplus => softplus(z),
            Activation::Gelu => z * normal_cdf(z),
            Activation::Silu => z * sigmoid(z),
            Activation::Sin => z.sin(),
            Activation::Relu => {
                if z > 0.0 {
                    z
                } else {
                    0.0
                }
            }
            Activation::LeakyRelu => {
                if z > 0.0 {
                    z
                } else {
                    LEAKY_SLOPE * z
                }
            }
        }
    }

    /// sigma'(z), with SPEC's conventions at kinks: relu'(0) = 0,
    /// leaky_relu'(0) = 0.01.
    #[inline]
    pub fn derivative(self, z: f64) -> f64 {
        match self {
            Activation::Identity => 1.0,
            // sech^2 from exp(-2|z|): 1 - tanh^2 would cancel to 0 for |z| > 19.
            Activation::Tanh => {
                let e = (-2.0 * z.abs()).exp();
                let p = 1.0 + e;
                4.0 * e / (p * p)
            }
            Activation::Sigmoid => {
                let (s, r) = sigmoid_pair(z);
                s * r
            }
            Activation::Softplus => sigmoid(z),
            Activation::Gelu => normal_cdf(z) + z * normal_pdf(z),
            // sigma + z sigma (1 - sigma), with 1 - sigma(z) = sigma(-z) exact.
            Activation::Silu => {
                let (s, r) = sigmoid_pair(z);
                s + z * s * r
            }
            Activation::Sin => z.cos(),
            Activation::Relu => {
                if z > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::LeakyRelu => {
                if z > 0.0 {
                    1.0
                } else {
                    LEAKY_SLOPE
                }
            }
        }
    }

    /// (sigma(z), sigma'(z)) with one transcendental call where the pair
    /// shares one: the forward pass needs both, and on wide layers the
    /// activations cost as much as a matrix product when computed apart.
    #[inline]
    pub fn apply_with_derivative(self, z: f64) -> (f64, f64) {
        match self {
            Activation::Tanh => {
                // With e = exp(-2|z|) and u = e - 1: tanh|z| = -u / (2 + u) and
                // sech^2 z = 4 e / (2 + u)^2. Near 0, u comes from expm1 (no
                // cancellation) and e = 1 + u is exact enough (e > 1/2); far
                // out, e comes from exp (no underflow to 1 + u = 0) and
                // u = e - 1 has no cancellation (e < 1/2).
                let x = -2.0 * z.abs();
                let (u, e) = if x > -0.7 {
                    let u = x.exp_m1();
                    (u, 1.0 + u)
                } else {
                    let e = x.exp();
                    (e - 1.0, e)
                };
                let p = 2.0 + u;
                let t = -u / p;
                (if z < 0.0 { -t } else { t }, 4.0 * e / (p * p))
            }
            Activation::Sigmoid => {
                let (s, r) = sigmoid_pair(z);
                (s, s * r)
            }
            Activation::Silu => {
                let (s, r) = sigmoid_pair(z);
                (z * s, s + z * s * r)
            }
            Activation::Sin => z.sin_cos(),
            _ => (self.apply(z), self.derivative(z)),
        }
    }

    /// u = sigma(z) and d = sigma'(z) elementwise, split across threads for
    /// long slices (elementwise, so the result does not depend on the split).
    /// tanh, sigmoid and silu go through `vecmath`'s vectorised kernels, which
    /// agree with `apply_with_derivative` to a few ulp (absolute for tanh).
    pub fn apply_slices(self, z: &[f64], u: &mut [f64], d: &mut [f64]) {
        use rayon::prelude::*;
        const CHUNK: usize = 1 << 14;
        let run = |z: &[f64], u: &mut [f64], d: &mut [f64]| match self {
            Activation::Tanh => crate::vecmath::tanh_slices(z, u, d),
            Activation::Sigmoid => crate::vecmath::sigmoid_slices(z, u, d),
            Activation::Silu => crate::vecmath::silu_slices(z, u, d),
            _ => {
                for ((u, d), &z) in u.iter_mut().zip(d.iter_mut()).zip(z) {
                    (*u, *d) = self.apply_with_derivative(z);
                }
            }
        };
        if z.len() <= CHUNK {
            run(z, u, d);
        } else {
            z.par_chunks(CHUNK)
                .zip(u.par_chunks_mut(CHUNK))
                .zip(d.par_chunks_mut(CHUNK))
                .for_each(|((z, u), d)| run(z, u, d));
        }
    }

    /// sigma''(z), for the second-order term of gd (`crate::second_order`):
    /// 0 for relu and leaky_relu (their kink at 0 is not a second
    /// derivative anyone can use; away from it both are linear).
    #[inline]
    pub fn second_derivative(self, z: f64) -> f64 {
        match self {
            Activation::Identity | Activation::Relu | Activation::LeakyRelu => 0.0,
            // -2 tanh(z) sech^2(z), both factors stable for every z.
            Activation::Tanh => {
                let (t, d) = self.apply_with_derivative(z);
                -2.0 * t * d
            }
            // s r (r - s) with r = 1 - s = sigmoid(-z) exact: no cancellation.
            Activation::Sigmoid => {
                let (s, r) = sigmoid_pair(z);
                s * r * (r - s)
            }
            Activation::Softplus => {
                let (s, r) = sigmoid_pair(z);
                s * r
            }
            Activation::Gelu => normal_pdf(z) * (2.0 - z * z),
            Activation::Silu => {
                let (s, r) = sigmoid_pair(z);
                s * r * (2.0 + z * (r - s))
            }
            Activation::Sin => -z.sin(),
        }
    }

    /// sigma applied to a dual number (forward-mode reference): any
    /// num-dual number whose infinitesimal part d = z - re(z) has d^3 = 0
    /// (Dual64 for first derivatives, Dual2_64 or HyperDual64 for second).
    ///
    /// Built from num-dual's elementary functions in forms that stay accurate
    /// for large |z| (num-dual's own `tanh` is sinh/cosh, whose derivative
    /// cancels catastrophically beyond |z| ~ 10 and is NaN past 710). Gelu is
    /// the one exception: num-dual has no erf, so Phi is written by hand as
    /// its Taylor polynomial Phi(re) + phi(re) d - re phi(re) d^2 / 2, exact
    /// when d^3 = 0, with phi = exp(-z^2/2) / sqrt(2 pi) apart from
    /// `derivative`'s. At the kinks the reference restates SPEC's conventions.
    pub fn apply_dual<D: DualNum<Primitive = f64> + Copy>(self, z: D) -> D {
        let re = z.re();
        match self {
            Activation::Identity => z,
            Activation::Tanh => {
                // tanh|z| = -u / (2 + u), u = expm1(-2|z|) in (-1, 0]: no
                // cancellation near 0 and no overflow far out.
                let (a, sign) = if re < 0.0 { (-z, -1.0) } else { (z, 1.0) };
                let u = (a * -2.0).exp_m1();
                -u / (u + 2.0) * sign
            }
            Activation::Sigmoid => sigmoid_dual(z),
            Activation::Softplus => softplus_dual(z),
            Activation::Gelu => {
                let dphi = (-(re * re) / 2.0).exp() / TAU.sqrt();
                let d = z - D::from(re);
                z * (D::from(normal_cdf(re)) + d * dphi + d * d * (-0.5 * re * dphi))
            }
            Activation::Silu => z * sigmoid_dual(z),
            Activation::Sin => z.sin(),
            Activation::Relu => {
                if re > 0.0 {
                    z
                } else {
                    D::from(0.0)
                }
            }
            Activation::LeakyRelu => {
                if re > 0.0 {
                    z
                } else {
                    z * 0.01
                }
            }
        }
    }

    /// False for relu and leaky_relu (a kink at 0).
    pub fn is_smooth(self) -> bool {
        !matches!(self, Activation::Relu | Activation::LeakyRelu)
    }
}

/// (sigmoid(z), sigmoid(-z)) from one exp(-|z|) <= 1: neither overflows, and
/// the small one keeps full relative accuracy (no 1 - sigmoid cancellation).
#[inline]
pub(crate) fn sigmoid_pair(z: f64) -> (f64, f64) {
    let e = (-z.abs()).exp();
    let big = 1.0 / (1.0 + e);
    let small = e * big;
    if z >= 0.0 { (big, small) } else { (small, big) }
}

/// 1 / (1 + e^-z), stable for every z.
#[inline]
pub(crate) fn sigmoid(z: f64) -> f64 {
    sigmoid_pair(z).0
}

/// ln(1 + e^-|z|) in [0, ln 2]: the bounded part of softplus.
#[inline]
pub(crate) fn ln1p_exp_neg_abs(z: f64) -> f64 {
    (-z.abs()).exp().ln_1p()
}

/// ln(1 + e^z) = max(z, 0) + ln(1 + e^-|z|), which never overflows.
#[inline]
pub(crate) fn softplus(z: f64) -> f64 {
    z.max(0.0) + ln1p_exp_neg_abs(z)
}

/// Phi(z) = erfc(-z / sqrt 2) / 2: erfc keeps relative accuracy in the
/// lower tail, where 1 + erf would cancel.
#[inline]
fn normal_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z * FRAC_1_SQRT_2)
}

/// phi(z) = exp(-z^2/2) / sqrt(2 pi); z^2 = inf gives 0, not NaN.
#[inline]
fn normal_pdf(z: f64) -> f64 {
    FRAC_1_SQRT_2PI * (-0.5 * z * z).exp()
}

/// Reference sigmoid: the branch keeps the exponent <= 0.
pub(crate) fn sigmoid_dual<D: DualNum<Primitive = f64> + Copy>(z: D) -> D {
    if z.re() >= 0.0 {
        ((-z).exp() + 1.0).recip()
    } else {
        let e = z.exp();
        e / (e + 1.0)
    }
}

/// Reference softplus: z + ln(1 + e^-z) for z >= 0, ln(1 + e^z) below.
pub(crate) fn softplus_dual<D: DualNum<Primitive = f64> + Copy>(z: D) -> D {
    if z.re() >= 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}
