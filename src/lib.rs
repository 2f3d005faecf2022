//! pathkernel: a numerical check of "every model learned by gradient descent is
//! approximately a kernel machine" (P. Domingos, 2020).
//!
//! The contract (conventions, parameter layouts, spec and report formats) is
//! `SPEC.md`; each module below holds one concept of it.

pub mod activation;
pub mod data;
pub mod error;
pub mod loss;
pub mod rng;
pub mod spec;
pub mod tableau;
