//! `pathkernel bench [SPEC ...] [--repeat K] [--save FILE] [--baseline FILE]`:
//! regression benchmarking as a command. Each spec runs K times in one
//! process; the median and min–max wall time, the counts, the residual and
//! the FLOP rate are printed, saved as a baseline, or compared with one
//! (`baseline`), exiting 1 on a change beyond its tolerance.
//!
//! The default set is the bench specs of `benches/specs/` (the project's
//! copy of the shared bench folder), located from the source tree the
//! binary was built in, or `$PATHKERNEL_BENCH_DIR`.
use crate::data::Dataset;
use crate::error::{Error, InputError, RunError};
use crate::experiment::Experiment;
use crate::flow::FlowProblem;
use crate::report::write_atomic;
use crate::spec::Spec;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

pub mod baseline;

pub use baseline::{Baseline, Entry, Finding, Times, compare};

/// Most repeats of a spec: the median of 1000 runs is already exact enough.
pub const MAX_REPEAT: usize = 1000;

/// The arguments of `bench`.
#[derive(Clone, Debug, clap::Args)]
pub struct Options {
    /// Bench specs: paths, or names of the bench folder's specs (`small`);
    /// default, every spec of the folder, by name.
    pub specs: Vec<String>,
    /// Runs of each spec (the time's median and spread are over these).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Write the measurements to FILE as a baseline.
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    /// Compare with the baseline in FILE; exit 1 on a regression.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Save no times: a baseline of counts and residuals only, the same on
    /// every machine (what a deterministic CI gate compares with).
    #[arg(long)]
    pub counts_only: bool,
}

/// The folder of the bench specs: `$PATHKERNEL_BENCH_DIR`, else the
/// source tree's `benches/specs`.
pub fn bench_dir() -> PathBuf {
    std::env::var_os("PATHKERNEL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/specs"))
}

/// Runs the command: measures, prints, saves and compares.
pub fn command(options: &Options, interrupt: Option<Arc<AtomicBool>>) -> Result<(), Error> {
    if options.repeat == 0 || options.repeat > MAX_REPEAT {
        return Err(InputError::new(
            "--repeat",
            format!(
                "found {}, allowed: a whole number from 1 to {MAX_REPEAT}",
                options.repeat
            ),
        )
        .into());
    }
    let baseline = options.baseline.as_deref().map(read_baseline).transpose()?;
    // Every spec is read and checked before any runs.
    let specs = resolve_specs(&options.specs)?;
    let mut entries = Vec::new();
    for (name, spec, data) in specs {
        let entry = measure(&name, spec, data, options.repeat, interrupt.clone())?;
        crate::cli::emit(&format!("{}\n", line(&entry)));
        entries.push(entry);
    }
    if let Some(path) = &options.save {
        let saved = Baseline {
            version: 1,
            generator: format!("pathkernel {}", env!("CARGO_PKG_VERSION")),
            entries: entries
                .iter()
                .cloned()
                .map(|e| {
                    if options.counts_only {
                        counts_only(e)
                    } else {
                        e
                    }
                })
                .collect(),
        };
        let text = serde_json::to_string_pretty(&saved).expect("a baseline serialises");
        write_atomic(path, &format!("{text}\n"), "the baseline")?;
    }
    let Some(baseline) = baseline else {
        return Ok(());
    };
    let findings = compare(&entries, &baseline);
    crate::cli::emit(&table(&findings));
    let flagged: Vec<String> = findings
        .iter()
        .filter_map(|f| f.flag.as_ref().map(|why| format!("{}: {why}", f.name)))
        .collect();
    if flagged.is_empty() {
        return Ok(());
    }
    Err(RunError::Regression {
        what: format!(
            "{} regression(s) against {}: {}",
            flagged.len(),
            options
                .baseline
                .as_deref()
                .unwrap_or(Path::new(""))
                .display(),
            flagged.join("; ")
        ),
    }
    .into())
}

/// An entry without its times (a counts-only baseline).
fn counts_only(e: Entry) -> Entry {
    Entry {
        time: None,
        gflops: None,
        ..e
    }
}

fn read_baseline(path: &Path) -> Result<Baseline, InputError> {
    let at = || path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::new(at(), format!("cannot read the baseline: {e}")))?;
    serde_json::from_str(&text).map_err(|e| {
        InputError::new(
            format!("{}:{}:{}", at(), e.line(), e.column()),
            format!("not a baseline that `bench --save` writes: {e}"),
        )
    })
}

