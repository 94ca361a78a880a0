//! Observation: console lines in, an outcome and the lines that show it out.
//!
//! The runner hands every line of the serial and debug consoles (escape codes stripped) to a
//! [`Watcher`] made for the cell; the watcher collects facts and tells the runner when it has
//! seen enough. [`Watcher::finish`] then concludes ([`conclude`]): an
//! [`Observation`](evidence::Observation) always carries at least one evidence line (the type
//! cannot be built without one), and "nothing seen" is never an outcome, only an
//! [`Undecided`](evidence::Undecided) cell. The probe's report lines are read in [`probe`].
//!
//! - A refusal is the firmware's (or shim's) own refusal line naming the payload's own boot
//!   option, confirmed by the boot manager giving up afterwards (`BdsDxe: No bootable option
//!   ...`, 0.1-0.2 s later). Where nothing more is printed (shim's error box waits for a key),
//!   the refusal counts once the planned grace window has passed with no payload line.
//! - A payload line after a refusal makes the payload's outcome, and the refusal is recorded as
//!   a contradiction.
//! - The boot manager giving up without refusing the payload is `nothing-bootable`: the payload
//!   was never handed over.
//! - Only the serial console carries payload and boot-manager lines; the debug console decides
//!   nothing about the payload. It only shows, with nothing on the serial console, a firmware
//!   that never reached its boot manager (`no-boot`, [`noboot`]).

pub mod asbios;
pub mod chain;
pub mod conclude;
pub mod evidence;
pub mod noboot;
pub mod probe;
#[cfg(test)]
pub mod script;
pub mod shell;

use std::sync::OnceLock;
use std::time::Duration;

use regex::Regex;

use crate::boot::{Console, Control, Watch};
use crate::matrix::Check;
use crate::observe::evidence::{Evidence, Reading};
use crate::observe::probe::{parse_pci_line, parse_probe_line, PciDevice, ProbeReport};
use crate::plan::{RunSpec, Targets};

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

/// How long an option-rom cell keeps reading after the probe's line for a late ROM marker. The
/// probe powers the VM off at once; this only bounds a probe whose power-off fails.
const LATE_MARKER_WINDOW: Duration = Duration::from_secs(1);

/// A refusal of the payload: the line, and what it names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Refusal {
    evidence: Evidence,
    /// `Boot0001 "UEFI Misc Device": Access Denied`, or the firmware's or shim's message.
    what: String,
}

/// Collects the facts of one boot and says when they are enough.
#[derive(Debug)]
pub struct Watcher {
    check: Check,
    targets: Targets,
    grace: Duration,
    now: Duration,
    probe: Option<(Evidence, ProbeReport)>,
    pci: Vec<(Evidence, PciDevice)>,
    /// The first refusal of this cell's own payload.
    refusal: Option<Refusal>,
    /// The boot manager failing the payload's option for another reason than Secure Boot.
    failure: Option<Evidence>,
    /// Refusals of other boot options (the built-in shell, say): context only.
    other_refusals: Vec<Evidence>,
    /// `BdsDxe: No bootable option ...`: the boot manager has tried everything.
    end_of_attempts: Option<Evidence>,
    /// Set by a tick once a refusal has stood for the grace window with nothing after it.
    grace_expired: bool,
    /// option-rom: the driver's marker, on one line or split over two.
    marker: Option<Vec<Evidence>>,
    previous_serial: Option<Evidence>,
    /// kernel-boot facts.
    legacy_warning: Option<Evidence>,
    linux_version: Option<Evidence>,
    command_line: Option<Evidence>,
    /// The kernel's `secureboot:` line (or a panic before it) and what it says.
    kernel_secure_boot: Option<(Evidence, Reading)>,
    /// How far the firmware got, for a boot that decided nothing else.
    progress: noboot::Progress,
    /// distro-chain: the first refusal by shim or grub, and what it makes of the cell.
    chain_refusal: Option<(crate::matrix::Outcome, Refusal)>,
    grub_started: bool,
    grub_gave_up: bool,
    /// no-shell: the shell's own line.
    shell_reached: Option<Evidence>,
}

/// The boot manager's line for a boot option it could not load or start:
/// `BdsDxe: failed to load Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x5,0x0): Access
/// Denied`. Since edk2 stable202508 (OvmfPkg PlatformBmPrintScLib) a Secure Boot status carries
/// ` -- rejected probably by Secure Boot` after it (on `Security Violation`, and on `Access
/// Denied` when loading); the suffix is its own group, never part of the device path or status.
fn refusal_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r#"BdsDxe: failed to (?:load|start) (Boot[0-9A-Fa-f]{4}) "([^"]*)" from (.*): ([A-Za-z ]+?)(?: -- ([^:]*?))?\s*$"#,
        )
        .expect("valid regex")
    })
}

/// The boot manager's line after it has tried every option: `... No bootable option or device
/// was found.` (then it waits for a key), or, since edk2 stable202305 on a build with
/// `PcdBootRestrictToFirmware` (the AmdSev build sets it), `... No bootable option was
/// found.` (then it stops for good). Both come from OvmfPkg's PlatformBootManagerLib.
fn is_end_of_attempts(line: &str) -> bool {
    line.contains("BdsDxe: No bootable option")
}

/// Whether a boot-manager failure status is Secure Boot refusing the image.
fn is_security_status(status: &str) -> bool {
    matches!(status, "Access Denied" | "Security Violation")
}

/// Whether OVMF started the kernel through LoadImage/StartImage (the verified path) rather than
/// its legacy Linux loader. With an initrd, that path puts `initrd=initrd` on the command line
/// it hands the kernel (edk2 X86QemuLoadImageLib); the legacy loader passes QEMU's command line
/// as it is. bootmatrix always gives an initrd, and the planner refuses an `-append` with an
/// `initrd=` of its own, so the kernel's `Command line:` tells the path.
pub fn loaded_by_load_image(command_line: &str) -> bool {
    command_line
        .split_whitespace()
        .any(|w| w == "initrd=initrd")
}

