//! The conditions tracker (src/conditions.rs) on real runs.
//!
//! The crossing counts on runs with sliding modes (issue 12,
//! proofs.md E16): a kink held in a sliding mode sits at zero, its sign at
//! the sample times is rounding, and it is not counted as crossing. With
//! `flow.events` every crossing ends a step, so the counts are exactly the
//! located crossings of each kind, and `sliding_modes` the slide events.
//! And the lists a report keeps of a run with many events.
use pathkernel::conditions::MAX_CROSSING_TIMES;
use pathkernel::data::Dataset;
use pathkernel::experiment::{Experiment, Outcome};
use pathkernel::spec::{Format, Spec};
use serde_json::{Value, json};
use std::path::Path;

fn run(value: &Value) -> Outcome {
    let spec = Spec::parse(&value.to_string(), Format::Json).expect("a valid spec");
    let data = Dataset::resolve(&spec, Path::new(".")).expect("data");
    Experiment::new(spec, data)
        .run(&mut |_| {})
        .expect("the run succeeds")
}

/// tests/sliding.rs's issue 12 relu network with `flow`.
fn relu_network(flow: Value) -> Value {
    json!({"seed": 3, "data": {"source": "synthetic", "function": "sine", "n_train": 12, "n_test": 5, "dim": 3},
           "model": {"arch": "mlp", "hidden": [16, 8], "activation": "relu", "parameterization": "ntk"},
           "loss": {"kind": "squared"}, "reduction": "mean", "flow": flow})
}

/// tests/sliding.rs's closed form: absolute loss, its margin at training
/// point 0 slides from t = 1/3 to the end.
fn loss_kink(flow: Value) -> Value {
    json!({"seed": 1,
        "data": {"source": "inline", "train_x": [[1.0], [0.0]], "train_y": [1.0, 10.0],
                 "test_x": [[0.5], [2.0]]},
        "model": {"arch": "linear"}, "init": {"w0": [0.0, 0.0]},
        "loss": {"kind": "absolute"}, "reduction": "sum", "flow": flow})
}

/// (activation crossings, loss crossings, slides) among the located events.
fn located(out: &Outcome) -> (usize, usize, usize) {
    let c = &out.conditions;
    assert_eq!(c.events.len(), c.event_count, "every event is listed");
    let count = |kind: &str, event: Option<&str>| {
        c.events
            .iter()
            .filter(|e| (e.kink.kind == kind || kind.is_empty()) && e.event == event)
            .count()
    };
    (
        count("activation", None),
        count("loss", None),
        count("", Some("slide")),
    )
}

#[test]
fn held_kinks_are_not_counted_as_crossings() {
    let cases = [
        (
            "relu network, dop853",
            relu_network(
                json!({"t_end": 1.0, "method": "dop853", "rtol": 1e-12, "atol": 1e-14, "events": true}),
            ),
        ),
        (
            "relu network with releases, dopri5",
            relu_network(
                json!({"t_end": 3.0, "method": "dopri5", "rtol": 1e-8, "atol": 1e-10, "events": true}),
            ),
        ),
        (
            "relu network, heun h = 1/16",
            relu_network(json!({"t_end": 1.0, "method": "heun", "step": 0.0625, "events": true})),
        ),
        (
            "loss kink, rk4 h = 1/16",
            loss_kink(json!({"t_end": 1.0, "method": "rk4", "step": 0.0625, "events": true})),
        ),
        (
            "loss kink, dopri5",
            loss_kink(
                json!({"t_end": 1.0, "method": "dopri5", "rtol": 1e-10, "atol": 1e-12, "events": true}),
            ),
        ),
    ];
    for (name, spec) in cases {
        let out = run(&spec);
        let c = &out.conditions;
        let (activation, loss, slides) = located(&out);
        assert!(slides > 0, "{name}: no sliding mode");
        assert_eq!(
            (
                c.activation_kink_crossings,
                c.loss_kink_crossings,
                c.sliding_modes
            ),
            (activation, loss, slides),
            "{name}: counted (activation, loss, slides) against the located ones; {:?}",
            c.events
        );
        assert!(!c.differentiable_along_path(), "{name}: a kink was held");
    }
}

