//! One integration-test binary (one link step) with a module per topic.
mod activation;
mod model;
mod stepper;
mod tableau;
