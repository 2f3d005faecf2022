//! Scalar reports stay byte for byte what they were before vector outputs
//! (issue 9): tests/golden holds specs (every architecture, gd with the
//! exact path kernel, fixed and adaptive methods, kinked and smooth losses,
//! and every spec of the counterexample corpus) with the reports that the
//! binary of commit 90d1bd7 (the last one with scalar outputs only) wrote
//! for them. The current binary must write the same bytes.
use std::path::Path;
use std::process::Command;

#[test]
fn scalar_reports_are_byte_identical_to_the_recorded_ones() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let out = tempfile::tempdir().unwrap();
    let mut checked = 0;
    let mut specs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".spec.json"))
        .collect();
    specs.sort();
    for spec in specs {
        let name = spec
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".spec.json", "");
        let recorded = dir.join(format!("{name}.report.json"));
        let written = out.path().join(format!("{name}.json"));
        let run = Command::new(env!("CARGO_BIN_EXE_pathkernel"))
            .arg("run")
            .arg(&spec)
            .arg("--out")
            .arg(&written)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let (new, old) = (
            std::fs::read(&written).unwrap(),
            std::fs::read(&recorded).unwrap(),
        );
        if new != old {
            let line = new
                .split(|&b| b == b'\n')
                .zip(old.split(|&b| b == b'\n'))
                .position(|(a, b)| a != b)
                .map_or(0, |l| l + 1);
            panic!("{name}: the report differs from the recorded one (first at line {line})");
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} recorded reports");
}
