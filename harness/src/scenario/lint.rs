//! `lint.json`: what `bootmatrix lint` says about each kind of finding (its severity, the
//! reason and a public reference), as data. Which findings a command line has is code
//! (`crate::lint`); every id the code can report has exactly one entry here, and an entry with
//! an id the code does not know is an error naming it.

use serde::{Deserialize, Serialize};
use strum::VariantArray;

/// Every finding `bootmatrix lint` can report, by its id in `lint.json` and in the output.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::Display,
    strum::IntoStaticStr,
    strum::EnumString,
    VariantArray,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum FindingId {
    /// No descriptor names the firmware the line loads (by path or sha256).
    FirmwareUnidentified,
    /// A Secure Boot build that needs a flash varstore, loaded with `-bios`.
    SecureBootBios,
    /// A split Secure Boot build loaded as one flash image, with no varstore.
    SecureBootNoVarstore,
    /// A `requires-smm` build without `smm=on` on the machine.
    SmmNotOn,
    /// A `requires-smm` build without `cfi.pflash01` `secure=on`.
    PflashNotSecure,
    /// The descriptor's varstore template itself as the guest's writable varstore.
    VarstoreIsTemplate,
    /// The varstore (pflash unit 1) read-only.
    VarstoreReadonly,
    /// `-kernel` under Secure Boot on a build that falls back to the legacy loader, without
    /// `EnableLegacyLoader=no`.
    KernelLegacyLoader,
    /// `-kernel` under Secure Boot on a build older than the `EnableLegacyLoader` switch.
    KernelLegacyLoaderNoSwitch,
    /// `-kernel` under SEV without `kernel-hashes=on`.
    SevKernelUnhashed,
    /// `-kernel` under SEV on a build not known to verify the kernel hashes.
    SevKernelUnverified,
    /// A `romfile=` on a device of a confidential guest.
    ConfidentialRomfile,
    /// A machine type the descriptor does not list.
    MachineNotSupported,
    /// pflash code and a separate varstore under SEV.
    SevSplitVarstore,
}

impl FindingId {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// How much a finding matters: an `error` makes `lint` exit 1.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::Display,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

/// One entry of `lint.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LintText {
    pub id: FindingId,
    pub severity: Severity,
    /// Why it matters and what to do instead.
    pub reason: String,
    /// A public reference: documentation, source, CVE.
    pub reference: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LintFile {
    #[serde(default)]
    #[allow(dead_code)]
    pub about: String,
    pub lint_findings: Vec<LintText>,
}

/// What is wrong with a set of lint texts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LintTextProblem {
    #[error("lint finding {0} is defined twice")]
    Twice(FindingId),
    #[error("lint finding {0} has no entry (every finding bootmatrix lint reports needs one)")]
    Missing(FindingId),
    #[error("lint finding {0}: empty {1}")]
    Empty(FindingId, &'static str),
}

/// Each id at most once, with a reason and a reference; when any entry is given, every id has
/// one (a folder without `lint.json` keeps the built-in texts).
pub fn validate(texts: &[LintText]) -> Result<(), LintTextProblem> {
    for (i, t) in texts.iter().enumerate() {
        if texts[..i].iter().any(|o| o.id == t.id) {
            return Err(LintTextProblem::Twice(t.id));
        }
        if t.reason.trim().is_empty() {
            return Err(LintTextProblem::Empty(t.id, "reason"));
        }
        if t.reference.trim().is_empty() {
            return Err(LintTextProblem::Empty(t.id, "reference"));
        }
    }
    if texts.is_empty() {
        return Ok(());
    }
    match FindingId::VARIANTS
        .iter()
        .find(|id| !texts.iter().any(|t| t.id == **id))
    {
        Some(id) => Err(LintTextProblem::Missing(*id)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(id: FindingId) -> LintText {
        LintText {
            id,
            severity: Severity::Error,
            reason: "r".into(),
            reference: "ref".into(),
        }
    }

    #[test]
    fn every_id_once_with_its_words() {
        let all: Vec<LintText> = FindingId::VARIANTS.iter().map(|i| text(*i)).collect();
        assert_eq!(validate(&all), Ok(()));
        assert_eq!(validate(&[]), Ok(()));
        let mut twice = all.clone();
        twice.push(text(FindingId::SmmNotOn));
        assert_eq!(
            validate(&twice),
            Err(LintTextProblem::Twice(FindingId::SmmNotOn))
        );
        let missing: Vec<LintText> = all[1..].to_vec();
        assert_eq!(
            validate(&missing),
            Err(LintTextProblem::Missing(FindingId::VARIANTS[0]))
        );
        let mut empty = all.clone();
        empty[2].reference = " ".into();
        assert_eq!(
            validate(&empty).unwrap_err().to_string(),
            format!("lint finding {}: empty reference", FindingId::VARIANTS[2])
        );
    }

    #[test]
    fn an_unknown_id_is_an_error_naming_it() {
        let e = serde_json::from_str::<LintFile>(
            r#"{"lint_findings": [{"id": "smm-of", "severity": "error", "reason": "r", "reference": "x"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("smm-of"), "{e}");
        assert!(e.contains("smm-not-on"), "names the known ones: {e}");
        let e = serde_json::from_str::<LintFile>(
            r#"{"lint_findings": [{"id": "smm-not-on", "severity": "fatal", "reason": "r", "reference": "x"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("fatal"), "{e}");
    }

    #[test]
    fn ids_read_as_they_are_written() {
        for id in FindingId::VARIANTS {
            let json = serde_json::to_string(id).unwrap();
            assert_eq!(json, format!("\"{}\"", id.as_str()));
            assert_eq!(id.as_str().parse::<FindingId>().unwrap(), *id);
        }
    }
}
