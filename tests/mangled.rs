//! Issue 5's check as a user makes it: the binary fed a thousand mangled
//! specs (JSON and TOML) and CSV files, each a valid file with a few random
//! bytes flipped, deleted, inserted or duplicated (from a seeded ChaCha
//! generator, so every case replays). Every run ends by itself with exit 0
//! (a report written), 1 or 2 (one line on standard error, nothing
//! written); a run still going after a moment (a mangled number can make a
//! long run) is sent SIGINT and must end with 130 and nothing written.
use crate::common::entries;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SPEC_JSON: &str = r#"{
  "seed": 3,
  "data": {"source": "synthetic", "function": "moons", "n_train": 8, "n_test": 4, "dim": 2, "noise": 0.1},
  "model": {"arch": "mlp", "hidden": [4], "activation": "gelu"},
  "loss": {"kind": "logistic"},
  "reduction": "mean",
  "flow": {"t_end": 1.0, "method": "dopri5", "rtol": 1e-6, "atol": 1e-9}
}"#;

const SPEC_TOML: &str = r#"seed = 3
reduction = "sum"
[data]
source = "inline"
train_x = [[0.5], [-1.0], [2.0]]
train_y = [1.0, 0.0, -0.5]
test_x = [[0.25]]
[model]
arch = "resmlp"
width = 3
blocks = 1
[loss]
kind = "huber"
delta = 0.5
[flow]
t_end = 1.0
method = "rk4"
step = 0.25
"#;

const CSV_SPEC: &str = r#"{"data": {"source": "csv", "train": "train.csv", "test": "test.csv"},
  "model": {"arch": "linear"}, "loss": {"kind": "bce"},
  "flow": {"t_end": 1.0, "method": "gd", "lr": 0.125, "exact_path_kernel": true}}"#;
const TRAIN_CSV: &str = "x1,x2,y\n0.5,1.0,1\n-1.5,0.25,0\n2.0,-0.5,1\n";
const TEST_CSV: &str = "0.1,0.2\n-0.3,0.4\n";

/// Bytes that change the meaning of specs and CSV files.
const INSERTS: &[u8] = b"0-.e9,[]{}\"\n#x=";

/// `text` with 1 to 4 random byte edits.
fn mangle(text: &str, rng: &mut ChaCha20Rng) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let i = rng.random_range(0..bytes.len().max(1));
        match rng.random_range(0..4) {
            0 if !bytes.is_empty() => bytes[i] = rng.random(),
            1 if !bytes.is_empty() => {
                bytes.remove(i);
            }
            2 => {
                let b = INSERTS[rng.random_range(0..INSERTS.len())];
                bytes.insert(i.min(bytes.len()), b);
            }
            _ if !bytes.is_empty() => {
                let j = rng.random_range(i..bytes.len().min(i + 8) + 1);
                let piece = bytes[i..j].to_vec();
                bytes.splice(i..i, piece);
            }
            _ => {}
        }
    }
    bytes
}

/// Runs the binary on the first file of `files` (written into a fresh
/// directory) and checks how it ends; returns the exit code.
fn check(files: &[(&str, Vec<u8>)]) -> i32 {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let before = entries(dir.path());
    let spec = dir.path().join(files[0].0);
    let report = dir.path().join("report.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pathkernel"))
        .args([
            "run",
            spec.to_str().unwrap(),
            "--out",
            report.to_str().unwrap(),
        ])
        .args(["--max-memory", "0.25"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut interrupted = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        let waited = start.elapsed();
        if !interrupted && waited > Duration::from_secs(2) {
            let pid = child.id().to_string();
            assert!(
                Command::new("kill")
                    .args(["-INT", &pid])
                    .status()
                    .unwrap()
                    .success()
            );
            interrupted = true;
        }
        assert!(
            waited < Duration::from_secs(30),
            "no end after SIGINT: {files:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    let code = status
        .code()
        .unwrap_or_else(|| panic!("killed by a signal: {status:?}"));
    let shown = String::from_utf8_lossy(&files[0].1);
    match code {
        0 => {
            let mut expected = before.clone();
            expected.insert("report.json".into());
            assert_eq!(entries(dir.path()), expected, "{shown}");
        }
        1 | 2 | 130 => {
            assert!(
                code == 130 || !interrupted,
                "exit {code} after SIGINT: {shown}"
            );
            assert!(
                err.starts_with("pathkernel: ") && err.ends_with('\n'),
                "{err}"
            );
            assert_eq!(err.matches('\n').count(), 1, "not one line: {err}\n{shown}");
            assert_eq!(entries(dir.path()), before, "a file left: {err}");
        }
        other => panic!("exit {other}: {err}\n{shown}"),
    }
    code
}

#[test]
fn mangled_specs_and_csv_files_end_cleanly() {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let mut codes = std::collections::BTreeMap::new();
    for case in 0..1000 {
        let files = match case % 3 {
            0 => vec![("spec.json", mangle(SPEC_JSON, &mut rng))],
            1 => vec![("spec.toml", mangle(SPEC_TOML, &mut rng))],
            _ => vec![
                ("spec.json", CSV_SPEC.as_bytes().to_vec()),
                ("train.csv", mangle(TRAIN_CSV, &mut rng)),
                ("test.csv", mangle(TEST_CSV, &mut rng)),
            ],
        };
        *codes.entry(check(&files)).or_insert(0) += 1;
    }
    // Most mangled files are bad input, and some still run.
    println!("exit codes: {codes:?}");
    assert!(codes.get(&2).copied().unwrap_or(0) > 500, "{codes:?}");
    assert!(codes.get(&0).copied().unwrap_or(0) > 10, "{codes:?}");
}
