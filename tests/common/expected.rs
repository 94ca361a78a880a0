//! Expected results as data, one file per firmware build: `tests/expected/<package>.json` holds,
//! for every cell of the build on each QEMU version (keyed by the cell id with the QEMU version
//! cut to major.minor, so a point release of the same QEMU needs no new entry; where two QEMUs
//! of one major.minor in a run disagree, such as backports' 10.0.2 and trixie's 10.0.13, each
//! gets an entry keyed by its full version, which wins over the short one), the verdict, the outcome the firmware showed, the known deviation that
//! excused it, or the admission rule that skipped it. The real-boot tests compare a run against
//! it; `BOOTMATRIX_BLESS=1` writes what the run gave into the file (review the diff).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bootmatrix::judge::VerdictKind;
use bootmatrix::matrix::Outcome;
use bootmatrix::report::record::{CellRecord, PayloadOutcome, Report};
use regex::Regex;
use serde::{Deserialize, Serialize};

/// Admission rules that depend on the host: a cell skipped by one of them here may run (and be
/// judged) on a host that has what it needs, so such an entry is not held against a run there.
const HOST_RULES: &[&str] = &["sev-kvm", "sev-host"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    pub verdict: VerdictKind,
    /// What the firmware did with the payload (cells that booted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// The known deviation that excused the cell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deviation: Option<String>,
    /// The admission rule that skipped (or refused) the cell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedFile {
    package: String,
    about: String,
    cells: BTreeMap<String, Expected>,
}

const ABOUT: &str = "What bootmatrix gives every cell of this firmware build under the strict \
profile, per QEMU version (major.minor in the key), on a host without usable KVM or SEV. \
Compared by tests/qemu_boot.rs; BOOTMATRIX_BLESS=1 rewrites it from a run.";

/// `tests/expected/ovmf_2022.11-6+deb12u2.json` for `ovmf 2022.11-6+deb12u2`.
pub fn file_for(package: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/expected")
        .join(format!("{}.json", package.replace(' ', "_")))
}

/// `ovmf 2025.02-8+deb13u1` of `ovmf 2025.02-8+deb13u1 (unpacked in DIR)`: name and version.
pub fn package_id(package: &str) -> &str {
    package.split(" (").next().unwrap_or(package)
}

/// A cell's key in its build's file: the id with the QEMU version cut to major.minor, and
/// without a package tree's `@VERSION` (the file is the build's already).
pub fn key(id: &str) -> String {
    let re = Regex::new(r"/qemu-(\d+)\.(\d+)\.\d+/").unwrap();
    let id = re.replace(id, "/qemu-$1.$2/");
    full_key(&id)
}

/// A cell's key with its full QEMU version: for cells whose QEMU disagrees with another of the
/// same major.minor.
pub fn full_key(id: &str) -> String {
    let tree = Regex::new(r"^([^/@]+)@[^/]*/").unwrap();
    tree.replace(id, "$1/").into_owned()
}

/// The QEMU part of a key (`qemu-10.0` or `qemu-10.0.13`).
fn qemu_of(key: &str) -> &str {
    key.split('/').nth(1).unwrap_or_default()
}

/// What the file expects of a cell: its full-version entry, else its major.minor one.
fn expected_for<'e>(
    expected: &'e BTreeMap<String, Expected>,
    cell: &CellRecord,
) -> Option<(String, &'e Expected)> {
    let full = full_key(&cell.id);
    let short = key(&cell.id);
    expected
        .get(&full)
        .map(|e| (full, e))
        .or_else(|| expected.get(&short).map(|e| (short, e)))
}

/// Writes what the run gave into `cells`: one major.minor entry where every QEMU of that
/// major.minor agrees, one full-version entry per QEMU where they do not.
pub fn bless(cells: &mut BTreeMap<String, Expected>, run: &[&CellRecord]) {
    let mut by_short: BTreeMap<String, Vec<(String, Expected)>> = BTreeMap::new();
    for cell in run {
        by_short
            .entry(key(&cell.id))
            .or_default()
            .push((full_key(&cell.id), seen(cell)));
    }
    for (short, seen) in by_short {
        let agree = seen.windows(2).all(|w| w[0].1 == w[1].1);
        for (full, _) in &seen {
            cells.remove(full);
        }
        cells.remove(&short);
        if agree {
            cells.insert(short, seen[0].1.clone());
        } else {
            cells.extend(seen);
        }
    }
}

/// What the run gave one cell, in the file's terms.
pub fn seen(cell: &CellRecord) -> Expected {
    Expected {
        verdict: cell.verdict,
        outcome: match cell.observed.payload {
            Some(PayloadOutcome::Decided(o)) => Some(o),
            _ => None,
        },
        deviation: cell.deviation.as_ref().map(|d| d.id.clone()),
        skipped_by: cell.admission_rule.map(|r| r.to_string()),
    }
}

fn load(path: &Path, package: &str) -> ExpectedFile {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let file: ExpectedFile =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(file.package, package, "{}", path.display());
            file
        }
        Err(_) => ExpectedFile {
            package: package.to_string(),
            about: ABOUT.to_string(),
            cells: BTreeMap::new(),
        },
    }
}

/// Compares every cell of `package` in `report` against its expected-results file, and every
/// entry of that file that `scope` (the run's `--filter`) selects, on a QEMU the run had,
/// against the run. Panics listing every difference.
pub fn compare(report: &Report, package: &str, scope: &Regex) {
    let path = file_for(package);
    let mut file = load(&path, package);
    let cells: Vec<&CellRecord> = report
        .cells
        .iter()
        .filter(|c| c.firmware.package.as_deref().map(package_id) == Some(package))
        .collect();
    assert!(!cells.is_empty(), "no cell of {package} in the run");
    if std::env::var_os("BOOTMATRIX_BLESS").is_some() {
        bless(&mut file.cells, &cells);
        let text = serde_json::to_string_pretty(&file).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
        return;
    }
    let problems = differences(&file.cells, &cells, scope);
    assert!(
        problems.is_empty(),
        "{} differs from the run ({} cells):\n  {}\n(BOOTMATRIX_BLESS=1 rewrites it; review the diff)",
        path.display(),
        cells.len(),
        problems.join("\n  ")
    );
}

/// Every way the run's cells of one build and the expected entries disagree.
pub fn differences(
    expected: &BTreeMap<String, Expected>,
    cells: &[&CellRecord],
    scope: &Regex,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut qemus = std::collections::BTreeSet::new();
    for cell in cells {
        let k = key(&cell.id);
        qemus.insert(qemu_of(&k).to_string());
        qemus.insert(qemu_of(&full_key(&cell.id)).to_string());
        let got = seen(cell);
        match expected_for(expected, cell) {
            None => problems.push(format!("{k}: not in the file; the run gave {got:?}")),
            Some((_, want)) if *want == got => {}
            Some((_, want))
                if want
                    .skipped_by
                    .as_deref()
                    .is_some_and(|r| HOST_RULES.contains(&r))
                    && got.skipped_by.is_none() => {}
            Some((k, want)) => problems.push(format!(
                "{k}: expected {want:?}, the run gave {got:?}\n    {}",
                cell.reason
            )),
        }
    }
    for k in expected.keys() {
        let qemu = qemu_of(k);
        let ran = cells
            .iter()
            .any(|c| key(&c.id) == *k || full_key(&c.id) == *k);
        if scope.is_match(k) && qemus.contains(qemu) && !ran {
            problems.push(format!("{k}: expected, but the run has no such cell"));
        }
    }
    problems
}
