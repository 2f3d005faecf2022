//! The stiffness rate of a gradient flow at w0 (proofs.md §3.4): the
//! largest eigenvalue of the Gauss-Newton part of hess L, λ = c l''_max
//! λ_max(G) with G the (N C) x (N C) Gram of the training gradients, c the
//! reduction's weight. The `order` claim's premise is the asymptotic
//! range, h λ <= 1/8 at the finest step (C4); a draw that fails outside it
//! is no evidence (E14).
use super::measure::experiment;
use crate::error::Error;
use crate::flow::FlowProblem;
use crate::loss::Loss;
use crate::spec::{Reduction, Spec};
use crate::stepper::OdeSystem;
use nalgebra::{DMatrix, SymmetricEigen};

/// h λ beyond which a step is outside the asymptotic range (C4: rk4's
/// order within 0.3 at h λ <= 1/8).
pub const ASYMPTOTIC_H_LAMBDA: f64 = 0.125;

/// l''_max of the losses whose curvature is a constant bound (squared 1,
/// squared_hinge 2 where active, absolute and hinge 0 off their kinks);
/// None for the others (the rule then does not apply).
fn curvature(loss: Loss) -> Option<f64> {
    match loss {
        Loss::Squared => Some(1.0),
        Loss::SquaredHinge => Some(2.0),
        Loss::Absolute | Loss::Hinge => Some(0.0),
        _ => None,
    }
}

/// λ at w0, or None where the loss has no constant curvature bound.
pub fn stiffness_rate(spec: &Spec) -> Result<Option<f64>, Error> {
    let Some(curvature) = curvature(spec.loss) else {
        return Ok(None);
    };
    let exp = experiment(spec, None)?;
    let mut flow =
        FlowProblem::with_training_queries(&*exp.model, spec.loss, spec.reduction, &exp.data);
    let layout = flow.layout();
    let (n, c) = (layout.n_train, layout.n_outputs);
    let mut y = vec![0.0; layout.dim()];
    y[..layout.n_params].copy_from_slice(&exp.w0);
    let mut dy = vec![0.0; layout.dim()];
    flow.rhs(0.0, &y, &mut dy);
    let rows = layout.n_query * c;
    let mut k = vec![0.0; rows * n * c];
    flow.tangent_kernel(&mut k);
    // Column-major (M C) x (N C); the first N C rows are the training points.
    let gram = DMatrix::from_fn(n * c, n * c, |r, s| k[s * rows + r]);
    let symmetric = (&gram + gram.transpose()) * 0.5;
    let top = SymmetricEigen::new(symmetric)
        .eigenvalues
        .iter()
        .fold(0.0f64, |m, &e| m.max(e));
    let weight = match spec.reduction {
        Reduction::Sum => 1.0,
        Reduction::Mean => 1.0 / n as f64,
    };
    Ok(Some(weight * curvature * top))
}
