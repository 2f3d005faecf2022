//! Where a flow's kinks live: the pre-activations of relu-type units on the
//! model's tape (at training and query points) and the margins of a kinked
//! loss at the training points. [`KinkSource`] finds the matrices once, so
//! reading them allocates nothing; [`KinkMap`] numbers every kink function
//! g_j, the switching functions of the stepper's events (proofs.md §9).
use crate::activation::Activation;
use crate::loss::Loss;
use crate::model::{Model, Tape};
use nalgebra::DMatrix;
use serde::Serialize;

/// Where the kinked pre-activations live on a model's tape.
pub enum KinkSource {
    /// Indices into the tape's scratch matrices.
    Scratch(Vec<usize>),
    /// Indices into the tape's layer inputs (a layered model's relu
    /// layers read their pre-activations there).
    Inputs(Vec<usize>),
    /// Matrices elsewhere: ask the model at each read (allocates a little).
    Ask,
}

impl KinkSource {
    /// Finds the kink matrices of `model` on `tape`; also returns the number
    /// of entries of each (rows x units, column-major).
    pub fn find(model: &dyn Model, tape: &Tape) -> (KinkSource, Vec<usize>) {
        let mats = model.kink_preactivations(tape);
        let lens = mats.iter().map(|m| m.len()).collect();
        let found: Option<Vec<usize>> = mats
            .iter()
            .map(|m| tape.scratch.iter().position(|s| std::ptr::eq(s, *m)))
            .collect();
        let in_inputs: Option<Vec<usize>> = mats
            .iter()
            .map(|m| tape.inputs.iter().position(|s| std::ptr::eq(s, *m)))
            .collect();
        let source = match (found, in_inputs) {
            (Some(indices), _) => KinkSource::Scratch(indices),
            (None, Some(indices)) => KinkSource::Inputs(indices),
            (None, None) => KinkSource::Ask,
        };
        (source, lens)
    }

    /// Calls `visit` on each kink matrix of the tape, in the model's order.
    pub fn each(&self, model: &dyn Model, tape: &Tape, mut visit: impl FnMut(&DMatrix<f64>)) {
        match self {
            KinkSource::Scratch(indices) => indices.iter().for_each(|&i| visit(&tape.scratch[i])),
            KinkSource::Inputs(indices) => indices.iter().for_each(|&i| visit(&tape.inputs[i])),
            KinkSource::Ask => model.kink_preactivations(tape).into_iter().for_each(visit),
        }
    }
}

/// The signed distance to a loss's kink whose crossing switches the flow:
/// absolute y − y*; hinge and squared_hinge y* y − 1 (squared_hinge's l'
/// is continuous there but l'' jumps, which costs a high-order method its
/// order as well); None for smooth losses.
pub fn loss_margin(loss: Loss, target: f64, y: f64) -> Option<f64> {
    match loss {
        Loss::SquaredHinge => Some(target * y - 1.0),
        _ => loss.kink_gap(target, y),
    }
}

/// Locks relu-type units to a branch mixture (proofs.md §9): where
/// `locks[e]` = λ is not NaN, σ'(z) = s and σ(z) = s z with
/// s = (1 − λ) σ'(z < 0) + λ σ'(z > 0), the smooth continuation of one
/// branch (λ = 0: z <= 0, λ = 1: z > 0) past the kink, or in between the
/// Filippov combination. σ is linear on each branch and 0 at 0, so s z is
/// exact on the locked branch.
pub fn lock_activation(act: Activation, locks: &[f64], z: &[f64], u: &mut [f64], d: &mut [f64]) {
    let (below, above) = (act.derivative(-1.0), act.derivative(1.0));
    for (((&lambda, &z), u), d) in locks.iter().zip(z).zip(u).zip(d) {
        if !lambda.is_nan() {
            let s = (1.0 - lambda) * below + lambda * above;
            *u = s * z;
            *d = s;
        }
    }
}

/// dl/dy of a kinked loss on the branch mixture λ (0: margin g <= 0, 1:
/// g > 0, see [`loss_margin`]), each branch continued past the kink:
/// absolute −1 / +1; hinge −y* / 0; squared_hinge −2 y* (1 − y* y) / 0.
pub fn locked_derivative(loss: Loss, target: f64, y: f64, lambda: f64) -> f64 {
    let (below, above) = match loss {
        Loss::Absolute => (-1.0, 1.0),
        Loss::Hinge => (-target, 0.0),
        Loss::SquaredHinge => (-2.0 * target * (1.0 - target * y), 0.0),
        _ => return loss.derivative(target, y),
    };
    (1.0 - lambda) * below + lambda * above
}

/// One kink function, as a report names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Kink {
    /// "activation" (a relu-type pre-activation) or "loss" (a loss margin).
    pub kind: &'static str,
    /// "train" or "query": the point whose pre-activation or margin it is.
    pub set: &'static str,
    /// The point's index in its set.
    pub point: usize,
    /// activation: the kinked layer (0 the first) and its unit; loss: the output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<usize>,
    pub unit: usize,
}

