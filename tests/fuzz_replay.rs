//! Every committed fuzz input (fuzz/corpus/<target>/, the minimised seed
//! corpus, and fuzz/regressions/<target>/, each crash the fuzzers found)
//! replayed through the same function its fuzz target calls, so a stable
//! `cargo test` checks them without libFuzzer or nightly features. The
//! property of each target is stated on its function in
//! `pathkernel::fuzzing`.
use pathkernel::fuzzing::TARGETS;
use std::path::Path;

/// The files of fuzz/<folder>/<target>/, sorted (none if it is absent).
fn inputs(folder: &str, target: &str) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(folder)
        .join(target);
    let mut files: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

fn replay(folder: &str) -> usize {
    let mut count = 0;
    for (target, run) in TARGETS {
        for file in inputs(folder, target) {
            let data = std::fs::read(&file).unwrap();
            // A panic names the file through this message.
            eprintln!("replaying {}", file.display());
            run(&data);
            count += 1;
        }
    }
    count
}

#[test]
fn every_crash_found_stays_fixed() {
    let count = replay("regressions");
    assert!(
        count > 0,
        "no regression files found under fuzz/regressions"
    );
}

#[test]
fn the_seed_corpus_holds_every_property() {
    let count = replay("corpus");
    assert!(count > 0, "no corpus files found under fuzz/corpus");
}

/// `FUZZ_TARGET=name FUZZ_INPUT=path cargo test --release show_one --
/// --ignored --nocapture` runs one input (with `PATHKERNEL_FUZZ_SHOW=1`
/// the structured targets print the spec it decodes to).
#[test]
#[ignore]
fn show_one() {
    let target = std::env::var("FUZZ_TARGET").expect("FUZZ_TARGET");
    let input = std::env::var("FUZZ_INPUT").expect("FUZZ_INPUT");
    let (_, run) = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .expect("a target name");
    run(&std::fs::read(input).unwrap());
}
