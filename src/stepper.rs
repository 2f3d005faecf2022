//! One generic explicit Runge–Kutta engine: every method is a [`Tableau`].
//!
//! Fixed-step runs take exactly K steps of the given size. Adaptive runs
//! follow Hairer, Nørsett & Wanner, *Solving ODEs I* (2nd ed.), §II.4 and the
//! published DOPRI5/DOP853 codes: per-component scale atol + rtol·max(|y|,
//! |y_new|), root-mean-square norm, the book's starting-step algorithm, and
//! the codes' step-size controllers. dopri5 uses the elementary (integral)
//! controller, DOPRI5's beta = 0 setting, which is also diffrax's default
//! PIDController (pcoeff = 0, icoeff = 1): the code's default Lund
//! stabilisation (beta = 0.04) took 3-9% more steps on gradient flows,
//! short and long, without a rejection either way.
use crate::events::{EventKind, Interpolant, Watch};
use crate::tableau::{ErrorEstimator, Tableau};
use crate::vecmath;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

mod located;

/// An ODE y' = f(t, y) whose right-hand side writes into a caller's buffer.
pub trait OdeSystem {
    fn dim(&self) -> usize;
    fn rhs(&mut self, t: f64, y: &[f64], dy: &mut [f64]);
    /// The leading components that `rhs` reads: f(t, y) depends on
    /// y[..coupled_dim()] only, and the other components are quadratures
    /// (their derivatives never feed back). The stages form only the coupled
    /// part, so at a stage `rhs` sees stale values past it; the step's
    /// solution and error estimate still cover every component.
    fn coupled_dim(&self) -> usize {
        self.dim()
    }
    /// The number of switching functions g_j(y) (kinks): f is smooth while
    /// none changes sign. 0 for a smooth system.
    fn switches(&self) -> usize {
        0
    }
    /// g at the last evaluation of `rhs` (or of [`OdeSystem::switches_at`]).
    fn switch_values(&mut self, _out: &mut [f64]) {}
    /// Evaluates f from now on with switching function j held on branch
    /// `lambda[j]` (0: g <= 0, 1: g > 0, in between a Filippov
    /// combination; NaN: by the sign of g), each branch continued smoothly
    /// past its kink.
    fn lock_switches(&mut self, _lambda: &[f64]) {}
    /// g at (t, y), where y is the coupled part only.
    fn switches_at(&mut self, _t: f64, _y: &[f64], out: &mut [f64]) {
        self.switch_values(out)
    }
    /// True when the field jumps across switch j's surface, so that going
    /// straight back across it can be a sliding mode; false when the field
    /// is continuous there (squared_hinge's margin).
    fn field_jumps(&self, _j: usize) -> bool {
        true
    }
    /// At an event of switch j at (t, y): if both one-sided fields point
    /// into its surface, holds j there from now on (`rhs` is then Filippov's
    /// sliding field) and returns true.
    fn slide(&mut self, _j: usize, _t: f64, _y: &[f64]) -> bool {
        false
    }
    /// The sliding switch whose Filippov coefficient λ (at the last `rhs`)
    /// lies farthest outside [0, 1], with its λ; None when none slides.
    fn sliding(&self) -> Option<(usize, f64)> {
        None
    }
    /// λ of sliding switch j at the last `rhs` (NaN when it does not slide).
    fn sliding_coefficient(&self, _j: usize) -> f64 {
        f64::NAN
    }
    /// Ends switch j's sliding mode, j continuing on branch `branch`.
    fn release(&mut self, _j: usize, _branch: f64) {}
    /// Evaluations of the field since the last call beyond one per `rhs`.
    fn extra_evals(&mut self) -> usize {
        0
    }
}

/// How the step size is chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Control {
    /// `steps` steps of size `step`; the last one is taken to end exactly at t_end.
    Fixed { step: f64, steps: usize },
    /// Error-controlled steps; `max_steps` bounds the attempted steps.
    Adaptive {
        rtol: f64,
        atol: f64,
        max_steps: usize,
    },
}

/// Work done by an integration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub steps: usize,
    pub rejected_steps: usize,
    pub rhs_evals: usize,
}

