//! The checks a spec's types cannot express (SPEC §4): ranges, and which
//! flow fields go with which method. Checks that need the data (the length
//! of init.w0, labels against the loss) are in `crate::data`.
use super::bounds::check_steps;
use super::memory::MAX_MEMORY_GIB;
use super::{DataSpec, FlowSpec, Method, ModelSpec, Spec};
use crate::error::InputError;
use crate::loss::Loss;

/// How far T / step may be from a whole number K, relative to K (SPEC §4).
const WHOLE_STEPS_RTOL: f64 = 1e-9;

impl Spec {
    /// Ok when every number is finite and in range and the flow's fields
    /// suit its method; else the first problem found, naming its field.
    pub fn validate(&self) -> Result<(), InputError> {
        data(&self.data)?;
        model(&self.model)?;
        loss(&self.loss)?;
        outputs(&self.model, &self.loss)?;
        if let Some(init) = &self.init {
            for (i, &w) in init.w0.iter().enumerate() {
                finite(&format!("init.w0[{i}]"), w)?;
            }
        }
        // The flow's own fields first: a step count over its bound names
        // its field rather than the memory its record would take.
        flow(&self.flow)?;
        if let DataSpec::Synthetic {
            n_train,
            n_test,
            dim,
            ..
        } = self.data
        {
            if let ModelSpec::Layers { .. } = self.model {
                crate::model::Layered::from_spec(&self.model, dim)?;
            }
            self.check_size(dim, n_train, n_test, MAX_MEMORY_GIB)?;
        }
        Ok(())
    }
}

fn data(data: &DataSpec) -> Result<(), InputError> {
    // Inline arrays and CSV files are checked where they are resolved
    // (`crate::data`), with the other checks on rows.
    let DataSpec::Synthetic {
        function,
        n_train,
        n_test,
        dim,
        noise,
    } = data
    else {
        return Ok(());
    };
    at_least("data.n_train", *n_train, 1)?;
    at_least("data.n_test", *n_test, 1)?;
    at_least("data.dim", *dim, 1)?;
    if function.is_classification() && *dim < 2 {
        let name = format!("{function:?}").to_lowercase();
        return Err(InputError::new(
            "data.dim",
            format!("found {dim}, the {name} generator needs dim >= 2"),
        ));
    }
    if function.is_classification() {
        // noise is then the probability of flipping a label.
        in_range(
            "data.noise",
            *noise,
            0.0,
            0.5,
            "a probability in [0, 0.5] for xor and moons",
        )
    } else {
        in_range(
            "data.noise",
            *noise,
            0.0,
            f64::INFINITY,
            "a finite number >= 0",
        )
    }
}

fn model(model: &ModelSpec) -> Result<(), InputError> {
    let init_scale = match model {
        ModelSpec::Linear { init_scale, .. } | ModelSpec::DiagLinear { init_scale } => init_scale,
        ModelSpec::Mlp {
            hidden, init_scale, ..
        } => {
            for (i, &h) in hidden.iter().enumerate() {
                at_least(&format!("model.hidden[{i}]"), h, 1)?;
            }
            init_scale
        }
        ModelSpec::Resmlp {
            width, init_scale, ..
        } => {
            at_least("model.width", *width, 1)?;
            init_scale
        }
        ModelSpec::Layers {
            input_shape,
            init_scale,
            ..
        } => {
            // The shapes, checked with the data's D = prod(input_shape)
            // here and against the data in `crate::data`.
            at_least("model.outputs", model.outputs(), 1)?;
            let dim = input_shape.iter().product();
            crate::model::Layered::from_spec(model, dim)?;
            init_scale
        }
    };
    in_range(
        "model.init_scale",
        *init_scale,
        0.0,
        f64::INFINITY,
        "a finite number >= 0",
    )
}

/// C >= 1, and C >= 2 for cross_entropy (SPEC §8), which diag_linear's one
/// output cannot have.
fn outputs(model: &ModelSpec, loss: &Loss) -> Result<(), InputError> {
    let c = model.outputs();
    at_least("model.outputs", c, 1)?;
    if !loss.is_vector() || c >= 2 {
        return Ok(());
    }
    if let ModelSpec::DiagLinear { .. } = model {
        return Err(InputError::new(
            "loss.kind",
            "found `cross_entropy`, which needs C >= 2 outputs, but arch `diag_linear` has one \
             output; allowed: a per-output loss, or arch linear, mlp, resmlp or layers with outputs >= 2",
        ));
    }
    Err(InputError::new(
        "model.outputs",
        format!(
            "found {c}, but loss `cross_entropy` needs C >= 2 outputs (a softmax over one \
             output is constant); allowed: a whole number >= 2"
        ),
    ))
}

fn loss(loss: &Loss) -> Result<(), InputError> {
    match *loss {
        Loss::Huber { delta } => positive("loss.delta", delta),
        Loss::Cauchy { c } => positive("loss.c", c),
        _ => Ok(()),
    }
}

