//! The claims `pathkernel search` tests: what each says, its threshold, and
//! the part of the spec space it is about. How a claim is measured on one
//! experiment is in `measure`.
use crate::activation::Activation;
use crate::experiment::integration;
use crate::loss::Loss;
use crate::spec::Method;
use crate::strategies::{Arch, Space};

/// The claims the search knows, each with its threshold (see [`Claim::statement`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Claim {
    Order,
    GdLimit,
    WeightedAverage,
    FixedCoefficients,
    Lazy,
    MonotoneLoss,
    Psd,
    SgdLimit,
    AdamKernelMachine,
    DecayOffset,
    SecondOrder,
    KernelGeneralises,
    Sliding,
}

/// gd-limit, sgd-limit and adam-kernel-machine: the Domingos residual may
/// be at most this fraction of the change in predictions.
pub const GD_LIMIT_TOL: f64 = 0.1;
/// decay-offset: f(w0) + Σ_i A^e_i, the decay term dropped, may miss
/// f(w_end) by at most this fraction of the change.
pub const DECAY_OFFSET_TOL: f64 = 0.1;
/// second-order: the second-order residual may be at most this fraction of
/// the Domingos (first-order) residual.
pub const SECOND_ORDER_TOL: f64 = 0.1;
/// order: the observed order may fall at most this far below the method's.
pub const ORDER_SLACK: f64 = 0.5;
/// order: the spec runs at h, h/2, ..., h/2^this; the claim fails when the
/// order observed over each of the last two halvings is low, so a failure
/// persists as h shrinks rather than being a transient of large steps.
pub const ORDER_HALVINGS: u32 = 3;
/// order and gd-limit: residuals below this times the problem's scale are
/// rounding, not truncation error: each of at most 4 x 256 steps adds a few
/// ulps (1e-16) of |A|, so rounding stays below 1e-12 of the scale.
pub const ORDER_FLOOR: f64 = 1e-10;
/// fixed-coefficients: the best single a may leave this relative residual in A.
pub const FIXED_COEF_TOL: f64 = 0.01;
/// lazy: |K^p − T K^g(0)|_F may be this fraction of |T K^g(0)|_F.
pub const LAZY_TOL: f64 = 0.1;
/// psd: λ_min may be as low as −this × trace. K^p is a non-negative
/// combination of Gram matrices; each entry's rounding is at most P u times
/// sqrt(K(x,x) K(x',x')) <= trace, and with P <= 10^3 and N <= 12 the
/// eigenvalue error is below 1e-12 trace.
pub const PSD_TOL: f64 = 1e-10;
/// kernel-generalises: KRR with the path kernel may miss the network's test
/// error by this fraction of max(network's error, floor).
pub const GENERALISES_TOL: f64 = 0.1;
/// kernel-generalises, real targets: test MSEs below this fraction of
/// max(1, the query targets' mean square) both count as a perfect fit (the
/// floor of "within 10%"); with class labels the floor is 1/M, one point.
pub const GENERALISES_MSE_FLOOR: f64 = 0.01;
/// sliding: the identity residual read with SPEC §1's conventions may be
/// this fraction of max|y_end − y0|: C12's bound for dop853 at rtol 1e-12
/// (proofs.md E2), which the Filippov-weighted residual meets (E5, E6).
pub const SLIDING_TOL: f64 = 1e-10;

impl Claim {
    pub const ALL: [Claim; 13] = [
        Claim::Order,
        Claim::GdLimit,
        Claim::WeightedAverage,
        Claim::FixedCoefficients,
        Claim::Lazy,
        Claim::MonotoneLoss,
        Claim::Psd,
        Claim::SgdLimit,
        Claim::AdamKernelMachine,
        Claim::DecayOffset,
        Claim::SecondOrder,
        Claim::KernelGeneralises,
        Claim::Sliding,
    ];

