//! The `bootmatrix` binary end to end against the fake QEMU (`tests/fixtures/fake-qemu`):
//! SIGTERM and SIGINT stop the run and every guest process, a crashing QEMU is an error, a
//! misbehaving firmware is a fail, and `plan` shows the TCG fallback of a broken KVM.
//!
//! No real QEMU and no OVMF are used: the descriptor points at small files in a temp folder.

mod common;

use common::run::cell;
use common::{assert_all_gone, fake_firmware, fake_qemu, kill_recorded, read_pids};
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bootmatrix::boot::process_exists;
use bootmatrix::discover::host::Accel;
use bootmatrix::judge::VerdictKind;
use bootmatrix::matrix::Outcome;
use bootmatrix::report::record::Report;
use rstest::rstest;
use tempfile::TempDir;

const CRASH_TEXT: &str =
    "qemu-system-x86_64: -drive if=none: Could not open 'x': No such file or directory";
const DESCRIPTOR: &str = "60-fake-edk2-x86_64";
/// How long any single bootmatrix invocation may take here.
const RUN_LIMIT: Duration = Duration::from_secs(30);

fn cell_id(sev: &str, payload: &str) -> String {
    format!("{DESCRIPTOR}/qemu-9.9.0/{sev}/secure-boot/shipped-vars-{payload}")
}

/// A descriptor folder naming small fake firmware files, a run folder and a pids file.
struct Setup {
    tmp: TempDir,
}

impl Setup {
    fn new() -> Setup {
        let tmp = tempfile::tempdir().expect("temp dir");
        // Like tests/data/descriptors/60-edk2-x86_64.json: no Secure Boot, AMD SEV, debug console.
        fake_firmware(
            tmp.path(),
            DESCRIPTOR,
            &["pc-i440fx-*", "pc-q35-*"],
            &["acpi-s3", "amd-sev", "verbose-dynamic"],
        );
        Setup { tmp }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn pids_file(&self) -> PathBuf {
        self.path("pids")
    }

    /// `bootmatrix COMMAND` with only the fake QEMU, in `mode`; output goes to files.
    fn spawn(&self, command: &str, mode: &str, filter: &str) -> Running {
        self.spawn_with(command, mode, filter, &[])
    }

    /// [`Setup::spawn`] with more arguments.
    fn spawn_with(&self, command: &str, mode: &str, filter: &str, more: &[&str]) -> Running {
        let stdout = self.path(&format!("{command}.stdout"));
        let stderr = self.path(&format!("{command}.stderr"));
        let child = Command::new(env!("CARGO_BIN_EXE_bootmatrix"))
            .arg(command)
            .arg("--no-path-qemu")
            .arg("--qemu")
            .arg(fake_qemu())
            .arg("--descriptors")
            .arg(self.path("descriptors"))
            .arg("--out")
            .arg(self.path("run"))
            .args(["--filter", filter])
            .args(if command == "run" {
                &["--jobs", "1"][..]
            } else {
                &[]
            })
            .args(more)
            .env("FAKE_QEMU_MODE", mode)
            .env("FAKE_QEMU_PIDS", self.pids_file())
            .current_dir(self.tmp.path())
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).unwrap())
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("bootmatrix starts");
        Running {
            child,
            reaped: false,
            stdout,
            stderr,
            pids_file: self.pids_file(),
        }
    }

    /// Runs `bootmatrix COMMAND` to its end (bounded) and returns how it ended.
    fn run(&self, command: &str, mode: &str, filter: &str) -> Finished {
        let mut running = self.spawn(command, mode, filter);
        running.wait(RUN_LIMIT)
    }

    /// The run's report.json, read back as records.
    fn report(&self) -> Report {
        Report::read(&self.path("run/report.json")).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for Setup {
    /// Cleans up after a failed test only: a passing one has proven that nothing is left.
    fn drop(&mut self) {
        if std::thread::panicking() {
            kill_recorded(&self.pids_file());
        }
    }
}

/// A bootmatrix process; killed if a test fails before it ended.
struct Running {
    child: Child,
    reaped: bool,
    stdout: PathBuf,
    stderr: PathBuf,
    pids_file: PathBuf,
}

#[derive(Debug)]
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    /// Peak resident set size of bootmatrix (and of what it waited for), in KiB.
    max_rss_kib: i64,
}

