//! The hot path allocates nothing after set-up: one right-hand-side
//! evaluation of the flow, and whole steps of the Runge–Kutta engine, are
//! counted by a global allocator that counts. (Its own test binary: a global
//! allocator is per binary.)
use pathkernel::data::Dataset;
use pathkernel::experiment::{Experiment, integration};
use pathkernel::flow::FlowProblem;
use pathkernel::spec::{Format, Spec};
use pathkernel::stepper::{OdeSystem, RungeKutta};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
/// The pool whose threads count now: each `counted` call makes its own.
static GENERATION: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// The generation of the pool this thread belongs to: only the current
    /// pool's allocations count. The test harness's own threads allocate at
    /// any time (printing another test's result, say), and so do an earlier
    /// check's pool threads while they shut down (rayon does not join them
    /// on drop): under load both were counted.
    static COUNTED: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn count() {
    // try_with: the allocator may run while a thread's locals are torn down.
    let current = GENERATION.load(Ordering::Relaxed);
    if COUNTED.try_with(Cell::get).is_ok_and(|g| g == current) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.load(Ordering::SeqCst)
}

/// Specs small enough to run fast and wide enough to take the parallel paths.
fn experiments() -> Vec<Experiment> {
    let spec = |arch: &str, n: usize, method: &str| {
        format!(
            r#"{{"seed": 3, "data": {{"source": "synthetic", "function": "sine", "n_train": {n}, "n_test": {m}, "dim": 3}},
                "model": {arch}, "loss": {{"kind": "squared"}}, "reduction": "mean",
                "flow": {{"t_end": 0.5, "method": {method}}}}}"#,
            m = n / 2
        )
    };
    [
        spec(
            r#"{"arch": "mlp", "hidden": [8], "activation": "tanh"}"#,
            8,
            r#""dopri5""#,
        ),
        spec(
            r#"{"arch": "mlp", "hidden": [256, 256], "activation": "gelu"}"#,
            256,
            r#""dop853", "rtol": 1e-6"#,
        ),
        spec(
            r#"{"arch": "resmlp", "width": 64, "blocks": 2}"#,
            128,
            r#""rk4", "step": 0.05"#,
        ),
        spec(r#"{"arch": "diag_linear"}"#, 16, r#""gd", "lr": 0.05"#),
        classifier(),
        cnn(),
        relu_events(r#""dop853", "rtol": 1e-10"#),
        relu_events(r#""rk4", "step": 0.01"#),
    ]
    .iter()
    .map(|text| {
        let spec = Spec::parse(text, Format::Json).expect("valid spec");
        let data = Dataset::resolve(&spec, Path::new(".")).expect("data");
        Experiment::new(spec, data)
    })
    .collect()
}

/// Issue 12's relu mlp [16, 8] with `flow.events`, up to t = 0.2, before
/// its sliding mode: four events (proofs.md §9), each located on the dense
/// output and refined, with the branches locked.
fn relu_events(method: &str) -> String {
    format!(
        r#"{{"seed": 3, "data": {{"source": "synthetic", "function": "sine", "n_train": 12, "n_test": 5, "dim": 3}},
            "model": {{"arch": "mlp", "hidden": [16, 8], "activation": "relu", "parameterization": "ntk"}},
            "loss": {{"kind": "squared"}}, "reduction": "mean",
            "flow": {{"t_end": 0.2, "method": {method}, "events": true}}}}"#
    )
}

/// A C = 4 softmax classifier (SPEC §8) large enough for the parallel
/// paths of the kernel blocks: N = 96, M = 48, mlp [64, 64], inline data.
fn classifier() -> String {
    let point = |k: usize| {
        let k = k as f64;
        vec![(0.7 * k).sin(), (1.3 * k).cos(), (0.1 * k).sin()]
    };
    let train: Vec<Vec<f64>> = (0..96).map(point).collect();
    let test: Vec<Vec<f64>> = (96..144).map(point).collect();
    let labels: Vec<usize> = (0..96).map(|k| k % 4).collect();
    serde_json::json!({
        "seed": 3,
        "data": {"source": "inline", "train_x": train, "train_y": labels, "test_x": test},
        "model": {"arch": "mlp", "hidden": [64, 64], "activation": "tanh", "outputs": 4},
        "loss": {"kind": "cross_entropy"}, "reduction": "mean",
        "flow": {"t_end": 0.5, "method": "dopri5"}
    })
    .to_string()
}

