//! The engine with event location (proofs.md §9): a step that ends with a
//! switching function on its other side is cut at the first zero inside it,
//! found on the method's dense output, and the rest of the step is taken
//! from there. Between events the right-hand side is smooth, so each step
//! keeps the method's order. Fixed-step runs keep their grid: a cut step is
//! followed by the rest of its grid interval.
use super::{
    Control, Controller, OdeSystem, RungeKutta, Stats, Step, StepFailure, axpy, combine_into,
};
use crate::events::{EventKind, Interpolant, StepData, Watch, brent, side};
use crate::tableau::dop853_dense::{DENSE_A, DENSE_C};
use crate::vecmath;

/// Most secant steps refining an event on the method's own solution.
const MAX_SECANT_STEPS: usize = 6;

/// Switching values at a step's start, its end, a probe, and the current
/// upper end of the search.
struct Values {
    g0: Vec<f64>,
    g1: Vec<f64>,
    probe: Vec<f64>,
    upper: Vec<f64>,
    /// The branch each function is locked to: 1 for g > 0, else 0.
    lambda: Vec<f64>,
    /// The accepted step that ended at each function's last event
    /// (`NO_EVENT`: none yet; not 0, which is the step before the first).
    event_step: Vec<usize>,
}

/// No event yet: a crossing in the first step must not read as "back
/// across right after its event" (index − 1 = 0 there).
const NO_EVENT: usize = usize::MAX;

