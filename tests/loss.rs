//! Losses (SPEC §2): derivatives against the independent dual-number
//! reference, the reference against central differences, closed forms, kink
//! conventions, extreme outputs and convexity sanity.
use approx::{assert_relative_eq, relative_eq};
use num_dual::Dual64;
use pathkernel::loss::{Loss, TargetKind};
use proptest::prelude::*;
use std::f64::consts::LN_2;

const EPS: f64 = f64::EPSILON;
/// The smallest subnormal, 2^-1074: the absolute accuracy of subnormal results.
const TINY: f64 = f64::MIN_POSITIVE * f64::EPSILON;
/// Derivative tolerance in eps, relative: each side is at most ~8 roundings
/// or 1-ulp library calls (exp, ln1p, sinh, tanh), amplified by at most 3 by
/// cancellation (the reference sigmoid's quotient rule; cauchy's
/// 1 - 1/(1 + s^2) at |s| = 1 is 2), on two sides: 2 * 8 * 3 = 48 < 64.
const DERIV_ULPS: f64 = 64.0;
/// Value tolerance in eps, relative: at most ~4 roundings per side, amplified
/// by at most 4.2 (log_cosh at |d| = 1: (1 + 0.127 + ln 2) / 0.434), on two
/// sides: 2 * 4 * 4.2 = 34 < 48.
const VALUE_ULPS: f64 = 48.0;

/// y from rounding level to 1e300, both signs (the log scale weighted most,
/// so that overflow-prone magnitudes come up often), and the values at +-1.
fn wide_y() -> impl Strategy<Value = f64> {
    prop_oneof![
        2 => -50.0..50.0f64,
        1 => -1000.0..1000.0f64,
        4 => (any::<bool>(), -300.0..300.0f64).prop_map(|(neg, e)| {
            let m = 10f64.powf(e);
            if neg { -m } else { m }
        }),
        1 => Just(1.0),
        1 => Just(-1.0),
        1 => Just(0.0),
    ]
}

fn target_of(kind: TargetKind) -> BoxedStrategy<f64> {
    match kind {
        TargetKind::Real => prop_oneof![-10.0..10.0f64, Just(0.0)].boxed(),
        TargetKind::PlusMinusOne => prop::sample::select(vec![-1.0, 1.0]).boxed(),
        TargetKind::ZeroOne => prop::sample::select(vec![0.0, 1.0]).boxed(),
        TargetKind::ClassIndex => unreachable!("Loss::all holds the scalar losses"),
    }
}

/// A loss (huber's delta and cauchy's c drawn in [0.1, 10]), a target of its
/// kind, and y either anywhere or at a wide offset from the target (so near
/// the absolute loss's kink too).
fn loss_case() -> impl Strategy<Value = (Loss, f64, f64)> {
    (0..Loss::all().len(), 0.1..10.0f64)
        .prop_map(|(i, p)| match Loss::all()[i] {
            Loss::Huber { .. } => Loss::Huber { delta: p },
            Loss::Cauchy { .. } => Loss::Cauchy { c: p },
            loss => loss,
        })
        .prop_flat_map(|loss| (Just(loss), target_of(loss.target_kind())))
        .prop_flat_map(|(loss, t)| {
            let y = prop_oneof![wide_y(), wide_y().prop_map(move |o| t + o)];
            (Just(loss), Just(t), y)
        })
}

fn dual_at(loss: Loss, t: f64, y: f64) -> Dual64 {
    loss.value_dual(t, Dual64::new(y, 1.0))
}

proptest! {
    // Each case costs microseconds: 2048 keeps the rarer corners (a cauchy
    // case at |y| > 1e154) likely in every run.
    #![proptest_config(crate::cases(2048))]

    #[test]
    /// Exact kinks are included: there both sides state SPEC's convention.
    fn derivative_matches_dual_reference((loss, t, y) in loss_case()) {
        let ours = loss.derivative(t, y);
        let reference = dual_at(loss, t, y).eps;
        prop_assert!(
            relative_eq!(ours, reference, epsilon = DERIV_ULPS * TINY, max_relative = DERIV_ULPS * EPS),
            "{loss:?} l'({t}, {y:e}) = {ours:e}, reference {reference:e}"
        );
    }

    #[test]
    fn value_matches_dual_real_part((loss, t, y) in loss_case()) {
        let ours = loss.value(t, y);
        let reference = dual_at(loss, t, y).re;
        prop_assert!(
            relative_eq!(ours, reference, epsilon = VALUE_ULPS * TINY, max_relative = VALUE_ULPS * EPS),
            "{loss:?} l({t}, {y:e}) = {ours:e}, reference {reference:e}"
        );
    }
}

