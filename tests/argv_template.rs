//! `run --argv-template`, booted for real: a Kata-style command line (tests/data/templates)
//! runs the secure-boot, option-rom and kernel-boot cells of Debian 12's enrolled OVMF in its
//! own shape, with the same verdicts as bootmatrix's own argv; the same line with SMM off gives
//! a different verdict, and a correct one: the SMM build never reaches its boot manager.
#![cfg(feature = "qemu")]

mod common;

use bootmatrix::judge::VerdictKind;
use bootmatrix::matrix::Outcome;
use bootmatrix::report::record::{CellRecord, PayloadOutcome};
use common::run::bootmatrix;

const TEMPLATES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/templates");

fn outcome(cell: &CellRecord) -> Option<Outcome> {
    match cell.observed.payload {
        Some(PayloadOutcome::Decided(o)) => Some(o),
        _ => None,
    }
}

#[test]
fn a_kata_style_line_gives_the_verdicts_of_bootmatrixs_own_argv() {
    let template = format!("{TEMPLATES}/kata-q35.args");
    let run = bootmatrix(&[
        "--descriptors",
        "/usr/share/qemu/firmware",
        "--argv-template",
        &template,
        "--filter",
        r"^40-edk2-x86_64-secure-enrolled/qemu-7\.2[^/]*/sev-off/(secure-boot|option-rom|kernel-boot)/db-added-vars-(signed|unsigned)(-no-legacy-loader)?(-via-kata-q35)?$",
    ]);
    let via: Vec<&CellRecord> = run
        .cells()
        .iter()
        .filter(|c| c.id.ends_with("-via-kata-q35"))
        .collect();
    // secure-boot 2, option-rom 2, kernel-boot 4 (no shim: -shim is bootmatrix's own).
    assert_eq!(via.len(), 8, "{}", run.stdout);
    for cell in via {
        let own = run.by_id(cell.id.strip_suffix("-via-kata-q35").unwrap());
        assert_eq!(cell.verdict, own.verdict, "{cell}\n{own}");
        assert_eq!(outcome(cell), outcome(own), "{cell}\n{own}");
        assert!(outcome(cell).is_some(), "{cell}");
        let argv = cell.argv.as_deref().unwrap_or_default();
        assert!(
            argv.iter().any(|w| w == "-name") && argv.iter().any(|w| w.contains("nvdimm=on")),
            "the cell ran the template's line: {cell}"
        );
    }
}

#[test]
fn the_same_line_with_smm_off_never_reaches_the_boot_manager_and_fails() {
    let template = format!("{TEMPLATES}/kata-q35-no-smm.args");
    // A quarter of the deadlines: the firmware stops at once, QEMU's log shows it.
    let run = bootmatrix(&[
        "--descriptors",
        "/usr/share/qemu/firmware",
        "--argv-template",
        &template,
        "--filter",
        r"^40-edk2-x86_64-secure-enrolled/qemu-7\.2[^/]*/sev-off/secure-boot/db-added-vars-signed-via-kata-q35-no-smm$",
        "--timeout-scale",
        "0.25",
    ]);
    assert_eq!(run.cells().len(), 1, "{}", run.stdout);
    let cell = &run.cells()[0];
    assert_eq!(cell.verdict, VerdictKind::Fail, "{cell}");
    assert_eq!(outcome(cell), Some(Outcome::NoBoot), "{cell}");
    let argv = cell.argv.as_deref().unwrap_or_default();
    assert!(argv.iter().any(|w| w.contains("smm=off")), "{cell}");
    assert!(
        cell.reason.contains("never reached its boot manager"),
        "{cell}"
    );
}
