//! What the benchmarks share: the bench specs of benches/specs and the
//! width sweep, loaded as experiments.
#![allow(dead_code)] // each bench binary uses only part of this module
use pathkernel::data::Dataset;
use pathkernel::experiment::Experiment;
use pathkernel::spec::{Format, Spec};
use std::path::{Path, PathBuf};

/// The folder of the bench specs: $PATHKERNEL_BENCH_DIR, else benches/specs
/// (as `pathkernel bench` finds it).
pub fn bench_dir() -> PathBuf {
    pathkernel::bench::bench_dir()
}

/// The experiment of a spec file.
pub fn load(path: &Path) -> Experiment {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec =
        Spec::parse(&text, Format::Json).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let data = Dataset::resolve(&spec, path.parent().unwrap()).unwrap_or_else(|e| panic!("{e}"));
    Experiment::new(spec, data)
}

/// An mlp [width, width] tanh on synthetic data of the medium bench's shape
/// (D 8, N 256, M 128), for the growth of one evaluation with width.
pub fn width_experiment(width: usize) -> Experiment {
    let text = format!(
        r#"{{"seed": 5, "data": {{"source": "synthetic", "function": "sine", "n_train": 256, "n_test": 128, "dim": 8}},
            "model": {{"arch": "mlp", "hidden": [{width}, {width}], "activation": "tanh"}},
            "loss": {{"kind": "squared"}}, "reduction": "mean",
            "flow": {{"t_end": 1.0, "method": "dopri5", "rtol": 1e-8, "atol": 1e-10}}}}"#
    );
    let spec = Spec::parse(&text, Format::Json).expect("a valid spec");
    let data = Dataset::resolve(&spec, Path::new(".")).expect("synthetic data");
    Experiment::new(spec, data)
}

/// The cnn bench spec (SPEC §10: conv2d 1 -> c, k 3 on 8x8, tanh, avg_pool 2,
/// dense 64, dense 10; N 256, M 64) with `channels` in its convolution and
/// w0 drawn from the spec's seed (the spec's own w0 fits 8 channels only),
/// for the growth of one evaluation with the convolution's width.
pub fn cnn_channels_experiment(channels: usize) -> Experiment {
    let path = bench_dir().join("cnn.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut spec: serde_json::Value =
        serde_json::from_str(&text).expect("the cnn bench spec is JSON");
    spec["model"]["layers"][0]["channels"] = channels.into();
    spec.as_object_mut()
        .expect("a spec is an object")
        .remove("init");
    let spec = Spec::parse(&spec.to_string(), Format::Json).expect("a valid spec");
    let data = Dataset::resolve(&spec, &bench_dir()).expect("inline data");
    Experiment::new(spec, data)
}

/// The bench spec `name` with its flow replaced by `flow` (the same data,
/// model and w0): plain sgd and gd over the steps of an optimizer bench.
pub fn with_flow(name: &str, flow: serde_json::Value) -> Experiment {
    let path = bench_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut spec: serde_json::Value = serde_json::from_str(&text).expect("a bench spec is JSON");
    spec["flow"] = flow;
    let spec = Spec::parse(&spec.to_string(), Format::Json).expect("a valid spec");
    let data = Dataset::resolve(&spec, &bench_dir()).expect("inline data");
    Experiment::new(spec, data)
}
