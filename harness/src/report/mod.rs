//! Report: progress lines, the summary table, per-cell `verdict.json` and the run's JSON report.

pub mod expect;
pub mod explain;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use crate::judge::VerdictKind;
use crate::plan::Action;
use crate::run::CellResult;

/// The `observed` object: the outcome, what the guest reported, and the evidence lines the
/// verdict rests on (stream, time from QEMU start, text).
pub fn observed_json(result: &CellResult) -> Value {
    let verdict = &result.verdict;
    let Some(o) = verdict.observation() else {
        if verdict.evidence().is_empty() {
            return json!({});
        }
        return json!({ "payload": "undecided", "evidence": verdict.evidence() });
    };
    let mut v = match &o.probe {
        Some(report) => serde_json::to_value(report).unwrap_or(Value::Null),
        None => json!({}),
    };
    v["payload"] = json!(o.outcome);
    v["secure_boot"] = json!(o.secure_boot);
    v["setup_mode"] = json!(o.setup_mode);
    v["description"] = json!(o.description);
    v["evidence"] = json!(o.evidence);
    if let Some(c) = &o.contradiction {
        v["contradiction"] = json!(c);
    }
    if !o.notes.is_empty() {
        v["notes"] = json!(o.notes);
    }
    if let Some(line) = &o.refusal {
        v["line"] = json!(line);
    }
    if let Some(rom) = &o.rom {
        v["rom"] = json!(rom);
    }
    if result.cell.check == crate::matrix::Check::OptionRom {
        v["rom_marker"] = json!(o.rom_marker);
    }
    if let Some(k) = &o.kernel {
        v["linux_version"] = json!(k.linux_version);
        v["command_line"] = json!(k.command_line);
        v["loaded_by"] = json!(k.loaded_by);
        v["legacy_warning"] = json!(k.legacy_warning);
    }
    v
}

/// Which build ran: from the descriptor and package, and from the guest's own report.
fn firmware_json(result: &CellResult) -> Value {
    let cell = &result.cell;
    let report = result.verdict.observation().and_then(|o| o.probe.as_ref());
    json!({
        "executable": cell.executable,
        "sha256": cell.executable_sha256,
        "package": cell.package,
        "edk2_release": cell.edk2.map(|r| r.to_string()),
        "vendor": report.map(|r| r.firmware_vendor.clone()),
        "revision": report.map(|r| r.firmware_revision.clone()),
        "uefi_revision": report.map(|r| r.uefi_revision.clone()),
    })
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
        "profile": cell.profile,
        "verdict": result.verdict.kind(),
        "reason": result.verdict.reason(),
        "refused_by_planner": matches!(cell.action, Action::Refused(_)),
        "observed": observed_json(result),
        "decided_ms": result.decided.map(|d| d.as_millis() as u64),
        "elapsed_ms": result.elapsed.map(|d| d.as_millis() as u64),
        "firmware": firmware_json(result),
    });
    if let Some(rule) = &cell.rule {
        v["expectation"] = json!({
            "rule": rule.id,
            "profile": cell.profile,
            "expect": rule.expect,
            "because": rule.because,
        });
    }
    if let Some(dev) = result.verdict.deviation() {
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
        result.verdict.kind().as_str().to_uppercase(),
        result.cell.id,
        short_observation(result),
        width = total.to_string().len()
    )
}

fn short_observation(result: &CellResult) -> String {
    match (result.verdict.observation(), result.verdict.kind()) {
        (_, VerdictKind::Skip | VerdictKind::Error) => result.verdict.reason().to_string(),
        (Some(o), _) => format!("{}: {}", o.outcome, o.description),
        (None, _) => String::new(),
    }
}

/// The outcome column: what happened to the payload, and the Secure Boot state the guest saw.
fn outcome_cell(result: &CellResult) -> String {
    match result.verdict.observation() {
        None if result.elapsed.is_some() => "undecided".into(),
        None => String::new(),
        Some(o) => match o.secure_boot.value() {
            Some(sb) => format!("{} (SB={sb})", o.outcome),
            None => o.outcome.to_string(),
        },
    }
}

