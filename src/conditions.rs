//! The theorem's conditions along a run, and what its popular readings need.
//!
//! Domingos' identity needs f and l differentiable along the path (the chain
//! rule); reading it as "a_i(x) is a weighted average of −l'_i" needs K^g of
//! one sign; reading it as a standard kernel machine needs one coefficient
//! vector for all x; the lazy reading needs K^g to stay put. A [`Tracker`] is
//! fed the flow's evaluations along the run and [`Tracker::finish`] turns
//! them into [`Conditions`], which every report carries.
//!
//! # Vector outputs
//! With C > 1 (SPEC §8) every per-point measure is per point and output:
//! −l'_{ic} ranges, loss branches per component, sign changes per entry of
//! the C x C blocks (`kernel_pairs` counts M N C² entries), the Frobenius
//! norms over all entries, and a_i(x) the C-vector K^p(x, x_i)⁻¹ A_i(x)
//! (proofs.md §6 states each).
//!
//! # Sampling
//! The tracker sees the flow at w0, once per accepted step, and at w(T). At a
//! step the stepper's observer runs while the flow still holds its last
//! evaluation: for gd (one stage) the step's start w_k, so the samples are
//! exactly the iterates whose l' and K^g enter the Domingos sums; for dopri5
//! (first same as last) the step's end; for the other methods the last stage,
//! at or near the step's end. A kink crossed and recrossed between two
//! samples, or a sign change of K^g that reverts within one step, is missed;
//! a crossing is dated by the sample that first shows it (it happened in the
//! interval ending there). Sampling allocates nothing per step.
//!
//! # Events
//! With `flow.events` every crossing ends a step (proofs.md §9), so each is
//! seen; the steps that ended at a kink are recorded apart, with the kink
//! they ended at ([`Tracker::event`]), and appear in a report only then.
//! A kink held in a sliding mode sits at zero, so its sign at a sample is
//! rounding: from its slide to the first sample after its release it is
//! not compared, and that sample only re-reads its branch (a slide and its
//! release are events, not crossings; proofs.md E16).
pub mod optimizer;

use crate::flow::FlowProblem;
use crate::kinks::{Kink, KinkSource};
use crate::loss::Loss;
use crate::model::Model;
use nalgebra::DMatrix;
use serde::Serialize;

/// Most crossing times kept in a report (the counts are always whole).
pub const MAX_CROSSING_TIMES: usize = 64;

/// `weighted_average_excess` above this is a violation. For gd, where K^g
/// keeps its sign, a_i is a convex combination of the sampled −l'_i, so the
/// excess is rounding: a few ulps of the sums, far below 1e-6.
pub const AVERAGE_TOL: f64 = 1e-6;

/// `loss_increase` above this is a rise. L is a sum of N non-negative terms,
/// so its rounding is at most N u L <= 1e-10 L0 for N up to 10^6.
pub const LOSS_RISE_TOL: f64 = 1e-9;

