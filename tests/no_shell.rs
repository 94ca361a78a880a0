//! no-shell, booted for real: Debian 12's Microsoft-enrolled OVMF with no bootable media. The
//! boot manager must refuse its built-in shell under the shipped, enforcing varstore.
#![cfg(feature = "qemu")]

mod common;

use bootmatrix::judge::VerdictKind;
use bootmatrix::matrix::Outcome;
use bootmatrix::report::record::PayloadOutcome;
use common::run::bootmatrix;
use common::scenarios::{rule_mut, scenarios_with};

const CELLS: &str = "^40-edk2-x86_64-secure-enrolled/[^/]*/sev-off/no-shell/";

#[test]
fn debian_12s_enrolled_build_refuses_its_shell_and_a_flipped_rule_fails() {
    let run = bootmatrix(&["--filter", CELLS]);
    assert_eq!(run.cells().len(), 1, "{}", run.stdout);
    let cell = &run.cells()[0];
    assert_eq!(cell.verdict, VerdictKind::Pass, "{cell}");
    assert_eq!(
        cell.observed.payload,
        Some(PayloadOutcome::Decided(Outcome::ShellRefused)),
        "{cell}"
    );
    let lines: Vec<&str> = cell.evidence().iter().map(|e| e.line.as_str()).collect();
    assert!(
        lines[0].contains("\"EFI Internal Shell\"") && lines[0].contains("Security Violation"),
        "{cell}"
    );
    assert!(lines[1].contains("BdsDxe: No bootable option"), "{cell}");

    let flipped = scenarios_with("no-shell.json", |s| {
        rule_mut(s, "enforcing-no-shell")["expect"] =
            serde_json::json!({"payload": "shell-reached"});
    });
    let run = bootmatrix(&[
        "--filter",
        CELLS,
        "--scenarios",
        flipped.path().to_str().unwrap(),
    ]);
    assert_eq!(
        run.cells()[0].verdict,
        VerdictKind::Fail,
        "{}",
        run.cells()[0]
    );
}