/// A relu network with 300 query points and 3 training points: 172 events
/// (one a slide), at more than 64 step ends, so both lists are cut: the
/// report keeps the first [`MAX_CROSSING_TIMES`] events and crossing
/// times, in time order, and the counts stay whole.
#[test]
fn the_lists_keep_the_first_64() {
    let out = run(&json!({"seed": 3,
        "data": {"source": "synthetic", "function": "sine", "n_train": 3, "n_test": 300, "dim": 3},
        "model": {"arch": "mlp", "hidden": [16, 8], "activation": "relu", "parameterization": "ntk"},
        "loss": {"kind": "squared"}, "reduction": "mean",
        "flow": {"t_end": 1.0, "method": "dopri5", "rtol": 1e-6, "atol": 1e-8, "events": true}}));
    let c = &out.conditions;
    assert_eq!(c.event_count, 172);
    assert_eq!(c.sliding_modes, 1);
    assert_eq!(c.events.len(), MAX_CROSSING_TIMES);
    assert_eq!(c.kink_crossing_times.len(), MAX_CROSSING_TIMES);
    assert!(c.activation_kink_crossings > MAX_CROSSING_TIMES);
    assert!(c.events.windows(2).all(|e| e[0].t <= e[1].t));
    assert!(c.kink_crossing_times.windows(2).all(|t| t[0] < t[1]));
}

/// An entry of K^g that starts at exactly 0 and keeps one sign after has
/// no sign change: 0 is neither sign. Diagonal linear network f = Σ_j (u_j²
/// − v_j²) x_j on x = (1, 2), y* = 0, w0 = (u, v) = (1, 1, 0, 0):
/// K^g(q, x) = 4 Σ_j u_j² q_j x_j = 8 (u_1² − u_2²) for q = (2, −1), 0 at
/// w0; v stays 0 and u_j = exp(−2 x_j ∫ l'), so u_2 < u_1 for t > 0 and
/// K^g > 0 after w0 (q = (−2, 1): its negative). dopri5 samples the
/// steps' ends, which follow that solution.
#[test]
fn a_kernel_entry_at_zero_has_no_sign() {
    for (q, end_sign) in [([2.0, -1.0], 1.0), ([-2.0, 1.0], -1.0)] {
        let out = run(&json!({
            "data": {"source": "inline", "train_x": [[1.0, 2.0]], "train_y": [0.0], "test_x": [q]},
            "model": {"arch": "diag_linear"}, "init": {"w0": [1.0, 1.0, 0.0, 0.0]},
            "loss": {"kind": "squared"}, "reduction": "sum",
            "flow": {"t_end": 1.0, "method": "dopri5", "rtol": 1e-8, "atol": 1e-10}}));
        assert_eq!(out.tangent_kernel0[(0, 0)], 0.0);
        assert_eq!(out.tangent_kernel_end[(0, 0)].signum(), end_sign);
        assert_eq!(out.conditions.kernel_sign_changes, 0, "q = {q:?}");
    }
}

/// Absolute loss has three branches (l' = −1, 0, +1): a training point that
/// starts exactly on its kink (0) and leaves it has crossed once. Linear
/// model on x_1 = 1 (y* = 1) and three points x = 0 (y* = 10), w0 = (1,
/// 0): f(x_1) = 1 = y* at w0 (l'_1 = 0 there), the three push c up at
/// rate 3 while x_1's own l' = +1 pulls f(x_1) down at rate 2 once above,
/// so f(x_1) leaves upward at rate 1 and stays above: one change, shown
/// by the first step's sample.
#[test]
fn leaving_an_absolute_kink_is_a_crossing() {
    let out = run(&json!({
        "data": {"source": "inline", "train_x": [[1.0], [0.0], [0.0], [0.0]],
                 "train_y": [1.0, 10.0, 10.0, 10.0], "test_x": [[2.0]]},
        "model": {"arch": "linear"}, "init": {"w0": [1.0, 0.0]},
        "loss": {"kind": "absolute"}, "reduction": "sum",
        "flow": {"t_end": 1.0, "method": "rk4", "step": 0.125}}));
    let c = &out.conditions;
    assert_eq!(c.loss_kink_crossings, 1);
    assert_eq!(c.kink_crossing_times, [0.125]);
}
