//! The descriptor parser on arbitrary text (tests/fuzzing/mod.rs: check_descriptor).
#![no_main]

#[path = "../../tests/fuzzing/mod.rs"]
mod fuzzing;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzzing::check_descriptor(&String::from_utf8_lossy(data));
});
