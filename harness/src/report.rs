//! Report: progress lines, the summary table, per-cell `verdict.json` and the run's JSON report.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use crate::judge::{summary, VerdictKind};
use crate::observe::Decision;
use crate::plan::Action;
use crate::run::CellResult;

/// The `observed` object: what the guest reported, or what the firmware printed instead.
pub fn observed_json(observed: Option<&Decision>) -> Value {
    match observed {
        Some(Decision::ProbeRan { report }) => {
            let mut v = serde_json::to_value(report).unwrap_or(Value::Null);
            v["payload"] = json!("runs");
            v
        }
        Some(Decision::ProbeRefused { boot_option, line }) => json!({
            "payload": "refused",
            "boot_option": boot_option,
            "line": line,
        }),
        Some(Decision::NothingBootable { line }) => json!({
            "payload": "never-tried",
            "line": line,
        }),
        None => json!({}),
    }
}

pub fn cell_json(result: &CellResult) -> Value {
    let cell = &result.cell;
    let mut v = json!({
        "id": cell.id,
        "descriptor": cell.descriptor,
        "qemu_version": cell.qemu_version,
        "machine": cell.machine,
        "accel": cell.accel,
        "accel_reason": cell.accel_reason,
        "sev": cell.sev,
        "check": cell.check,
        "variant": cell.variant.to_string(),
        "verdict": result.verdict.kind,
        "reason": result.verdict.reason,
        "observed": observed_json(result.observed.as_ref()),
        "decided_ms": result.decided.map(|d| d.as_millis() as u64),
        "elapsed_ms": result.elapsed.map(|d| d.as_millis() as u64),
        "firmware": {
            "executable": cell.executable,
            "sha256": cell.executable_sha256,
            "package": cell.package,
        },
    });
    if let Some(rule) = &cell.rule {
        v["expectation"] = json!({
            "rule": rule.id,
            "expect": rule.expect,
            "because": rule.because,
        });
    }
    if let Some(dev) = &result.verdict.deviation {
        v["deviation"] = serde_json::to_value(dev).unwrap_or(Value::Null);
    }
    if let Action::Run(spec) = &cell.action {
        v["argv"] = json!(spec.argv);
        v["log_dir"] = json!(spec.dir);
    }
    v
}

pub fn report_json(results: &[CellResult]) -> Value {
    json!({ "cells": results.iter().map(cell_json).collect::<Vec<_>>() })
}

pub fn write_cell_verdict(dir: &Path, result: &CellResult) -> Result<(), String> {
    write_json(&dir.join("verdict.json"), &cell_json(result))
}

pub fn write_json(path: &Path, value: &Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// One line per finished cell.
pub fn progress_line(result: &CellResult, done: usize, total: usize) -> String {
    let time = result
        .decided
        .or(result.elapsed)
        .map(|d| format!(" {:.1}s", d.as_secs_f64()))
        .unwrap_or_default();
    format!(
        "[{done:>width$}/{total}] {:<15} {}{time}  {}",
        result.verdict.kind.as_str().to_uppercase(),
        result.cell.id,
        short_observation(result),
        width = total.to_string().len()
    )
}

fn short_observation(result: &CellResult) -> String {
    match (&result.observed, result.verdict.kind) {
        (Some(Decision::ProbeRan { report }), _) => format!("probe ran: {}", summary(report)),
        (Some(Decision::ProbeRefused { .. }), _) => "probe refused".to_string(),
        (_, VerdictKind::Skip | VerdictKind::Error) => result.verdict.reason.clone(),
        _ => String::new(),
    }
}

/// The summary table and the totals; non-passing cells get their reason below the table.
pub fn summary_table(results: &[CellResult]) -> String {
    let headers = [
        "cell",
        "accel",
        "verdict",
        "SecureBoot",
        "decided",
        "expected",
    ];
    let rows: Vec<[String; 6]> = results
        .iter()
        .map(|r| {
            let secure_boot = match &r.observed {
                Some(Decision::ProbeRan { report }) => report
                    .secure_boot
                    .map_or("-".to_string(), |v| v.to_string()),
                Some(Decision::ProbeRefused { .. }) => "refused".to_string(),
                _ => String::new(),
            };
            [
                r.cell.id.clone(),
                r.cell.accel.to_string(),
                r.verdict.kind.to_string(),
                secure_boot,
                r.decided
                    .map(|d| format!("{} ms", d.as_millis()))
                    .unwrap_or_default(),
                r.cell
                    .rule
                    .as_ref()
                    .map(|rule| rule.expect.payload.to_string())
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
    let mut counts: BTreeMap<VerdictKind, usize> = BTreeMap::new();
    for r in results {
        *counts.entry(r.verdict.kind).or_default() += 1;
    }
    let totals: Vec<String> = VerdictKind::ALL
        .iter()
        .map(|k| format!("{} {k}", counts.get(k).copied().unwrap_or(0)))
        .collect();
    out.push_str(&format!(
        "\n{} cells: {}\n",
        results.len(),
        totals.join(", ")
    ));
    let notable: Vec<&CellResult> = results
        .iter()
        .filter(|r| r.verdict.kind != VerdictKind::Pass)
        .collect();
    for kind in [
        VerdictKind::Fail,
        VerdictKind::Error,
        VerdictKind::KnownDeviation,
        VerdictKind::Skip,
    ] {
        let of_kind: Vec<&&CellResult> =
            notable.iter().filter(|r| r.verdict.kind == kind).collect();
        if of_kind.is_empty() {
            continue;
        }
        let banner = match kind {
            VerdictKind::KnownDeviation => {
                "KNOWN DEVIATIONS (the firmware breaks a rule in a documented way)"
            }
            VerdictKind::Fail => "FAILURES (the firmware did not do what its descriptor promises)",
            VerdictKind::Error => "ERRORS (the harness or QEMU could not decide these cells)",
            _ => "SKIPPED",
        };
        out.push_str(&format!("\n{banner}:\n"));
        for r in of_kind {
            out.push_str(&format!("  {}\n    {}\n", r.cell.id, r.verdict.reason));
            if let (Action::Run(spec), VerdictKind::Fail | VerdictKind::Error) =
                (&r.cell.action, kind)
            {
                if !spec.dir.exists() {
                    continue;
                }
                out.push_str(&format!("    logs: {}\n", spec.dir.display()));
            }
        }
    }
    out
}

/// Exit status for a run: non-zero on any fail or error.
pub fn exit_code(results: &[CellResult]) -> i32 {
    let bad = results
        .iter()
        .any(|r| matches!(r.verdict.kind, VerdictKind::Fail | VerdictKind::Error));
    i32::from(bad)
}
