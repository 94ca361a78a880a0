//! The expected-results comparison itself (tests/common/expected.rs): it finds every
//! disagreement between a run and a build's expected results, and no more.

use std::collections::BTreeMap;
use std::path::Path;

use bootmatrix::judge::VerdictKind;
use bootmatrix::report::record::{CellRecord, Report};
use regex::Regex;

mod common;
use common::expected::{bless, differences, file_for, full_key, key, package_id, seen, Expected};

#[test]
fn keys_cut_the_qemu_version_to_major_minor() {
    assert_eq!(
        key("50-edk2-x86_64-secure/qemu-7.2.22/sev-off/kernel-boot/own-keys-vars-signed"),
        "50-edk2-x86_64-secure/qemu-7.2/sev-off/kernel-boot/own-keys-vars-signed"
    );
    assert_eq!(key("a/qemu-10.0.2/b"), "a/qemu-10.0/b");
    assert_eq!(
        package_id("ovmf 2025.02-8+deb13u1 (unpacked in /x/trixie)"),
        "ovmf 2025.02-8+deb13u1"
    );
    assert_eq!(
        file_for("ovmf 2022.11-6+deb12u2").file_name().unwrap(),
        "ovmf_2022.11-6+deb12u2.json"
    );
}

/// backports' QEMU 10.0.2 and trixie's 10.0.13 share a major.minor: where they agree, one entry
/// holds both; where they disagree, each has its own, and neither is taken for the other.
#[test]
fn two_qemus_of_one_major_minor_get_their_own_entries_only_where_they_disagree() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/report.json");
    let report = Report::read(&path).unwrap();
    let template = &report.cells[0];
    let on = |qemu: &str, verdict: VerdictKind| {
        let mut c = template.clone();
        c.id = format!(
            "40-edk2-x86_64-secure-enrolled@2025.02-8+deb13u1/qemu-{qemu}/sev-off/secure-boot/\
             db-added-vars-signed"
        );
        c.verdict = verdict;
        c
    };
    let all = Regex::new("").unwrap();
    let (a, b) = (
        on("10.0.2", VerdictKind::Pass),
        on("10.0.13", VerdictKind::Pass),
    );
    let mut file = BTreeMap::new();
    bless(&mut file, &[&a, &b]);
    assert_eq!(file.keys().collect::<Vec<_>>(), [&key(&a.id)]);
    assert!(key(&a.id).contains("/qemu-10.0/"), "{}", key(&a.id));

    let b_fails = on("10.0.13", VerdictKind::Fail);
    bless(&mut file, &[&a, &b_fails]);
    let mut want = vec![full_key(&a.id), full_key(&b_fails.id)];
    want.sort();
    assert_eq!(file.keys().cloned().collect::<Vec<_>>(), want);
    assert!(differences(&file, &[&a, &b_fails], &all).is_empty());
    // The 10.0.13 entry does not excuse 10.0.2 failing, nor the other way round.
    let found = differences(&file, &[&on("10.0.2", VerdictKind::Fail), &b], &all);
    assert_eq!(found.len(), 2, "{found:#?}");
    // A third 10.0 QEMU has no entry of its own and no shared one to fall back on.
    let found = differences(&file, &[&on("10.0.5", VerdictKind::Pass)], &all);
    assert!(found[0].contains("not in the file"), "{found:#?}");
    // Agreeing again, the pair goes back to one entry.
    bless(&mut file, &[&a, &b]);
    assert_eq!(file.len(), 1);
}

#[test]
fn differences_name_every_disagreement() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/report.json");
    let report = Report::read(&path).unwrap();
    let cells: Vec<&CellRecord> = report.cells.iter().collect();
    let all = Regex::new("").unwrap();
    let mut expected: BTreeMap<String, Expected> =
        cells.iter().map(|c| (key(&c.id), seen(c))).collect();
    assert!(differences(&expected, &cells, &all).is_empty());

    // A verdict that changed, an entry that is missing, an entry without a cell.
    let id = &cells[0].id;
    expected.get_mut(&key(id)).unwrap().verdict = VerdictKind::Fail;
    let gone = key(&cells[1].id);
    expected.remove(&gone);
    expected.insert(format!("{}-extra", key(id)), seen(cells[0]));
    let found = differences(&expected, &cells, &all);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(
        found[0].starts_with(&format!("{}: expected Expected {{ verdict: Fail", key(id))),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|d| d.starts_with(&format!("{gone}: not in the file"))),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|d| d.ends_with("-extra: expected, but the run has no such cell")),
        "{found:#?}"
    );
    // Out of scope, the entry without a cell is not missed.
    let scope = Regex::new(&format!("^{}$", regex::escape(&key(id)))).unwrap();
    assert_eq!(differences(&expected, &cells, &scope).len(), 2);
}

#[test]
fn a_host_skip_is_not_held_against_a_host_that_can_run_the_cell() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/report.json");
    let report = Report::read(&path).unwrap();
    let ran = report
        .cells
        .iter()
        .find(|c| c.verdict == VerdictKind::Pass)
        .unwrap();
    let all = Regex::new("").unwrap();
    let skipped_here = |rule: &str| {
        BTreeMap::from([(
            key(&ran.id),
            Expected {
                verdict: VerdictKind::Skip,
                outcome: None,
                deviation: None,
                skipped_by: Some(rule.into()),
            },
        )])
    };
    assert!(differences(&skipped_here("sev-host"), &[ran], &all).is_empty());
    assert_eq!(differences(&skipped_here("shim"), &[ran], &all).len(), 1);
}
