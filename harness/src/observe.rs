//! Observation: console lines in, decisive events out.
//!
//! The runner feeds every line of the serial and debug consoles (escape codes stripped) to a
//! [`ConsoleWatcher`]; the first decisive line ends the cell. What the probe printed is parsed
//! into a [`ProbeReport`], so verdicts rest on what the guest itself saw.

use std::sync::OnceLock;

use regex::Regex;
use serde::Serialize;

use crate::scenario::PayloadOutcome;

/// The marker the probe prints (see `images/probe`).
pub const PROBE_MARKER: &str = "BOOTMATRIX-PROBE";

/// What the probe read inside the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeReport {
    /// `SecureBoot` variable; None when the variable does not exist.
    pub secure_boot: Option<u8>,
    pub setup_mode: Option<u8>,
    pub audit_mode: Option<u8>,
    pub deployed_mode: Option<u8>,
    pub firmware_vendor: String,
    pub firmware_revision: String,
    pub uefi_revision: String,
}

#[cfg(test)]
impl ProbeReport {
    /// What OVMF 2022.11's probe line reads, with the given SecureBoot value (test fixture).
    pub fn sample(secure_boot: u8) -> ProbeReport {
        ProbeReport {
            secure_boot: Some(secure_boot),
            setup_mode: Some(0),
            audit_mode: None,
            deployed_mode: None,
            firmware_vendor: "EDK II".into(),
            firmware_revision: "0x00010000".into(),
            uefi_revision: "2.70".into(),
        }
    }
}

/// Parses `BOOTMATRIX-PROBE v=1 secureboot=1 setupmode=0 auditmode=- deployedmode=- vendor="EDK II" revision=0x00010000 uefi=2.70`.
pub fn parse_probe_line(line: &str) -> Option<ProbeReport> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(concat!(
            r"BOOTMATRIX-PROBE v=1 secureboot=(\d+|-) setupmode=(\d+|-) auditmode=(\d+|-) ",
            r#"deployedmode=(\d+|-) vendor="([^"]*)" revision=(\S+) uefi=(\S+)"#
        ))
        .expect("valid regex")
    });
    let caps = re.captures(line)?;
    let var = |i: usize| caps[i].parse::<u8>().ok();
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

/// A line that decides the cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Decision {
    /// The probe ran and reported.
    ProbeRan { report: ProbeReport },
    /// The boot manager refused to load or start the probe's boot option.
    ProbeRefused { boot_option: String, line: String },
    /// The firmware found nothing it would boot and now waits for a key forever.
    NothingBootable { line: String },
}

impl Decision {
    /// What happened to the payload, when the line says so.
    pub fn payload_outcome(&self) -> Option<PayloadOutcome> {
        match self {
            Decision::ProbeRan { .. } => Some(PayloadOutcome::Runs),
            Decision::ProbeRefused { .. } => Some(PayloadOutcome::Refused),
            Decision::NothingBootable { .. } => None,
        }
    }
}

/// Which console a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Console {
    Serial,
    Debug,
}

/// Watches console lines for the decisive ones.
#[derive(Debug, Default)]
pub struct ConsoleWatcher {
    decision: Option<Decision>,
}

fn refusal_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r#"BdsDxe: failed to (?:load|start) (Boot[0-9A-Fa-f]{4}) "([^"]*)".*: (Access Denied|Security Violation)"#)
            .expect("valid regex")
    })
}

impl ConsoleWatcher {
    pub fn new() -> ConsoleWatcher {
        ConsoleWatcher::default()
    }

    /// Feeds one clean line; returns the decision when this line made it.
    pub fn feed(&mut self, console: Console, line: &str) -> Option<&Decision> {
        if self.decision.is_some() {
            return None;
        }
        let decision = if let Some(report) = parse_probe_line(line) {
            Some(Decision::ProbeRan { report })
        } else if console == Console::Serial {
            if let Some(caps) = refusal_re().captures(line) {
                // The built-in shell is refused too under Secure Boot; only the disk holding
                // the probe decides.
                let name = caps[2].trim();
                (name != "EFI Internal Shell").then(|| Decision::ProbeRefused {
                    boot_option: format!("{} \"{}\"", &caps[1], name),
                    line: line.to_string(),
                })
            } else if line.contains("BdsDxe: No bootable option or device was found") {
                Some(Decision::NothingBootable {
                    line: line.to_string(),
                })
            } else {
                None
            }
        } else {
            None
        };
        self.decision = decision;
        self.decision.as_ref()
    }

    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }
}

