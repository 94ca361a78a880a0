//! `bootmatrix expect`: everything bootmatrix expects of one firmware build, in one place. For
//! every descriptor of the build, every QEMU and every cell: the expected outcome and the rule
//! it comes from (or why the cell does not run); then the rules' reasons, the build's known
//! deviations, whether it is a measured-direct-boot build, and the rules that depend on the
//! edk2 release or the QEMU version, with whether they apply to this build.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use crate::discover::{executable_of, Firmware};
use crate::matrix::Check;
use crate::plan::{Action, Cell, Plan};
use crate::scenario::{Condition, Rule, Scenarios};

/// Which build to describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Build {
    /// A package, `ovmf` or `ovmf 2022.11-6+deb12u2` (name and version as dpkg reports them).
    Package(String),
    /// A descriptor file or a firmware executable.
    Firmware(PathBuf),
}

impl Build {
    /// Whether a discovered firmware belongs to this build.
    pub fn selects(&self, firmware: &Firmware) -> bool {
        match self {
            Build::Package(wanted) => firmware
                .package
                .as_deref()
                .is_some_and(|p| package_matches(p, wanted)),
            Build::Firmware(file) => {
                let file = canonical(file);
                canonical(&firmware.descriptor.path) == file
                    || canonical(executable_of(&firmware.descriptor)) == file
            }
        }
    }
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

/// `ovmf 2022.11-6+deb12u2` is matched by itself, by `ovmf`, and by `ovmf=2022.11-6+deb12u2`.
fn package_matches(package: &str, wanted: &str) -> bool {
    let wanted = wanted.trim().replacen('=', " ", 1);
    let name = package.split_whitespace().next().unwrap_or("");
    package == wanted || (!wanted.contains(' ') && name == wanted)
}

/// The expectation set of the build whose firmware `plan` was made from. `firmware` is the
/// selected firmware (the plan may hold none of its cells when none could be planned).
pub fn render(build: &Build, firmware: &[&Firmware], plan: &Plan, scenarios: &Scenarios) -> String {
    let mut out = String::new();
    let what = match build {
        Build::Package(p) => format!("package {p}"),
        Build::Firmware(f) => format!("firmware {}", f.display()),
    };
    let profile = plan.cells.first().map(|c| c.profile.to_string());
    let _ = writeln!(
        out,
        "What bootmatrix expects of {what} (profile {}, scenarios {})",
        profile.as_deref().unwrap_or("strict"),
        scenarios.origin
    );

    for fw in firmware {
        firmware_section(&mut out, fw, plan, scenarios);
    }

    let cells: Vec<&Cell> = plan.cells.iter().collect();
    rules_section(&mut out, &cells);
    deviations_section(&mut out, firmware, scenarios);
    measured_section(&mut out, firmware, scenarios);
    conditional_section(&mut out, &cells, scenarios);
    out
}

fn firmware_section(out: &mut String, fw: &Firmware, plan: &Plan, scenarios: &Scenarios) {
    let d = &fw.descriptor;
    let _ = writeln!(out, "\n{} ({})", d.name, d.path.display());
    let _ = writeln!(out, "  executable: {}", executable_of(d).display());
    let _ = writeln!(
        out,
        "  sha256: {}",
        fw.executable_sha256
            .as_deref()
            .unwrap_or_else(|why| why.as_str())
    );
    let _ = writeln!(
        out,
        "  package: {}",
        fw.package.as_deref().unwrap_or("(no package owns it)")
    );
    let features: Vec<String> = d.features.iter().map(|f| f.to_string()).collect();
    let _ = writeln!(out, "  features: {}", features.join(", "));

    let cells: Vec<&Cell> = plan
        .cells
        .iter()
        .filter(|c| c.descriptor == d.name)
        .collect();
    if cells.is_empty() {
        let _ = writeln!(
            out,
            "  no cells: the planner left it out (see `bootmatrix list`)"
        );
        return;
    }
    let release = cells[0].edk2;
    let _ = writeln!(
        out,
        "  edk2 release: {}",
        release.map_or(
            "unknown (rules with an edk2 range do not apply)".into(),
            |r| r.to_string()
        )
    );
    let groups: BTreeSet<_> = cells
        .iter()
        .map(|c| (c.qemu_version, c.confidential))
        .collect();
    let mut reasons: Vec<String> = Vec::new();
    for (qemu, mode) in groups {
        let _ = writeln!(out, "  QEMU {qemu}, {}:", super::explain::guest_words(mode));
        for check in Check::ALL {
            for cell in cells
                .iter()
                .filter(|c| c.qemu_version == qemu && c.confidential == mode && c.check == *check)
            {
                let _ = writeln!(out, "    {}", cell_line(cell, scenarios, &mut reasons));
            }
        }
    }
    for (n, reason) in reasons.iter().enumerate() {
        let _ = writeln!(out, "  [{}] {reason}", n + 1);
    }
}

/// The footnote number of `reason`, added if new.
fn footnote(reasons: &mut Vec<String>, reason: &str) -> usize {
    match reasons.iter().position(|r| r == reason) {
        Some(i) => i + 1,
        None => {
            reasons.push(reason.to_string());
            reasons.len()
        }
    }
}

/// What a rule expects: `runs, SecureBoot=1, SetupMode=0 (rule db-added-signed)`.
fn expectation(rule: &Rule) -> String {
    let mut text = rule.expect.payload.to_string();
    if let Some(sb) = rule.expect.secure_boot {
        let _ = write!(text, ", SecureBoot={sb}");
    }
    if let Some(sm) = rule.expect.setup_mode {
        let _ = write!(text, ", SetupMode={sm}");
    }
    let _ = write!(text, " (rule {})", rule.id);
    text
}

/// One cell: `secure-boot own-keys-vars/unsigned: refused (rule own-keys-unsigned)`, with the
/// build's known deviations for it, or why it does not run (a footnote).
fn cell_line(cell: &Cell, scenarios: &Scenarios, reasons: &mut Vec<String>) -> String {
    let mut line = format!("{} {}: ", cell.check, cell.variant);
    let expected = cell.rule.as_ref().map(expectation);
    match (&cell.action, &expected) {
        (Action::Refused(reason), _) => {
            let n = footnote(
                reasons,
                &format!("{} (admission rule {})", reason.reason, reason.rule),
            );
            let _ = write!(line, "never run, on any host [{n}]");
            return line;
        }
        (Action::Error(reason), _) => {
            let _ = write!(line, "error: {reason}");
            return line;
        }
        (_, None) => line.push_str("no rule matches (an error when run)"),
        (_, Some(e)) => line.push_str(e),
    }
    if let (Some(rule), Some(sha)) = (&cell.rule, &cell.executable_sha256) {
        for dev in scenarios.deviations_for(
            cell.check,
            &rule.id,
            sha,
            cell.variant.tweak,
            cell.qemu_version,
        ) {
            let _ = write!(
                line,
                "; known deviation {}: {}{}",
                dev.id,
                dev.observed,
                dev.secure_boot
                    .map_or(String::new(), |sb| format!(", SecureBoot={sb}"))
            );
        }
    }
    if let Action::Skip(reason) = &cell.action {
        let n = footnote(
            reasons,
            &format!("{} (admission rule {})", reason.reason, reason.rule),
        );
        let _ = write!(line, "; not run here [{n}]");
    }
    line
}

fn rules_section(out: &mut String, cells: &[&Cell]) {
    let mut seen = BTreeSet::new();
    let rules: Vec<(Check, &Rule)> = cells
        .iter()
        .filter(|c| matches!(c.action, Action::Run(_)))
        .filter_map(|c| c.rule.as_ref().map(|r| (c.check, r)))
        .filter(|(check, r)| seen.insert((*check, r.id.clone())))
        .collect();
    if rules.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nWhy (the rules these cells are held to):");
    for (check, rule) in rules {
        let _ = writeln!(out, "  {check}/{}: {}", rule.id, rule.because);
    }
}

fn shas<'a>(firmware: &'a [&Firmware]) -> BTreeSet<&'a str> {
    firmware
        .iter()
        .filter_map(|f| f.executable_sha256.as_deref().ok())
        .collect()
}

