//! Observation: console lines in, decisive events out.
//!
//! The runner feeds every line of the serial and debug consoles (escape codes stripped) to a
//! [`ConsoleWatcher`] made for the cell's check; the first decisive line ends the cell. What the
//! probe printed is parsed into a [`ProbeReport`], so verdicts rest on what the guest itself saw.
//!
//! - secure-boot: the probe's line, or the boot manager refusing the probe's boot option.
//! - option-rom: the probe's line decides (the boot manager has dispatched every option ROM by
//!   then); whether the ROM driver's marker came before it says if the ROM ran.
//! - kernel-boot: the kernel's `secureboot:` line (after `Linux version`) decides that it
//!   started; OVMF's refusal lines, or the boot manager finding nothing else, that it did not.
//!   OVMF's legacy-loader warning is remembered on the way.

use std::sync::OnceLock;

use regex::Regex;
use serde::Serialize;

use crate::scenario::Check;

/// What OVMF prints when it boots a `-kernel` through the legacy loader (edk2 >= stable202502).
pub const LEGACY_LOADER_WARNING: &str = "OVMF: Using legacy linux kernel loader";

/// What shim prints when it refuses the image it was asked to start (in an error box that
/// waits for a key, without a newline).
pub const SHIM_REFUSAL: &str = "Verification failed: ";

/// What OVMF prints when it will not fall back to the legacy loader.
const KERNEL_REFUSALS: &[&str] = &[
    "OVMF: Fallback to insecure legacy linux kernel loader is disabled",
    "OVMF: Running in confidential VM",
];

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
    /// option-rom: the probe ran; `marker` is the ROM driver's line if it ran before.
    OptionRomDispatched {
        marker: Option<String>,
        report: ProbeReport,
    },
    /// kernel-boot: the kernel started.
    KernelStarted {
        /// The kernel's `Linux version` line.
        linux_version: String,
        /// From the kernel's `secureboot:` line; None when it printed none.
        secure_boot: Option<bool>,
        /// OVMF's legacy-loader warning, when it printed one.
        legacy_warning: Option<String>,
        /// What follows the kernel's `Command line:`; tells how OVMF loaded it.
        command_line: Option<String>,
        line: String,
    },
    /// kernel-boot: the firmware did not start the kernel.
    KernelRefused { line: String },
}

impl Decision {
    /// The probe's report, when the probe ran.
    pub fn probe_report(&self) -> Option<&ProbeReport> {
        match self {
            Decision::ProbeRan { report } | Decision::OptionRomDispatched { report, .. } => {
                Some(report)
            }
            _ => None,
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
#[derive(Debug)]
pub struct ConsoleWatcher {
    check: Check,
    decision: Option<Decision>,
    /// option-rom: the ROM driver's marker line.
    oprom_marker: Option<String>,
    /// kernel-boot: OVMF's legacy-loader warning.
    legacy_warning: Option<String>,
    /// kernel-boot: the kernel's `Linux version` line.
    linux_version: Option<String>,
    /// kernel-boot: the kernel's command line.
    command_line: Option<String>,
}

fn refusal_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r#"BdsDxe: failed to (?:load|start) (Boot[0-9A-Fa-f]{4}) "([^"]*)".*: (Access Denied|Security Violation)"#)
            .expect("valid regex")
    })
}

impl ConsoleWatcher {
    pub fn new(check: Check) -> ConsoleWatcher {
        ConsoleWatcher {
            check,
            decision: None,
            oprom_marker: None,
            legacy_warning: None,
            linux_version: None,
            command_line: None,
        }
    }

    /// Feeds one clean line; returns the decision when this line made it.
    pub fn feed(&mut self, console: Console, line: &str) -> Option<&Decision> {
        if self.decision.is_some() {
            return None;
        }
        self.decision = match self.check {
            Check::SecureBoot => self.probe_boot(console, line),
            Check::OptionRom => self.option_rom(console, line),
            Check::KernelBoot => self.kernel_boot(console, line),
        };
        self.decision.as_ref()
    }

