//! The command line (SPEC §6): argument parsing, the commands, and the
//! human-readable summaries. Exit codes: 0 success, 2 bad input, 1 a
//! failure while running, 130 interrupted by Ctrl-C.
use crate::converge::{Level, Transient, refine};
use crate::data::Dataset;
use crate::error::{Error, InputError};
use crate::experiment::{Experiment, Outcome};
use crate::report::npz::{Arrays, npz_path};
use crate::report::{Report, between_writes};
use crate::spec::{DEFAULT_MAX_MEMORY_GIB, DataSpec, Format, MAX_MEMORY_GIB, Method, Spec};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// The built-in example: a small tanh mlp on synthetic data, integrated by dop853.
pub const EXAMPLE_SPEC: &str = include_str!("example.json");

#[derive(Debug, Parser)]
#[command(
    name = "pathkernel",
    version,
    about = "Checks numerically that a model trained by gradient flow is a kernel machine (Domingos 2020)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the experiment of a spec and write its report.
    Run {
        /// The spec (JSON, or TOML by extension); `-` reads standard input.
        spec: PathBuf,
        /// Where to write the JSON report.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Refuse a run whose estimated memory is more than this many GiB.
        #[arg(long, value_name = "GiB", default_value_t = DEFAULT_MAX_MEMORY_GIB)]
        max_memory: f64,
        /// Where the report's arrays of more than 4096 numbers go: `json`
        /// (in the report) or `npz` (REPORT.npz beside it; SPEC §12).
        #[arg(long, value_enum, default_value_t = Arrays::Json)]
        arrays: Arrays,
    },
    /// Rerun a fixed-step spec at step h, h/2, h/4, … and show the order at which the residual falls.
    Converge {
        spec: PathBuf,
        /// How many times to halve the step.
        #[arg(long, default_value_t = 4)]
        halvings: u32,
        /// Refuse a run whose estimated memory is more than this many GiB.
        #[arg(long, value_name = "GiB", default_value_t = DEFAULT_MAX_MEMORY_GIB)]
        max_memory: f64,
        /// Also draw the residuals against the step (log-log, SVG) into FILE.
        #[arg(long, value_name = "FILE")]
        plot: Option<PathBuf>,
    },
    /// Print the built-in example spec, a starting point for your own.
    Example,
    /// Replay a run's steps with new query points: their K^p, A, a, kernel
    /// machine and residual, with an error estimate from halved steps.
    Kernel {
        /// The run's report (`pathkernel run --out`).
        report: PathBuf,
        /// The new points: CSV rows or a JSON array of rows, D numbers each.
        #[arg(long)]
        query: PathBuf,
        /// Where to write the JSON report of the replay.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Where arrays of more than 4096 numbers go (as for `run`).
        #[arg(long, value_enum, default_value_t = Arrays::Json)]
        arrays: Arrays,
        /// How to estimate the error of the new points' K^p and A:
        /// `halved` (SPEC §13: the difference from a second replay on
        /// halved steps, about twice the run's work) or `none` (one replay).
        #[arg(long, value_enum, default_value_t = crate::replay::ErrorEstimate::Halved)]
        error_estimate: crate::replay::ErrorEstimate,
    },
    /// Fit kernel learners on a run's training set (kernel ridge regression
    /// with K^p, K^g(w0), K^g(w_end); the best fixed coefficients) and
    /// compare them with the network at its query points.
    Learn {
        /// The run's report (`pathkernel run --out`).
        report: PathBuf,
        /// Where to write the numbers as JSON.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Hunt for a minimal experiment on which a claim about the theorem
    /// fails; write it (a self-contained spec) and what failed into --out.
    Search {
        #[arg(long, value_enum)]
        claim: crate::search::Claim,
        /// Passing cases to try before concluding that none fails.
        #[arg(long, default_value_t = 100)]
        cases: u32,
        /// Seeds the draws (ChaCha): the same seed gives the same files.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// The directory for <claim>.json and <claim>.txt.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// Most shrinking steps, each one run of the claim.
        #[arg(long, default_value_t = 10000)]
        shrink_iters: u32,
        /// Draw only smooth activations and losses (the theorem's conditions).
        #[arg(long)]
        smooth: bool,
    },
    /// Run every cell of a grid (a base spec and axes of values), each
    /// writing its report and one summary row into --out; finished cells
    /// are skipped, so a killed sweep resumes.
    Sweep {
        /// The grid (JSON, or TOML by extension): `base` and `axes`.
        grid: PathBuf,
        /// The sweep's directory (created if absent).
        #[arg(long)]
        out: PathBuf,
        /// Run only cells i, i + n, i + 2n, ... (0 <= i < n).
        #[arg(long, value_name = "i/n", value_parser = parse_shard, default_value = "0/1")]
        shard: crate::sweep::Shard,
        /// Cells run at once (the cores are shared out among them).
        #[arg(long, default_value_t = default_jobs())]
        jobs: usize,
        /// Where each report's arrays of more than 4096 numbers go (SPEC §12).
        #[arg(long, value_enum, default_value_t = Arrays::Json)]
        arrays: Arrays,
    },
    /// Merge the rows of a sweep's finished cells into DIR/summary.csv and
    /// print them as a table.
    Collect {
        /// The sweep's directory.
        dir: PathBuf,
    },
    /// Draw a report's pictures into DIR (SVG): loss.svg,
    /// kernel_machine.svg, kernels.svg, coefficients.svg, and residuals.svg
    /// for gd, sgd and adam.
    Plot {
        /// The run's report (`pathkernel run --out`).
        report: PathBuf,
        /// The directory for the pictures (created if absent).
        #[arg(long)]
        out: PathBuf,
    },
    /// Run bench specs K times each and report times, counts and residuals;
    /// against a baseline, exit 1 on a regression.
    Bench(crate::bench::Options),
}

