//! `lint --boot`, booted for real: a libvirt-style line for Debian 12's Secure Boot OVMF is
//! linted, then its own shape (machine type, SMM, secure pflash, firmware and varstore) boots
//! the secure-boot and option-rom checks as `-via-lint` cells.
#![cfg(feature = "qemu")]

use std::process::Command;

use bootmatrix::judge::VerdictKind;
use bootmatrix::matrix::Outcome;
use bootmatrix::report::record::{PayloadOutcome, Report};

#[test]
fn lint_boot_runs_the_lines_own_shape_on_the_firmware_it_loads() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let line = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/lint/libvirt-q35-secboot-drive.args"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_bootmatrix"))
        .args(["lint", "--boot", "--out"])
        .arg(&out)
        .args(["--file", line])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("booting the line's shape (template `lint`)"),
        "{stdout}"
    );
    // The line's own machine type, not bootmatrix's.
    assert!(
        stdout.contains("-machine pc-q35-2.5,accel={accel},usb=off,smm=on"),
        "{stdout}"
    );
    let report = Report::read(&out.join("report.json")).unwrap();
    assert!(!report.cells.is_empty());
    for cell in &report.cells {
        assert!(cell.id.ends_with("-via-lint"), "{cell}");
        assert!(cell.id.starts_with("50-edk2-x86_64-secure/"), "{cell}");
        assert_ne!(cell.verdict, VerdictKind::Error, "{cell}");
        assert_ne!(cell.verdict, VerdictKind::Fail, "{cell}");
    }
    let refused = report
        .cells
        .iter()
        .find(|c| {
            c.id.contains("/secure-boot/own-keys-vars-unsigned-via-lint")
        })
        .expect("the unsigned probe under our keys");
    assert_eq!(refused.verdict, VerdictKind::Pass, "{refused}");
    assert_eq!(
        refused.observed.payload,
        Some(PayloadOutcome::Decided(Outcome::Refused)),
        "{refused}"
    );
    // Kernel-boot cells are skipped: the line has no -kernel.
    let kernel = report
        .cells
        .iter()
        .find(|c| c.id.contains("/kernel-boot/"))
        .unwrap();
    assert_eq!(kernel.verdict, VerdictKind::Skip, "{kernel}");
    assert_eq!(output.status.code(), Some(0), "{stdout}");
}
