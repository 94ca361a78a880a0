//! The scenario loader on a folder of the repository's scenario files, one of them replaced by
//! (or joined by) arbitrary bytes (tests/fuzzing/mod.rs: split_scenario_input, check_scenario).
#![no_main]

#[path = "../../tests/fuzzing/mod.rs"]
mod fuzzing;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (name, _) = fuzzing::split_scenario_input(&String::from_utf8_lossy(&data[..split]));
    let text = data.get(split + 1..).unwrap_or_default();
    fuzzing::check_scenario(&name, text);
});
