//! The conditions' summary (src/conditions.rs) as a user reads it: the
//! verdict line's thresholds at their boundaries, its counts, and
//! `differentiable_along_path`. Built from hand-set measures, so each
//! branch is reached on purpose.
use pathkernel::conditions::optimizer::OptimizerConditions;
use pathkernel::conditions::{AVERAGE_TOL, Conditions, KinkEvent, LOSS_RISE_TOL};
use pathkernel::kinks::Kink;

/// Measures of a quiet smooth run: nothing crossed, nothing violated.
fn quiet() -> Conditions {
    Conditions {
        model_smooth: true,
        loss_smooth: true,
        kernel_sign_changes: 1,
        kernel_pairs: 3,
        tangent_kernel_change: Some(0.5),
        coefficient_variation: None,
        ..Conditions::default()
    }
}

/// The verdict of `c`: an optimizer part that adds nothing (every point in
/// a batch, no flip, no decay) makes the verdict be recomputed.
fn verdict(c: Conditions) -> String {
    let silent = OptimizerConditions {
        decay_term_ratio: Some(0.0),
        ..OptimizerConditions::default()
    };
    c.with_optimizer(silent).verdict
}

const QUIET: &str = "conditions: smooth model and loss; no kink crossed; \
     K^g changed sign on 1 of 3 pairs; K^g moved 5.0e-1; one a fits A to undefined; \
     a_i within the range of -l'_i; loss never rose";

#[test]
fn a_quiet_run_reads_as_such() {
    assert_eq!(verdict(quiet()), QUIET);
}

/// Each threshold is "above is a violation": exactly at it the verdict is
/// still clean, at twice it the value is printed.
#[test]
fn the_thresholds_hold_at_their_boundary() {
    let at = |average: f64, rise: f64| {
        verdict(Conditions {
            weighted_average_excess: average,
            loss_increase: rise,
            ..quiet()
        })
    };
    assert_eq!(at(AVERAGE_TOL, LOSS_RISE_TOL), QUIET);
    let both = at(2.0 * AVERAGE_TOL, 2.0 * LOSS_RISE_TOL);
    assert!(
        both.ends_with("a_i outside the range of -l'_i by 2.0e-6; loss rose by 2.0e-9 of L0"),
        "{both}"
    );
    assert_eq!((AVERAGE_TOL, LOSS_RISE_TOL), (1e-6, 1e-9));
}

#[test]
fn the_verdict_names_which_of_model_and_loss_is_kinked() {
    for (model_smooth, loss_smooth, words) in [
        (true, true, "smooth model and loss"),
        (false, true, "kinked model, smooth loss"),
        (true, false, "smooth model, kinked loss"),
        (false, false, "kinked model and loss"),
    ] {
        let v = verdict(Conditions {
            model_smooth,
            loss_smooth,
            ..quiet()
        });
        assert!(v.starts_with(&format!("conditions: {words}; ")), "{v}");
    }
}

/// The crossings are the sum of both kinds, dated by the first sample that
/// showed one; events add their count and first time.
#[test]
fn the_verdict_counts_crossings_and_events() {
    let crossed = Conditions {
        model_smooth: false,
        activation_kink_crossings: 2,
        loss_kink_crossings: 3,
        kink_crossing_times: vec![0.25, 0.5],
        ..quiet()
    };
    let v = verdict(crossed.clone());
    assert!(
        v.contains("; 5 kink crossings (2 activation, 3 loss) from t = 0.25; K^g"),
        "{v}"
    );
    // Without a kept time (the list is capped), only the count.
    let v = verdict(Conditions {
        kink_crossing_times: vec![],
        ..crossed.clone()
    });
    assert!(v.contains("; 5 kink crossings; K^g"), "{v}");
    let kink = Kink {
        kind: "activation",
        set: "train",
        point: 0,
        layer: Some(0),
        unit: 1,
    };
    let event = |t: f64| KinkEvent {
        t,
        event: None,
        kink,
    };
    let v = verdict(Conditions {
        events: vec![event(0.125), event(0.75)],
        event_count: 9,
        ..crossed
    });
    assert!(
        v.contains("from t = 0.25, 9 located as events from t = 0.125; K^g"),
        "{v}"
    );
}

/// Differentiable along the path: each of f and l smooth, or never crossed
/// at a kink.
#[test]
fn differentiable_along_the_path_needs_each_part_smooth_or_uncrossed() {
    let case = |model_smooth: bool, activation: usize, loss_smooth: bool, loss: usize| {
        Conditions {
            model_smooth,
            loss_smooth,
            activation_kink_crossings: activation,
            loss_kink_crossings: loss,
            ..Conditions::default()
        }
        .differentiable_along_path()
    };
    assert!(case(true, 0, true, 0));
    // Counts on a smooth part cannot break it (they are 0 in practice).
    assert!(case(true, 4, true, 4));
    assert!(case(false, 0, false, 0));
    assert!(!case(false, 1, true, 0));
    assert!(!case(true, 0, false, 1));
    assert!(!case(false, 1, false, 1));
    assert!(!case(false, 1, false, 0));
    assert!(!case(false, 0, false, 1));
}

/// `events` and `event_count` are written only for a run that located
/// events (SPEC: absent without `flow.events`).
#[test]
fn events_are_reported_only_when_located() {
    let fields = |c: &Conditions| serde_json::to_value(c).unwrap();
    let plain = fields(&quiet());
    assert!(plain.get("events").is_none(), "{plain}");
    assert!(plain.get("event_count").is_none(), "{plain}");
    let kink = Kink {
        kind: "loss",
        set: "train",
        point: 2,
        layer: None,
        unit: 0,
    };
    let located = fields(&Conditions {
        events: vec![KinkEvent {
            t: 0.125,
            event: Some("slide"),
            kink,
        }],
        event_count: 3,
        ..quiet()
    });
    assert_eq!(located["event_count"], 3);
    assert_eq!(located["events"][0]["t"], 0.125);
    assert_eq!(located["events"][0]["event"], "slide");
    assert_eq!(located["events"][0]["point"], 2);
}

/// The optimizer's part names how many kernel entries flipped (those with
/// at least one flip, not all of them), singular or plural.
#[test]
fn the_flip_count_names_the_entries_that_flipped() {
    let flips = |per_pair: Vec<Vec<usize>>| {
        OptimizerConditions {
            preconditioned_kernel_sign_flips: per_pair.iter().flatten().sum(),
            preconditioned_kernel_flips_per_pair: per_pair,
            decay_term_ratio: Some(0.0),
            ..OptimizerConditions::default()
        }
        .describe()
    };
    assert_eq!(
        flips(vec![vec![2, 0], vec![1, 0]]),
        ["the per-step kernel changed sign 3 times on 2 entries"]
    );
    assert_eq!(
        flips(vec![vec![0, 1]]),
        ["the per-step kernel changed sign 1 time on 1 entry"]
    );
    assert!(flips(vec![vec![0, 0]]).is_empty());
}
