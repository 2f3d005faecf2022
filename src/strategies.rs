//! proptest strategies that draw whole experiments: a [`Spec`] with inline
//! data, with or without init.w0, over everything SPEC allows (or a
//! [`Space`] restricted to what a claim is about). Shared by the property
//! suite and `pathkernel search`.
//!
//! Values are built sizes first, then contents (`prop_flat_map`), with no
//! filter, so every draw is a valid spec and shrinking heads for small,
//! simple cases: each choice is an index into a list ordered simplest first
//! (linear before mlp, identity before tanh, squared before logistic, gd
//! before heun, T = 1 first), integers shrink towards 0, and the numbers are
//! on grids (inputs in quarters of [-1, 1], real targets in halves of
//! [-2, 2], w0 in quarters of [-2, 2]), so a shrunk case has round numbers.
//! The only randomness inside a case is the spec's own seed, from which the
//! run draws w0 through ChaCha when init.w0 is absent.
//!
//! [`model_spec`] and [`loss`] draw the parts on their own, with continuous
//! init scales and loss parameters: the test suite's per-model checks and
//! its flow properties, which build their data themselves.
use crate::activation::Activation;
use crate::loss::{Loss, TargetKind};
use crate::spec::{
    DataSpec, FlowSpec, InitSpec, Method, ModelSpec, Parameterization, Reduction, Spec, Targets,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::Union;
use std::ops::{Range, RangeInclusive};

mod layered;
mod optimizer;
pub use layered::MAX_CONV_SIDE;

/// The architectures of SPEC §3, simplest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Linear,
    Mlp,
    DiagLinear,
    Resmlp,
    /// `layers` with a 1-D or 2-D convolution on inputs up to 1 x 6 x 6.
    Conv,
    /// `layers`: a dense layer followed by layer_norm.
    LayerNorm,
}

impl Arch {
    pub const ALL: [Arch; 6] = [
        Arch::Linear,
        Arch::Mlp,
        Arch::DiagLinear,
        Arch::Resmlp,
        Arch::Conv,
        Arch::LayerNorm,
    ];
}

/// Whether a drawn spec gives init.w0 or lets the run draw it from the seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitChoice {
    Seeded,
    Explicit,
    Either,
}

/// The part of SPEC's space a strategy draws from. Lists are drawn by
/// index, so their first entries are where shrinking goes.
#[derive(Clone, Debug)]
pub struct Space {
    pub archs: Vec<Arch>,
    pub activations: Vec<Activation>,
    /// Loss kinds; huber's delta and cauchy's c are drawn from {1, 0.5, 2}.
    pub losses: Vec<Loss>,
    pub reductions: Vec<Reduction>,
    pub methods: Vec<Method>,
    /// Whether dopri5, dop853 and verner98 may run adaptively.
    pub adaptive: bool,
    /// Hidden layers of an mlp, blocks of a resmlp: 0 to this (SPEC: <= 3 here).
    pub max_depth: usize,
    /// Layer widths: 1 to this.
    pub max_width: usize,
    /// N, M, D.
    pub n_train: RangeInclusive<usize>,
    pub n_query: RangeInclusive<usize>,
    pub dim: RangeInclusive<usize>,
    /// The query points are the training points (M = N): the path kernel
    /// is then the Gram matrix of the training set.
    pub queries_are_training: bool,
    /// The query points get targets (data.test_y), drawn as train_y's.
    pub query_targets: bool,
    /// T is drawn from these (first = where shrinking goes).
    pub t_ends: Vec<f64>,
    /// A fixed-step run takes K = round(2^(j/2)) steps, j in
    /// min..=max_step_exponent: step sizes log-uniform, from T / 2^(min/2)
    /// down to T / 2^(max/2).
    pub min_step_exponent: u32,
    pub max_step_exponent: u32,
    /// rtol = 10^-r for r in this range; atol = rtol / 100.
    pub rtol_exponents: RangeInclusive<u32>,
    /// max_steps of an adaptive run, which keeps a stiff draw cheap (it
    /// fails as a run, which claims treat as no evidence).
    pub max_adaptive_steps: usize,
    /// init_scale = 2^(e/2) for e in this range.
    pub init_exponents: RangeInclusive<i32>,
    pub init: InitChoice,
    /// C, the outputs of linear, mlp and resmlp (first = where shrinking
    /// goes); cross_entropy takes at least 2, diag_linear has 1.
    pub outputs: Vec<usize>,
}

