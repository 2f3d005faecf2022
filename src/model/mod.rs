//! Models f(w; x) with C >= 1 outputs (SPEC §3, §8).
//!
//! A model evaluates a whole batch at once and records, on a [`Tape`], what
//! its per-example Jacobian is made of: for a dense weight W in z = s W u the
//! Jacobian block of output c of example r is s δ_{rc} u_rᵀ, with δ_{rc} =
//! ∂f_c/∂z; for a bias it is δ_{rc}. The backward pass carries the C output
//! sensitivities of every example at once, as (rows · C) x width matrices
//! whose row r C + c belongs to output c of example r. The parameter
//! gradient and the tangent kernel are then computed from those factors by
//! `crate::kernel`, without ever forming a per-example Jacobian.
mod diag_linear;
pub mod layers;
mod mlp;
pub mod reference;
mod resmlp;
pub mod taylor;

pub use diag_linear::DiagLinear;
pub use layers::Layered;
pub use mlp::Mlp;
pub use resmlp::ResMlp;
pub use taylor::{Jet, TaylorTape};

use crate::spec::ModelSpec;
use nalgebra::DMatrix;
use rand_chacha::ChaCha20Rng;

/// Where one block of parameters enters the per-example Jacobian.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Block {
    /// A weight W (out x in, row-major at `offset`) in z = scale · W u + …:
    /// the block of example r is scale · δ_r u_rᵀ, with u = `tape.inputs[input]`
    /// and δ = `tape.deltas[delta]`.
    Dense {
        offset: usize,
        input: usize,
        delta: usize,
        scale: f64,
    },
    /// A bias b in z = … + b: the block of example r is δ_r.
    Bias { offset: usize, delta: usize },
    /// Parameters with no dense structure: the block is `tape.explicit[jac]`,
    /// one row per example and output (row r C + c).
    Explicit { offset: usize, jac: usize },
}

/// What one forward and backward pass over a batch leaves behind. Allocated
/// once per batch; every later evaluation overwrites it in place.
#[derive(Clone, Debug)]
pub struct Tape {
    /// f_c(w; x_r) at (r, c): rows x C.
    pub output: DMatrix<f64>,
    /// Layer inputs u (rows x in); `inputs[0]` is the batch itself.
    pub inputs: Vec<DMatrix<f64>>,
    /// Output sensitivities δ = ∂f_c/∂z ((rows · C) x out, row r C + c), one
    /// per pre-activation.
    pub deltas: Vec<DMatrix<f64>>,
    /// Explicit Jacobian blocks ((rows · C) x len).
    pub explicit: Vec<DMatrix<f64>>,
    /// Model-private intermediate values (activation derivatives).
    pub(crate) scratch: Vec<DMatrix<f64>>,
    /// Branch locks of the kink matrices, one per matrix of
    /// `kink_preactivations` (empty: every unit free); see
    /// [`crate::kinks::lock_activation`].
    pub(crate) locks: Vec<Vec<f64>>,
}

impl Tape {
    /// The batch's examples.
    pub fn rows(&self) -> usize {
        self.output.nrows()
    }

    /// C, the outputs per example.
    pub fn outputs(&self) -> usize {
        self.output.ncols()
    }

    /// f_c(x_r) for r in `rows`, example-major (entry (r − start) C + c),
    /// the order of every per-output vector outside the tape.
    pub fn outputs_into(&self, rows: std::ops::Range<usize>, out: &mut [f64]) {
        let c = self.outputs();
        for (k, r) in rows.enumerate() {
            for j in 0..c {
                out[k * c + j] = self.output[(r, j)];
            }
        }
    }

    /// The output seed of the backward pass: row r C + c of `delta`
    /// ((rows · C) x C) is e_c, ∂f_c/∂f.
    pub(crate) fn seed_outputs(delta: &mut DMatrix<f64>) {
        let c = delta.ncols();
        if c == 1 {
            delta.fill(1.0);
            return;
        }
        delta.fill(0.0);
        for r in 0..delta.nrows() {
            delta[(r, r % c)] = 1.0;
        }
    }
}

