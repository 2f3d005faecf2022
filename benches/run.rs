//! Whole runs of the bench specs (dopri5 at their tolerances), the figure to
//! compare with other tools' steady-state solves.
mod common;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::time::Duration;

fn bench_runs(c: &mut Criterion) {
    let mut g = c.benchmark_group("run");
    for name in ["small", "medium", "large", "classifier", "cnn"] {
        let exp = common::load(&common::bench_dir().join(format!("{name}.json")));
        if name != "small" {
            g.sample_size(10)
                .measurement_time(Duration::from_secs(if name == "large" { 60 } else { 20 }));
        }
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| exp.run(&mut |_| {}).expect("the bench specs run"))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_runs);
criterion_main!(benches);
