//! One integration-test binary (one link step) with a module per topic.
mod activation;
mod cli;
mod counterexamples;
mod data;
mod loss;
mod model;
mod spec;
mod stepper;
mod tableau;
