//! Helpers the tests that run the binary as a process share: how a failure
//! must look, what a directory holds, and a run stopped by SIGINT.
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The process exited with `code`, printed nothing on standard output and
/// one line on standard error, `pathkernel: ` then every fragment; returns
/// that line.
#[track_caller]
pub fn assert_fails(out: &Output, code: i32, fragments: &[&str]) -> String {
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert!(
        out.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let line = err
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("no newline: {err:?}"));
    assert!(!line.contains('\n'), "more than one line: {err}");
    assert!(line.starts_with("pathkernel: "), "{line}");
    for fragment in fragments {
        assert!(line.contains(fragment), "`{fragment}` not in: {line}");
    }
    line.to_owned()
}

/// The names in a directory, temporary files included.
pub fn entries(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

/// Runs the binary with `args`, sends it one SIGINT after `delay` and waits
/// for it to end; returns its output and how long it took after the signal.
/// A process still running 60 s after the signal is killed and the test
/// fails, so that a first Ctrl-C that is ignored fails rather than hangs.
pub fn interrupted(args: &[&str], delay: Duration) -> (Output, Duration) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pathkernel"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let sent = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if sent.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("still running 60 s after SIGINT: {args:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = sent.elapsed();
    (child.wait_with_output().unwrap(), took)
}
