//! `known-no-boot.json`: known causes of a firmware that stops before its boot manager on
//! purpose, when the QEMU under it is one it cannot run on safely.
//!
//! Unlike a known deviation, such a cause is not one build's: every firmware of an edk2 release
//! range stops on every QEMU of a version range (under the given accelerators). So an entry
//! names the ranges and the cause's own signature: a pattern that one evidence line of the
//! no-boot observation must match. A no-boot without that line is not excused, whatever the
//! versions; a signature that no longer shows (a QEMU with the fix) excuses nothing, so an
//! entry cannot hide a different failure.

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::discover::host::Accel;
use crate::discover::qemu::Version;
use crate::discover::release::Edk2Release;

use super::{QemuRange, ReleaseRange};

/// A known reason why a firmware never reaches its boot manager on some QEMUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnownNoBoot {
    pub id: String,
    /// The QEMU versions that have the cause.
    pub qemu: QemuRange,
    /// The edk2 releases that stop on it.
    pub edk2: ReleaseRange,
    /// The accelerators under which it shows.
    pub accel: Vec<Accel>,
    /// A regular expression one evidence line must match: the cause's signature.
    pub evidence: String,
    pub reason: String,
    /// A public reference: edk2 commit, bug, QEMU commit.
    pub reference: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NoBootFile {
    #[serde(default)]
    #[allow(dead_code)]
    pub about: String,
    pub known_no_boot: Vec<KnownNoBoot>,
}

/// A cell's facts a known no-boot cause is matched against.
#[derive(Debug, Clone, Copy)]
pub struct NoBootCell<'a> {
    pub qemu: Version,
    pub edk2: Option<Edk2Release>,
    pub accel: Accel,
    pub evidence: &'a [&'a str],
}

impl KnownNoBoot {
    /// The signature as a regular expression, or why it is not one.
    pub fn signature(&self) -> Result<Regex, regex::Error> {
        Regex::new(&self.evidence)
    }

    /// Whether the entry explains a no-boot of `cell`: its QEMU, edk2 release (known) and
    /// accelerator are in the entry's ranges, and an evidence line shows the signature.
    pub fn explains(&self, cell: &NoBootCell) -> bool {
        let Ok(signature) = self.signature() else {
            return false;
        };
        self.qemu.contains(cell.qemu)
            && cell.edk2.is_some_and(|r| self.edk2.contains(r))
            && self.accel.contains(&cell.accel)
            && cell.evidence.iter().any(|line| signature.is_match(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPUHP: &str = "Invalid access at addr 0x0, size 4, region 'acpi-cpu-hotplug', reason: invalid size (min:1 max:1)";

    fn entry() -> KnownNoBoot {
        serde_json::from_str(
            r#"{"id": "cpuhp", "qemu": {"from": "5.1", "before": "8.0"},
                "edk2": {"from": "2023.02"}, "accel": ["tcg"],
                "evidence": "^Invalid access at addr 0x0, size 4, region 'acpi-cpu-hotplug'",
                "reason": "r", "reference": "ref"}"#,
        )
        .unwrap()
    }

    fn cell<'a>(
        qemu: &str,
        edk2: Option<&str>,
        accel: Accel,
        lines: &'a [&'a str],
    ) -> NoBootCell<'a> {
        NoBootCell {
            qemu: Version::parse(qemu).unwrap(),
            edk2: edk2.map(|r| Edk2Release::parse(r).unwrap()),
            accel,
            evidence: lines,
        }
    }

    #[test]
    fn an_entry_explains_only_its_ranges_with_its_signature() {
        let e = entry();
        let sig: &[&str] = &["SecCoreStartupWithStack(0xFFFCC000, 0x820000)", CPUHP];
        assert!(e.explains(&cell("5.2.0", Some("2025.02"), Accel::Tcg, sig)));
        for (qemu, edk2, accel) in [
            ("8.0.0", Some("2025.02"), Accel::Tcg),
            ("5.0.0", Some("2025.02"), Accel::Tcg),
            ("5.2.0", Some("2022.11"), Accel::Tcg),
            ("5.2.0", None, Accel::Tcg),
            ("5.2.0", Some("2025.02"), Accel::Kvm),
        ] {
            assert!(
                !e.explains(&cell(qemu, edk2, accel, sig)),
                "{qemu} {edk2:?} {accel}"
            );
        }
        let other: &[&str] = &["Invalid read at addr 0xFED40000, size 1, region '(null)'"];
        assert!(!e.explains(&cell("5.2.0", Some("2025.02"), Accel::Tcg, other)));
        assert!(!e.explains(&cell("5.2.0", Some("2025.02"), Accel::Tcg, &[])));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let bad = r#"{"id": "x", "qemu": {}, "edk2": {}, "accel": [], "evidence": "", "reason": "", "reference": "", "extra": 1}"#;
        assert!(serde_json::from_str::<KnownNoBoot>(bad).is_err());
    }
}