    /// Feeds the unfinished line a console shows (no newline yet). Only what can end a cell
    /// without a newline decides here: shim's refusal of the kernel.
    pub fn feed_partial(&mut self, console: Console, text: &str) -> Option<&Decision> {
        if self.decision.is_some() || self.check != Check::KernelBoot {
            return None;
        }
        static RE: OnceLock<Regex> = OnceLock::new();
        // The message is complete once the box's padding follows it: `...: (0x1A) Security
        // Violation   │`; before that, more of it may still be on its way.
        let re = RE.get_or_init(|| {
            Regex::new(r"Verification failed: (\([^)]*\) \S+(?: \S+)*)\s{2,}").expect("valid regex")
        });
        if console == Console::Serial {
            if let Some(caps) = re.captures(text) {
                self.decision = Some(Decision::KernelRefused {
                    line: format!("shim: {SHIM_REFUSAL}{}", &caps[1]),
                });
            }
        }
        self.decision.as_ref()
    }

    fn probe_boot(&self, console: Console, line: &str) -> Option<Decision> {
        if let Some(report) = parse_probe_line(line) {
            return Some(Decision::ProbeRan { report });
        }
        if console != Console::Serial {
            return None;
        }
        if let Some(caps) = refusal_re().captures(line) {
            // The built-in shell is refused too under Secure Boot; only the disk holding the
            // probe decides.
            let name = caps[2].trim();
            return (name != "EFI Internal Shell").then(|| Decision::ProbeRefused {
                boot_option: format!("{} \"{}\"", &caps[1], name),
                line: line.to_string(),
            });
        }
        nothing_bootable(line)
    }

    fn option_rom(&mut self, console: Console, line: &str) -> Option<Decision> {
        if console == Console::Serial && line.contains(crate::optionrom::MARKER) {
            self.oprom_marker.get_or_insert_with(|| line.to_string());
            // The marker may share a line with firmware output; the probe line still counts.
        }
        match self.probe_boot(console, line)? {
            Decision::ProbeRan { report } => Some(Decision::OptionRomDispatched {
                marker: self.oprom_marker.clone(),
                report,
            }),
            other => Some(other),
        }
    }

    fn kernel_boot(&mut self, console: Console, line: &str) -> Option<Decision> {
        if console != Console::Serial {
            return None;
        }
        if line.contains(LEGACY_LOADER_WARNING) {
            self.legacy_warning.get_or_insert_with(|| line.to_string());
            return None;
        }
        if KERNEL_REFUSALS.iter().any(|r| line.contains(r)) || line.contains(SHIM_REFUSAL) {
            return Some(Decision::KernelRefused {
                line: line.to_string(),
            });
        }
        if line.contains("Linux version ") {
            self.linux_version.get_or_insert_with(|| line.to_string());
            return None;
        }
        if let Some((_, rest)) = line.split_once("Command line: ") {
            if self.linux_version.is_some() {
                self.command_line
                    .get_or_insert_with(|| rest.trim().to_string());
                return None;
            }
        }
        let Some(linux_version) = self.linux_version.clone() else {
            // Before the kernel: only the boot manager giving up decides (refused).
            return nothing_bootable(line).map(|_| Decision::KernelRefused {
                line: line.to_string(),
            });
        };
        let secure_boot = if line.contains("secureboot: Secure boot enabled") {
            Some(Some(true))
        } else if line.contains("secureboot: Secure boot disabled") {
            Some(Some(false))
        } else if line.contains("secureboot: Secure boot could not be determined") {
            Some(None)
        } else if line.contains("Kernel panic") {
            // The kernel got this far without a `secureboot:` line (not booted through EFI).
            Some(None)
        } else {
            None
        };
        secure_boot.map(|secure_boot| Decision::KernelStarted {
            linux_version,
            secure_boot,
            legacy_warning: self.legacy_warning.clone(),
            command_line: self.command_line.clone(),
            line: line.to_string(),
        })
    }

    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }
}

