//! One integration-test binary (one link step) with a module per topic.
mod activation;
mod bench;
mod bounds;
mod cli;
mod column_rows;
mod common;
mod conditions;
mod counterexamples;
mod data;
mod datasets;
mod dense_output;
mod events;
mod fuzz_replay;
mod golden;
mod identity;
mod kinked_segments;
mod kinks_cnn;
mod layers;
mod learn;
mod linalg;
mod loss;
mod mangled;
mod memory;
mod model;
mod npz;
mod optimizer;
mod optimizer_conditions;
mod plot;
mod point_buffers;
mod properties;
mod reference;
mod reference_layers;
mod reference_learn;
mod replay;
mod reproducible;
mod robustness;
mod search_detail;
mod second_order;
mod sliding;
mod sliding_bilinear;
mod sliding_claim;
mod spec;
mod stepper;
mod study;
mod sweep;
mod symmetric;
mod tableau;
mod tracker;
mod vecmath;
mod vector;

/// A proptest configuration with `default` cases unless PROPTEST_CASES says
/// otherwise (an explicit case count in code would override the variable).
pub fn cases(default: u32) -> proptest::test_runner::Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    proptest::test_runner::Config::with_cases(cases)
}
