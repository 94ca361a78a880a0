//! The distro chain, booted for real: the machine's own suite's Microsoft-signed shim, its
//! Debian-signed grub and its signed kernel (fetched by `./ci/setup`) under Debian 12's
//! Microsoft-enrolled varstore as shipped.
#![cfg(feature = "qemu")]

mod common;

use bootmatrix::judge::VerdictKind;
use bootmatrix::matrix::Outcome;
use bootmatrix::report::record::{CellRecord, PayloadOutcome};
use common::run::{bootmatrix, Run};
use common::scenarios::{rule_mut, scenarios_with};

/// The enrolled descriptor's distro-chain cells on the machine's QEMU, without SEV.
const CELLS: &str = "^40-edk2-x86_64-secure-enrolled/[^/]*/sev-off/distro-chain/";

fn outcome(cell: &CellRecord) -> Option<Outcome> {
    match cell.observed.payload {
        Some(PayloadOutcome::Decided(o)) => Some(o),
        _ => None,
    }
}

fn evidence(cell: &CellRecord) -> String {
    let lines: Vec<&str> = cell.evidence().iter().map(|e| e.line.as_str()).collect();
    lines.join("\n")
}

fn by_variant<'r>(run: &'r Run, end: &str) -> &'r CellRecord {
    run.cell("40-edk2-x86_64-secure-enrolled/", end)
}

#[test]
fn the_shipped_chain_boots_with_secure_boot_and_altered_kernels_are_refused() {
    let run = bootmatrix(&["--filter", CELLS]);
    assert_eq!(run.cells().len(), 3, "{}", run.stdout);

    let shipped = by_variant(&run, "-as-shipped");
    assert_eq!(shipped.verdict, VerdictKind::Pass, "{shipped}");
    assert_eq!(outcome(shipped), Some(Outcome::ChainBooted), "{shipped}");
    assert!(
        evidence(shipped).contains("secureboot: Secure boot enabled"),
        "{shipped}"
    );
    // The components travel with the verdict: shim, grub and kernel, each with its package.
    let roles: Vec<&str> = shipped.payload.iter().map(|p| p.role.as_str()).collect();
    assert_eq!(roles, ["shim", "grub", "kernel"], "{shipped}");
    assert!(
        shipped.payload[0].package.starts_with("shim-signed "),
        "{shipped}"
    );
    assert!(
        shipped.payload.iter().all(|p| p.sha256.len() == 64),
        "{shipped}"
    );

    for end in ["-unsigned-kernel", "-test-signed-kernel"] {
        let cell = by_variant(&run, end);
        assert_eq!(cell.verdict, VerdictKind::Pass, "{cell}");
        assert_eq!(outcome(cell), Some(Outcome::KernelRefused), "{cell}");
        assert!(evidence(cell).contains("bad shim signature"), "{cell}");
    }

    // Flipped expectations: the same boots fail.
    let flipped = scenarios_with("distro-chain.json", |s| {
        rule_mut(s, "chain-as-shipped")["expect"] =
            serde_json::json!({"payload": "kernel-refused"});
        rule_mut(s, "chain-unsigned-kernel")["expect"] =
            serde_json::json!({"payload": "chain-booted", "secure_boot": 1});
        rule_mut(s, "chain-test-signed-kernel")["expect"] =
            serde_json::json!({"payload": "chain-booted", "secure_boot": 1});
    });
    let scenarios = flipped.path().to_str().unwrap();
    let run = bootmatrix(&["--filter", CELLS, "--scenarios", scenarios]);
    assert_eq!(run.cells().len(), 3, "{}", run.stdout);
    for cell in run.cells() {
        assert_eq!(cell.verdict, VerdictKind::Fail, "{cell}");
    }
    assert_ne!(run.status, 0);
}