fn deviations_section(out: &mut String, firmware: &[&Firmware], scenarios: &Scenarios) {
    let shas = shas(firmware);
    let _ = writeln!(out, "\nKnown deviations of this build:");
    let mut any = false;
    for dev in scenarios.deviations.iter().filter(|d| {
        shas.iter()
            .any(|s| s.eq_ignore_ascii_case(&d.executable_sha256))
    }) {
        any = true;
        let _ = writeln!(
            out,
            "  {} ({}, rule {}): {}{}{}",
            dev.id,
            dev.check,
            dev.rule,
            dev.observed,
            dev.tweak
                .map_or(String::new(), |t| format!(", tweak {}", t.as_str())),
            dev.qemu.as_ref().map_or(String::new(), |q| format!(
                ", QEMU {}",
                range_text(q.from, q.before)
            ))
        );
        let _ = writeln!(out, "    because: {}", dev.reason);
        let _ = writeln!(out, "    reference: {}", dev.reference);
    }
    if !any {
        let _ = writeln!(out, "  none");
    }
}

fn measured_section(out: &mut String, firmware: &[&Firmware], scenarios: &Scenarios) {
    for sha in shas(firmware) {
        if let Some(m) = scenarios.measured_build(sha) {
            let _ = writeln!(
                out,
                "\nMeasured direct boot under SEV: {} ({})",
                m.build, m.reference
            );
        }
    }
}

