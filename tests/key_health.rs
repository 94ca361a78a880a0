//! key-health as a check of `run`: Debian 12's enrolled build, read without a boot. Its
//! varstore (as shipped and as bootmatrix enrolls it) still trusts only Microsoft's 2011 CAs,
//! which expired in 2026, and its dbx holds only the empty-file hash: `keys-outdated`, a `fail`
//! under the strict profile; the upstream profile holds edk2 2022.11 to nothing of the 2023
//! rollover (EnrollDefaultKeys enrolls the 2023 set since stable202511).
#![cfg(feature = "qemu")]

mod common;

use bootmatrix::boot::Console;
use bootmatrix::judge::VerdictKind;
use bootmatrix::matrix::Outcome;
use bootmatrix::report::record::PayloadOutcome;
use common::run::bootmatrix;

const CELLS: &str = "^40-edk2-x86_64-secure-enrolled/[^/]*/sev-off/key-health/";

#[test]
fn debian_12s_enrolled_varstore_is_outdated_under_strict_and_owes_nothing_upstream() {
    let run = bootmatrix(&["--filter", CELLS]);
    assert_eq!(run.cells().len(), 2, "{}", run.stdout);
    for cell in run.cells() {
        assert_eq!(cell.verdict, VerdictKind::Fail, "{cell}");
        assert_eq!(
            cell.observed.payload,
            Some(PayloadOutcome::Decided(Outcome::KeysOutdated)),
            "{cell}"
        );
        let lines: Vec<&str> = cell.evidence().iter().map(|e| e.line.as_str()).collect();
        assert_eq!(lines.len(), 4, "one line per rule: {cell}");
        assert!(cell
            .evidence()
            .iter()
            .all(|e| e.stream == Console::Varstore));
        assert!(lines[0].starts_with("ms-2023-db: fail: "), "{cell}");
        assert!(cell.reason.contains("ms-2023-db"), "{cell}");
    }
    assert_ne!(run.status, 0);

    let run = bootmatrix(&["--filter", CELLS, "--profile", "upstream"]);
    for cell in run.cells() {
        assert_eq!(cell.verdict, VerdictKind::Pass, "{cell}");
        assert_eq!(
            cell.observed.payload,
            Some(PayloadOutcome::Decided(Outcome::KeysCurrent)),
            "{cell}"
        );
        assert!(
            cell.evidence()
                .iter()
                .all(|e| e.line.contains(": not-applicable: ")),
            "{cell}"
        );
    }
}
