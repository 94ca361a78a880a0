//! Report: progress lines, the summary table, per-cell `verdict.json`, the run's `report.json`
//! ([`record`]: one typed record per cell), JUnit XML ([`junit`]) and the HTML grid ([`html`]).

pub mod expect;
pub mod explain;
pub mod folder;
pub mod html;
pub mod junit;
pub mod merge;
pub mod record;
pub mod table;
pub mod words;

#[cfg(test)]
mod fixtures;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::judge::VerdictKind;
use crate::run::CellResult;
use record::{CellRecord, PayloadOutcome, Report};

/// The record of every cell, in the order given.
pub fn records(results: &[CellResult]) -> Vec<CellRecord> {
    results.iter().map(CellRecord::new).collect()
}

/// The run's `report.json`.
pub fn report_json(run: Option<record::RunRecord>, cells: &[CellRecord]) -> Report {
    Report {
        run,
        shards: Vec::new(),
        cells: cells.to_vec(),
    }
}

/// The cell's own `verdict.json` (its record, as in `report.json`), beside its logs.
pub fn write_cell_verdict(dir: &Path, result: &CellResult) -> Result<(), String> {
    write_json(&dir.join("verdict.json"), &CellRecord::new(result))
}

pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// One line per finished cell.
pub fn progress_line(result: &CellResult, done: usize, total: usize) -> String {
    let r = CellRecord::new(result);
    let time = r
        .decided_ms
        .or(r.elapsed_ms)
        .map(|ms| format!(" {:.1}s", ms as f64 / 1000.0))
        .unwrap_or_default();
    format!(
        "[{done:>width$}/{total}] {:<15} {}{time}  {}",
        r.verdict.as_str().to_uppercase(),
        r.id,
        short_observation(&r),
        width = total.to_string().len()
    )
}

fn short_observation(r: &CellRecord) -> String {
    match (r.observed.outcome(), r.verdict) {
        (_, VerdictKind::Skip | VerdictKind::Error) => r.reason.clone(),
        (Some(outcome), _) => format!(
            "{outcome}: {}",
            r.observed.description.as_deref().unwrap_or_default()
        ),
        (None, _) => String::new(),
    }
}

/// The outcome column: what happened to the payload, and the Secure Boot state the guest saw.
fn outcome_cell(r: &CellRecord) -> String {
    match r.observed.payload {
        Some(PayloadOutcome::Decided(o)) => match r.observed.secure_boot_value() {
            Some(sb) => format!("{o} (SB={sb})"),
            None => o.to_string(),
        },
        Some(PayloadOutcome::Undecided) => "undecided".into(),
        None if r.elapsed_ms.is_some() => "undecided".into(),
        None => String::new(),
    }
}

/// The summary table and the totals; non-passing cells get their reason below the table.
pub fn summary_table(cells: &[CellRecord]) -> String {
    let headers = [
        "cell", "accel", "verdict", "observed", "decided", "expected",
    ];
    let rows: Vec<[String; 6]> = cells
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                r.accel.to_string(),
                r.verdict.to_string(),
                outcome_cell(r),
                r.decided_ms
                    .map(|ms| format!("{ms} ms"))
                    .unwrap_or_default(),
                r.expectation
                    .as_ref()
                    .map(|e| e.expect.payload.to_string())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = String::new();
    out.push_str(&line(&headers.map(String::from)));
    out.push('\n');
    for row in &rows {
        out.push_str(&line(row));
        out.push('\n');
    }
    out.push_str(&format!("\n{}\n", totals(cells)));
    for (index, banner) in BANNERS.iter().enumerate() {
        let of_kind: Vec<&CellRecord> = cells
            .iter()
            .filter(|r| banner_of(r) == Some(index))
            .collect();
        if of_kind.is_empty() {
            continue;
        }
        out.push_str(&format!("\n{banner}:\n"));
        for r in of_kind {
            out.push_str(&format!("  {}\n    {}\n", r.id, r.reason));
            if !matches!(r.verdict, VerdictKind::Fail | VerdictKind::Error) {
                continue;
            }
            for e in r.evidence() {
                out.push_str(&format!("    {e}\n"));
            }
            if let Some(dir) = r.log_dir.as_deref().filter(|d| d.exists()) {
                out.push_str(&format!("    logs: {}\n", dir.display()));
            }
        }
    }
    out
}