/// `--shard`'s parser.
fn parse_shard(text: &str) -> Result<crate::sweep::Shard, String> {
    crate::sweep::Shard::parse(text).map_err(|e| e.problem)
}

/// One cell per core.
fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Most halvings `converge` takes: 2^20 times the spec's steps is already
/// far past any useful study.
pub const MAX_HALVINGS: u32 = 20;

/// Runs the command line; returns the process exit code.
pub fn main(cli: Cli) -> i32 {
    if !matches!(cli.command, Some(Command::Example)) {
        // From the start, so that a Ctrl-C while the spec and data are
        // read also ends in the documented way.
        interrupt_flag();
    }
    let result = match cli.command {
        None => Spec::parse(EXAMPLE_SPEC, Format::Json)
            .map_err(Error::from)
            .and_then(|spec| {
                run_spec(
                    spec,
                    Path::new("."),
                    None,
                    DEFAULT_MAX_MEMORY_GIB,
                    Arrays::Json,
                )
            }),
        Some(Command::Run {
            spec,
            out,
            max_memory,
            arrays,
        }) => check_out(out.as_deref(), arrays)
            .and_then(|()| check_limit(max_memory))
            .and_then(|()| read_spec(&spec))
            .and_then(|(spec, base)| run_spec(spec, &base, out.as_deref(), max_memory, arrays)),
        Some(Command::Converge {
            spec,
            halvings,
            max_memory,
            plot,
        }) => check_limit(max_memory)
            .and_then(|()| check_out(plot.as_deref(), Arrays::Json))
            .and_then(|()| read_spec(&spec))
            .and_then(|(spec, base)| converge(spec, &base, halvings, max_memory, plot.as_deref())),
        Some(Command::Example) => {
            emit(EXAMPLE_SPEC);
            Ok(())
        }
        Some(Command::Kernel {
            report,
            query,
            out,
            arrays,
            error_estimate,
        }) => check_out(out.as_deref(), arrays)
            .and_then(|()| {
                crate::replay::command(
                    &report,
                    &query,
                    out.as_deref(),
                    arrays,
                    error_estimate,
                    interrupt_flag(),
                )
            })
            .map(|text| emit(&text)),
        Some(Command::Learn { report, out }) => check_out(out.as_deref(), Arrays::Json)
            .and_then(|()| crate::learn::command(&report, out.as_deref(), interrupt_flag()))
            .map(|text| emit(&text)),
        Some(Command::Search {
            claim,
            cases,
            seed,
            out,
            shrink_iters,
            smooth,
        }) => {
            let options = crate::search::Options {
                claim,
                cases,
                seed,
                max_shrink_iters: shrink_iters,
                smooth,
                interrupt: interrupt_flag(),
            };
            crate::search::command(&options, &out).map(|text| emit(&text))
        }
        Some(Command::Sweep {
            grid,
            out,
            shard,
            jobs,
            arrays,
        }) => {
            let options = crate::sweep::Options {
                shard,
                jobs,
                arrays,
                interrupt: interrupt_flag(),
            };
            crate::sweep::command(&grid, &out, &options).map(|text| emit(&text))
        }
        Some(Command::Collect { dir }) => crate::sweep::collect::command(&dir)
            .map(|text| emit(&text))
            .map_err(Error::from),
        Some(Command::Plot { report, out }) => crate::plot::command(&report, &out)
            .map(|text| emit(&text))
            .map_err(Error::from),
        Some(Command::Bench(options)) => crate::bench::command(&options, interrupt_flag()),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("pathkernel: {e}");
            e.exit_code()
        }
    }
}

