//! The probe's report lines: what it read of the UEFI variables (`BOOTMATRIX-PROBE`) and of
//! each PCI device's option ROM (`BOOTMATRIX-PCI`).

use std::sync::OnceLock;

use regex::Regex;
use serde::Serialize;

use crate::observe::evidence::Reading;

/// What the probe read inside the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeReport {
    pub secure_boot: Reading,
    pub setup_mode: Reading,
    pub audit_mode: Reading,
    pub deployed_mode: Reading,
    pub firmware_vendor: String,
    pub firmware_revision: String,
    pub uefi_revision: String,
}

/// Parses `BOOTMATRIX-PROBE v=2 secureboot=1 setupmode=0 auditmode=absent deployedmode=- vendor="EDK II" revision=0x00010000 uefi=2.70`.
pub fn parse_probe_line(line: &str) -> Option<ProbeReport> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        let v = r"(\d+|absent|-)";
        Regex::new(&format!(
            r#"BOOTMATRIX-PROBE v=2 secureboot={v} setupmode={v} auditmode={v} deployedmode={v} vendor="([^"]*)" revision=(\S+) uefi=(\S+)"#
        ))
        .expect("valid regex")
    });
    let caps = re.captures(line)?;
    let var = |i: usize| reading(&caps[i]);
    Some(ProbeReport {
        secure_boot: var(1),
        setup_mode: var(2),
        audit_mode: var(3),
        deployed_mode: var(4),
        firmware_vendor: caps[5].to_string(),
        firmware_revision: caps[6].to_string(),
        uefi_revision: caps[7].to_string(),
    })
}

/// What the probe reported of one PCI device: whether an option ROM was presented to the
/// firmware, and how many images from it the firmware started and kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PciDevice {
    pub loc: String,
    pub id: String,
    pub class: String,
    /// `EFI_PCI_IO_PROTOCOL.RomSize`; None when the probe could not read it.
    pub rom_size: Option<u64>,
    /// Whether `RomImage` is set.
    pub rom_image: Option<bool>,
    /// Loaded images whose device is this one (option-ROM drivers that were started and stayed).
    pub images: Option<u32>,
}

/// Parses `BOOTMATRIX-PCI v=1 loc=0000:00:06.0 id=8086:100e class=020000 romsize=65536 romimage=1 images=1`.
pub fn parse_pci_line(line: &str) -> Option<PciDevice> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(concat!(
            r"BOOTMATRIX-PCI v=1 loc=(\S+) id=(\S+) class=(\S+) ",
            r"romsize=(\d+|-) romimage=(0|1|-) images=(\d+|-)"
        ))
        .expect("valid regex")
    });
    let caps = re.captures(line)?;
    Some(PciDevice {
        loc: caps[1].to_string(),
        id: caps[2].to_string(),
        class: caps[3].to_string(),
        rom_size: caps[4].parse().ok(),
        rom_image: match &caps[5] {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        },
        images: caps[6].parse().ok(),
    })
}

/// A probe field: digits, `absent`, or `-` (the read failed).
fn reading(text: &str) -> Reading {
    match text {
        "absent" => Reading::Absent,
        "-" => Reading::Unknown("the probe could not read it".into()),
        digits => digits
            .parse()
            .map(Reading::Value)
            .unwrap_or_else(|_| Reading::Unknown(format!("the probe reported {digits:?}"))),
    }
}

/// `SecureBoot=1 SetupMode=0`, with `absent` and `unknown` for what is not a value.
pub fn summary(report: &ProbeReport) -> String {
    format!(
        "SecureBoot={} SetupMode={}",
        report.secure_boot, report.setup_mode
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::script::*;

    #[test]
    fn parses_probe_line_with_absent_and_unknown_values() {
        let r = parse_probe_line(
            r#"BOOTMATRIX-PROBE v=2 secureboot=1 setupmode=absent auditmode=- deployedmode=0 vendor="EDK II" revision=0x00010000 uefi=2.70"#,
        )
        .unwrap();
        assert_eq!(r.secure_boot, Reading::Value(1));
        assert_eq!(r.setup_mode, Reading::Absent);
        assert!(matches!(r.audit_mode, Reading::Unknown(_)));
        assert_eq!(r.deployed_mode, Reading::Value(0));
        assert_eq!(r.firmware_vendor, "EDK II");
        assert_eq!(r.firmware_revision, "0x00010000");
        assert_eq!(r.uefi_revision, "2.70");
        // A value that is no byte is not a value.
        let big = parse_probe_line(&PROBE.replace("secureboot=1", "secureboot=300")).unwrap();
        assert!(matches!(big.secure_boot, Reading::Unknown(_)));
        // The old line format is not read as the new one.
        assert!(parse_probe_line(&PROBE.replace("v=2", "v=1")).is_none());
    }

    #[test]
    fn parses_pci_lines() {
        let d = parse_pci_line(PCI_ROM_RAN).unwrap();
        assert_eq!(d.loc, "0000:00:06.0");
        assert_eq!(d.id, "8086:100e");
        assert_eq!(d.class, "020000");
        assert_eq!(d.rom_size, Some(65536));
        assert_eq!(d.rom_image, Some(true));
        assert_eq!(d.images, Some(1));
        let unknown = parse_pci_line(
            "BOOTMATRIX-PCI v=1 loc=0000:00:06.0 id=- class=- romsize=- romimage=- images=-",
        )
        .unwrap();
        assert_eq!(unknown.rom_size, None);
        assert_eq!(unknown.rom_image, None);
        assert_eq!(unknown.images, None);
        assert_eq!(parse_pci_line(PCI_NO_ROM).unwrap().rom_image, Some(false));
    }
    #[test]
    fn readings_read_as_words() {
        let shown: Vec<String> = [
            Reading::Value(1),
            Reading::Absent,
            Reading::Unknown("x".into()),
        ]
        .iter()
        .map(|r| r.to_string())
        .collect();
        assert_eq!(shown, ["1", "absent", "unknown"]);
        let report = parse_probe_line(&PROBE.replace("setupmode=0", "setupmode=-")).unwrap();
        assert_eq!(summary(&report), "SecureBoot=1 SetupMode=unknown");
    }
}