impl Running {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn output(&self) -> (String, String) {
        (
            fs::read_to_string(&self.stdout).unwrap_or_default(),
            fs::read_to_string(&self.stderr).unwrap_or_default(),
        )
    }

    /// Reaps bootmatrix if it has exited (wait4, for its resource usage).
    fn try_reap(&mut self) -> Option<(ExitStatus, i64)> {
        assert!(!self.reaped);
        let mut status = 0;
        // SAFETY: plain syscall on our own child; both out-pointers are valid for writing.
        let (pid, usage) = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            let pid = libc::wait4(self.pid(), &mut status, libc::WNOHANG, &mut usage);
            (pid, usage)
        };
        assert!(pid >= 0, "wait4: {}", std::io::Error::last_os_error());
        if pid == 0 {
            return None;
        }
        self.reaped = true;
        Some((ExitStatus::from_raw(status), usage.ru_maxrss))
    }

    /// Waits for bootmatrix to exit, for at most `limit`.
    fn wait(&mut self, limit: Duration) -> Finished {
        let until = Instant::now() + limit;
        loop {
            if let Some((status, max_rss_kib)) = self.try_reap() {
                let (stdout, stderr) = self.output();
                return Finished {
                    status,
                    stdout,
                    stderr,
                    max_rss_kib,
                };
            }
            if Instant::now() > until {
                let (stdout, stderr) = self.output();
                panic!(
                    "bootmatrix still runs after {limit:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the fake guest has recorded its pid and its child's.
    fn wait_for_guest(&mut self, limit: Duration) -> Vec<i32> {
        let until = Instant::now() + limit;
        loop {
            let pids = read_pids(&self.pids_file);
            if pids.len() >= 2 {
                return pids;
            }
            if let Some((status, _)) = self.try_reap() {
                let (stdout, stderr) = self.output();
                panic!("bootmatrix ended ({status}) before booting the guest\nstdout:\n{stdout}\nstderr:\n{stderr}");
            }
            assert!(Instant::now() < until, "no guest started within {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether discovery can run the KVM probe guest here (else it says "no /dev/kvm" or so).
fn kvm_probe_runs() -> bool {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

#[rstest]
#[case::sigterm(libc::SIGTERM)]
#[case::sigint(libc::SIGINT)]
fn signal_stops_the_run_and_every_guest_process(#[case] signal: i32) {
    let setup = Setup::new();
    let mut running = setup.spawn("run", "hang", "sev-off.*unsigned");
    let pids = running.wait_for_guest(RUN_LIMIT);
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(
        pids.iter().all(|p| process_exists(*p)),
        "the guest should be running when the signal comes: {pids:?}"
    );

    // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child.
    assert_eq!(unsafe { libc::kill(running.pid(), signal) }, 0);
    let finished = running.wait(Duration::from_secs(10));
    assert_eq!(
        finished.status.code(),
        Some(128 + signal),
        "bootmatrix should exit on its own with 128+{signal}: {finished:?}"
    );
    assert!(
        finished
            .stderr
            .contains(&format!("bootmatrix: signal {signal}: stopped all guests")),
        "{}",
        finished.stderr
    );
    assert_all_gone(&pids);
}

#[rstest]
#[case::sigint(libc::SIGINT)]
#[case::sigterm(libc::SIGTERM)]
fn an_interrupted_run_reports_what_it_decided(#[case] signal: i32) {
    // One job, skipped cells first: the four sev-on cells are skipped, the first booted cell
    // sees the probe line and fails, the second hangs until the signal, two never boot.
    let setup = Setup::new();
    let json = setup.path("copy.json");
    let junit = setup.path("junit.xml");
    let mut running = setup.spawn_with(
        "run",
        "probe-first",
        "/(secure-boot|option-rom)/",
        &[
            "--report-json",
            json.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    let until = Instant::now() + RUN_LIMIT;
    while read_pids(&setup.pids_file()).len() < 4 {
        assert!(
            Instant::now() < until,
            "no second guest: {:?}",
            running.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pids = read_pids(&setup.pids_file());
    // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child.
    assert_eq!(unsafe { libc::kill(running.pid(), signal) }, 0);
    let finished = running.wait(Duration::from_secs(10));
    assert_eq!(finished.status.code(), Some(128 + signal), "{finished:?}");
    assert_all_gone(&pids);

    let report = setup.report();
    assert_eq!(report.cells.len(), 8, "{report:#?}");
    let decided = cell(&report, &cell_id("sev-off", "signed"));
    assert_eq!(decided.verdict, VerdictKind::Fail, "{decided}");
    assert!(
        decided
            .reason
            .contains("expected SecureBoot=0, the guest saw 1"),
        "{decided}"
    );
    assert!(!decided.evidence().is_empty(), "{decided}");
    let stopped = cell(&report, &cell_id("sev-off", "unsigned"));
    assert_eq!(stopped.verdict, VerdictKind::Error, "{stopped}");
    assert_eq!(stopped.reason, "interrupted: stopped mid-boot", "{stopped}");
    assert!(
        stopped
            .log_dir
            .as_ref()
            .is_some_and(|d| d.join("verdict.json").is_file()),
        "{stopped}"
    );
    for payload in ["signed", "unsigned"] {
        let id = format!("{DESCRIPTOR}/qemu-9.9.0/sev-off/option-rom/shipped-vars-{payload}");
        let never = cell(&report, &id);
        assert_eq!(never.verdict, VerdictKind::Error, "{never}");
        assert_eq!(never.reason, "interrupted: not booted", "{never}");
        assert_eq!(never.elapsed_ms, None, "{never}");
        let skipped = cell(&report, &id.replace("sev-off", "sev-on"));
        assert_eq!(skipped.verdict, VerdictKind::Skip, "{skipped}");
        let skipped = cell(&report, &cell_id("sev-on", payload));
        assert_eq!(skipped.verdict, VerdictKind::Skip, "{skipped}");
    }
    assert_eq!(Report::read(&json).as_ref(), Ok(&report));
    let xml = fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("interrupted: not booted").count(), 2, "{xml}");
}

#[test]
fn crashing_qemu_is_an_error() {
    let setup = Setup::new();
    let finished = setup.run("run", "crash", "sev-off/secure-boot/.*unsigned");
    assert_eq!(finished.status.code(), Some(1), "{finished:?}");
    let id = cell_id("sev-off", "unsigned");
    assert!(
        finished
            .stdout
            .lines()
            .any(|l| l.contains("ERROR") && l.contains(&id)),
        "no ERROR line for {id}:\n{}",
        finished.stdout
    );
    let report = setup.report();
    assert_eq!(report.cells.len(), 1, "{report:#?}");
    let c = cell(&report, &id);
    assert_eq!(c.verdict, VerdictKind::Error, "{c}");
    let reason = &c.reason;
    assert!(reason.contains(CRASH_TEXT), "{reason}");
    assert!(
        reason.contains("before any decisive console line"),
        "{reason}"
    );
    assert_all_gone(&read_pids(&setup.pids_file()));
}

#[test]
fn firmware_misbehaviour_is_a_fail_and_sev_is_skipped() {
    // The descriptor has no Secure Boot, so the unsigned probe must run with SecureBoot=0;
    // the fake reports secureboot=1. That is the firmware's fault: fail, not error.
    let setup = Setup::new();
    let finished = setup.run("run", "probe", "/secure-boot/.*unsigned");
    assert_eq!(finished.status.code(), Some(1), "{finished:?}");
    let report = setup.report();
    assert_eq!(report.cells.len(), 2, "{report:#?}");

    let off = cell(&report, &cell_id("sev-off", "unsigned"));
    assert_eq!(off.verdict, VerdictKind::Fail, "{off}");
    assert!(
        off.reason
            .contains("expected SecureBoot=0, the guest saw 1"),
        "{off}"
    );
    assert_eq!(off.observed.outcome(), Some(Outcome::Runs), "{off}");
    assert_eq!(off.observed.secure_boot_value(), Some(1), "{off}");
    assert_eq!(off.accel, Accel::Tcg);
    assert!(off.decided_ms.is_some_and(|ms| ms < 10_000), "{off}");
    // The evidence is the fake's probe line, and the cell's verdict.json is its record.
    assert!(
        off.evidence()
            .iter()
            .any(|e| e.line.starts_with("BOOTMATRIX-PROBE v=2 secureboot=1")),
        "{off}"
    );
    let dir = off.log_dir.as_ref().expect("a log folder");
    let verdict = bootmatrix::report::record::read_json(&dir.join("verdict.json"));
    assert_eq!(verdict.as_ref(), Ok(off));
    assert!(
        finished
            .stdout
            .lines()
            .any(|l| l.contains("FAIL") && l.contains(&cell_id("sev-off", "unsigned"))),
        "{}",
        finished.stdout
    );

    // No SEV through a QEMU whose KVM does not work, whatever the host has.
    let on = cell(&report, &cell_id("sev-on", "unsigned"));
    assert_eq!(on.verdict, VerdictKind::Skip, "{on}");
    assert!(!on.reason.trim().is_empty(), "{on}");
    assert_all_gone(&read_pids(&setup.pids_file()));
}

#[test]
fn plan_shows_the_argv_on_tcg_with_the_kvm_reason() {
    let setup = Setup::new();
    let finished = setup.run("plan", "hang", "sev-off/secure-boot/.*unsigned");
    assert!(finished.status.success(), "{finished:?}");
    let lines: Vec<&str> = finished.stdout.lines().collect();
    let id = cell_id("sev-off", "unsigned");
    let at = lines
        .iter()
        .position(|l| l.starts_with("RUN ") && l.contains(&id))
        .unwrap_or_else(|| panic!("no RUN line for {id}:\n{}", finished.stdout));
    let head = lines[at];
    let kvm_reason = if kvm_probe_runs() {
        "[tcg: KVM unusable: KVM internal error. Suberror: 1]"
    } else {
        "[tcg: KVM unusable: "
    };
    assert!(head.contains(kvm_reason), "{head}");
    let argv = lines.get(at + 1).expect("the argv line");
    assert!(
        argv.trim_start()
            .starts_with(&fake_qemu().display().to_string()),
        "{argv}"
    );
    assert!(argv.contains("-machine pc-q35-9.9,accel=tcg"), "{argv}");
    // plan boots nothing.
    assert!(read_pids(&setup.pids_file()).is_empty());
    assert!(!setup.path("run/cells").exists());
}

#[test]
fn flooding_guest_does_not_grow_memory() {
    // 41 MiB of console output must cost no more than a few MiB over a quiet boot: the
    // console is streamed to a capped log, nothing needs to pile up.
    let quiet = Setup::new().run("run", "probe", "sev-off/secure-boot/.*unsigned");
    assert_eq!(quiet.status.code(), Some(1), "{quiet:?}");
    let setup = Setup::new();
    let flood = setup.run("run", "flood", "sev-off/secure-boot/.*unsigned");
    assert_eq!(flood.status.code(), Some(1), "{flood:?}");
    let report = setup.report();
    assert_eq!(
        cell(&report, &cell_id("sev-off", "unsigned")).verdict,
        VerdictKind::Fail
    );
    let growth = flood.max_rss_kib - quiet.max_rss_kib;
    assert!(
        growth < 8 * 1024,
        "flooding cost {growth} KiB more memory (quiet run {} KiB)",
        quiet.max_rss_kib
    );
}
