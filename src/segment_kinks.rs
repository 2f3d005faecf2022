//! Where a straight segment w(s) = w0 + s (w1 − w0), s ∈ [0, 1], crosses the
//! kinks of the query points' relu-type units (SPEC §1; proofs.md E4). The
//! exact decompositions integrate ∇f(w(s); q) over s by Gauss–Legendre; a
//! pre-activation z_j(q; w(s)) that changes sign makes that integrand jump,
//! and the rule then errs by O(1/n). Each pre-activation is a continuous
//! function of s, smooth between the kinks of earlier layers (the first
//! layer's is affine in s), so every sign change between the segment's ends
//! is bracketed and located to rounding by Brent's method on s; the
//! segment is then integrated piece by piece between these breakpoints.
//! Only the query points' units matter: the training points' gradients
//! enter at the step's start, w0.
use crate::events::{brent, side};
use crate::kinks::KinkSource;
use crate::model::{Model, Tape};

/// Breakpoints closer than this (in s) are one: a piece of that width
/// carries nothing above rounding.
const MERGE: f64 = 4.0 * f64::EPSILON;

/// Grid intervals of [`SegmentKinks::scan`]: a pre-activation that crosses
/// and comes back within 1/64 of a step is left to the equal split of
/// `crate::exact::refine` (its excursion, and so the error, is that short).
pub const SCAN: usize = 64;

/// The kink functions of a query tape and the buffers to locate their
/// zeros along a segment. Allocated once; [`SegmentKinks::locate`]
/// allocates nothing (unless the model's kinks live outside its tape).
pub struct SegmentKinks {
    source: KinkSource,
    /// z_j at s = 0, at s = 1, and at a probe.
    g0: Vec<f64>,
    g1: Vec<f64>,
    probe: Vec<f64>,
    w_s: Vec<f64>,
    /// 0, the located zeros in increasing order, 1.
    breaks: Vec<f64>,
}

impl SegmentKinks {
    /// The kinks of `model` on `query`, the tape of the query points.
    pub fn new(model: &dyn Model, query: &Tape) -> SegmentKinks {
        let (source, lens) = KinkSource::find(model, query);
        let len: usize = lens.iter().sum();
        SegmentKinks {
            source,
            g0: vec![0.0; len],
            g1: vec![0.0; len],
            probe: vec![0.0; len],
            w_s: vec![0.0; if len > 0 { model.n_params() } else { 0 }],
            breaks: Vec::with_capacity(len + 2),
        }
    }

    /// True for a model without relu-type units.
    pub fn is_empty(&self) -> bool {
        self.g0.is_empty()
    }

    /// The segment's breakpoints found by the last [`SegmentKinks::locate`]:
    /// 0, every kink zero inside (0, 1) in increasing order, 1.
    pub fn breaks(&self) -> &[f64] {
        &self.breaks
    }

    /// Locates the zeros inside (0, 1) of every query pre-activation whose
    /// side differs between w0 and w1; `query` must hold the forward pass at
    /// w1 (it is left at some s in between). A pre-activation that crosses
    /// and comes back within the segment has no bracket here:
    /// [`SegmentKinks::scan`] finds it when the step does not close.
    pub fn locate(&mut self, model: &dyn Model, query: &mut Tape, w0: &[f64], w1: &[f64]) {
        self.breaks.clear();
        self.breaks.push(0.0);
        if !self.g0.is_empty() {
            read(&self.source, model, query, &mut self.g1);
            model.forward(w0, query);
            read(&self.source, model, query, &mut self.g0);
            self.bracketed(model, query, (w0, w1), (0.0, 1.0));
        }
        self.finish();
    }

    /// Locates every zero on a grid of [`SCAN`] equal intervals of the
    /// segment (each interval whose ends differ in side), replacing the
    /// breakpoints: crossings that come back within the segment are found
    /// when at least one grid point lies between them.
    pub fn scan(&mut self, model: &dyn Model, query: &mut Tape, w0: &[f64], w1: &[f64]) {
        self.breaks.clear();
        self.breaks.push(0.0);
        model.forward(w0, query);
        read(&self.source, model, query, &mut self.g0);
        for k in 1..=SCAN {
            let (a, b) = ((k - 1) as f64 / SCAN as f64, k as f64 / SCAN as f64);
            self.at(model, query, (w0, w1), b);
            self.g1.copy_from_slice(&self.probe);
            self.bracketed(model, query, (w0, w1), (a, b));
            std::mem::swap(&mut self.g0, &mut self.g1);
        }
        self.finish();
    }

    /// Pushes the zero of every function whose side differs between `g0`
    /// (at s = a) and `g1` (at s = b), located to rounding by Brent's method.
    fn bracketed(
        &mut self,
        model: &dyn Model,
        query: &mut Tape,
        ends: (&[f64], &[f64]),
        (a, b): (f64, f64),
    ) {
        for j in 0..self.g0.len() {
            let (ga, gb) = (self.g0[j], self.g1[j]);
            if side(ga) == side(gb) {
                continue;
            }
            let (before, after) = brent(
                |s| {
                    self.at(model, query, ends, s);
                    self.probe[j]
                },
                a,
                b,
                ga,
                gb,
                0.0,
            );
            let s = 0.5 * (before + after);
            if s > 0.0 && s < 1.0 {
                self.breaks.push(s);
            }
        }
    }

    /// Every kink value at w(s) into `probe`.
    fn at(&mut self, model: &dyn Model, query: &mut Tape, (w0, w1): (&[f64], &[f64]), s: f64) {
        for ((ws, &p), &q) in self.w_s.iter_mut().zip(w0).zip(w1) {
            *ws = p + s * (q - p);
        }
        model.forward(&self.w_s, query);
        read(&self.source, model, query, &mut self.probe);
    }

    /// Closes the breakpoints with 1, sorted, near-equal ones merged.
    fn finish(&mut self) {
        self.breaks.push(1.0);
        self.breaks.sort_unstable_by(f64::total_cmp);
        self.breaks.dedup_by(|b, a| *b - *a <= MERGE);
        // dedup keeps the first of a run: make sure the last is exactly 1.
        if let Some(last) = self.breaks.last_mut() {
            *last = 1.0;
        }
    }
}

/// Every kink value of `tape` into `out`, in the source's order.
fn read(source: &KinkSource, model: &dyn Model, tape: &Tape, out: &mut [f64]) {
    let mut at = 0;
    source.each(model, tape, |z| {
        out[at..at + z.len()].copy_from_slice(z.as_slice());
        at += z.len();
    });
}
