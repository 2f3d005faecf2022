//! What the search's measures say in words (src/search/measure.rs): the
//! detail of a failing claim names the case that decided its violation.
use approx::assert_relative_eq;
use pathkernel::conditions::AVERAGE_TOL;
use pathkernel::search::Claim;
use pathkernel::spec::Spec;
use std::path::Path;

fn counterexample(name: &str) -> Spec {
    Spec::from_path(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/counterexamples")
            .join(name),
    )
    .unwrap()
}

/// The text between the first `open` and the next `close`.
fn between<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    let start = text
        .find(open)
        .unwrap_or_else(|| panic!("no {open:?} in {text}"))
        + open.len();
    let len = text[start..].find(close).unwrap();
    &text[start..start + len]
}

/// The first number after `key` in `text`.
fn number_after(text: &str, key: &str) -> f64 {
    let rest = &text[text
        .find(key)
        .unwrap_or_else(|| panic!("no {key:?} in {text}"))
        + key.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || "+-.e".contains(c)))
        .unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|e| panic!("{e}: {rest}"))
}

/// weighted-average: the coefficient the detail names lies outside its
/// range of −l' by exactly the excess the violation reports (the worst one,
/// not merely some coefficient outside), to the 7 digits printed. With one
/// output it is A / K^p of the named pair (each rounded to 7 digits).
#[test]
fn weighted_average_names_its_worst_coefficient() {
    for name in ["weighted-average.json", "weighted-average-vector.json"] {
        let eval = Claim::WeightedAverage.evaluate(&counterexample(name));
        let d = &eval.detail;
        assert!(eval.fails() && d.starts_with("outside: a_"), "{name}: {d}");
        // "outside: a_i(q_m)[_k] = coef = ..., against [lo, hi], ..."
        let coef = number_after(d, " = ");
        let range = between(d, "against [", "]");
        let (lo, hi) = range.split_once(", ").unwrap();
        let (lo, hi): (f64, f64) = (lo.parse().unwrap(), hi.parse().unwrap());
        let scale = lo.abs().max(hi.abs());
        let excess = (lo - coef).max(coef - hi) / scale;
        // Each printed number is rounded to 7 digits (relative 5e-7), so the
        // difference may be off by 5e-7 of the three numbers' sizes.
        let tol = 1e-6 * (coef.abs() + lo.abs() + hi.abs()) / scale;
        let reported = eval.violation * AVERAGE_TOL;
        assert!(
            (excess - reported).abs() <= tol,
            "{name}: {excess} against {reported}: {d}"
        );
        if !d.contains(")_") {
            let (a, k) = between(d, "A / K^p = ", ",").split_once(" / ").unwrap();
            let (a, k): (f64, f64) = (a.parse().unwrap(), k.parse().unwrap());
            assert_relative_eq!(coef, a / k, max_relative = 2e-6);
        }
    }
}
