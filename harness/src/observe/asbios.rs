//! as-bios: the firmware started with `-bios FILE`, as a runtime that ignores its descriptor
//! starts it. The payload is read as the secure-boot check reads the probe, or as kernel-boot
//! reads the kernel; then the outcome is said in as-bios's words:
//!
//! - `booted`: the probe's line, or the kernel's `secureboot:` line, with the SecureBoot value
//!   it read (a rule asks for the value);
//! - `refused`: the firmware's own refusal of the payload, as the other checks confirm it;
//! - `qemu-refused`: QEMU would not load the image as a BIOS ROM (`could not load PC BIOS`:
//!   QEMU maps only images whose size is a multiple of 64 KiB, so the 4 MiB builds' 3.5 MiB
//!   executable is refused); its stderr line is the evidence;
//! - `no-boot`: no payload line, no refusal and no boot-manager verdict when the check's bound
//!   passed. The 2 MiB Secure Boot + SMM build under `-bios` shows nothing on any console, so
//!   the evidence is what the runner measured at the bound (stream `runner`), with the
//!   firmware's last lines where it showed any.

use std::sync::OnceLock;

use regex::Regex;

use crate::boot::{BootEnd, Console};
use crate::matrix::{Check, Outcome};
use crate::observe::evidence::{Evidence, EvidenceLines, Observation, Undecided};
use crate::observe::Watcher;

/// QEMU's message for a `-bios` image it will not map (hw/i386 `x86_bios_rom_init`).
fn qemu_refusal_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"could not load PC BIOS").expect("valid regex"))
}

impl Watcher {
    /// How the watcher reads this cell's lines: an as-bios cell with the probe on an ESP as
    /// secure-boot does, one with `-kernel` as kernel-boot does.
    pub(super) fn reads_as(&self) -> Check {
        match self.check {
            Check::AsBios if self.targets.boot_device.is_some() => Check::SecureBoot,
            Check::AsBios => Check::KernelBoot,
            other => other,
        }
    }

    pub(super) fn as_bios(self, end: &BootEnd) -> Result<Observation, Undecided> {
        if let BootEnd::Exited { stderr, .. } = end {
            if let Some(line) = stderr.lines().find(|l| qemu_refusal_re().is_match(l)) {
                let evidence = Evidence {
                    stream: Console::QemuLog,
                    at: self.now,
                    line: line.trim().to_string(),
                };
                return Ok(Observation::new(
                    Outcome::QemuRefused,
                    "was never started: QEMU would not load the firmware as -bios".into(),
                    EvidenceLines::new(evidence),
                ));
            }
        }
        let silent = self.probe.is_none()
            && self.linux_version.is_none()
            && self.refusal.is_none()
            && self.end_of_attempts.is_none();
        let bound = match end {
            BootEnd::Deadline { after, .. } if silent => Some(*after),
            _ => None,
        };
        let firmware_lines = self.progress.last_lines();
        let serial_lines = self.progress.serial_lines();
        let concluded = match self.reads_as() {
            Check::SecureBoot => self.secure_boot(end),
            _ => self.kernel_boot(end),
        };
        match (concluded, bound) {
            (Ok(o), _) => Ok(as_bios_outcome(o)),
            (Err(_), Some(after)) => {
                let shown = match firmware_lines.last() {
                    Some(last) => format!(", the last: \"{}\"", last.line),
                    None => String::new(),
                };
                let evidence = Evidence {
                    stream: Console::Runner,
                    at: after,
                    line: format!(
                        "no payload line within the as-bios bound of {:.0} s: {serial_lines} \
                         line(s) on the serial console, {} shown here from the firmware{shown}; \
                         QEMU still running, killed",
                        after.as_secs_f64(),
                        firmware_lines.len()
                    ),
                };
                Ok(Observation::new(
                    Outcome::NoBoot,
                    format!(
                        "never reached: no payload line, no refusal and no boot-manager verdict \
                         within {:.0} s",
                        after.as_secs_f64()
                    ),
                    EvidenceLines::new(evidence).with(firmware_lines),
                ))
            }
            (Err(undecided), None) => Err(undecided),
        }
    }
}

/// A probe that ran, or a kernel that started (whichever way it was loaded), is `booted` with
/// the SecureBoot value it read; everything else keeps its outcome (`refused`, and the ones no
/// rule may expect).
fn as_bios_outcome(mut o: Observation) -> Observation {
    if matches!(
        o.outcome,
        Outcome::Runs
            | Outcome::Verified
            | Outcome::LegacyWarned
            | Outcome::LegacySilent
            | Outcome::Booted
    ) {
        o.notes.push(format!("read as {}", o.outcome));
        o.outcome = Outcome::Booted;
    }
    o
}
