//! Scalar reports stay byte for byte what they were before vector outputs
//! (issue 9): tests/golden holds specs (every architecture, gd with the
//! exact path kernel, fixed and adaptive methods, kinked and smooth losses,
//! and every spec of the counterexample corpus) with the reports that the
//! binary of commit 90d1bd7 (the last one with scalar outputs only) wrote
//! for them. Every field a recorded report has must be written with the
//! same bytes (its serialised value, compared as raw JSON text) and in the
//! same order; fields added since (gd's second_order_term and
//! second_order_residual, SPEC §9; step_sizes, SPEC §13) may appear between
//! them.
use serde_json::value::RawValue;
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
        let (new, old) = (fields(&new), fields(&old));
        let mut at = 0;
        for (key, value) in &old {
            let Some(offset) = new[at..].iter().position(|(k, _)| k == key) else {
                panic!("{name}: field `{key}` missing or out of order");
            };
            at += offset;
            assert!(
                new[at].1 == *value,
                "{name}: field `{key}` differs from the recorded one"
            );
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} recorded reports");
}

/// The top-level fields of a report, in order, each with its value's raw
/// JSON text as written.
fn fields(text: &str) -> Vec<(String, String)> {
    let map: Vec<(String, &RawValue)> = serde_json::from_str::<Ordered<'_>>(text)
        .expect("a report is a JSON object")
        .0;
    map.into_iter()
        .map(|(k, v)| (k, v.get().to_owned()))
        .collect()
}

/// A JSON object's entries in the order written (serde_json's own map
/// sorts them unless its preserve_order feature is on).
struct Ordered<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for Ordered<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = Vec<(String, &'de RawValue)>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(entries)
            }
        }
        d.deserialize_map(Entries).map(Ordered)
    }
}