impl RungeKutta {
    pub(super) fn with_events<S: OdeSystem>(
        &mut self,
        sys: &mut S,
        y: &mut [f64],
        t_end: f64,
        control: Control,
        observer: &mut dyn FnMut(&mut S, &Step<'_>),
    ) -> Result<Stats, (StepFailure, Stats)> {
        let n = sys.switches();
        let fsal = self.tableau.is_fsal();
        let dense = self.dense;
        let mut g = Values {
            g0: vec![0.0; n],
            g1: vec![0.0; n],
            probe: vec![0.0; n],
            upper: vec![0.0; n],
            lambda: vec![0.0; n],
            event_step: vec![NO_EVENT; n],
        };
        let mut stats = Stats::default();
        let mut t = 0.0;
        // Every stage is evaluated on the branches of the step's start
        // (continued past the kinks), so that the field is smooth within
        // the step and its dense output too.
        sys.rhs(t, y, &mut self.k[0]);
        sys.switch_values(&mut g.g0);
        let mut watch = Watch::new(&g.g0);
        for (l, &v) in g.lambda.iter_mut().zip(&g.g0) {
            *l = f64::from(u8::from(side(v)));
        }
        sys.lock_switches(&g.lambda);
        sys.rhs(t, y, &mut self.k[0]);
        stats.rhs_evals += 2;
        sys.switch_values(&mut g.g0);
        let (mut h, ctl) = match control {
            Control::Fixed { step, .. } => (step, None),
            Control::Adaptive { rtol, atol, .. } => {
                let ctl = Controller::for_estimator(&self.tableau.error)
                    .expect("an adaptive run needs a tableau with an error estimator");
                let h = self.starting_step(sys, y, t_end, rtol, atol, ctl, &mut stats);
                (h.min(t_end), Some(ctl))
            }
        };
        let (mut grid, mut attempts, mut last_rejected) = (0, 0, false);
        // λ of each sliding switch at the step's start (proofs.md E5).
        let mut lambda0 = vec![f64::NAN; n];
        while t < t_end {
            stats.rhs_evals += sys.extra_evals();
            if self.interrupted() {
                return Err((StepFailure::Interrupted { t }, stats));
            }
            // The step to try: to the next grid point, or the controller's.
            let (hs, t1) = match control {
                Control::Fixed { step, steps } => {
                    if grid >= steps {
                        break;
                    }
                    let target = if grid + 1 == steps {
                        t_end
                    } else {
                        (grid + 1) as f64 * step
                    };
                    (target - t, target)
                }
                Control::Adaptive { max_steps, .. } => {
                    if attempts >= max_steps {
                        return Err((StepFailure::TooManySteps { t, max_steps }, stats));
                    }
                    if Controller::too_small(h, t, t_end) {
                        return Err((StepFailure::StepTooSmall { t, h }, stats));
                    }
                    if t + 1.01 * h >= t_end {
                        h = t_end - t;
                        (h, t_end)
                    } else {
                        (h, t + h)
                    }
                }
            };
            attempts += 1;
            stats.rhs_evals += self.stages(sys, t, y, hs);
            let mut h_next = h;
            match (control, ctl) {
                (Control::Adaptive { rtol, atol, .. }, Some(ctl)) => {
                    let err = self.solution_and_error(y, hs, rtol, atol);
                    match ctl.control(err, hs, last_rejected) {
                        Ok(next) => h_next = next,
                        Err(retry) => {
                            h = retry;
                            stats.rejected_steps += 1;
                            last_rejected = true;
                            continue;
                        }
                    }
                    last_rejected = false;
                }
                _ => {
                    self.combine(y, hs);
                    if !vecmath::all_finite(&self.y_new) {
                        return Err((StepFailure::NonFinite { t: t1 }, stats));
                    }
                }
            }
            stats.rhs_evals += self.end_evaluation(sys, t1, fsal);
            sys.switch_values(&mut g.g1);
            // The dense output's own stages, only for a step with a crossing.
            if dense.extra_stages() > 0 && (0..n).any(|j| crossed(&watch, j, g.g0[j], g.g1[j])) {
                stats.rhs_evals += self.dense_stages(sys, t, y, hs, fsal);
            }
            let (reached, used, event) =
                match self.first_event(sys, t, hs, y, &watch, &mut g, dense, fsal) {
                    None => (t1, hs, None),
                    Some((j, theta)) => {
                        let he = self.cut(sys, t, hs, y, j, theta, &mut g, fsal, &mut stats);
                        (t + he, he, Some(j))
                    }
                };
            // A sliding mode released inside the step (Filippov's λ left
            // [0, 1]), when no crossing cut the step first.
            let mut kind = EventKind::Crossing;
            let mut release = None;
            let (reached, used, event) = match (event, sys.sliding()) {
                // No λ: the held kinks' system has no solution here (E15).
                (_, Some((j, lambda))) if lambda.is_nan() => {
                    let failure = StepFailure::Sliding {
                        t,
                        switch: j,
                        unsolved: true,
                    };
                    return Err((failure, stats));
                }
                (None, Some((j, lambda))) if !(0.0..=1.0).contains(&lambda) => {
                    let bound = if lambda > 1.0 { 1.0 } else { 0.0 };
                    let lambdas = (lambda0[j], lambda);
                    let he = self.cut_release(sys, t, hs, y, j, lambdas, bound, fsal, &mut stats);
                    release = Some((j, bound));
                    kind = EventKind::Release;
                    (t + he, he, Some(j))
                }
                _ => (reached, used, event),
            };
            // The new branches: the event's function past its zero (its
            // value there is rounding), every other by its sign.
            let index = stats.steps + 1;
            let mut chatter = None;
            let mut switched = false;
            for (j, &v) in g.g1.iter().enumerate() {
                let s = if event == Some(j) {
                    !watch.side(j)
                } else {
                    side(v)
                };
                // Back across in the step right after its event: the field
                // on the new branch points back into the kink, as the old
                // one did: a sliding mode (proofs.md §9), if the field jumps
                // there (else a tangency read through rounding, E14).
                if s != watch.side(j) && g.event_step[j] == index - 1 && sys.field_jumps(j) {
                    let failure = StepFailure::Sliding {
                        t,
                        switch: j,
                        unsolved: false,
                    };
                    return Err((failure, stats));
                }
                if event == Some(j) {
                    g.event_step[j] = index;
                }
                chatter = chatter.or(watch.set(j, s, index, reached));
                let l = f64::from(u8::from(s));
                switched |= g.lambda[j] != l;
                g.lambda[j] = l;
            }
            if let Some((j, bound)) = release {
                sys.release(j, bound);
                watch.place(j, bound == 1.0);
                g.lambda[j] = bound;
                switched = true;
            }
            if switched {
                // f at the step's end on the new branches: the next first stage.
                sys.lock_switches(&g.lambda);
                stats.rhs_evals += self.end_evaluation_always(sys, reached, fsal);
                sys.switch_values(&mut g.g1);
            }
            // A crossing where both one-sided fields point into the kink:
            // a sliding mode, integrated from here with Filippov's field.
            let mut engaged = None;
            if let (Some(j), EventKind::Crossing) = (event, kind)
                && sys.slide(j, reached, &self.y_new[..sys.coupled_dim()])
            {
                watch.place(j, false);
                g.lambda[j] = 0.0;
                kind = EventKind::Slide;
                engaged = Some(j);
                stats.rhs_evals += self.end_evaluation_always(sys, reached, fsal);
            }
            // Sliding kinks whose λ a switch at this step's end (a new
            // sliding mode, a crossing) pushed out of [0, 1] leave now.
            if switched || engaged.is_some() {
                while let Some((k, l)) = sys.sliding() {
                    if Some(k) == engaged || (0.0..=1.0).contains(&l) {
                        break;
                    }
                    let bound = if l > 1.0 { 1.0 } else { 0.0 };
                    sys.release(k, bound);
                    watch.place(k, bound == 1.0);
                    g.lambda[k] = bound;
                    sys.lock_switches(&g.lambda);
                    stats.rhs_evals += self.end_evaluation_always(sys, reached, fsal);
                }
                sys.switch_values(&mut g.g1);
            }
            self.accept_at_end(
                sys,
                y,
                (t, reached, used),
                (event, kind),
                fsal,
                &mut stats,
                observer,
            );
            for (j, l) in lambda0.iter_mut().enumerate() {
                *l = sys.sliding_coefficient(j);
            }
            g.g0.copy_from_slice(&g.g1);
            t = reached;
            if let Some(c) = chatter {
                let failure = StepFailure::Chatter {
                    t,
                    switch: c.switch,
                    crossings: c.crossings,
                    since: c.since,
                };
                return Err((failure, stats));
            }
            if event.is_none() {
                grid += 1;
            }
            h = h_next;
        }
        stats.rhs_evals += sys.extra_evals();
        Ok(stats)
    }

    /// Takes the step from (t, y) that ends where the sliding mode's λ
    /// reaches `bound` (0 or 1): secant steps on θ for λ(Φ_{θh}(y)) − bound
    /// from (λ at the start, λ at the end of the full step `hs`), each a
    /// stage set (λ is smooth in θ on the sliding field). Returns the size.
    #[allow(clippy::too_many_arguments)]
    fn cut_release<S: OdeSystem>(
        &mut self,
        sys: &mut S,
        t: f64,
        hs: f64,
        y: &[f64],
        j: usize,
        (lambda0, lambda1): (f64, f64),
        bound: f64,
        fsal: bool,
        stats: &mut Stats,
    ) -> f64 {
        let (v0, v1) = (lambda0 - bound, lambda1 - bound);
        let theta = if v0.is_finite() && v0 != v1 {
            (v0 / (v0 - v1)).clamp(0.0, 1.0)
        } else {
            1.0
        };
        self.secant_cut(
            sys,
            (t, hs),
            y,
            (theta, (0.0, v0)),
            1.0,
            fsal,
            stats,
            |sys| sys.sliding_coefficient(j) - bound,
        )
    }

    /// The stages k14..k16 of dop853's dense output for the step of size h
    /// from (t, y) just computed (stages in `k`, f at its end in `k_end`),
    /// coupled part only, into `k_dense`. Returns the evaluations made.
    fn dense_stages<S: OdeSystem>(
        &mut self,
        sys: &mut S,
        t: f64,
        y: &[f64],
        h: f64,
        fsal: bool,
    ) -> usize {
        let coupled = sys.coupled_dim();
        let s = self.tableau.stages();
        for (m, (row, c)) in DENSE_A.iter().zip(DENSE_C).enumerate() {
            self.coefs.clear();
            self.coefs.extend(row[..s].iter().map(|a| h * a));
            let stage = &mut self.stage[..coupled];
            combine_into(stage, &y[..coupled], &self.coefs, &self.k);
            let end = if fsal { &self.k[s - 1] } else { &self.k_end };
            let later = std::iter::once(end).chain(&self.k_dense[..m]);
            for (&a, k) in row[s..].iter().zip(later) {
                axpy(h * a, &k[..coupled], stage);
            }
            sys.rhs(t + c * h, &self.stage, &mut self.k_dense[m]);
        }
        DENSE_A.len()
    }

    /// f at the step's end (t1, y_new): the last stage of an FSAL method,
    /// else one more evaluation into `k_end`. Returns the evaluations made.
    fn end_evaluation<S: OdeSystem>(&mut self, sys: &mut S, t1: f64, fsal: bool) -> usize {
        if fsal {
            0
        } else {
            sys.rhs(t1, &self.y_new, &mut self.k_end);
            1
        }
    }

    /// Takes the step from (t, y) that ends at switching function j's zero,
    /// θ h from the dense output, and returns its size. The zero of the
    /// method's own solution g_j(Φ_{θh}(y)) (smooth in θ: the branches are
    /// locked) differs from the dense output's by the interpolant's error,
    /// O(h^{q+1}); secant steps on θ from there bring it to rounding (16 eps
    /// of the values' scale), a few more stage sets per event.
    #[allow(clippy::too_many_arguments)]
    fn cut<S: OdeSystem>(
        &mut self,
        sys: &mut S,
        t: f64,
        hs: f64,
        y: &[f64],
        j: usize,
        theta: f64,
        g: &mut Values,
        fsal: bool,
        stats: &mut Stats,
    ) -> f64 {
        let scale = g.g0[j].abs().max(g.g1[j].abs());
        let anchor = (0.0, g.g0[j]);
        self.secant_cut(
            sys,
            (t, hs),
            y,
            (theta, anchor),
            scale,
            fsal,
            stats,
            |sys| {
                sys.switch_values(&mut g.g1);
                g.g1[j]
            },
        )
    }

    /// Secant steps on θ for `value` (read from the system after the step
    /// of size θ hs from (t, y) and its end evaluation), from `theta` with
    /// the anchor (θ, v) at the step's start, until |v| <= 16 eps `scale`,
    /// the secant stalls or leaves (0, 1], or MAX_SECANT_STEPS; returns the
    /// last step's size, that step computed into `y_new`.
    #[allow(clippy::too_many_arguments)]
    fn secant_cut<S: OdeSystem>(
        &mut self,
        sys: &mut S,
        (t, hs): (f64, f64),
        y: &[f64],
        (mut theta, mut anchor): (f64, (f64, f64)),
        scale: f64,
        fsal: bool,
        stats: &mut Stats,
        mut value: impl FnMut(&mut S) -> f64,
    ) -> f64 {
        for round in 0.. {
            // At least a few ulps of t, so that the step advances.
            let he = (theta * hs).max(8.0 * f64::EPSILON * t.abs().max(hs));
            stats.rhs_evals += self.stages(sys, t, y, he);
            self.combine(y, he);
            stats.rhs_evals += self.end_evaluation(sys, t + he, fsal);
            let v = value(sys);
            let next = theta - v * (theta - anchor.0) / (v - anchor.1);
            let done = v.abs() <= 16.0 * f64::EPSILON * scale
                || round == MAX_SECANT_STEPS
                || !(next > 0.0 && next <= 1.0)
                || (next - theta).abs() <= 4.0 * f64::EPSILON * theta;
            if done {
                return he;
            }
            anchor = (theta, v);
            theta = next;
        }
        unreachable!()
    }

    /// f at (t1, y_new) into the buffer that becomes the next first stage
    /// (the last stage of an FSAL method, else `k_end`).
    fn end_evaluation_always<S: OdeSystem>(&mut self, sys: &mut S, t1: f64, fsal: bool) -> usize {
        let s = self.tableau.stages();
        let out = if fsal {
            &mut self.k[s - 1]
        } else {
            &mut self.k_end
        };
        sys.rhs(t1, &self.y_new, out);
        1
    }

    /// Shows the step to the observer with f at its end as the last
    /// derivative, moves y to y_new and makes that f the next first stage.
    #[allow(clippy::too_many_arguments)]
    fn accept_at_end<S: OdeSystem>(
        &mut self,
        sys: &mut S,
        y: &mut [f64],
        (t0, t1, h): (f64, f64, f64),
        (event, event_kind): (Option<usize>, EventKind),
        fsal: bool,
        stats: &mut Stats,
        observer: &mut dyn FnMut(&mut S, &Step<'_>),
    ) {
        stats.steps += 1;
        let s = self.tableau.stages();
        let step = Step {
            index: stats.steps - 1,
            h,
            t0,
            t1,
            y0: y,
            y1: &self.y_new,
            last_derivative: if fsal { &self.k[s - 1] } else { &self.k_end },
            event,
            event_kind,
        };
        observer(sys, &step);
        y.copy_from_slice(&self.y_new);
        if fsal {
            self.k.swap(0, s - 1);
        } else {
            std::mem::swap(&mut self.k[0], &mut self.k_end);
        }
    }

    /// The first switching function to reach its other side inside the
    /// step from (t, y) of size h, and the θ in (0, 1] just past its zero
    /// (on the dense output, located to rounding). None when no function
    /// changed side with a bracket (its value at the start on its recorded
    /// side): a function that is back on its side at the step's end, or
    /// that started at its zero on the wrong side by rounding, is left to
    /// the watch.
    #[allow(clippy::too_many_arguments)]
    fn first_event<S: OdeSystem>(
        &mut self,
        sys: &mut S,
        t: f64,
        h: f64,
        y: &[f64],
        watch: &Watch,
        g: &mut Values,
        dense: Interpolant,
        fsal: bool,
    ) -> Option<(usize, f64)> {
        let coupled = sys.coupled_dim();
        let s = self.tableau.stages();
        let RungeKutta {
            k,
            k_end,
            y_new,
            stage,
            k_dense,
            ..
        } = self;
        let data = StepData {
            h,
            y0: &y[..coupled],
            y1: &y_new[..coupled],
            f0: &k[0][..coupled],
            f1: if fsal {
                &k[s - 1][..coupled]
            } else {
                &k_end[..coupled]
            },
            k,
            extra: k_dense,
        };
        let point = &mut stage[..coupled];
        g.upper.copy_from_slice(&g.g1);
        let mut upper = 1.0;
        loop {
            // The candidate whose zero a linear model of g puts first.
            let mut best: Option<(usize, f64)> = None;
            for (j, (&a, &b)) in g.g0.iter().zip(&g.upper).enumerate() {
                if crossed(watch, j, a, b) {
                    let guess = upper * a / (a - b);
                    if best.is_none_or(|(_, e)| guess < e) {
                        best = Some((j, guess));
                    }
                }
            }
            let (j, _) = best?;
            let probe = &mut g.probe;
            let (before, after) = brent(
                |theta| {
                    dense.eval(&data, theta, point);
                    sys.switches_at(t + theta * h, point, probe);
                    probe[j]
                },
                0.0,
                upper,
                g.g0[j],
                g.upper[j],
                4.0 * f64::EPSILON,
            );
            // Did another function change side before this zero?
            dense.eval(&data, before, point);
            sys.switches_at(t + before * h, point, &mut g.probe);
            let earlier = g
                .probe
                .iter()
                .zip(&g.g0)
                .enumerate()
                .any(|(i, (&v, &a))| i != j && crossed(watch, i, a, v));
            if earlier && before > 0.0 {
                upper = before;
                g.upper.copy_from_slice(&g.probe);
                continue;
            }
            return Some((j, after));
        }
    }
}

/// Switch j went from its recorded side (its value `a` at the step's start
/// on it: a bracket) to the other (`b`).
fn crossed(watch: &Watch, j: usize, a: f64, b: f64) -> bool {
    let s0 = watch.side(j);
    side(b) != s0 && side(a) == s0
}