/// What held along the path. Every measure is dimensionless; `None` (null)
/// where its denominator is zero.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Conditions {
    /// f is smooth in w (no relu-type unit).
    pub model_smooth: bool,
    /// l is smooth in y (not absolute or hinge).
    pub loss_smooth: bool,
    /// Evaluations sampled: w0, one per accepted step, w(T).
    pub samples: usize,
    /// relu / leaky_relu pre-activations, at training or query points, whose
    /// branch (z > 0 or not) changed between consecutive samples, counted
    /// once per change (a kink held in a sliding mode is not compared; see
    /// the module doc).
    pub activation_kink_crossings: usize,
    /// Training points whose loss branch changed between consecutive
    /// samples (hinge: active or not; absolute: sign of y − y*).
    pub loss_kink_crossings: usize,
    /// Times of the samples that first showed a crossing, at most
    /// [`MAX_CROSSING_TIMES`] of them.
    pub kink_crossing_times: Vec<f64>,
    /// Entries of K^g (one per (query, training) pair, C² per pair with C
    /// outputs) whose sampled value took both signs.
    pub kernel_sign_changes: usize,
    /// M N C², the number of entries tracked.
    pub kernel_pairs: usize,
    /// The lazy-training measure |K^g(T) − K^g(0)|_F / |K^g(0)|_F.
    pub tangent_kernel_change: Option<f64>,
    /// |K^p − T K^g(0)|_F / |T K^g(0)|_F: how far the path kernel is from
    /// the kernel of the linearised model.
    pub path_kernel_drift: Option<f64>,
    /// How much a_i(x) depends on x: the relative residual
    /// |A − K^p diag(a*)|_F / |A|_F of the best single vector a*, fitted by
    /// least squares per training point, a*_i = Σ_m A_mi K^p_mi / Σ_m (K^p_mi)²
    /// (the residual of column i is A_·i itself where K^p_·i = 0). 0 for
    /// one query point. With C > 1, a*_i is the C-vector minimising
    /// Σ_m |A_i(q_m) − K^p(q_m, x_i) a*_i|², by least squares on the stacked
    /// blocks.
    pub coefficient_variation: Option<f64>,
    /// min and max over the samples of −l'_i (with the reduction's weight),
    /// per training point (and output: entry i C + c).
    pub neg_lprime_min: Vec<f64>,
    pub neg_lprime_max: Vec<f64>,
    /// How far a_i(q_m) lies outside [neg_lprime_min_i, neg_lprime_max_i]:
    /// max over defined a of the distance to the interval divided by
    /// max(|min_i|, |max_i|). 0 when every a_i(x) is a weighted average of
    /// the sampled −l'_i, as it is (for gd exactly) when K^g keeps its sign.
    pub weighted_average_excess: f64,
    /// Largest L(next sample) − L(sample) over consecutive samples, divided
    /// by |L(w0)|; <= 0 when the sampled loss never rose.
    pub loss_increase: f64,
    /// The steps that ended at a kink (`flow.events`): when and which kink,
    /// in order, at most [`MAX_CROSSING_TIMES`] of them; absent without events.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<KinkEvent>,
    /// Every event located (the list keeps the first ones); absent when 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub event_count: usize,
    /// Sliding modes engaged (the "slide" events, all of them): kinks the
    /// path reached and held instead of crossing; absent when 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub sliding_modes: usize,
    /// sgd/adam: batch coverage, the per-step kernel's sign flips, the decay
    /// term's share and Adam's spread (`optimizer`); absent for the flow.
    #[serde(flatten)]
    pub optimizer: Option<optimizer::OptimizerConditions>,
    /// The one-line summary `pathkernel run` prints.
    pub verdict: String,
}

/// A step ended where a kink function reached zero (proofs.md §9).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct KinkEvent {
    pub t: f64,
    /// "slide" (the kink is reached and held: a sliding mode) or
    /// "release" (it is left); absent for a crossing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<&'static str>,
    #[serde(flatten)]
    pub kink: Kink,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Accumulates the conditions sample by sample; see the module doc.
pub struct Tracker {
    loss: Loss,
    /// Training targets, row-major, `target_columns` per point.
    targets: Vec<f64>,
    target_columns: usize,
    model_smooth: bool,
    kinks: KinkSource,
    /// Activation branches, then loss branches, at the previous sample;
    /// [`UNREAD`] before the first, and after a hold, [`HELD`] during one.
    branches: Vec<i8>,
    samples: usize,
    activation_crossings: usize,
    loss_crossings: usize,
    times: Vec<f64>,
    /// Per pair: bit 1 K^g > 0 seen, bit 2 K^g < 0 seen.
    signs: Vec<u8>,
    lo: Vec<f64>,
    hi: Vec<f64>,
    loss0: f64,
    previous_loss: f64,
    max_increase: f64,
    events: Vec<KinkEvent>,
    event_count: usize,
    sliding_modes: usize,
}

/// A branch not read yet: the next sample stores it without counting.
const UNREAD: i8 = i8::MIN;
/// A kink held in a sliding mode at this sample: neither read nor counted.
const HELD: i8 = i8::MAX;

impl Tracker {
    /// A tracker for runs of `flow`, whose model is `model`.
    pub fn new(model: &dyn Model, loss: Loss, flow: &FlowProblem<'_>) -> Tracker {
        let (kinks, lens) = KinkSource::find(model, flow.tape());
        let units: usize = lens.iter().sum();
        let layout = flow.layout();
        let (n, pairs, c) = (layout.n_train, layout.kernel_len(), layout.n_outputs);
        let loss_units = if loss.is_smooth() { 0 } else { n * c };
        Tracker {
            loss,
            targets: flow.targets().to_vec(),
            target_columns: flow.target_columns(),
            model_smooth: model.is_smooth(),
            kinks,
            branches: vec![UNREAD; units + loss_units],
            samples: 0,
            activation_crossings: 0,
            loss_crossings: 0,
            times: Vec::with_capacity(MAX_CROSSING_TIMES),
            signs: vec![0; pairs],
            lo: vec![f64::INFINITY; n * c],
            hi: vec![f64::NEG_INFINITY; n * c],
            loss0: f64::NAN,
            previous_loss: f64::NAN,
            max_increase: f64::NEG_INFINITY,
            events: Vec::with_capacity(MAX_CROSSING_TIMES),
            event_count: 0,
            sliding_modes: 0,
        }
    }

