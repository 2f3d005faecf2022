//! The report writer on arbitrary values.
use super::assert_reads_back;
use crate::conditions::Conditions;
use crate::report::{Coefficients, Report, Shaped, VERSION};
use arbitrary::{Arbitrary, Unstructured};
use serde_json::{Value, json};

/// Any finite f64, from its bits: non-finite patterns are folded onto
/// finite ones by clearing an exponent bit, so every class (subnormals,
/// -0.0, the extremes) stays reachable.
fn finite(u: &mut Unstructured<'_>) -> arbitrary::Result<f64> {
    let x = f64::from_bits(u.arbitrary()?);
    Ok(if x.is_finite() {
        x
    } else {
        f64::from_bits(x.to_bits() & !(1 << 52))
    })
}

fn vector(u: &mut Unstructured<'_>, len: usize) -> arbitrary::Result<Vec<f64>> {
    (0..len).map(|_| finite(u)).collect()
}

fn matrix(u: &mut Unstructured<'_>, rows: usize, cols: usize) -> arbitrary::Result<Vec<Vec<f64>>> {
    (0..rows).map(|_| vector(u, cols)).collect()
}

fn report(u: &mut Unstructured<'_>) -> arbitrary::Result<Report> {
    let (p, n, m, d) = (
        u.int_in_range(0usize..=6)?,
        u.int_in_range(0usize..=4)?,
        u.int_in_range(0usize..=3)?,
        u.int_in_range(0usize..=3)?,
    );
    let exact = bool::arbitrary(u)?;
    let mut a = Vec::with_capacity(m);
    for _ in 0..m {
        let mut row = Vec::with_capacity(n);
        for _ in 0..n {
            row.push(if bool::arbitrary(u)? {
                Some(finite(u)?)
            } else {
                None
            });
        }
        a.push(row);
    }
    let spec: Value = json!({"seed": u64::arbitrary(u)?, "init": {"w0": vector(u, p)?},
                             "flow": {"t_end": finite(u)?}});
    Ok(Report {
        version: VERSION,
        spec,
        n_params: p,
        n_outputs: None,
        w0: vector(u, p)?,
        w_end: vector(u, p)?,
        train_x: matrix(u, n, d)?,
        train_y: Shaped::Vector(vector(u, n)?),
        test_x: matrix(u, m, d)?,
        test_y: None,
        t_end: finite(u)?,
        steps: usize::arbitrary(u)?,
        rejected_steps: usize::arbitrary(u)?,
        rhs_evals: usize::arbitrary(u)?,
        step_sizes: vector(u, 3)?,
        loss0: finite(u)?,
        loss_end: finite(u)?,
        y0: Shaped::Vector(vector(u, m)?),
        y_end: Shaped::Vector(vector(u, m)?),
        path_kernel: Shaped::Matrix(matrix(u, m, n)?),
        coef_integral: Shaped::Matrix(matrix(u, m, n)?),
        a: Coefficients::Scalar(a),
        tangent_kernel0: Shaped::Matrix(matrix(u, m, n)?),
        tangent_kernel_end: Shaped::Matrix(matrix(u, m, n)?),
        kernel_machine: Shaped::Vector(vector(u, m)?),
        residual: Shaped::Vector(vector(u, m)?),
        max_abs_residual: finite(u)?,
        exact_coef_integral: if exact {
            Some(Shaped::Matrix(matrix(u, m, n)?))
        } else {
            None
        },
        exact_kernel_machine: if exact {
            Some(Shaped::Vector(vector(u, m)?))
        } else {
            None
        },
        exact_max_abs_residual: if exact { Some(finite(u)?) } else { None },
        exact_residual: if exact {
            Some(Shaped::Vector(vector(u, m)?))
        } else {
            None
        },
        second_order_term: if exact {
            Some(Shaped::Vector(vector(u, m)?))
        } else {
            None
        },
        second_order_residual: if exact {
            Some(Shaped::Vector(vector(u, m)?))
        } else {
            None
        },
        batches: None,
        decay_term: None,
        exact_decay_term: None,
        test_error: None,
        generator: String::arbitrary(u)?,
        conditions: Conditions {
            kink_crossing_times: vector(u, 2)?,
            tangent_kernel_change: Some(finite(u)?),
            neg_lprime_min: vector(u, n)?,
            verdict: String::arbitrary(u)?,
            ..Conditions::default()
        },
        loss_trace: {
            let mut trace = crate::trace::LossTrace::new();
            for (k, loss) in vector(u, 3)?.into_iter().enumerate() {
                trace.push(k as f64, loss);
            }
            trace.finish()
        },
    })
}

/// Property: a report of any finite values (subnormals, -0.0 and the
/// extremes included, in every field) written as JSON reads back to the
/// same values, every f64 bit for bit; written to a file (for one input in
/// 64: the synced write is slow) the file holds that text and no temporary
/// file remains beside it.
pub fn report_roundtrip(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(report) = report(&mut u) else {
        return;
    };
    assert_reads_back(&report);
    // One input in 64, by a hash the fuzzer cannot steer by one byte.
    let hash = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    if hash % 64 == 0 {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("report.json");
        report.write_atomic(&path).expect("writes the report");
        let text = std::fs::read_to_string(&path).expect("reads the report");
        assert_eq!(text, report.to_json() + "\n");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "a file beside the report");
    }
}
