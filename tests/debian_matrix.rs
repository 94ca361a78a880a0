//! The Debian release matrix, covered in CI: every OVMF generation Debian serves (2020.11,
//! 2022.11, 2025.02, 2026.08) and every QEMU it serves (5.2, 7.2, 10.0.2, 10.0.13, 11.1.3) boot
//! at least once per check, through `ci/debian-matrix`'s trees (`--descriptors` inside each
//! package tree, `--qemu-root` for QEMUs that need their own C library). Each build's cells are
//! held to its expected results (tests/expected/). The full matrix is `bootmatrix run
//! $(./ci/debian-matrix)`; this is its covering subset, about 30 cells.
#![cfg(feature = "qemu")]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use bootmatrix::boot::Console;
use bootmatrix::judge::VerdictKind;
use bootmatrix::matrix::{Check, Outcome};
use bootmatrix::report::record::PayloadOutcome;
use common::expected::{compare, package_id};
use common::run::bootmatrix;
use regex::Regex;

/// Which firmware generation boots on which QEMU: each generation and each QEMU at least once,
/// 2026.08 also on the machine's QEMU 7.2 (before QEMU 10.0 hands over an unpatched kernel).
const PAIRS: &str = r"(@2020\.11[^/]*/qemu-5\.2\.|/qemu-10\.0\.2|@2025\.02[^/]*/qemu-10\.0\.13|@2026\.08[^/]*/qemu-(11\.1\.|7\.2\.))";

/// The cells of each pair: the enrolled build, whose shipped keys enforce Secure Boot, with our
/// certificate added to db: the signed payload must run, the unsigned one must not.
const CELLS: &str = r"sev-off/(secure-boot|option-rom|kernel-boot)/db-added-vars-(un)?signed$";

#[test]
fn every_generation_on_every_qemu_once_per_check() {
    let args = common::debian_matrix_args();
    let filter = format!("^40-edk2-x86_64-secure-enrolled{PAIRS}[^/]*/{CELLS}");
    let mut run_args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_args.extend(["--filter", &filter]);
    let run = bootmatrix(&run_args);

    // Coverage: per check, every generation and every QEMU version.
    let releases = ["2020.11", "2022.11", "2025.02", "2026.08"];
    let qemus = ["5.2", "7.2", "10.0.2", "10.0.13", "11.1"];
    for check in [Check::SecureBoot, Check::OptionRom, Check::KernelBoot] {
        let cells: Vec<_> = run.cells().iter().filter(|c| c.check == check).collect();
        let seen_releases: BTreeSet<String> = cells
            .iter()
            .filter_map(|c| c.firmware.edk2_release.map(|r| r.to_string()))
            .collect();
        let seen_qemus: BTreeSet<String> =
            cells.iter().map(|c| c.qemu_version.to_string()).collect();
        for release in releases {
            assert!(
                seen_releases.iter().any(|r| r.starts_with(release)),
                "{check}: no cell of edk2 {release}: {seen_releases:?}\n{}",
                run.stdout
            );
        }
        for qemu in qemus {
            assert!(
                seen_qemus.iter().any(|q| q.starts_with(qemu)),
                "{check}: no cell on QEMU {qemu}: {seen_qemus:?}\n{}",
                run.stdout
            );
        }
    }
    assert_eq!(run.cells().len(), 30, "{}", run.stdout);

    // No cell is an infrastructure error: every generation boots on every QEMU here.
    for cell in run.cells() {
        assert_ne!(cell.verdict, VerdictKind::Error, "{cell}");
    }
    // Each build's cells against its expected results.
    let scope = Regex::new(&format!("^40-edk2-x86_64-secure-enrolled/[^/]*/{CELLS}")).unwrap();
    let packages: BTreeSet<String> = run
        .cells()
        .iter()
        .filter_map(|c| c.firmware.package.as_deref().map(package_id))
        .map(str::to_string)
        .collect();
    assert_eq!(packages.len(), 4, "{packages:?}");
    for package in &packages {
        compare(&run.report, package, &scope);
    }
}