/// The specs asked for (a path, or a name in the bench folder), or the
/// whole folder, each with its data, read and checked.
fn resolve_specs(asked: &[String]) -> Result<Vec<(String, Spec, Dataset)>, InputError> {
    let dir = bench_dir();
    let paths: Vec<PathBuf> = if asked.is_empty() {
        let listing = std::fs::read_dir(&dir).map_err(|e| {
            InputError::new(
                dir.display().to_string(),
                format!(
                    "cannot list the bench specs: {e}; give SPEC paths or set PATHKERNEL_BENCH_DIR"
                ),
            )
        })?;
        let mut paths: Vec<PathBuf> = listing
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json" || x == "toml"))
            .collect();
        paths.sort();
        paths
    } else {
        asked
            .iter()
            .map(|a| {
                let path = PathBuf::from(a);
                let named = dir.join(format!("{a}.json"));
                if !path.exists() && !a.contains(['/', '.']) && named.exists() {
                    named
                } else {
                    path
                }
            })
            .collect()
    };
    paths
        .into_iter()
        .map(|path| {
            let spec = Spec::from_path(&path)?;
            let base = path.parent().unwrap_or(Path::new("."));
            let data = Dataset::resolve(&spec, base)?;
            let name = path
                .file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
            Ok((name, spec, data))
        })
        .collect()
}

/// Runs a spec `repeat` times; the counts and residual must be the same
/// every time (else the run is not deterministic, a failure).
pub fn measure(
    name: &str,
    spec: Spec,
    data: Dataset,
    repeat: usize,
    interrupt: Option<Arc<AtomicBool>>,
) -> Result<Entry, Error> {
    let mut exp = Experiment::new(spec, data);
    exp.interrupt = interrupt;
    let flops = FlowProblem::new(
        exp.model.as_ref(),
        exp.spec.loss,
        exp.spec.reduction,
        &exp.data,
    )
    .flops_per_evaluation();
    let mut seconds = Vec::with_capacity(repeat);
    let mut first: Option<Entry> = None;
    for _ in 0..repeat {
        let started = std::time::Instant::now();
        let out = exp.run(&mut |_| {})?;
        seconds.push(started.elapsed().as_secs_f64());
        // S: per query row (m, c), |f(w0)| + |f(w_T)| + Σ_i |A_i|.
        let scale = out
            .coef_integral
            .row_iter()
            .zip(out.y0.iter().zip(&out.y_end))
            .map(|(a, (y0, y1))| y0.abs() + y1.abs() + a.iter().map(|v| v.abs()).sum::<f64>())
            .fold(0.0_f64, f64::max);
        let entry = Entry {
            name: name.to_owned(),
            n_params: exp.model.n_params(),
            rhs_evals: out.stats.rhs_evals,
            steps: out.stats.steps,
            rejected_steps: out.stats.rejected_steps,
            max_abs_residual: out.max_abs_residual(),
            scale,
            time: None,
            gflops: None,
        };
        match &first {
            None => first = Some(entry),
            Some(f) if *f == entry => {}
            Some(f) => {
                return Err(RunError::Regression {
                    what: format!(
                        "{name}: two runs in one process differ ({} and {} evaluations, \
                         residual {:e} and {:e}): the run is not deterministic",
                        f.rhs_evals, entry.rhs_evals, f.max_abs_residual, entry.max_abs_residual
                    ),
                }
                .into());
            }
        }
    }
    seconds.sort_by(f64::total_cmp);
    let k = seconds.len();
    let median = if k % 2 == 1 {
        seconds[k / 2]
    } else {
        (seconds[k / 2 - 1] + seconds[k / 2]) / 2.0
    };
    let mut entry = first.expect("repeat >= 1");
    entry.gflops = Some(flops * entry.rhs_evals as f64 / median / 1e9);
    entry.time = Some(Times {
        runs: k,
        median,
        min: seconds[0],
        max: seconds[k - 1],
    });
    Ok(entry)
}

/// One spec's measurements on one line.
fn line(e: &Entry) -> String {
    let time = e.time.as_ref().map_or_else(String::new, |t| {
        format!(
            "  {:.4} s [{:.4}, {:.4}] over {}",
            t.median, t.min, t.max, t.runs
        )
    });
    let rate = e
        .gflops
        .map_or_else(String::new, |g| format!(", {g:.1} GFLOP/s"));
    format!(
        "{:<12} P {:>8}  {:>6} evaluations  {:>5} steps ({} rejected)  max |r| {:.3e}{time}{rate}",
        e.name, e.n_params, e.rhs_evals, e.steps, e.rejected_steps, e.max_abs_residual
    )
}

/// The comparison as a table: each figure's baseline, value now and ratio.
fn table(findings: &[Finding]) -> String {
    let mut s = format!(
        "{:<12} {:<17} {:>14} {:>14} {:>8}\n",
        "bench", "figure", "baseline", "now", "ratio"
    );
    for f in findings {
        let show = |v: f64| {
            if v.fract() == 0.0 && v.abs() < 1e15 {
                format!("{v}")
            } else {
                format!("{v:.4e}")
            }
        };
        s.push_str(&format!(
            "{:<12} {:<17} {:>14} {:>14} {:>8.4}{}\n",
            f.name,
            f.figure,
            show(f.baseline),
            show(f.now),
            f.ratio(),
            if f.flag.is_some() { "  FLAGGED" } else { "" }
        ));
    }
    s
}
