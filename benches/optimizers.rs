//! Whole runs of the discrete optimizers (SPEC §9) with both
//! decompositions and the second-order term: the sgd_momentum and adam
//! bench specs (mlp [128, 128], N 256, M 128, batch 32, 400 steps), and,
//! on the same data, model and w0, plain sgd (no momentum: factored
//! kernels, no per-point buffers) beside gd with the exact path kernel
//! over the same 400 steps (lr 0.05, t_end 20), the pair that issue 11's
//! "plain sgd costs no more than 3x gd" compares. And the product that
//! bounds Adam's step from below: its per-step kernel ∇f(q)ᵀ P_k ∇f(x),
//! (M C) x P by P x (N C) = 128 x 17,793 x 256 on the bench specs, as
//! one product of formed matrices (`gemm_deep`, the attainable rate) and
//! as `discrete::query::weighted_product` forms it (blocks of both
//! Jacobians formed from their factors); throughput in FLOP.
mod common;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pathkernel::discrete::query::{PRODUCT_ROWS, Query, weighted_product};
use pathkernel::linalg::{gemm_deep, slice_view, slice_view_mut};
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

fn bench_kernel_product(c: &mut Criterion) {
    let (m, p, n) = (128, 17_793, 256);
    let mut g = c.benchmark_group("adam_kernel_product");
    g.sample_size(20)
        .throughput(Throughput::Elements(2 * (m * p * n) as u64));
    // Fixed, ordinary numbers (no denormals): the product's rate does not
    // depend on them.
    let fill = |len: usize, k: f64| (0..len).map(|i| ((i as f64) * k).sin()).collect::<Vec<_>>();
    let (a, b, d) = (fill(p * m, 0.37), fill(p * n, 0.11), fill(p, 0.05));
    let mut out = vec![0.0; m * n];
    g.bench_function("gemm", |bench| {
        bench.iter(|| {
            let dst = slice_view_mut(&mut out, m, n);
            gemm_deep(
                dst,
                false,
                slice_view(&a, p, m).transpose(),
                slice_view(&b, p, n),
                1.0,
            )
        })
    });
    let mut blocks = vec![0.0; PRODUCT_ROWS * (m + n)];
    g.bench_function("weighted_product_formed", |bench| {
        bench.iter(|| {
            weighted_product(
                &mut out,
                (Query::Formed(&a), m),
                &d,
                (Query::Formed(&b), n),
                &mut blocks,
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench_optimizers, bench_kernel_product);
criterion_main!(benches);
