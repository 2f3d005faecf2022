//! The conditions' crossing counts on runs with sliding modes (issue 12,
//! proofs.md E14): a kink held in a sliding mode sits at zero, its sign at
//! the sample times is rounding, and it is not counted as crossing. With
//! `flow.events` every crossing ends a step, so the counts are exactly the
//! located crossings of each kind, and `sliding_modes` the slide events.
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
