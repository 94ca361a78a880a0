//! The runner (`bootmatrix::boot::boot`) against a fake QEMU (`tests/fixtures/fake-qemu`):
//! crashes, hangs, floods and decisive lines, and that no process of a guest outlives its boot.
//!
//! No real QEMU is used. The fake's behaviour is chosen by `FAKE_QEMU_MODE`; tests run as threads
//! of one process, so the variables are not set with `std::env::set_var` but passed through
//! `env(1)`, which execs the fake in the same process (the process group logic is unchanged).

mod common;

use common::{assert_all_gone, fake_qemu, kill_recorded, read_pids};
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bootmatrix::boot::{BootEnd, BootOutcome, Console, Control, Watch};
use bootmatrix::matrix::{Check, Outcome};
use bootmatrix::observe::conclude::end_reason;
use bootmatrix::observe::evidence::{Observation, Reading, Undecided};
use bootmatrix::observe::Watcher;
use bootmatrix::plan::{RunSpec, Targets};
use rstest::rstest;
use tempfile::TempDir;

const PROBE_LINE: &str = r#"BOOTMATRIX-PROBE v=2 secureboot=1 setupmode=0 auditmode=absent deployedmode=- vendor="EDK II" revision=0x00010000 uefi=2.70"#;
const CRASH_TEXT: &str =
    "qemu-system-x86_64: -drive if=none: Could not open 'x': No such file or directory";
/// What `boot` keeps of a flooding console (`MAX_LOG` in boot/console.rs), plus its truncation note.
const MAX_LOG: u64 = 16 * 1024 * 1024;
const LOG_SLACK: u64 = 4 * 1024;

/// A deadline the decisive cases must never come close to.
const GENEROUS: Duration = Duration::from_secs(30);
/// A deadline for the cases that run into it.
const SHORT: Duration = Duration::from_secs(3);

/// A watcher that records every line it is shown and stops the guest on the first line of
/// `stop_on` (console and text it contains), so the runner is tested apart from observe.
#[derive(Debug, Clone, Default)]
struct Recorder {
    stop_on: Option<(Console, &'static str)>,
    lines: Vec<(Console, Duration, String)>,
    partials: Vec<String>,
}

impl Recorder {
    fn stopping_on(console: Console, text: &'static str) -> Recorder {
        Recorder {
            stop_on: Some((console, text)),
            ..Recorder::default()
        }
    }
}

impl Watch for Recorder {
    fn line(&mut self, console: Console, at: Duration, text: &str) -> Control {
        self.lines.push((console, at, text.to_string()));
        match self.stop_on {
            Some((c, t)) if c == console && text.contains(t) => Control::Stop,
            _ => Control::Continue,
        }
    }

    fn partial(&mut self, console: Console, _at: Duration, text: &str) -> Control {
        self.partials.push(text.to_string());
        match self.stop_on {
            Some((c, t)) if c == console && text.contains(t) => Control::Stop,
            _ => Control::Continue,
        }
    }