/// The reference is not trusted blindly: its derivative must match a central
/// difference of its own value. h = 2^-17 and dyadic points make y +- h and
/// y - y* exact; at these points (|y| <= 1.75, no kink or huber boundary
/// within 0.125) every |l'''| <= e^1.75 < 6 (the exponential loss; logistic
/// and bce <= 0.1, log_cosh <= 0.77, cauchy <= 1.5, the rest 0), so the
/// truncation error is below 6 h^2 / 6; rounding adds VALUE_ULPS eps max|l| / h.
#[test]
fn dual_reference_matches_central_difference() {
    let h = 2f64.powi(-17);
    for loss in Loss::all() {
        let targets: &[f64] = match loss.target_kind() {
            TargetKind::Real => &[0.5, -1.0],
            TargetKind::PlusMinusOne => &[1.0, -1.0],
            TargetKind::ZeroOne => &[0.0, 1.0],
            TargetKind::ClassIndex => unreachable!("Loss::all holds the scalar losses"),
        };
        for &t in targets {
            for y in [-1.75, -0.625, 0.375, 1.25] {
                let f = |x: f64| loss.value_dual(t, Dual64::new(x, 0.0)).re;
                let (fp, fm) = (f(y + h), f(y - h));
                let fd = (fp - fm) / (2.0 * h);
                let tol = h * h + VALUE_ULPS * EPS * fp.abs().max(fm.abs()) / h;
                let dual = dual_at(loss, t, y).eps;
                assert_relative_eq!(dual, fd, epsilon = tol, max_relative = 0.0);
            }
        }
    }
}

/// Closed forms (references from mpmath at 40 digits), value and derivative.
#[test]
fn closed_form_values() {
    let huber = |delta| Loss::Huber { delta };
    let cauchy = |c| Loss::Cauchy { c };
    let e = std::f64::consts::E;
    let cases = [
        (Loss::Squared, 1.0, 3.0, 2.0, 2.0),
        (Loss::Logistic, 1.0, 0.0, LN_2, -0.5),
        (
            Loss::Logistic,
            -1.0,
            2.0,
            2.126_928_011_042_972_5,
            0.880_797_077_977_882_4,
        ),
        (Loss::Bce, 1.0, 0.0, LN_2, -0.5),
        (Loss::Bce, 0.0, 0.0, LN_2, 0.5),
        (
            Loss::Bce,
            1.0,
            0.5,
            0.474_076_984_180_106_7,
            -0.377_540_668_798_145_4,
        ),
        // A tiny loss is kept to full relative accuracy, not rounded to 0.
        (
            Loss::Bce,
            1.0,
            40.0,
            4.248_354_255_291_589e-18,
            -4.248_354_255_291_589e-18,
        ),
        (Loss::Exponential, 1.0, 0.0, 1.0, -1.0),
        (Loss::Exponential, -1.0, 1.0, e, e),
        (huber(1.0), 0.0, 0.5, 0.125, 0.5),
        (huber(1.0), 0.0, 1.0, 0.5, 1.0),
        (huber(1.0), 1.0, 4.0, 2.5, 1.0),
        (huber(1.0), 1.0, -2.0, 2.5, -1.0),
        (huber(2.0), 0.0, 1.0, 0.5, 1.0),
        (huber(2.0), 0.0, -5.0, 8.0, -2.0),
        (
            Loss::LogCosh,
            0.0,
            0.5,
            0.120_114_506_958_277_52,
            0.5f64.tanh(),
        ),
        (
            Loss::LogCosh,
            0.0,
            1e-5,
            4.999_999_999_916_667e-11,
            1e-5f64.tanh(),
        ),
        (
            Loss::LogCosh,
            -1.0,
            2.0,
            2.309_328_504_577_785,
            0.995_054_753_686_730_5,
        ),
        (cauchy(1.0), 0.0, 2.0, 0.804_718_956_217_050_2, 0.4),
        (cauchy(2.0), 0.0, -1.0, 0.446_287_102_628_419_5, -0.8),
        // d = 1e200: (d/c)^2 would overflow; the value is ln(1e200).
        (cauchy(1.0), 0.0, 1e200, 460.517_018_598_809_14, 1e-200),
        (Loss::Absolute, 1.0, -2.0, 3.0, -1.0),
        (Loss::Hinge, 1.0, 0.5, 0.5, -1.0),
        (Loss::Hinge, -1.0, 0.5, 1.5, 1.0),
        (Loss::Hinge, 1.0, 2.0, 0.0, 0.0),
        (Loss::SquaredHinge, 1.0, 0.5, 0.125, -0.5),
        (Loss::SquaredHinge, -1.0, 2.0, 4.5, 3.0),
        (Loss::SquaredHinge, -1.0, -2.0, 0.0, 0.0),
    ];
    for (loss, t, y, value, slope) in cases {
        // A handful of roundings: 8 eps relative. No absolute epsilon
        // (approx's default would hide the 4e-18); exact zeros are exact.
        assert_relative_eq!(
            loss.value(t, y),
            value,
            epsilon = 0.0,
            max_relative = 8.0 * EPS
        );
        assert_relative_eq!(
            loss.derivative(t, y),
            slope,
            epsilon = 0.0,
            max_relative = 8.0 * EPS
        );
    }
}

