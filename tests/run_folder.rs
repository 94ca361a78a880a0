//! The run folder and the run's inputs, against the fake QEMU (`tests/fixtures/fake-qemu`): one
//! run per folder (a second one, or one into a finished folder, is refused), default folders
//! that never collide, and inputs that cannot work refused before anything boots or is left
//! behind.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bootmatrix::judge::VerdictKind;
use bootmatrix::report::record::Report;
use common::{assert_all_gone, fake_firmware, fake_qemu, kill_recorded, read_pids};
use tempfile::TempDir;

const DESCRIPTOR: &str = "60-fake-edk2-x86_64";
/// One cell that boots: the fake's probe line decides it (a fail: the firmware has no Secure
/// Boot, the fake says it is on).
const ONE_CELL: &str = "sev-off/secure-boot/.*unsigned";
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// A descriptor of small fake firmware files, and the folder the runs start in.
struct Setup {
    tmp: TempDir,
}

impl Setup {
    fn new() -> Setup {
        let tmp = tempfile::tempdir().expect("temp dir");
        // No Secure Boot, AMD SEV, debug console.
        fake_firmware(
            tmp.path(),
            DESCRIPTOR,
            &["pc-q35-*"],
            &["acpi-s3", "amd-sev", "verbose-dynamic"],
        );
        Setup { tmp }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn pids(&self) -> Vec<i32> {
        read_pids(&self.path("pids"))
    }

    /// `bootmatrix run` with only the fake QEMU in `mode` (its guests exit after their lines,
    /// but in hang mode), one job, and `args`.
    fn command(&self, mode: &str, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bootmatrix"));
        command
            .args(["run", "--no-path-qemu", "--jobs", "1", "--qemu"])
            .arg(fake_qemu())
            .arg("--descriptors")
            .arg(self.path("descriptors"))
            .args(args)
            .env("FAKE_QEMU_MODE", mode)
            .env(
                "FAKE_QEMU_AFTER",
                if mode == "hang" { "hang" } else { "exit" },
            )
            .env("FAKE_QEMU_PIDS", self.path("pids"))
            .current_dir(self.tmp.path())
            .stdin(Stdio::null());
        command
    }

    /// Runs to the end, bounded; output goes through files, read at the end.
    fn run(&self, mode: &str, args: &[&str]) -> Finished {
        let stdout = tempfile::NamedTempFile::new().unwrap();
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let child = self
            .command(mode, args)
            .stdout(stdout.reopen().unwrap())
            .stderr(stderr.reopen().unwrap())
            .spawn()
            .expect("bootmatrix starts");
        let mut child = Killed(child);
        let until = Instant::now() + RUN_LIMIT;
        let status = loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < until,
                "bootmatrix still runs after {RUN_LIMIT:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Finished {
            code: status.code(),
            stdout: fs::read_to_string(stdout.path()).unwrap(),
            stderr: fs::read_to_string(stderr.path()).unwrap(),
        }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if std::thread::panicking() {
            kill_recorded(&self.path("pids"));
        }
    }
}

/// A bootmatrix process, killed if a test fails while it runs.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Debug)]
struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Finished {
    /// A usage error: status 2, and `words` in the message.
    fn assert_usage_error(&self, words: &str) {
        assert_eq!(self.code, Some(2), "{self:#?}");
        assert!(self.stderr.contains(words), "expected {words:?}: {self:#?}");
    }
}

