//! The search itself: proptest's runner draws experiments for a claim,
//! seeded through ChaCha, and shrinks the first failing one.
use super::claims::Claim;
use super::measure::Evaluation;
use crate::data::Dataset;
use crate::error::{Error, InputError, RunError};
use crate::experiment::Experiment;
use crate::spec::{InitSpec, Spec};
use crate::strategies::{self, Space};
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// How a search is run.
#[derive(Clone, Debug)]
pub struct Options {
    pub claim: Claim,
    /// Passing cases to try before concluding that none fails.
    pub cases: u32,
    pub seed: u64,
    /// Most shrinking steps (each one run of the claim).
    pub max_shrink_iters: u32,
    /// Draw only smooth activations and losses ([`Space::smooth`]).
    pub smooth: bool,
    /// When set (by Ctrl-C), the search stops before its next case and a
    /// case's runs before their next step; it then ends with
    /// [`RunError::SearchInterrupted`].
    pub interrupt: Option<Arc<AtomicBool>>,
}

impl Options {
    /// The space the search draws from.
    pub fn space(&self) -> Space {
        let space = self.claim.space();
        if self.smooth { space.smooth() } else { space }
    }

    /// True once the interrupt flag is set.
    pub fn interrupted(&self) -> bool {
        self.interrupt
            .as_ref()
            .is_some_and(|f| f.load(Ordering::SeqCst))
    }
}

/// Where a search stands, for a progress display.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Progress {
    pub cases: u32,
    pub shrink_steps: u32,
    /// Largest violation seen among the drawn cases.
    pub best: f64,
    /// The violation of the current smallest failing case, once one failed.
    pub shrinking: Option<f64>,
}

/// What a search found.
#[derive(Clone, Debug, PartialEq)]
pub enum Found {
    /// No case failed.
    Nothing { cases: u32, best: f64 },
    /// A failing case, shrunk; `spec` is self-contained (inline data and init.w0).
    Counterexample {
        spec: Box<Spec>,
        evaluation: Evaluation,
        cases: u32,
        shrink_steps: u32,
    },
}

impl Found {
    /// How many cases were drawn.
    pub fn cases(&self) -> u32 {
        match self {
            Found::Nothing { cases, .. } | Found::Counterexample { cases, .. } => *cases,
        }
    }
}

/// The runner's 32-byte ChaCha seed from a u64 seed.
fn rng_seed(seed: u64) -> [u8; 32] {
    let mut bytes = *b"pathkernel search ------ 8 bytes";
    bytes[24..].copy_from_slice(&seed.to_le_bytes());
    bytes
}

/// Draws experiments for `options.claim` until one fails (then shrinks it)
/// or `options.cases` pass. `progress` sees every evaluation.
///
/// Once `options.interrupt` is set, every case is rejected unrun: proptest
/// has no way to stop a run, but it ends at its limit of rejections while
/// drawing, and a rejection while shrinking counts as a pass, which ends
/// shrinking. The search then returns [`RunError::SearchInterrupted`].
pub fn search(options: &Options, progress: &dyn Fn(&Progress)) -> Result<Found, Error> {
    // Every field that shrinking or generation reads is set here, so that
    // no PROPTEST_* variable of the environment can change the result.
    let config = Config {
        cases: options.cases,
        max_shrink_iters: options.max_shrink_iters,
        max_flat_map_regens: 1_000_000,
        max_local_rejects: 65_536,
        max_global_rejects: 1024,
        max_shrink_time: 0,
        failure_persistence: None,
        fork: false,
        timeout: 0,
        verbose: 0,
        rng_algorithm: RngAlgorithm::ChaCha,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &rng_seed(options.seed));
    let mut runner = TestRunner::new_with_rng(config, rng);
    let state = RefCell::new(Progress::default());
    let claim = options.claim;
    let interrupt = options.interrupt.as_ref();
    let result = runner.run(&strategies::experiment(&options.space()), |spec| {
        if options.interrupted() {
            return Err(TestCaseError::reject("interrupted"));
        }
        let eval = claim.evaluate_until(&spec, interrupt);
        // A case whose runs were stopped measured nothing.
        if options.interrupted() {
            return Err(TestCaseError::reject("interrupted"));
        }
        let mut p = state.borrow_mut();
        if p.shrinking.is_some() {
            p.shrink_steps += 1;
        } else {
            p.cases += 1;
            p.best = p.best.max(eval.violation);
        }
        if eval.fails() {
            p.shrinking = Some(eval.violation);
        }
        progress(&p);
        if eval.fails() {
            Err(TestCaseError::fail(eval.detail))
        } else {
            Ok(())
        }
    });
    let p = *state.borrow();
    let stopped = || Err(RunError::SearchInterrupted { cases: p.cases }.into());
    let found = match result {
        // Interrupted: the result is whatever the rejections left.
        _ if options.interrupted() => return stopped(),
        Ok(()) => Found::Nothing {
            cases: p.cases,
            best: p.best,
        },
        Err(TestError::Fail(_, spec)) => {
            let spec = self_contained(spec);
            let evaluation = claim.evaluate_until(&spec, interrupt);
            Found::Counterexample {
                spec: Box::new(spec),
                evaluation,
                cases: p.cases,
                shrink_steps: p.shrink_steps,
            }
        }
        // No filters and no rejections: the runner has no reason to abort.
        Err(TestError::Abort(why)) => {
            return Err(InputError::new(
                "--claim",
                format!("the search aborted: {}", why.message()),
            )
            .into());
        }
    };
    // Checked again: the final evaluation above may have been stopped.
    if options.interrupted() {
        return stopped();
    }
    Ok(found)
}

/// The spec with init.w0 written out (the w0 its run uses).
fn self_contained(mut spec: Spec) -> Spec {
    if spec.init.is_none()
        && let Ok(data) = Dataset::resolve(&spec, Path::new("."))
    {
        let w0 = Experiment::new(spec.clone(), data).w0;
        spec.init = Some(InitSpec { w0 });
    }
    spec
}