impl std::fmt::Display for Kink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = if self.set == "train" {
            "training"
        } else {
            "query"
        };
        match self.layer {
            Some(l) => write!(
                f,
                "the pre-activation of unit {} in kinked layer {l} at {set} point {}",
                self.unit, self.point
            ),
            None => write!(
                f,
                "the loss margin of output {} at {set} point {}",
                self.unit, self.point
            ),
        }
    }
}

/// The numbering of a flow's kink functions: every entry of each kink
/// matrix (rows: the N training then M query points), then the N C loss
/// margins at the training points.
pub struct KinkMap {
    source: KinkSource,
    /// Entries of each kink matrix.
    lens: Vec<usize>,
    rows: usize,
    n_train: usize,
    /// N C when the loss has a kink, else 0.
    margins: usize,
    outputs: usize,
    /// Branch locks of the loss margins (empty: free).
    loss_locks: Vec<f64>,
}

impl KinkMap {
    pub fn new(model: &dyn Model, tape: &Tape, loss: Loss, n_train: usize) -> KinkMap {
        let (source, lens) = KinkSource::find(model, tape);
        let outputs = model.outputs();
        let kinked_loss = loss_margin(loss, 1.0, 0.0).is_some();
        KinkMap {
            source,
            lens,
            rows: tape.rows(),
            n_train,
            margins: if kinked_loss { n_train * outputs } else { 0 },
            outputs,
            loss_locks: Vec::new(),
        }
    }

    /// Locks kink function j to the branch mixture `lambda[j]` (NaN: free,
    /// by the sign of g_j): the units through the tape's locks, the loss
    /// margins through [`KinkMap::locked_derivatives`]. Allocates on the
    /// first call only.
    pub fn lock(&mut self, tape: &mut Tape, lambda: &[f64]) {
        if tape.locks.len() != self.lens.len() {
            tape.locks = self.lens.iter().map(|&n| vec![f64::NAN; n]).collect();
        }
        let mut at = 0;
        for lock in tape.locks.iter_mut() {
            let n = lock.len();
            lock.copy_from_slice(&lambda[at..at + n]);
            at += n;
        }
        self.loss_locks.clear();
        self.loss_locks.extend_from_slice(&lambda[at..]);
    }

    /// Overwrites l' (with the reduction's weight) where a loss margin is
    /// locked; `outputs` are the training points', example-major.
    pub fn locked_derivatives(
        &self,
        loss: Loss,
        targets: &[f64],
        outputs: &[f64],
        weight: f64,
        lprime: &mut [f64],
    ) {
        for (k, &lambda) in self.loss_locks.iter().enumerate() {
            if !lambda.is_nan() {
                lprime[k] = weight * locked_derivative(loss, targets[k], outputs[k], lambda);
            }
        }
    }

    /// The number of kink functions.
    pub fn len(&self) -> usize {
        self.lens.iter().sum::<usize>() + self.margins
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// g_j for every j from the tape of an evaluation (its outputs give the
    /// margins; `targets` C per training point, row-major).
    pub fn values(
        &self,
        model: &dyn Model,
        tape: &Tape,
        loss: Loss,
        targets: &[f64],
        out: &mut [f64],
    ) {
        let mut at = 0;
        self.source.each(model, tape, |z| {
            out[at..at + z.len()].copy_from_slice(z.as_slice());
            at += z.len();
        });
        if self.margins > 0 {
            let c = self.outputs;
            for (k, o) in out[at..].iter_mut().enumerate() {
                let y = tape.output[(k / c, k % c)];
                *o = loss_margin(loss, targets[k], y).unwrap_or(0.0);
            }
        }
    }

    /// True when g_j switches the vector field (a training point's), false
    /// when only the integrand of K^p and A (a query point's).
    pub fn drives_flow(&self, j: usize) -> bool {
        self.kink(j).set == "train"
    }

    /// True when the field jumps across g_j, so a Filippov sliding mode can
    /// hold it: a training point's relu-type pre-activation, or its margin
    /// under absolute or hinge. squared_hinge's l' is continuous at its
    /// kink: both one-sided fields agree on the surface, Filippov's set is
    /// that one field, and fields that seem to point in from both sides are
    /// a tangency read through rounding (proofs.md E5, E14).
    pub fn field_jumps(&self, j: usize, loss: Loss) -> bool {
        self.drives_flow(j) && (self.kink(j).layer.is_some() || loss != Loss::SquaredHinge)
    }

    /// What kink function j is.
    pub fn kink(&self, j: usize) -> Kink {
        let mut start = 0;
        for (layer, &len) in self.lens.iter().enumerate() {
            if j < start + len {
                let e = j - start;
                let (row, unit) = (e % self.rows, e / self.rows);
                let (set, point) = if row < self.n_train {
                    ("train", row)
                } else {
                    ("query", row - self.n_train)
                };
                return Kink {
                    kind: "activation",
                    set,
                    point,
                    layer: Some(layer),
                    unit,
                };
            }
            start += len;
        }
        let e = j - start;
        Kink {
            kind: "loss",
            set: "train",
            point: e / self.outputs,
            layer: None,
            unit: e % self.outputs,
        }
    }
}