/// Why an integration stopped before t_end; the state is left at time `t`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StepFailure {
    NonFinite {
        t: f64,
    },
    StepTooSmall {
        t: f64,
        h: f64,
    },
    TooManySteps {
        t: f64,
        max_steps: usize,
    },
    /// The interrupt flag was set (Ctrl-C); the run stopped before its next step.
    Interrupted {
        t: f64,
    },
    /// Switching function `switch` changed sign `crossings` times since
    /// `since`, each within a few steps of the last: the flow slides along
    /// that kink and the method chatters across it (proofs.md §9).
    Chatter {
        t: f64,
        switch: usize,
        crossings: u32,
        since: f64,
    },
    /// With events: switching function `switch` came back across its zero
    /// in the step right after its event at t, so the fields on both sides
    /// point into the kink: a sliding mode that could not be integrated
    /// (more than `sliding::MAX_SLIDING` at once, no kink rates); or, with
    /// `unsolved`, a held kink whose training point's multilinear sliding
    /// system has no solution there (proofs.md E15).
    Sliding {
        t: f64,
        switch: usize,
        unsolved: bool,
    },
}

/// An accepted step from (t0, y0) to (t1, y1), shown to the observer.
pub struct Step<'a> {
    pub index: usize,
    /// The step size used in the update (t1 − t0 up to rounding).
    pub h: f64,
    pub t0: f64,
    pub t1: f64,
    pub y0: &'a [f64],
    pub y1: &'a [f64],
    /// f at the system's last evaluation, the one the observer's system
    /// still holds (the step's last stage; for Euler, its start).
    pub last_derivative: &'a [f64],
    /// The switching function whose zero ended this step (events only).
    pub event: Option<usize>,
    /// What that event was.
    pub event_kind: EventKind,
}

/// The step-size controller's constants (Hairer's DOPRI5 and DOP853 codes).
#[derive(Clone, Copy, Debug)]
struct Controller {
    safe: f64,
    /// Largest factor by which a step may shrink (1/fac1 in the codes).
    max_shrink: f64,
    /// Largest factor by which a step may grow (fac2 in the codes).
    max_grow: f64,
    /// 1 / (order of the error estimate + 1): the integral controller's
    /// exponent (the codes' EXPO1 with beta = 0; no Lund stabilisation).
    exponent: f64,
}

impl Controller {
    /// The step after one of size h with scaled error err: Ok(next) when
    /// accepted (err <= 1; no growth right after a rejection), Err(retry)
    /// when rejected (a non-finite err shrinks the most).
    fn control(&self, err: f64, h: f64, last_rejected: bool) -> Result<f64, f64> {
        let err = if err.is_finite() { err } else { f64::INFINITY };
        let fac11 = err.powf(self.exponent);
        if err <= 1.0 {
            let fac = (fac11 / self.safe).clamp(1.0 / self.max_grow, self.max_shrink);
            let h_new = h / fac;
            Ok(if last_rejected { h_new.min(h) } else { h_new })
        } else {
            Err(h / self.max_shrink.min(fac11 / self.safe))
        }
    }

    /// True when the step h at t has reached its floor (10 eps of the time
    /// scale) or is not finite.
    fn too_small(h: f64, t: f64, t_end: f64) -> bool {
        h <= 10.0 * f64::EPSILON * t.abs().max(t_end) || !h.is_finite()
    }

    fn for_estimator(e: &ErrorEstimator) -> Option<Controller> {
        match e {
            ErrorEstimator::None => None,
            // DOPRI5: fac1 = 0.2, fac2 = 10, expo1 = 0.2 (beta = 0, see above).
            ErrorEstimator::Embedded { order: 4, .. } => Some(Controller {
                safe: 0.9,
                max_shrink: 5.0,
                max_grow: 10.0,
                exponent: 0.2,
            }),
            // DOP853: fac1 = 0.333, fac2 = 6, beta = 0, expo1 = 1/8.
            ErrorEstimator::Dop853 { .. } => Some(Controller {
                safe: 0.9,
                max_shrink: 1.0 / 0.333,
                max_grow: 6.0,
                exponent: 0.125,
            }),
            ErrorEstimator::Embedded { order, .. } => Some(Controller {
                safe: 0.9,
                max_shrink: 1.0 / 0.333,
                max_grow: 6.0,
                exponent: 1.0 / (*order as f64 + 1.0),
            }),
        }
    }
}

