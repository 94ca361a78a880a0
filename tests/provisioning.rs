//! `ci/debian-matrix`, the provisioning command of the Debian release matrix: it fetches
//! through a private apt configuration only (nothing under /etc/apt, /usr or /var/lib/dpkg
//! changes), it is idempotent, and what it prints is what `bootmatrix` takes.
#![cfg(feature = "qemu")]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Every file and folder under `dir` with its size and modification time, sorted.
fn listing(dir: &str) -> Vec<String> {
    let out = Command::new("find")
        .args([dir, "-xdev", "-printf", "%p %s %T@ %m\n"])
        .output()
        .unwrap();
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// What under /usr was created or modified since `marker` (a deleted entry changes its
/// folder's time, so deletions show too).
fn usr_newer_than(marker: &Path) -> Vec<String> {
    let out = Command::new("find")
        .args(["/usr", "-xdev", "-newer"])
        .arg(marker)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn provision(cache: &Path, args: &[&str]) -> (String, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ci/debian-matrix");
    let out = Command::new("timeout")
        .arg("900")
        .arg(script)
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

#[test]
fn provisioning_changes_nothing_on_the_machine_and_is_idempotent() {
    let cache = tempfile::tempdir().unwrap();
    let marker = cache.path().join("marker");
    std::fs::write(&marker, b"").unwrap();
    // File times have a resolution; make "newer" mean after this point.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let apt_before = listing("/etc/apt");
    let dpkg_before = listing("/var/lib/dpkg");

    let (printed, said) = provision(cache.path(), &["bookworm-backports"]);
    assert!(
        said.contains("bookworm-backports: fetching qemu-system-x86"),
        "{said}"
    );
    assert_eq!(listing("/etc/apt"), apt_before, "/etc/apt changed");
    assert_eq!(
        listing("/var/lib/dpkg"),
        dpkg_before,
        "/var/lib/dpkg changed"
    );
    assert_eq!(
        usr_newer_than(&marker),
        Vec::<String>::new(),
        "/usr changed"
    );

    let root: PathBuf = cache
        .path()
        .join("bootmatrix/debian/bookworm-backports/qemu");
    assert_eq!(
        printed.trim(),
        format!(
            "--descriptors /usr/share/qemu/firmware --qemu-root {}",
            root.display()
        )
    );
    let complete = std::fs::read_to_string(root.join(".bootmatrix-complete")).unwrap();
    assert!(complete.starts_with("qemu-system-x86 1:10."), "{complete}");

    // Again: nothing fetched, the same arguments.
    let (again, said) = provision(cache.path(), &["bookworm-backports"]);
    assert!(!said.contains("fetching"), "{said}");
    assert_eq!(again, printed);

    // What it printed is what bootmatrix takes: that QEMU, through its root's loader.
    let args: Vec<&str> = printed.split_whitespace().collect();
    let out = Command::new(env!("CARGO_BIN_EXE_bootmatrix"))
        .arg("list")
        .args(&args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("QEMU emulator version 10.0")
            && stdout.contains(&format!("root {}", root.display())),
        "{stdout}"
    );
}

#[test]
fn an_unknown_suite_or_option_is_refused_before_anything_is_fetched() {
    let cache = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ci/debian-matrix");
    for arg in ["buster", "--fast"] {
        let out = Command::new(&script)
            .arg(arg)
            .env("XDG_CACHE_HOME", cache.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{arg}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(arg), "{stderr}");
    }
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 0);
}