impl Default for Space {
    /// Everything SPEC allows at the sizes of issue 3: depth 0 to 3, width 1
    /// to 16, N 1 to 12, M 1 to 6, D 1 to 4, C 1 to 4, every loss
    /// (cross_entropy last), every method, adaptive or fixed.
    fn default() -> Space {
        let mut losses = Loss::all();
        losses.push(Loss::CrossEntropy);
        Space {
            archs: Arch::ALL.to_vec(),
            activations: Activation::ALL.to_vec(),
            losses,
            reductions: vec![Reduction::Sum, Reduction::Mean],
            methods: vec![
                Method::Gd,
                Method::Heun,
                Method::Rk4,
                Method::Dopri5,
                Method::Dop853,
                Method::Verner98,
            ],
            adaptive: true,
            max_depth: 3,
            max_width: 16,
            n_train: 1..=12,
            n_query: 1..=6,
            dim: 1..=4,
            queries_are_training: false,
            query_targets: false,
            t_ends: vec![1.0, 0.5, 2.0, 0.25, 4.0],
            min_step_exponent: 0,
            max_step_exponent: 16,
            rtol_exponents: 3..=10,
            max_adaptive_steps: 2000,
            init_exponents: -8..=4,
            init: InitChoice::Either,
            outputs: vec![1, 2, 3, 4],
        }
    }
}

impl Space {
    /// The space with only smooth activations and losses: where the
    /// theorem's conditions hold everywhere.
    pub fn smooth(mut self) -> Space {
        self.activations.retain(|a| a.is_smooth());
        self.losses.retain(|l| l.is_smooth());
        self
    }
}

/// The discrete choices of a case, drawn before its contents.
#[derive(Clone, Debug)]
struct Shape {
    arch: Arch,
    /// The layers of `Arch::Conv` and `Arch::LayerNorm`.
    layered: layered::LayeredShape,
    /// C as drawn (see [`Shape::outputs`]).
    outputs: usize,
    hidden: Vec<usize>,
    width: usize,
    activation: Activation,
    bias: bool,
    parameterization: Parameterization,
    init_scale: f64,
    loss: Loss,
    reduction: Reduction,
    n: usize,
    m: usize,
    d: usize,
    method: Method,
    t_end: f64,
    steps: usize,
    /// Some(r): adaptive with rtol 10^-r.
    rtol_exponent: Option<u32>,
    seed: u64,
    explicit_w0: bool,
    /// sgd/adam's options, drawn only when the space has those methods.
    optimizer: optimizer::OptimizerShape,
}

impl Shape {
    /// C: as drawn, at least 2 under cross_entropy, 1 for diag_linear.
    fn outputs(&self) -> usize {
        match (self.arch, self.loss) {
            (Arch::DiagLinear, _) => 1,
            (_, Loss::CrossEntropy) => self.outputs.max(2),
            _ => self.outputs,
        }
    }

    /// The loss: cross_entropy needs C >= 2, which diag_linear cannot
    /// have, so that pair draws squared instead.
    fn loss(&self) -> Loss {
        match (self.arch, self.loss) {
            (Arch::DiagLinear, Loss::CrossEntropy) => Loss::Squared,
            (_, loss) => loss,
        }
    }

    fn model(&self) -> ModelSpec {
        let outputs = self.outputs();
        match self.arch {
            Arch::Linear => ModelSpec::Linear {
                init_scale: self.init_scale,
                outputs,
            },
            Arch::Mlp => ModelSpec::Mlp {
                hidden: self.hidden.clone(),
                activation: self.activation,
                bias: self.bias,
                parameterization: self.parameterization,
                init_scale: self.init_scale,
                outputs,
            },
            Arch::DiagLinear => ModelSpec::DiagLinear {
                init_scale: self.init_scale,
            },
            Arch::Resmlp => ModelSpec::Resmlp {
                width: self.width,
                blocks: self.hidden.len(),
                activation: self.activation,
                init_scale: self.init_scale,
                outputs,
            },
            Arch::Conv => self
                .layered
                .conv_model(self.activation, self.init_scale, outputs),
            Arch::LayerNorm => self.layered.layer_norm_model(
                self.d,
                self.width,
                self.activation,
                self.init_scale,
                outputs,
            ),
        }
    }

