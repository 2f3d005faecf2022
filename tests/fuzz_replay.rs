//! Every committed fuzz input (fuzz/corpus/<target>/, the minimised seed
//! corpus, and fuzz/regressions/<target>/, each crash the fuzzers found)
//! replayed through the same function its fuzz target calls, so a stable
//! `cargo test` checks them without libFuzzer or nightly features. The
//! property of each target is stated on its function in
//! `pathkernel::fuzzing`.
//!
//! To read one input (a crash in fuzz/artifacts/<target>/, say), name it in
//! `PATHKERNEL_FUZZ_SHOW`: the replay then runs that file alone, through the
//! target its folder is named for, and the structured targets print what it
//! decodes to (see README, "Fuzzing").
use pathkernel::fuzzing::{SHOW, TARGETS, Target};
use std::path::{Path, PathBuf};

/// The files of fuzz/<folder>/<target>/, sorted (none if it is absent).
fn inputs(folder: &str, target: &str) -> Vec<PathBuf> {
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

/// The file `PATHKERNEL_FUZZ_SHOW` names and the target of its folder, or
/// None when it is unset; a value that is not such a file is refused, so
/// that a typo cannot pass for a replay.
fn shown() -> Option<(PathBuf, Target)> {
    let file = PathBuf::from(std::env::var_os(SHOW)?);
    let folder = file
        .parent()
        .and_then(Path::file_name)
        .and_then(|name| name.to_str());
    let target = TARGETS.iter().find(|(name, _)| Some(*name) == folder);
    match target {
        Some(&(_, run)) if file.is_file() => Some((file, run)),
        _ => panic!(
            "{SHOW}={} is not a file in a folder named for a target, one of {:?}",
            file.display(),
            TARGETS.map(|(name, _)| name)
        ),
    }
}

/// Replays every input of fuzz/<folder>/, or the one file of [`shown`].
fn replay(folder: &str) -> usize {
    if let Some((file, run)) = shown() {
        eprintln!("replaying {} alone ({SHOW})", file.display());
        run(&std::fs::read(&file).unwrap());
        return 1;
    }
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