/// A small CNN (SPEC §10) with every layer kind: conv2d (stride 2, same),
/// relu, layer_norm, a second conv2d, tanh, avg_pool, flatten, dense; C = 3
/// squared loss on 4x4 inputs, N = 24, M = 12.
fn cnn() -> String {
    let image = |k: usize| -> Vec<f64> {
        (0..16)
            .map(|j| ((k * 16 + j) as f64 * 0.37).sin())
            .collect()
    };
    let train: Vec<Vec<f64>> = (0..24).map(image).collect();
    let test: Vec<Vec<f64>> = (24..36).map(image).collect();
    let y: Vec<Vec<f64>> = (0..24)
        .map(|k| vec![(k as f64).sin(), (k as f64).cos(), 0.1 * k as f64])
        .collect();
    serde_json::json!({
        "seed": 3,
        "data": {"source": "inline", "train_x": train, "train_y": y, "test_x": test},
        "model": {"arch": "layers", "input_shape": [1, 4, 4], "outputs": 3, "layers": [
            {"kind": "conv2d", "channels": 4, "kernel": 3, "padding": "same"},
            {"kind": "activation", "name": "relu"},
            {"kind": "layer_norm"},
            {"kind": "conv2d", "channels": 3, "kernel": 3, "stride": 2, "padding": "same"},
            {"kind": "activation", "name": "tanh"},
            {"kind": "avg_pool", "size": 2},
            {"kind": "flatten"},
            {"kind": "dense", "units": 5},
            {"kind": "activation", "name": "softplus"},
            {"kind": "dense", "units": 3}]},
        "loss": {"kind": "squared"}, "reduction": "mean",
        "flow": {"t_end": 0.5, "method": "dopri5"}
    })
    .to_string()
}

/// Runs `check` as the engine runs it: on a thread of a rayon pool (see
/// `Experiment::run`), where splitting work pushes jobs on the thread's own
/// deque (jobs injected from outside a pool go through a shared queue that
/// allocates a block every few dozen jobs). The pool is two threads whose
/// allocations count, so that the parallel paths are counted too. The
/// counter is shared, so the tests of this binary take turns: one test's
/// set-up must not be counted against another's hot loop.
fn counted(check: impl FnOnce() + Send) {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let generation = GENERATION.fetch_add(1, Ordering::SeqCst) + 1;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .start_handler(move |_| COUNTED.set(generation))
        .build()
        .expect("a thread pool");
    // Each worker's matrix-product packing buffer is a thread-local,
    // allocated on that thread's first product: set-up, done here on every
    // worker, so that a piece first stolen by the other worker during the
    // counted calls cannot look like an allocation of the hot path.
    pool.broadcast(|_| {
        // 80³ multiply-adds: below the size where gemm splits across
        // threads, so each worker packs for itself.
        let a = nalgebra::DMatrix::from_element(80, 80, 0.5);
        let mut c = nalgebra::DMatrix::zeros(80, 80);
        use pathkernel::linalg::{gemm, view, view_mut};
        gemm(view_mut(&mut c), false, view(&a), view(&a), 1.0);
    });
    pool.install(check);
}

#[test]
fn right_hand_side_and_steps_allocate_nothing_after_set_up() {
    counted(check_allocations);
}

fn check_allocations() {
    for exp in experiments() {
        let mut flow = FlowProblem::new(
            exp.model.as_ref(),
            exp.spec.loss,
            exp.spec.reduction,
            &exp.data,
        );
        let y = flow.initial_state(&exp.w0);
        let mut dy = vec![0.0; y.len()];
        // The first calls may set up the thread pool and each thread's
        // packing buffers (on whichever thread steals a piece first).
        for _ in 0..20 {
            flow.rhs(0.0, &y, &mut dy);
        }
        let before = allocations();
        for _ in 0..20 {
            flow.rhs(0.0, &y, &mut dy);
        }
        assert_eq!(allocations() - before, 0, "rhs of {:?}", exp.spec.model);

        // Whole steps: count from the second accepted step to the last.
        let (tableau, control) = integration(&exp.spec.flow);
        let mut rk = RungeKutta::new(tableau, y.len());
        rk.locate_events(exp.spec.flow.events);
        let mut events = 0;
        let mut state = y.clone();
        let mut counts = Vec::with_capacity(100_000);
        rk.integrate(
            &mut flow,
            &mut state,
            exp.spec.flow.t_end,
            control,
            &mut |_, step| {
                if counts.len() < counts.capacity() {
                    counts.push((step.index, allocations()));
                }
                events += usize::from(step.event.is_some());
            },
        )
        .expect("runs");
        assert_eq!(events > 0, exp.spec.flow.events, "events located");
        let (first, last) = (counts[1].1, counts.last().unwrap().1);
        assert_eq!(last - first, 0, "steps of {:?} allocated", exp.spec.model);
    }
}

/// Sampling the conditions after a step allocates nothing either: a relu
/// mlp with the hinge loss, so that kink pre-activations and loss branches
/// are read at every sample.
#[test]
fn sampling_the_conditions_allocates_nothing() {
    let mlp = r#"{"seed": 3, "data": {"source": "synthetic", "function": "xor", "n_train": 16, "n_test": 8, "dim": 2},
            "model": {"arch": "mlp", "hidden": [8, 8], "activation": "relu"}, "loss": {"kind": "hinge"},
            "flow": {"t_end": 0.5, "method": "rk4", "step": 0.05}}"#;
    // The CNN's relu reads its pre-activations from a layer input.
    for text in [mlp.to_owned(), cnn()] {
        sample_conditions(&text);
    }
}

