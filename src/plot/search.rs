//! The picture `search` writes beside a counterexample (`<claim>.svg`):
//! the quantity whose claim failed, from a run of the counterexample spec.
//! order: the residual against the step over the halvings the claim
//! judged; gd-limit, sgd-limit, adam-kernel-machine: the network against
//! its kernel machine (decay-offset too: the nearest picture, it does not
//! draw the machine without the decay term; kernel-generalises too: the
//! KRR learners' predictions are `pathkernel learn`'s); second-order: the residual
//! forms per query point; weighted-
//! average and fixed-coefficients: the coefficients against −l'; lazy and
//! psd: the kernels; monotone-loss: the loss along the run.
use super::view::View;
use crate::converge::{Level, refine};
use crate::data::Dataset;
use crate::error::{Error, InputError};
use crate::experiment::{Experiment, Outcome, integration};
use crate::report::Report;
use crate::search::{Claim, ORDER_HALVINGS};
use crate::spec::{Method, Spec};
use std::path::Path;

/// The SVG for a counterexample `spec` (inline data) of `claim`.
pub fn picture(claim: Claim, spec: &Spec) -> Result<String, Error> {
    let data = Dataset::resolve(spec, Path::new("."))?;
    let named = format!("{}.json", claim.name());
    let exp = Experiment::new(spec.clone(), data.clone());
    let outcome = exp.run(&mut |_| {})?;
    let view = || -> Result<View, Error> {
        let report = serde_json::to_value(Report::new(&exp, &outcome))
            .map_err(|e| InputError::new(&named, format!("cannot serialise the report: {e}")))?;
        let fields = match report {
            serde_json::Value::Object(fields) => fields,
            _ => serde_json::Map::new(),
        };
        Ok(View::of_fields(Path::new(&named), fields)?)
    };
    let svg = match claim {
        Claim::Order => order(&exp, &outcome, &data, &named)?,
        Claim::GdLimit
        | Claim::SgdLimit
        | Claim::AdamKernelMachine
        | Claim::DecayOffset
        | Claim::KernelGeneralises
        | Claim::Sliding => super::machine::draw(&view()?)?,
        Claim::SecondOrder => super::residuals::draw(&view()?)?,
        Claim::WeightedAverage | Claim::FixedCoefficients => super::coefficients::draw(&view()?)?,
        Claim::Lazy | Claim::Psd => super::kernels::draw(&view()?)?,
        Claim::MonotoneLoss => super::loss::draw(&view()?)?,
    };
    Ok(svg)
}

/// The residual against the step at h, h/2, ..., h/2^ORDER_HALVINGS (the
/// levels the claim judged).
fn order(
    exp: &Experiment,
    outcome: &Outcome,
    data: &Dataset,
    named: &str,
) -> Result<String, Error> {
    let mut levels = vec![Level::new(&exp.spec, outcome)];
    let mut finer = refine(&exp.spec, outcome);
    for _ in 0..ORDER_HALVINGS {
        let exp = Experiment::new(finer.clone(), data.clone());
        let out = exp.run(&mut |_| {})?;
        levels.push(Level::new(&exp.spec, &out));
        finer = refine(&exp.spec, &out);
    }
    let flow = &exp.spec.flow;
    let discrete = matches!(flow.method, Method::Gd | Method::Sgd | Method::Adam);
    let svg = super::converge::render(
        &levels,
        flow.method.name(),
        integration(flow).0.order,
        discrete,
    );
    Ok(super::drawn(Path::new(named), "picture", svg)?)
}
