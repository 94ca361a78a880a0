//! `bootmatrix explain CELL`: why a cell expects what it expects, and what happened.
//!
//! The expectation is re-derived from the plan (profile, descriptor features, firmware
//! identity, the rule and any known deviation); what was observed and the verdict come from the
//! run folder (`report.json`, or the cell's `verdict.json`). Pure apart from reading those files.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::discover::Firmware;
use crate::plan::{Action, Cell, Plan};
use crate::prepare::shell_line;
use crate::scenario::Scenarios;

/// The cell with this id; or the only cell whose id contains it.
pub fn find_cell<'a>(plan: &'a Plan, id: &str) -> Result<&'a Cell, String> {
    if let Some(cell) = plan.cells.iter().find(|c| c.id == id) {
        return Ok(cell);
    }
    let matching: Vec<&Cell> = plan.cells.iter().filter(|c| c.id.contains(id)).collect();
    match matching.as_slice() {
        [one] => Ok(one),
        [] => Err(format!(
            "no cell {id:?} in the plan ({} cells; see `bootmatrix plan`)",
            plan.cells.len()
        )),
        many => {
            let mut names: Vec<&str> = many.iter().take(10).map(|c| c.id.as_str()).collect();
            if many.len() > 10 {
                names.push("...");
            }
            Err(format!(
                "{id:?} matches {} cells; give one id:\n  {}",
                many.len(),
                names.join("\n  ")
            ))
        }
    }
}

/// The newest run folder under `runs` (folder names are UTC timestamps).
pub fn latest_run(runs: &Path) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(runs)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("cells").is_dir() || p.join("report.json").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
}

/// What the run recorded for the cell: its entry in `report.json`, else its `verdict.json`.
pub fn recorded(run_dir: &Path, id: &str) -> Option<Value> {
    let read = |p: PathBuf| -> Option<Value> {
        serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
    };
    read(run_dir.join("report.json"))
        .and_then(|report| {
            report["cells"]
                .as_array()?
                .iter()
                .find(|c| c["id"] == id)
                .cloned()
        })
        .or_else(|| read(run_dir.join("cells").join(id).join("verdict.json")))
}

