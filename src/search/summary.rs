//! What a search prints and writes: the summary text, the counterexample
//! spec, and the `pathkernel search` command that ties them to the runner.
use super::claims::Claim;
use super::runner::{Found, Options, Progress, search};
use crate::error::{Error, InputError, RunError};
use crate::report::write_atomic;
use crate::spec::Spec;
use std::path::{Path, PathBuf};

/// A short description of an experiment's size, for the text.
fn describe(spec: &Spec) -> String {
    let (n, m, d) = match &spec.data {
        crate::spec::DataSpec::Inline {
            train_x, test_x, ..
        } => (train_x.len(), test_x.len(), train_x[0].len()),
        _ => (0, 0, 0),
    };
    let model = serde_json::to_string(&spec.model).unwrap_or_default();
    let loss = serde_json::to_string(&spec.loss).unwrap_or_default();
    let step = match spec.flow.fixed_step() {
        // The flow's options are in the spec; the text names the batches.
        Some(lr) if spec.flow.method.is_optimizer() => format!(
            "lr {lr}, {} steps, {}",
            spec.flow.optimizer_steps(),
            match (&spec.flow.batches, spec.flow.batch_size) {
                (Some(_), _) => "explicit batches".to_owned(),
                (None, Some(b)) => format!("batch_size {b}"),
                (None, None) => "full batches".to_owned(),
            }
        ),
        Some(h) => format!("step {h}"),
        None => {
            let (rtol, atol) = spec.flow.tolerances();
            format!("rtol {rtol:e}, atol {atol:e}")
        }
    };
    format!(
        "model {model}, P = {}; loss {loss}, reduction {:?}; N = {n}, M = {m}, D = {d}; {} with {step} to T = {}",
        spec.model.n_params(d),
        spec.reduction,
        spec.flow.method.name(),
        spec.flow.t_end
    )
}

/// The files a search writes into `dir`: the spec and its picture (when
/// something was found, `crate::plot::search`) and the text. Both are written atomically; their contents depend
/// only on the options.
pub fn write(dir: &Path, options: &Options, found: &Found) -> Result<Vec<PathBuf>, Error> {
    // Drawn before any file is written, so that a failure leaves none.
    let picture = match found {
        Found::Counterexample { spec, .. } => {
            Some(crate::plot::search::picture(options.claim, spec)?)
        }
        Found::Nothing { .. } => None,
    };
    std::fs::create_dir_all(dir).map_err(|e| {
        InputError::new(
            dir.display().to_string(),
            format!("cannot create the output directory: {e}"),
        )
    })?;
    let name = options.claim.name();
    let text_path = dir.join(format!("{name}.txt"));
    let mut written = Vec::new();
    if let Found::Counterexample { spec, .. } = found {
        let spec_path = dir.join(format!("{name}.json"));
        let json = serde_json::to_string_pretty(spec.as_ref()).expect("a spec always serialises");
        write_atomic(&spec_path, &format!("{json}\n"), "the counterexample")?;
        written.push(spec_path);
    }
    if let Some(svg) = picture {
        let svg_path = dir.join(format!("{name}.svg"));
        write_atomic(&svg_path, &svg, "the counterexample's picture")?;
        written.push(svg_path);
    }
    write_atomic(&text_path, &text(options, found), "the search summary")?;
    written.push(text_path);
    Ok(written)
}

/// The summary of a search, printed and written to `<claim>.txt`.
pub fn text(options: &Options, found: &Found) -> String {
    let name = options.claim.name();
    let head = format!(
        "claim {name}: {}\nsearch: seed {}, up to {} cases{}\n",
        options.claim.statement(),
        options.seed,
        options.cases,
        if options.smooth {
            ", smooth activations and losses only"
        } else {
            ""
        }
    );
    match found {
        Found::Nothing { cases, best } => format!(
            "{head}result: no counterexample in {cases} cases (largest violation {best:.3e}, fails above 1)\n"
        ),
        Found::Counterexample {
            spec,
            evaluation,
            cases,
            shrink_steps,
        } => format!(
            "{head}result: FAILS, violation {:.6e} (fails above 1), found at case {cases}, \
             shrunk in {shrink_steps} steps\nminimal case: {}\nwhat failed: {}\nreplay: pathkernel run {name}.json{}\npicture: {name}.svg\n",
            evaluation.violation,
            describe(spec),
            evaluation.detail,
            if options.claim == Claim::Order {
                format!(" ; pathkernel converge {name}.json --halvings 3")
            } else {
                String::new()
            }
        ),
    }
}

/// `pathkernel search`: runs the search with a progress bar on standard
/// error (drawn only on a terminal), writes its files into `out` and
/// returns the summary to print.
pub fn command(options: &Options, out: &Path) -> Result<String, Error> {
    use indicatif::{ProgressBar, ProgressStyle};
    let bar = ProgressBar::new(u64::from(options.cases));
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} cases {elapsed}")
            .expect("a valid template"),
    );
    let show = |p: &Progress| {
        bar.set_position(u64::from(p.cases));
        bar.set_message(match p.shrinking {
            None => format!("{}: best violation {:.3e}", options.claim.name(), p.best),
            Some(v) => format!("shrinking, step {}: violation {v:.3e}", p.shrink_steps),
        });
    };
    let found = search(options, &show);
    bar.finish_and_clear();
    let found = found?;
    // A Ctrl-C after the last case still leaves no file.
    if options.interrupted() {
        return Err(RunError::SearchInterrupted {
            cases: found.cases(),
        }
        .into());
    }
    write(out, options, &found)?;
    Ok(text(options, &found))
}