    /// Records a step that ended at `kink` at time t.
    pub fn event(&mut self, t: f64, kink: Kink, event: Option<&'static str>) {
        self.event_count += 1;
        self.sliding_modes += usize::from(event == Some("slide"));
        if self.events.len() < MAX_CROSSING_TIMES {
            self.events.push(KinkEvent { t, event, kink });
        }
    }

    /// Takes one sample: `flow` holds an evaluation at time `t` and `kernel`
    /// is K^g there (column-major (M C) x (N C)).
    pub fn sample(&mut self, model: &dyn Model, flow: &FlowProblem<'_>, t: f64, kernel: &[f64]) {
        let first = self.samples == 0;
        self.samples += 1;
        let loss = flow.loss();
        if first {
            self.loss0 = loss;
        } else {
            self.max_increase = self.max_increase.max(loss - self.previous_loss);
        }
        self.previous_loss = loss;
        for ((lo, hi), &lp) in self.lo.iter_mut().zip(&mut self.hi).zip(flow.lprime()) {
            *lo = lo.min(-lp);
            *hi = hi.max(-lp);
        }
        for (s, &k) in self.signs.iter_mut().zip(kernel) {
            *s |= u8::from(k > 0.0) | (u8::from(k < 0.0) << 1);
        }
        // The flow numbers its kinks as the branches are laid out (its
        // squared_hinge margins, never held, have no branch here).
        for j in flow.held_kinks() {
            if let Some(b) = self.branches.get_mut(j) {
                *b = HELD;
            }
        }
        let tape = flow.tape();
        let mut slot = 0;
        let mut activation = 0;
        let branches = &mut self.branches;
        self.kinks.each(model, tape, |z| {
            activation += update(branches, &mut slot, z);
        });
        let mut crossed_loss = 0;
        if !self.loss.is_smooth() {
            // A non-smooth loss applies per component: one target per output.
            let outputs = &flow.outputs()[..self.targets.len()];
            debug_assert_eq!(self.target_columns, flow.layout().n_outputs);
            for (&target, &y) in self.targets.iter().zip(outputs) {
                let gap = self.loss.kink_gap(target, y).unwrap_or(0.0);
                let branch = match self.loss {
                    // derivative −1, 0, +1: three branches
                    Loss::Absolute => (gap > 0.0) as i8 - (gap < 0.0) as i8,
                    // hinge: active (gap < 0) or not; at the kink l' = 0
                    _ => (gap < 0.0) as i8,
                };
                crossed_loss += store(&mut self.branches[slot], branch);
                slot += 1;
            }
        }
        for j in flow.held_kinks() {
            if let Some(b) = self.branches.get_mut(j) {
                *b = UNREAD;
            }
        }
        self.activation_crossings += activation;
        self.loss_crossings += crossed_loss;
        if activation + crossed_loss > 0 && self.times.len() < MAX_CROSSING_TIMES {
            self.times.push(t);
        }
    }

