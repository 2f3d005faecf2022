//! One step of every Runge–Kutta method, with arbitrary step sizes and
//! tolerances, on a fixed linear ODE whose exact answers are known.
use super::Num;
use crate::stepper::{Control, OdeSystem, RungeKutta, StepFailure};
use crate::tableau::{ErrorEstimator, Tableau};
use arbitrary::{Arbitrary, Unstructured};

/// y' = M y with M = [[-1, 2], [-2, -1]] (eigenvalues -1 ± 2i): a damped
/// rotation, y(t) = e^-t R(2t) y0 with R the rotation by -2t, so every
/// error shrinks as it is carried forward.
struct Spiral;

const M: [[f64; 2]; 2] = [[-1.0, 2.0], [-2.0, -1.0]];

impl OdeSystem for Spiral {
    fn dim(&self) -> usize {
        2
    }
    fn rhs(&mut self, _t: f64, y: &[f64], dy: &mut [f64]) {
        dy[0] = M[0][0] * y[0] + M[0][1] * y[1];
        dy[1] = M[1][0] * y[0] + M[1][1] * y[1];
    }
}

fn exact(t: f64, y0: [f64; 2]) -> [f64; 2] {
    let (s, c) = (2.0 * t).sin_cos();
    let d = (-t).exp();
    [d * (c * y0[0] + s * y0[1]), d * (-s * y0[0] + c * y0[1])]
}

#[derive(Arbitrary, Debug)]
struct Case {
    method: u8,
    adaptive: bool,
    h: Num,
    rtol: Num,
    atol: Num,
    max_steps: u8,
    y0: [i8; 2],
}

/// Property: for every method of [`Tableau::NAMES`] and any step h > 0,
/// one fixed step from y0 is the method's stability polynomial applied to
/// y0, y1 = Σ_k (b^T A^(k-1) 1) (hM)^k y0, to rounding (relative to the
/// same recursion in absolute values), or, where that recursion passes
/// f64's range, a `NonFinite` failure at t = h that leaves y0 in place.
/// For every embedded pair and any t_end > 0, 0 < rtol < 1, atol > 0 and
/// max_steps, an adaptive run never fails as `NonFinite` (it rejects such
/// steps), always leaves a finite y, and on success is within the local
/// tolerance (atol + rtol times the largest state accepted) times the
/// steps taken, plus rounding, of the exact solution.
pub fn stepper_step(data: &[u8]) {
    let Ok(case) = Case::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let name = Tableau::NAMES[case.method as usize % Tableau::NAMES.len()];
    let tableau = Tableau::by_name(name).expect("a listed name");
    let h = case.h.0.abs();
    // The spec refuses any other step or t_end before the engine sees it.
    if !(h.is_finite() && h > 0.0) {
        return;
    }
    let y0 = case.y0.map(|v| f64::from(v) / 16.0);
    let adaptive = case.adaptive && tableau.error != ErrorEstimator::None;
    if adaptive {
        adaptive_run(tableau, h, &case, y0);
    } else {
        fixed_step(tableau, h, y0);
    }
}

fn fixed_step(tableau: Tableau, h: f64, y0: [f64; 2]) {
    let s = tableau.stages();
    let (expected, scale) = polynomial_step(&tableau, h, y0);
    let mut rk = RungeKutta::new(tableau, 2);
    let mut y = y0.to_vec();
    let control = Control::Fixed { step: h, steps: 1 };
    match rk.integrate(&mut Spiral, &mut y, h, control, &mut |_, _| {}) {
        Ok(stats) => {
            assert_eq!(stats.steps, 1);
            assert!(y.iter().all(|v| v.is_finite()), "{y:?}");
            // Each stage sums at most s + 1 terms, and the error of one
            // stage reaches the later ones through h a M: within
            // 2 (s + 2)^2 u of the absolute recursion, plus as many halves
            // of the least subnormal where values underflow.
            let ops = ((s + 2) * (s + 2)) as f64;
            for i in 0..2 {
                if scale[i].is_finite() && expected[i].is_finite() {
                    let tol = 2.0 * ops * (f64::EPSILON * scale[i] + f64::from_bits(1));
                    assert!(
                        (y[i] - expected[i]).abs() <= tol,
                        "y[{i}] = {} vs R(hM) y0 = {} (h = {h:e}, tol {tol:e})",
                        y[i],
                        expected[i]
                    );
                }
            }
        }
        Err((StepFailure::NonFinite { t }, _)) => {
            assert_eq!(t, h);
            assert_eq!(y, y0.to_vec(), "a failed step moved y");
            let largest = scale[0].max(scale[1]);
            assert!(
                largest > f64::MAX / 64.0,
                "non-finite below overflow: {largest:e}"
            );
        }
        Err(other) => panic!("a fixed step failed as {other:?}"),
    }
}

