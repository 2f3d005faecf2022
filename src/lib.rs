//! pathkernel: a numerical check of "every model learned by gradient descent is
//! approximately a kernel machine" (P. Domingos, 2020).
//!
//! The contract (conventions, parameter layouts, spec and report formats) is
//! `SPEC.md`; each module below holds one concept of it.

pub mod activation;
pub mod batches;
pub mod bench;
pub mod blocks;
pub mod cli;
pub mod conditions;
pub mod converge;
pub mod data;
pub mod discrete;
pub mod error;
pub mod evaluation;
pub mod events;
pub mod exact;
pub mod experiment;
pub mod flow;
pub mod fuzzing;
pub mod jacobian;
pub mod kernel;
pub mod kinks;
pub mod learn;
pub mod linalg;
pub mod loss;
pub mod model;
pub mod optimizer;
pub mod order_conditions;
pub mod plot;
pub mod replay;
pub mod report;
pub mod rng;
pub mod schedule;
pub mod search;
pub mod second_order;
pub mod segment_kinks;
pub mod sliding;
pub mod spec;
pub mod stepper;
pub mod strategies;
pub mod sweep;
pub mod symmetric;
pub mod tableau;
pub mod trace;
pub mod vecmath;
