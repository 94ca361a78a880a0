//! The fuzz targets' invariants, shared by the proptest harness (`tests/fuzz.rs`, run by
//! `./ci/fuzz` on stable) and the libFuzzer targets (`fuzz/`, `cargo +nightly fuzz`).
//!
//! Each `check_*` takes one input, panics when an invariant breaks, and returns a short word
//! for what happened (for counting). Inputs are plain text so that the seed corpus in
//! `tests/data/fuzz-seeds/` serves both harnesses:
//!
//! - descriptor: a descriptor file's text;
//! - console: a transcript, one step a line: `serial MS TEXT`, `debug MS TEXT`,
//!   `qemu-log MS TEXT` (a line of QEMU's stderr: only its guest-error lines count),
//!   `partial MS TEXT` or `tick MS`; any other line is a serial line 1 ms after the last step;
//! - scenario: a first line naming the scenario file it replaces (`secure-boot.json`, or a new
//!   name), then that file's text; the other files are the repository's `scenarios/`.
#![allow(dead_code)] // each harness uses its own subset

use std::path::{Path, PathBuf};
use std::time::Duration;

use bootmatrix::boot::guest_errors::{is_guest_error, GuestErrors};
use bootmatrix::boot::{BootEnd, Console, Control, Watch};
use bootmatrix::discover::descriptor;
use bootmatrix::matrix::Check;
use bootmatrix::observe::evidence::{Evidence, Observation, Undecided};
use bootmatrix::observe::Watcher;
use bootmatrix::plan::Targets;
use bootmatrix::scenario::Scenarios;

/// The name a fuzzed descriptor is parsed under.
pub const DESCRIPTOR_PATH: &str = "/fuzz/firmware/60-fuzzed.json";

/// Parses `text` twice: no panic, the same answer both times, and an error names the file.
pub fn check_descriptor(text: &str) -> &'static str {
    let path = Path::new(DESCRIPTOR_PATH);
    let first = descriptor::parse(path, text);
    let second = descriptor::parse(path, text);
    assert_eq!(first, second, "parsing the same text twice differed");
    match first {
        Ok(d) => {
            assert_eq!(d.path, path);
            assert_eq!(d.name, "60-fuzzed.json");
            "ok"
        }
        Err(e) => {
            assert_eq!(e.path, path, "the error names another file: {e}");
            let shown = e.to_string();
            assert!(
                shown.starts_with(DESCRIPTOR_PATH),
                "the error does not start with the file: {shown}"
            );
            "error"
        }
    }
}

/// One thing the runner hands a watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Line(Console, u64, String),
    Partial(u64, String),
    Tick(u64),
}

/// Reads a transcript (see the module's documentation). Never fails: any text is steps.
pub fn parse_transcript(text: &str) -> Vec<Step> {
    let mut last = 0u64;
    let mut steps = Vec::new();
    for raw in text.split('\n') {
        let (word, rest) = raw.split_once(' ').unwrap_or((raw, ""));
        let (ms, text) = rest.split_once(' ').unwrap_or((rest, ""));
        let at = ms.parse::<u64>().ok();
        let step = match (word, at) {
            ("serial", Some(at)) => Step::Line(Console::Serial, at, text.to_string()),
            ("debug", Some(at)) => Step::Line(Console::Debug, at, text.to_string()),
            ("qemu-log", Some(at)) => Step::Line(Console::QemuLog, at, text.to_string()),
            ("varstore", Some(at)) => Step::Line(Console::Varstore, at, text.to_string()),
            ("partial", Some(at)) => Step::Partial(at, text.to_string()),
            ("tick", Some(at)) => Step::Tick(at),
            _ => Step::Line(Console::Serial, last.saturating_add(1), raw.to_string()),
        };
        last = match &step {
            Step::Line(_, at, _) | Step::Partial(at, _) | Step::Tick(at) => *at,
        };
        steps.push(step);
    }
    steps
}

/// Writes steps back as a transcript ([`parse_transcript`] reads it back unchanged when no
/// text holds a newline).
pub fn transcript(steps: &[Step]) -> String {
    let lines: Vec<String> = steps
        .iter()
        .map(|s| match s {
            Step::Line(Console::Serial, at, t) => format!("serial {at} {t}"),
            Step::Line(Console::Debug, at, t) => format!("debug {at} {t}"),
            Step::Line(Console::QemuLog, at, t) => format!("qemu-log {at} {t}"),
            Step::Line(Console::Varstore, at, t) => format!("varstore {at} {t}"),
            Step::Line(Console::Runner, at, t) => format!("runner {at} {t}"),
            Step::Partial(at, t) => format!("partial {at} {t}"),
            Step::Tick(at) => format!("tick {at}"),
        })
        .collect();
    lines.join("\n")
}

/// The targets the planner gives a cell of `check`: the ESP at slot 5, the ROM's NIC at 6.
pub fn targets(check: Check) -> Targets {
    match check {
        // as-bios: its probe variant.
        Check::SecureBoot | Check::DistroChain | Check::AsBios => Targets {
            boot_device: Some("PciRoot(0x0)/Pci(0x5,0x0)".into()),
            rom_device: None,
        },
        Check::OptionRom => Targets {
            boot_device: Some("PciRoot(0x0)/Pci(0x5,0x0)".into()),
            rom_device: Some("0000:00:06.0".into()),
        },
        Check::KernelBoot | Check::NoShell | Check::KeyHealth => Targets::default(),
    }
}

