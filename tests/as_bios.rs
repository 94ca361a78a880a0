//! as-bios, booted for real: every build started with `-bios`, as a runtime that ignores the
//! descriptor starts it. Debian 12's three descriptors name 4 MiB builds, which QEMU will not
//! load as a BIOS ROM; the 2 MiB builds it still ships (none of its descriptors names them;
//! tests/data/descriptors-as-bios describes them) are what such runtimes pick: with Secure Boot
//! and SMM it shows nothing at all, without Secure Boot it boots the payload with Secure Boot
//! off.
#![cfg(feature = "qemu")]

mod common;

use bootmatrix::boot::Console;
use bootmatrix::judge::VerdictKind;
use bootmatrix::matrix::Outcome;
use bootmatrix::report::record::PayloadOutcome;
use common::run::bootmatrix;
use common::scenarios::{rule_mut, scenarios_with};

const AS_BIOS: &str = "/sev-off/as-bios/";
const TWO_MIB: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/descriptors-as-bios"
);

fn outcome(cell: &bootmatrix::report::record::CellRecord) -> Option<Outcome> {
    match cell.observed.payload {
        Some(PayloadOutcome::Decided(o)) => Some(o),
        _ => None,
    }
}

#[test]
fn debian_12s_builds_under_bios_are_refused_hang_or_boot_without_secure_boot() {
    // Half the deadlines: the bound is 20 s, and the 2 MiB build reaches its payload in under
    // 8 s under TCG.
    let run = bootmatrix(&[
        "--descriptors",
        "/usr/share/qemu/firmware",
        "--descriptors",
        TWO_MIB,
        "--no-path-qemu",
        "--qemu",
        "/usr/bin/qemu-system-x86_64",
        "--filter",
        AS_BIOS,
        "--timeout-scale",
        "0.5",
    ]);
    assert_eq!(run.cells().len(), 10, "{}", run.stdout);
    for cell in run.cells() {
        assert_eq!(cell.verdict, VerdictKind::Pass, "{cell}");
        let first = &cell.evidence()[0];
        match &cell.descriptor[..2] {
            // The 4 MiB builds: QEMU's own message, no guest.
            "40" | "50" | "60" => {
                assert_eq!(outcome(cell), Some(Outcome::QemuRefused), "{cell}");
                assert_eq!(first.stream, Console::QemuLog, "{cell}");
                assert!(first.line.contains("could not load PC BIOS"), "{cell}");
            }
            "45" => {
                assert_eq!(outcome(cell), Some(Outcome::NoBoot), "{cell}");
                let last = cell.evidence().last().unwrap();
                assert_eq!(last.stream, Console::Runner, "{cell}");
                assert!(
                    last.line.contains("0 line(s) on the serial console"),
                    "{cell}"
                );
            }
            "65" => {
                assert_eq!(outcome(cell), Some(Outcome::Booted), "{cell}");
                assert_eq!(cell.observed.secure_boot_value(), Some(0), "{cell}");
                assert_eq!(first.stream, Console::Serial, "{cell}");
            }
            other => panic!("unexpected descriptor {other}: {cell}"),
        }
    }
}

#[test]
fn a_flipped_expectation_fails_the_build_that_boots_without_secure_boot() {
    // The 2 MiB build without Secure Boot, held to the Secure Boot rule: its probe runs with
    // SecureBoot=0, which is the failure a runtime must hear of.
    let flipped = scenarios_with("as-bios.json", |s| {
        rule_mut(s, "as-bios-without-secure-boot")["expect"] =
            serde_json::json!({"payload": ["qemu-refused", "no-boot", "refused"]});
    });
    let run = bootmatrix(&[
        "--descriptors",
        TWO_MIB,
        "--no-path-qemu",
        "--qemu",
        "/usr/bin/qemu-system-x86_64",
        "--filter",
        "^65-ovmf-2m/.*/as-bios/builtin-vars-unsigned$",
        "--scenarios",
        flipped.path().to_str().unwrap(),
    ]);
    assert_eq!(run.cells().len(), 1, "{}", run.stdout);
    let cell = &run.cells()[0];
    assert_eq!(cell.verdict, VerdictKind::Fail, "{cell}");
    assert_eq!(outcome(cell), Some(Outcome::Booted), "{cell}");
    assert!(cell.reason.contains("but it ran"), "{cell}");
    assert_ne!(run.status, 0);
}
