//! `bootmatrix explain CELL`: why a cell expects what it expects, and what happened.
//!
//! The expectation is re-derived from the plan (profile, descriptor features, firmware
//! identity, the rule and any known deviation); what was observed and the verdict come from the
//! run folder (`report.json`, or the cell's `verdict.json`), as [`CellRecord`]s. Pure apart from
//! reading those files.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::record::{read_json, CellRecord, Observed, Report};
use crate::discover::Firmware;
use crate::plan::admission::AdmissionRule;
use crate::plan::{Action, Cell, Plan};
use crate::scenario::Scenarios;
use crate::tools::shell_line;

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

/// What the run recorded for the cell: its entry in `report.json`, else its `verdict.json`. A
/// file that cannot be read as a record counts as no record.
pub fn recorded(run_dir: &Path, id: &str) -> Option<CellRecord> {
    Report::read(&run_dir.join("report.json"))
        .ok()
        .and_then(|report| report.cells.into_iter().find(|c| c.id == id))
        .or_else(|| read_json(&run_dir.join("cells").join(id).join("verdict.json")).ok())
}

pub fn explain(
    cell: &Cell,
    firmware: Option<&Firmware>,
    scenarios: &Scenarios,
    run_dir: &Path,
    recorded: Option<&CellRecord>,
) -> String {
    let mut out = String::new();
    let o = &mut out;
    let _ = writeln!(o, "cell {}", cell.id);
    let _ = writeln!(o, "  check:   {}", cell.check);
    let _ = writeln!(o, "  variant: {}", cell.variant);
    let _ = writeln!(
        o,
        "  qemu {} on {} ({}: {}), {}",
        cell.qemu_version,
        or(&cell.machine, "no machine"),
        cell.accel,
        cell.accel_reason,
        guest_words(cell.confidential)
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
    if let Some(firmware) = recorded.map(|r| &r.firmware) {
        if let Some(rev) = &firmware.revision {
            let vendor = firmware.vendor.as_deref().unwrap_or("");
            let _ = writeln!(
                o,
                "  reported by the guest: {} revision {}",
                plain(vendor),
                plain(rev)
            );
        }
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
    if let Some(denial) = cell.action.denial() {
        let order: Vec<&str> = AdmissionRule::in_order()
            .map(AdmissionRule::as_str)
            .collect();
        let _ = writeln!(
            o,
            "  decided by admission rule {} (the rules, in order: {})",
            denial.rule,
            order.join(", ")
        );
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
            if r.profile != cell.profile {
                let _ = writeln!(
                    o,
                    "  note: that run used profile {}, this explanation profile {}",
                    r.profile, cell.profile
                );
            }
            let fields = observed_fields(&r.observed);
            if fields.is_empty() && r.observed.evidence.is_empty() {
                let _ = writeln!(o, "  nothing (the cell did not boot or decided nothing)");
            }
            for (key, value) in fields {
                let _ = writeln!(o, "  {key}: {}", plain(&value));
            }
            if !r.observed.evidence.is_empty() {
                let _ = writeln!(o, "  evidence:");
                for e in &r.observed.evidence {
                    let _ = writeln!(o, "    {}", plain(&e.to_string()));
                }
            }
            if let Some(ms) = r.decided_ms {
                let _ = writeln!(o, "  decided after {ms} ms");
            }
            if let Some(dir) = &r.log_dir {
                let _ = writeln!(o, "  logs: {}", plain(&dir.display().to_string()));
            }
            let _ = writeln!(o, "\nverdict: {}\n  {}", r.verdict, plain(&r.reason));
        }
    }
    out
}

/// What was observed, field by field as `report.json` names them, in its order; fields without
/// a value are left out.
fn observed_fields(observed: &Observed) -> Vec<(&'static str, String)> {
    let mut fields: Vec<(&'static str, Option<String>)> = vec![
        ("payload", observed.payload.map(|p| p.to_string())),
        ("description", observed.description.clone()),
        ("secure_boot", observed.secure_boot.map(|v| v.to_string())),
        ("setup_mode", observed.setup_mode.map(|v| v.to_string())),
    ];
    if let Some(p) = &observed.probe {
        fields.extend([
            ("audit_mode", Some(p.audit_mode.to_string())),
            ("deployed_mode", Some(p.deployed_mode.to_string())),
            ("firmware_vendor", Some(p.firmware_vendor.clone())),
            ("firmware_revision", Some(p.firmware_revision.clone())),
            ("uefi_revision", Some(p.uefi_revision.clone())),
        ]);
    }
    fields.push(("contradiction", observed.contradiction.clone()));
    fields.extend(observed.notes.iter().map(|n| ("note", Some(n.clone()))));
    fields.push(("line", observed.refusal.clone()));
    if let Some(rom) = &observed.rom {
        let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        fields.push((
            "rom",
            Some(format!(
                "{} ({} class {}): romsize={} romimage={} images={}",
                rom.loc,
                rom.id,
                rom.class,
                or_dash(rom.rom_size.map(|v| v.to_string())),
                or_dash(rom.rom_image.map(|v| u8::from(v).to_string())),
                or_dash(rom.images.map(|v| v.to_string())),
            )),
        ));
    }
    fields.push(("rom_marker", observed.rom_marker().map(String::from)));
    if let Some(k) = &observed.kernel {
        fields.extend([
            ("linux_version", Some(k.linux_version.clone())),
            ("command_line", k.command_line.clone()),
            ("loaded_by", k.loaded_by.map(|l| l.to_string())),
            ("legacy_warning", k.legacy_warning.clone()),
        ]);
    }
    fields
        .into_iter()
        .filter_map(|(key, value)| Some((key, value?)))
        .collect()
}

/// `text`, or `fallback` when it is empty.
fn or<'a>(text: &'a str, fallback: &'a str) -> &'a str {
    if text.is_empty() {
        fallback
    } else {
        text
    }
}

/// Text from the run folder with escape sequences and control characters removed: the file
/// may have been edited, and nothing in it may drive the terminal.
fn plain(text: &str) -> String {
    crate::boot::strip_escapes(text)
}

/// The cell's confidential guest in words: `SEV off`, `SEV on` (plain SEV), or the mode's name.
pub fn guest_words(mode: crate::matrix::Confidential) -> &'static str {
    match mode {
        crate::matrix::Confidential::Off => "SEV off",
        crate::matrix::Confidential::Sev => "SEV on",
        other => other.name(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::Check;
    use crate::report::fixtures::{self, every_shape};
    use crate::report::{records, write_json};

    #[test]
    fn each_confidential_mode_is_named_for_what_it_is() {
        use crate::matrix::Confidential as C;
        let words: Vec<&str> = [C::Off, C::Sev, C::SevEs, C::SevSnp, C::Tdx, C::Igvm]
            .into_iter()
            .map(guest_words)
            .collect();
        assert_eq!(
            words,
            [
                "SEV off",
                "SEV on",
                "SEV-ES",
                "SEV-SNP",
                "TDX",
                "SEV-SNP (IGVM)"
            ]
        );
    }

    /// `explain` of a fixture cell, with what the run recorded for it.
    fn explained(id: &str, check: Check) -> String {
        let report = crate::report::report_json(None, &records(&every_shape()));
        let recorded = report.cell(id).unwrap_or_else(|| panic!("no {id}"));
        let cell = fixtures::cell(id, check);
        explain(
            &cell,
            None,
            &Scenarios::default(),
            Path::new("/runs/x"),
            Some(recorded),
        )
    }

    #[test]
    fn shows_each_observed_field_that_has_a_value() {
        let text = explained("rom-executed", Check::OptionRom);
        for needle in [
            "  payload: executed\n",
            "  secure_boot: 1\n",
            "  deployed_mode: absent\n",
            "  firmware_vendor: EDK II\n",
            "  rom: 0000:00:06.0 (8086:100e class 020000): romsize=65536 romimage=1 images=1\n",
            "  rom_marker: BOOTMATRIX-OPROM v=1 loaded\n",
            "  evidence:\n    [serial +2.000 s] BOOTMATRIX-OPROM v=1 loaded\n",
            "  decided after 3001 ms\n",
            "  logs: /runs/x/cells/rom-executed\n",
            "verdict: pass\n",
            "reported by the guest: EDK II revision 0x00010000",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        assert!(!text.contains("linux_version"), "{text}");
        let kernel = explained("kernel-verified", Check::KernelBoot);
        assert!(kernel.contains("  loaded_by: load-image\n"), "{kernel}");
        assert!(!kernel.contains("legacy_warning"), "null: {kernel}");
        let gave_up = explained("sb-nothing-bootable", Check::SecureBoot);
        assert!(
            gave_up.contains("  note: refused another boot option: BdsDxe: failed to start"),
            "{gave_up}"
        );
    }

    #[test]
    fn says_so_when_nothing_was_observed() {
        let text = explained("sb-deadline", Check::SecureBoot);
        assert!(
            text.contains("  nothing (the cell did not boot or decided nothing)"),
            "{text}"
        );
        assert!(text.contains("verdict: error\n"), "{text}");
        let text = explained("sb-undecided", Check::SecureBoot);
        assert!(
            text.contains("  payload: undecided\n  evidence:\n"),
            "{text}"
        );
    }

    #[test]
    fn reads_the_report_else_the_cells_verdict_json() {
        let dir = tempfile::tempdir().unwrap();
        let cells = records(&every_shape());
        assert_eq!(recorded(dir.path(), "sb-pass"), None);
        // Only the cell's own file: a run that was stopped before its report.
        let cell_dir = dir.path().join("cells/sb-pass");
        std::fs::create_dir_all(&cell_dir).unwrap();
        write_json(&cell_dir.join("verdict.json"), &cells[0]).unwrap();
        assert_eq!(recorded(dir.path(), "sb-pass").as_ref(), Some(&cells[0]));
        // The report wins, and holds every cell.
        let mut report = crate::report::report_json(None, &cells);
        report.cells[0].reason = "from report.json".into();
        write_json(&dir.path().join("report.json"), &report).unwrap();
        let read = recorded(dir.path(), "sb-pass").unwrap();
        assert_eq!(read.reason, "from report.json");
        let kernel = cells.iter().find(|c| c.id == "kernel-refused");
        assert_eq!(recorded(dir.path(), "kernel-refused").as_ref(), kernel);
        assert_eq!(recorded(dir.path(), "no-such-cell"), None);
    }
}
