//! `kernel` and `learn` (SPEC §13) beside the run they replay, on the
//! medium bench spec (N 256, M 128) and on its shape with N = 512, the
//! issue's size for `learn`. The run is measured in the same group so that
//! the ratios are read off one report.
mod common;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use pathkernel::data::Dataset;
use pathkernel::experiment::Experiment;
use pathkernel::replay::{ErrorEstimate, RunRecord, experiment, kernel_report};
use pathkernel::spec::{Format, Spec};
use std::time::Duration;

/// The medium spec's model, loss and flow on synthetic data with N = 512.
fn medium_512() -> Experiment {
    let medium = common::load(&common::bench_dir().join("medium.json"));
    let mut spec: Spec = medium.spec.clone();
    let text =
        r#"{"source": "synthetic", "function": "sine", "n_train": 512, "n_test": 128, "dim": 8}"#;
    spec.data = serde_json::from_str(text).unwrap();
    let spec = Spec::parse(&serde_json::to_string(&spec).unwrap(), Format::Json).unwrap();
    let data = Dataset::resolve(&spec, std::path::Path::new(".")).unwrap();
    let mut exp = Experiment::new(spec, data);
    exp.w0 = medium.w0.clone();
    exp
}

fn bench_learn(c: &mut Criterion) {
    let mut g = c.benchmark_group("learn");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    let medium = common::load(&common::bench_dir().join("medium.json"));
    for (name, exp) in [("medium", medium), ("medium_n512", medium_512())] {
        let out = exp.run(&mut |_| {}).expect("the bench specs run");
        let record = RunRecord::of_run(&exp, &out);
        g.bench_function(BenchmarkId::new("run", name), |b| {
            b.iter(|| exp.run(&mut |_| {}).unwrap())
        });
        // New points: the run's own M query points (the replay is the
        // same work for any M points).
        let replay = experiment(&record, record.test_x.clone(), None).unwrap();
        // SPEC §13's default (a second replay on halved steps) and the
        // single replay of `--error-estimate none`.
        g.bench_function(BenchmarkId::new("kernel", name), |b| {
            b.iter(|| kernel_report(&record, &replay, ErrorEstimate::Halved).unwrap())
        });
        g.bench_function(BenchmarkId::new("kernel_no_estimate", name), |b| {
            b.iter(|| kernel_report(&record, &replay, ErrorEstimate::None).unwrap())
        });
        g.bench_function(BenchmarkId::new("learn", name), |b| {
            b.iter(|| pathkernel::learn::learn(&record, None).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench_learn);
criterion_main!(benches);
