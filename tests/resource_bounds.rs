//! Resource bounds of `bootmatrix run` against a guest that floods its console
//! (`tests/fixtures/fake-qemu-flood`): 1 GiB of output in 4 KiB lines, and one line that never
//! ends. bootmatrix's peak resident memory stays under [`MEMORY_BOUND_KIB`], its console log
//! stays capped, and the cell ends in `error` at its deadline, never in pass or fail.
//!
//! No real QEMU and no OVMF are used: the descriptor points at small files in a temp folder.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bootmatrix::judge::VerdictKind;
use bootmatrix::report::record::Report;
use common::run::cell;
use common::{assert_all_gone, fake_firmware, kill_recorded, read_pids};

/// bootmatrix may never hold more than this, whatever the guest prints.
const MEMORY_BOUND_KIB: u64 = 200 * 1024;
/// A cell's deadline under TCG is 4 x 20 s; scaled to 12 s here.
const TIMEOUT_SCALE: &str = "0.15";
/// How long one bootmatrix run may take here.
const RUN_LIMIT: Duration = Duration::from_secs(50);
const DESCRIPTOR: &str = "60-fake-edk2-x86_64";
const CELL: &str = "60-fake-edk2-x86_64/qemu-9.9.0/sev-off/secure-boot/shipped-vars-unsigned";
/// serial.log stops at 16 MiB and says so.
const LOG_BOUND: u64 = 16 * 1024 * 1024 + 4096;

fn fake_qemu_flood() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-qemu-flood")
}

/// The peak resident memory (VmHWM) of a live process, in KiB.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

struct Flooded {
    /// The highest VmHWM read while bootmatrix ran, in KiB.
    sampled_kib: u64,
    /// ru_maxrss of bootmatrix (and what it waited for) at its exit, in KiB.
    maxrss_kib: u64,
    report: Report,
    serial_log: u64,
    elapsed: Duration,
    stderr: String,
}

/// `bootmatrix run` of one secure-boot cell against the flooding fake QEMU in `mode`.
// The child is reaped by wait4 (for its resource usage), which clippy does not see.
#[allow(clippy::zombie_processes)]
fn run_flooded(mode: &str) -> Flooded {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fake_firmware(tmp.path(), DESCRIPTOR, &["pc-q35-*"], &["acpi-s3"]);
    let pids = tmp.path().join("pids");
    let stderr_file = tmp.path().join("stderr");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bootmatrix"))
        .args(["run", "--no-path-qemu", "--qemu"])
        .arg(fake_qemu_flood())
        .arg("--descriptors")
        .arg(&dir)
        .arg("--out")
        .arg(tmp.path().join("run"))
        .args(["--filter", "sev-off/secure-boot/.*unsigned"])
        .args(["--jobs", "1", "--timeout-scale", TIMEOUT_SCALE])
        .env("FAKE_QEMU_MODE", mode)
        .env("FAKE_QEMU_PIDS", &pids)
        .current_dir(tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&stderr_file).unwrap())
        .spawn()
        .expect("bootmatrix starts");
    let pid = child.id();
    let mut sampled_kib = 0;
    let maxrss_kib = loop {
        if let Some(kib) = vm_hwm_kib(pid) {
            sampled_kib = sampled_kib.max(kib);
        }
        let mut status = 0;
        // SAFETY: plain syscall on our own child; both out-pointers are valid for writing.
        let (reaped, usage) = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            let reaped = libc::wait4(pid as i32, &mut status, libc::WNOHANG, &mut usage);
            (reaped, usage)
        };
        assert!(reaped >= 0, "wait4: {}", std::io::Error::last_os_error());
        if reaped > 0 {
            break usage.ru_maxrss as u64;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            kill_recorded(&pids);
            panic!(
                "bootmatrix still ran after {RUN_LIMIT:?} (peak {sampled_kib} KiB so far): {}",
                fs::read_to_string(&stderr_file).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    let stderr = fs::read_to_string(&stderr_file).unwrap_or_default();
    // No fake QEMU (nor its pipeline, in its process group) outlived the run.
    assert_all_gone(&read_pids(&pids));
    let report = Report::read(&tmp.path().join("run/report.json"))
        .unwrap_or_else(|e| panic!("{e}\nstderr: {stderr}"));
    let log = cell(&report, CELL)
        .log_dir
        .clone()
        .expect("the cell has a log folder")
        .join("serial.log");
    let log = if log.is_absolute() {
        log
    } else {
        tmp.path().join("run").join(log)
    };
    let serial_log = fs::metadata(&log)
        .unwrap_or_else(|e| panic!("{}: {e}", log.display()))
        .len();
    Flooded {
        sampled_kib,
        maxrss_kib,
        report,
        serial_log,
        elapsed,
        stderr,
    }
}

fn assert_bounded(mode: &str, f: &Flooded) {
    eprintln!(
        "{mode}: peak VmHWM {} KiB sampled, ru_maxrss {} KiB, serial.log {} bytes, {:.1} s",
        f.sampled_kib,
        f.maxrss_kib,
        f.serial_log,
        f.elapsed.as_secs_f64()
    );
    assert!(f.sampled_kib > 0, "VmHWM was never read");
    for peak in [f.sampled_kib, f.maxrss_kib] {
        assert!(
            peak < MEMORY_BOUND_KIB,
            "{mode}: bootmatrix peaked at {peak} KiB (bound {MEMORY_BOUND_KIB} KiB)"
        );
    }
    assert!(
        f.serial_log <= LOG_BOUND,
        "{mode}: serial.log grew to {} bytes",
        f.serial_log
    );
    let cell = cell(&f.report, CELL);
    eprintln!(
        "{mode}: reason of {} bytes: {:.120}",
        cell.reason.len(),
        cell.reason
    );
    assert_eq!(
        cell.verdict,
        VerdictKind::Error,
        "{mode}: {} ({})\nstderr: {}",
        cell.verdict,
        cell.reason,
        f.stderr
    );
    assert!(
        cell.reason.contains("no decisive console line within 12 s"),
        "{mode}: the reason does not name the deadline: {:.300}",
        cell.reason
    );
}

#[test]
fn a_gigabyte_of_console_output_is_bounded() {
    let f = run_flooded("flood-1g");
    assert_bounded("flood-1g", &f);
}

#[test]
fn a_line_without_end_is_bounded() {
    let f = run_flooded("endless-line");
    assert_bounded("endless-line", &f);
}