/// The number of cells of every verdict (all of them, zero or not).
pub fn counts(cells: &[CellRecord]) -> BTreeMap<VerdictKind, usize> {
    let mut counts: BTreeMap<VerdictKind, usize> =
        VerdictKind::ALL.iter().map(|k| (*k, 0)).collect();
    for r in cells {
        *counts.entry(r.verdict).or_default() += 1;
    }
    counts
}

/// `12 cells: 9 pass, 1 fail, 0 known-deviation, 2 skip, 0 error`.
pub fn totals(cells: &[CellRecord]) -> String {
    let counts: Vec<String> = counts(cells)
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    format!("{} cells: {}", cells.len(), counts.join(", "))
}

/// The summary's sections below the table, in order.
const BANNERS: [&str; 5] = [
    "FAILURES (the firmware did not do what its descriptor promises)",
    "ERRORS (the harness or QEMU could not decide these cells)",
    "KNOWN DEVIATIONS (the firmware breaks a rule in a documented way)",
    "REFUSED BY THE PLANNER (the configuration itself breaks policy; skipped)",
    "SKIPPED",
];

/// Which of [`BANNERS`] lists the cell; None for a pass.
fn banner_of(r: &CellRecord) -> Option<usize> {
    match r.verdict {
        VerdictKind::Pass => None,
        VerdictKind::Fail => Some(0),
        VerdictKind::Error => Some(1),
        VerdictKind::KnownDeviation => Some(2),
        VerdictKind::Skip if r.refused_by_planner => Some(3),
        VerdictKind::Skip => Some(4),
    }
}

/// Exit status for a run: non-zero on any fail or error.
pub fn exit_code(cells: &[CellRecord]) -> i32 {
    let bad = cells
        .iter()
        .any(|r| matches!(r.verdict, VerdictKind::Fail | VerdictKind::Error));
    i32::from(bad)
}

#[cfg(test)]
mod tests {
    use super::fixtures::{cell, every_shape, failed, judged, passed, running, unjudged};
    use super::*;
    use crate::judge::Verdict;
    use crate::matrix::{Check, Outcome};
    use crate::observe::script::{self, Serial, PROBE};
    use crate::plan::admission::{AdmissionRule, Denial};
    use crate::plan::Action;

    fn record(result: &CellResult) -> CellRecord {
        CellRecord::new(result)
    }

    #[test]
    fn an_error_keeps_the_lines_its_boot_showed() {
        let r = judged(
            "e",
            Check::SecureBoot,
            Outcome::Refused,
            &[
                Serial(4000, script::SHELL_REFUSAL),
                Serial(4100, script::GAVE_UP),
            ],
        );
        let rec = record(&r);
        assert_eq!(rec.verdict, VerdictKind::Error);
        assert_eq!(
            rec.observed.outcome(),
            Some(Outcome::NothingBootable),
            "{rec}"
        );
        assert_eq!(rec.evidence()[0].line, script::GAVE_UP);
        let table = summary_table(&[rec]);
        assert!(
            table.contains("[serial +4.100 s] BdsDxe: No bootable option"),
            "{table}"
        );
    }

    #[test]
    fn exit_code_is_one_on_fail_or_error_only() {
        let pass = record(&passed("p"));
        let skip = record(&unjudged("s", Verdict::skip("no SEV")));
        let error = record(&unjudged("e", Verdict::error("x")));
        assert_eq!(exit_code(&[pass.clone(), skip.clone()]), 0);
        assert_eq!(exit_code(&[pass, record(&failed("f"))]), 1);
        assert_eq!(exit_code(&[skip, error]), 1);
    }