/// The engine with its stage buffers, allocated once for a dimension.
pub struct RungeKutta {
    tableau: Tableau,
    k: Vec<Vec<f64>>,
    stage: Vec<f64>,
    y_new: Vec<f64>,
    /// h times one row of coefficients, for the stage combinations.
    coefs: Vec<f64>,
    /// Per-chunk partial sums of the error norm.
    partials: Vec<vecmath::StepSums>,
    /// Once set (by a Ctrl-C handler), the integration stops before its next step.
    interrupt: Option<Arc<AtomicBool>>,
    /// Locate the zeros of the system's switching functions as events.
    events: bool,
    /// f at a step's end, for methods that are not FSAL (events only).
    k_end: Vec<f64>,
    /// The stages only the dense output uses (dop853's k14..k16; events only).
    k_dense: Vec<Vec<f64>>,
    /// The dense output events are located on.
    dense: Interpolant,
}

impl RungeKutta {
    pub fn new(tableau: Tableau, dim: usize) -> RungeKutta {
        let s = tableau.stages();
        let dense = Interpolant::for_method(tableau.name);
        RungeKutta {
            tableau,
            k: vec![vec![0.0; dim]; s],
            stage: vec![0.0; dim],
            y_new: vec![0.0; dim],
            coefs: Vec::with_capacity(s),
            partials: Vec::with_capacity(dim.div_ceil(CHUNK)),
            interrupt: None,
            events: false,
            k_end: vec![0.0; dim],
            k_dense: vec![vec![0.0; dim]; dense.extra_stages()],
            dense,
        }
    }

    /// With `on`, every step that would contain a sign change of one of the
    /// system's switching functions ends at its first zero instead
    /// (proofs.md §9); a system without switching functions is unaffected.
    pub fn locate_events(&mut self, on: bool) {
        self.events = on;
    }

    /// Locates events on cubic Hermite interpolation instead of the
    /// method's own dense output (to compare the two: tests, benches).
    pub fn interpolate_by_hermite(&mut self) {
        self.dense = Interpolant::Hermite;
    }

    /// Stops every later integration before its next step once `flag` is
    /// set, with [`StepFailure::Interrupted`]: how Ctrl-C ends a run.
    pub fn interrupt_on(&mut self, flag: Arc<AtomicBool>) {
        self.interrupt = Some(flag);
    }

    fn interrupted(&self) -> bool {
        self.interrupt
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
    }

    pub fn tableau(&self) -> &Tableau {
        &self.tableau
    }