    fn flow(&self, max_adaptive_steps: usize) -> FlowSpec {
        let h = self.t_end / self.steps as f64;
        if self.method.is_optimizer() {
            return self.optimizer.flow(self.method, h, self.steps, self.n);
        }
        let mut flow = FlowSpec::new(self.t_end, self.method);
        match (self.method, self.rtol_exponent) {
            (Method::Gd, _) => flow.lr = Some(h),
            (m, Some(r)) if m.has_error_estimate() => {
                let rtol = 10f64.powi(-(r as i32));
                flow.rtol = Some(rtol);
                flow.atol = Some(rtol / 100.0);
                flow.max_steps = max_adaptive_steps;
            }
            _ => flow.step = Some(h),
        }
        flow
    }
}

/// Picks from a non-empty list by index (shrinks towards the first entry).
fn pick<T: Clone + std::fmt::Debug + 'static>(list: &[T]) -> BoxedStrategy<T> {
    assert!(!list.is_empty(), "a Space list must not be empty");
    select(list.to_vec()).boxed()
}

fn shape(space: &Space) -> BoxedStrategy<Shape> {
    let model = (
        pick(&space.archs),
        vec(1..=space.max_width, 0..=space.max_depth),
        1..=space.max_width,
        pick(&space.activations),
        any::<bool>(),
        any::<bool>().prop_map(|ntk| {
            if ntk {
                Parameterization::Ntk
            } else {
                Parameterization::Standard
            }
        }),
        space
            .init_exponents
            .clone()
            .prop_map(|e| 2f64.powf(e as f64 / 2.0)),
        layered::layered_shape(),
    );
    let loss = (
        pick(&space.losses),
        select(vec![1.0, 0.5, 2.0]),
        pick(&space.reductions),
    )
        .prop_map(|(loss, p, reduction)| {
            let loss = match loss {
                Loss::Huber { .. } => Loss::Huber { delta: p },
                Loss::Cauchy { .. } => Loss::Cauchy { c: p },
                other => other,
            };
            (loss, reduction)
        });
    let sizes = (
        space.n_train.clone(),
        space.n_query.clone(),
        space.dim.clone(),
    );
    let adaptive = space.adaptive;
    let flow = (
        pick(&space.methods),
        pick(&space.t_ends),
        space.min_step_exponent..=space.max_step_exponent,
        any::<bool>(),
        space.rtol_exponents.clone(),
    )
        .prop_map(move |(method, t_end, j, adapt, r)| {
            let steps = 2f64.powf(j as f64 / 2.0).round() as usize;
            let rtol_exponent = (adaptive && adapt && method.has_error_estimate()).then_some(r);
            (method, t_end, steps, rtol_exponent)
        });
    let init = match space.init {
        InitChoice::Seeded => Just(false).boxed(),
        InitChoice::Explicit => Just(true).boxed(),
        // Shrinks towards an explicit w0 on the grid: round numbers.
        InitChoice::Either => any::<bool>().prop_map(|seeded| !seeded).boxed(),
    };
    let queries_are_training = space.queries_are_training;
    // A one-entry list draws nothing, so spaces without vector outputs
    // draw exactly the cases they drew before C existed.
    let outputs = match space.outputs.as_slice() {
        [c] => Just(*c).boxed(),
        list => pick(list),
    };
    // Likewise the optimizer's options: drawn only for sgd/adam spaces.
    let optimizer = if space.methods.iter().any(|m| m.is_optimizer()) {
        optimizer::optimizer_shape()
    } else {
        Just(optimizer::OptimizerShape::default()).boxed()
    };
    (
        model,
        loss,
        sizes,
        flow,
        0..=u64::from(u16::MAX),
        init,
        outputs,
        optimizer,
    )
        .prop_map(
            move |(
                (arch, hidden, width, activation, bias, parameterization, init_scale, layered),
                (loss, reduction),
                (n, m, d),
                (method, t_end, steps, rtol_exponent),
                seed,
                explicit_w0,
                outputs,
                optimizer,
            )| Shape {
                arch,
                // A convolution's D is its input shape's.
                d: if arch == Arch::Conv {
                    layered.conv_input_len()
                } else {
                    d
                },
                layered,
                outputs,
                hidden,
                width,
                activation,
                bias,
                parameterization,
                init_scale,
                loss,
                reduction,
                n,
                m: if queries_are_training { n } else { m },
                method,
                t_end,
                steps,
                rtol_exponent,
                seed,
                explicit_w0,
                optimizer,
            },
        )
        .boxed()
}

