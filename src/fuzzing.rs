//! The bodies of the fuzz targets in `fuzz/`, as library functions, so that
//! a stable `cargo test` (tests/fuzz_replay.rs) replays the committed corpus
//! and every crash found through exactly the code the fuzzer ran.
//!
//! Each target takes arbitrary bytes and panics only when its property
//! fails; every property includes "no panic, no hang", and either a typed
//! error (an [`InputError`] of one line naming where, or a [`RunError`]) or
//! a finite, correct result. Structured inputs are decoded from the bytes
//! with the `arbitrary` crate, so a corpus file replays exactly.
//!
//! [`RunError`]: crate::error::RunError
use crate::error::InputError;
use crate::report::{Coefficients, Report};
use arbitrary::{Arbitrary, Unstructured};
use serde_json::Value;

mod csv;
mod model;
mod report;
mod spec;
mod stepper;

pub use csv::csv_bytes;
pub use model::model_eval;
pub use report::report_roundtrip;
pub use spec::{SHOW, spec_bytes, spec_structured};
pub use stepper::stepper_step;

/// A fuzz target's body: it panics only when its property fails.
pub type Target = fn(&[u8]);

/// Every target by name, as `fuzz/fuzz_targets/NAME.rs` calls it.
pub const TARGETS: [(&str, Target); 6] = [
    ("spec_bytes", spec_bytes),
    ("spec_structured", spec_structured),
    ("csv_bytes", csv_bytes),
    ("model_eval", model_eval),
    ("stepper_step", stepper_step),
    ("report_roundtrip", report_roundtrip),
];

/// A number drawn to reach the interesting places of f64: small exact
/// values, scaled integers over a wide range of exponents, the special
/// values, and any bit pattern (non-finite included).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Num(pub f64);

const SPECIAL: [f64; 16] = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    2.0,
    1e-9,
    1e9,
    f64::EPSILON,
    f64::MIN_POSITIVE,
    5e-324,
    1e-300,
    1e300,
    f64::MAX,
    -f64::MAX,
    f64::INFINITY,
];

impl<'a> Arbitrary<'a> for Num {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Num(match u.int_in_range(0u8..=3)? {
            0 => f64::from(u.arbitrary::<i8>()?) / 8.0,
            1 => f64::from(u.arbitrary::<i16>()?) * 2f64.powi(u.int_in_range(-60..=60)?),
            2 => *u.choose(&SPECIAL)?,
            _ => f64::from_bits(u.arbitrary()?),
        }))
    }
}

impl Num {
    /// The value as JSON: a non-finite value becomes null, as serde_json
    /// writes it.
    pub(crate) fn json(self) -> Value {
        serde_json::json!(self.0)
    }
    /// A finite value: non-finite ones become 0.
    pub(crate) fn finite(self) -> f64 {
        if self.0.is_finite() { self.0 } else { 0.0 }
    }
}

/// A bad-input error as the command line prints it: a location and a
/// problem, one line between them (a user's field name or cell with a
/// line break in it is quoted, not printed raw).
#[track_caller]
pub(crate) fn assert_one_line(error: &InputError) {
    assert!(!error.location.is_empty(), "no location: {error:?}");
    assert!(!error.problem.is_empty(), "no problem: {error:?}");
    let text = error.to_string();
    assert!(
        !text.contains(['\n', '\r']),
        "the message is not one line: {text:?}"
    );
}

/// Every number of a report is finite, and null appears only in `a`, where
/// the path kernel is exactly 0, and in the conditions' ratios that are
/// undefined when their denominator is 0; the derived fields agree with
/// their parts.
#[track_caller]
pub(crate) fn assert_finite_report(report: &Report) {
    let value = serde_json::to_value(report).expect("a report serialises");
    for (field, v) in value.as_object().expect("an object") {
        if field != "a" {
            assert_finite(v, field);
        }
    }
    match &report.a {
        // C > 1: each coefficient vector is finite or null as a whole.
        Coefficients::Vectors(a) => {
            assert!(
                a.iter()
                    .flatten()
                    .flatten()
                    .flatten()
                    .all(|v| v.is_finite())
            );
        }
        Coefficients::Scalar(a) => {
            let k = report.path_kernel.flatten();
            for (a, k) in a.iter().flatten().zip(k) {
                match a {
                    Some(a) => assert!(a.is_finite() && k != 0.0, "a = {a} where K^p = {k}"),
                    None => assert_eq!(k, 0.0, "a is null where K^p = {k}"),
                }
            }
        }
    }
    let (y_end, machine) = (report.y_end.flatten(), report.kernel_machine.flatten());
    let residual = report.residual.flatten();
    for ((r, y), km) in residual.iter().zip(&y_end).zip(&machine) {
        assert_eq!(
            r.to_bits(),
            (y - km).to_bits(),
            "residual != y_end - kernel machine"
        );
    }
    let max = residual.iter().fold(0.0f64, |m, r| m.max(r.abs()));
    assert_eq!(max.to_bits(), report.max_abs_residual.to_bits());
}

/// The conditions' ratios, null where their denominator is 0 (a zero
/// initial tangent kernel, path kernel or coefficient integral).
const NULLABLE: [&str; 3] = [
    "conditions.tangent_kernel_change",
    "conditions.path_kernel_drift",
    "conditions.coefficient_variation",
];

fn assert_finite(v: &Value, path: &str) {
    match v {
        Value::Null if NULLABLE.contains(&path) => {}
        Value::Null => panic!("null at {path}"),
        Value::Number(n) => {
            let x = n.as_f64().expect("a number");
            assert!(x.is_finite(), "{x} at {path}");
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, item)| assert_finite(item, &format!("{path}[{i}]"))),
        Value::Object(fields) => fields
            .iter()
            .for_each(|(k, item)| assert_finite(item, &format!("{path}.{k}"))),
        Value::Bool(_) | Value::String(_) => {}
    }
}

/// The report's text reads back to the same values: every number the same
/// f64 bit for bit (so -0.0 stays -0.0), every integer the same integer.
#[track_caller]
pub(crate) fn assert_reads_back(report: &Report) {
    let text = report.to_json();
    let back: Value = serde_json::from_str(&text).expect("a report is valid JSON");
    let held = serde_json::to_value(report).expect("a report serialises");
    assert_same(&back, &held, "report");
}

fn assert_same(read: &Value, held: &Value, path: &str) {
    match (read, held) {
        (Value::Number(a), Value::Number(b)) => match (a.as_u64(), b.as_u64()) {
            (Some(a), Some(b)) => assert_eq!(a, b, "at {path}"),
            _ => {
                let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
                assert_eq!(
                    a.to_bits(),
                    b.to_bits(),
                    "at {path}: read {a:e}, held {b:e}"
                );
            }
        },
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "length at {path}");
            for (i, (a, b)) in a.iter().zip(b).enumerate() {
                assert_same(a, b, &format!("{path}[{i}]"));
            }
        }
        (Value::Object(a), Value::Object(b)) => {
            assert!(a.keys().eq(b.keys()), "keys at {path}");
            for (k, a) in a {
                assert_same(a, &b[k], &format!("{path}.{k}"));
            }
        }
        (a, b) => assert_eq!(a, b, "at {path}"),
    }
}