/// Removes terminal escape sequences and carriage returns from console output.
pub fn strip_escapes(raw: &str) -> String {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        // CSI sequences, charset selection, and any other two-byte ESC sequence.
        Regex::new(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[@-_]").expect("valid regex")
    });
    re.replace_all(raw, "")
        .chars()
        .filter(|c| *c != '\r' && (!c.is_control() || *c == '\t'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const PROBE: &str = r#"BOOTMATRIX-PROBE v=1 secureboot=1 setupmode=0 auditmode=0 deployedmode=- vendor="EDK II" revision=0x00010000 uefi=2.70"#;

    #[test]
    fn parses_probe_line() {
        let r = parse_probe_line(PROBE).unwrap();
        assert_eq!(r.secure_boot, Some(1));
        assert_eq!(r.setup_mode, Some(0));
        assert_eq!(r.audit_mode, Some(0));
        assert_eq!(r.deployed_mode, None);
        assert_eq!(r.firmware_vendor, "EDK II");
        assert_eq!(r.firmware_revision, "0x00010000");
    }

    #[test]
    fn probe_line_decides_run() {
        let mut w = ConsoleWatcher::new();
        assert!(w
            .feed(Console::Serial, "BdsDxe: loading Boot0001")
            .is_none());
        let d = w.feed(Console::Serial, PROBE).cloned();
        assert!(matches!(d, Some(Decision::ProbeRan { .. })));
    }

    #[rstest]
    #[case(r#"BdsDxe: failed to load Boot0001 "UEFI QEMU HARDDISK QM00001 " from PciRoot(0x0)/Pci(0x1F,0x2)/Sata(0x0,0xFFFF,0x0): Access Denied"#)]
    #[case(r#"BdsDxe: failed to start Boot0003 "UEFI QEMU HARDDISK QM00001 " from X: Security Violation"#)]
    fn refusal_of_disk_decides(#[case] line: &str) {
        let mut w = ConsoleWatcher::new();
        let d = w.feed(Console::Serial, line).cloned().unwrap();
        assert_eq!(d.payload_outcome(), Some(PayloadOutcome::Refused));
    }

    #[test]
    fn refusal_of_builtin_shell_does_not_decide() {
        let mut w = ConsoleWatcher::new();
        let line = r#"BdsDxe: failed to start Boot0002 "EFI Internal Shell" from Fv(7CB8BDC9-F8EB-4F34-AAEA-3EE4AF6516A1)/FvFile(7C04A583-9E3E-4F1C-AD65-E05268D0B4D1): Security Violation"#;
        assert!(w.feed(Console::Serial, line).is_none());
    }

    #[test]
    fn nothing_bootable_decides_without_outcome() {
        let mut w = ConsoleWatcher::new();
        let d = w
            .feed(
                Console::Serial,
                "BdsDxe: No bootable option or device was found.",
            )
            .cloned()
            .unwrap();
        assert_eq!(d.payload_outcome(), None);
    }

    #[test]
    fn first_decision_sticks() {
        let mut w = ConsoleWatcher::new();
        w.feed(Console::Serial, PROBE);
        assert!(w
            .feed(
                Console::Serial,
                "BdsDxe: No bootable option or device was found."
            )
            .is_none());
        assert!(matches!(w.decision(), Some(Decision::ProbeRan { .. })));
    }

    #[test]
    fn strips_escape_codes() {
        let raw = "\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01HBdsDxe: loading Boot0001\r";
        assert_eq!(strip_escapes(raw), "BdsDxe: loading Boot0001");
    }
}
