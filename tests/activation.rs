//! Activations (SPEC §3): derivatives against the independent dual-number
//! reference, the reference against central differences, known values,
//! kink conventions and finiteness far out.
use approx::{assert_relative_eq, relative_eq};
use num_dual::Dual64;
use pathkernel::activation::Activation;
use proptest::prelude::*;

const EPS: f64 = f64::EPSILON;
/// The smallest subnormal, 2^-1074: below f64::MIN_POSITIVE results keep only
/// absolute accuracy, in units of this.
const TINY: f64 = f64::MIN_POSITIVE * f64::EPSILON;
/// Derivative tolerance in units of eps times the condition scale. Each side
/// is at most ~8 roundings or 1-ulp library calls (exp, expm1, ln1p, erfc),
/// with cancellation amplifying them by at most 3 (e^z (1 + e^z) - e^2z in the
/// reference sigmoid), on two sides: 2 * 8 * 3 = 48 < 64.
const DERIV_ULPS: f64 = 64.0;
/// Value tolerance: at most ~5 roundings per side and no cancellation (every
/// value formula adds same-sign terms): 2 * 5 = 10 < 16.
const VALUE_ULPS: f64 = 16.0;

/// Finite z from rounding level to 1e308, both signs, plus the exact kink.
fn wide_z() -> impl Strategy<Value = f64> {
    prop_oneof![
        -40.0..40.0f64,
        -1000.0..1000.0f64,
        (any::<bool>(), -300.0..308.0f64).prop_map(|(neg, e)| {
            let m = 10f64.powf(e);
            if neg { -m } else { m }
        }),
        Just(0.0),
        Just(-0.0),
    ]
}

