//! A QEMU asked for with `--qemu` that cannot be used (it cannot run, names no version, lists
//! no machine types, or hangs) is a usage error naming it and why, for every command that
//! discovers; it is answered within `--version`'s time limit, and its processes (a hanging
//! one's children included) do not outlive the command. A QEMU found on `PATH` that cannot be
//! used stays a reported inventory problem.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bootmatrix::discover::qemu::{SYSTEM_EMULATOR, VERSION_LIMIT};
use common::{assert_all_gone, fake_qemu, kill_recorded, read_pids};

/// What every answer here must take less than: the longest probe of a broken `--qemu`, and a
/// second for the rest.
fn quick() -> Duration {
    VERSION_LIMIT + Duration::from_secs(1)
}

/// A temp folder with broken QEMUs in it, an empty descriptor folder, and the file the broken
/// scripts record their pids in.
struct Place {
    dir: tempfile::TempDir,
}

impl Place {
    fn new() -> Place {
        let place = Place {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir(place.path("descriptors")).unwrap();
        place
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn pids(&self) -> PathBuf {
        self.path("pids")
    }

    /// An executable `/bin/sh` script `name` with `body` (`PIDS` replaced by the pid file).
    fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.path(name);
        let pids = self.pids().display().to_string();
        let text = format!("#!/bin/sh\n{}\n", body.replace("PIDS", &pids));
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// Answers `--version` with nothing like a version.
    fn no_version(&self) -> PathBuf {
        self.script("no-version", "echo $$ >> PIDS\necho 'not an emulator'")
    }

    /// Names a version, then lists no machine types.
    fn no_machines(&self) -> PathBuf {
        self.script(
            "no-machines",
            "echo $$ >> PIDS\n\
             [ \"$1\" = --version ] && echo 'QEMU emulator version 9.9.0 (fake)'\n\
             exit 0",
        )
    }

    /// Starts a sleeping child of its own, records both pids, and hangs.
    fn hangs(&self) -> PathBuf {
        self.script(
            "hangs",
            "sleep 300 &\nprintf '%s\\n%s\\n' $$ $! >> PIDS\nexec sleep 300",
        )
    }

    /// `bootmatrix ARGS --descriptors <empty>` in the temp folder, `PATH` as given.
    fn command(&self, args: &[&str], path_var: Option<&str>) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bootmatrix"));
        cmd.args(args)
            .arg("--descriptors")
            .arg(self.path("descriptors"))
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        if let Some(path_var) = path_var {
            cmd.env("PATH", path_var);
        }
        cmd
    }

    fn run(&self, args: &[&str], path_var: Option<&str>) -> Ran {
        let started = Instant::now();
        let out = self
            .command(args, path_var)
            .output()
            .expect("bootmatrix starts");
        let took = started.elapsed();
        Ran {
            status: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            took,
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        // Only does something after a failed test.
        kill_recorded(&self.pids());
    }
}

#[derive(Debug)]
struct Ran {
    status: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Ran {
    /// Exit status 2, quickly, with one error that names `qemu` and says `why`.
    fn assert_usage_error(&self, qemu: &Path, why: &str) {
        assert_eq!(self.status, Some(2), "{self:#?}");
        let expected = format!("bootmatrix: --qemu {}: {why}", qemu.display());
        assert!(
            self.stderr.starts_with(&expected),
            "{expected:?}\n{self:#?}"
        );
        assert!(self.took < quick(), "{:?}, over {:?}", self.took, quick());
    }
}

/// The invocation of each command that discovers, asking for `qemu` alone.
fn every_command(qemu: &str) -> Vec<Vec<&str>> {
    let only = ["--no-path-qemu", "--qemu", qemu];
    let with = |first: &[&'static str]| [first, &only[..]].concat();
    vec![
        with(&["list"]),
        with(&["plan"]),
        with(&["run", "--out", "run"]),
        // Used to say "no cell matches --filter", as if the filter were wrong.
        with(&["run", "--out", "run", "--filter", "secure-boot"]),
        with(&[
            "explain",
            "60-edk2-x86_64/qemu-9.9.0/sev-off/secure-boot/shipped-vars",
        ]),
        with(&["expect", "--package", "ovmf"]),
    ]
}

#[test]
fn a_qemu_that_fails_is_a_usage_error_for_every_command() {
    let place = Place::new();
    let qemu = Path::new("/bin/false");
    for args in every_command("/bin/false") {
        let ran = place.run(&args, None);
        eprintln!("{args:?}");
        ran.assert_usage_error(qemu, "`--version` failed (exit status: 1)");
    }
}

#[test]
fn a_qemu_that_does_not_exist_is_a_usage_error() {
    let place = Place::new();
    let qemu = place.path("no-such-qemu");
    let text = qemu.to_str().unwrap();
    for args in every_command(text) {
        let ran = place.run(&args, None);
        eprintln!("{args:?}");
        ran.assert_usage_error(&qemu, "cannot run `--version`: No such file or directory");
    }
}

#[test]
fn a_qemu_without_a_version_is_a_usage_error() {
    let place = Place::new();
    let qemu = place.no_version();
    let ran = place.run(
        &["plan", "--no-path-qemu", "--qemu", qemu.to_str().unwrap()],
        None,
    );
    ran.assert_usage_error(&qemu, "cannot read a version from \"not an emulator\"");
    assert_all_gone(&read_pids(&place.pids()));
}

#[test]
fn a_qemu_without_machine_types_is_a_usage_error() {
    let place = Place::new();
    let qemu = place.no_machines();
    let ran = place.run(
        &["list", "--no-path-qemu", "--qemu", qemu.to_str().unwrap()],
        None,
    );
    ran.assert_usage_error(&qemu, "`-machine help` listed no machine types");
    // Asked twice: --version, then -machine help.
    let pids = read_pids(&place.pids());
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert_all_gone(&pids);
}

/// A `--qemu` that hangs costs `--version`'s time limit, not more, and its child goes with it.
#[test]
fn a_qemu_that_hangs_is_a_usage_error_and_leaves_nothing_behind() {
    let place = Place::new();
    let qemu = place.hangs();
    let text = qemu.to_str().unwrap();
    let ran = place.run(
        &["run", "--out", "run", "--no-path-qemu", "--qemu", text],
        None,
    );
    ran.assert_usage_error(
        &qemu,
        &format!("`--version` did not finish within {VERSION_LIMIT:?}"),
    );
    let pids = read_pids(&place.pids());
    assert_eq!(pids.len(), 2, "the script and its child: {pids:?}");
    assert_all_gone(&pids);
}

/// A signal while a `--qemu` is being asked ends it and its children too (they lead their own
/// process group, so a Ctrl-C at the terminal would not reach them).
#[test]
fn a_signal_during_discovery_leaves_nothing_behind() {
    let place = Place::new();
    let qemu = place.hangs();
    let mut child = place
        .command(
            &["list", "--no-path-qemu", "--qemu", qemu.to_str().unwrap()],
            None,
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + quick();
    while read_pids(&place.pids()).len() < 2 {
        assert!(Instant::now() < until, "the hanging QEMU never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{status}");
    assert_all_gone(&read_pids(&place.pids()));
}

/// `PATH` with `dir` first.
fn path_with(dir: &Path) -> String {
    let rest = std::env::var("PATH").unwrap_or_default();
    format!("{}:{rest}", dir.display())
}

/// The case of the issue: the QEMU on `PATH` works, the one asked for does not, and the
/// command used to go on without it and succeed.
#[test]
fn a_working_qemu_on_path_does_not_hide_a_broken_one_asked_for() {
    let place = Place::new();
    let bin = place.path("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(fake_qemu(), bin.join(SYSTEM_EMULATOR)).unwrap();
    let qemu = place.no_version();
    let ran = place.run(
        &["list", "--qemu", qemu.to_str().unwrap()],
        Some(&path_with(&bin)),
    );
    ran.assert_usage_error(&qemu, "cannot read a version");
}

/// A QEMU found on `PATH` that cannot be used is no usage error: nobody asked for it. It is
/// reported, and the command goes on.
#[test]
fn a_broken_qemu_on_path_is_reported_not_an_error() {
    let place = Place::new();
    let bin = place.path("bin");
    std::fs::create_dir(&bin).unwrap();
    let broken = bin.join(SYSTEM_EMULATOR);
    std::fs::rename(place.no_version(), &broken).unwrap();
    let fake = fake_qemu();
    let ran = place.run(
        &["list", "--qemu", fake.to_str().unwrap()],
        Some(&path_with(&bin)),
    );
    assert_eq!(ran.status, Some(0), "{ran:#?}");
    let reported = ran
        .stdout
        .lines()
        .any(|l| l.contains(&broken.display().to_string()) && l.contains("cannot read a version"));
    assert!(reported, "{ran:#?}");
    assert!(
        ran.stdout.contains("(fake)"),
        "the fake QEMU is used: {ran:#?}"
    );
}

/// A broken QEMU both on `PATH` and asked for is a usage error, and is asked only once.
#[test]
fn a_broken_qemu_on_path_and_asked_for_is_asked_once() {
    let place = Place::new();
    let bin = place.path("bin");
    std::fs::create_dir(&bin).unwrap();
    let broken = bin.join(SYSTEM_EMULATOR);
    std::fs::rename(place.no_machines(), &broken).unwrap();
    let ran = place.run(
        &["plan", "--qemu", broken.to_str().unwrap()],
        Some(&path_with(&bin)),
    );
    ran.assert_usage_error(&broken, "`-machine help` listed no machine types");
    // --version and -machine help, once each.
    let pids = read_pids(&place.pids());
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert_all_gone(&pids);
}

/// A Debian root for `--qemu-root`: `usr/bin/qemu-system-x86_64` is a copy of `qemu`, and the
/// root's loader is a script that records its arguments and `QEMU_MODULE_DIR`, then runs the
/// binary the way `ld.so --inhibit-cache --library-path DIRS BINARY ARGS` does.
fn fake_root(place: &Place, qemu: &Path) -> PathBuf {
    let root = place.path("root");
    let lib = root.join("usr/lib/x86_64-linux-gnu");
    std::fs::create_dir_all(lib.join("qemu")).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::create_dir_all(root.join("usr/share/qemu")).unwrap();
    std::fs::copy(qemu, root.join("usr/bin").join(SYSTEM_EMULATOR)).unwrap();
    let log = place.path("loader.log");
    let loader = lib.join("ld-linux-x86-64.so.2");
    std::fs::write(
        &loader,
        format!(
            "#!/bin/sh\necho \"$QEMU_MODULE_DIR $1 $2 $3\" >> {}\nshift 3\nexec \"$@\"\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&loader, std::fs::Permissions::from_mode(0o755)).unwrap();
    root
}

#[test]
fn a_qemu_root_is_started_through_its_own_loader_and_listed_with_its_root() {
    let place = Place::new();
    let root = fake_root(&place, &common::fake_qemu());
    let ran = place.run(
        &[
            "list",
            "--no-path-qemu",
            "--qemu-root",
            root.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(ran.status, Some(0), "{ran:#?}");
    let real = std::fs::canonicalize(&root).unwrap();
    let lib = real.join("usr/lib/x86_64-linux-gnu");
    assert!(
        ran.stdout.contains(&format!(
            "root {}, started through the root's loader {}",
            real.display(),
            lib.join("ld-linux-x86-64.so.2").display()
        )),
        "{ran:#?}"
    );
    // --version and -machine help, both through the loader, with the root's modules and
    // libraries only (the host's ld.so.cache left out).
    let log = std::fs::read_to_string(place.path("loader.log")).unwrap();
    let expected = format!(
        "{} --inhibit-cache --library-path {}\n",
        lib.join("qemu").display(),
        lib.display()
    );
    assert_eq!(log, expected.repeat(log.lines().count().max(2)), "{log}");
}

#[test]
fn a_qemu_root_without_a_qemu_or_a_loader_is_a_usage_error_naming_it() {
    let place = Place::new();
    let empty = place.path("empty-root");
    std::fs::create_dir(&empty).unwrap();
    let ran = place.run(
        &[
            "plan",
            "--no-path-qemu",
            "--qemu-root",
            empty.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(ran.status, Some(2), "{ran:#?}");
    assert!(
        ran.stderr.starts_with(&format!(
            "bootmatrix: --qemu-root {}: {} has no usr/bin/qemu-system-x86_64",
            empty.display(),
            empty.display()
        )),
        "{ran:#?}"
    );
    // A QEMU that answers no version, behind a working loader: named by its root.
    let root = fake_root(&place, &place.no_version());
    let ran = place.run(
        &[
            "list",
            "--no-path-qemu",
            "--qemu-root",
            root.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(ran.status, Some(2), "{ran:#?}");
    assert!(
        ran.stderr.contains("--qemu-root ")
            && ran
                .stderr
                .contains("cannot read a version from \"not an emulator\""),
        "{ran:#?}"
    );
}
