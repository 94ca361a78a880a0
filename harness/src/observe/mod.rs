//! Observation: console lines in, an outcome and the lines that show it out.
//!
//! The runner hands every line of the serial and debug consoles (escape codes stripped) to a
//! [`Watcher`] made for the cell; the watcher collects facts and tells the runner when it has
//! seen enough. [`Watcher::finish`] then concludes: an [`Observation`] always carries at least
//! one evidence line (the type cannot be built without one), and "nothing seen" is never an
//! outcome, only an [`Undecided`] cell.
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
//!   nothing.

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use regex::Regex;
use serde::{Serialize, Serializer};

use crate::boot::{BootEnd, Console, Control, Watch};
use crate::matrix::{Check, Outcome};
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

/// One console line an observation rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    pub stream: Console,
    /// When it was read, from QEMU start.
    #[serde(rename = "at_ms", serialize_with = "millis")]
    pub at: Duration,
    pub line: String,
}

fn millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at_ms = u64::try_from(self.at.as_millis()).unwrap_or(u64::MAX);
        f.write_str(&evidence_text(self.stream.as_str(), at_ms, &self.line))
    }
}

/// An evidence line as people read it: `[serial +4.061 s] BdsDxe: failed to load ...`. Also
/// what `explain` prints of a recorded run.
pub fn evidence_text(stream: &str, at_ms: u64, line: &str) -> String {
    format!("[{stream} +{}.{:03} s] {line}", at_ms / 1000, at_ms % 1000)
}

/// The evidence of an observation, in console order: never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceLines(Vec<Evidence>);

impl EvidenceLines {
    pub fn new(first: Evidence) -> EvidenceLines {
        EvidenceLines(vec![first])
    }

    /// Adds `more`, keeping the lines in the order they were read.
    pub fn with(mut self, more: impl IntoIterator<Item = Evidence>) -> EvidenceLines {
        for e in more {
            if !self.0.contains(&e) {
                self.0.push(e);
            }
        }
        self.0.sort_by_key(|e| e.at);
        self
    }

    pub fn lines(&self) -> &[Evidence] {
        &self.0
    }
}

impl Serialize for EvidenceLines {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// A value the guest read, or why there is none. Absence is not a value: only the judge may
/// read it as one, where UEFI defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    Value(u8),
    /// The variable does not exist (the probe got EFI_NOT_FOUND).
    Absent,
    /// It could not be read, or nothing reported it; the text says why.
    Unknown(String),
}

impl Reading {
    /// A probe field: digits, `absent`, or `-` (the read failed).
    fn from_probe(text: &str) -> Reading {
        match text {
            "absent" => Reading::Absent,
            "-" => Reading::Unknown("the probe could not read it".into()),
            digits => digits
                .parse()
                .map(Reading::Value)
                .unwrap_or_else(|_| Reading::Unknown(format!("the probe reported {digits:?}"))),
        }
    }

    pub fn value(&self) -> Option<u8> {
        match self {
            Reading::Value(v) => Some(*v),
            _ => None,
        }
    }
}

impl fmt::Display for Reading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reading::Value(v) => write!(f, "{v}"),
            Reading::Absent => f.write_str("absent"),
            Reading::Unknown(_) => f.write_str("unknown"),
        }
    }
}

impl Serialize for Reading {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Reading::Value(v) => s.serialize_u8(*v),
            Reading::Absent => s.serialize_str("absent"),
            Reading::Unknown(_) => s.serialize_str("unknown"),
        }
    }
}

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
    let var = |i: usize| Reading::from_probe(&caps[i]);
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

/// How the firmware started a `-kernel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoadPath {
    /// LoadImage/StartImage: the image was verified against db/dbx.
    LoadImage,
    /// OVMF's legacy Linux loader: no verification.
    LegacyLoader,
}

