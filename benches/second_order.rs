//! The second-order term (`crate::second_order`): one `add_step` (a Taylor
//! pass over the M query points) beside one right-hand-side evaluation of
//! the same spec, on the small and medium bench specs.
mod common;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use pathkernel::flow::FlowProblem;
use pathkernel::second_order::SecondOrder;
use pathkernel::stepper::OdeSystem;

fn bench_second_order(c: &mut Criterion) {
    let mut g = c.benchmark_group("second_order");
    for name in ["small", "medium"] {
        let exp = common::load(&common::bench_dir().join(format!("{name}.json")));
        let model = exp.model.as_ref();
        let mut flow = FlowProblem::new(model, exp.spec.loss, exp.spec.reduction, &exp.data);
        let y = flow.initial_state(&exp.w0);
        let mut dy = vec![0.0; y.len()];
        g.bench_function(BenchmarkId::new("rhs", name), |b| {
            b.iter(|| rayon::scope(|_| flow.rhs(0.0, &y, &mut dy)))
        });
        // A gd step's Δ: −lr times the gradient part of the derivative.
        flow.rhs(0.0, &y, &mut dy);
        let delta: Vec<f64> = dy[..model.n_params()].iter().map(|d| 0.1 * d).collect();
        let mut term = SecondOrder::new(model, &exp.data.test_x);
        g.bench_function(BenchmarkId::new("add_step", name), |b| {
            b.iter(|| rayon::scope(|_| term.add_step(&exp.w0, &delta)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_second_order);
criterion_main!(benches);
