//! The claim `sliding` on one experiment: run it with events, so that its
//! sliding modes are integrated (proofs.md E5), once as the report does
//! (K^p and A with Filippov's weights, E6) and once with SPEC §1's
//! derivative conventions on the sliding segments (relu'(0) = 0), and
//! measure the identity residual of the second: E6 predicts the
//! λ-weighted part it drops (proofs.md E13).
use super::claims::SLIDING_TOL;
use super::measure::{Evaluation, experiment};
use crate::conditions::KinkEvent;
use crate::data::Dataset;
use crate::error::Error;
use crate::experiment::Outcome;
use crate::spec::{FlowSpec, Method, Spec};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// The flow the claim is judged on: dop853 at rtol 1e-12 (atol 1e-14),
/// adaptive, with events; t_end and max_steps as drawn. Idempotent, so a
/// spec written with it replays by `pathkernel run` as measured.
pub fn sliding_flow(spec: &Spec) -> Spec {
    let mut spec = spec.clone();
    let mut flow = FlowSpec::new(spec.flow.t_end, Method::Dop853);
    flow.rtol = Some(1e-12);
    flow.atol = Some(1e-14);
    flow.max_steps = spec.flow.max_steps;
    flow.events = true;
    spec.flow = flow;
    spec
}

/// The sliding claim's violation on `spec`, run with [`sliding_flow`].
pub(super) fn sliding(spec: &Spec, interrupt: Option<&Arc<AtomicBool>>) -> Evaluation {
    let spec = sliding_flow(spec);
    let run = |convention: bool| -> Result<(Outcome, Dataset), Error> {
        let mut exp = experiment(&spec, interrupt)?;
        exp.convention_kernel = convention;
        Ok((exp.run(&mut |_| {})?, exp.data))
    };
    let ((filippov, data), (convention, _)) = match (run(false), run(true)) {
        (Ok(f), Ok(c)) => (f, c),
        (Err(e), _) | (_, Err(e)) => return Evaluation::pass(format!("no evidence: {e}")),
    };
    let slides: Vec<&KinkEvent> = filippov
        .conditions
        .events
        .iter()
        .filter(|e| e.event == Some("slide"))
        .collect();
    if slides.is_empty() {
        return Evaluation::pass("no evidence: no sliding mode reached");
    }
    if let Some(e) = slides.iter().find(|e| e.kink.kind != "activation") {
        return Evaluation::pass(format!(
            "no evidence: a {} kink slides, whose convention is neither branch",
            e.kink.kind
        ));
    }
    // A query point whose input is parallel to a sliding training point's
    // lies on the same kink surface (one hidden layer): its own relu' is
    // then read at a rounding-level pre-activation, not by the convention.
    for e in &slides {
        let x = data.train_x.row(e.kink.point);
        for (m, q) in data.test_x.row_iter().enumerate() {
            let (qx, qq, xx) = (q.dot(&x), q.dot(&q), x.dot(&x));
            if (qx * qx - qq * xx).abs() <= 1e-12 * qq * xx {
                return Evaluation::pass(format!(
                    "no evidence: query point {m} is parallel to sliding training point {} \
                     (on its kink surface)",
                    e.kink.point
                ));
            }
        }
    }
    let slides: Vec<f64> = slides.iter().map(|e| e.t).collect();
    let change = filippov
        .y_end
        .iter()
        .zip(&filippov.y0)
        .fold(0.0_f64, |m, (e, b)| m.max((e - b).abs()));
    let r = convention.max_abs_residual();
    Evaluation {
        violation: r / (SLIDING_TOL * change),
        detail: format!(
            "{} sliding mode(s) from t = {}; with relu'(0) = 0 on them the identity leaves \
             max|r| = {r:.3e} ({:.3e} of max|y_end - y0| = {change:.3e}), with Filippov's \
             weights {:.3e}",
            slides.len(),
            slides
                .iter()
                .map(|t| format!("{t:.6}"))
                .collect::<Vec<_>>()
                .join(", "),
            r / change,
            filippov.max_abs_residual()
        ),
    }
}