    /// The conditions of the whole run, from the samples and the run's
    /// matrices (kernels (M C) x (N C), A (M C) x N, as in
    /// `crate::experiment::Outcome`).
    pub fn finish(
        self,
        t_end: f64,
        c: usize,
        path_kernel: &DMatrix<f64>,
        coef_integral: &DMatrix<f64>,
        kernel0: &DMatrix<f64>,
        kernel_end: &DMatrix<f64>,
    ) -> Conditions {
        let tangent_kernel_change = ratio((kernel_end - kernel0).norm(), kernel0.norm());
        let path_kernel_drift = ratio(
            (path_kernel - kernel0 * t_end).norm(),
            t_end * kernel0.norm(),
        );
        let (coefficient_variation, weighted_average_excess) = if c == 1 {
            (
                coefficient_variation(path_kernel, coef_integral),
                weighted_average_excess(path_kernel, coef_integral, &self.lo, &self.hi),
            )
        } else {
            (
                block_coefficient_variation(path_kernel, coef_integral, c),
                block_weighted_average_excess(path_kernel, coef_integral, c, &self.lo, &self.hi),
            )
        };
        let loss_increase = if self.samples > 1 {
            self.max_increase / self.loss0.abs().max(f64::MIN_POSITIVE)
        } else {
            0.0
        };
        let mut c = Conditions {
            model_smooth: self.model_smooth,
            loss_smooth: self.loss.is_smooth(),
            samples: self.samples,
            activation_kink_crossings: self.activation_crossings,
            loss_kink_crossings: self.loss_crossings,
            kink_crossing_times: self.times,
            kernel_sign_changes: self.signs.iter().filter(|&&s| s == 3).count(),
            kernel_pairs: self.signs.len(),
            tangent_kernel_change,
            path_kernel_drift,
            coefficient_variation,
            neg_lprime_min: self.lo,
            neg_lprime_max: self.hi,
            weighted_average_excess,
            loss_increase: finite_or_max(loss_increase),
            events: self.events,
            event_count: self.event_count,
            sliding_modes: self.sliding_modes,
            optimizer: None,
            verdict: String::new(),
        };
        c.verdict = c.describe();
        c
    }
}

/// Stores each entry's branch (z > 0 or not) and returns how many changed
/// ([`store`]).
fn update(branches: &mut [i8], slot: &mut usize, z: &DMatrix<f64>) -> usize {
    let mut changed = 0;
    for (b, &v) in branches[*slot..*slot + z.len()].iter_mut().zip(z.iter()) {
        changed += store(b, (v > 0.0) as i8);
    }
    *slot += z.len();
    changed
}

/// Stores `branch` in `stored` and returns 1 if it changed: 0 when the
/// stored one is [`UNREAD`], and a [`HELD`] one is left as it is.
fn store(stored: &mut i8, branch: i8) -> usize {
    match *stored {
        HELD => 0,
        UNREAD => {
            *stored = branch;
            0
        }
        old => {
            *stored = branch;
            usize::from(old != branch)
        }
    }
}

/// num / den, None when den is 0 (0 when both are), clamped finite.
fn ratio(num: f64, den: f64) -> Option<f64> {
    if den > 0.0 {
        Some(finite_or_max(num / den))
    } else if num == 0.0 {
        Some(0.0)
    } else {
        None
    }
}

/// A report holds no non-finite number: an overflowed ratio reads f64::MAX.
fn finite_or_max(x: f64) -> f64 {
    if x.is_nan() {
        f64::MAX
    } else {
        x.clamp(-f64::MAX, f64::MAX)
    }
}

/// See [`Conditions::coefficient_variation`].
pub fn coefficient_variation(k: &DMatrix<f64>, a: &DMatrix<f64>) -> Option<f64> {
    let mut residual = 0.0;
    for (i, (kc, ac)) in k.column_iter().zip(a.column_iter()).enumerate() {
        let best = crate::learn::fixed::best_for(k, a, 1, i)[0];
        residual += ac
            .iter()
            .zip(kc.iter())
            .map(|(&a, &k)| (a - best * k).powi(2))
            .sum::<f64>();
    }
    ratio(residual.sqrt(), a.norm())
}

/// See [`Conditions::weighted_average_excess`].
pub fn weighted_average_excess(k: &DMatrix<f64>, a: &DMatrix<f64>, lo: &[f64], hi: &[f64]) -> f64 {
    let mut worst = 0.0_f64;
    for (i, (kc, ac)) in k.column_iter().zip(a.column_iter()).enumerate() {
        let scale = lo[i].abs().max(hi[i].abs()).max(f64::MIN_POSITIVE);
        for (&kp, &ai) in kc.iter().zip(ac.iter()) {
            if kp == 0.0 {
                continue;
            }
            let coef = ai / kp;
            let outside = (lo[i] - coef).max(coef - hi[i]).max(0.0);
            worst = worst.max(outside / scale);
        }
    }
    finite_or_max(worst)
}