    /// Integrates from (0, y) to t_end, leaving the final state in `y`. The
    /// observer sees each accepted step while the system still holds its last
    /// evaluation (for Euler: the one at the step's start). On failure `y`
    /// holds the last accepted state.
    pub fn integrate<S: OdeSystem>(
        &mut self,
        sys: &mut S,
        y: &mut [f64],
        t_end: f64,
        control: Control,
        observer: &mut dyn FnMut(&mut S, &Step<'_>),
    ) -> Result<Stats, (StepFailure, Stats)> {
        if self.events && sys.switches() > 0 {
            return self.with_events(sys, y, t_end, control, observer);
        }
        match control {
            Control::Fixed { step, steps } => self.fixed(sys, y, t_end, step, steps, observer),
            Control::Adaptive {
                rtol,
                atol,
                max_steps,
            } => {
                let ctl = Controller::for_estimator(&self.tableau.error)
                    .expect("an adaptive run needs a tableau with an error estimator");
                self.adaptive(sys, y, t_end, rtol, atol, max_steps, ctl, observer)
            }
        }
    }

    /// Retraces a run: one accepted step of each size in `steps`, in order,
    /// the last one ending exactly at t_end (SPEC §13). The update of each
    /// step is the one the original run made with that h (the error
    /// estimate never enters y_new), so a system whose coupled part is the
    /// same follows the same states bit for bit, whatever else it carries.
    pub fn integrate_given<S: OdeSystem>(
        &mut self,
        sys: &mut S,
        y: &mut [f64],
        t_end: f64,
        steps: &[f64],
        observer: &mut dyn FnMut(&mut S, &Step<'_>),
    ) -> Result<Stats, (StepFailure, Stats)> {
        let mut stats = Stats::default();
        let mut t = 0.0;
        if !steps.is_empty() {
            sys.rhs(t, y, &mut self.k[0]);
            stats.rhs_evals += 1;
        }
        for (index, &h) in steps.iter().enumerate() {
            if self.interrupted() {
                return Err((StepFailure::Interrupted { t }, stats));
            }
            stats.rhs_evals += self.stages(sys, t, y, h);
            self.combine(y, h);
            let t1 = if index + 1 == steps.len() {
                t_end
            } else {
                t + h
            };
            if !vecmath::all_finite(&self.y_new) {
                return Err((StepFailure::NonFinite { t: t1 }, stats));
            }
            self.accept(sys, y, (t, t1, h), t_end, &mut stats, observer);
            t = t1;
        }
        Ok(stats)
    }

    fn fixed<S: OdeSystem>(
        &mut self,
        sys: &mut S,
        y: &mut [f64],
        t_end: f64,
        h: f64,
        steps: usize,
        observer: &mut dyn FnMut(&mut S, &Step<'_>),
    ) -> Result<Stats, (StepFailure, Stats)> {
        let mut stats = Stats::default();
        let mut t = 0.0;
        if steps > 0 {
            sys.rhs(t, y, &mut self.k[0]);
            stats.rhs_evals += 1;
        }
        for index in 0..steps {
            if self.interrupted() {
                return Err((StepFailure::Interrupted { t }, stats));
            }
            stats.rhs_evals += self.stages(sys, t, y, h);
            self.combine(y, h);
            let t1 = if index + 1 == steps {
                t_end
            } else {
                (index + 1) as f64 * h
            };
            if !vecmath::all_finite(&self.y_new) {
                return Err((StepFailure::NonFinite { t: t1 }, stats));
            }
            self.accept(sys, y, (t, t1, h), t_end, &mut stats, observer);
            t = t1;
        }
        Ok(stats)
    }

    #[allow(clippy::too_many_arguments)]
    fn adaptive<S: OdeSystem>(
        &mut self,
        sys: &mut S,
        y: &mut [f64],
        t_end: f64,
        rtol: f64,
        atol: f64,
        max_steps: usize,
        ctl: Controller,
        observer: &mut dyn FnMut(&mut S, &Step<'_>),
    ) -> Result<Stats, (StepFailure, Stats)> {
        let mut stats = Stats::default();
        let mut t = 0.0;
        sys.rhs(t, y, &mut self.k[0]);
        stats.rhs_evals += 1;
        // A kinked system is watched for chattering (proofs.md §9).
        let mut watch = (sys.switches() > 0).then(|| {
            let mut g = vec![0.0; sys.switches()];
            sys.switch_values(&mut g);
            (Watch::new(&g), g)
        });
        let mut h = self
            .starting_step(sys, y, t_end, rtol, atol, ctl, &mut stats)
            .min(t_end);
        let mut last_rejected = false;
        let mut attempts = 0;
        while t < t_end {
            if self.interrupted() {
                return Err((StepFailure::Interrupted { t }, stats));
            }
            if attempts >= max_steps {
                return Err((StepFailure::TooManySteps { t, max_steps }, stats));
            }
            if Controller::too_small(h, t, t_end) {
                return Err((StepFailure::StepTooSmall { t, h }, stats));
            }
            // As DOPRI5: stretch a step that would leave a sliver before t_end.
            let last = t + 1.01 * h >= t_end;
            if last {
                h = t_end - t;
            }
            attempts += 1;
            stats.rhs_evals += self.stages(sys, t, y, h);
            let err = self.solution_and_error(y, h, rtol, atol);
            match ctl.control(err, h, last_rejected) {
                Ok(h_new) => {
                    let t1 = if last { t_end } else { t + h };
                    if let Some((watch, g)) = watch.as_mut() {
                        sys.switch_values(g);
                        if let Some(c) = watch.update(g, stats.steps + 1, t1) {
                            let failure = StepFailure::Chatter {
                                t,
                                switch: c.switch,
                                crossings: c.crossings,
                                since: c.since,
                            };
                            return Err((failure, stats));
                        }
                    }
                    self.accept(sys, y, (t, t1, h), t_end, &mut stats, observer);
                    t = t1;
                    last_rejected = false;
                    h = h_new;
                }
                Err(retry) => {
                    h = retry;
                    stats.rejected_steps += 1;
                    last_rejected = true;
                }
            }
        }
        Ok(stats)
    }

    /// Stages 2..s of a step of size h from (t, y), k[0] = f(t, y) given.
    /// Returns the number of evaluations.
    fn stages<S: OdeSystem>(&mut self, sys: &mut S, t: f64, y: &[f64], h: f64) -> usize {
        let coupled = sys.coupled_dim();
        for i in 1..self.tableau.stages() {
            self.coefs.clear();
            self.coefs.extend(self.tableau.a[i].iter().map(|a| h * a));
            let (done, rest) = self.k.split_at_mut(i);
            combine_into(&mut self.stage[..coupled], y, &self.coefs, done);
            sys.rhs(t + self.tableau.c[i] * h, &self.stage, &mut rest[0]);
        }
        self.tableau.stages() - 1
    }

    /// y_new = y + h Σ b_i k_i.
    fn combine(&mut self, y: &[f64], h: f64) {
        self.coefs.clear();
        self.coefs.extend(self.tableau.b.iter().map(|b| h * b));
        combine_into(&mut self.y_new, y, &self.coefs, &self.k);
    }

    /// Takes the step (t0, t1, h) just computed: shows it to the observer,
    /// moves y to y_new and, unless t_end is reached, prepares the next
    /// step's first stage.
    fn accept<S: OdeSystem>(
        &mut self,
        sys: &mut S,
        y: &mut [f64],
        (t0, t1, h): (f64, f64, f64),
        t_end: f64,
        stats: &mut Stats,
        observer: &mut dyn FnMut(&mut S, &Step<'_>),
    ) {
        stats.steps += 1;
        let step = Step {
            index: stats.steps - 1,
            h,
            t0,
            t1,
            y0: y,
            y1: &self.y_new,
            last_derivative: &self.k[self.tableau.stages() - 1],
            event: None,
            event_kind: EventKind::Crossing,
        };
        observer(sys, &step);
        y.copy_from_slice(&self.y_new);
        if t1 < t_end {
            let fsal = self.tableau.is_fsal();
            self.first_stage(sys, t1, y, fsal, stats);
        }
    }

    /// The next step's first stage: the last stage when the method is FSAL.
    fn first_stage<S: OdeSystem>(
        &mut self,
        sys: &mut S,
        t: f64,
        y: &[f64],
        fsal: bool,
        stats: &mut Stats,
    ) {
        if fsal {
            let s = self.k.len();
            self.k.swap(0, s - 1);
        } else {
            sys.rhs(t, y, &mut self.k[0]);
            stats.rhs_evals += 1;
        }
    }

    /// y_new = y + h Σ b_i k_i and the scaled RMS norm of the step's local
    /// error estimate, in one pass over the stages; the norm is NaN when
    /// y_new is not finite. Sums go by fixed chunks, added in order, so the
    /// result does not depend on the number of threads.
    fn solution_and_error(&mut self, y: &[f64], h: f64, rtol: f64, atol: f64) -> f64 {
        use rayon::prelude::*;
        let n = y.len() as f64;
        let (e1, e2): (&[f64], &[f64]) = match &self.tableau.error {
            ErrorEstimator::None => (&[], &[]),
            ErrorEstimator::Embedded { e, .. } => (e, &[]),
            ErrorEstimator::Dop853 { e5, e3 } => (e5, e3),
        };
        self.coefs.clear();
        self.coefs.extend(self.tableau.b.iter().map(|b| h * b));
        let (k, coefs) = (&self.k, &self.coefs);
        let chunk = |(index, out): (usize, &mut [f64])| -> vecmath::StepSums {
            vecmath::solution_and_error(out, y, coefs, e1, e2, k, index * CHUNK, (rtol, atol))
        };
        if y.len() > 4 * CHUNK {
            self.y_new
                .par_chunks_mut(CHUNK)
                .enumerate()
                .map(chunk)
                .collect_into_vec(&mut self.partials);
        } else {
            self.partials.clear();
            self.partials
                .extend(self.y_new.chunks_mut(CHUNK).enumerate().map(chunk));
        }
        let (s1, s2) = self.partials.iter().fold((0.0, 0.0), |(a, b), sums| {
            (a + sums.error1, b + sums.error2)
        });
        if !self.partials.iter().all(|sums| sums.finite) {
            return f64::NAN;
        }
        match self.tableau.error {
            ErrorEstimator::Dop853 { .. } => {
                // DOP853: err = |h| E5 / sqrt(n (E5 + 0.01 E3)), E = sums of squares.
                let deno = if s1 + 0.01 * s2 > 0.0 {
                    s1 + 0.01 * s2
                } else {
                    1.0
                };
                h.abs() * s1 / (n * deno).sqrt()
            }
            _ => h.abs() * (s1 / n).sqrt(),
        }
    }

    /// The starting step of Hairer–Nørsett–Wanner §II.4 (one evaluation),
    /// with k[0] = f(0, y) already computed.
    #[allow(clippy::too_many_arguments)]
    fn starting_step<S: OdeSystem>(
        &mut self,
        sys: &mut S,
        y: &[f64],
        t_end: f64,
        rtol: f64,
        atol: f64,
        ctl: Controller,
        stats: &mut Stats,
    ) -> f64 {
        let n = y.len() as f64;
        let sc: Vec<f64> = y.iter().map(|v| atol + rtol * v.abs()).collect();
        let rms = |v: &mut dyn Iterator<Item = f64>| (v.map(|x| x * x).sum::<f64>() / n).sqrt();
        let d0 = rms(&mut y.iter().zip(&sc).map(|(v, s)| v / s));
        let d1 = rms(&mut self.k[0].iter().zip(&sc).map(|(v, s)| v / s));
        let h0 = if d0 < 1e-5 || d1 < 1e-5 {
            1e-6
        } else {
            0.01 * d0 / d1
        }
        .min(t_end);
        self.stage.copy_from_slice(y);
        axpy(h0, &self.k[0], &mut self.stage);
        let (k0, rest) = self.k.split_at_mut(1);
        sys.rhs(h0, &self.stage, &mut rest[0]);
        stats.rhs_evals += 1;
        let d2 = rms(&mut rest[0]
            .iter()
            .zip(&k0[0])
            .zip(&sc)
            .map(|((a, b), s)| (a - b) / s))
            / h0;
        let big = d1.max(d2);
        let h1 = if big <= 1e-15 {
            (h0 * 1e-3).max(1e-6)
        } else {
            (0.01 / big).powf(ctl.exponent)
        };
        (100.0 * h0).min(h1)
    }
}

/// Elements per chunk of the vector operations: 32 KiB of each operand,
/// so a chunk of every stage stays in cache while it is combined.
const CHUNK: usize = 4096;

/// out = y + Σ_j c_j v_j, by chunks, split across threads for long vectors
/// (elementwise, so the result does not depend on the split).
fn combine_into(out: &mut [f64], y: &[f64], c: &[f64], v: &[Vec<f64>]) {
    use rayon::prelude::*;
    let run = |(index, out): (usize, &mut [f64])| {
        vecmath::linear_combination(out, y, c, v, index * CHUNK)
    };
    if out.len() > 4 * CHUNK {
        out.par_chunks_mut(CHUNK).enumerate().for_each(run);
    } else {
        out.chunks_mut(CHUNK).enumerate().for_each(run);
    }
}

/// y += a x.
fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += a * x);
}