/// The summary table and the totals; non-passing cells get their reason below the table.
pub fn summary_table(results: &[CellResult]) -> String {
    let headers = [
        "cell", "accel", "verdict", "observed", "decided", "expected",
    ];
    let rows: Vec<[String; 6]> = results
        .iter()
        .map(|r| {
            [
                r.cell.id.clone(),
                r.cell.accel.to_string(),
                r.verdict.kind().to_string(),
                outcome_cell(r),
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
        *counts.entry(r.verdict.kind()).or_default() += 1;
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
        .filter(|r| r.verdict.kind() != VerdictKind::Pass)
        .collect();
    for (index, banner) in BANNERS.iter().enumerate() {
        let of_kind: Vec<&&CellResult> = notable
            .iter()
            .filter(|r| banner_of(r) == Some(index))
            .collect();
        if of_kind.is_empty() {
            continue;
        }
        let kind = of_kind[0].verdict.kind();
        out.push_str(&format!("\n{banner}:\n"));
        for r in of_kind {
            out.push_str(&format!("  {}\n    {}\n", r.cell.id, r.verdict.reason()));
            if matches!(kind, VerdictKind::Fail | VerdictKind::Error) {
                for e in r.verdict.evidence() {
                    out.push_str(&format!("    {e}\n"));
                }
            }
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

/// The summary's sections below the table, in order.
const BANNERS: [&str; 5] = [
    "FAILURES (the firmware did not do what its descriptor promises)",
    "ERRORS (the harness or QEMU could not decide these cells)",
    "KNOWN DEVIATIONS (the firmware breaks a rule in a documented way)",
    "REFUSED BY THE PLANNER (the configuration itself breaks policy; skipped)",
    "SKIPPED",
];

/// Which of [`BANNERS`] lists the cell; None for a pass.
fn banner_of(r: &CellResult) -> Option<usize> {
    match r.verdict.kind() {
        VerdictKind::Pass => None,
        VerdictKind::Fail => Some(0),
        VerdictKind::Error => Some(1),
        VerdictKind::KnownDeviation => Some(2),
        VerdictKind::Skip if matches!(r.cell.action, Action::Refused(_)) => Some(3),
        VerdictKind::Skip => Some(4),
    }
}

/// Exit status for a run: non-zero on any fail or error.
pub fn exit_code(results: &[CellResult]) -> i32 {
    let bad = results
        .iter()
        .any(|r| matches!(r.verdict.kind(), VerdictKind::Fail | VerdictKind::Error));
    i32::from(bad)
}

/// JUnit XML for CI systems: one testcase per cell. `fail` is a failure, `error` an error,
/// `skip` skipped; a known deviation passes with its reason in system-out.
pub fn junit_xml(results: &[CellResult]) -> String {
    let count = |kind: VerdictKind| results.iter().filter(|r| r.verdict.kind() == kind).count();
    let seconds: f64 = results
        .iter()
        .filter_map(|r| r.elapsed)
        .map(|d| d.as_secs_f64())
        .sum();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"bootmatrix\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{seconds:.3}\">\n",
        results.len(),
        count(VerdictKind::Fail),
        count(VerdictKind::Error),
        count(VerdictKind::Skip),
    );
    for r in results {
        let time = r.elapsed.map_or(0.0, |d| d.as_secs_f64());
        out.push_str(&format!(
            "  <testcase classname=\"{}\" name=\"{}\" time=\"{time:.3}\">\n",
            xml_escape(&r.cell.descriptor),
            xml_escape(&r.cell.id)
        ));
        let reason = xml_escape(r.verdict.reason());
        match r.verdict.kind() {
            VerdictKind::Pass => {}
            VerdictKind::Fail => {
                out.push_str(&format!("    <failure message=\"{reason}\"/>\n"));
                out.push_str(&evidence_out(r));
            }
            VerdictKind::Error => {
                out.push_str(&format!("    <error message=\"{reason}\"/>\n"));
                out.push_str(&evidence_out(r));
            }
            VerdictKind::Skip => out.push_str(&format!("    <skipped message=\"{reason}\"/>\n")),
            VerdictKind::KnownDeviation => out.push_str(&format!(
                "    <system-out>known-deviation: {reason}</system-out>\n"
            )),
        }
        out.push_str("  </testcase>\n");
    }
    out.push_str("</testsuite>\n");
    out
}

/// The lines a failed or errored cell was decided on, for the CI's test page.
fn evidence_out(r: &CellResult) -> String {
    let lines: Vec<String> = r
        .verdict
        .evidence()
        .iter()
        .map(|e| xml_escape(&e.to_string()))
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    format!("    <system-out>{}</system-out>\n", lines.join("\n"))
}

fn xml_escape(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&apos;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::host::Accel;
    use crate::discover::qemu::Version;
    use crate::judge::{self, Case, Verdict};
    use crate::matrix::{Check, Outcome, Payload, Variant, Vars};
    use crate::observe::script::{self, Serial, Step, CMDLINE_LEGACY, LINUX, PROBE, SB_ON};
    use crate::plan::admission::{AdmissionRule, Denial};
    use crate::plan::Cell;
    use crate::scenario::{Condition, Expectation, Outcomes, Rule, Scenarios};
    use std::path::Path;
    use std::time::Duration;

    fn cell(id: &str, check: Check) -> Cell {
        Cell {
            id: id.into(),
            descriptor: "50-edk2-x86_64-secure.json".into(),
            executable: "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd".into(),
            executable_sha256: Some("ab".repeat(32)),
            package: Some("ovmf 2022.11-6+deb12u2".into()),
            qemu_version: Version::new(7, 2, 22),
            machine: "pc-q35-7.2".into(),
            accel: Accel::Tcg,
            accel_reason: "KVM unusable".into(),
            sev: false,
            check,
            variant: Variant::new(Vars::OwnKeys, Payload::Signed),
            profile: crate::matrix::Profile::Strict,
            edk2: crate::discover::release::Edk2Release::parse("2022.11"),
            rule: None,
            secure_boot_support: true,
            action: Action::Skip(Denial::new(
                AdmissionRule::Machine,
                "not booted in this test",
            )),
        }
    }

    /// A cell judged on `steps` against a rule that expects `expect`.
    fn judged(id: &str, check: Check, expect: Outcome, steps: &[Step]) -> CellResult {
        let cell = cell(id, check);
        let rule = Rule {
            id: "r".into(),
            when: Condition::default(),
            expect: Expectation {
                payload: Outcomes::one(expect),
                secure_boot: None,
                setup_mode: None,
            },
            because: "because".into(),
        };
        let case = Case {
            check,
            tweak: cell.variant.tweak,
            qemu: cell.qemu_version,
            executable_sha256: None,
            secure_boot_support: true,
            build: "50-edk2-x86_64-secure.json",
        };
        let verdict = judge::judge(
            &case,
            &rule,
            script::observe(check, steps),
            &Scenarios::default(),
        );
        CellResult {
            cell,
            verdict,
            decided: Some(Duration::from_millis(3421)),
            elapsed: Some(Duration::from_millis(3460)),
        }
    }

    fn passed(id: &str) -> CellResult {
        judged(id, Check::SecureBoot, Outcome::Runs, &[Serial(3421, PROBE)])
    }

    fn failed(id: &str) -> CellResult {
        judged(
            id,
            Check::SecureBoot,
            Outcome::Refused,
            &[Serial(3421, PROBE)],
        )
    }

    fn unjudged(id: &str, verdict: Verdict) -> CellResult {
        CellResult {
            cell: cell(id, Check::SecureBoot),
            verdict,
            decided: None,
            elapsed: None,
        }
    }

    /// A cell judged on `steps` against `rule`, with `scenarios`' deviations for `sha`.
    fn judged_with(
        mut cell: Cell,
        rule: Rule,
        sha: Option<&str>,
        scenarios: &Scenarios,
        steps: &[Step],
    ) -> CellResult {
        let case = Case {
            check: cell.check,
            tweak: cell.variant.tweak,
            qemu: cell.qemu_version,
            executable_sha256: sha,
            secure_boot_support: true,
            build: "50-edk2-x86_64-secure.json",
        };
        let verdict = judge::judge(&case, &rule, script::observe(cell.check, steps), scenarios);
        cell.rule = Some(rule);
        let decided = verdict.evidence().last().map(|e| e.at);
        CellResult {
            cell,
            verdict,
            decided,
            elapsed: Some(Duration::from_millis(9000)),
        }
    }

    fn rule(id: &str, expect: Outcome, secure_boot: Option<u8>) -> Rule {
        Rule {
            id: id.into(),
            when: Condition::default(),
            expect: Expectation {
                payload: Outcomes::one(expect),
                secure_boot,
                setup_mode: None,
            },
            because: format!("because {id}"),
        }
    }

    fn running(mut cell: Cell) -> Cell {
        cell.action = Action::Run(Box::new(crate::plan::RunSpec {
            check: cell.check,
            targets: script::targets(cell.check),
            grace: Duration::from_secs(8),
            argv: vec!["qemu-system-x86_64".into(), "-nodefaults".into()],
            dir: format!("/runs/x/cells/{}", cell.id).into(),
            copies: vec![],
            debug_log: None,
            deadline: Duration::from_secs(80),
            needs: vec![],
        }));
        cell
    }

    /// One judged cell of every shape report.json knows.
    fn every_shape() -> Vec<CellResult> {
        let none = Scenarios::default();
        let sha = "ab".repeat(32);
        let mut deviating = Scenarios::default();
        deviating.deviations.push(crate::scenario::KnownDeviation {
            id: "test-legacy-fallback".into(),
            check: Check::KernelBoot,
            rule: "unsigned-refused".into(),
            executable_sha256: sha.clone(),
            package: "ovmf 2022.11-6+deb12u2".into(),
            tweak: None,
            qemu: None,
            observed: Outcome::LegacySilent,
            secure_boot: Some(1),
            reason: "the silent fallback".into(),
            reference: "CVE-2025-2296".into(),
        });
        let kernel = |id: &str, payload: Payload| {
            let mut c = cell(id, Check::KernelBoot);
            c.variant = Variant::new(Vars::OwnKeys, payload);
            running(c)
        };
        let mut refused = cell("sev-kernel", Check::KernelBoot);
        refused.sev = true;
        refused.action = Action::Refused("refused by policy: no measured build".into());
        let mut planned_error = cell("no-rule", Check::SecureBoot);
        planned_error.action = Action::Error("no expectation for this cell".into());
        let rom = |id: &str| running(cell(id, Check::OptionRom));
        vec![
            judged_with(
                running(cell("sb-pass", Check::SecureBoot)),
                rule("own-keys-signed", Outcome::Runs, Some(1)),
                None,
                &none,
                &[Serial(3421, PROBE)],
            ),
            judged_with(
                running(cell("sb-fail-contradiction", Check::SecureBoot)),
                rule("own-keys-unsigned", Outcome::Refused, None),
                None,
                &none,
                &[Serial(3000, script::OWN_REFUSAL), Serial(3421, PROBE)],
            ),
            judged_with(
                running(cell("sb-refused", Check::SecureBoot)),
                rule("own-keys-unsigned", Outcome::Refused, None),
                None,
                &none,
                &[
                    Serial(3000, script::OWN_REFUSAL),
                    Serial(3100, script::GAVE_UP),
                ],
            ),
            judged_with(
                running(cell("sb-nothing-bootable", Check::SecureBoot)),
                rule("own-keys-unsigned", Outcome::Refused, None),
                None,
                &none,
                &[
                    Serial(4000, script::SHELL_REFUSAL),
                    Serial(4100, script::GAVE_UP),
                ],
            ),
            judged_with(
                running(cell("sb-undecided", Check::SecureBoot)),
                rule("own-keys-signed", Outcome::Runs, Some(1)),
                None,
                &none,
                &[Serial(
                    4000,
                    r#"BdsDxe: failed to load Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x5,0x0): Not Found"#,
                )],
            ),
            judged_with(
                running(cell("sb-deadline", Check::SecureBoot)),
                rule("own-keys-signed", Outcome::Runs, Some(1)),
                None,
                &none,
                &[],
            ),
            judged_with(
                rom("rom-executed"),
                rule("signed", Outcome::Executed, None),
                None,
                &none,
                &[
                    Serial(2000, script::OPROM),
                    Serial(3000, script::PCI_ROM_RAN),
                    Serial(3001, PROBE),
                ],
            ),
            judged_with(
                rom("rom-not-executed"),
                rule("unsigned", Outcome::NotExecuted, None),
                None,
                &none,
                &[Serial(3000, script::PCI_ROM_IDLE), Serial(3001, PROBE)],
            ),
            judged_with(
                kernel("kernel-deviation", Payload::Unsigned),
                rule("unsigned-refused", Outcome::Refused, None),
                Some(&sha),
                &deviating,
                &[
                    Serial(5000, LINUX),
                    Serial(5001, CMDLINE_LEGACY),
                    Serial(5100, SB_ON),
                ],
            ),
            judged_with(
                kernel("kernel-verified", Payload::Signed),
                rule("signed", Outcome::Verified, Some(1)),
                None,
                &none,
                &[
                    Serial(5000, LINUX),
                    Serial(5001, script::CMDLINE_LOAD_IMAGE),
                    Serial(5100, SB_ON),
                ],
            ),
            judged_with(
                kernel("kernel-warned", Payload::Unsigned),
                rule("unsigned-warned", Outcome::LegacyWarned, None),
                None,
                &none,
                &[
                    Serial(4000, script::LEGACY_WARNING),
                    Serial(5000, LINUX),
                    Serial(5001, CMDLINE_LEGACY),
                    Serial(5100, SB_ON),
                ],
            ),
            judged_with(
                kernel("kernel-refused", Payload::Unsigned),
                rule("unsigned-refused", Outcome::Refused, None),
                None,
                &none,
                &[
                    Serial(900, script::NO_FALLBACK),
                    Serial(1000, script::GAVE_UP),
                ],
            ),
            unjudged("sev-probe", Verdict::skip("host has no AMD SEV")),
            CellResult {
                cell: refused,
                ..unjudged("", Verdict::skip("refused by policy: no measured build"))
            },
            CellResult {
                cell: planned_error,
                ..unjudged("", Verdict::error("no expectation for this cell"))
            },
        ]
    }

    /// report.json keeps its shape: every field name and value of every kind of cell, against
    /// `tests/golden/report.json` (`BOOTMATRIX_BLESS=1` rewrites it).
    #[test]
    fn report_json_matches_its_golden_file() {
        let actual = report_json(&every_shape());
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/report.json");
        if std::env::var_os("BOOTMATRIX_BLESS").is_some() {
            write_json(&path, &actual).unwrap();
        }
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; run with BOOTMATRIX_BLESS=1", path.display()));
        let golden: Value = serde_json::from_str(&text).unwrap();
        let (Value::Array(golden), Value::Array(actual)) = (&golden["cells"], &actual["cells"])
        else {
            panic!("no cells array");
        };
        assert_eq!(golden.len(), actual.len());
        for (g, a) in golden.iter().zip(actual) {
            assert_eq!(g, a, "{} differs from {}", a["id"], path.display());
        }
    }

    #[test]
    fn cell_json_has_the_documented_fields_and_the_evidence() {
        let v = cell_json(&passed("a/b"));
        for key in [
            "id",
            "descriptor",
            "qemu_version",
            "accel",
            "sev",
            "check",
            "variant",
            "verdict",
            "reason",
            "observed",
            "decided_ms",
        ] {
            assert!(v.get(key).is_some(), "missing {key} in {v:#}");
        }
        assert_eq!(v["verdict"], "pass");
        assert_eq!(v["accel"], "tcg");
        assert_eq!(v["check"], "secure-boot");
        assert_eq!(v["qemu_version"], "7.2.22");
        assert_eq!(v["variant"], "own-keys-vars/signed");
        assert_eq!(v["decided_ms"], 3421);
        assert_eq!(v["observed"]["payload"], "runs");
        assert_eq!(v["observed"]["secure_boot"], 1);
        assert_eq!(v["observed"]["deployed_mode"], "absent");
        let evidence = v["observed"]["evidence"].as_array().unwrap();
        assert_eq!(evidence.len(), 1);
        assert_eq!(evidence[0]["stream"], "serial");
        assert_eq!(evidence[0]["at_ms"], 3421);
        assert_eq!(evidence[0]["line"], PROBE);
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
        assert_eq!(r.verdict.kind(), VerdictKind::Error);
        let v = cell_json(&r);
        assert_eq!(v["observed"]["payload"], "nothing-bootable", "{v:#}");
        assert_eq!(v["observed"]["evidence"][0]["line"], script::GAVE_UP);
        let table = summary_table(&[r]);
        assert!(
            table.contains("[serial +4.100 s] BdsDxe: No bootable option"),
            "{table}"
        );
    }

    #[test]
    fn exit_code_is_one_on_fail_or_error_only() {
        let pass = passed("p");
        let skip = unjudged("s", Verdict::skip("no SEV"));
        assert_eq!(exit_code(&[pass.clone(), skip.clone()]), 0);
        assert_eq!(exit_code(&[pass.clone(), failed("f")]), 1);
        assert_eq!(exit_code(&[skip, unjudged("e", Verdict::error("x"))]), 1);
    }

    #[test]
    fn summary_names_every_non_passing_cell_with_its_reason_and_evidence() {
        let table = summary_table(&[
            passed("cell-pass"),
            failed("cell-fail"),
            unjudged("cell-skip", Verdict::skip("host has no AMD SEV")),
        ]);
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
    fn junit_counts_and_escapes() {
        let xml = junit_xml(&[
            passed("ok"),
            failed("bad"),
            unjudged("broken", Verdict::error("QEMU exited <1> & \"x\"")),
            unjudged("skipped", Verdict::skip("no SEV")),
        ]);
        assert!(
            xml.contains(r#"tests="4" failures="1" errors="1" skipped="1""#),
            "{xml}"
        );
        assert!(
            xml.contains("QEMU exited &lt;1&gt; &amp; &quot;x&quot;"),
            "{xml}"
        );
        assert_eq!(xml.matches("<testcase ").count(), 4);
        // The failure carries the line it was decided on.
        assert!(
            xml.contains(&format!(
                "<system-out>[serial +3.421 s] {}</system-out>",
                xml_escape(PROBE)
            )),
            "{xml}"
        );
    }

    #[test]
    fn planner_refusals_get_their_own_heading_and_flag() {
        let mut refused = unjudged("sev-kernel", Verdict::skip("refused by policy: x"));
        refused.cell.action = Action::Refused(Denial::new(
            AdmissionRule::SevKernelPolicy,
            "refused by policy: x",
        ));
        let skipped = unjudged("sev-probe", Verdict::skip("host has no AMD SEV"));
        let table = summary_table(&[refused.clone(), skipped]);
        let refusals = table.find("REFUSED BY THE PLANNER").expect(&table);
        let skips = table.find("SKIPPED").expect(&table);
        assert!(table[refusals..skips].contains("sev-kernel"), "{table}");
        assert!(table[skips..].contains("sev-probe"), "{table}");
        assert!(!table[skips..].contains("sev-kernel"), "{table}");
        assert_eq!(cell_json(&refused)["refused_by_planner"], true);
    }

    #[test]
    fn kernel_cells_report_the_loader_path_and_firmware_identity() {
        let r = judged(
            "k",
            Check::KernelBoot,
            Outcome::LegacySilent,
            &[
                Serial(5000, LINUX),
                Serial(5001, CMDLINE_LEGACY),
                Serial(5100, SB_ON),
            ],
        );
        let v = cell_json(&r);
        assert_eq!(v["observed"]["payload"], "legacy-silent", "{v:#}");
        assert_eq!(v["observed"]["loaded_by"], "legacy-loader", "{v:#}");
        assert_eq!(v["observed"]["secure_boot"], 1, "{v:#}");
        assert_eq!(v["observed"]["linux_version"], LINUX, "{v:#}");
        assert_eq!(
            v["observed"]["evidence"].as_array().unwrap().len(),
            3,
            "{v:#}"
        );
        assert_eq!(v["firmware"]["edk2_release"], "2022.11", "{v:#}");
        assert_eq!(v["firmware"]["package"], "ovmf 2022.11-6+deb12u2", "{v:#}");
        assert!(
            v["firmware"]["revision"].is_null(),
            "no probe, no revision: {v:#}"
        );
        let probe = cell_json(&passed("p"));
        assert_eq!(probe["firmware"]["revision"], "0x00010000", "{probe:#}");
        assert_eq!(probe["firmware"]["vendor"], "EDK II", "{probe:#}");
    }
}