/// R(hM) y0 by the stability polynomial, and the same recursion with
/// |h a|, |h b|, |M| and |y0|, which bounds every intermediate magnitude.
fn polynomial_step(tab: &Tableau, h: f64, y0: [f64; 2]) -> ([f64; 2], [f64; 2]) {
    let s = tab.stages();
    let mat = |m: &[[f64; 2]; 2], v: [f64; 2]| {
        [
            m[0][0] * v[0] + m[0][1] * v[1],
            m[1][0] * v[0] + m[1][1] * v[1],
        ]
    };
    // c_k h^k = h b^T (h A)^(k-1) 1, with v = (h A)^(k-1) 1 over the
    // stages, times M^k y0: scaled so, no term overflows where the stages
    // of the method do not.
    let mut v = vec![1.0; s];
    let mut z = y0;
    let mut expected = y0;
    for _ in 1..=s {
        let c: f64 = h * tab.b.iter().zip(&v).map(|(b, v)| b * v).sum::<f64>();
        z = mat(&M, z);
        expected = [expected[0] + c * z[0], expected[1] + c * z[1]];
        v = (0..s)
            .map(|i| h * tab.a[i].iter().zip(&v).map(|(a, v)| a * v).sum::<f64>())
            .collect();
    }
    let abs_m = M.map(|r| r.map(f64::abs));
    let abs_y0 = y0.map(f64::abs);
    let mut stages: Vec<[f64; 2]> = Vec::with_capacity(s);
    for i in 0..s {
        let mut acc = abs_y0;
        for (j, &a) in tab.a[i].iter().enumerate() {
            acc[0] += term(h * a, stages[j][0]);
            acc[1] += term(h * a, stages[j][1]);
        }
        stages.push(mat(&abs_m, acc));
    }
    let mut scale = abs_y0;
    for (j, &b) in tab.b.iter().enumerate() {
        scale[0] += term(h * b, stages[j][0]);
        scale[1] += term(h * b, stages[j][1]);
    }
    (expected, scale)
}

/// |c| v as the engine meets it: a zero coefficient is skipped, and an
/// overflowed one (inf times 0 is NaN there) counts as infinite.
fn term(c: f64, v: f64) -> f64 {
    match c.abs() * v {
        _ if c == 0.0 => 0.0,
        p if p.is_nan() => f64::INFINITY,
        p => p,
    }
}

fn adaptive_run(tableau: Tableau, t_end: f64, case: &Case, y0: [f64; 2]) {
    let (rtol, atol) = (case.rtol.0.abs(), case.atol.0.abs());
    if !(rtol > 0.0 && rtol < 1.0 && atol > 0.0 && atol.is_finite()) {
        return;
    }
    let max_steps = 1 + case.max_steps as usize % 64;
    let s = tableau.stages() as f64;
    let mut rk = RungeKutta::new(tableau, 2);
    let mut y = y0.to_vec();
    let control = Control::Adaptive {
        rtol,
        atol,
        max_steps,
    };
    // The largest state the run accepted: the error test scales by it.
    let mut ymax = y0[0].hypot(y0[1]);
    let mut observer = |_: &mut Spiral, step: &crate::stepper::Step<'_>| {
        ymax = ymax.max(step.y1[0].hypot(step.y1[1]));
    };
    let result = rk.integrate(&mut Spiral, &mut y, t_end, control, &mut observer);
    assert!(y.iter().all(|v| v.is_finite()), "{y:?} after {result:?}");
    match result {
        Ok(stats) => {
            assert!(stats.steps >= 1);
            // Each accepted step's error is at most sqrt(2) (atol + rtol
            // |y|) by the estimate, |y| the larger of the step's ends (so
            // with rtol near 1 the numerical solution may grow a lot); a
            // factor 10 covers an estimate below the true error, and the
            // damping keeps old errors from growing.
            let steps = (stats.steps + 1) as f64;
            let tol = 10.0 * steps * (atol + rtol * ymax)
                + 2.0 * (s + 2.0) * (s + 2.0) * steps * f64::EPSILON * ymax;
            let want = exact(t_end, y0);
            for i in 0..2 {
                assert!(
                    (y[i] - want[i]).abs() <= tol,
                    "y[{i}] = {} vs exact {} at t = {t_end:e} (tol {tol:e}, {stats:?})",
                    y[i],
                    want[i]
                );
            }
        }
        Err((StepFailure::StepTooSmall { .. } | StepFailure::TooManySteps { .. }, _)) => {}
        Err(other) => panic!("an adaptive run failed as {other:?}"),
    }
}
