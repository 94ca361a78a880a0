//! Shared by the tests that drive the fake QEMU (`tests/fixtures/fake-qemu`): where it is, the
//! pids it records, and proving that none of them outlived the harness.
#![allow(dead_code)] // each test crate uses its own subset

pub mod expected;
pub mod run;
pub mod scenarios;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bootmatrix::boot::process_exists;

pub fn fake_qemu() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-qemu");
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode();
    assert!(
        mode & 0o111 != 0,
        "{} lost its executable bit",
        path.display()
    );
    path
}

/// Complete lines only: the fake writes its own pid and its child's with one printf.
pub fn read_pids(file: &Path) -> Vec<i32> {
    let text = fs::read_to_string(file).unwrap_or_default();
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Polls /proc until every pid is gone (zombies count as gone), for at most 2 s.
pub fn assert_all_gone(pids: &[i32]) {
    assert!(!pids.is_empty(), "no pids recorded: nothing was proven");
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        let alive: Vec<i32> = pids
            .iter()
            .copied()
            .filter(|p| process_exists(*p))
            .collect();
        if alive.is_empty() {
            return;
        }
        assert!(
            Instant::now() < until,
            "processes outlived the harness: {alive:?} (of {pids:?})"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Ends the fakes' process groups (each fake leads its own, and records itself first) and
/// whatever they recorded that still looks like theirs. Cleanup after a failed test only.
pub fn kill_recorded(pids_file: &Path) {
    let pids = read_pids(pids_file);
    for pair in pids.chunks(2) {
        // SAFETY: killpg has no memory-safety preconditions.
        unsafe {
            libc::killpg(pair[0], libc::SIGKILL);
        }
    }
    for pid in pids {
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if process_exists(pid) && (cmdline.contains("fake-qemu") || cmdline.contains("sleep")) {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// A folder `descriptors/` under `root` with one descriptor, `NAME.json`, naming small fake
/// firmware files (a 4 KiB executable and varstore under `root/firmware/`): UEFI for x86_64 on
/// the given machine types, with the given features. Returns the descriptors folder.
pub fn fake_firmware(root: &Path, name: &str, machines: &[&str], features: &[&str]) -> PathBuf {
    let firmware = root.join("firmware");
    fs::create_dir(&firmware).unwrap();
    let code = firmware.join("OVMF_CODE_4M.fd");
    let vars = firmware.join("OVMF_VARS_4M.fd");
    fs::write(&code, vec![0xffu8; 4096]).unwrap();
    fs::write(&vars, vec![0u8; 4096]).unwrap();
    let descriptor = serde_json::json!({
        "description": "fake UEFI firmware for x86_64",
        "interface-types": ["uefi"],
        "mapping": {
            "device": "flash",
            "executable": { "filename": code, "format": "raw" },
            "nvram-template": { "filename": vars, "format": "raw" }
        },
        "targets": [{ "architecture": "x86_64", "machines": machines }],
        "features": features,
        "tags": []
    });
    let dir = root.join("descriptors");
    fs::create_dir(&dir).unwrap();
    fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_string_pretty(&descriptor).unwrap(),
    )
    .unwrap();
    dir
}

/// The arguments that add the whole Debian release matrix to a command (four OVMF generations,
/// five QEMU versions): `BOOTMATRIX_DEBIAN_MATRIX` (set by `ci/test`), or what
/// `ci/debian-matrix` prints.
pub fn debian_matrix_args() -> Vec<String> {
    let text = match std::env::var("BOOTMATRIX_DEBIAN_MATRIX") {
        Ok(text) => text,
        Err(_) => {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ci/debian-matrix");
            let out = std::process::Command::new(script)
                .output()
                .expect("ci/debian-matrix runs");
            assert!(
                out.status.success(),
                "ci/debian-matrix failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        }
    };
    text.split_whitespace().map(str::to_string).collect()
}
