//! Scalar reports stay byte for byte what they were before vector outputs
//! (issue 9): tests/golden holds specs (every architecture, gd with the
//! exact path kernel, fixed and adaptive methods, kinked and smooth losses,
//! and every spec of the counterexample corpus) with the reports that the
//! binary of commit 90d1bd7 (the last one with scalar outputs only) wrote
//! for them. The current binary must write every field they hold with the
//! same bytes (its serialized text); fields added since (`step_sizes`,
//! SPEC §13) may appear among them.
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
            std::fs::read_to_string(&written).unwrap(),
            std::fs::read_to_string(&recorded).unwrap(),
        );
        let new = fields(&new);
        for (field, text) in fields(&old) {
            let now = new.iter().find(|(f, _)| *f == field).map(|(_, t)| t);
            assert!(
                now == Some(&text),
                "{name}: field {field} differs from the recorded one or is missing"
            );
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} recorded reports");
}

/// The top-level fields of a pretty-printed report: each name with the text
/// of its value (the lines from its key to the next top-level key, without
/// the separating comma).
fn fields(report: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in report.lines() {
        if let Some(rest) = line.strip_prefix("  \"").filter(|r| !r.starts_with(' ')) {
            let (name, value) = rest.split_once("\": ").expect("a key and its value");
            out.push((name.to_owned(), value.to_owned()));
        } else if let Some((_, text)) = out.last_mut() {
            text.push('\n');
            text.push_str(line);
        }
    }
    for (_, text) in &mut out {
        if text.ends_with("\n}") {
            text.truncate(text.len() - 2); // the report's closing brace
        }
        if text.ends_with(',') {
            text.pop();
        }
    }
    assert!(out.len() > 20, "not a report: {} fields", out.len());
    out
}
