//! What each firmware generation does on each QEMU, as Markdown tables made from a real run's
//! `report.json`: the README's "What Debian's OVMF builds do" (`bootmatrix table REPORT
//! --readme README.md` rewrites it between its markers).
//!
//! One table per check; a row per descriptor and variant (SEV off), a column per firmware
//! generation (edk2 release). An entry is what the cells showed and their verdict; where QEMU
//! versions disagree, each group of versions is named.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::record::{CellRecord, PayloadOutcome, Report};
use crate::judge::VerdictKind;
use crate::matrix::Check;

/// The markers around the generated part of a README.
pub const BEGIN: &str =
    "<!-- bootmatrix table: begin (made by `bootmatrix table REPORT --readme README.md`) -->";
pub const END: &str = "<!-- bootmatrix table: end -->";

/// The generation a cell's firmware belongs to: its edk2 release, else its package.
fn generation(cell: &CellRecord) -> String {
    match (&cell.firmware.edk2_release, &cell.firmware.package) {
        (Some(release), _) => release.to_string(),
        (None, Some(package)) => package.split(" (").next().unwrap_or(package).to_string(),
        (None, None) => "unknown".to_string(),
    }
}

/// The descriptor's name without `.json`.
fn descriptor(cell: &CellRecord) -> &str {
    cell.descriptor
        .strip_suffix(".json")
        .unwrap_or(&cell.descriptor)
}

/// What one cell shows in an entry: `` `refused` pass ``, `skip (shim)`, `` `executed` known-deviation ``.
fn shown(cell: &CellRecord) -> String {
    let outcome = match &cell.observed.payload {
        Some(PayloadOutcome::Decided(o)) => Some(format!("`{o}`")),
        Some(PayloadOutcome::Undecided) => Some("undecided".to_string()),
        None => None,
    };
    let verdict = match (cell.verdict, cell.admission_rule) {
        (VerdictKind::Skip, Some(rule)) => format!("skip ({rule})"),
        (verdict, _) => verdict.to_string(),
    };
    match outcome {
        Some(outcome) if cell.verdict != VerdictKind::Skip => format!("{outcome} {verdict}"),
        _ => verdict,
    }
}

/// A QEMU version as (major, minor, micro).
type QemuVersion = (u32, u32, u32);

/// A cell's QEMU version: the whole of it, since 10.0.2 and 10.0.13 may disagree.
fn qemu(cell: &CellRecord) -> QemuVersion {
    let v = cell.qemu_version;
    (v.major, v.minor, v.micro)
}

/// One entry: the cells of one row and one generation, grouped by what they showed.
fn entry(cells: &[&CellRecord]) -> String {
    // What was shown -> the QEMU versions that showed it.
    let mut groups: BTreeMap<String, BTreeSet<QemuVersion>> = BTreeMap::new();
    for cell in cells {
        groups.entry(shown(cell)).or_default().insert(qemu(cell));
    }
    if groups.len() == 1 {
        return groups.into_keys().next().unwrap_or_default();
    }
    let mut parts: Vec<(BTreeSet<QemuVersion>, String)> = groups
        .into_iter()
        .map(|(text, qemus)| (qemus, text))
        .collect();
    parts.sort();
    parts
        .into_iter()
        .map(|(qemus, text)| {
            let versions: Vec<String> = qemus
                .iter()
                .map(|(a, b, c)| format!("{a}.{b}.{c}"))
                .collect();
            format!("QEMU {}: {text}", versions.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The tables for every check in `report`, with a line saying what they were made from.
pub fn markdown(report: &Report) -> String {
    let cells: Vec<&CellRecord> = report.cells.iter().filter(|c| !c.sev).collect();
    let generations: BTreeSet<String> = cells.iter().map(|c| generation(c)).collect();
    // By version, not as text: 5.2.0 before 10.0.2.
    let qemus: BTreeSet<_> = cells.iter().map(|c| c.qemu_version).collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Made from a run of {} cells (SEV off) on QEMU {}, firmware generations (edk2) {}.",
        cells.len(),
        qemus
            .into_iter()
            .map(|q| q.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        generations.iter().cloned().collect::<Vec<_>>().join(", ")
    );
    for &check in Check::ALL {
        // (descriptor, variant) -> generation -> cells.
        let mut rows: BTreeMap<(String, String), BTreeMap<String, Vec<&CellRecord>>> =
            BTreeMap::new();
        for cell in cells.iter().filter(|c| c.check == check) {
            rows.entry((descriptor(cell).to_string(), cell.variant.to_string()))
                .or_default()
                .entry(generation(cell))
                .or_default()
                .push(cell);
        }
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n`{check}`\n");
        let _ = write!(out, "| descriptor | variant |");
        for g in &generations {
            let _ = write!(out, " {g} |");
        }
        let _ = write!(out, "\n| --- | --- |");
        for _ in &generations {
            let _ = write!(out, " --- |");
        }
        out.push('\n');
        for ((d, variant), by_generation) in &rows {
            let _ = write!(out, "| {d} | {variant} |");
            for g in &generations {
                let text = by_generation
                    .get(g)
                    .map_or_else(|| "-".to_string(), |c| entry(c));
                let _ = write!(out, " {text} |");
            }
            out.push('\n');
        }
    }
    out
}

/// `text` with the part between [`BEGIN`] and [`END`] replaced by `table`.
pub fn replace_in(text: &str, table: &str) -> Result<String, String> {
    let start = text
        .find(BEGIN)
        .ok_or_else(|| format!("no line {BEGIN:?} to put the table after"))?;
    let after_begin = start + BEGIN.len();
    let end = text[after_begin..]
        .find(END)
        .map(|i| after_begin + i)
        .ok_or_else(|| format!("no line {END:?} after the table's begin marker"))?;
    Ok(format!(
        "{}\n{}{}",
        &text[..after_begin],
        table,
        &text[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures;

    #[test]
    fn groups_qemu_versions_that_disagree_and_marks_missing_generations() {
        let report = fixtures::table_report();
        let text = markdown(&report);
        assert!(
            text.starts_with("Made from a run of 4 cells (SEV off) on QEMU 7.2.22, 10.0.2"),
            "{text}"
        );
        assert!(
            text.contains("| descriptor | variant | 2022.11 | 2025.02 |"),
            "{text}"
        );
        assert!(
            text.contains(
                "| 40-edk2-x86_64-secure-enrolled | db-added-vars/unsigned | `legacy-silent` known-deviation | QEMU 7.2.22: `legacy-warned` known-deviation; QEMU 10.0.2: `refused` pass |"
            ),
            "{text}"
        );
        // A descriptor only one generation has: the other is "-".
        assert!(
            text.contains("| 60-edk2-x86_64 | shipped-vars/unsigned | skip (shim) | - |"),
            "{text}"
        );
        // No SEV-on cell, and no table for a check without cells.
        assert!(!text.contains("`option-rom`"), "{text}");
        assert!(!text.contains("sev-on"), "{text}");
    }

    #[test]
    fn replaces_only_between_the_markers() {
        let readme = format!("intro\n{BEGIN}\nold table\n{END}\nrest\n");
        let new = replace_in(&readme, "new table\n").unwrap();
        assert_eq!(new, format!("intro\n{BEGIN}\nnew table\n{END}\nrest\n"));
        assert!(replace_in("no markers", "t").unwrap_err().contains("begin"));
        assert!(replace_in(&format!("{BEGIN} only"), "t")
            .unwrap_err()
            .contains(END));
    }
}
