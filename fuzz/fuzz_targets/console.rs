//! The console watcher of every check on an arbitrary transcript, with each way a boot can
//! end (tests/fuzzing/mod.rs: parse_transcript, check_console).
#![no_main]

#[path = "../../tests/fuzzing/mod.rs"]
mod fuzzing;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let steps = fuzzing::parse_transcript(&String::from_utf8_lossy(data));
    for end in fuzzing::ends() {
        fuzzing::check_console(&steps, &end);
    }
});