    #[test]
    fn summary_names_every_non_passing_cell_with_its_reason_and_evidence() {
        let table = summary_table(&records(&[
            passed("cell-pass"),
            failed("cell-fail"),
            unjudged("cell-skip", Verdict::skip("host has no AMD SEV")),
        ]));
        assert!(table.contains("3 cells: 1 pass, 1 fail, 0 known-deviation, 1 skip, 0 error"));
        assert!(table.contains("FAILURES"), "{table}");
        assert!(
            table.contains("expected the probe to be refused"),
            "{table}"
        );
        assert!(
            table.contains(&format!("[serial +3.421 s] {PROBE}")),
            "{table}"
        );
        assert!(table.contains("host has no AMD SEV"), "{table}");
        assert!(!table.contains("as expected"), "{table}");
    }

    #[test]
    fn summary_rows_show_outcome_secure_boot_decision_time_and_expectation() {
        let table = summary_table(&records(&every_shape()));
        let row = |id: &str| {
            table
                .lines()
                .find(|l| l.split_whitespace().next() == Some(id))
                .unwrap_or_else(|| panic!("no row {id}:\n{table}"))
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(row("sb-pass"), "sb-pass tcg pass runs (SB=1) 3421 ms runs");
        assert_eq!(
            row("kernel-deviation"),
            "kernel-deviation tcg known-deviation legacy-silent (SB=1) 5100 ms refused"
        );
        // A boot that decided nothing is undecided, with or without lines to show.
        assert_eq!(
            row("sb-undecided"),
            "sb-undecided tcg error undecided 4000 ms runs"
        );
        assert_eq!(row("sb-deadline"), "sb-deadline tcg error undecided runs");
        assert_eq!(row("sev-probe"), "sev-probe tcg skip");
    }

    #[test]
    fn summary_points_at_the_logs_of_a_failed_cell_that_has_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut with_logs = record(&failed("with-logs"));
        with_logs.log_dir = Some(dir.path().to_path_buf());
        let mut gone = record(&failed("gone"));
        gone.log_dir = Some(dir.path().join("no-such-folder"));
        let table = summary_table(&[with_logs, gone]);
        assert!(
            table.contains(&format!("    logs: {}\n", dir.path().display())),
            "{table}"
        );
        assert_eq!(table.matches("logs:").count(), 1, "{table}");
    }

    #[test]
    fn planner_refusals_get_their_own_heading_and_flag() {
        let mut refused = unjudged("sev-kernel", Verdict::skip("refused by policy: x"));
        refused.cell.action = Action::Refused(Denial::new(
            AdmissionRule::SevKernelPolicy,
            "refused by policy: x",
        ));
        let skipped = unjudged("sev-probe", Verdict::skip("host has no AMD SEV"));
        let table = summary_table(&records(&[refused.clone(), skipped]));
        let refusals = table.find("REFUSED BY THE PLANNER").expect(&table);
        let skips = table.find("SKIPPED").expect(&table);
        assert!(table[refusals..skips].contains("sev-kernel"), "{table}");
        assert!(table[skips..].contains("sev-probe"), "{table}");
        assert!(!table[skips..].contains("sev-kernel"), "{table}");
        assert!(record(&refused).refused_by_planner);
    }

    #[test]
    fn progress_lines_give_the_outcome_or_the_reason() {
        let pass = progress_line(&passed("p"), 3, 12);
        assert_eq!(
            pass,
            "[ 3/12] PASS            p 3.4s  runs: ran (SecureBoot=1 SetupMode=0)"
        );
        let skip = progress_line(&unjudged("s", Verdict::skip("no SEV")), 10, 12);
        assert_eq!(skip, "[10/12] SKIP            s  no SEV");
        let mut booted = running(cell("b", Check::SecureBoot));
        booted.rule = None;
        let error = CellResult {
            cell: booted,
            elapsed: Some(std::time::Duration::from_millis(80_000)),
            ..unjudged("b", Verdict::error("no decisive console line"))
        };
        assert_eq!(
            progress_line(&error, 1, 1),
            "[1/1] ERROR           b 80.0s  no decisive console line"
        );
    }

    #[test]
    fn each_cell_verdict_json_is_its_record() {
        let dir = tempfile::tempdir().unwrap();
        let result = passed("p");
        write_cell_verdict(dir.path(), &result).unwrap();
        let read: CellRecord = record::read_json(&dir.path().join("verdict.json")).unwrap();
        assert_eq!(read, record(&result));
    }
}
