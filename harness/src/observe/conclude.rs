//! Concluding: from the facts a [`Watcher`] collected and how the boot ended, an
//! [`Observation`] with its evidence, or an [`Undecided`] cell with its reason.

use crate::boot::BootEnd;
use crate::matrix::{Check, Outcome};
use crate::observe::evidence::{
    Evidence, EvidenceLines, KernelSeen, LoadPath, Observation, Reading, Undecided,
};
use crate::observe::probe::summary;
use crate::observe::{loaded_by_load_image, Watcher};
use crate::tools::shown;

impl Watcher {
    /// Concludes from what the consoles showed; `end` is how the boot ended. A boot that
    /// decided nothing may still show a firmware that never reached its boot manager.
    pub fn finish(self, end: &BootEnd) -> Result<Observation, Undecided> {
        let no_boot = self.progress.conclude(end);
        let concluded = match self.check {
            Check::SecureBoot => self.secure_boot(end),
            Check::OptionRom => self.option_rom(end),
            Check::KernelBoot => self.kernel_boot(end),
            Check::DistroChain => self.distro_chain(end),
            Check::NoShell => self.no_shell(end),
            // Its own bound and QEMU's refusal decide what the firmware's lines do not.
            Check::AsBios => return self.conclude_as_bios(end),
            Check::KeyHealth => Err(Undecided::new(
                "key-health boots nothing: its varstore is read, not watched",
                None,
            )),
        };
        match (concluded, no_boot) {
            (Err(_), Some(o)) => Ok(o),
            (concluded, _) => concluded,
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
    pub(super) fn nothing_bootable(&self, what: &str) -> Option<Observation> {
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

    pub(super) fn secure_boot(self, end: &BootEnd) -> Result<Observation, Undecided> {
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

    pub(super) fn kernel_boot(self, end: &BootEnd) -> Result<Observation, Undecided> {
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

/// How much of a console line a reason quotes (a line can be 64 KiB), and of QEMU's stderr.
const QUOTED_LINE: usize = 200;
const QUOTED_STDERR: usize = 2000;

/// Why a boot that decided nothing ended, in words: console text escaped and cut.
pub fn end_reason(end: &BootEnd) -> String {
    match end {
        BootEnd::Stopped => "the boot was stopped before anything decided it".into(),
        BootEnd::Exited { status, stderr } => format!(
            "QEMU exited ({status}) before any decisive console line; stderr: {}",
            shown(stderr, QUOTED_STDERR)
        ),
        BootEnd::Deadline { after, last_line } => format!(
            "no decisive console line within {:.0} s (last line: \"{}\")",
            after.as_secs_f64(),
            shown(last_line, QUOTED_LINE)
        ),
        BootEnd::Failed(why) => why.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_reasons_quote_console_text_escaped_and_cut() {
        let long = "A".repeat(65_536);
        let reason = end_reason(&BootEnd::Deadline {
            after: std::time::Duration::from_secs(12),
            last_line: long.clone(),
        });
        assert!(reason.starts_with("no decisive console line within 12 s (last line: \"AAA"));
        assert!(reason.ends_with("… (65536 bytes, cut)\")"), "{reason}");
        assert!(reason.len() < 300, "{}", reason.len());
        let short = end_reason(&BootEnd::Deadline {
            after: std::time::Duration::from_secs(3),
            last_line: "BdsDxe: \x1b[2J".into(),
        });
        assert_eq!(
            short,
            "no decisive console line within 3 s (last line: \"BdsDxe: \\x1b[2J\")"
        );
        let exited = end_reason(&BootEnd::Exited {
            status: "exit status: 1".into(),
            stderr: long,
        });
        assert!(
            exited.len() < 2100 && exited.ends_with("bytes, cut)"),
            "{}",
            exited.len()
        );
    }
    use crate::observe::script::*;

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
}