/// The ways a boot can end, one picked per input.
pub fn ends() -> Vec<BootEnd> {
    vec![
        BootEnd::Deadline {
            after: Duration::from_secs(80),
            last_line: "last".into(),
        },
        BootEnd::Exited {
            status: "exit status: 0".into(),
            stderr: "(stderr empty)".into(),
        },
        BootEnd::Failed("could not start".into()),
    ]
}

pub type Conclusion = (Result<Observation, Undecided>, usize);

/// Feeds `steps` to a fresh watcher the way the runner does (nothing more is read once it says
/// stop), then concludes with `end` (or `Stopped`).
pub fn watch(check: Check, steps: &[Step], end: &BootEnd) -> Conclusion {
    let mut w = Watcher::new(check, targets(check), Duration::from_secs(8));
    let ms = Duration::from_millis;
    // QEMU's guest-error lines reach the watcher summarized, once the boot is over; the runner
    // keeps every other stderr line away from it.
    let mut logged = GuestErrors::default();
    for (i, step) in steps.iter().enumerate() {
        let control = match step {
            Step::Line(Console::QemuLog, at, text) => {
                if is_guest_error(text) {
                    logged.add(text, ms(*at));
                }
                Control::Continue
            }
            Step::Line(console, at, text) => w.line(*console, ms(*at), text),
            Step::Partial(at, text) => w.partial(Console::Serial, ms(*at), text),
            Step::Tick(at) => w.tick(ms(*at)),
        };
        if control == Control::Stop {
            w.guest_errors(&logged);
            return (w.finish(&BootEnd::Stopped), i + 1);
        }
    }
    w.guest_errors(&logged);
    (w.finish(end), steps.len())
}

/// Every evidence line must be one the watcher was handed (on that console, at that time),
/// among the steps it read; a split marker may be two of them joined.
fn assert_fed(evidence: &[Evidence], read: &[Step]) {
    for e in evidence {
        let at = u64::try_from(e.at.as_millis()).unwrap();
        let fed = read.iter().any(|s| match s {
            Step::Line(c, t, text) => *c == e.stream && *t == at && text.contains(&*e.line),
            Step::Partial(t, text) => {
                e.stream == Console::Serial && *t == at && text.contains(&*e.line)
            }
            Step::Tick(_) => false,
        });
        assert!(fed, "evidence line that was never fed: {e}");
    }
}

/// Drives a watcher of every check with `steps`, twice: no panic, the same conclusion both
/// times, and no decision without evidence lines that were really read.
pub fn check_console(steps: &[Step], end: &BootEnd) -> &'static str {
    let mut word = "undecided";
    for check in [Check::SecureBoot, Check::OptionRom, Check::KernelBoot] {
        let (first, read) = watch(check, steps, end);
        let again = watch(check, steps, end);
        assert_eq!(
            (&first, read),
            (&again.0, again.1),
            "{check}: the same lines gave another result"
        );
        match &first {
            Ok(o) => {
                assert!(
                    !o.evidence.lines().is_empty(),
                    "{check}: decided {} without evidence",
                    o.outcome
                );
                assert_fed(o.evidence.lines(), &steps[..read]);
                word = "decided";
            }
            Err(u) => {
                assert!(!u.reason.is_empty(), "{check}: undecided without a reason");
                assert_fed(&u.evidence, &steps[..read]);
            }
        }
    }
    word
}

/// The repository's scenario files, by name (read once).
pub fn builtin_scenario_files() -> &'static [(String, String)] {
    static FILES: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    FILES.get_or_init(read_scenario_files)
}

fn read_scenario_files() -> Vec<(String, String)> {
    // The harness's own folder, or its parent for the libFuzzer crate in fuzz/.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = [root.join("scenarios"), root.join("../scenarios")]
        .into_iter()
        .find(|d| d.is_dir())
        .expect("the repository's scenarios/ folder");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// Splits a scenario input into the file name it replaces and its text.
pub fn split_scenario_input(input: &str) -> (String, &str) {
    let (first, text) = input.split_once('\n').unwrap_or((input, ""));
    let name: String = first
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(40)
        .collect();
    let name = name.trim_start_matches('.').to_string();
    let name = if name.ends_with(".json") {
        name
    } else {
        format!("{name}.json")
    };
    (name, text)
}

/// Loads a scenarios folder holding the repository's files with `name` replaced by (or added
/// as) `text`, twice: no panic, the same answer both times, and an error names one of the
/// files or the folder.
pub fn check_scenario(name: &str, text: &[u8]) -> &'static str {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("scenarios");
    std::fs::create_dir(&dir).unwrap();
    for (file, content) in builtin_scenario_files() {
        std::fs::write(dir.join(file), content).unwrap();
    }
    std::fs::write(dir.join(name), text).unwrap();
    let first = Scenarios::load_dir(&dir);
    let second = Scenarios::load_dir(&dir);
    match (&first, &second) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "loading the same files twice differed");
            "ok"
        }
        (Err(a), Err(b)) => {
            assert_eq!(a.to_string(), b.to_string(), "two loads, two errors");
            let named: Vec<PathBuf> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .chain([dir.clone()])
                .collect();
            assert!(
                named.contains(&a.file),
                "the error names no scenario file: {a}"
            );
            assert!(
                a.to_string().starts_with(&*a.file.to_string_lossy()),
                "the error does not start with its file: {a}"
            );
            "error"
        }
        _ => panic!("two loads of the same files disagree: {first:?} / {second:?}"),
    }
}