impl Watcher {
    pub fn new(check: Check, targets: Targets, grace: Duration) -> Watcher {
        Watcher {
            check,
            targets,
            grace,
            now: Duration::ZERO,
            probe: None,
            pci: Vec::new(),
            refusal: None,
            failure: None,
            other_refusals: Vec::new(),
            end_of_attempts: None,
            grace_expired: false,
            marker: None,
            previous_serial: None,
            legacy_warning: None,
            linux_version: None,
            command_line: None,
            kernel_secure_boot: None,
            progress: noboot::Progress::default(),
            chain_refusal: None,
            grub_started: false,
            grub_gave_up: false,
            shell_reached: None,
        }
    }

    /// The watcher a planned cell needs.
    pub fn for_spec(spec: &RunSpec) -> Watcher {
        Watcher::new(spec.check, spec.targets.clone(), spec.grace)
    }

    fn serial_line(&mut self, ev: Evidence) {
        let line = ev.line.as_str();
        if self.reads_as() != Check::KernelBoot && self.probe.is_none() {
            if let Some(report) = parse_probe_line(line) {
                self.probe = Some((ev.clone(), report));
            }
        }
        if let Some(device) = parse_pci_line(line) {
            self.pci.push((ev.clone(), device));
        }
        if let Some(caps) = refusal_re().captures(line) {
            let own = self
                .targets
                .boot_device
                .as_deref()
                .is_some_and(|d| caps[3].starts_with(d));
            let status = caps[4].to_string();
            if !own {
                self.other_refusals.push(ev.clone());
            } else if is_security_status(&status) {
                if self.refusal.is_none() {
                    let suffix = caps
                        .get(5)
                        .map_or(String::new(), |m| format!(" -- {}", m.as_str()));
                    self.refusal = Some(Refusal {
                        what: format!("{} \"{}\": {status}{suffix}", &caps[1], caps[2].trim()),
                        evidence: ev.clone(),
                    });
                }
            } else {
                self.failure.get_or_insert_with(|| ev.clone());
            }
        }
        if is_end_of_attempts(line) {
            self.end_of_attempts.get_or_insert_with(|| ev.clone());
        }
        match self.reads_as() {
            Check::SecureBoot => {}
            Check::OptionRom => self.option_rom_line(&ev),
            Check::KernelBoot => self.kernel_line(&ev),
            Check::DistroChain => {
                self.kernel_facts(&ev);
                self.chain_text(&ev);
            }
            Check::NoShell => self.shell_text(&ev),
            // Boots nothing: run reads its varstore instead.
            Check::KeyHealth => {}
            Check::AsBios => {
                unreachable!("reads_as says which check's lines an as-bios cell reads")
            }
        }
        self.previous_serial = Some(ev);
    }

    fn option_rom_line(&mut self, ev: &Evidence) {
        static RE: OnceLock<Regex> = OnceLock::new();
        // What the driver writes when it runs: `loaded`, or `panic` from its panic handler
        // (code from the ROM ran either way).
        let re = RE.get_or_init(|| {
            let marker = regex::escape(crate::prepare::optionrom::MARKER);
            Regex::new(&format!("{marker} v=1 (?:loaded|panic)")).expect("valid regex")
        });
        if self.marker.is_some() {
            return;
        }
        if re.is_match(&ev.line) {
            self.marker = Some(vec![ev.clone()]);
        } else if let Some(prev) = &self.previous_serial {
            // Firmware output may break the marker over two lines.
            if re.is_match(&format!("{}{}", prev.line, ev.line)) {
                self.marker = Some(vec![prev.clone(), ev.clone()]);
            }
        }
    }

    fn kernel_line(&mut self, ev: &Evidence) {
        let line = ev.line.as_str();
        if line.contains(LEGACY_LOADER_WARNING) {
            self.legacy_warning.get_or_insert_with(|| ev.clone());
        }
        if self.refusal.is_none() {
            if let Some(r) = KERNEL_REFUSALS.iter().find(|r| line.contains(*r)) {
                self.refusal = Some(Refusal {
                    what: format!("the firmware: {r}"),
                    evidence: ev.clone(),
                });
            } else if let Some((_, rest)) = line.split_once(SHIM_REFUSAL) {
                self.refusal = Some(Refusal {
                    what: format!("shim: {SHIM_REFUSAL}{}", rest.trim()),
                    evidence: ev.clone(),
                });
            }
        }
        self.kernel_facts(ev);
    }

    /// The kernel's own lines: `Linux version`, `Command line:` and its `secureboot:` line.
    fn kernel_facts(&mut self, ev: &Evidence) {
        let line = ev.line.as_str();
        if line.contains("Linux version ") {
            self.linux_version.get_or_insert_with(|| ev.clone());
            return;
        }
        if self.linux_version.is_none() || self.kernel_secure_boot.is_some() {
            return;
        }
        if line.contains("Command line: ") {
            self.command_line.get_or_insert_with(|| ev.clone());
            return;
        }
        let reading = if line.contains("secureboot: Secure boot enabled") {
            Some(Reading::Value(1))
        } else if line.contains("secureboot: Secure boot disabled") {
            Some(Reading::Value(0))
        } else if line.contains("secureboot: Secure boot could not be determined") {
            Some(Reading::Unknown(
                "the kernel says Secure boot could not be determined".into(),
            ))
        } else if line.contains("Kernel panic") {
            Some(Reading::Unknown(
                "the kernel panicked before its secureboot: line".into(),
            ))
        } else {
            None
        };
        if let Some(reading) = reading {
            self.kernel_secure_boot = Some((ev.clone(), reading));
        }
    }

