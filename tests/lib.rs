//! One integration-test binary (one link step) with a module per topic.
mod activation;
mod cli;
mod data;
mod fuzz_replay;
mod loss;
mod mangled;
mod model;
mod reproducible;
mod robustness;
mod spec;
mod stepper;
mod tableau;
