//! The two kinds of failure and their exit codes (SPEC §6): bad input (2)
//! and a failure while running (1).
use thiserror::Error;

/// Bad input: a wrong spec or data file. Names where, what was found and
/// what is allowed. Exit code 2.
#[derive(Clone, Debug, PartialEq, Error)]
#[error("{location}: {problem}")]
pub struct InputError {
    /// The field path (`flow.rtol`), or file and position (`train.csv:3:2`).
    pub location: String,
    /// What was found and what is allowed.
    pub problem: String,
}

impl InputError {
    pub fn new(location: impl Into<String>, problem: impl Into<String>) -> Self {
        InputError {
            location: location.into(),
            problem: problem.into(),
        }
    }
}

/// A user's text (a key, a name, a CSV cell) as a message shows it: as is
/// when it is a non-empty run of printable characters without a backquote,
/// else in Rust's escaped, double-quoted form (`""`, `"a\nb"`), so that a
/// message stays one line and its backquoted names stay unambiguous.
pub fn shown(text: &str) -> String {
    let plain = !text.is_empty() && !text.chars().any(|c| c.is_control() || c == '`');
    if plain {
        text.to_owned()
    } else {
        format!("{text:?}")
    }
}

/// The last finite loss a run saw before it failed, and when: (t, L).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LastLoss(pub Option<(f64, f64)>);

impl std::fmt::Display for LastLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some((t, loss)) => write!(f, "last finite loss {loss:e} at t = {t}"),
            None => write!(f, "the loss was never finite"),
        }
    }
}

/// A failure while integrating. Carries the time and the last finite loss.
/// Exit code 1.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum RunError {
    #[error("the flow diverged at t = {t}: {what} ({loss})")]
    Diverged {
        t: f64,
        what: String,
        loss: LastLoss,
    },
    #[error("the adaptive step fell to {h:e}, below the floor, at t = {t} ({loss})")]
    StepTooSmall { t: f64, h: f64, loss: LastLoss },
    #[error("the run reached max_steps = {max_steps} at t = {t} before t_end ({loss})")]
    TooManySteps {
        t: f64,
        max_steps: usize,
        loss: LastLoss,
    },
    /// A kink crossed back and forth step after step (proofs.md §9).
    #[error(
        "the flow chatters across a kink at t = {t}: {kink} changed sign {crossings} times \
         since t = {since}, each within a few steps of the last; the flow slides along this \
         kink (a Filippov sliding mode) and the method steps back and forth across it{hint} ({loss})"
    )]
    Chatter {
        t: f64,
        kink: String,
        crossings: u32,
        since: f64,
        hint: String,
        loss: LastLoss,
    },
    /// With events, a kink the flow slides along whose sliding mode could
    /// not be integrated (proofs.md §9, E6).
    #[error(
        "the flow reaches a sliding mode at t = {t} that `flow.events` cannot integrate: \
         {kink} {cause} ({loss})"
    )]
    Sliding {
        t: f64,
        kink: String,
        /// Why the sliding mode could not be followed.
        cause: &'static str,
        loss: LastLoss,
    },
    /// Ctrl-C: the run stopped at the next step and wrote nothing.
    #[error("interrupted at t = {t}; no report written")]
    Interrupted { t: f64 },
    /// Ctrl-C during `search`: it stopped before its next case (or its
    /// next run's next step) and wrote nothing.
    #[error("the search was interrupted after {cases} cases; no file written")]
    SearchInterrupted { cases: u32 },
    /// `bench`: a figure changed beyond its tolerance against the
    /// baseline, or two runs of one spec differed.
    #[error("{what}")]
    Regression { what: String },
}

/// Any failure of a pathkernel command.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum Error {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Run(#[from] RunError),
}

impl Error {
    /// The documented process exit code: 2 for bad input, 1 for a run
    /// failure, 130 (128 + SIGINT, as a shell reports it) for an interrupt.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Input(_) => 2,
            Error::Run(RunError::Interrupted { .. } | RunError::SearchInterrupted { .. }) => 130,
            Error::Run(_) => 1,
        }
    }
}