/// Whether OVMF started the kernel through LoadImage/StartImage (the verified path) rather than
/// its legacy Linux loader. With an initrd, that path puts `initrd=initrd` on the command line
/// it hands the kernel (edk2 X86QemuLoadImageLib); the legacy loader passes QEMU's command line
/// as it is. bootmatrix always gives an initrd, so the kernel's `Command line:` tells the path.
pub fn loaded_by_load_image(command_line: &str) -> bool {
    command_line
        .split_whitespace()
        .any(|w| w == "initrd=initrd")
}

fn nothing_bootable(line: &str) -> Option<Decision> {
    line.contains("BdsDxe: No bootable option or device was found")
        .then(|| Decision::NothingBootable {
            line: line.to_string(),
        })
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
        let mut w = ConsoleWatcher::new(Check::SecureBoot);
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
        let mut w = ConsoleWatcher::new(Check::SecureBoot);
        let d = w.feed(Console::Serial, line).cloned().unwrap();
        assert!(matches!(d, Decision::ProbeRefused { .. }), "{d:?}");
    }

    #[test]
    fn refusal_of_builtin_shell_does_not_decide() {
        let mut w = ConsoleWatcher::new(Check::SecureBoot);
        let line = r#"BdsDxe: failed to start Boot0002 "EFI Internal Shell" from Fv(7CB8BDC9-F8EB-4F34-AAEA-3EE4AF6516A1)/FvFile(7C04A583-9E3E-4F1C-AD65-E05268D0B4D1): Security Violation"#;
        assert!(w.feed(Console::Serial, line).is_none());
    }

    #[test]
    fn nothing_bootable_decides() {
        let mut w = ConsoleWatcher::new(Check::SecureBoot);
        let d = w
            .feed(
                Console::Serial,
                "BdsDxe: No bootable option or device was found.",
            )
            .cloned()
            .unwrap();
        assert!(matches!(d, Decision::NothingBootable { .. }), "{d:?}");
    }

    #[test]
    fn first_decision_sticks() {
        let mut w = ConsoleWatcher::new(Check::SecureBoot);
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

    const OPROM: &str = "BOOTMATRIX-OPROM v=1 loaded";

    #[rstest]
    #[case::marker_on_its_own_line(&[OPROM, "BdsDxe: loading Boot0001", PROBE], true)]
    #[case::marker_inside_firmware_output(&["BdsDxe: loadBOOTMATRIX-OPROM v=1 loaded", PROBE], true)]
    #[case::no_marker(&["BdsDxe: loading Boot0001", PROBE], false)]
    #[case::marker_after_the_probe_is_too_late(&[PROBE, OPROM], false)]
    fn option_rom_is_decided_by_the_probe_line(#[case] lines: &[&str], #[case] executed: bool) {
        let mut w = ConsoleWatcher::new(Check::OptionRom);
        for line in lines {
            w.feed(Console::Serial, line);
        }
        match w.decision() {
            Some(Decision::OptionRomDispatched { marker, report }) => {
                assert_eq!(marker.is_some(), executed);
                assert_eq!(report.secure_boot, Some(1));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn option_rom_marker_on_the_debug_console_does_not_count() {
        let mut w = ConsoleWatcher::new(Check::OptionRom);
        w.feed(Console::Debug, OPROM);
        w.feed(Console::Serial, PROBE);
        assert!(matches!(
            w.decision(),
            Some(Decision::OptionRomDispatched { marker: None, .. })
        ));
    }

    #[test]
    fn option_rom_cell_with_refused_probe_is_decided_as_refused() {
        let mut w = ConsoleWatcher::new(Check::OptionRom);
        w.feed(Console::Serial, OPROM);
        let line = r#"BdsDxe: failed to load Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x3,0x0): Access Denied"#;
        assert!(matches!(
            w.feed(Console::Serial, line),
            Some(Decision::ProbeRefused { .. })
        ));
    }

    const LINUX: &str = "[    0.000000] Linux version 6.1.0-28-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)";

    fn kernel(lines: &[&str]) -> Option<Decision> {
        let mut w = ConsoleWatcher::new(Check::KernelBoot);
        for line in lines {
            w.feed(Console::Serial, line);
        }
        w.decision().cloned()
    }

    #[rstest]
    #[case::enabled("[    0.010712] secureboot: Secure boot enabled", Some(true))]
    #[case::disabled("[    0.010712] secureboot: Secure boot disabled", Some(false))]
    #[case::panic_without_secureboot_line(
        "[    1.2] Kernel panic - not syncing: VFS: Unable to mount root fs",
        None
    )]
    fn kernel_start_is_decided_after_linux_version(
        #[case] line: &str,
        #[case] secure_boot: Option<bool>,
    ) {
        match kernel(&[
            LINUX,
            "[    0.0] Command line: initrd=initrd console=ttyS0",
            line,
        ]) {
            Some(Decision::KernelStarted {
                linux_version,
                secure_boot: sb,
                legacy_warning,
                command_line,
                ..
            }) => {
                assert_eq!(linux_version, LINUX);
                assert_eq!(sb, secure_boot);
                assert_eq!(legacy_warning, None);
                assert_eq!(command_line.as_deref(), Some("initrd=initrd console=ttyS0"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn secureboot_line_without_linux_version_does_not_decide() {
        assert_eq!(kernel(&["secureboot: Secure boot enabled"]), None);
    }

    #[test]
    fn legacy_loader_warning_is_kept() {
        let warning = "OVMF: Using legacy linux kernel loader (insecure and deprecated).";
        let d = kernel(&[
            "OVMF: Secure boot image verification failed.",
            warning,
            LINUX,
            "secureboot: Secure boot enabled",
        ]);
        assert!(
            matches!(&d, Some(Decision::KernelStarted { legacy_warning: Some(w), .. }) if w == warning),
            "{d:?}"
        );
    }

    #[rstest]
    #[case("OVMF: Fallback to insecure legacy linux kernel loader is disabled.")]
    #[case("OVMF: Running in confidential VM, not using insecure legacy linux kernel loader.")]
    #[case("BdsDxe: No bootable option or device was found.")]
    fn kernel_refusals(#[case] line: &str) {
        assert!(
            matches!(kernel(&[line]), Some(Decision::KernelRefused { .. })),
            "{line}"
        );
    }

    #[test]
    fn probe_line_does_not_decide_a_kernel_cell() {
        assert_eq!(kernel(&[PROBE]), None);
    }

    #[test]
    fn shim_refusal_decides_even_without_a_newline() {
        let mut w = ConsoleWatcher::new(Check::KernelBoot);
        assert!(w
            .feed_partial(Console::Serial, "Failed to open  - Not")
            .is_none());
        // Not complete yet: more of the message may follow.
        assert!(w
            .feed_partial(
                Console::Serial,
                " ERROR  Verification failed: (0x1A) Security Vi"
            )
            .is_none());
        let box_text = "┌──┐│   ERROR   ││   Verification failed: (0x1A) Security Violation     │";
        match w.feed_partial(Console::Serial, box_text) {
            Some(Decision::KernelRefused { line }) => {
                assert_eq!(line, "shim: Verification failed: (0x1A) Security Violation")
            }
            other => panic!("{other:?}"),
        }
        // Only kernel cells, only that refusal.
        let mut probe = ConsoleWatcher::new(Check::SecureBoot);
        assert!(probe.feed_partial(Console::Serial, box_text).is_none());
        let mut other = ConsoleWatcher::new(Check::KernelBoot);
        assert!(other.feed_partial(Console::Serial, PROBE).is_none());
        assert!(other
            .feed_partial(
                Console::Serial,
                "OVMF: Secure boot image verification failed."
            )
            .is_none());
    }
}
