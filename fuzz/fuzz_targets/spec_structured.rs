//! Fuzz target `spec_structured`: the property is stated on
//! `pathkernel::fuzzing::spec_structured`, which tests/fuzz_replay.rs also runs on the
//! committed corpus and regressions.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pathkernel::fuzzing::spec_structured(data));
