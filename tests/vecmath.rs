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

/// Random values from a seeded generator, in [−1, 1].
fn values(seed: u64, len: usize) -> Vec<f64> {
    use rand::RngExt;
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// The lane-wise sum is a sum: within the recursive-summation bound
/// n ε Σ|x| of the sequential one, for lengths around the lane count.
#[test]
fn lane_sum_agrees_with_the_sequential_sum() {
    for len in [0, 1, 7, 8, 9, 63, 64, 65, 1000] {
        let x = values(len as u64, len);
        let exact: f64 = x.iter().sum();
        let bound = len as f64 * EPS * x.iter().map(|v| v.abs()).sum::<f64>();
        let got = pathkernel::vecmath::sum(&x);
        assert!((got - exact).abs() <= bound, "len {len}: {got} vs {exact}");
    }
}

/// The fused step kernel gives the solution y + Σ c_j k_j exactly as the
/// sequential combination does (same operations, same order), and each
/// estimate's scaled sum of squares to a few ε relative (only the order of
/// the additions differs), with the second estimate optional.
#[test]
fn solution_and_error_match_the_direct_formulas() {
    let (stages, len, start) = (7, 1000, 200);
    let k: Vec<Vec<f64>> = (0..stages)
        .map(|j| values(100 + j as u64, len + start))
        .collect();
    let y = values(1, len + start);
    let (c, e1, e2) = (values(2, stages), values(3, stages), values(4, stages));
    let (rtol, atol) = (1e-3, 1e-6);
    for second in [false, true] {
        let e2: &[f64] = if second { &e2 } else { &[] };
        let mut out = vec![0.0; len];
        let step = |k: &[Vec<f64>], out: &mut [f64]| {
            pathkernel::vecmath::solution_and_error(out, &y, &c, &e1, e2, k, start, (rtol, atol))
        };
        let sums = step(&k, &mut out);
        let mut want_s = [0.0, 0.0];
        for i in 0..len {
            let mut want = y[start + i];
            for j in 0..stages {
                want += c[j] * k[j][start + i];
            }
            assert_eq!(out[i], want, "component {i}");
            let sc = atol + rtol * y[start + i].abs().max(want.abs());
            for (e, acc) in [&e1[..], e2].into_iter().zip(want_s.iter_mut()) {
                if !e.is_empty() {
                    let d: f64 = (0..stages).map(|j| e[j] * k[j][start + i]).sum();
                    *acc += (d / sc).powi(2);
                }
            }
        }
        let (s1, s2) = (sums.error1, sums.error2);
        assert!((s1 - want_s[0]).abs() <= 8.0 * EPS * len as f64 * want_s[0]);
        assert!((s2 - want_s[1]).abs() <= 8.0 * EPS * len as f64 * want_s[1]);
        assert_eq!(s2 == 0.0, !second);
        assert!(sums.finite);
        // One non-finite stage value anywhere makes the solution non-finite.
        for bad in [f64::INFINITY, f64::NAN] {
            for at in [start, start + 333, start + len - 1] {
                let mut k = k.clone();
                k[3][at] = bad;
                let sums = step(&k, &mut out);
                assert!(!sums.finite, "{bad} at {at}");
            }
        }
    }
}