fn wait_for_pids(setup: &Setup, n: usize) -> Vec<i32> {
    let until = Instant::now() + RUN_LIMIT;
    loop {
        let pids = setup.pids();
        if pids.len() >= n {
            return pids;
        }
        assert!(Instant::now() < until, "no guest within {RUN_LIMIT:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        }
        out.push(path);
    }
    out
}

#[test]
fn a_second_run_into_a_folder_in_use_is_refused_naming_the_first() {
    let setup = Setup::new();
    let out = setup.path("run");
    let out = out.to_str().unwrap();
    let first = setup
        .command("hang", &["--out", out, "--filter", ONE_CELL])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first = Killed(first);
    let guest = wait_for_pids(&setup, 2);

    // The second would crash its guest at once if it booted one.
    let second = setup.run("crash", &["--out", out, "--filter", ONE_CELL]);
    second.assert_usage_error(&format!(
        "the run folder {out} is in use by another bootmatrix run (pid {})",
        first.0.id()
    ));
    assert_eq!(setup.pids(), guest, "the second run booted a guest");

    // The first run's report is its own: its one cell, stopped by the signal.
    let mut first = first;
    // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child.
    assert_eq!(unsafe { libc::kill(first.0.id() as i32, libc::SIGTERM) }, 0);
    let status = first.0.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
    assert_all_gone(&guest);
    let report = Report::read(&Path::new(out).join("report.json")).unwrap();
    assert_eq!(report.cells.len(), 1, "{report:#?}");
    assert_eq!(report.cells[0].reason, "interrupted: stopped mid-boot");
}

#[test]
fn a_run_into_a_finished_folder_is_refused_and_leaves_its_report_alone() {
    let setup = Setup::new();
    let out = setup.path("run");
    let args = ["--out", out.to_str().unwrap(), "--filter", ONE_CELL];
    let first = setup.run("probe", &args);
    assert_eq!(first.code, Some(1), "{first:#?}");
    assert!(first.stdout.contains("FAIL"), "{first:#?}");
    let report = fs::read(out.join("report.json")).unwrap();
    let guests = setup.pids();
    assert_eq!(guests.len(), 2, "{guests:?}");

    let second = setup.run("crash", &args);
    second.assert_usage_error(&format!("the run folder {} is not empty", out.display()));
    assert!(second.stderr.contains("report.json"), "{second:#?}");
    assert_eq!(fs::read(out.join("report.json")).unwrap(), report);
    assert_eq!(setup.pids(), guests, "the second run booted a guest");
}

#[test]
fn the_default_folder_is_new_even_when_its_name_is_taken() {
    let setup = Setup::new();
    // Other runs' folders for every second of the next minute, the way two runs started in
    // the same second would find each other's.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let runs = setup.path("bootmatrix-runs");
    let taken: Vec<PathBuf> = (now..now + 60)
        .map(|s| runs.join(bootmatrix::prepare::utc_stamp(s)))
        .collect();
    for dir in &taken {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("report.json"), "another run's").unwrap();
    }
    let finished = setup.run("probe", &["--filter", ONE_CELL]);
    assert_eq!(finished.code, Some(1), "{finished:#?}");
    for dir in &taken {
        assert_eq!(
            fs::read_to_string(dir.join("report.json")).unwrap(),
            "another run's"
        );
        assert_eq!(fs::read_dir(dir).unwrap().count(), 1, "{}", dir.display());
    }
    let new: Vec<PathBuf> = fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !taken.contains(p))
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
    let name = new[0].file_name().unwrap().to_str().unwrap().to_string();
    assert!(
        taken
            .iter()
            .any(|t| name.starts_with(&format!("{}-", t.file_name().unwrap().to_str().unwrap()))),
        "{name}"
    );
    let report = Report::read(&new[0].join("report.json")).unwrap();
    assert_eq!(report.cells.len(), 1, "{report:#?}");
    assert_eq!(report.cells[0].verdict, VerdictKind::Fail);
    assert!(
        report.cells[0]
            .log_dir
            .as_ref()
            .is_some_and(|d| d.starts_with(&new[0]) && d.join("serial.log").is_file()),
        "{}",
        report.cells[0]
    );
}

#[rstest::rstest]
#[case::report_json("--report-json")]
#[case::junit("--junit")]
fn an_unwritable_report_path_is_refused_before_anything_boots(#[case] flag: &str) {
    let setup = Setup::new();
    let path = setup.path("no-such-folder/report");
    let out = setup.path("run");
    let finished = setup.run(
        "probe",
        &[
            "--out",
            out.to_str().unwrap(),
            "--filter",
            ONE_CELL,
            flag,
            path.to_str().unwrap(),
        ],
    );
    finished.assert_usage_error(&format!("{flag} {}: cannot write", path.display()));
    assert!(setup.pids().is_empty(), "a guest booted: {finished:#?}");
    assert!(!out.exists(), "{:?}", files_under(&out));
}

#[test]
fn a_scenarios_folder_without_scenarios_is_refused_naming_it() {
    let setup = Setup::new();
    let scenarios = setup.path("scenarios");
    fs::create_dir(&scenarios).unwrap();
    let out = setup.path("run");
    let finished = setup.run(
        "probe",
        &[
            "--out",
            out.to_str().unwrap(),
            "--filter",
            ONE_CELL,
            "--scenarios",
            scenarios.to_str().unwrap(),
        ],
    );
    finished.assert_usage_error(&format!("{}: no scenario rules", scenarios.display()));
    assert!(setup.pids().is_empty(), "a guest booted: {finished:#?}");
    assert!(!out.exists(), "{:?}", files_under(&out));
}