/// What a kernel-boot cell saw of the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelSeen {
    pub linux_version: String,
    pub command_line: Option<String>,
    /// From the firmware's own legacy-loader warning where it printed one, else from the
    /// kernel's command line (see [`loaded_by_load_image`]).
    pub loaded_by: Option<LoadPath>,
    pub legacy_warning: Option<String>,
}

/// What the firmware did, with the console lines that show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub outcome: Outcome,
    /// What the guest reported for Secure Boot (probe variable or kernel line).
    pub secure_boot: Reading,
    pub setup_mode: Reading,
    /// In words, for reasons: `ran (SecureBoot=1 SetupMode=0)`.
    pub description: String,
    pub evidence: EvidenceLines,
    /// A payload line that came after the firmware's refusal of it, in words.
    pub contradiction: Option<String>,
    /// Anything else worth knowing about how it was decided.
    pub notes: Vec<String>,
    pub probe: Option<ProbeReport>,
    pub kernel: Option<KernelSeen>,
    /// option-rom: the probe's report of the device that carries the ROM under test.
    pub rom: Option<PciDevice>,
    /// option-rom: the driver's marker as read (joined, when it was split over two lines).
    pub rom_marker: Option<String>,
    /// The refusal line, when the payload was refused.
    pub refusal: Option<String>,
}

impl Observation {
    fn new(outcome: Outcome, description: String, evidence: EvidenceLines) -> Observation {
        let none = || Reading::Unknown("no payload ran to report it".into());
        Observation {
            outcome,
            secure_boot: none(),
            setup_mode: none(),
            description,
            evidence,
            contradiction: None,
            notes: Vec::new(),
            probe: None,
            kernel: None,
            rom: None,
            rom_marker: None,
            refusal: None,
        }
    }
}

/// A cell the consoles did not decide: an error of the set-up or of the harness, never a
/// verdict on the firmware. Lines that were seen still travel with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecided {
    pub reason: String,
    pub evidence: Vec<Evidence>,
}

impl Undecided {
    fn new(reason: impl Into<String>, evidence: impl IntoIterator<Item = Evidence>) -> Undecided {
        Undecided {
            reason: reason.into(),
            evidence: evidence.into_iter().collect(),
        }
    }
}

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
}

fn refusal_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r#"BdsDxe: failed to (?:load|start) (Boot[0-9A-Fa-f]{4}) "([^"]*)" from (.*): ([A-Za-z ]+?)\s*$"#,
        )
        .expect("valid regex")
    })
}