/// Rows of `d` grid values k/4, k in -4..=4.
fn rows(values: &[i32], d: usize) -> Vec<Vec<f64>> {
    values
        .chunks(d)
        .map(|r| r.iter().map(|&k| f64::from(k) / 4.0).collect())
        .collect()
}

/// A target the loss accepts, from a grid value k in -4..=4 (0 is the
/// simplest: 0 for real and 0/1 targets, +1 for labels, class 0 of C).
fn target(kind: TargetKind, k: i32, c: usize) -> f64 {
    match kind {
        TargetKind::ClassIndex => f64::from(k.rem_euclid(c as i32)),
        TargetKind::Real => f64::from(k) / 2.0,
        TargetKind::PlusMinusOne => {
            if k < 0 {
                -1.0
            } else {
                1.0
            }
        }
        TargetKind::ZeroOne => f64::from(u8::from(k > 0)),
    }
}

/// Whole experiments from `space`: every value is a valid spec with inline
/// data (and init.w0 when drawn so).
pub fn experiment(space: &Space) -> BoxedStrategy<Spec> {
    let space = space.clone();
    shape(&space)
        .prop_flat_map(move |shape| {
            let (n, m, d) = (shape.n, shape.m, shape.d);
            let test = if space.queries_are_training { 0 } else { m * d };
            let p = if shape.explicit_w0 {
                shape.model().n_params(d)
            } else {
                0
            };
            let columns = shape.loss().target_columns(shape.outputs());
            let max_steps = space.max_adaptive_steps;
            let queries_are_training = space.queries_are_training;
            // The query targets (when drawn) follow the training targets in
            // one vector, so that a space without them draws as before.
            let query_targets = if space.query_targets { m * columns } else { 0 };
            (
                vec(-4i32..=4, n * d),
                vec(-4i32..=4, (n * columns) + query_targets),
                vec(-4i32..=4, test),
                vec(-8i32..=8, p),
            )
                .prop_map(move |(x, y, q, w)| {
                    let train_x = rows(&x, d);
                    let test_x = if queries_are_training {
                        train_x.clone()
                    } else {
                        rows(&q, d)
                    };
                    let (loss, c) = (shape.loss(), shape.outputs());
                    let kind = loss.target_kind();
                    let y: Vec<f64> = y.iter().map(|&k| target(kind, k, c)).collect();
                    let (y, y_query) = y.split_at(n * columns);
                    let targets = |y: &[f64]| {
                        if columns == 1 {
                            Targets::Numbers(y.to_vec())
                        } else {
                            Targets::Rows(y.chunks(columns).map(<[f64]>::to_vec).collect())
                        }
                    };
                    let train_y = targets(y);
                    let test_y = (query_targets > 0).then(|| targets(y_query));
                    Spec {
                        seed: shape.seed,
                        data: DataSpec::Inline {
                            train_x,
                            train_y,
                            test_x,
                            test_y,
                        },
                        model: shape.model(),
                        init: shape.explicit_w0.then(|| InitSpec {
                            w0: w.iter().map(|&k| f64::from(k) / 4.0).collect(),
                        }),
                        loss,
                        reduction: shape.reduction,
                        flow: shape.flow(max_steps),
                    }
                })
        })
        .boxed()
}

/// What [`model_spec`] draws: each architecture of SPEC §3 with these sizes
/// and init scales (uniform in each range).
#[derive(Clone, Debug)]
pub struct ModelRanges {
    /// Activations of mlp and resmlp.
    pub activations: Vec<Activation>,
    /// Number of hidden layers of an mlp, and the width of each.
    pub mlp_depth: RangeInclusive<usize>,
    pub mlp_width: RangeInclusive<usize>,
    pub resmlp_width: RangeInclusive<usize>,
    pub resmlp_blocks: RangeInclusive<usize>,
    /// init_scale of linear and mlp.
    pub init_scale: Range<f64>,
    pub resmlp_init_scale: Range<f64>,
    /// alpha of diag_linear.
    pub diag_init_scale: Range<f64>,
    /// C, the outputs of linear, mlp and resmlp (diag_linear has 1).
    pub outputs: Vec<usize>,
}