    /// Whether the facts so far are enough to stop the guest.
    fn control(&self) -> Control {
        let gave_up = self.end_of_attempts.is_some() || self.grace_expired;
        let enough = match self.reads_as() {
            Check::SecureBoot => self.probe.is_some() || gave_up,
            Check::OptionRom => {
                self.probe
                    .as_ref()
                    .is_some_and(|(p, _)| self.now.saturating_sub(p.at) >= LATE_MARKER_WINDOW)
                    || gave_up
            }
            Check::KernelBoot => {
                self.kernel_secure_boot.is_some() || (self.linux_version.is_none() && gave_up)
            }
            Check::NoShell => self.shell_reached.is_some() || self.end_of_attempts.is_some(),
            Check::KeyHealth => true,
            Check::AsBios => {
                unreachable!("reads_as says which check's lines an as-bios cell reads")
            }
            Check::DistroChain => {
                self.kernel_secure_boot.is_some()
                    || (self.linux_version.is_none()
                        && (gave_up || (self.chain_refusal.is_some() && self.grub_gave_up)))
            }
        };
        if enough {
            Control::Stop
        } else {
            Control::Continue
        }
    }
}

impl Watch for Watcher {
    fn line(&mut self, console: Console, at: Duration, text: &str) -> Control {
        self.now = self.now.max(at);
        self.progress.line(console, at, text);
        // The debug console carries the firmware's DEBUG output: nothing there is a payload
        // line or the boot manager's verdict.
        if console == Console::Serial {
            self.serial_line(Evidence {
                stream: console,
                at,
                line: text.to_string(),
            });
        }
        self.control()
    }

    fn partial(&mut self, console: Console, at: Duration, text: &str) -> Control {
        self.now = self.now.max(at);
        if console == Console::Serial {
            self.progress.line(console, at, text);
        }
        if console == Console::Serial && self.check == Check::NoShell {
            self.shell_text(&Evidence {
                stream: console,
                at,
                line: text.to_string(),
            });
            return self.control();
        }
        if console == Console::Serial && self.check == Check::DistroChain {
            if text.contains(SHIM_REFUSAL) {
                self.chain_text(&Evidence {
                    stream: console,
                    at,
                    line: text.trim().to_string(),
                });
            }
            return self.control();
        }
        if console != Console::Serial
            || self.reads_as() != Check::KernelBoot
            || self.refusal.is_some()
        {
            return self.control();
        }
        static RE: OnceLock<Regex> = OnceLock::new();
        // shim's box: the message is complete once the box's padding follows it
        // (`...: (0x1A) Security Violation   │`); before that, more of it may be on its way.
        let re = RE.get_or_init(|| {
            Regex::new(r"Verification failed: (\([^)]*\) \S+(?: \S+)*)\s{2,}").expect("valid regex")
        });
        if let Some(caps) = re.captures(text) {
            self.refusal = Some(Refusal {
                what: format!("shim: {SHIM_REFUSAL}{}", &caps[1]),
                evidence: Evidence {
                    stream: console,
                    at,
                    line: text.trim().to_string(),
                },
            });
        }
        self.control()
    }

    fn guest_errors(&mut self, errors: &crate::boot::guest_errors::GuestErrors) {
        self.progress.guest_errors(errors);
    }

    fn tick(&mut self, at: Duration) -> Control {
        self.now = self.now.max(at);
        // A payload line after the refusal wins in `finish` whatever the window says (and
        // `control` keeps a started kernel running to its secureboot: line).
        let first = self
            .refusal
            .as_ref()
            .or(self.chain_refusal.as_ref().map(|(_, r)| r));
        if let Some(r) = first {
            if self.end_of_attempts.is_none()
                && self.now.saturating_sub(r.evidence.at) >= self.grace
            {
                self.grace_expired = true;
            }
        }
        self.control()
    }
}

#[cfg(test)]
mod tests {
    use super::script::*;
    use super::*;
    use crate::boot::BootEnd;
    use crate::matrix::Outcome;
    use crate::observe::evidence::{LoadPath, Observation, Undecided};
    use rstest::rstest;

    fn outcome(r: &Result<Observation, Undecided>) -> Outcome {
        match r {
            Ok(o) => o.outcome,
            Err(u) => panic!("undecided: {u:?}"),
        }
    }

    fn undecided(r: Result<Observation, Undecided>) -> Undecided {
        match r {
            Ok(o) => panic!("decided: {o:?}"),
            Err(u) => u,
        }
    }

    fn lines(o: &Observation) -> Vec<&str> {
        o.evidence.lines().iter().map(|e| e.line.as_str()).collect()
    }

    #[test]
    fn probe_line_decides_run_and_carries_it_as_evidence() {
        let (r, read) = run(
            Check::SecureBoot,
            &[
                Serial(4000, "BdsDxe: loading Boot0001"),
                Serial(4100, PROBE),
                Serial(4200, "never read"),
            ],
            deadline(),
        );
        assert_eq!(read, 2, "the probe line stops the guest");
        let o = r.unwrap();
        assert_eq!(o.outcome, Outcome::Runs);
        assert_eq!(o.secure_boot, Reading::Value(1));
        assert_eq!(o.setup_mode, Reading::Value(0));
        assert_eq!(lines(&o), [PROBE]);
        assert_eq!(o.evidence.lines()[0].at, Duration::from_millis(4100));
        assert_eq!(o.evidence.lines()[0].stream, Console::Serial);
        assert_eq!(o.contradiction, None);
        assert_eq!(o.description, "ran (SecureBoot=1 SetupMode=0)");
    }

    // Finding 2: only the probe's own boot option decides; other options' refusals do not.
    #[rstest]
    #[case::shell(SHELL_REFUSAL)]
    #[case::pxe(r#"BdsDxe: failed to load Boot0003 "UEFI PXEv4 (MAC:525400123456)" from PciRoot(0x0)/Pci(0x6,0x0)/MAC(525400123456,0x1)/IPv4(0.0.0.0,0x0,DHCP,0.0.0.0,0.0.0.0,0.0.0.0): Access Denied"#)]
    #[case::other_disk(r#"BdsDxe: failed to load Boot0004 "UEFI QEMU HARDDISK QM00001 " from PciRoot(0x0)/Pci(0x1F,0x2)/Sata(0x0,0xFFFF,0x0): Access Denied"#)]
    #[case::slot_prefix(r#"BdsDxe: failed to load Boot0005 "UEFI Misc Device 2" from PciRoot(0x0)/Pci(0x5,0x1): Access Denied"#)]
    fn refusal_of_another_option_does_not_decide(#[case] other: &str) {
        // The unsigned probe runs after another option was refused: it ran.
        let (r, read) = run(
            Check::SecureBoot,
            &[Serial(4000, other), Tick(12000), Serial(13000, PROBE)],
            deadline(),
        );
        assert_eq!(read, 3);
        assert_eq!(outcome(&r), Outcome::Runs);
        assert_eq!(r.unwrap().contradiction, None);
        // And when the boot manager then gives up, the probe was never tried: not refused.
        let r = observe(
            Check::SecureBoot,
            &[Serial(4000, other), Serial(4100, GAVE_UP)],
        );
        let o = r.unwrap();
        assert_eq!(o.outcome, Outcome::NothingBootable);
        assert_eq!(lines(&o), [GAVE_UP]);
        assert!(o.notes[0].contains(other), "{:?}", o.notes);
    }

