//! One right-hand-side evaluation of the augmented flow: the bench specs,
//! a width sweep of the mlp and a channel sweep of the cnn. Throughput is in floating-point operations (criterion
//! prints it as elements/s: read "Gelem/s" as GFLOP/s).
mod common;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pathkernel::experiment::Experiment;
use pathkernel::flow::FlowProblem;
use pathkernel::linalg::{gemm, view, view_mut};
use pathkernel::stepper::OdeSystem;

fn bench_rhs(c: &mut Criterion, group: &str, name: &str, exp: &Experiment) {
    let mut flow = FlowProblem::new(
        exp.model.as_ref(),
        exp.spec.loss,
        exp.spec.reduction,
        &exp.data,
    );
    let y = flow.initial_state(&exp.w0);
    let mut dy = vec![0.0; y.len()];
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(flow.flops_per_evaluation() as u64));
    if flow.flops_per_evaluation() > 1e9 {
        g.sample_size(20);
    }
    g.bench_function(BenchmarkId::from_parameter(name), |b| {
        b.iter(|| flow.rhs(0.0, &y, &mut dy))
    });
    g.finish();
}

fn bench_specs(c: &mut Criterion) {
    for name in ["small", "medium", "large", "classifier", "cnn"] {
        let exp = common::load(&common::bench_dir().join(format!("{name}.json")));
        bench_rhs(c, "rhs", name, &exp);
    }
}

fn bench_widths(c: &mut Criterion) {
    bench_sweep(
        c,
        "rhs_width",
        &[64, 128, 256, 512],
        common::width_experiment,
    );
}

/// One evaluation per value of a swept size, in one group.
fn bench_sweep(c: &mut Criterion, group: &str, values: &[usize], make: fn(usize) -> Experiment) {
    for &v in values {
        bench_rhs(c, group, &v.to_string(), &make(v));
    }
}

/// The cnn bench with 4, 8, 16 and 32 channels in its convolution: how the
/// cost of one evaluation grows with the convolution's width (P = 3,058,
/// 5,402, 10,090, 19,466).
fn bench_cnn_channels(c: &mut Criterion) {
    bench_sweep(
        c,
        "rhs_cnn_channels",
        &[4, 8, 16, 32],
        common::cnn_channels_experiment,
    );
}

/// The machine's attainable f64 rate: a 2048³ product through the same
/// `linalg::gemm` (both cores), the yardstick for the evaluations' rates.
fn bench_peak(c: &mut Criterion) {
    let n = 2048;
    let a = nalgebra::DMatrix::from_fn(n, n, |i, j| ((i * 7 + j * 3) % 11) as f64 - 5.0);
    let b = a.transpose();
    let mut out = nalgebra::DMatrix::zeros(n, n);
    let mut g = c.benchmark_group("peak");
    g.throughput(Throughput::Elements(2 * (n * n * n) as u64))
        .sample_size(10);
    g.bench_function("gemm_2048", |bench| {
        bench.iter(|| {
            rayon::scope(|_| gemm(view_mut(&mut out), false, view(&a), view(&b), 1.0));
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_peak,
    bench_specs,
    bench_widths,
    bench_cnn_channels
);
criterion_main!(benches);
