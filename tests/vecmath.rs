//! The vectorised kernels of the hot loop agree with libm and with the
//! accurate scalar activations to the bounds their doc comments state.
use pathkernel::activation::Activation;
use pathkernel::vecmath::{exp_nonpositive, sigmoid_slices, silu_slices, tanh_slices};

const EPS: f64 = f64::EPSILON;

/// Points from −750 to 0: dense near 0, every binade down to 1e−300, and
/// the clamp region.
fn arguments() -> Vec<f64> {
    let mut xs: Vec<f64> = (0..=30_000).map(|i| -(i as f64) * 0.025).collect();
    xs.extend((0..300).map(|k| -(10f64).powi(-k)));
    xs.extend([-0.0, -707.9, -708.0, -708.1, -745.0, -1e300, f64::MIN]);
    xs
}

/// e^x to 4 ulp relative where e^x ≥ e^−708 (the Horner polynomial adds
/// about 1 ulp, the reduction and the scaling are exact to about 1 ulp, and
/// libm's exp is within 1 ulp); below, within 4e−308 absolute.
#[test]
fn exp_matches_libm() {
    for x in arguments() {
        let (got, want) = (exp_nonpositive(x), x.exp());
        if x >= -708.0 {
            assert!(
                (got - want).abs() <= 4.0 * EPS * want,
                "exp({x}) = {got}, libm {want}"
            );
        } else {
            assert!(
                (got - want).abs() <= 4e-308,
                "exp({x}) = {got}, libm {want}"
            );
        }
    }
}

/// The slice kernels agree with the accurate scalar activations: tanh to
/// 4 ulp of 1 absolute (its doc bound of 3 plus libm's 1), the derivatives
/// and sigmoid, silu to 8 ulp relative (a few roundings on each side), with
/// an absolute floor for values the clamp of exp affects: 4e−308 times the
/// factor 4 of tanh' = 4e/(1 + e)².
#[test]
fn slices_match_scalar_activations() {
    let z: Vec<f64> = arguments()
        .iter()
        .flat_map(|&x| [x, -x])
        .chain([0.5, 3.0, 1e-9, -1e-9])
        .collect();
    let (mut u, mut d) = (vec![0.0; z.len()], vec![0.0; z.len()]);
    for (act, kernel) in [
        (
            Activation::Tanh,
            tanh_slices as fn(&[f64], &mut [f64], &mut [f64]),
        ),
        (Activation::Sigmoid, sigmoid_slices),
        (Activation::Silu, silu_slices),
    ] {
        kernel(&z, &mut u, &mut d);
        for i in 0..z.len() {
            let (want_u, want_d) = (act.apply(z[i]), act.derivative(z[i]));
            // silu multiplies the clamped exp by z.
            let tol_u = if act == Activation::Tanh {
                4.0 * EPS
            } else {
                8.0 * EPS * want_u.abs() + 4e-308 * z[i].abs().max(1.0)
            };
            assert!(
                (u[i] - want_u).abs() <= tol_u,
                "{act:?}({:e}) = {:e}, want {want_u:e}",
                z[i],
                u[i]
            );
            let tol_d = 8.0 * EPS * want_d.abs() + 1.6e-307 * z[i].abs().max(1.0);
            assert!(
                (d[i] - want_d).abs() <= tol_d,
                "{act:?}'({:e}) = {:e}, want {want_d:e}",
                z[i],
                d[i]
            );
        }
    }
}