/// The boot manager's line after it has tried every option (edk2 up to 2025.x: `... No bootable
/// option or device was found.`; 2026.08: `... No bootable option was found.`).
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
        }
    }

    /// The watcher a planned cell needs.
    pub fn for_spec(spec: &RunSpec) -> Watcher {
        Watcher::new(spec.check, spec.targets.clone(), spec.grace)
    }

    fn serial_line(&mut self, ev: Evidence) {
        let line = ev.line.as_str();
        if self.check != Check::KernelBoot && self.probe.is_none() {
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
                    self.refusal = Some(Refusal {
                        what: format!("{} \"{}\": {status}", &caps[1], caps[2].trim()),
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
        match self.check {
            Check::SecureBoot => {}
            Check::OptionRom => self.option_rom_line(&ev),
            Check::KernelBoot => self.kernel_line(&ev),
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
        let enough = match self.check {
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
        };
        if enough {
            Control::Stop
        } else {
            Control::Continue
        }
    }

    /// Concludes from what the consoles showed; `end` is how the boot ended.
    pub fn finish(self, end: &BootEnd) -> Result<Observation, Undecided> {
        match self.check {
            Check::SecureBoot => self.secure_boot(end),
            Check::OptionRom => self.option_rom(end),
            Check::KernelBoot => self.kernel_boot(end),
        }
    }

    /// A refusal of the payload that the firmware stood by: the boot manager gave up after it,
    /// or the grace window passed with nothing more.
    fn confirmed_refusal(&self, end: &BootEnd) -> Option<Result<Observation, Undecided>> {
        let refusal = self.refusal.as_ref()?;
        let evidence = EvidenceLines::new(refusal.evidence.clone());
        // The end of attempts can only follow the refusal: the watcher stops at the end.
        let mut observation = match &self.end_of_attempts {
            Some(gave_up) => Observation::new(
                Outcome::Refused,
                format!(
                    "was refused ({}), and the boot manager gave up after it",
                    refusal.what
                ),
                evidence.with([gave_up.clone()]),
            ),
            _ if self.grace_expired => {
                let mut o = Observation::new(
                    Outcome::Refused,
                    format!("was refused ({})", refusal.what),
                    evidence,
                );
                o.notes.push(format!(
                    "no end-of-attempts line followed the refusal; it stood for the grace window \
                     of {:.1} s with no payload line",
                    self.grace.as_secs_f64()
                ));
                o
            }
            _ => {
                return Some(Err(Undecided::new(
                    format!(
                        "the payload was refused ({}), but the boot ended before the firmware \
                         gave up: {}",
                        refusal.what,
                        end_reason(end)
                    ),
                    [refusal.evidence.clone()],
                )))
            }
        };
        observation.refusal = Some(refusal.evidence.line.clone());
        Some(Ok(observation))
    }

    /// The boot manager gave up without refusing the payload: it was never handed over.
    fn nothing_bootable(&self, what: &str) -> Option<Observation> {
        let gave_up = self.end_of_attempts.clone()?;
        let mut o = Observation::new(
            Outcome::NothingBootable,
            format!("was never tried: the boot manager found nothing bootable ({what})"),
            EvidenceLines::new(gave_up).with(self.failure.clone()),
        );
        o.notes.extend(
            self.other_refusals
                .iter()
                .map(|e| format!("refused another boot option: {}", e.line)),
        );
        Some(o)
    }

    fn contradiction(&self, payload: &Evidence, what: &str) -> Option<String> {
        let r = self.refusal.as_ref()?;
        (r.evidence.at <= payload.at).then(|| {
            format!(
                "the firmware refused it ({}) at {:.3} s, and then {what} at {:.3} s",
                r.what,
                r.evidence.at.as_secs_f64(),
                payload.at.as_secs_f64()
            )
        })
    }

    fn secure_boot(self, end: &BootEnd) -> Result<Observation, Undecided> {
        if let Some((line, report)) = &self.probe {
            let mut o = Observation::new(
                Outcome::Runs,
                format!("ran ({})", summary(report)),
                EvidenceLines::new(line.clone())
                    .with(self.refusal.as_ref().map(|r| r.evidence.clone())),
            );
            o.contradiction = self.contradiction(line, "the probe ran");
            o.secure_boot = report.secure_boot.clone();
            o.setup_mode = report.setup_mode.clone();
            o.probe = Some(report.clone());
            return Ok(o);
        }
        if let Some(refused) = self.confirmed_refusal(end) {
            return refused;
        }
        if let Some(o) = self.nothing_bootable("no probe line, no refusal of the probe's option") {
            return Ok(o);
        }
        Err(Undecided::new(end_reason(end), self.failure))
    }

    fn option_rom(self, end: &BootEnd) -> Result<Observation, Undecided> {
        if self.probe.is_none() && self.marker.is_none() {
            if let Some(Ok(refused)) = self.confirmed_refusal(end) {
                return Err(Undecided::new(
                    format!(
                        "the probe signed with the test db key {}, so whether the option ROM \
                         ran cannot be told: the cell's varstore does not trust the test key",
                        refused.description
                    ),
                    refused.evidence.lines().to_vec(),
                ));
            }
            if let Some(o) = self.nothing_bootable("the probe never ran") {
                return Err(Undecided::new(
                    format!("the probe that reports the ROM {}", o.description),
                    o.evidence.lines().to_vec(),
                ));
            }
            return Err(Undecided::new(end_reason(end), None));
        }
        let rom = self.targets.rom_device.as_deref().and_then(|loc| {
            self.pci
                .iter()
                .find(|(_, d)| d.loc.eq_ignore_ascii_case(loc))
                .cloned()
        });
        let probe_line = self.probe.as_ref().map(|(e, _)| e.clone());
        let mut o = if let Some(marker) = &self.marker {
            let mut o = Observation::new(
                Outcome::Executed,
                "ran: its driver wrote its marker to the serial port".into(),
                EvidenceLines::new(marker[0].clone())
                    .with(marker[1..].iter().cloned())
                    .with(rom.as_ref().map(|(e, _)| e.clone()))
                    .with(probe_line.clone()),
            );
            if let Some(p) = &probe_line {
                if marker[0].at > p.at {
                    o.notes
                        .push("the ROM's marker came after the probe's line".into());
                }
            }
            if let Some((_, d)) = &rom {
                if d.images == Some(0) {
                    o.notes.push(format!(
                        "the probe found no image started from {}'s ROM, yet its marker came",
                        d.loc
                    ));
                }
            }
            o
        } else {
            let Some((pci_line, device)) = &rom else {
                let loc = self
                    .targets
                    .rom_device
                    .as_deref()
                    .unwrap_or("(none planned)");
                return Err(Undecided::new(
                    format!(
                        "ROM not presented: the probe reports no PCI device at {loc}, where the \
                         ROM's NIC was planned, so nothing shows the firmware was offered the ROM"
                    ),
                    probe_line
                        .into_iter()
                        .chain(self.pci.into_iter().map(|(e, _)| e)),
                ));
            };
            let presented =
                device.rom_size.is_some_and(|s| s > 0) && device.rom_image == Some(true);
            if !presented {
                return Err(Undecided::new(
                    format!(
                        "ROM not presented: the firmware holds no option ROM for {} \
                         (romsize={}, romimage={})",
                        device.loc,
                        device.rom_size.map_or("-".into(), |s| s.to_string()),
                        device.rom_image.map_or("-", |b| if b { "1" } else { "0" })
                    ),
                    [pci_line.clone()],
                ));
            }
            let evidence = EvidenceLines::new(pci_line.clone()).with(probe_line.clone());
            match device.images {
                None => {
                    return Err(Undecided::new(
                        format!(
                            "the probe could not count the images started from {}'s ROM",
                            device.loc
                        ),
                        evidence.lines().to_vec(),
                    ))
                }
                Some(0) => Observation::new(
                    Outcome::NotExecuted,
                    format!(
                        "was presented to the firmware ({} bytes at {}) and had not run by the \
                         time the probe reported",
                        device.rom_size.unwrap_or(0),
                        device.loc
                    ),
                    evidence,
                ),
                Some(n) => {
                    let mut o = Observation::new(
                        Outcome::Executed,
                        format!(
                            "ran: the probe found {n} image(s) started from {}'s ROM",
                            device.loc
                        ),
                        evidence,
                    );
                    o.notes
                        .push("no marker of the ROM's driver on the serial console".into());
                    o
                }
            }
        };
        if let Some((_, report)) = &self.probe {
            o.description = format!("{} ({})", o.description, summary(report));
            o.secure_boot = report.secure_boot.clone();
            o.setup_mode = report.setup_mode.clone();
            o.probe = Some(report.clone());
        } else {
            o.secure_boot = Reading::Unknown("the probe never reported".into());
        }
        o.rom = rom.map(|(_, d)| d);
        o.rom_marker = self.marker.as_ref().map(|m| {
            m.iter()
                .map(|e| e.line.as_str())
                .collect::<Vec<_>>()
                .join("")
        });
        Ok(o)
    }

    fn kernel_boot(self, end: &BootEnd) -> Result<Observation, Undecided> {
        let Some(linux) = &self.linux_version else {
            if let Some(refused) = self.confirmed_refusal(end) {
                return refused;
            }
            if let Some(o) =
                self.nothing_bootable("the kernel never started, and nothing refused it")
            {
                return Ok(o);
            }
            return Err(Undecided::new(end_reason(end), self.failure));
        };
        let command_line = self.command_line.as_ref().map(|e| {
            e.line
                .split_once("Command line: ")
                .map_or("", |(_, rest)| rest)
                .trim()
                .to_string()
        });
        // The firmware's own line about the path it took wins over the inference.
        let loaded_by = match (&self.legacy_warning, &command_line) {
            (Some(_), _) => Some(LoadPath::LegacyLoader),
            (None, Some(c)) if loaded_by_load_image(c) => Some(LoadPath::LoadImage),
            (None, Some(_)) => Some(LoadPath::LegacyLoader),
            (None, None) => None,
        };
        let secure_boot = self.kernel_secure_boot.as_ref().map_or_else(
            || {
                Reading::Unknown(format!(
                    "the kernel printed no secureboot: line ({})",
                    end_reason(end)
                ))
            },
            |(_, r)| r.clone(),
        );
        let (outcome, how) = match (&self.legacy_warning, loaded_by, secure_boot.value()) {
            (Some(_), _, _) => (
                Outcome::LegacyWarned,
                "booted through the legacy loader, with OVMF's warning",
            ),
            (None, _, Some(0)) => (Outcome::Booted, "booted"),
            (None, Some(LoadPath::LoadImage), Some(1)) => (
                Outcome::Verified,
                "booted through LoadImage, which verified its signature",
            ),
            (None, Some(LoadPath::LegacyLoader), Some(1)) => (
                Outcome::LegacySilent,
                "booted through the legacy loader (no initrd=initrd on its command line) \
                 under Secure Boot, and the firmware said nothing",
            ),
            (None, None, Some(_)) => (
                Outcome::Started,
                "started, but printed no `Command line:`, so how the firmware loaded it cannot \
                 be told",
            ),
            (None, _, _) => (
                Outcome::Started,
                "started, but the Secure Boot state it saw is unknown",
            ),
        };
        let sb_text = match &secure_boot {
            Reading::Value(1) => "Secure Boot enabled".to_string(),
            Reading::Value(_) => "Secure Boot disabled".to_string(),
            Reading::Absent => "no Secure Boot value".to_string(),
            Reading::Unknown(why) => why.clone(),
        };
        let evidence = EvidenceLines::new(linux.clone()).with(
            [
                self.legacy_warning.clone(),
                self.command_line.clone(),
                self.kernel_secure_boot.as_ref().map(|(e, _)| e.clone()),
                self.refusal.as_ref().map(|r| r.evidence.clone()),
            ]
            .into_iter()
            .flatten(),
        );
        let mut o = Observation::new(outcome, format!("{how} ({sb_text})"), evidence);
        o.contradiction = self.contradiction(linux, "the kernel started");
        if self.legacy_warning.is_some()
            && command_line.as_deref().is_some_and(loaded_by_load_image)
        {
            o.notes.push(
                "the firmware warned of the legacy loader, yet the command line carries \
                 initrd=initrd; the firmware's own line was taken"
                    .into(),
            );
        }
        o.secure_boot = secure_boot;
        o.kernel = Some(KernelSeen {
            linux_version: linux.line.clone(),
            command_line,
            loaded_by,
            legacy_warning: self.legacy_warning.as_ref().map(|e| e.line.clone()),
        });
        Ok(o)
    }
}

impl Watch for Watcher {
    fn line(&mut self, console: Console, at: Duration, text: &str) -> Control {
        self.now = self.now.max(at);
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
        if console != Console::Serial || self.check != Check::KernelBoot || self.refusal.is_some() {
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

    fn tick(&mut self, at: Duration) -> Control {
        self.now = self.now.max(at);
        // A payload line after the refusal wins in `finish` whatever the window says (and
        // `control` keeps a started kernel running to its secureboot: line).
        if let Some(r) = &self.refusal {
            if self.end_of_attempts.is_none()
                && self.now.saturating_sub(r.evidence.at) >= self.grace
            {
                self.grace_expired = true;
            }
        }
        self.control()
    }
}

/// Why a boot that decided nothing ended, in words.
pub fn end_reason(end: &BootEnd) -> String {
    match end {
        BootEnd::Stopped => "the boot was stopped before anything decided it".into(),
        BootEnd::Exited { status, stderr } => {
            format!("QEMU exited ({status}) before any decisive console line; stderr: {stderr}")
        }
        BootEnd::Deadline { after, last_line } => format!(
            "no decisive console line within {:.0} s (last line: {last_line:?})",
            after.as_secs_f64()
        ),
        BootEnd::Failed(why) => why.clone(),
    }
}

/// `SecureBoot=1 SetupMode=0`, with `absent` and `unknown` for what is not a value.
pub fn summary(report: &ProbeReport) -> String {
    format!(
        "SecureBoot={} SetupMode={}",
        report.secure_boot, report.setup_mode
    )
}

/// Feeding console lines to a watcher the way the runner does, for the tests of this stage and
/// the next.
#[cfg(test)]
pub mod script {
    use super::*;

    /// One thing the runner hands a watcher.
    #[derive(Debug, Clone, Copy)]
    pub enum Step<'a> {
        Serial(u64, &'a str),
        DebugCon(u64, &'a str),
        Partial(u64, &'a str),
        Tick(u64),
    }

    pub use Step::{DebugCon, Partial, Serial, Tick};

    /// The targets the planner gives a cell of `check`: the ESP at slot 5, the ROM's NIC at 6.
    pub fn targets(check: Check) -> Targets {
        match check {
            Check::SecureBoot => Targets {
                boot_device: Some("PciRoot(0x0)/Pci(0x5,0x0)".into()),
                rom_device: None,
            },
            Check::OptionRom => Targets {
                boot_device: Some("PciRoot(0x0)/Pci(0x5,0x0)".into()),
                rom_device: Some("0000:00:06.0".into()),
            },
            Check::KernelBoot => Targets::default(),
        }
    }

    pub const GRACE: Duration = Duration::from_secs(8);

    /// Feeds `steps` until the watcher stops the guest (the rest is never read, as in the
    /// runner), then concludes with `end` (or [`BootEnd::Stopped`] when it stopped). Returns
    /// the conclusion and how many steps were read.
    pub fn run(
        check: Check,
        steps: &[Step],
        end: BootEnd,
    ) -> (Result<Observation, Undecided>, usize) {
        let mut w = Watcher::new(check, targets(check), GRACE);
        let ms = Duration::from_millis;
        for (i, step) in steps.iter().enumerate() {
            let control = match *step {
                Serial(at, text) => w.line(Console::Serial, ms(at), text),
                DebugCon(at, text) => w.line(Console::Debug, ms(at), text),
                Partial(at, text) => w.partial(Console::Serial, ms(at), text),
                Tick(at) => w.tick(ms(at)),
            };
            if control == Control::Stop {
                return (w.finish(&BootEnd::Stopped), i + 1);
            }
        }
        (w.finish(&end), steps.len())
    }

    /// The conclusion of `steps` when the guest is finally killed at the deadline.
    pub fn observe(check: Check, steps: &[Step]) -> Result<Observation, Undecided> {
        run(check, steps, deadline()).0
    }

    pub fn deadline() -> BootEnd {
        BootEnd::Deadline {
            after: Duration::from_secs(80),
            last_line: "last".into(),
        }
    }

    pub const PROBE: &str = r#"BOOTMATRIX-PROBE v=2 secureboot=1 setupmode=0 auditmode=0 deployedmode=absent vendor="EDK II" revision=0x00010000 uefi=2.70"#;
    pub const PROBE_SB0: &str = r#"BOOTMATRIX-PROBE v=2 secureboot=0 setupmode=1 auditmode=0 deployedmode=0 vendor="EDK II" revision=0x00010000 uefi=2.70"#;
    pub const OWN_REFUSAL: &str = r#"BdsDxe: failed to load Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x5,0x0): Access Denied"#;
    pub const SHELL_REFUSAL: &str = r#"BdsDxe: failed to start Boot0002 "EFI Internal Shell" from Fv(7CB8BDC9-F8EB-4F34-AAEA-3EE4AF6516A1)/FvFile(7C04A583-9E3E-4F1C-AD65-E05268D0B4D1): Security Violation"#;
    pub const GAVE_UP: &str = "BdsDxe: No bootable option or device was found.";
    pub const GAVE_UP_2026: &str = "BdsDxe: No bootable option was found.";
    pub const OPROM: &str = "BOOTMATRIX-OPROM v=1 loaded";
    pub const PCI_ROM_IDLE: &str = "BOOTMATRIX-PCI v=1 loc=0000:00:06.0 id=8086:100e class=020000 romsize=65536 romimage=1 images=0";
    pub const PCI_ROM_RAN: &str = "BOOTMATRIX-PCI v=1 loc=0000:00:06.0 id=8086:100e class=020000 romsize=65536 romimage=1 images=1";
    pub const PCI_NO_ROM: &str = "BOOTMATRIX-PCI v=1 loc=0000:00:06.0 id=8086:100e class=020000 romsize=0 romimage=0 images=0";
    pub const LINUX: &str = "[    0.000000] Linux version 6.1.0-28-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)";
    pub const CMDLINE_LOAD_IMAGE: &str =
        "[    0.000000] Command line: initrd=initrd console=ttyS0 panic=-1";
    pub const CMDLINE_LEGACY: &str = "[    0.000000] Command line: console=ttyS0 panic=-1";
    pub const SB_ON: &str = "[    0.010712] secureboot: Secure boot enabled";
    pub const SB_OFF: &str = "[    0.010712] secureboot: Secure boot disabled";
    pub const SB_UNKNOWN: &str = "[    0.010712] secureboot: Secure boot could not be determined";
    pub const PANIC: &str = "[    1.2] Kernel panic - not syncing: VFS: Unable to mount root fs";
    pub const LEGACY_WARNING: &str =
        "OVMF: Using legacy linux kernel loader (insecure and deprecated).";
    pub const NO_FALLBACK: &str =
        "OVMF: Fallback to insecure legacy linux kernel loader is disabled.";
}

#[cfg(test)]
mod tests {
    use super::script::*;
    use super::*;
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
    fn evidence_serializes_with_stream_and_milliseconds() {
        let o = observe(Check::SecureBoot, &[Serial(4123, PROBE)]).unwrap();
        let v = serde_json::to_value(&o.evidence).unwrap();
        assert_eq!(v[0]["stream"], "serial");
        assert_eq!(v[0]["at_ms"], 4123);
        assert_eq!(v[0]["line"], PROBE);
        assert_eq!(
            o.evidence.lines()[0].to_string(),
            format!("[serial +4.123 s] {PROBE}")
        );
    }

    #[test]
    fn readings_serialize_as_values_or_words() {
        assert_eq!(serde_json::to_value(Reading::Value(1)).unwrap(), 1);
        assert_eq!(serde_json::to_value(Reading::Absent).unwrap(), "absent");
        assert_eq!(
            serde_json::to_value(Reading::Unknown("x".into())).unwrap(),
            "unknown"
        );
    }

    #[test]
    fn end_reasons_name_what_happened() {
        assert!(end_reason(&BootEnd::Exited {
            status: "exit status: 1".into(),
            stderr: "could not load PC BIOS".into()
        })
        .contains("could not load PC BIOS"));
        assert!(end_reason(&deadline()).contains("within 80 s"));
        assert_eq!(end_reason(&BootEnd::Failed("no argv".into())), "no argv");
    }

    #[test]
    fn load_image_is_told_by_the_whole_initrd_token() {
        assert!(loaded_by_load_image("initrd=initrd console=ttyS0"));
        assert!(!loaded_by_load_image("xinitrd=initrd console=ttyS0"));
        assert!(!loaded_by_load_image("initrd=initrd.img console=ttyS0"));
    }
}