/// SPEC §2: absolute at y = y* and hinge at y* y = 1 use derivative 0.
#[test]
fn kink_conventions() {
    assert_eq!(Loss::Absolute.derivative(2.0, 2.0), 0.0);
    assert_eq!(Loss::Absolute.value(2.0, 2.0), 0.0);
    for t in [1.0, -1.0] {
        assert_eq!(Loss::Hinge.derivative(t, t), 0.0);
        assert_eq!(Loss::Hinge.value(t, t), 0.0);
        assert_eq!(Loss::Hinge.value_dual(t, Dual64::new(t, 1.0)).eps, 0.0);
    }
    assert_eq!(
        Loss::Absolute.value_dual(2.0, Dual64::new(2.0, 1.0)).eps,
        0.0
    );
    assert_eq!(Loss::Absolute.kink_gap(2.0, 2.5), Some(0.5));
    assert_eq!(Loss::Hinge.kink_gap(-1.0, 0.5), Some(-1.5));
    for loss in Loss::all() {
        assert_eq!(
            loss.kink_gap(1.0, 0.25).is_none(),
            loss.is_smooth(),
            "{loss:?}"
        );
    }
}

/// No spurious overflow: the SPEC's examples and the limits far out.
#[test]
fn extreme_outputs() {
    for t in [1.0, -1.0] {
        // y* y = -800: the loss is 800 (not inf), the slope -y*.
        assert_eq!(Loss::Logistic.value(t, -800.0 * t), 800.0);
        assert_eq!(Loss::Logistic.derivative(t, -800.0 * t), -t);
        // y* y = -700 is representable, -800 truly overflows.
        let e700 = 700f64.exp();
        assert_eq!(Loss::Exponential.value(t, -700.0 * t), e700);
        assert_eq!(Loss::Exponential.derivative(t, -700.0 * t), -t * e700);
        assert_eq!(Loss::Exponential.value(t, -800.0 * t), f64::INFINITY);
        assert_eq!(
            Loss::Exponential.derivative(t, -800.0 * t),
            -t * f64::INFINITY
        );
    }
    for (t, y, value, slope) in [
        (1.0, -1000.0, 1000.0, -1.0),
        (1.0, 1000.0, 0.0, 0.0),
        (0.0, 1000.0, 1000.0, 1.0),
        (0.0, -1000.0, 0.0, 0.0),
    ] {
        assert_eq!(Loss::Bce.value(t, y), value);
        assert_eq!(Loss::Bce.derivative(t, y), slope);
    }
    for (t, y) in [(0.0, 1000.0), (0.0, -1000.0), (5.0, 1005.0), (5.0, -995.0)] {
        // ln cosh d = |d| - ln 2 + ln(1 + e^-2|d|), the last term 0 in f64.
        assert_eq!(Loss::LogCosh.value(t, y), 1000.0 - LN_2);
        assert_eq!(Loss::LogCosh.derivative(t, y).abs(), 1.0);
    }
    // Finite everywhere the true value is, never NaN. The true value overflows
    // only for the exponential loss past -y* y = ln(f64::MAX) = 709.78 and for
    // squared and squared_hinge once their base passes sqrt(2 f64::MAX) =
    // 1.9e154; the true derivative only for the exponential loss.
    for loss in Loss::all() {
        for t in [-1.0, 0.0, 1.0]
            .into_iter()
            .filter(|&t| loss.target_kind().accepts(t))
        {
            for y in [800.0, 1e4, 1e100, 1e150, 1e200, 1e300]
                .iter()
                .flat_map(|&y| [y, -y])
            {
                let exp_over = matches!(loss, Loss::Exponential) && -(t * y) > 709.79;
                let base = match loss {
                    Loss::Squared => (y - t).abs(),
                    Loss::SquaredHinge => (1.0 - t * y).max(0.0),
                    _ => 0.0,
                };
                let value_over = exp_over || base > 1.9e154;
                for (v, over) in [
                    (loss.value(t, y), value_over),
                    (loss.derivative(t, y), exp_over),
                ] {
                    assert!(!v.is_nan(), "{loss:?} at ({t}, {y:e})");
                    assert_eq!(v.is_finite(), !over, "{loss:?} at ({t}, {y:e}) gave {v}");
                }
            }
        }
    }
}