#[test]
fn a_filter_that_matches_nothing_leaves_nothing_behind() {
    let setup = Setup::new();
    let out = setup.path("run");
    let finished = setup.run(
        "probe",
        &["--out", out.to_str().unwrap(), "--filter", "no-such-cell"],
    );
    finished.assert_usage_error("no cell matches --filter \"no-such-cell\"");
    assert!(!out.exists(), "{:?}", files_under(&out));
    // Nor in the default folder.
    let finished = setup.run("probe", &["--filter", "no-such-cell"]);
    finished.assert_usage_error("no cell matches --filter");
    assert!(!setup.path("bootmatrix-runs").exists());
}

#[test]
fn a_kernel_that_cannot_be_prepared_points_at_no_missing_folder() {
    let setup = Setup::new();
    let kernel = setup.path("not-a-kernel");
    fs::write(&kernel, "junk").unwrap();
    let out = setup.path("run");
    let finished = setup.run(
        "probe",
        &[
            "--out",
            out.to_str().unwrap(),
            "--filter",
            "sev-off/kernel-boot/",
            "--kernel",
            kernel.to_str().unwrap(),
        ],
    );
    assert_eq!(finished.code, Some(1), "{finished:#?}");
    assert!(!finished.stderr.contains("cannot write"), "{finished:#?}");
    assert!(!finished.stdout.contains("logs:"), "{finished:#?}");
    let report = Report::read(&out.join("report.json")).unwrap();
    assert_eq!(report.cells.len(), 4, "{report:#?}");
    for c in &report.cells {
        assert_eq!(c.verdict, VerdictKind::Error, "{c}");
        assert!(c.reason.contains("not an EFI-stub bzImage"), "{c}");
        assert_eq!(c.log_dir, None, "{c}");
        assert!(c.argv.is_some(), "{c}");
    }
    assert!(setup.pids().is_empty(), "a guest booted: {finished:#?}");
}

#[test]
fn the_report_records_the_run_its_figures_and_the_cells_that_reached_their_deadline() {
    let setup = Setup::new();
    // Hung until its deadline (80 s under TCG, scaled to 2 s).
    let hung = setup.path("hung");
    let args = ["--out", hung.to_str().unwrap(), "--filter", ONE_CELL];
    let finished = setup.run("hang", &[&args[..], &["--timeout-scale", "0.025"]].concat());
    assert_eq!(finished.code, Some(1), "{finished:#?}");
    let report = Report::read(&hung.join("report.json")).unwrap();
    let run = report.run.as_ref().expect("a run record");
    assert_eq!(run.run_dir, hung);
    assert_eq!(run.planned.len(), 1);
    assert_eq!(run.shard, None);
    assert_eq!(run.plan_fingerprint.len(), 64);
    let f = &run.figures;
    assert_eq!(
        (f.cells, f.booted, f.slots, f.deadline_cells),
        (1, 1, 1, 1),
        "{f:?}"
    );
    assert_eq!(f.sum_elapsed_ms, report.cells[0].elapsed_ms.unwrap());
    assert!(f.wall_ms >= f.sum_elapsed_ms, "{f:?}");
    // The same cell decided at once: no deadline.
    let quick = setup.path("quick");
    let args = ["--out", quick.to_str().unwrap(), "--filter", ONE_CELL];
    setup.run("probe", &args);
    let report = Report::read(&quick.join("report.json")).unwrap();
    let f = &report.run.as_ref().unwrap().figures;
    assert_eq!((f.booted, f.deadline_cells), (1, 0), "{f:?}");
    assert!(
        f.sum_decided_ms > 0 && f.sum_decided_ms <= f.sum_elapsed_ms,
        "{f:?}"
    );
    // Both were planned from the same inputs: the fingerprint does not see the run folder or
    // the deadlines.
    assert_eq!(
        Report::read(&hung.join("report.json"))
            .unwrap()
            .run
            .unwrap()
            .plan_fingerprint,
        report.run.as_ref().unwrap().plan_fingerprint
    );
}