/// Writes to standard output; a reader that went away (`| head`) is not an
/// error of the run, so a failed write is ignored rather than a panic.
pub(crate) fn emit(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// The spec of a path (`-`: standard input, JSON) and the directory its
/// relative paths start from.
fn read_spec(path: &Path) -> Result<(Spec, PathBuf), Error> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| InputError::new("standard input", format!("cannot read the spec: {e}")))?;
        return Ok((Spec::parse(&text, Format::Json)?, PathBuf::from(".")));
    }
    let base = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((Spec::from_path(path)?, base))
}

/// Refuses, before any work, a report path that cannot be written: a
/// directory, or one in a directory that does not exist, or (with
/// `--arrays npz`) one whose npz file would be the report itself.
fn check_out(out: Option<&Path>, arrays: Arrays) -> Result<(), Error> {
    let Some(path) = out else { return Ok(()) };
    let refuse =
        |why: &str| Err(InputError::new("--out", format!("{}: {why}", path.display())).into());
    if path.is_dir() {
        return refuse("is a directory, expected a file path for the report");
    }
    if arrays == Arrays::Npz && npz_path(path) == path {
        return refuse(
            "with --arrays npz the arrays go to the report's path with the extension `.npz`, \
             here the report itself; give the report another extension (e.g. `.json`)",
        );
    }
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
            refuse("its directory does not exist")
        }
        _ => Ok(()),
    }
}

/// A `--max-memory` the estimate can be held to.
fn check_limit(gib: f64) -> Result<(), Error> {
    if gib > 0.0 && gib <= MAX_MEMORY_GIB {
        return Ok(());
    }
    Err(InputError::new(
        "--max-memory",
        format!("found {gib}, allowed: a number of GiB > 0 and at most {MAX_MEMORY_GIB}"),
    )
    .into())
}

/// The data of a spec, its run's memory estimated against the limit before
/// the model is built (and, for synthetic data, before they are drawn).
fn resolve(spec: &Spec, base: &Path, max_memory: f64) -> Result<Dataset, Error> {
    if let DataSpec::Synthetic {
        n_train,
        n_test,
        dim,
        ..
    } = spec.data
    {
        spec.check_size(dim, n_train, n_test, max_memory)?;
    }
    let data = Dataset::resolve(spec, base)?;
    let (n, m) = (data.train_x.nrows(), data.test_x.nrows());
    spec.check_size(data.dim(), n, m, max_memory)?;
    Ok(data)
}

/// The flag Ctrl-C sets, from a handler installed on first use (None if it
/// cannot be installed: Ctrl-C then ends the process as usual). A run
/// stops before its next step, a search before its next case (a case's
/// runs before their next step); a second Ctrl-C exits at once, or, if it
/// lands while a file is written, as soon as that file is in place, so
/// that no temporary file is left behind.
pub(crate) fn interrupt_flag() -> Option<Arc<AtomicBool>> {
    static FLAG: OnceLock<Option<Arc<AtomicBool>>> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let seen = flag.clone();
        let handler = move || {
            if seen.swap(true, Ordering::SeqCst) {
                between_writes(|| std::process::exit(130));
            }
        };
        ctrlc::set_handler(handler).ok().map(|()| flag)
    })
    .clone()
}

/// The experiment, stopped by Ctrl-C.
fn interruptible(spec: Spec, data: Dataset) -> Experiment {
    let mut exp = Experiment::new(spec, data);
    exp.interrupt = interrupt_flag();
    exp
}