fn range_text<T: std::fmt::Display>(from: Option<T>, before: Option<T>) -> String {
    match (from, before) {
        (Some(f), Some(b)) => format!("from {f} before {b}"),
        (Some(f), None) => format!("from {f}"),
        (None, Some(b)) => format!("before {b}"),
        (None, None) => "any".into(),
    }
}

/// The rules that an edk2 release or a QEMU version decides, and what they mean for this build.
fn conditional_section(out: &mut String, cells: &[&Cell], scenarios: &Scenarios) {
    let releases: BTreeSet<String> = cells
        .iter()
        .map(|c| c.edk2.map_or("unknown".into(), |r| r.to_string()))
        .collect();
    let conditional: Vec<&(Check, Rule)> = scenarios
        .rules
        .iter()
        .filter(|(_, r)| r.when.edk2.is_some() || r.when.qemu.is_some())
        .collect();
    if conditional.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nRules that the edk2 release or the QEMU version decides (this build: edk2 {}):",
        releases.into_iter().collect::<Vec<_>>().join(", ")
    );
    for (check, rule) in conditional {
        let applies = release_applies(&rule.when, cells);
        let _ = writeln!(
            out,
            "  {check}/{} [{}]: {}",
            rule.id,
            condition_text(&rule.when),
            applies
        );
    }
}

fn condition_text(when: &Condition) -> String {
    let mut parts = Vec::new();
    if let Some(r) = &when.edk2 {
        parts.push(format!("edk2 {}", range_text(r.from, r.before)));
    }
    if let Some(q) = &when.qemu {
        parts.push(format!("QEMU {}", range_text(q.from, q.before)));
    }
    parts.join(", ")
}

/// Whether this build's release falls in the rule's edk2 range (QEMU ranges are per cell).
fn release_applies(when: &Condition, cells: &[&Cell]) -> &'static str {
    let Some(range) = &when.edk2 else {
        return "by QEMU version only";
    };
    let releases: BTreeSet<_> = cells.iter().map(|c| c.edk2).collect();
    let inside = releases
        .iter()
        .filter(|r| r.is_some_and(|r| range.contains(r)))
        .count();
    match inside {
        0 => "not for this build's release",
        n if n == releases.len() => "this build's release is in range",
        _ => "some of this build's releases are in range",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_and_versions_select() {
        let p = "ovmf 2022.11-6+deb12u2";
        assert!(package_matches(p, "ovmf 2022.11-6+deb12u2"));
        assert!(package_matches(p, "ovmf"));
        assert!(package_matches(p, "ovmf=2022.11-6+deb12u2"));
        assert!(!package_matches(p, "ovmf 2025.02-8+deb13u1"));
        assert!(!package_matches(p, "ovmf-ia32"));
        assert!(!package_matches(p, "ovm"));
    }

    #[test]
    fn ranges_read_as_words() {
        assert_eq!(range_text(Some(1), Some(2)), "from 1 before 2");
        assert_eq!(range_text(Some(1), None), "from 1");
        assert_eq!(range_text(None, Some(2)), "before 2");
        assert_eq!(range_text::<u8>(None, None), "any");
    }
}
