//! The kinds of bad input and of faults while running that tests/cli.rs,
//! tests/spec.rs and tests/data.rs do not already cover (issue 5): a run
//! past the memory limit and the flag that raises it, unreadable files,
//! user text with line breaks, an adaptive step below its floor, and
//! Ctrl-C. Each is the real binary run as a process: exit 2 (bad input),
//! 1 (a failed run) or 130 (interrupted), one line on standard error, and
//! nothing written. The last two check in-process the lock that keeps a
//! second Ctrl-C's exit from leaving a temporary file.
use crate::common::{assert_fails, entries, interrupted};
use pathkernel::error::RunError;
use pathkernel::report::{between_writes, write_atomic_with};
use pathkernel::search::{Claim, Found, Options, Progress, search};
use pathkernel::spec::{Format, Spec};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

fn pathkernel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pathkernel"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

/// Runs `run SPEC --out report.json` (and `extra` arguments) in a fresh
/// directory holding `files`; the output and the directory's names after.
fn run_in(files: &[(&str, &[u8])], extra: &[&str]) -> (Output, BTreeSet<String>) {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let spec = dir.path().join(files[0].0);
    let report = dir.path().join("report.json");
    let mut args = vec![
        "run",
        spec.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = pathkernel(&args);
    (out, entries(dir.path()))
}

fn names(files: &[&str]) -> BTreeSet<String> {
    files.iter().map(|s| s.to_string()).collect()
}

/// Linear regression on N = 256 synthetic points with M = 128 queries: the
/// M x N matrices alone are 32768 numbers, so its estimate is about 10 MiB
/// (the report's six of them, as numbers and as text, dominate).
fn mid_sized() -> Value {
    json!({
        "data": {"source": "synthetic", "function": "linear", "n_train": 256, "n_test": 128, "dim": 2},
        "model": {"arch": "linear"},
        "loss": {"kind": "squared"},
        "reduction": "mean",
        "flow": {"t_end": 1.0, "method": "rk4", "step": 0.5}
    })
}

#[test]
fn a_run_past_the_memory_limit_is_refused_until_the_flag_raises_it() {
    let spec = mid_sized().to_string();
    let files: &[(&str, &[u8])] = &[("spec.json", spec.as_bytes())];
    let (out, after) = run_in(files, &["--max-memory", "0.005"]);
    assert_fails(
        &out,
        2,
        &[
            "pathkernel: data: ",
            "N = 256",
            "M = 128",
            "`rk4`",
            "an estimated ",
            " MiB of memory",
            "at most 0.005 GiB",
            "--max-memory",
        ],
    );
    assert_eq!(after, names(&["spec.json"]));
    let (out, after) = run_in(files, &["--max-memory", "0.05"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(after, names(&["spec.json", "report.json"]));
    // converge takes the same limit.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spec.json");
    std::fs::write(&path, &spec).unwrap();
    let out = pathkernel(&["converge", path.to_str().unwrap(), "--max-memory", "0.005"]);
    assert_fails(&out, 2, &["data: ", "--max-memory"]);
    // A limit that is not a positive number of GiB up to the ceiling.
    for bad in ["0", "-1", "NaN", "inf", "2000"] {
        let flag = format!("--max-memory={bad}");
        let (out, after) = run_in(files, &[&flag]);
        assert_fails(&out, 2, &["--max-memory: found", "at most 1024"]);
        assert_eq!(after, names(&["spec.json"]), "{bad}");
    }
}

/// A linear fit to the csv data `train` and test.csv.
fn csv_spec(train: &str) -> String {
    json!({
        "data": {"source": "csv", "train": train, "test": "test.csv"},
        "model": {"arch": "linear"}, "loss": {"kind": "squared"},
        "flow": {"t_end": 1.0, "method": "rk4", "step": 0.5}
    })
    .to_string()
}

#[test]
fn unreadable_files_are_refused_with_their_path() {
    // A spec that is not UTF-8, and a spec path that is a directory.
    let (out, after) = run_in(&[("spec.json", b"{\"seed\": \xff}")], &[]);
    assert_fails(&out, 2, &["spec.json", "cannot read the spec"]);
    assert_eq!(after, names(&["spec.json"]));
    let dir = tempfile::tempdir().unwrap();
    let out = pathkernel(&["run", dir.path().to_str().unwrap()]);
    assert_fails(&out, 2, &["cannot read the spec"]);
    // A data file that is a directory.
    let spec = csv_spec(".");
    let files: &[(&str, &[u8])] = &[("spec.json", spec.as_bytes()), ("test.csv", b"1\n")];
    let (out, after) = run_in(files, &[]);
    assert_fails(&out, 2, &["cannot read the data file"]);
    assert_eq!(after, names(&["spec.json", "test.csv"]));
}

/// A user's key or cell holding a line break is shown escaped, so the
/// message stays one line; an empty key is shown as `""`.
#[test]
fn user_text_with_line_breaks_keeps_the_message_one_line() {
    let mut spec = mid_sized();
    spec["model"]["in\nit"] = json!(1);
    let text = spec.to_string();
    let (out, _) = run_in(&[("spec.json", text.as_bytes())], &[]);
    assert_fails(
        &out,
        2,
        &["model.\"in\\nit\"", "unknown field `\"in\\nit\"`"],
    );
    let mut spec = mid_sized();
    spec[""] = json!(1);
    let text = spec.to_string();
    let (out, _) = run_in(&[("spec.json", text.as_bytes())], &[]);
    assert_fails(&out, 2, &["pathkernel: \"\": unknown field `\"\"`"]);
    let spec = csv_spec("train.csv");
    let files: &[(&str, &[u8])] = &[
        ("spec.json", spec.as_bytes()),
        ("train.csv", b"1,2\n\"3\n4\",5\n"),
        ("test.csv", b"1\n"),
    ];
    let (out, after) = run_in(files, &[]);
    assert_fails(&out, 2, &["train.csv:2:1", "found `\"3\\n4\"`"]);
    assert_eq!(after, names(&["spec.json", "train.csv", "test.csv"]));
}

/// A finite noise so large that noise times a normal draw overflows.
#[test]
fn a_noise_that_makes_infinite_targets_is_refused() {
    let mut spec = mid_sized();
    spec["data"]["noise"] = json!(f64::MAX);
    let text = spec.to_string();
    let (out, after) = run_in(&[("spec.json", text.as_bytes())], &[]);
    assert_fails(
        &out,
        2,
        &["data.noise: found 1.7976931348623157e308", "finite"],
    );
    assert_eq!(after, names(&["spec.json"]));
}

/// With rtol = atol = 1e-300 no step can pass the error test (rounding
/// alone is 1e-16 of the state), so the step shrinks to the floor
/// 10 eps max(t, T) and the run stops there: exit 1 with t and the loss.
#[test]
fn an_adaptive_step_below_its_floor_stops_the_run() {
    let spec = json!({
        "data": {"source": "inline", "train_x": [[1.0], [2.0]], "train_y": [0.5, -1.0],
                 "test_x": [[0.5]]},
        "model": {"arch": "linear"},
        "init": {"w0": [0.3, -0.2]},
        "loss": {"kind": "squared"},
        "flow": {"t_end": 1.0, "method": "dopri5", "rtol": 1e-300, "atol": 1e-300}
    })
    .to_string();
    let (out, after) = run_in(&[("spec.json", spec.as_bytes())], &[]);
    assert_fails(
        &out,
        1,
        &["below the floor, at t = 0", "last finite loss", "at t = 0"],
    );
    assert_eq!(after, names(&["spec.json"]));
}

/// Runs the binary with `args` and SIGINT after `delay_ms`: it must end
/// within 20 s with exit 130 and the one line `{before}N{after}`; returns N.
fn stopped_by_ctrl_c(args: &[&str], delay_ms: u64, before: &str, after: &str) -> f64 {
    let (out, took) = interrupted(args, Duration::from_millis(delay_ms));
    assert!(took < Duration::from_secs(20), "took {took:?} to stop");
    let line = assert_fails(&out, 130, &[before, after]);
    line.strip_prefix(before)
        .and_then(|r| r.strip_suffix(after))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number in {line}"))
}

/// gd at lr 0.001 to `t_end`, of an mlp [32] on 64 points: 1000 t_end steps.
fn long_gd(t_end: f64) -> Value {
    json!({
        "data": {"source": "synthetic", "function": "sine", "n_train": 64, "n_test": 16, "dim": 2},
        "model": {"arch": "mlp", "hidden": [32]},
        "loss": {"kind": "squared"},
        "reduction": "mean",
        "flow": {"t_end": t_end, "method": "gd", "lr": 0.001}
    })
}

/// A long gd run (10^6 steps of an mlp on 64 points) interrupted by SIGINT
/// a moment after it starts: exit 130 within seconds, one line naming the
/// interrupt, and no report or temporary file.
#[test]
fn ctrl_c_stops_the_run_and_leaves_no_file() {
    let spec = long_gd(1000.0).to_string();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spec.json");
    std::fs::write(&path, spec).unwrap();
    let report = dir.path().join("report.json");
    let args = [
        "run",
        path.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
    ];
    let t = stopped_by_ctrl_c(
        &args,
        1500,
        "pathkernel: interrupted at t = ",
        "; no report written",
    );
    assert!((0.0..1000.0).contains(&t), "t = {t}");
    assert_eq!(entries(dir.path()), names(&["spec.json"]));
}

/// A search of a claim that holds (psd), with far more cases than it can
/// draw in a second, interrupted by one SIGINT: exit 130 within seconds,
/// one line naming the interrupt, and no file (nor the --out directory).
#[test]
fn ctrl_c_stops_a_search_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let found = dir.path().join("found");
    let args = [
        "search",
        "--claim",
        "psd",
        "--cases",
        "1000000",
        "--out",
        found.to_str().unwrap(),
    ];
    let cases = stopped_by_ctrl_c(
        &args,
        1000,
        "pathkernel: the search was interrupted after ",
        " cases; no file written",
    );
    assert!(cases < 1e6, "{cases} cases");
    assert!(entries(dir.path()).is_empty());
}

/// The search's interrupt, deterministic in-process: the flag is set from
/// the progress display at a chosen evaluation, and the search must end
/// there with the interrupt, not with a result.
fn search_stopped_at(
    claim: Claim,
    seed: u64,
    stop: impl Fn(&Progress) -> bool,
) -> (Result<Found, pathkernel::error::Error>, Progress) {
    let flag = Arc::new(AtomicBool::new(false));
    let options = Options {
        claim,
        cases: 100,
        seed,
        max_shrink_iters: 10_000,
        smooth: false,
        interrupt: Some(flag.clone()),
    };
    let last = Mutex::new(Progress::default());
    // Asserted outside: proptest would take a panic here for a failing case.
    let late = AtomicBool::new(false);
    let result = search(&options, &|p: &Progress| {
        late.fetch_or(flag.load(Ordering::SeqCst), Ordering::SeqCst);
        *last.lock().unwrap() = *p;
        if stop(p) {
            flag.store(true, Ordering::SeqCst);
        }
    });
    assert!(!late.into_inner(), "a case was measured after the flag");
    (result, last.into_inner().unwrap())
}

#[test]
fn a_search_stops_between_cases_and_while_shrinking() {
    // After the first case of a claim that holds.
    let (result, last) = search_stopped_at(Claim::Psd, 0, |p| p.cases == 1);
    assert_eq!(last.cases, 1);
    assert_eq!(
        result.unwrap_err(),
        RunError::SearchInterrupted { cases: 1 }.into()
    );
    // At the first shrinking step of a claim that fails (the search of
    // tests/counterexamples.rs finds weighted-average's with seed 5).
    let (result, last) = search_stopped_at(Claim::WeightedAverage, 5, |p| p.shrink_steps == 1);
    assert_eq!(last.shrink_steps, 1, "{last:?}");
    assert_eq!(
        result.unwrap_err(),
        RunError::SearchInterrupted { cases: last.cases }.into()
    );
}

/// Inside a case, the claim's runs stop at their first step once the flag
/// is set: a gd run of 10^5 steps measures nothing and says why.
#[test]
fn a_claims_runs_stop_at_the_flag() {
    let spec = Spec::parse(&long_gd(100.0).to_string(), Format::Json).unwrap();
    let flag = Arc::new(AtomicBool::new(true));
    for claim in [Claim::Psd, Claim::Order] {
        let eval = claim.evaluate_until(&spec, Some(&flag));
        assert!(!eval.fails());
        assert!(
            eval.detail.contains("no evidence: interrupted at t = 0"),
            "{}",
            eval.detail
        );
    }
}

/// A second Ctrl-C exits through `between_writes`, which must wait while an
/// atomic write's temporary file exists. Made deterministic in-process (a
/// signal's delivery time cannot be controlled from outside): the write is
/// held open inside its body while a `between_writes` is started; if it ran
/// then, it would see the temporary file. 300 ms is ample for a thread that
/// is not blocked to run; a correct lock only costs that wait.
#[test]
fn an_exit_between_writes_waits_until_the_file_is_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    let (inside_tx, inside_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let (seen_tx, seen_rx) = mpsc::channel();
    let path = path.as_path();
    std::thread::scope(|s| {
        let writer = s.spawn(move || {
            write_atomic_with(path, "the report", |file| {
                file.write_all(b"{}\n")?;
                inside_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                Ok(())
            })
        });
        inside_rx.recv().unwrap();
        let during = entries(dir.path());
        s.spawn(|| between_writes(|| seen_tx.send(entries(dir.path())).unwrap()));
        let early = seen_rx.recv_timeout(Duration::from_millis(300));
        // Released before any assertion, so that a failure cannot hang the scope.
        release_tx.send(()).unwrap();
        writer.join().unwrap().unwrap();
        assert!(
            during
                .iter()
                .any(|n| n.starts_with(".pathkernel") && n.ends_with(".tmp")),
            "no temporary file while the body ran: {during:?}"
        );
        assert!(early.is_err(), "ran during the write: {early:?}");
        assert_eq!(seen_rx.recv().unwrap(), names(&["report.json"]));
    });
    assert_eq!(std::fs::read(path).unwrap(), b"{}\n");
}

/// A write whose body fails leaves neither the file nor its temporary.
#[test]
fn a_failed_atomic_write_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    let err = write_atomic_with(&path, "the report", |file| {
        file.write_all(b"{")?;
        Err(std::io::Error::other("disk full"))
    })
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot write the report: disk full"),
        "{err}"
    );
    assert!(entries(dir.path()).is_empty());
}

/// A Ctrl-C that lands after a run's last step (between the run and the
/// report's write, in `run` and in each sweep cell) is still an interrupt:
/// the check says Interrupted at t_end once the flag is up, and nothing
/// otherwise. (The signal's timing cannot be forced from a test, so the
/// check itself is tested.)
#[test]
fn the_after_the_run_check_sees_a_late_ctrl_c() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/example.json")).unwrap();
    let spec = Spec::parse(&text, Format::Json).unwrap();
    let data = pathkernel::data::Dataset::resolve(&spec, std::path::Path::new(".")).unwrap();
    let mut exp = pathkernel::experiment::Experiment::new(spec, data);
    assert!(exp.check_interrupt().is_ok(), "no handler");
    let flag = std::sync::Arc::new(AtomicBool::new(false));
    exp.interrupt = Some(flag.clone());
    exp.run(&mut |_| {}).unwrap();
    assert!(exp.check_interrupt().is_ok(), "the flag is down");
    flag.store(true, Ordering::SeqCst);
    match exp.check_interrupt() {
        Err(RunError::Interrupted { t }) => assert_eq!(t, exp.spec.flow.t_end),
        other => panic!("expected Interrupted, got {other:?}"),
    }
}