/// Cauchy where |d| / c itself overflows (c < 1 and |d| near f64::MAX, out
/// of the property's reach): ln s is then ln|d| - ln c. With |d| = 1e306 and
/// c = 1e-3, ln s = 309 ln 10 and 1/s^2 underflows to 0, so l = c^2 309 ln 10:
/// each ln is within 1 ulp, the two terms have one sign, and the products add
/// a few roundings on each side, well inside 8 eps.
#[test]
fn cauchy_where_the_ratio_overflows() {
    let c = 1e-3;
    let want = 0.5 * c * c * (2.0 * 309.0 * std::f64::consts::LN_10);
    for (t, y) in [(0.0, 1e306), (0.0, -1e306), (2.0, 1e306)] {
        assert_relative_eq!(
            Loss::Cauchy { c }.value(t, y),
            want,
            max_relative = 8.0 * f64::EPSILON
        );
    }
}

/// Convexity and sign sanity on a grid: l' is nondecreasing in y for every
/// loss but cauchy (which redescends), and points downhill: toward y* for the
/// regression losses, toward y* y > 0 for the margin losses.
#[test]
fn derivative_sign_and_monotonicity() {
    let ys: Vec<f64> = (-6000..=6000).map(|k| k as f64 * 0.01).collect();
    for loss in Loss::all() {
        let targets: &[f64] = match loss.target_kind() {
            TargetKind::Real => &[0.5, -1.0],
            TargetKind::PlusMinusOne => &[1.0, -1.0],
            TargetKind::ZeroOne => &[0.0, 1.0],
            TargetKind::ClassIndex => unreachable!("Loss::all holds the scalar losses"),
        };
        for &t in targets {
            let slopes: Vec<f64> = ys.iter().map(|&y| loss.derivative(t, y)).collect();
            for (&y, &s) in ys.iter().zip(&slopes) {
                let downhill = match loss.target_kind() {
                    TargetKind::Real => s * (y - t) >= 0.0,
                    TargetKind::PlusMinusOne => s * t <= 0.0,
                    TargetKind::ZeroOne => s * (t - 0.5) <= 0.0,
                    TargetKind::ClassIndex => unreachable!("Loss::all holds the scalar losses"),
                };
                assert!(downhill, "{loss:?} l'({t}, {y}) = {s}");
            }
            if !matches!(loss, Loss::Cauchy { .. }) {
                for (k, w) in slopes.windows(2).enumerate() {
                    assert!(w[1] >= w[0], "{loss:?} l' decreases at y = {}", ys[k]);
                }
            }
        }
    }
}

#[test]
fn target_kinds() {
    assert!(TargetKind::Real.accepts(-3.7) && !TargetKind::Real.accepts(f64::NAN));
    assert!(!TargetKind::Real.accepts(f64::INFINITY));
    assert!(TargetKind::PlusMinusOne.accepts(-1.0) && TargetKind::PlusMinusOne.accepts(1.0));
    assert!(!TargetKind::PlusMinusOne.accepts(0.0));
    assert!(TargetKind::ZeroOne.accepts(0.0) && TargetKind::ZeroOne.accepts(1.0));
    assert!(!TargetKind::ZeroOne.accepts(-1.0) && !TargetKind::ZeroOne.accepts(0.5));
    assert_eq!(Loss::Bce.target_kind(), TargetKind::ZeroOne);
    assert_eq!(Loss::Hinge.target_kind(), TargetKind::PlusMinusOne);
    assert_eq!(Loss::Cauchy { c: 1.0 }.target_kind(), TargetKind::Real);
}

#[test]
fn names_are_the_serde_kinds() {
    let all = Loss::all();
    assert_eq!(all.len(), 10);
    for loss in all {
        let json = serde_json::to_value(loss).unwrap();
        assert_eq!(json["kind"], loss.name());
        let back: Loss = serde_json::from_value(json).unwrap();
        assert_eq!(back, loss);
    }
}