pub fn explain(
    cell: &Cell,
    firmware: Option<&Firmware>,
    scenarios: &Scenarios,
    run_dir: &Path,
    recorded: Option<&Value>,
) -> String {
    let mut out = String::new();
    let o = &mut out;
    let _ = writeln!(o, "cell {}", cell.id);
    let _ = writeln!(o, "  check:   {}", cell.check);
    let _ = writeln!(o, "  variant: {}", cell.variant);
    let _ = writeln!(
        o,
        "  qemu {} on {} ({}: {}), SEV {}",
        cell.qemu_version,
        or(&cell.machine, "no machine"),
        cell.accel,
        cell.accel_reason,
        if cell.sev { "on" } else { "off" }
    );

    let _ = writeln!(o, "\nfirmware");
    let _ = writeln!(o, "  descriptor: {}", cell.descriptor);
    if let Some(f) = firmware {
        let d = &f.descriptor;
        let _ = writeln!(o, "    from {}", d.path.display());
        let features: Vec<String> = d.features.iter().map(|f| f.to_string()).collect();
        let _ = writeln!(o, "    features: {}", features.join(", "));
    }
    let _ = writeln!(o, "  executable: {}", cell.executable.display());
    let _ = writeln!(
        o,
        "  sha256:     {}",
        cell.executable_sha256.as_deref().unwrap_or("(unreadable)")
    );
    let _ = writeln!(
        o,
        "  package:    {}",
        cell.package.as_deref().unwrap_or("(no package owns it)")
    );
    let _ = writeln!(
        o,
        "  edk2:       {}",
        cell.edk2.map_or(
            "unknown (rules that name edk2 releases do not apply)".to_string(),
            |r| format!("{r} (from the package version)")
        )
    );
    if let Some(rev) = recorded.and_then(|r| r["firmware"]["revision"].as_str()) {
        let vendor = recorded
            .and_then(|r| r["firmware"]["vendor"].as_str())
            .unwrap_or("");
        let _ = writeln!(o, "  reported by the guest: {vendor} revision {rev}");
    }

    let _ = writeln!(
        o,
        "\nexpectation (profile {}, scenarios {})",
        cell.profile, scenarios.origin
    );
    match &cell.rule {
        Some(rule) => {
            let mut expect = format!("payload {}", rule.expect.payload);
            if let Some(sb) = rule.expect.secure_boot {
                expect.push_str(&format!(", SecureBoot={sb}"));
            }
            if let Some(sm) = rule.expect.setup_mode {
                expect.push_str(&format!(", SetupMode={sm}"));
            }
            let _ = writeln!(o, "  rule {}/{}: {expect}", cell.check, rule.id);
            let _ = writeln!(o, "  because {}", rule.because);
            let when = serde_json::to_string(&rule.when).unwrap_or_default();
            let _ = writeln!(o, "  matched by {when}");
            let deviations = cell
                .executable_sha256
                .as_deref()
                .map(|sha| {
                    scenarios.deviations_for(
                        cell.check,
                        &rule.id,
                        sha,
                        cell.variant.tweak,
                        cell.qemu_version,
                    )
                })
                .unwrap_or_default();
            for dev in deviations {
                let sb = dev
                    .secure_boot
                    .map(|v| format!(" with SecureBoot={v}"))
                    .unwrap_or_default();
                let _ = writeln!(
                    o,
                    "  known deviation {} for this build ({}): observed {}{sb}: {} [{}]",
                    dev.id,
                    or(&dev.package, "no package recorded"),
                    dev.observed,
                    dev.reason,
                    dev.reference
                );
            }
        }
        None if matches!(cell.action, Action::Refused(_)) => {
            let _ = writeln!(
                o,
                "  none: the planner refuses this configuration (see plan)"
            );
        }
        None => {
            let _ = writeln!(o, "  no rule matches this cell");
        }
    }

    let _ = writeln!(o, "\nplan");
    match &cell.action {
        Action::Run(spec) => {
            let _ = writeln!(o, "  run, deadline {:?}:", spec.deadline);
            let _ = writeln!(o, "  {}", shell_line(&spec.argv));
        }
        Action::Skip(why) => {
            let _ = writeln!(o, "  skipped: {why}");
        }
        Action::Refused(why) => {
            let _ = writeln!(o, "  refused by the planner: {why}");
        }
        Action::Error(why) => {
            let _ = writeln!(o, "  cannot run: {why}");
        }
    }

    let _ = writeln!(o, "\nobserved (run folder {})", run_dir.display());
    match recorded {
        None => {
            let _ = writeln!(
                o,
                "  not recorded: run it with `bootmatrix run --filter '^{}$'`",
                regex::escape(&cell.id)
            );
        }
        Some(r) => {
            if r["profile"]
                .as_str()
                .is_some_and(|p| p != cell.profile.as_str())
            {
                let _ = writeln!(
                    o,
                    "  note: that run used profile {}, this explanation profile {}",
                    r["profile"].as_str().unwrap_or("?"),
                    cell.profile
                );
            }
            let observed = &r["observed"];
            if let Some(obj) = observed.as_object().filter(|m| !m.is_empty()) {
                for (key, value) in obj {
                    if !value.is_null() && key != "evidence" {
                        let _ = writeln!(o, "  {key}: {}", plain(value));
                    }
                }
                if let Some(lines) = observed["evidence"].as_array() {
                    let _ = writeln!(o, "  evidence:");
                    for e in lines {
                        let text = crate::observe::evidence_text(
                            &plain(&e["stream"]),
                            e["at_ms"].as_u64().unwrap_or(0),
                            &plain(&e["line"]),
                        );
                        let _ = writeln!(o, "    {text}");
                    }
                }
            } else {
                let _ = writeln!(o, "  nothing (the cell did not boot or decided nothing)");
            }
            if let Some(ms) = r["decided_ms"].as_u64() {
                let _ = writeln!(o, "  decided after {ms} ms");
            }
            if let Some(dir) = r["log_dir"].as_str() {
                let _ = writeln!(o, "  logs: {dir}");
            }
            let _ = writeln!(
                o,
                "\nverdict: {}\n  {}",
                plain(&r["verdict"]),
                plain(&r["reason"])
            );
        }
    }
    out
}

/// `text`, or `fallback` when it is empty.
fn or<'a>(text: &'a str, fallback: &'a str) -> &'a str {
    if text.is_empty() {
        fallback
    } else {
        text
    }
}

/// A value from the run folder as text, with escape sequences and control characters removed:
/// the file may have been edited, and nothing in it may drive the terminal.
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => crate::boot::strip_escapes(s),
        other => crate::boot::strip_escapes(&other.to_string()),
    }
}