    /// The claim called `name` on the command line.
    pub fn by_name(name: &str) -> Option<Claim> {
        Claim::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Claim::Order => "order",
            Claim::GdLimit => "gd-limit",
            Claim::WeightedAverage => "weighted-average",
            Claim::FixedCoefficients => "fixed-coefficients",
            Claim::Lazy => "lazy",
            Claim::MonotoneLoss => "monotone-loss",
            Claim::Psd => "psd",
            Claim::SgdLimit => "sgd-limit",
            Claim::AdamKernelMachine => "adam-kernel-machine",
            Claim::DecayOffset => "decay-offset",
            Claim::SecondOrder => "second-order",
            Claim::KernelGeneralises => "kernel-generalises",
            Claim::Sliding => "sliding",
        }
    }

    /// What the claim says and how its violation is measured.
    pub fn statement(self) -> &'static str {
        match self {
            Claim::Order => {
                "a fixed-step method of order p makes the identity residual fall as h^p: of the orders \
                 observed over h/2 -> h/4 and h/4 -> h/8, log2(r(h/2^k)/r(h/2^(k+1))), the larger is at least \
                 p - 0.5 (violation = (p - larger) / 0.5; residuals below 1e-10 of max(1, |y_end|, \
                 sum_i |A_i|) are rounding and prove nothing)"
            }
            Claim::GdLimit => {
                "at the spec's learning rate gd is a kernel machine up to the Domingos residual: \
                 max|r| <= 0.1 max|y_end - y0| (violation = max|r| / (0.1 max|y_end - y0|); \
                 residuals below 1e-10 of max(1, |y_end|, sum_i |A_i|) are rounding and pass)"
            }
            Claim::WeightedAverage => {
                "each a_i(x) lies within the range of -l'_i along the path \
                 (violation = conditions.weighted_average_excess / 1e-6)"
            }
            Claim::FixedCoefficients => {
                "one coefficient vector a serves every query point: the best single a leaves at most 1% \
                 of A unexplained (violation = conditions.coefficient_variation / 0.01)"
            }
            Claim::Lazy => {
                "the path kernel stays within 10% of T times the initial tangent kernel \
                 (violation = conditions.path_kernel_drift / 0.1)"
            }
            Claim::MonotoneLoss => {
                "the loss never increases between sampled states, gd's iterates or dopri5's steps \
                 (violation = conditions.loss_increase / 1e-9)"
            }
            Claim::Psd => {
                "the path-kernel Gram matrix on the training set is positive semidefinite: \
                 lambda_min(sym K^p) >= -1e-10 trace (violation = -lambda_min / (1e-10 trace))"
            }
            Claim::SgdLimit => {
                "at the spec's learning rate and batches sgd is a kernel machine up to the Domingos \
                 residual (decay term in the offset): max|r| <= 0.1 max|y_end - y0| (violation = \
                 max|r| / (0.1 max|y_end - y0|); residuals below 1e-10 of max(1, |y_end|, sum_i |A_i|) \
                 are rounding and pass)"
            }
            Claim::AdamKernelMachine => {
                "at the spec's learning rate and batches adam is a kernel machine up to the Domingos \
                 residual (P_k-weighted path kernel, decay term in the offset): max|r| <= 0.1 \
                 max|y_end - y0| (violation as for sgd-limit)"
            }
            Claim::DecayOffset => {
                "the decay term may be dropped: with b(x) = f(w0; x) and the exact coefficients, \
                 max|y_end - y0 - sum_i A^e_i| <= 0.1 max|y_end - y0| (violation = that miss / \
                 (0.1 max|y_end - y0|); misses below 1e-10 of max(1, |y_end|, sum_i |A_i|) are \
                 rounding and pass)"
            }
            Claim::SecondOrder => {
                "the second-order term explains the Domingos residual at a small learning rate: \
                 max|r - r2| <= 0.1 max|r| (violation = max|r - r2| / (0.1 max|r|); residuals \
                 below 1e-10 of max(1, |y_end|, sum_i |A_i|) are rounding and pass)"
            }
            Claim::KernelGeneralises => {
                "kernel ridge regression with the path kernel (pathkernel learn, ridge by exact \
                 leave-one-out) predicts within 10% of the network's test error: |e_krr - e_net| <= \
                 0.1 max(e_net, floor), e the MSE at the query points (floor 0.01 max(1, mean y*^2)) \
                 or, for class labels, 1 - accuracy (floor 1/M) (violation = |e_krr - e_net| / \
                 (0.1 max(e_net, floor)))"
            }
            Claim::Sliding => {
                "the Domingos identity holds on a sliding segment to the method's order, with the \
                 path kernel of SPEC section 1 (relu'(0) = 0): run with events by dop853 at rtol \
                 1e-12, K^p and A integrated with the kinks' conventions on sliding segments, \
                 max|r| <= 1e-10 max|y_end - y0| (violation = max|r| / (1e-10 max|y_end - y0|); \
                 a run that reaches no sliding mode is no evidence)"
            }
        }
    }

    /// The part of SPEC's space the claim is about.
    pub fn space(self) -> Space {
        let mut space = Space::default();
        match self {
            // Fixed steps, 4 <= K <= 32, so that the 8K-step rerun stays
            // cheap and one step is not the whole path; gd is order 1 even
            // at kinks, so it cannot fail and is left out.
            Claim::Order => {
                space.methods = vec![Method::Heun, Method::Rk4, Method::Dopri5];
                space.adaptive = false;
                space.min_step_exponent = 4;
                space.max_step_exponent = 10;
            }
            Claim::GdLimit | Claim::WeightedAverage => space.methods = vec![Method::Gd],
            Claim::FixedCoefficients => space.n_query = 2..=6,
            Claim::Lazy => {}
            // The tracker samples accepted states only for these two.
            Claim::MonotoneLoss => space.methods = vec![Method::Gd, Method::Dopri5],
            // Methods with b >= 0, for which K^p is a non-negative
            // combination of Gram matrices (dopri5's b5 < 0).
            Claim::Psd => {
                space.methods = space
                    .methods
                    .iter()
                    .copied()
                    .filter(|&m| nonnegative_weights(m))
                    .collect();
                space.queries_are_training = true;
                space.n_train = 1..=8;
            }
            // 2 to 32 steps at lr = T / K, every option of SPEC §9.
            Claim::SgdLimit | Claim::AdamKernelMachine | Claim::DecayOffset => {
                space.methods = match self {
                    Claim::SgdLimit => vec![Method::Sgd],
                    Claim::AdamKernelMachine => vec![Method::Adam],
                    _ => vec![Method::Sgd, Method::Adam],
                };
                space.min_step_exponent = 2;
                space.max_step_exponent = 10;
            }
            // The control (proofs.md C40): smooth models and losses, at
            // least 64 steps of lr = T / K <= 1/64, T <= 1, for every
            // discrete method. It holds once each step is small against
            // f's curvature scale, which no fixed lr is for every model:
            // the corpus holds what the search finds (layer_norm at √eps,
            // and, in a narrower space, Adam's steps of length ~lr √P).
            Claim::SecondOrder => {
                space = space.smooth();
                space.methods = vec![Method::Gd, Method::Sgd, Method::Adam];
                space.t_ends = vec![1.0, 0.5, 0.25];
                space.min_step_exponent = 12;
                space.max_step_exponent = 14;
            }
            // Query points with targets, so that there is a test error.
            Claim::KernelGeneralises => space.query_targets = true,
            // relu-type mlps under smooth losses reach sliding modes of
            // their units (squared loss: the flow pushes a unit's
            // pre-activation at a point to its kink from both sides);
            // a loss kink's convention is neither branch, so none here.
            // One hidden layer, where a query point lies on a training
            // point's kink surface exactly when their inputs are parallel.
            // dop853 at rtol 1e-12, the tolerance the threshold is for.
            Claim::Sliding => {
                space.archs = vec![Arch::Mlp];
                space.max_depth = 1;
                space.activations = vec![Activation::Relu, Activation::LeakyRelu];
                space.losses = vec![Loss::Squared];
                space.methods = vec![Method::Dop853];
                space.adaptive = true;
                space.rtol_exponents = 12..=12;
                space.outputs = vec![1];
            }
        }
        space
    }
}

/// True when every weight b_j of the method is >= 0.
fn nonnegative_weights(method: Method) -> bool {
    let mut flow = crate::spec::FlowSpec::new(1.0, method);
    flow.max_steps = 1;
    match method {
        Method::Gd => flow.lr = Some(1.0),
        _ => flow.step = Some(1.0),
    }
    integration(&flow).0.b.iter().all(|&b| b >= 0.0)
}