/// The condition scale of sigma'(z): |sigma'| for most, but the sum of the
/// magnitudes of the two product-rule terms for gelu and silu, whose
/// derivatives cross zero (z ~ -0.75, -1.28) by cancellation.
fn derivative_scale(act: Activation, z: f64, reference: f64) -> f64 {
    match act {
        Activation::Gelu => {
            let cdf = 0.5 * libm::erfc(-z / 2f64.sqrt());
            let pdf = (-z * z / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
            cdf.abs() + (z * pdf).abs()
        }
        Activation::Silu => {
            let s = Activation::Sigmoid.apply(z);
            let r = Activation::Sigmoid.apply(-z);
            s + (z * s * r).abs()
        }
        _ => reference.abs(),
    }
}

proptest! {
    // Each case costs microseconds; 2048 covers nine activations well.
    #![proptest_config(crate::cases(2048))]

    #[test]
    fn derivative_matches_dual_reference(i in 0..Activation::ALL.len(), z in wide_z()) {
        let act = Activation::ALL[i];
        let ours = act.derivative(z);
        let reference = act.apply_dual(Dual64::new(z, 1.0)).eps;
        let scale = derivative_scale(act, z, reference);
        // Subnormal results: a few units of TINY, times |z| where z multiplies.
        let tol = DERIV_ULPS * (EPS * scale + TINY * (1.0 + z.abs()));
        prop_assert!(
            relative_eq!(ours, reference, epsilon = tol, max_relative = 0.0),
            "{act:?}'({z:e}) = {ours:e}, reference {reference:e}"
        );
    }

    #[test]
    fn value_matches_dual_real_part(i in 0..Activation::ALL.len(), z in wide_z()) {
        let act = Activation::ALL[i];
        let ours = act.apply(z);
        let reference = act.apply_dual(Dual64::new(z, 1.0)).re;
        let tol = VALUE_ULPS * TINY * (1.0 + z.abs());
        prop_assert!(
            relative_eq!(ours, reference, epsilon = tol, max_relative = VALUE_ULPS * EPS),
            "{act:?}({z:e}) = {ours:e}, reference {reference:e}"
        );
    }
}

/// The reference is not trusted blindly: its derivative must match a central
/// difference of its own value. With h = 2^-17 and dyadic points, z +- h is
/// exact; the truncation error is h^2/6 max|sigma'''| with max|sigma'''| <= 2
/// for all nine (tanh''' reaches 2 at 0; relu and leaky_relu are linear away
/// from 0), and rounding adds 2 * VALUE_ULPS eps max|sigma| / (2 h).
#[test]
fn dual_reference_matches_central_difference() {
    let h = 2f64.powi(-17);
    for act in Activation::ALL {
        for z in [-2.5, -0.75, 0.5, 1.25, 3.0] {
            let f = |x: f64| act.apply_dual(Dual64::new(x, 0.0)).re;
            let (fp, fm) = (f(z + h), f(z - h));
            let fd = (fp - fm) / (2.0 * h);
            let tol = h * h / 6.0 * 2.0 + VALUE_ULPS * EPS * fp.abs().max(fm.abs()) / h;
            let dual = act.apply_dual(Dual64::new(z, 1.0)).eps;
            assert_relative_eq!(dual, fd, epsilon = tol, max_relative = 0.0);
        }
    }
}

/// Known values (references to 17 digits from mpmath at 40 digits).
#[test]
fn known_values() {
    use Activation::*;
    let ln2 = std::f64::consts::LN_2;
    let cases = [
        (Identity, 1.5, 1.5, 1.0),
        (Tanh, 0.0, 0.0, 1.0),
        (Tanh, 0.5, 0.5f64.tanh(), 0.786_447_732_965_927_4),
        (Sigmoid, 0.0, 0.5, 0.25),
        (
            Sigmoid,
            2.0,
            0.880_797_077_977_882_4,
            0.104_993_585_403_506_5,
        ),
        (Softplus, 0.0, ln2, 0.5),
        (
            Softplus,
            3.0,
            3.048_587_351_573_742,
            0.952_574_126_822_433_2,
        ),
        (Gelu, 0.0, 0.0, 0.5),
        (Gelu, 1.0, 0.841_344_746_068_542_9, 1.083_315_470_587_686_3),
        (
            Gelu,
            -1.0,
            -0.158_655_253_931_457_05,
            -0.083_315_470_587_686_3,
        ),
        (
            Gelu,
            -3.0,
            -0.004_049_694_094_890_284,
            -0.011_945_647_204_183_927,
        ),
        (Silu, 0.0, 0.0, 0.5),
        (Silu, 1.0, 0.731_058_578_630_004_9, 0.927_670_511_871_486_7),
        (
            Silu,
            -2.0,
            -0.238_405_844_044_235_1,
            -0.090_784_248_784_895_48,
        ),
        (
            Sin,
            std::f64::consts::FRAC_PI_2,
            1.0,
            std::f64::consts::FRAC_PI_2.cos(),
        ),
        (Relu, -2.0, 0.0, 0.0),
        (Relu, 2.0, 2.0, 1.0),
        (LeakyRelu, -2.0, -0.02, 0.01),
        (LeakyRelu, 2.0, 2.0, 1.0),
    ];
    for (act, z, value, slope) in cases {
        // A handful of roundings each: 8 eps relative. No absolute epsilon
        // (approx's default would hide small values); exact zeros are exact.
        assert_relative_eq!(act.apply(z), value, epsilon = 0.0, max_relative = 8.0 * EPS);
        assert_relative_eq!(
            act.derivative(z),
            slope,
            epsilon = 0.0,
            max_relative = 8.0 * EPS
        );
    }
}

/// SPEC §3: relu'(0) = 0 and leaky_relu'(0) = 0.01, for both zeros; the
/// reference restates the same conventions.
#[test]
fn kink_conventions() {
    for z in [0.0, -0.0] {
        assert_eq!(Activation::Relu.derivative(z), 0.0);
        assert_eq!(Activation::LeakyRelu.derivative(z), 0.01);
        assert_eq!(Activation::Relu.apply(z), 0.0);
        assert_eq!(Activation::LeakyRelu.apply(z), 0.0);
        assert_eq!(Activation::Relu.apply_dual(Dual64::new(z, 1.0)).eps, 0.0);
        assert_eq!(
            Activation::LeakyRelu.apply_dual(Dual64::new(z, 1.0)).eps,
            0.01
        );
    }
    assert!(!Activation::Relu.is_smooth() && !Activation::LeakyRelu.is_smooth());
    assert!(Activation::ALL.iter().filter(|a| a.is_smooth()).count() == 7);
}

/// No overflow, no NaN, anywhere on the finite line; and the limits are right.
#[test]
fn finite_far_out() {
    let zs = [1e300, 710.0, 800.0, 1e308, f64::MAX, 40.0];
    for act in Activation::ALL {
        for z in zs.iter().flat_map(|&z| [z, -z]) {
            let d = act.apply_dual(Dual64::new(z, 1.0));
            for v in [act.apply(z), act.derivative(z), d.re, d.eps] {
                assert!(v.is_finite(), "{act:?} at {z:e} gave {v}");
            }
        }
    }
    for z in [800.0, 1e300, f64::MAX] {
        assert_eq!(Activation::Sigmoid.apply(z), 1.0);
        assert_eq!(Activation::Sigmoid.apply(-z), 0.0);
        assert_eq!(Activation::Softplus.apply(z), z);
        assert_eq!(Activation::Softplus.apply(-z), 0.0);
        assert_eq!(Activation::Silu.apply(z), z);
        assert_eq!(Activation::Gelu.apply(z), z);
        assert_eq!(Activation::Gelu.derivative(z), 1.0);
        assert_eq!(Activation::Silu.derivative(z), 1.0);
        assert_eq!(Activation::Tanh.apply(-z), -1.0);
    }
    // Far-tail accuracy where naive forms lose it: sigma(-40) = e^-40 / (1 +
    // e^-40) and tanh'(20) = 4 e^-40 / (1 + e^-40)^2, not 0.
    let e40 = (-40f64).exp();
    assert_relative_eq!(
        Activation::Sigmoid.apply(-40.0),
        e40 / (1.0 + e40),
        epsilon = 0.0,
        max_relative = 4.0 * EPS
    );
    assert_relative_eq!(
        Activation::Tanh.derivative(20.0),
        4.0 * e40,
        epsilon = 0.0,
        max_relative = 4.0 * EPS
    );
}

#[test]
fn names_are_the_serde_forms() {
    for act in Activation::ALL {
        let json = serde_json::to_string(&act).unwrap();
        assert_eq!(json, format!("\"{}\"", act.name()));
    }
}

/// The fused pair equals `apply` and `derivative` to a few ulp (it takes
/// tanh from expm1 instead of libm's tanh; both are correctly rounded to
/// within 1 ulp, and the quotient adds at most 2 more roundings).
#[test]
fn fused_pair_equals_apply_and_derivative() {
    for act in Activation::ALL {
        for i in -400..=400 {
            let z = i as f64 * 0.0625 + if i % 3 == 0 { 1e-9 } else { 0.0 };
            let (u, d) = act.apply_with_derivative(z);
            let close = |a: f64, b: f64| {
                (a - b).abs() <= 4.0 * f64::EPSILON * a.abs().max(b.abs()) || a == b
            };
            assert!(
                close(u, act.apply(z)),
                "{act:?}({z}): {u} vs {}",
                act.apply(z)
            );
            assert!(
                close(d, act.derivative(z)),
                "{act:?}'({z}): {d} vs {}",
                act.derivative(z)
            );
        }
    }
}