fn run_spec(
    spec: Spec,
    base: &Path,
    out: Option<&Path>,
    max_memory: f64,
    arrays: Arrays,
) -> Result<(), Error> {
    let data = resolve(&spec, base, max_memory)?;
    let exp = interruptible(spec, data);
    let started = std::time::Instant::now();
    let outcome = run_with_progress(&exp)?;
    let seconds = started.elapsed().as_secs_f64();
    // A Ctrl-C after the last step still leaves no report.
    exp.check_interrupt()?;
    if let Some(path) = out {
        Report::new(&exp, &outcome).write_with_arrays(path, arrays)?;
    }
    emit(&with_timing(
        &summary(&exp, &outcome),
        seconds,
        outcome.stats.rhs_evals,
    ));
    Ok(())
}

/// The summary with the wall time and the evaluation rate after its
/// counts (the third line): the only line that differs between two runs
/// of a spec.
fn with_timing(summary: &str, seconds: f64, rhs_evals: usize) -> String {
    let rate = rhs_evals as f64 / seconds.max(f64::MIN_POSITIVE);
    let line =
        format!("  wall time {seconds:.3} s, {rate:.3e} right-hand-side evaluations per second\n");
    let cut = summary
        .match_indices('\n')
        .nth(2)
        .map_or(summary.len(), |(i, _)| i + 1);
    format!("{}{line}{}", &summary[..cut], &summary[cut..])
}

/// Runs with a progress bar on standard error (drawn only on a terminal).
fn run_with_progress(exp: &Experiment) -> Result<Outcome, Error> {
    let t_end = exp.spec.flow.t_end;
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template("{spinner} t {msg} [{bar:30}] {elapsed}")
            .expect("a valid template"),
    );
    let mut progress = |t: f64| {
        bar.set_position((1000.0 * t / t_end) as u64);
        bar.set_message(format!("{t:.4}"));
    };
    let outcome = exp.run(&mut progress);
    bar.finish_and_clear();
    Ok(outcome?)
}

/// The readable summary printed after a run.
pub fn summary(exp: &Experiment, out: &Outcome) -> String {
    use std::fmt::Write;
    let flow = &exp.spec.flow;
    let (n, m) = (exp.data.train_x.nrows(), exp.data.test_x.nrows());
    let mut s = String::new();
    let method = match flow.fixed_step() {
        Some(h) => format!("{} with step {h}", flow.method.name()),
        None => {
            let (rtol, atol) = flow.tolerances();
            format!("{} (rtol {rtol:e}, atol {atol:e})", flow.method.name())
        }
    };
    let _ = writeln!(
        s,
        "pathkernel: gradient flow to T = {} by {method}",
        flow.t_end
    );
    let c = out.n_outputs;
    let outputs = if c > 1 {
        format!(", C = {c} outputs")
    } else {
        String::new()
    };
    let _ = writeln!(
        s,
        "  P = {} parameters, N = {n} training points, M = {m} query points{outputs}",
        exp.model.n_params()
    );
    let st = out.stats;
    let _ = writeln!(
        s,
        "  {} steps ({} rejected), {} right-hand-side evaluations",
        st.steps, st.rejected_steps, st.rhs_evals
    );
    let _ = writeln!(s, "  loss {:.6e} -> {:.6e}", out.loss0, out.loss_end);
    let change = out
        .y_end
        .iter()
        .zip(&out.y0)
        .fold(0.0_f64, |a, (e, b)| a.max((e - b).abs()));
    let _ = writeln!(
        s,
        "  max |residual| {:.3e}   (max |y_end - y0| {:.3e})",
        out.max_abs_residual(),
        change
    );
    if out.loss_end > out.loss0 {
        let _ = writeln!(
            s,
            "  note: the loss increased, which the exact flow never does: {}",
            if flow.method == Method::Gd {
                "the learning rate is past gd's stability limit"
            } else {
                "the step is too large for this flow"
            }
        );
    }
    if let Some(r) = out.exact_max_abs_residual() {
        let _ = writeln!(s, "  exact path kernel: max |residual| {r:.3e}");
    }
    let (km, res) = (out.kernel_machine(), out.residual());
    if c > 1 {
        let per_class: Vec<String> = (0..c)
            .map(|k| {
                let r = res
                    .iter()
                    .skip(k)
                    .step_by(c)
                    .fold(0.0_f64, |a, r| a.max(r.abs()));
                format!("{k}: {r:.2e}")
            })
            .collect();
        let _ = writeln!(s, "  max |residual| per output: {}", per_class.join(", "));
    }
    if let Some(y) = &exp.data.test_y {
        let e = test_errors(exp, out, y, &km);
        let _ = writeln!(s, "  test error of the network f(w_end): {}", e.0);
        let _ = writeln!(s, "  test error of the kernel machine:   {}", e.1);
    }

    let _ = writeln!(
        s,
        "  {:>5} {:>14} {:>14} {:>16} {:>11}",
        "query", "y0", "y_end", "kernel machine", "residual"
    );
    // C rows a query point: fewer points where C > 1.
    let shown = if c > 1 { m.min(2) } else { m.min(5) };
    for q in 0..shown {
        for k in 0..c {
            let label = if c > 1 {
                format!("{q}.{k}")
            } else {
                q.to_string()
            };
            let j = q * c + k;
            let _ = writeln!(
                s,
                "  {label:>5} {:>14} {:>14} {:>16} {:>11.2e}",
                readable(out.y0[j]),
                readable(out.y_end[j]),
                readable(km[j]),
                res[j]
            );
        }
    }
    if m > shown {
        let _ = writeln!(s, "  ({} more query points in the report)", m - shown);
    }
    let _ = writeln!(s, "  {}", out.conditions.verdict);
    s
}