    // Finding 3: a refusal counts once the boot manager gives up after it.
    #[rstest]
    #[case::edk2_2022(GAVE_UP)]
    #[case::edk2_2026(GAVE_UP_2026)]
    fn own_refusal_followed_by_the_end_of_attempts_is_refused(#[case] gave_up: &str) {
        let (r, read) = run(
            Check::SecureBoot,
            &[
                Serial(4000, OWN_REFUSAL),
                Tick(4050),
                Serial(4100, SHELL_REFUSAL),
                Serial(4200, gave_up),
                Serial(4300, "never read"),
            ],
            deadline(),
        );
        assert_eq!(read, 4);
        let o = r.unwrap();
        assert_eq!(o.outcome, Outcome::Refused);
        assert_eq!(lines(&o), [OWN_REFUSAL, gave_up]);
        assert_eq!(o.refusal.as_deref(), Some(OWN_REFUSAL));
        assert!(
            o.description
                .contains("Boot0001 \"UEFI Misc Device\": Access Denied"),
            "{}",
            o.description
        );
    }

    // edk2 >= stable202508: a Secure Boot status ends with ` -- rejected probably by Secure
    // Boot` (OvmfPkg/Library/PlatformBmPrintScLib/StatusCodeHandler.c).
    #[rstest]
    #[case::edk2_2022(GAVE_UP)]
    #[case::edk2_2026(GAVE_UP_2026)]
    fn refusal_with_the_secure_boot_suffix_is_refused(#[case] gave_up: &str) {
        let own = r#"BdsDxe: failed to load Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x5,0x0): Access Denied -- rejected probably by Secure Boot"#;
        let shell = r#"BdsDxe: failed to start Boot0002 "EFI Internal Shell" from Fv(7CB8BDC9-F8EB-4F34-AAEA-3EE4AF6516A1)/FvFile(7C04A583-9E3E-4F1C-AD65-E05268D0B4D1): Security Violation -- rejected probably by Secure Boot"#;
        let (r, read) = run(
            Check::SecureBoot,
            &[
                Serial(4000, own),
                Serial(4100, shell),
                Serial(4200, gave_up),
                Serial(4300, "never read"),
            ],
            deadline(),
        );
        assert_eq!(read, 3);
        let o = r.unwrap();
        assert_eq!(o.outcome, Outcome::Refused);
        assert_eq!(lines(&o), [own, gave_up]);
        assert_eq!(o.refusal.as_deref(), Some(own));
        assert!(
            o.description.contains(
                "Boot0001 \"UEFI Misc Device\": Access Denied -- rejected probably by Secure Boot)"
            ),
            "{}",
            o.description
        );
        // The suffix is not part of the device path: another slot is still another option.
        let other = r#"BdsDxe: failed to load Boot0005 "UEFI Misc Device 2" from PciRoot(0x0)/Pci(0x5,0x1): Access Denied -- rejected probably by Secure Boot"#;
        let o = observe(
            Check::SecureBoot,
            &[Serial(4000, other), Serial(4100, gave_up)],
        )
        .unwrap();
        assert_eq!(o.outcome, Outcome::NothingBootable);
        assert!(o.notes[0].contains(other), "{:?}", o.notes);
    }

    #[test]
    fn the_suffix_is_read_off_the_device_path_and_the_status() {
        let line = r#"BdsDxe: failed to load Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x5,0x0): Access Denied -- rejected probably by Secure Boot"#;
        let caps = refusal_re().captures(line).unwrap();
        assert_eq!(&caps[3], "PciRoot(0x0)/Pci(0x5,0x0)");
        assert_eq!(&caps[4], "Access Denied");
        assert_eq!(&caps[5], "rejected probably by Secure Boot");
        let caps = refusal_re().captures(OWN_REFUSAL).unwrap();
        assert_eq!(&caps[3], "PciRoot(0x0)/Pci(0x5,0x0)");
        assert_eq!(&caps[4], "Access Denied");
        assert!(caps.get(5).is_none());
        // The suffix never turns another status into a refusal.
        let not_found = r#"BdsDxe: failed to load Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x5,0x0): Not Found"#;
        let o = observe(
            Check::SecureBoot,
            &[Serial(4000, not_found), Serial(4100, GAVE_UP_2026)],
        )
        .unwrap();
        assert_eq!(o.outcome, Outcome::NothingBootable);
        assert_eq!(lines(&o), [not_found, GAVE_UP_2026]);
    }

    // Both wordings of the end of attempts, where nothing was refused.
    #[rstest]
    #[case::press_any_key(GAVE_UP)]
    #[case::restricted_to_firmware(GAVE_UP_2026)]
    fn either_end_of_attempts_without_a_refusal_is_nothing_bootable(#[case] gave_up: &str) {
        for check in [Check::SecureBoot, Check::KernelBoot] {
            let (r, read) = run(
                check,
                &[
                    Serial(4000, SHELL_REFUSAL),
                    Serial(4100, gave_up),
                    Serial(4200, "never read"),
                ],
                deadline(),
            );
            assert_eq!(read, 2, "{check}");
            let o = r.unwrap();
            assert_eq!(o.outcome, Outcome::NothingBootable, "{check}");
            assert_eq!(lines(&o), [gave_up]);
        }
    }