/// trixie's OVMF 2025.02 on bullseye's QEMU 5.2 under TCG: the release build stops before its
/// boot manager and writes nothing, on purpose (edk2 >= stable202302 on a QEMU whose CPU hotplug
/// register block is broken under TCG, TianoCore bug 4250). The one sign of it is QEMU's guest
/// error log, and that line is what the cell is decided on: no-boot, excused by the known
/// cause, never an error of the harness. A quarter of the deadline is plenty: the firmware
/// stops within half a second.
#[test]
fn trixies_firmware_stops_on_bullseyes_qemu_and_the_known_cause_is_in_the_evidence() {
    let args = common::debian_matrix_args();
    let filter =
        r"^60-edk2-x86_64@2025\.02[^/]*/qemu-5\.2\.0/sev-off/secure-boot/shipped-vars-signed$";
    let mut run_args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_args.extend(["--filter", filter, "--timeout-scale", "0.25"]);
    let run = bootmatrix(&run_args);
    assert_eq!(run.cells().len(), 1, "{}", run.stdout);
    let cell = &run.cells()[0];
    assert_eq!(cell.verdict, VerdictKind::KnownDeviation, "{cell}");
    assert_eq!(
        cell.observed.payload,
        Some(PayloadOutcome::Decided(Outcome::NoBoot)),
        "{cell}"
    );
    assert_eq!(
        cell.deviation.as_ref().map(|d| d.id.as_str()),
        Some("qemu-cpuhp-legacy-switch-rejected"),
        "{cell}"
    );
    let evidence = &cell.observed.evidence;
    assert!(
        evidence.iter().any(|e| e.stream == Console::QemuLog
            && e.line
                .starts_with("Invalid access at addr 0x0, size 4, region 'acpi-cpu-hotplug'")),
        "{cell}"
    );
    assert!(
        evidence.iter().all(|e| e.stream == Console::QemuLog),
        "nothing on the consoles: {cell}"
    );
    let stderr = std::fs::read_to_string(
        run.dir
            .path()
            .join("run/cells")
            .join(&cell.id)
            .join("stderr.log"),
    )
    .unwrap();
    assert!(
        stderr.contains("guest error line(s) (-d guest_errors)"),
        "{stderr}"
    );
}

/// Across releases, on Debian 12's enrolled OVMF: bookworm-or-later's shim 16.1 applies SBAT
/// level 2025021800 (grub,5) by default and must refuse bullseye's grub (grub,4); bullseye's
/// shim 15.8 (level 2024010900, grub,3) boots the newest grub. Both read from the console.
#[test]
fn shims_sbat_level_decides_the_cross_release_chains() {
    let args = common::debian_matrix_args();
    let filter = r"^40-edk2-x86_64-secure-enrolled/qemu-7\.2[^/]*/sev-off/distro-chain/shim-verbose-vars-shim-";
    let mut run_args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_args.extend(["--filter", filter]);
    let run = bootmatrix(&run_args);
    assert_eq!(run.cells().len(), 2, "{}", run.stdout);
    for cell in run.cells() {
        assert_eq!(cell.verdict, VerdictKind::Pass, "{cell}");
        let lines: Vec<&str> = cell.evidence().iter().map(|e| e.line.as_str()).collect();
        let (shim, grub) = (&cell.payload[0], &cell.payload[1]);
        if shim.suite > grub.suite {
            assert_eq!(
                cell.observed.payload,
                Some(PayloadOutcome::Decided(Outcome::SbatRevoked)),
                "{cell}"
            );
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains("was revoked by SbatLevel variable")),
                "{cell}"
            );
        } else {
            assert_eq!(
                cell.observed.payload,
                Some(PayloadOutcome::Decided(Outcome::ChainBooted)),
                "{cell}"
            );
        }
    }
}

/// Writes every build's expected results from a whole run's report (not a test: run by hand
/// after `bootmatrix run $(./ci/debian-matrix) --report-json FILE`, then review the diff):
/// `BOOTMATRIX_BLESS=1 BOOTMATRIX_REPORT=FILE cargo test --features qemu --test debian_matrix
/// -- --ignored expected_results_from_a_whole_run`.
#[test]
#[ignore = "writes tests/expected/ from BOOTMATRIX_REPORT; run by hand"]
fn expected_results_from_a_whole_run() {
    let path = std::env::var("BOOTMATRIX_REPORT").expect("BOOTMATRIX_REPORT names a report.json");
    assert!(
        std::env::var_os("BOOTMATRIX_BLESS").is_some(),
        "set BOOTMATRIX_BLESS=1 to write"
    );
    let report =
        bootmatrix::report::record::Report::read(Path::new(&path)).expect("a bootmatrix report");
    let packages: BTreeSet<String> = report
        .cells
        .iter()
        .filter_map(|c| c.firmware.package.as_deref().map(package_id))
        .map(str::to_string)
        .collect();
    let everything = Regex::new("").unwrap();
    for package in &packages {
        compare(&report, package, &everything);
    }
}