/// A differentiable model evaluated on batches.
pub trait Model: Send + Sync {
    /// P, the length of the flat parameter vector.
    fn n_params(&self) -> usize;
    /// D, the input dimension.
    fn input_dim(&self) -> usize;
    /// C, the number of outputs.
    fn outputs(&self) -> usize {
        1
    }
    /// How the parameters enter the Jacobian, in parameter order.
    fn blocks(&self) -> &[Block];
    /// True when f is smooth in w and x (no relu-type kink).
    fn is_smooth(&self) -> bool;
    /// A tape for the batch `x` (rows x D).
    fn tape(&self, x: &DMatrix<f64>) -> Tape;
    /// Outputs f(w; x_r) for the tape's batch, and whatever the backward pass needs.
    fn forward(&self, w: &[f64], tape: &mut Tape);
    /// Output sensitivities δ for every block; `forward` at the same w must come first.
    fn backward(&self, w: &[f64], tape: &mut Tape);
    /// Initial parameters drawn from `rng` as SPEC §3 prescribes.
    fn init(&self, rng: &mut ChaCha20Rng) -> Vec<f64>;
    /// The index of the output layer's δ (row r C + c is e_c), which lets
    /// the tangent kernel skip its products.
    fn unit_delta(&self) -> Option<usize> {
        None
    }
    /// Buffers for [`Model::taylor`] over the batch `x` (rows x D).
    fn taylor_tape(&self, x: &DMatrix<f64>) -> TaylorTape;
    /// Second-order Taylor mode along `dw`: leaves in `tape.output()` the
    /// jet of f(w + t dw; x_r) at t = 0, whose `second` is dwᵀ ∇²_w f dw.
    /// Separate from `forward`/`backward`, which it never slows.
    fn taylor(&self, w: &[f64], dw: &[f64], tape: &mut TaylorTape);
    /// The pre-activations of kinked units (relu, leaky_relu) on the tape, for
    /// detecting kink crossings; empty for smooth models.
    fn kink_preactivations<'t>(&self, _tape: &'t Tape) -> Vec<&'t DMatrix<f64>> {
        Vec::new()
    }
    /// The jet of the l-th matrix of [`Model::kink_preactivations`] on a
    /// Taylor tape: `first` is dz/dt along the direction, what a sliding
    /// mode's coefficient needs (`crate::sliding`). None where a model does
    /// not provide it; its sliding modes are then not integrated.
    fn kink_jet<'t>(&self, _tape: &'t TaylorTape, _l: usize) -> Option<&'t taylor::Jet> {
        None
    }
}

/// Builds the model a spec describes, for inputs of dimension `dim`; the
/// spec must have been checked against `dim` (a `layers` spec's shapes).
pub fn build(spec: &ModelSpec, dim: usize) -> Box<dyn Model> {
    match *spec {
        ModelSpec::Linear {
            init_scale,
            outputs,
        } => Box::new(Mlp::linear(dim, outputs, init_scale)),
        ModelSpec::Mlp {
            ref hidden,
            activation,
            bias,
            parameterization,
            init_scale,
            outputs,
        } => Box::new(Mlp::new(
            dim,
            hidden,
            outputs,
            activation,
            bias,
            parameterization,
            init_scale,
        )),
        ModelSpec::Resmlp {
            width,
            blocks,
            activation,
            init_scale,
            outputs,
        } => Box::new(ResMlp::new(
            dim, width, blocks, outputs, activation, init_scale,
        )),
        ModelSpec::DiagLinear { init_scale } => Box::new(DiagLinear::new(dim, init_scale)),
        ModelSpec::Layers { .. } => {
            Box::new(Layered::from_spec(spec, dim).expect("a layers spec checked against its data"))
        }
    }
}

/// Draws `n` independent Normal(0, std²) values.
pub(crate) fn normal_vec(
    rng: &mut ChaCha20Rng,
    n: usize,
    std: f64,
) -> impl Iterator<Item = f64> + '_ {
    use rand_distr::Distribution;
    (0..n).map(move |_| {
        let z: f64 = rand_distr::StandardNormal.sample(rng);
        std * z
    })
}

/// Adds b_j to column j of a column-major (rows x b.len()) slice.
pub(crate) fn add_bias(z: &mut [f64], rows: usize, b: &[f64]) {
    for (col, &bj) in z.chunks_exact_mut(rows).zip(b) {
        crate::vecmath::add_scalar(col, bj);
    }
}