    fn tick(&mut self, _at: Duration) -> Control {
        Control::Continue
    }
}

/// `bootmatrix::boot::boot` with `watcher`, but a boot that never returns fails the test
/// instead of hanging it.
fn boot_with<W: Watch + Send + 'static>(spec: &RunSpec, mut watcher: W) -> (BootOutcome, W) {
    let limit = spec.deadline + spec.grace + Duration::from_secs(15);
    let (tx, rx) = std::sync::mpsc::channel();
    let spec = spec.clone();
    std::thread::spawn(move || {
        let outcome = bootmatrix::boot::boot(&spec, &mut watcher);
        let _ = tx.send((outcome, watcher));
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|e| panic!("boot did not return within {limit:?} ({e})"))
}

/// Boots with a recorder that never stops the guest.
fn boot(spec: &RunSpec) -> BootOutcome {
    boot_with(spec, Recorder::default()).0
}

/// Boots with the watcher a planned cell gets, and concludes.
fn observe(spec: &RunSpec) -> (BootOutcome, Result<Observation, Undecided>) {
    let (outcome, watcher) = boot_with(spec, Watcher::for_spec(spec));
    let concluded = watcher.finish(&outcome.end);
    (outcome, concluded)
}

/// One boot of the fake in its own folder.
struct Fake {
    dir: TempDir,
    pids_file: PathBuf,
}

impl Fake {
    fn new() -> Fake {
        let dir = tempfile::tempdir().expect("temp dir");
        let pids_file = dir.path().join("pids");
        Fake { dir, pids_file }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The spec `plan` would make, with the fake as QEMU in `mode`.
    fn spec(&self, mode: &str, deadline: Duration, debug_log: bool) -> RunSpec {
        let mut argv = vec![
            "/usr/bin/env".to_string(),
            format!("FAKE_QEMU_MODE={mode}"),
            format!("FAKE_QEMU_PIDS={}", self.pids_file.display()),
            fake_qemu().display().to_string(),
            "-nodefaults".into(),
            "-display".into(),
            "none".into(),
            "-machine".into(),
            "pc-q35-9.9,accel=tcg".into(),
        ];
        // The consoles exactly as `plan` attaches them.
        let debug_log = debug_log.then(|| self.path("debug.log"));
        argv.extend(bootmatrix::plan::argv::console_args(debug_log.as_deref()));
        RunSpec {
            check: Check::SecureBoot,
            // Where the fake's boot manager lines put the probe's disk.
            targets: Targets {
                boot_device: Some("PciRoot(0x0)/Pci(0x5,0x0)".into()),
                rom_device: None,
            },
            grace: Duration::from_secs(1),
            argv,
            dir: self.dir.path().to_path_buf(),
            copies: vec![],
            debug_log,
            deadline,
            needs: vec![],
        }
    }

    fn boot(&self, mode: &str, deadline: Duration) -> BootOutcome {
        boot(&self.spec(mode, deadline, false))
    }

    /// The fake's own pid and its background child's, as it recorded them.
    fn pids(&self) -> Vec<i32> {
        read_pids(&self.pids_file)
    }

    fn read(&self, name: &str) -> String {
        let bytes = fs::read(self.path(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Every process of the guest is gone (zombies count as gone).
    fn assert_no_survivors(&self) {
        let pids = self.pids();
        assert_eq!(
            pids.len(),
            2,
            "the fake should have recorded itself and its child: {pids:?}"
        );
        assert_all_gone(&pids);
    }
}

/// The same guest, but it powers off (exits 0) right after its output, as the real probe does.
fn powering_off(mut spec: RunSpec) -> RunSpec {
    spec.argv.insert(1, "FAKE_QEMU_AFTER=exit".into());
    spec
}

impl Drop for Fake {
    /// Cleans up after a failed test only: a passing one has proven that nothing is left.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        kill_recorded(&self.pids_file);
    }
}

/// The end of a boot the watcher did not stop, in words.
fn not_stopped(outcome: &BootOutcome) -> String {
    assert_ne!(outcome.end, BootEnd::Stopped, "{outcome:?}");
    assert_eq!(outcome.stopped_after, None);
    end_reason(&outcome.end)
}

/// Stopped by the watcher while the fake still ran: long before the deadline, and killed
/// promptly.
fn assert_stopped_early(outcome: &BootOutcome, within: Duration) {
    assert_eq!(outcome.end, BootEnd::Stopped, "{outcome:?}");
    let after = outcome.stopped_after.expect("stopped_after is set");
    assert!(
        after < within,
        "stopped after {after:?}, expected < {within:?}"
    );
    assert!(
        outcome.elapsed >= after && outcome.elapsed < after + Duration::from_secs(2),
        "stopped after {after:?} but reaped after {:?}",
        outcome.elapsed
    );
}

fn decided(concluded: Result<Observation, Undecided>) -> Observation {
    concluded.unwrap_or_else(|u| panic!("undecided: {u:?}"))
}

#[test]
fn hang_runs_into_the_deadline_and_the_group_is_killed() {
    let fake = Fake::new();
    let outcome = fake.boot("hang", SHORT);
    let why = not_stopped(&outcome);
    assert!(why.contains("no decisive console line within 3 s"), "{why}");
    assert!(
        why.contains(r#"UEFI Misc Device"#),
        "last line missing: {why}"
    );
    assert!(
        outcome.elapsed >= SHORT && outcome.elapsed < SHORT + Duration::from_secs(3),
        "elapsed {:?} for a {SHORT:?} deadline",
        outcome.elapsed
    );
    assert_eq!(outcome.serial_lines, 2);
    fake.assert_no_survivors();
}

#[test]
fn unfinished_last_line_is_kept_in_the_log() {
    // A probe cell does not decide on shim's box: it runs into its deadline, and what the guest
    // left on screen without a newline is still in serial.log and in the reason.
    let fake = Fake::new();
    let (outcome, concluded) = observe(&fake.spec("shim-box", SHORT, false));
    let why = not_stopped(&outcome);
    assert!(why.contains("Verification failed: (0x1A)"), "{why}");
    assert!(concluded.is_err(), "{concluded:?}");
    let log = fake.read("serial.log");
    assert!(log.contains("Failed to open  - Not Found\n"), "{log}");
    assert!(
        log.contains("Verification failed: (0x1A) Security Violation"),
        "{log}"
    );
    fake.assert_no_survivors();
}

#[test]
fn watchers_see_the_unfinished_line() {
    let fake = Fake::new();
    let spec = fake.spec("shim-box", GENEROUS, false);
    let (outcome, recorder) = boot_with(
        &spec,
        Recorder::stopping_on(
            Console::Serial,
            "Verification failed: (0x1A) Security Violation",
        ),
    );
    assert_stopped_early(&outcome, Duration::from_secs(10));
    assert!(recorder
        .partials
        .iter()
        .any(|p| p.contains("Verification failed")));
    fake.assert_no_survivors();
}

#[test]
fn kernel_cell_takes_shims_box_as_a_refusal_after_the_grace_window() {
    let fake = Fake::new();
    let mut spec = fake.spec("shim-box", GENEROUS, false);
    spec.check = Check::KernelBoot;
    spec.targets = Targets::default();
    let (outcome, concluded) = observe(&spec);
    let o = decided(concluded);
    assert_eq!(o.outcome, Outcome::Refused, "{o:?}");
    assert!(o.description.contains("shim: Verification failed"), "{o:?}");
    assert!(o.notes.iter().any(|n| n.contains("grace window")), "{o:?}");
    // Stopped once the one-second window had passed, not at the deadline.
    let after = outcome.stopped_after.expect("stopped");
    let refused_at = o.evidence.lines()[0].at;
    assert!(
        after >= refused_at + spec.grace
            && after < refused_at + spec.grace + Duration::from_secs(2),
        "refused at {refused_at:?}, stopped at {after:?}"
    );
    fake.assert_no_survivors();
}

#[rstest]
#[case::crash("crash", "exited (exit status: 1)", CRASH_TEXT)]
#[case::exit_clean("exit-clean", "exited (exit status: 0)", "(stderr empty)")]
fn early_exit_is_reported_at_once(
    #[case] mode: &str,
    #[case] status: &str,
    #[case] stderr_text: &str,
) {
    let fake = Fake::new();
    let (outcome, concluded) = observe(&fake.spec(mode, GENEROUS, false));
    let why = not_stopped(&outcome);
    assert!(
        why.contains(&format!("QEMU {status} before any decisive console line")),
        "{why}"
    );
    assert!(why.contains(stderr_text), "{why}");
    assert_eq!(concluded.unwrap_err().reason, why);
    assert!(
        outcome.elapsed < Duration::from_secs(5),
        "took {:?} to notice QEMU's exit",
        outcome.elapsed
    );
    fake.assert_no_survivors();
}

#[test]
fn crash_keeps_stderr_in_its_log() {
    let fake = Fake::new();
    not_stopped(&fake.boot("crash", GENEROUS));
    assert_eq!(fake.read("stderr.log").trim_end(), CRASH_TEXT);
    assert_eq!(fake.read("serial.log"), "");
    fake.assert_no_survivors();
}

#[test]
fn exit_clean_keeps_the_serial_lines() {
    let fake = Fake::new();
    let outcome = fake.boot("exit-clean", GENEROUS);
    not_stopped(&outcome);
    assert_eq!(outcome.serial_lines, 2);
    assert_eq!(
        fake.read("serial.log"),
        "BdsDxe: loading Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)/Pci(0x5,0x0)\nShutting down\n"
    );
    fake.assert_no_survivors();
}

#[test]
fn probe_line_decides_while_qemu_still_runs() {
    let fake = Fake::new();
    let (outcome, concluded) = observe(&fake.spec("probe", GENEROUS, false));
    let o = decided(concluded);
    assert_eq!(o.outcome, Outcome::Runs);
    let report = o.probe.as_ref().unwrap();
    assert_eq!(report.secure_boot, Reading::Value(1));
    assert_eq!(report.setup_mode, Reading::Value(0));
    assert_eq!(report.audit_mode, Reading::Absent);
    assert!(matches!(report.deployed_mode, Reading::Unknown(_)));
    assert_eq!(report.firmware_vendor, "EDK II");
    assert_eq!(report.uefi_revision, "2.70");
    assert_stopped_early(&outcome, Duration::from_secs(5));
    // The evidence is the clean line, timed from QEMU start.
    let e = &o.evidence.lines()[0];
    assert_eq!(e.line, PROBE_LINE);
    assert_eq!(e.stream, Console::Serial);
    assert!(e.at > Duration::ZERO && e.at <= outcome.stopped_after.unwrap());
    fake.assert_no_survivors();

    let log = fake.read("serial.log");
    assert!(
        !log.contains('\x1b') && !log.contains('\r'),
        "escape codes or CRs in serial.log: {log:?}"
    );
    assert!(
        log.lines().any(|l| l == PROBE_LINE),
        "no clean probe line in serial.log: {log:?}"
    );
}

#[test]
fn probe_line_just_before_power_off_decides() {
    // The real probe prints its line and shuts the VM down at once: the line, not the exit,
    // must decide.
    let fake = Fake::new();
    let (_, concluded) = observe(&powering_off(fake.spec("probe", GENEROUS, false)));
    assert_eq!(decided(concluded).outcome, Outcome::Runs);
    fake.assert_no_survivors();
}

#[test]
fn refusal_decides_once_the_boot_manager_gives_up() {
    let fake = Fake::new();
    let (outcome, concluded) = observe(&fake.spec("refuse", GENEROUS, false));
    let o = decided(concluded);
    assert_eq!(o.outcome, Outcome::Refused, "{o:?}");
    let lines: Vec<&str> = o.evidence.lines().iter().map(|e| e.line.as_str()).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].ends_with(": Access Denied"), "{lines:?}");
    assert!(
        lines[1].starts_with("BdsDxe: No bootable option"),
        "{lines:?}"
    );
    assert_stopped_early(&outcome, Duration::from_secs(5));
    fake.assert_no_survivors();
}

#[test]
fn refusal_without_the_end_of_attempts_waits_for_the_grace_window() {
    let fake = Fake::new();
    let spec = fake.spec("refuse-silent", GENEROUS, false);
    let (outcome, concluded) = observe(&spec);
    let o = decided(concluded);
    assert_eq!(o.outcome, Outcome::Refused, "{o:?}");
    assert_eq!(o.evidence.lines().len(), 1);
    let after = outcome.stopped_after.expect("stopped");
    assert!(
        after >= spec.grace,
        "stopped at {after:?}, before the grace window"
    );
    assert_stopped_early(&outcome, Duration::from_secs(5));
    fake.assert_no_survivors();
}

#[test]
fn refusal_of_another_option_then_the_probe_is_a_run() {
    let fake = Fake::new();
    let (_, concluded) = observe(&fake.spec("refuse-other-then-run", GENEROUS, false));
    let o = decided(concluded);
    assert_eq!(o.outcome, Outcome::Runs, "{o:?}");
    assert_eq!(o.contradiction, None);
    fake.assert_no_survivors();
}

#[test]
fn flood_still_decides_and_the_log_stays_bounded() {
    let fake = Fake::new();
    let (outcome, concluded) = observe(&fake.spec("flood", GENEROUS, false));
    assert_eq!(decided(concluded).outcome, Outcome::Runs);
    assert_stopped_early(&outcome, Duration::from_secs(20));
    fake.assert_no_survivors();
    // 40 MiB of ~100-byte lines, the 1 MiB line cut into 64 KiB pieces, the probe line.
    assert!(
        outcome.serial_lines > 400_000,
        "only {} lines",
        outcome.serial_lines
    );
    let size = fs::metadata(fake.path("serial.log")).unwrap().len();
    assert!(
        size <= MAX_LOG + LOG_SLACK,
        "serial.log grew to {size} bytes"
    );
    assert!(
        size >= MAX_LOG - LOG_SLACK,
        "serial.log kept only {size} bytes"
    );
    let log = fs::read(fake.path("serial.log")).unwrap();
    let tail = String::from_utf8_lossy(&log[log.len() - 200..]);
    assert!(
        tail.ends_with("[bootmatrix: log truncated at 16 MiB]\n"),
        "{tail:?}"
    );
}

#[test]
fn debug_console_lines_reach_the_watcher_but_decide_no_cell() {
    let fake = Fake::new();
    let spec = fake.spec("debugcon", GENEROUS, true);
    let (outcome, recorder) = boot_with(&spec, Recorder::stopping_on(Console::Debug, PROBE_LINE));
    assert_stopped_early(&outcome, Duration::from_secs(5));
    assert!(recorder
        .lines
        .iter()
        .any(|(c, _, l)| *c == Console::Debug && l == PROBE_LINE));
    fake.assert_no_survivors();
    // The line came from the debug console, not from the serial one.
    assert!(!fake.read("serial.log").contains("BOOTMATRIX-PROBE"));
    assert!(fake.read("debug.log").contains(PROBE_LINE));
    // A probe line on the debug console is not the probe's: the cell stays undecided.
    let fake = Fake::new();
    let (_, concluded) = observe(&fake.spec("debugcon", SHORT, true));
    assert!(concluded.is_err(), "{concluded:?}");
    fake.assert_no_survivors();
}

/// A firmware whose debug console shows it running, that never reaches its boot manager and
/// prints nothing on the serial console: `no-boot`, with its last lines, at the deadline or
/// when it resets (QEMU under -no-reboot exits 0). Without a debug console nothing shows the
/// firmware ran: an error.
#[test]
fn firmware_that_never_reaches_its_boot_manager_is_no_boot() {
    let fake = Fake::new();
    let (outcome, concluded) = observe(&fake.spec("no-boot", SHORT, true));
    assert!(
        matches!(outcome.end, BootEnd::Deadline { .. }),
        "{outcome:?}"
    );
    let o = decided(concluded);
    assert_eq!(o.outcome, Outcome::NoBoot);
    let lines: Vec<&str> = o.evidence.lines().iter().map(|e| e.line.as_str()).collect();
    assert_eq!(
        lines,
        [
            "SecCoreStartupWithStack(0xFFFCC000, 0x820000)",
            "Platform PEIM Loaded",
            "DXE IPL Entry",
            "Loading driver at 0x0007EB4A000 EntryPoint=0x0007EB4B0A9 BdsDxe.efi"
        ]
    );
    assert!(o
        .evidence
        .lines()
        .iter()
        .all(|e| e.stream == Console::Debug));
    assert!(o.description.contains("within 3 s"), "{}", o.description);
    fake.assert_no_survivors();

    let fake = Fake::new();
    let (outcome, concluded) = observe(&powering_off(fake.spec("no-boot", GENEROUS, true)));
    assert!(matches!(outcome.end, BootEnd::Exited { .. }), "{outcome:?}");
    let o = decided(concluded);
    assert_eq!(o.outcome, Outcome::NoBoot);
    assert!(
        o.description.contains("the guest reset"),
        "{}",
        o.description
    );
    fake.assert_no_survivors();

    let fake = Fake::new();
    let (_, concluded) = observe(&fake.spec("no-boot", SHORT, false));
    let u = concluded.expect_err("no firmware output: an error");
    assert!(
        u.reason.contains("no decisive console line"),
        "{}",
        u.reason
    );
    fake.assert_no_survivors();
}

#[test]
fn debug_console_line_just_before_power_off_is_read() {
    // The debug console is polled every 50 ms, but the exit is seen at once: without a final
    // read of the debug log the line is lost most of the time. Ten boots make the race certain.
    for round in 0..10 {
        let fake = Fake::new();
        let spec = powering_off(fake.spec("debugcon", GENEROUS, true));
        let (outcome, _) = boot_with(&spec, Recorder::stopping_on(Console::Debug, PROBE_LINE));
        assert_eq!(outcome.end, BootEnd::Stopped, "round {round}: {outcome:?}");
        fake.assert_no_survivors();
    }
}

#[test]
fn debug_console_is_ignored_without_debug_log() {
    // The same guest, but the spec names no debug console: nothing comes from it.
    let fake = Fake::new();
    let mut spec = fake.spec("debugcon", SHORT, true);
    spec.debug_log = None;
    let (outcome, recorder) = boot_with(&spec, Recorder::stopping_on(Console::Debug, PROBE_LINE));
    let why = not_stopped(&outcome);
    assert!(why.contains("no decisive console line"), "{why}");
    assert!(recorder.lines.iter().all(|(c, _, _)| *c == Console::Serial));
    fake.assert_no_survivors();
}

#[test]
fn missing_qemu_binary_cannot_start() {
    let fake = Fake::new();
    let mut spec = fake.spec("probe", GENEROUS, false);
    spec.argv = vec![
        "/nonexistent/qemu-system-x86_64".into(),
        "-nodefaults".into(),
    ];
    let started = Instant::now();
    let outcome = boot(&spec);
    let why = not_stopped(&outcome);
    assert!(
        why.starts_with("cannot start /nonexistent/qemu-system-x86_64: "),
        "{why}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn empty_argv_is_a_failed_boot_not_a_panic() {
    let fake = Fake::new();
    let mut spec = fake.spec("probe", GENEROUS, false);
    spec.argv.clear();
    let why = not_stopped(&boot(&spec));
    assert!(why.contains("empty argv"), "{why}");
}

#[test]
fn stale_debug_log_is_not_read() {
    // A re-run into the same folder: the last boot's debug.log still holds a line. The guest now
    // hangs without writing the debug console, so the old line must never reach the watcher.
    let fake = Fake::new();
    let spec = fake.spec("hang", SHORT, true);
    fs::write(fake.path("debug.log"), format!("{PROBE_LINE}\n")).unwrap();
    let (outcome, recorder) = boot_with(&spec, Recorder::stopping_on(Console::Debug, PROBE_LINE));
    let why = not_stopped(&outcome);
    assert!(why.contains("no decisive console line"), "{why}");
    assert!(recorder.lines.iter().all(|(c, _, _)| *c == Console::Serial));
    fake.assert_no_survivors();
}