    // The exact lines of edk2's X86QemuLoadImageLib when LoadImage refused the kernel and the
    // legacy loader is not used: turned off (EnableLegacyLoader=no since stable202502, off by
    // default since stable202602), or inside a confidential VM (stable202511).
    #[rstest]
    #[case::legacy_loader_disabled(
        "OVMF: Fallback to insecure legacy linux kernel loader is disabled.",
        GAVE_UP
    )]
    #[case::off_by_default_2026(
        "OVMF: Fallback to insecure legacy linux kernel loader is disabled.",
        GAVE_UP_2026
    )]
    #[case::confidential_vm(
        "OVMF: Running in confidential VM, not using insecure legacy linux kernel loader.",
        GAVE_UP_2026
    )]
    fn edk2_refusals_of_the_legacy_loader_are_refused(
        #[case] refusal: &str,
        #[case] gave_up: &str,
    ) {
        let (r, read) = run(
            Check::KernelBoot,
            &[
                Serial(
                    3000,
                    "OVMF: Secure boot image verification failed.  Consider using the '-shim'",
                ),
                Serial(
                    3001,
                    "OVMF: command line switch for qemu (available in version 10.0 + newer).",
                ),
                Serial(3002, ""),
                Serial(3003, refusal),
                Serial(3004, ""),
                Serial(3150, SHELL_REFUSAL),
                Serial(3200, gave_up),
                Serial(3300, "never read"),
            ],
            deadline(),
        );
        assert_eq!(read, 7);
        let o = r.unwrap();
        assert_eq!(o.outcome, Outcome::Refused);
        assert_eq!(lines(&o), [refusal, gave_up]);
        assert_eq!(o.refusal.as_deref(), Some(refusal));
        assert!(
            o.description.contains("the firmware: OVMF: "),
            "{}",
            o.description
        );
        assert_eq!(o.kernel, None);
        // The verification failure alone refuses nothing: the legacy loader may follow.
        let o = kernel(&[
            Serial(
                3000,
                "OVMF: Secure boot image verification failed.  Consider using the '-shim'",
            ),
            Serial(3200, gave_up),
        ])
        .unwrap();
        assert_eq!(o.outcome, Outcome::NothingBootable);
    }

    #[test]
    fn refusal_then_payload_is_the_payload_with_a_contradiction() {
        let o = observe(
            Check::SecureBoot,
            &[Serial(4000, OWN_REFUSAL), Tick(4100), Serial(4150, PROBE)],
        )
        .unwrap();
        assert_eq!(o.outcome, Outcome::Runs);
        assert_eq!(lines(&o), [OWN_REFUSAL, PROBE]);
        let c = o.contradiction.unwrap();
        assert!(c.contains("4.000 s") && c.contains("4.150 s"), "{c}");
    }

    #[test]
    fn refusal_without_an_end_waits_for_the_grace_window() {
        // Before the window is over, the refusal does not stop the guest.
        let (r, read) = run(
            Check::SecureBoot,
            &[
                Serial(4000, OWN_REFUSAL),
                Tick(11999),
                Tick(12000),
                Tick(12100),
            ],
            deadline(),
        );
        assert_eq!(read, 3, "stops exactly when the grace window is over");
        let o = r.unwrap();
        assert_eq!(o.outcome, Outcome::Refused);
        assert_eq!(lines(&o), [OWN_REFUSAL]);
        assert!(o.notes[0].contains("grace window"), "{:?}", o.notes);
        // If the boot ends first, the refusal stands for nothing.
        let u = undecided(
            run(
                Check::SecureBoot,
                &[Serial(4000, OWN_REFUSAL), Tick(5000)],
                BootEnd::Exited {
                    status: "exit status: 0".into(),
                    stderr: "(stderr empty)".into(),
                },
            )
            .0,
        );
        assert!(
            u.reason.contains("before the firmware gave up"),
            "{}",
            u.reason
        );
        assert_eq!(u.evidence.len(), 1);
    }

    #[test]
    fn a_refusal_with_another_status_is_a_failure_not_a_refusal() {
        let failed = r#"BdsDxe: failed to load Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x5,0x0): Not Found"#;
        let o = observe(
            Check::SecureBoot,
            &[Serial(4000, failed), Serial(4100, GAVE_UP)],
        )
        .unwrap();
        assert_eq!(o.outcome, Outcome::NothingBootable);
        assert_eq!(lines(&o), [failed, GAVE_UP]);
    }

    #[test]
    fn nothing_seen_is_undecided_never_an_outcome() {
        let u = undecided(observe(
            Check::SecureBoot,
            &[Serial(100, "BdsDxe: loading")],
        ));
        assert!(
            u.reason.contains("no decisive console line"),
            "{}",
            u.reason
        );
        let u = undecided(observe(Check::KernelBoot, &[]));
        assert!(
            u.reason.contains("no decisive console line"),
            "{}",
            u.reason
        );
        let u = undecided(observe(Check::OptionRom, &[]));
        assert!(
            u.reason.contains("no decisive console line"),
            "{}",
            u.reason
        );
    }

    // Finding 8: the debug console decides nothing.
    #[rstest]
    #[case::probe(PROBE)]
    #[case::refusal(OWN_REFUSAL)]
    #[case::end(GAVE_UP)]
    fn debug_console_lines_decide_nothing(#[case] line: &str) {
        let (r, read) = run(
            Check::SecureBoot,
            &[DebugCon(4000, line), DebugCon(4100, GAVE_UP), Tick(20000)],
            deadline(),
        );
        assert_eq!(read, 3);
        assert!(r.is_err(), "{r:?}");
        let (r, _) = run(
            Check::KernelBoot,
            &[
                DebugCon(4000, NO_FALLBACK),
                DebugCon(4100, GAVE_UP),
                Tick(20000),
            ],
            deadline(),
        );
        assert!(r.is_err(), "{r:?}");
    }

    #[test]
    fn strips_nothing_it_should_keep() {
        // Evidence keeps the line as the runner handed it over (already stripped there).
        let o = observe(Check::SecureBoot, &[Serial(1, PROBE)]).unwrap();
        assert_eq!(o.evidence.lines()[0].line, PROBE);
    }

    // Finding 5: a ROM that ran shows its marker or a started image; one that did not run must
    // have been presented.
    #[rstest]
    #[case::marker_on_its_own_line(&[Serial(3000, OPROM), Serial(4000, PCI_ROM_RAN), Serial(4100, PROBE)], Outcome::Executed)]
    #[case::marker_inside_firmware_output(&[Serial(3000, "BdsDxe: loadBOOTMATRIX-OPROM v=1 loaded"), Serial(4000, PCI_ROM_RAN), Serial(4100, PROBE)], Outcome::Executed)]
    #[case::marker_split_over_two_lines(&[Serial(3000, "BOOTMATRIX-OP"), Serial(3001, "ROM v=1 loaded"), Serial(4000, PCI_ROM_RAN), Serial(4100, PROBE)], Outcome::Executed)]
    #[case::marker_after_the_probe(&[Serial(4000, PCI_ROM_IDLE), Serial(4100, PROBE), Serial(4200, OPROM)], Outcome::Executed)]
    #[case::image_started_without_marker(&[Serial(4000, PCI_ROM_RAN), Serial(4100, PROBE)], Outcome::Executed)]
    #[case::presented_and_idle(&[Serial(4000, PCI_ROM_IDLE), Serial(4100, PROBE)], Outcome::NotExecuted)]
    fn option_rom_outcomes(#[case] steps: &[Step], #[case] expected: Outcome) {
        let o = observe(Check::OptionRom, steps).unwrap();
        assert_eq!(o.outcome, expected, "{o:?}");
        assert_eq!(o.secure_boot, Reading::Value(1));
        assert!(o.probe.is_some());
        if expected == Outcome::NotExecuted {
            assert_eq!(lines(&o), [PCI_ROM_IDLE, PROBE]);
            assert_eq!(o.rom.as_ref().unwrap().rom_size, Some(65536));
        }
    }

    #[test]
    fn split_marker_carries_both_lines() {
        let o = observe(
            Check::OptionRom,
            &[
                Serial(3000, "BOOTMATRIX-OP"),
                Serial(3001, "ROM v=1 loaded"),
                Serial(4000, PCI_ROM_RAN),
                Serial(4100, PROBE),
            ],
        )
        .unwrap();
        assert_eq!(
            lines(&o),
            ["BOOTMATRIX-OP", "ROM v=1 loaded", PCI_ROM_RAN, PROBE]
        );
        assert_eq!(o.rom_marker.as_deref(), Some(OPROM));
    }

    #[test]
    fn option_rom_cell_waits_briefly_after_the_probe_for_a_late_marker() {
        let (r, read) = run(
            Check::OptionRom,
            &[
                Serial(4000, PCI_ROM_IDLE),
                Serial(4100, PROBE),
                Tick(4500),
                Serial(4600, OPROM),
                Tick(5100),
                Serial(5200, "never read"),
            ],
            deadline(),
        );
        assert_eq!(read, 5);
        assert_eq!(outcome(&r), Outcome::Executed);
        assert!(r
            .unwrap()
            .notes
            .iter()
            .any(|n| n.contains("after the probe")));
    }

    #[test]
    fn option_rom_notes_say_only_what_happened() {
        // Marker and probe from the same read: the marker came first, no note.
        let o = observe(
            Check::OptionRom,
            &[
                Serial(4100, OPROM),
                Serial(4100, PCI_ROM_RAN),
                Serial(4100, PROBE),
            ],
        )
        .unwrap();
        assert_eq!(o.notes, Vec::<String>::new());
        // A marker while the probe found no image from the ROM is worth a note.
        let o = observe(
            Check::OptionRom,
            &[
                Serial(3000, OPROM),
                Serial(4000, PCI_ROM_IDLE),
                Serial(4100, PROBE),
            ],
        )
        .unwrap();
        assert_eq!(o.outcome, Outcome::Executed);
        assert_eq!(o.notes.len(), 1, "{:?}", o.notes);
        assert!(o.notes[0].contains("no image started"), "{:?}", o.notes);
    }

    #[test]
    fn option_rom_cell_keeps_the_first_probe_line() {
        let o = observe(
            Check::OptionRom,
            &[
                Serial(4000, PCI_ROM_IDLE),
                Serial(4100, PROBE),
                Serial(4200, PROBE_SB0),
            ],
        )
        .unwrap();
        assert_eq!(o.secure_boot, Reading::Value(1));
        assert_eq!(o.evidence.lines().last().unwrap().line, PROBE);
    }

    #[rstest]
    #[case::rom_image_missing(&[Serial(4000, "BOOTMATRIX-PCI v=1 loc=0000:00:06.0 id=8086:100e class=020000 romsize=2560 romimage=0 images=0"), Serial(4100, PROBE)], "romsize=2560, romimage=0")]
    #[case::rom_size_zero_with_image(&[Serial(4000, "BOOTMATRIX-PCI v=1 loc=0000:00:06.0 id=8086:100e class=020000 romsize=0 romimage=1 images=0"), Serial(4100, PROBE)], "romsize=0, romimage=1")]
    #[case::no_device_at_the_planned_slot(&[Serial(4000, "BOOTMATRIX-PCI v=1 loc=0000:00:07.0 id=8086:100e class=020000 romsize=65536 romimage=1 images=0"), Serial(4100, PROBE)], "no PCI device at 0000:00:06.0")]
    #[case::no_pci_line_at_all(&[Serial(4100, PROBE)], "no PCI device at 0000:00:06.0")]
    #[case::rom_size_zero(&[Serial(4000, PCI_NO_ROM), Serial(4100, PROBE)], "romsize=0")]
    #[case::images_unknown(&[Serial(4000, "BOOTMATRIX-PCI v=1 loc=0000:00:06.0 id=8086:100e class=020000 romsize=512 romimage=1 images=-"), Serial(4100, PROBE)], "could not count")]
    fn option_rom_not_presented_is_undecided(#[case] steps: &[Step], #[case] why: &str) {
        let u = undecided(observe(Check::OptionRom, steps));
        assert!(u.reason.contains(why), "{}", u.reason);
        assert!(!u.evidence.is_empty());
    }

    #[test]
    fn option_rom_cell_whose_probe_was_refused_is_undecided() {
        // The ROM's marker is evidence of its own: a refused probe does not undo it.
        let o = observe(
            Check::OptionRom,
            &[
                Serial(3000, OPROM),
                Serial(4000, OWN_REFUSAL),
                Serial(4100, GAVE_UP),
            ],
        )
        .unwrap();
        assert_eq!(o.outcome, Outcome::Executed);
        assert!(matches!(o.secure_boot, Reading::Unknown(_)));
        let u = undecided(observe(
            Check::OptionRom,
            &[Serial(4000, OWN_REFUSAL), Serial(4100, GAVE_UP)],
        ));
        assert!(
            u.reason.contains("does not trust the test key"),
            "{}",
            u.reason
        );
        assert_eq!(u.evidence.len(), 2);
    }

    #[test]
    fn option_rom_marker_on_the_debug_console_does_not_count() {
        let o = observe(
            Check::OptionRom,
            &[
                DebugCon(3000, OPROM),
                Serial(4000, PCI_ROM_IDLE),
                Serial(4100, PROBE),
            ],
        )
        .unwrap();
        assert_eq!(o.outcome, Outcome::NotExecuted);
    }

    fn kernel(steps: &[Step]) -> Result<Observation, Undecided> {
        observe(Check::KernelBoot, steps)
    }

    #[rstest]
    #[case::verified(CMDLINE_LOAD_IMAGE, SB_ON, Outcome::Verified, Reading::Value(1))]
    #[case::legacy_silent(CMDLINE_LEGACY, SB_ON, Outcome::LegacySilent, Reading::Value(1))]
    #[case::booted_load_image(CMDLINE_LOAD_IMAGE, SB_OFF, Outcome::Booted, Reading::Value(0))]
    #[case::booted_legacy(CMDLINE_LEGACY, SB_OFF, Outcome::Booted, Reading::Value(0))]
    fn kernel_outcomes(
        #[case] cmdline: &str,
        #[case] sb: &str,
        #[case] expected: Outcome,
        #[case] reading: Reading,
    ) {
        let (r, read) = run(
            Check::KernelBoot,
            &[
                Serial(5000, LINUX),
                Serial(5001, cmdline),
                Serial(5100, sb),
                Serial(5200, "never read"),
            ],
            deadline(),
        );
        assert_eq!(read, 3);
        let o = r.unwrap();
        assert_eq!(o.outcome, expected);
        assert_eq!(o.secure_boot, reading);
        assert_eq!(lines(&o), [LINUX, cmdline, sb]);
        assert_eq!(o.notes, Vec::<String>::new());
        assert_eq!(o.contradiction, None);
        let k = o.kernel.unwrap();
        assert_eq!(k.linux_version, LINUX);
        assert_eq!(k.legacy_warning, None);
    }

    // Finding 6: what the kernel could not tell is unknown, and the outcome is only "started".
    #[rstest]
    #[case::could_not_be_determined(SB_UNKNOWN)]
    #[case::panic_first(PANIC)]
    fn kernel_secure_boot_unknown_is_started(#[case] line: &str) {
        let o = kernel(&[
            Serial(5000, LINUX),
            Serial(5001, CMDLINE_LEGACY),
            Serial(5100, line),
        ])
        .unwrap();
        assert_eq!(o.outcome, Outcome::Started);
        assert!(
            matches!(o.secure_boot, Reading::Unknown(_)),
            "{:?}",
            o.secure_boot
        );
        // Killed at the deadline without a secureboot: line: started, unknown.
        let o = kernel(&[Serial(5000, LINUX), Serial(5001, CMDLINE_LOAD_IMAGE)]).unwrap();
        assert_eq!(o.outcome, Outcome::Started);
        assert!(
            matches!(o.secure_boot, Reading::Unknown(ref why) if why.contains("no secureboot"))
        );
    }

    #[test]
    fn kernel_without_a_command_line_is_started_not_verified() {
        let o = kernel(&[Serial(5000, LINUX), Serial(5100, SB_ON)]).unwrap();
        assert_eq!(o.outcome, Outcome::Started);
        assert!(o.description.contains("Command line"), "{}", o.description);
        // With Secure Boot off, the path does not matter.
        let o = kernel(&[Serial(5000, LINUX), Serial(5100, SB_OFF)]).unwrap();
        assert_eq!(o.outcome, Outcome::Booted);
    }

    #[test]
    fn secureboot_line_before_linux_version_decides_nothing() {
        assert!(kernel(&[Serial(1, SB_ON)]).is_err());
        // A command line before the kernel's banner is not the kernel's.
        let o = kernel(&[
            Serial(1, CMDLINE_LOAD_IMAGE),
            Serial(5000, LINUX),
            Serial(5001, CMDLINE_LEGACY),
            Serial(5100, SB_ON),
        ])
        .unwrap();
        assert_eq!(o.outcome, Outcome::LegacySilent);
    }

    // Finding 7: the firmware's own line for the path wins over the inference.
    #[test]
    fn legacy_warning_wins_over_the_command_line() {
        let o = kernel(&[
            Serial(3000, "OVMF: Secure boot image verification failed."),
            Serial(3001, LEGACY_WARNING),
            Serial(5000, LINUX),
            Serial(5001, CMDLINE_LOAD_IMAGE),
            Serial(5100, SB_ON),
        ])
        .unwrap();
        assert_eq!(o.outcome, Outcome::LegacyWarned);
        assert_eq!(
            lines(&o),
            [LEGACY_WARNING, LINUX, CMDLINE_LOAD_IMAGE, SB_ON]
        );
        assert_eq!(
            o.kernel.as_ref().unwrap().loaded_by,
            Some(LoadPath::LegacyLoader)
        );
        assert!(o.notes[0].contains("initrd=initrd"), "{:?}", o.notes);
        // The warning and a command line without the token agree: nothing to note.
        let o = kernel(&[
            Serial(3001, LEGACY_WARNING),
            Serial(5000, LINUX),
            Serial(5001, CMDLINE_LEGACY),
            Serial(5100, SB_ON),
        ])
        .unwrap();
        assert_eq!(o.outcome, Outcome::LegacyWarned);
        assert_eq!(o.notes, Vec::<String>::new());
    }

    // Finding 1: the boot manager finding nothing is not a refusal of the kernel.
    #[test]
    fn kernel_never_handed_over_is_nothing_bootable() {
        let (r, read) = run(
            Check::KernelBoot,
            &[
                Serial(4000, SHELL_REFUSAL),
                Serial(4100, GAVE_UP),
                Serial(4200, "x"),
            ],
            deadline(),
        );
        assert_eq!(read, 2);
        let o = r.unwrap();
        assert_eq!(o.outcome, Outcome::NothingBootable);
        assert_eq!(lines(&o), [GAVE_UP]);
    }

    #[test]
    fn firmware_kernel_refusal_needs_the_end_of_attempts() {
        let (r, read) = run(
            Check::KernelBoot,
            &[
                Serial(3000, NO_FALLBACK),
                Tick(3100),
                Serial(3150, SHELL_REFUSAL),
                Serial(3200, GAVE_UP),
            ],
            deadline(),
        );
        assert_eq!(read, 4);
        let o = r.unwrap();
        assert_eq!(o.outcome, Outcome::Refused);
        assert_eq!(lines(&o), [NO_FALLBACK, GAVE_UP]);
        assert_eq!(o.refusal.as_deref(), Some(NO_FALLBACK));
        // A confidential-VM refusal reads the same way.
        let cvm =
            "OVMF: Running in confidential VM, not using insecure legacy linux kernel loader.";
        let o = kernel(&[Serial(3000, cvm), Serial(3200, GAVE_UP)]).unwrap();
        assert_eq!(o.outcome, Outcome::Refused);
    }

    #[test]
    fn kernel_started_after_a_refusal_is_started_with_a_contradiction() {
        let o = kernel(&[
            Serial(3000, NO_FALLBACK),
            Serial(5000, LINUX),
            Serial(5001, CMDLINE_LEGACY),
            Serial(5100, SB_ON),
        ])
        .unwrap();
        assert_eq!(o.outcome, Outcome::LegacySilent);
        assert!(o
            .contradiction
            .as_ref()
            .unwrap()
            .contains("the kernel started"));
        assert_eq!(lines(&o), [NO_FALLBACK, LINUX, CMDLINE_LEGACY, SB_ON]);
    }

    #[test]
    fn a_kernel_banner_holds_off_the_grace_window() {
        // Once the kernel has printed its banner, the refusal's window no longer ends the cell.
        let (r, read) = run(
            Check::KernelBoot,
            &[
                Partial(
                    3000,
                    "│ ERROR │ Verification failed: (0x1A) Security Violation     │",
                ),
                Serial(4000, LINUX),
                Tick(20000),
                Serial(20001, CMDLINE_LEGACY),
                Serial(20002, SB_ON),
            ],
            deadline(),
        );
        assert_eq!(read, 5);
        assert_eq!(outcome(&r), Outcome::LegacySilent);
    }

    // Finding 8 (shim): the box without a newline, and the whole line.
    #[test]
    fn shim_refusal_stands_after_the_grace_window() {
        let mut w = Watcher::new(Check::KernelBoot, Targets::default(), GRACE);
        let ms = Duration::from_millis;
        assert_eq!(
            w.partial(Console::Serial, ms(3000), "Failed to open  - Not"),
            Control::Continue
        );
        // Not complete yet: more of the message may follow.
        w.partial(
            Console::Serial,
            ms(3001),
            " ERROR  Verification failed: (0x1A) Security Vi",
        );
        assert!(w.refusal.is_none());
        let box_text = "┌──┐│   ERROR   ││   Verification failed: (0x1A) Security Violation     │";
        assert_eq!(
            w.partial(Console::Serial, ms(3002), box_text),
            Control::Continue
        );
        assert_eq!(w.tick(ms(11001)), Control::Continue);
        assert_eq!(w.tick(ms(11002)), Control::Stop);
        let o = w.finish(&BootEnd::Stopped).unwrap();
        assert_eq!(o.outcome, Outcome::Refused);
        assert!(
            o.description
                .contains("shim: Verification failed: (0x1A) Security Violation"),
            "{}",
            o.description
        );
        assert_eq!(o.evidence.lines()[0].line, box_text.trim());
        // The partial box counts only in kernel cells, and only on the serial console.
        let mut probe = Watcher::new(Check::SecureBoot, targets(Check::SecureBoot), GRACE);
        probe.partial(Console::Serial, ms(1), box_text);
        assert!(probe.refusal.is_none());
        let mut debug = Watcher::new(Check::KernelBoot, Targets::default(), GRACE);
        debug.partial(Console::Debug, ms(1), box_text);
        assert!(debug.refusal.is_none());
    }

    #[test]
    fn shim_refusal_on_a_whole_line() {
        let line = "Verification failed: (0x1A) Security Violation";
        let (r, read) = run(
            Check::KernelBoot,
            &[Serial(3000, line), Tick(10999), Tick(11000)],
            deadline(),
        );
        assert_eq!(read, 3);
        let o = r.unwrap();
        assert_eq!(o.outcome, Outcome::Refused);
        assert_eq!(lines(&o), [line]);
    }

    #[test]
    fn probe_line_does_not_decide_a_kernel_cell() {
        assert!(kernel(&[Serial(1, PROBE)]).is_err());
    }

    #[test]
    fn load_image_is_told_by_the_whole_initrd_token() {
        assert!(loaded_by_load_image("initrd=initrd console=ttyS0"));
        assert!(!loaded_by_load_image("xinitrd=initrd console=ttyS0"));
        assert!(!loaded_by_load_image("initrd=initrd.img console=ttyS0"));
    }
}
