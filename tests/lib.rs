//! One integration-test binary (one link step) with a module per topic.
mod activation;
mod cli;
mod data;
mod identity;
mod loss;
mod model;
mod properties;
mod spec;
mod stepper;
mod tableau;
mod vecmath;