/// The test errors of the network and of the kernel machine, as text.
fn test_errors(
    exp: &Experiment,
    out: &Outcome,
    targets: &nalgebra::DMatrix<f64>,
    machine: &[f64],
) -> (String, String) {
    let e = crate::evaluation::TestError::new(
        &exp.spec.loss,
        out.n_outputs,
        targets,
        &out.y_end,
        machine,
    );
    let text = |e: &crate::evaluation::Errors| match e.accuracy {
        Some(a) => format!("accuracy {:.4}, mse {:.4e}", a, e.mse),
        None => format!("mse {:.4e}", e.mse),
    };
    (text(&e.model), text(&e.kernel_machine))
}

/// Eight decimals where that reads well, scientific notation elsewhere.
fn readable(v: f64) -> String {
    if v == 0.0 || (1e-3..1e6).contains(&v.abs()) {
        format!("{v:.8}")
    } else {
        format!("{v:.6e}")
    }
}

/// The `converge` study: the same experiment refined k times (`converge::refine`).
fn converge(
    spec: Spec,
    base: &Path,
    halvings: u32,
    max_memory: f64,
    plot: Option<&Path>,
) -> Result<(), Error> {
    if spec.flow.fixed_step().is_none() {
        return Err(InputError::new(
            "flow.step",
            "converge needs a fixed-step spec: found no step; give flow.step (or flow.lr for gd)",
        )
        .into());
    }
    if halvings > MAX_HALVINGS {
        return Err(InputError::new(
            "--halvings",
            format!("found {halvings}, allowed: at most {MAX_HALVINGS}"),
        )
        .into());
    }
    // The last halving takes 2^halvings times the spec's steps.
    let steps = spec.flow.fixed_steps().unwrap_or(1) as f64;
    let last = steps * 2f64.powi(halvings as i32);
    crate::spec::check_steps("--halvings", last, "the last halving's t_end / step")?;
    let data = resolve(&spec, base, max_memory)?;
    let mut spec = spec;
    let mut previous: Option<Level> = None;
    let mut levels = Vec::new();
    let mut transient = None;
    for k in 0..=halvings {
        let exp = interruptible(spec.clone(), data.clone());
        let outcome = run_with_progress(&exp)?;
        let level = Level::new(&exp.spec, &outcome);
        if previous.is_none() {
            emit(&level.header());
            transient = Transient::of(&exp.spec, &outcome);
        }
        emit(&level.line(previous.as_ref()));
        levels.push(level.clone());
        previous = Some(level);
        if k < halvings {
            spec = refine(&exp.spec, &outcome);
        }
    }
    if let Some(note) = transient.zip(previous).and_then(|(t, l)| t.note(l.steps)) {
        emit(&note);
    }
    if let Some(path) = plot {
        let flow = &spec.flow;
        let discrete = matches!(flow.method, Method::Gd | Method::Sgd | Method::Adam);
        let order = crate::experiment::integration(flow).0.order;
        let svg = crate::plot::converge::render(&levels, flow.method.name(), order, discrete);
        let svg = crate::plot::drawn(path, "the picture", svg)?;
        crate::report::write_atomic(path, &svg, "the picture")?;
    }
    Ok(())
}