impl ModelRanges {
    /// The gradient and kernel checks against forward mode (claim C1):
    /// every activation, mlp depth 0 to 3 and widths 1 to 5, resmlp width 1
    /// to 5 with 0 to 2 blocks, init scales in [0.5, 2), diag_linear alpha
    /// in [0.1, 2), C in {1, 2, 3, 5}.
    pub fn gradient_checks() -> ModelRanges {
        ModelRanges {
            activations: Activation::ALL.to_vec(),
            mlp_depth: 0..=3,
            mlp_width: 1..=5,
            resmlp_width: 1..=5,
            resmlp_blocks: 0..=2,
            init_scale: 0.5..2.0,
            resmlp_init_scale: 0.5..2.0,
            diag_init_scale: 0.1..2.0,
            outputs: vec![1, 2, 3, 5],
        }
    }

    /// The flow properties, which integrate each draw many times: mlp depth
    /// 0 to 2 and widths 1 to 8, resmlp width 1 to 6 with 1 or 2 blocks and
    /// init scale in [0.5, 1.5), diag_linear alpha in [0.3, 1.5); `smooth`
    /// keeps the analytic activations (no relu-type kink).
    pub fn flow_checks(smooth: bool) -> ModelRanges {
        let mut activations = Activation::ALL.to_vec();
        if smooth {
            activations.retain(|a| a.is_smooth());
        }
        ModelRanges {
            activations,
            mlp_depth: 0..=2,
            mlp_width: 1..=8,
            resmlp_width: 1..=6,
            resmlp_blocks: 1..=2,
            init_scale: 0.5..2.0,
            resmlp_init_scale: 0.5..1.5,
            diag_init_scale: 0.3..1.5,
            outputs: vec![1],
        }
    }
}

/// A model of each architecture with equal chance (linear, mlp, resmlp,
/// diag_linear); an mlp's bias and parameterization are fair coins.
pub fn model_spec(ranges: &ModelRanges) -> BoxedStrategy<ModelSpec> {
    let activation = pick(&ranges.activations);
    let parameterization = prop_oneof![
        Just(Parameterization::Standard),
        Just(Parameterization::Ntk)
    ];
    // A one-entry list draws nothing (see `shape`).
    let outputs = match ranges.outputs.as_slice() {
        [c] => Just(*c).boxed(),
        list => pick(list),
    };
    prop_oneof![
        (ranges.init_scale.clone(), outputs.clone()).prop_map(|(init_scale, outputs)| {
            ModelSpec::Linear {
                init_scale,
                outputs,
            }
        }),
        (
            vec(ranges.mlp_width.clone(), ranges.mlp_depth.clone()),
            activation.clone(),
            any::<bool>(),
            parameterization,
            ranges.init_scale.clone(),
            outputs.clone(),
        )
            .prop_map(
                |(hidden, activation, bias, parameterization, init_scale, outputs)| {
                    ModelSpec::Mlp {
                        hidden,
                        activation,
                        bias,
                        parameterization,
                        init_scale,
                        outputs,
                    }
                }
            ),
        (
            ranges.resmlp_width.clone(),
            ranges.resmlp_blocks.clone(),
            activation,
            ranges.resmlp_init_scale.clone(),
            outputs,
        )
            .prop_map(|(width, blocks, activation, init_scale, outputs)| {
                ModelSpec::Resmlp {
                    width,
                    blocks,
                    activation,
                    init_scale,
                    outputs,
                }
            }),
        ranges
            .diag_init_scale
            .clone()
            .prop_map(|init_scale| ModelSpec::DiagLinear { init_scale }),
    ]
    .boxed()
}

/// One of `kinds` with equal chance; huber's delta and cauchy's c are drawn
/// from `parameter` (the value in `kinds` is ignored). A union of one
/// strategy per kind, so that a parameter is drawn only where there is one.
pub fn loss(kinds: &[Loss], parameter: Range<f64>) -> BoxedStrategy<Loss> {
    assert!(!kinds.is_empty(), "no loss kinds to draw from");
    Union::new(kinds.iter().map(|&kind| {
        match kind {
            Loss::Huber { .. } => parameter
                .clone()
                .prop_map(|delta| Loss::Huber { delta })
                .boxed(),
            Loss::Cauchy { .. } => parameter.clone().prop_map(|c| Loss::Cauchy { c }).boxed(),
            other => Just(other).boxed(),
        }
    }))
    .boxed()
}
