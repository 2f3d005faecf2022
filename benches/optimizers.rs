//! Whole runs of the discrete optimizers (SPEC §9) with both
//! decompositions and the second-order term: the sgd_momentum and adam
//! bench specs (mlp [128, 128], N 256, M 128, batch 32, 400 steps), and,
//! on the same data, model and w0, plain sgd (no momentum: factored
//! kernels, no per-point buffers) beside gd with the exact path kernel
//! over the same 400 steps (lr 0.05, t_end 20), the pair that issue 11's
//! "plain sgd costs no more than 3x gd" compares.
mod common;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::json;
use std::time::Duration;

fn bench_optimizers(c: &mut Criterion) {
    let mut g = c.benchmark_group("optimizer");
    g.sample_size(10).measurement_time(Duration::from_secs(60));
    let plain =
        json!({"method": "sgd", "lr": 0.05, "steps": 400, "batch_size": 32, "shuffle": "epoch"});
    let gd = json!({"method": "gd", "lr": 0.05, "t_end": 20.0, "exact_path_kernel": true});
    let runs = [
        (
            "sgd_momentum",
            common::load(&common::bench_dir().join("sgd_momentum.json")),
        ),
        ("adam", common::load(&common::bench_dir().join("adam.json"))),
        ("sgd_plain", common::with_flow("sgd_momentum", plain)),
        ("gd_exact", common::with_flow("sgd_momentum", gd)),
    ];
    for (name, exp) in runs {
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| exp.run(&mut |_| {}).expect("the bench specs run"))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_optimizers);
criterion_main!(benches);
