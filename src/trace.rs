//! The loss along a run (`loss_trace` in the report): (t, L) once per
//! accepted step or iterate, thinned as it is recorded into two buffers of
//! [`MAX_POINTS`] numbers allocated at the start, so a step costs no
//! allocation however long the run.
//!
//! The thinning rule (proofs.md §13): of the samples j = 0, 1, ..., n − 1
//! (j = 0 is t = 0, j = n − 1 the end of the run), the trace keeps every
//! j that is a multiple of the stride s, and j = n − 1; s is the smallest
//! power of two for which the multiples of s below n number at most
//! MAX_POINTS − 1. So a run of fewer than MAX_POINTS samples is kept whole,
//! and a longer one keeps between MAX_POINTS / 2 and MAX_POINTS samples,
//! evenly spaced in step index, with the first and the last.
use serde::Serialize;

/// Most points a trace keeps.
pub const MAX_POINTS: usize = 2048;

/// The loss at the recorded samples, t increasing.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LossTrace {
    pub t: Vec<f64>,
    pub loss: Vec<f64>,
    /// The stride s of the rule above (1: every sample kept).
    #[serde(skip)]
    stride: usize,
    /// Samples seen so far (n).
    #[serde(skip)]
    seen: usize,
    /// The latest sample, kept by `finish` when it is not a multiple of s.
    #[serde(skip)]
    latest: Option<(f64, f64)>,
}

impl Default for LossTrace {
    fn default() -> LossTrace {
        LossTrace::new()
    }
}

impl LossTrace {
    /// An empty trace with room for [`MAX_POINTS`] samples.
    pub fn new() -> LossTrace {
        LossTrace {
            t: Vec::with_capacity(MAX_POINTS),
            loss: Vec::with_capacity(MAX_POINTS),
            stride: 1,
            seen: 0,
            latest: None,
        }
    }

    /// Records (t, L) as sample j = (samples so far), unless t is not
    /// past the latest sample's (the samples are the times at which L was
    /// evaluated, strictly increasing).
    pub fn push(&mut self, t: f64, loss: f64) {
        if self.latest.is_some_and(|(last, _)| t <= last) {
            return;
        }
        let j = self.seen;
        self.seen += 1;
        self.latest = Some((t, loss));
        if !j.is_multiple_of(self.stride) {
            return;
        }
        if self.t.len() == MAX_POINTS - 1 {
            // Keep the multiples of 2s: every other kept sample.
            self.stride *= 2;
            compact(&mut self.t);
            compact(&mut self.loss);
            if !j.is_multiple_of(self.stride) {
                return;
            }
        }
        self.t.push(t);
        self.loss.push(loss);
    }

    /// The trace with the last sample kept (the rule's j = n − 1).
    pub fn finish(mut self) -> LossTrace {
        if let Some((t, loss)) = self.latest
            && !(self.seen - 1).is_multiple_of(self.stride)
        {
            self.t.push(t);
            self.loss.push(loss);
        }
        self
    }

    /// The stride s the samples were kept at.
    pub fn stride(&self) -> usize {
        self.stride
    }
}

/// Keeps the entries at even positions, in place.
fn compact(v: &mut Vec<f64>) {
    let kept = v.len().div_ceil(2);
    for k in 0..kept {
        v[k] = v[2 * k];
    }
    v.truncate(kept);
}