fn sample_conditions(text: &str) {
    counted(|| {
        let spec = Spec::parse(text, Format::Json).expect("valid spec");
        let data = Dataset::resolve(&spec, Path::new(".")).expect("data");
        let exp = Experiment::new(spec, data);
        let model = exp.model.as_ref();
        let mut flow = FlowProblem::new(model, exp.spec.loss, exp.spec.reduction, &exp.data);
        let mut tracker = pathkernel::conditions::Tracker::new(model, exp.spec.loss, &flow);
        let y = flow.initial_state(&exp.w0);
        let mut dy = vec![0.0; y.len()];
        for _ in 0..20 {
            flow.rhs(0.0, &y, &mut dy);
        }
        let mut k = 0.0;
        let steady = steady_allocations(|| {
            flow.rhs(0.0, &y, &mut dy);
            tracker.sample(model, &flow, k, flow.layout().path_kernel(&dy));
            k += 1.0;
        });
        assert_eq!(steady, 0);
    });
}

/// The allocations of 20 calls of `step`, in the quieter of two windows.
/// Under load, rayon's own queues (a work-stealing deque that grows, an
/// epoch's deferred free) may allocate once when a piece is first stolen
/// in a new pattern: that is the pool's set-up, not the hot path. An
/// allocation per call shows in both windows, so the minimum still
/// catches it (a planted `Vec` per sample gives 20).
fn steady_allocations(mut step: impl FnMut()) -> usize {
    let mut window = || {
        let before = allocations();
        for _ in 0..20 {
            step();
        }
        allocations() - before
    };
    let first = window();
    first.min(window())
}

/// The second-order term's Taylor pass allocates nothing after `new`, on
/// every experiment's model (mlp, resmlp, diag_linear, the classifier, the
/// CNN with every layer kind) over its query points.
#[test]
fn second_order_steps_allocate_nothing_after_set_up() {
    counted(|| {
        for exp in experiments() {
            let model = exp.model.as_ref();
            let mut term = pathkernel::second_order::SecondOrder::new(model, &exp.data.test_x);
            let delta: Vec<f64> = exp.w0.iter().map(|w| 1e-3 * w).collect();
            for _ in 0..5 {
                term.add_step(&exp.w0, &delta);
            }
            let before = allocations();
            for _ in 0..20 {
                term.add_step(&exp.w0, &delta);
            }
            assert_eq!(
                allocations() - before,
                0,
                "add_step of {:?}",
                exp.spec.model
            );
        }
    });
}

/// The discrete optimizers' loop (SPEC §9) allocates nothing per step
/// either: sgd with Nesterov momentum and decay (per-point buffers, the
/// exact form's Jacobians and segment splits), momentum 0.5 (whose
/// deferred sums rebase every fourth step) and plain sgd with decay
/// (factored kernels), counted from the second step's end to the last.
#[test]
fn optimizer_steps_allocate_nothing_after_set_up() {
    for flow in [
        r#"{"method": "sgd", "lr": 0.05, "steps": 12, "batch_size": 5, "momentum": 0.9, "nesterov": true, "weight_decay": 0.01}"#,
        r#"{"method": "sgd", "lr": 0.05, "steps": 12, "batch_size": 5, "momentum": 0.5}"#,
        r#"{"method": "sgd", "lr": 0.05, "steps": 12, "batch_size": 5, "weight_decay": 0.01, "schedule": {"kind": "cosine"}}"#,
        r#"{"method": "adam", "lr": 0.01, "steps": 12, "batch_size": 5, "weight_decay": 0.01}"#,
    ] {
        let text = format!(
            r#"{{"seed": 2, "data": {{"source": "synthetic", "function": "sine", "n_train": 12, "n_test": 5, "dim": 3}},
                "model": {{"arch": "mlp", "hidden": [8, 6], "activation": "tanh"}},
                "loss": {{"kind": "squared"}}, "reduction": "mean", "flow": {flow}}}"#
        );
        counted(|| {
            let spec = Spec::parse(&text, Format::Json).expect("valid spec");
            let data = Dataset::resolve(&spec, Path::new(".")).expect("data");
            let exp = Experiment::new(spec, data);
            let mut counts = Vec::with_capacity(64);
            exp.run(&mut |_| {
                if counts.len() < counts.capacity() {
                    counts.push(allocations());
                }
            })
            .expect("runs");
            assert_eq!(
                counts.last().unwrap() - counts[1],
                0,
                "steps of {flow} allocated"
            );
        });
    }
}

/// The loss trace a run keeps (`loss_trace`) is two preallocated buffers:
/// recording samples, thinning included, allocates nothing however long
/// the run.
#[test]
fn recording_the_loss_trace_allocates_nothing() {
    counted(|| {
        let mut trace = pathkernel::trace::LossTrace::new();
        let before = allocations();
        for j in 0..100_000 {
            trace.push(j as f64, 1.0 / (1.0 + j as f64));
        }
        assert_eq!(allocations() - before, 0);
        assert!(trace.finish().t.len() <= pathkernel::trace::MAX_POINTS);
    });
}