fn flow(flow: &FlowSpec) -> Result<(), InputError> {
    super::optimizer::foreign_fields(flow)?;
    if flow.method.is_optimizer() {
        return super::optimizer::validate(flow);
    }
    if flow.t_end.is_nan() {
        // (NaN when absent, which JSON and TOML cannot write: sgd and adam derive it)
        return Err(InputError::new(
            "flow.t_end",
            format!(
                "missing required field `t_end` for method `{}` (found NaN); allowed: a finite number > 0",
                flow.method.name()
            ),
        ));
    }
    positive("flow.t_end", flow.t_end)?;
    at_least("flow.max_steps", flow.max_steps, 1)?;
    check_steps("flow.max_steps", flow.max_steps as f64, "max_steps")?;
    let method = flow.method.name();
    let refuse = |field: &str, why: &str| {
        Err(InputError::new(
            format!("flow.{field}"),
            format!("method `{method}` {why}"),
        ))
    };
    // Which fields each method takes.
    let (step_field, takes_tolerances) = match flow.method {
        Method::Gd => ("lr", false),
        Method::Heun | Method::Rk4 => ("step", false),
        Method::Dopri5 | Method::Dop853 | Method::Verner98 => ("step", true),
        Method::Sgd | Method::Adam => unreachable!("validated by `optimizer`"),
    };
    if flow.method == Method::Gd && flow.step.is_some() {
        return refuse("step", "takes `lr` (its step), not `step`");
    }
    if flow.method != Method::Gd && flow.lr.is_some() {
        return refuse("lr", "takes `step`; `lr` is for method `gd`");
    }
    if flow.exact_path_kernel && flow.method != Method::Gd {
        return refuse(
            "exact_path_kernel",
            "has no exact path kernel; it is for method `gd`",
        );
    }
    if flow.events && flow.method == Method::Gd {
        return refuse(
            "events",
            "is for the Runge–Kutta methods; gd is a discrete map, whose steps do not stop at kinks",
        );
    }
    for (field, value) in [("rtol", flow.rtol), ("atol", flow.atol)] {
        if value.is_some() && !takes_tolerances {
            return refuse(field, "is fixed-step and takes no tolerances");
        }
        if value.is_some() && flow.step.is_some() {
            return refuse(
                field,
                "takes either `step` (fixed-step) or `rtol`/`atol` (adaptive), not both",
            );
        }
    }
    if let Some(rtol) = flow.rtol {
        in_open("flow.rtol", rtol, 0.0, 1.0)?;
    }
    if let Some(atol) = flow.atol {
        positive("flow.atol", atol)?;
    }
    match flow.fixed_step() {
        Some(h) => {
            let location = format!("flow.{step_field}");
            // Before the whole-number check, which an absurd K passes.
            positive(&location, h)?;
            check_steps(&location, flow.t_end / h, &format!("t_end / {step_field}"))?;
            whole_steps(&location, flow.t_end, h)
        }
        None if takes_tolerances => Ok(()),
        None => refuse(step_field, &format!("needs `{step_field}`, a step > 0")),
    }
}

/// A fixed step h must divide T into a whole number K of steps (SPEC §4).
fn whole_steps(location: &str, t_end: f64, h: f64) -> Result<(), InputError> {
    positive(location, h)?;
    let ratio = t_end / h;
    let k = ratio.round();
    if k >= 1.0 && (ratio - k).abs() <= WHOLE_STEPS_RTOL * k {
        return Ok(());
    }
    let k = k.max(1.0);
    Err(InputError::new(
        location,
        format!(
            "found {h:?}, but t_end / step = {t_end:?} / {h:?} = {ratio:?} is not a whole \
             number of steps (to 1e-9 relative); allowed: t_end / K for a whole K >= 1, \
             e.g. {:?} (K = {k})",
            t_end / k
        ),
    ))
}

fn finite(location: &str, x: f64) -> Result<(), InputError> {
    if x.is_finite() {
        Ok(())
    } else {
        Err(InputError::new(
            location,
            format!("found {x:?}, allowed: a finite number"),
        ))
    }
}

pub(super) fn positive(location: &str, x: f64) -> Result<(), InputError> {
    if x.is_finite() && x > 0.0 {
        Ok(())
    } else {
        Err(InputError::new(
            location,
            format!("found {x:?}, allowed: a finite number > 0"),
        ))
    }
}

/// lo <= x <= hi and x finite; `allowed` says so in the spec's terms.
pub(super) fn in_range(
    location: &str,
    x: f64,
    lo: f64,
    hi: f64,
    allowed: &str,
) -> Result<(), InputError> {
    if x.is_finite() && lo <= x && x <= hi {
        Ok(())
    } else {
        Err(InputError::new(
            location,
            format!("found {x:?}, allowed: {allowed}"),
        ))
    }
}

fn in_open(location: &str, x: f64, lo: f64, hi: f64) -> Result<(), InputError> {
    if lo < x && x < hi {
        Ok(())
    } else {
        Err(InputError::new(
            location,
            format!("found {x:?}, allowed: a number strictly between {lo:?} and {hi:?}"),
        ))
    }
}

pub(super) fn at_least(location: &str, n: usize, min: usize) -> Result<(), InputError> {
    if n >= min {
        Ok(())
    } else {
        Err(InputError::new(
            location,
            format!("found {n}, allowed: a whole number >= {min}"),
        ))
    }
}
