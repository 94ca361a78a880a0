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

use bootmatrix::boot::BootOutcome;
use bootmatrix::judge::BootEnd;
use bootmatrix::observe::Decision;
use bootmatrix::plan::RunSpec;
use rstest::rstest;
use tempfile::TempDir;

const PROBE_LINE: &str = r#"BOOTMATRIX-PROBE v=1 secureboot=1 setupmode=0 auditmode=- deployedmode=- vendor="EDK II" revision=0x00010000 uefi=2.70"#;
const CRASH_TEXT: &str =
    "qemu-system-x86_64: -drive if=none: Could not open 'x': No such file or directory";
/// What `boot` keeps of a flooding console (`MAX_LOG` in boot.rs), plus its truncation note.
const MAX_LOG: u64 = 16 * 1024 * 1024;
const LOG_SLACK: u64 = 4 * 1024;

/// A deadline the decisive cases must never come close to.
const GENEROUS: Duration = Duration::from_secs(30);
/// A deadline for the cases that run into it.
const SHORT: Duration = Duration::from_secs(3);

/// `bootmatrix::boot::boot`, but a boot that never returns fails the test instead of hanging it.
fn boot(spec: &RunSpec) -> BootOutcome {
    let limit = spec.deadline + Duration::from_secs(15);
    let (tx, rx) = std::sync::mpsc::channel();
    let spec = spec.clone();
    std::thread::spawn(move || {
        let _ = tx.send(bootmatrix::boot::boot(&spec));
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|e| panic!("boot did not return within {limit:?} ({e})"))
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
        argv.extend(bootmatrix::plan::console_args(debug_log.as_deref()));
        RunSpec {
            check: bootmatrix::scenario::Check::SecureBoot,
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

fn broken(outcome: &BootOutcome) -> &str {
    match &outcome.end {
        BootEnd::Broken(why) => why,
        other => panic!("expected a broken boot, got {other:?}"),
    }
}

fn decided(outcome: &BootOutcome) -> &Decision {
    match &outcome.end {
        BootEnd::Decided(d) => d,
        other => panic!("expected a decision, got {other:?}"),
    }
}

/// Decided on the line, while the fake still ran: long before the deadline, and killed promptly.
fn assert_decided_early(outcome: &BootOutcome, within: Duration) {
    let after = outcome.decided_after.expect("decided_after is set");
    assert!(
        after < within,
        "decided after {after:?}, expected < {within:?}"
    );
    assert!(
        outcome.elapsed >= after && outcome.elapsed < after + Duration::from_secs(2),
        "decided after {after:?} but reaped after {:?}",
        outcome.elapsed
    );
}

#[test]
fn hang_runs_into_the_deadline_and_the_group_is_killed() {
    let fake = Fake::new();
    let outcome = fake.boot("hang", SHORT);
    let why = broken(&outcome);
    assert!(why.contains("no decisive console line within 3 s"), "{why}");
    assert!(
        why.contains(r#"UEFI Misc Device"#),
        "last line missing: {why}"
    );
    assert_eq!(outcome.decided_after, None);
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
    let outcome = fake.boot("shim-box", SHORT);
    let why = broken(&outcome);
    assert!(why.contains("Verification failed: (0x1A)"), "{why}");
    let log = fake.read("serial.log");
    assert!(log.contains("Failed to open  - Not Found\n"), "{log}");
    assert!(
        log.contains("Verification failed: (0x1A) Security Violation"),
        "{log}"
    );
    fake.assert_no_survivors();
}

#[test]
fn kernel_cell_decides_on_shims_box_without_a_newline() {
    let fake = Fake::new();
    let mut spec = fake.spec("shim-box", GENEROUS, false);
    spec.check = bootmatrix::scenario::Check::KernelBoot;
    let outcome = boot(&spec);
    match &outcome.end {
        BootEnd::Decided(Decision::KernelRefused { line }) => {
            assert!(line.contains("Verification failed"), "{line}")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        outcome.elapsed < Duration::from_secs(10),
        "{:?}",
        outcome.elapsed
    );
    fake.assert_no_survivors();
}

#[rstest]
#[case::crash("crash", "exited (exit status: 1)", CRASH_TEXT)]
#[case::exit_clean("exit-clean", "exited (exit status: 0)", "(stderr empty)")]
fn early_exit_is_broken_at_once(
    #[case] mode: &str,
    #[case] status: &str,
    #[case] stderr_text: &str,
) {
    let fake = Fake::new();
    let outcome = fake.boot(mode, GENEROUS);
    let why = broken(&outcome);
    assert!(
        why.contains(&format!("QEMU {status} before any decisive console line")),
        "{why}"
    );
    assert!(why.contains(stderr_text), "{why}");
    assert_eq!(outcome.decided_after, None);
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
    broken(&fake.boot("crash", GENEROUS));
    assert_eq!(fake.read("stderr.log").trim_end(), CRASH_TEXT);
    assert_eq!(fake.read("serial.log"), "");
    fake.assert_no_survivors();
}

#[test]
fn exit_clean_keeps_the_serial_lines() {
    let fake = Fake::new();
    let outcome = fake.boot("exit-clean", GENEROUS);
    broken(&outcome);
    assert_eq!(outcome.serial_lines, 2);
    assert_eq!(
        fake.read("serial.log"),
        "BdsDxe: loading Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)/Pci(0x1,0x0)\nShutting down\n"
    );
    fake.assert_no_survivors();
}

#[test]
fn probe_line_decides_while_qemu_still_runs() {
    let fake = Fake::new();
    let outcome = fake.boot("probe", GENEROUS);
    let Decision::ProbeRan { report } = decided(&outcome) else {
        panic!("expected the probe to run: {outcome:?}");
    };
    assert_eq!(report.secure_boot, Some(1));
    assert_eq!(report.setup_mode, Some(0));
    assert_eq!(report.audit_mode, None);
    assert_eq!(report.firmware_vendor, "EDK II");
    assert_eq!(report.uefi_revision, "2.70");
    assert_decided_early(&outcome, Duration::from_secs(5));
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
    let outcome = boot(&powering_off(fake.spec("probe", GENEROUS, false)));
    assert!(
        matches!(decided(&outcome), Decision::ProbeRan { .. }),
        "{outcome:?}"
    );
    fake.assert_no_survivors();
}

#[test]
fn refusal_decides_while_qemu_still_runs() {
    let fake = Fake::new();
    let outcome = fake.boot("refuse", GENEROUS);
    let Decision::ProbeRefused { boot_option, line } = decided(&outcome) else {
        panic!("expected the probe to be refused: {outcome:?}");
    };
    assert_eq!(boot_option, r#"Boot0001 "UEFI Misc Device""#);
    assert!(line.ends_with(": Access Denied"), "{line}");
    assert_decided_early(&outcome, Duration::from_secs(5));
    fake.assert_no_survivors();
}

#[test]
fn flood_still_decides_and_the_log_stays_bounded() {
    let fake = Fake::new();
    let outcome = fake.boot("flood", GENEROUS);
    assert!(
        matches!(decided(&outcome), Decision::ProbeRan { .. }),
        "{outcome:?}"
    );
    assert_decided_early(&outcome, Duration::from_secs(20));
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
fn debug_console_line_decides() {
    let fake = Fake::new();
    let outcome = boot(&fake.spec("debugcon", GENEROUS, true));
    let Decision::ProbeRan { report } = decided(&outcome) else {
        panic!("expected the probe to run: {outcome:?}");
    };
    assert_eq!(report.secure_boot, Some(1));
    assert_decided_early(&outcome, Duration::from_secs(5));
    fake.assert_no_survivors();
    // The line came from the debug console, not from the serial one.
    assert!(!fake.read("serial.log").contains("BOOTMATRIX-PROBE"));
    assert!(fake.read("debug.log").contains(PROBE_LINE));
}

#[test]
fn debug_console_line_just_before_power_off_decides() {
    // The debug console is polled every 50 ms, but the exit is seen at once: without a final
    // read of the debug log the line is lost most of the time. Ten boots make the race certain.
    for round in 0..10 {
        let fake = Fake::new();
        let outcome = boot(&powering_off(fake.spec("debugcon", GENEROUS, true)));
        assert!(
            matches!(outcome.end, BootEnd::Decided(Decision::ProbeRan { .. })),
            "round {round}: {outcome:?}"
        );
        fake.assert_no_survivors();
    }
}

#[test]
fn debug_console_is_ignored_without_debug_log() {
    // The same guest, but the spec names no debug console: nothing decides until the deadline.
    let fake = Fake::new();
    let mut spec = fake.spec("debugcon", SHORT, true);
    spec.debug_log = None;
    let outcome = boot(&spec);
    let why = broken(&outcome);
    assert!(why.contains("no decisive console line"), "{why}");
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
    let why = broken(&outcome);
    assert!(
        why.starts_with("cannot start /nonexistent/qemu-system-x86_64: "),
        "{why}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(outcome.decided_after, None);
}

#[test]
fn empty_argv_is_broken_not_a_panic() {
    let fake = Fake::new();
    let mut spec = fake.spec("probe", GENEROUS, false);
    spec.argv.clear();
    let why = broken(&boot(&spec)).to_string();
    assert!(why.contains("empty argv"), "{why}");
}

#[test]
fn stale_debug_log_does_not_decide() {
    // A re-run into the same folder: the last boot's debug.log still holds a probe line. The
    // guest now hangs without writing the debug console, so the deadline must decide.
    let fake = Fake::new();
    let spec = fake.spec("hang", SHORT, true);
    fs::write(fake.path("debug.log"), format!("{PROBE_LINE}\n")).unwrap();
    let outcome = boot(&spec);
    let why = broken(&outcome);
    assert!(why.contains("no decisive console line"), "{why}");
    fake.assert_no_survivors();
}
