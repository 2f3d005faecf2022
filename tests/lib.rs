//! One integration-test binary (one link step) with a module per topic.
mod activation;
mod cli;
mod counterexamples;
mod data;
mod fuzz_replay;
mod identity;
mod loss;
mod model;
mod reference;
mod spec;
mod stepper;
mod tableau;
mod vecmath;
