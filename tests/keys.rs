//! `bootmatrix keys FILE`: the real binary on Debian 12's own varstores. Nothing is booted;
//! virt-fw-vars and openssl read a scratch copy of the store. Where virt-fw-vars or the
//! varstore is missing, the tests that need them say so and are skipped.

use std::path::Path;
use std::process::Command;

const BOOKWORM_MS: &str = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";

struct Ran {
    status: i32,
    stdout: String,
    stderr: String,
}

fn keys(args: &[&str]) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bootmatrix"))
        .arg("keys")
        .args(args)
        .current_dir(dir.path())
        .output()
        .expect("bootmatrix starts");
    Ran {
        status: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// Why the real-store tests cannot run here, if they cannot.
fn cannot_read_stores() -> Option<String> {
    for tool in ["virt-fw-vars", "openssl"] {
        if !on_path(tool) {
            return Some(format!("{tool} is not installed"));
        }
    }
    (!Path::new(BOOKWORM_MS).is_file())
        .then(|| format!("{BOOKWORM_MS} is missing (Debian 12 ovmf)"))
}

macro_rules! need_stores {
    () => {
        if let Some(why) = cannot_read_stores() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

#[test]
fn bookworm_ms_names_the_2011_cas_counts_dbx_and_fails_ms_2023_db() {
    need_stores!();
    let r = keys(&[BOOKWORM_MS, "--today", "2026-01-01"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    for name in [
        "known:   Microsoft Corporation KEK CA 2011",
        "known:   Microsoft Windows Production PCA 2011",
        "known:   Microsoft Corporation UEFI CA 2011",
    ] {
        assert!(r.stdout.contains(name), "no {name:?}:\n{}", r.stdout);
    }
    assert!(
        r.stdout.contains(
            "dbx: 1 entry (1 SHA-256, 0 certificates, 0 other): only the SHA-256 of an empty file"
        ),
        "{}",
        r.stdout
    );
    // Debian's own PK is no well-known certificate.
    assert!(r.stdout.contains("known:   -"), "{}", r.stdout);
    assert!(
        r.stdout.contains("sha256:  a1117f516a32cefc"),
        "{}",
        r.stdout
    );
    let line = |rule: &str| {
        r.stdout
            .lines()
            .find(|l| l.contains(&format!(" {rule}: ")))
            .unwrap_or_else(|| panic!("no {rule} finding:\n{}", r.stdout))
            .trim_start()
            .to_string()
    };
    assert!(line("ms-2023-db").starts_with("fail "), "{}", r.stdout);
    assert!(line("ms-2023-kek").starts_with("fail "), "{}", r.stdout);
    assert!(line("dbx-real").starts_with("fail "), "{}", r.stdout);
    // On 2026-01-01 the 2011 CAs are still valid; on 2026-12-01 every one has expired.
    assert!(
        line("no-expired-only-path").starts_with("pass "),
        "{}",
        r.stdout
    );
    let later = keys(&[BOOKWORM_MS, "--today", "2026-12-01"]);
    assert!(
        later.stdout.contains("fail           no-expired-only-path: on 2026-12-01 every CA of kek, db-windows, db-third-party has expired"),
        "{}",
        later.stdout
    );
    // Only the strict profile without --edk2.
    assert!(
        r.stdout
            .contains("key-health (strict profile, on 2026-01-01):"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("upstream profile"), "{}", r.stdout);
}

#[test]
fn json_parses_and_upstream_follows_the_edk2_release() {
    need_stores!();
    let r = keys(&[
        BOOKWORM_MS,
        "--json",
        "--edk2",
        "2022.11",
        "--today",
        "2026-01-01",
    ]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let v: serde_json::Value =
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON: {e}\n{}", r.stdout));
    assert_eq!(v["file"], BOOKWORM_MS);
    assert_eq!(v["edk2"], "2022.11");
    assert_eq!(v["setup_mode"], false);
    let store = &v["varstore"];
    assert_eq!(
        store["kek"][1]["well_known"],
        "Microsoft Corporation KEK CA 2011"
    );
    assert_eq!(
        store["kek"][1]["sha256"],
        "a1117f516a32cefcba3f2d1ace10a87972fd6bbe8fe0d0b996e09e65d802a503"
    );
    assert_eq!(store["kek"][1]["not_after"], "2026-06-24");
    assert_eq!(store["db"].as_array().unwrap().len(), 2);
    assert_eq!(store["dbx"]["hashes"], 1);
    assert_eq!(store["dbx"]["only_empty_file_hash"], true);
    let profiles = v["findings"].as_array().unwrap();
    assert_eq!(profiles.len(), 2);
    let status = |profile: usize, rule: &str| {
        profiles[profile]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["rule"] == rule)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(profiles[0]["profile"], "strict");
    assert_eq!(status(0, "ms-2023-db"), "fail");
    assert_eq!(profiles[1]["profile"], "upstream");
    // edk2 2022.11 never promised the 2023 set.
    assert_eq!(status(1, "ms-2023-db"), "not-applicable");
    assert_eq!(status(1, "dbx-real"), "not-applicable");
}

#[test]
fn the_store_without_keys_is_in_setup_mode() {
    need_stores!();
    let empty = "/usr/share/OVMF/OVMF_VARS_4M.fd";
    if !Path::new(empty).is_file() {
        eprintln!("skipped: {empty} is missing");
        return;
    }
    let r = keys(&[empty]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("Setup mode: no PK enrolled"),
        "{}",
        r.stdout
    );
    assert_eq!(
        r.stdout.matches("not-applicable").count(),
        4,
        "{}",
        r.stdout
    );
}

#[test]
fn a_fifo_a_folder_or_a_missing_file_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("vars.fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path and has no other preconditions.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let started = std::time::Instant::now();
    let r = keys(&[fifo.to_str().unwrap()]);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(r.status, 1, "{}", r.stderr);
    assert_eq!(
        r.stderr.trim(),
        format!(
            "bootmatrix: cannot read the varstore {}: not a regular file but a FIFO",
            fifo.display()
        )
    );
    assert!(r.stdout.is_empty(), "{}", r.stdout);

    let r = keys(&[dir.path().to_str().unwrap(), "--json"]);
    assert_eq!(r.status, 1, "{}", r.stderr);
    assert_eq!(
        r.stderr.trim(),
        format!(
            "bootmatrix: cannot read the varstore {}: not a regular file but a folder",
            dir.path().display()
        )
    );
    assert!(r.stdout.is_empty(), "{}", r.stdout);

    let missing = dir.path().join("nothing.fd");
    let r = keys(&[missing.to_str().unwrap()]);
    assert_eq!(r.status, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("cannot read the varstore {}: ", missing.display())),
        "{}",
        r.stderr
    );
}

#[test]
fn a_file_that_is_no_varstore_is_refused_naming_it() {
    if !on_path("virt-fw-vars") {
        eprintln!("skipped: virt-fw-vars is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.fd");
    std::fs::write(&text, "not a varstore\x1b[2J\n").unwrap();
    let r = keys(&[text.to_str().unwrap()]);
    assert_eq!(r.status, 1, "{}", r.stderr);
    assert!(
        r.stderr.starts_with(&format!(
            "bootmatrix: cannot read the varstore {}: `virt-fw-vars",
            text.display()
        )),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains('\x1b'), "{:?}", r.stderr);
}

#[test]
fn bad_usage_exits_2() {
    for args in [
        &[][..],
        &["vars.fd", "--edk2", "20"],
        &["vars.fd", "--today", "yesterday"],
        &["vars.fd", "--profile", "strict"],
    ] {
        let r = keys(args);
        assert_eq!(r.status, 2, "{args:?}: {}", r.stderr);
    }
}