/// [`Conditions::coefficient_variation`] with C x C blocks: per training
/// point, the C-vector a* minimising Σ_m |A_i(q_m) − K_mi a*|²
/// ([`crate::learn::fixed::best_for`]).
pub fn block_coefficient_variation(k: &DMatrix<f64>, a: &DMatrix<f64>, c: usize) -> Option<f64> {
    let (m, n) = (a.nrows() / c, a.ncols());
    let mut residual = 0.0;
    for i in 0..n {
        let stack = k.view((0, i * c), (m * c, c));
        let column = a.column(i);
        let best = crate::learn::fixed::best_for(k, a, c, i);
        residual += (column - stack * best).norm_squared();
    }
    ratio(residual.sqrt(), a.norm())
}

/// [`Conditions::weighted_average_excess`] with C x C blocks: each defined
/// a_i(x) = K^p(x, x_i)⁻¹ A_i(x) against the box of the sampled −l'_{ic}
/// ranges, component by component.
pub fn block_weighted_average_excess(
    k: &DMatrix<f64>,
    a: &DMatrix<f64>,
    c: usize,
    lo: &[f64],
    hi: &[f64],
) -> f64 {
    let coefficients = crate::blocks::solve_blocks(k, a, c);
    let mut worst = 0.0_f64;
    for ((row, col), value) in coefficients
        .iter()
        .enumerate()
        .map(|(j, v)| ((j % a.nrows(), j / a.nrows()), v))
    {
        let Some(coef) = *value else { continue };
        let entry = col * c + row % c;
        let scale = lo[entry].abs().max(hi[entry].abs()).max(f64::MIN_POSITIVE);
        let outside = (lo[entry] - coef).max(coef - hi[entry]).max(0.0);
        worst = worst.max(outside / scale);
    }
    finite_or_max(worst)
}

impl Conditions {
    /// True when f and l were differentiable along the sampled path: smooth,
    /// or no kink crossed and none held in a sliding mode.
    pub fn differentiable_along_path(&self) -> bool {
        (self.model_smooth || self.activation_kink_crossings == 0)
            && (self.loss_smooth || self.loss_kink_crossings == 0)
            && self.sliding_modes == 0
    }

    /// The conditions with an optimizer's part added, and the verdict
    /// saying what of it matters.
    pub fn with_optimizer(mut self, o: optimizer::OptimizerConditions) -> Conditions {
        self.optimizer = Some(o);
        self.verdict = self.describe();
        self
    }

    /// The one-line verdict printed under the run's summary.
    fn describe(&self) -> String {
        let smooth = match (self.model_smooth, self.loss_smooth) {
            (true, true) => "smooth model and loss",
            (false, true) => "kinked model, smooth loss",
            (true, false) => "smooth model, kinked loss",
            (false, false) => "kinked model and loss",
        };
        let crossings = self.activation_kink_crossings + self.loss_kink_crossings;
        let kinks = match (crossings, self.kink_crossing_times.first()) {
            (0, _) => "no kink crossed".to_owned(),
            (c, Some(t)) => format!(
                "{c} kink crossings ({} activation, {} loss) from t = {t}",
                self.activation_kink_crossings, self.loss_kink_crossings
            ),
            (c, None) => format!("{c} kink crossings"),
        };
        let kinks = match self.events.first() {
            Some(e) => format!(
                "{kinks}, {} located as events from t = {}",
                self.event_count, e.t
            ),
            None => kinks,
        };
        let opt = |x: Option<f64>| x.map_or("undefined".to_owned(), |v| format!("{v:.1e}"));
        let average = if self.weighted_average_excess > AVERAGE_TOL {
            format!(
                "a_i outside the range of -l'_i by {:.1e}",
                self.weighted_average_excess
            )
        } else {
            "a_i within the range of -l'_i".to_owned()
        };
        let loss = if self.loss_increase > LOSS_RISE_TOL {
            format!("loss rose by {:.1e} of L0", self.loss_increase)
        } else {
            "loss never rose".to_owned()
        };
        let optimizer = self
            .optimizer
            .iter()
            .flat_map(optimizer::OptimizerConditions::describe)
            .map(|part| format!("; {part}"))
            .collect::<String>();
        format!(
            "conditions: {smooth}; {kinks}; K^g changed sign on {} of {} pairs; K^g moved {}; \
             one a fits A to {}; {average}; {loss}{optimizer}",
            self.kernel_sign_changes,
            self.kernel_pairs,
            opt(self.tangent_kernel_change),
            opt(self.coefficient_variation),
        )
    }
}
