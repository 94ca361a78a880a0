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

    pub(super) fn conclude_as_bios(self, end: &BootEnd) -> Result<Observation, Undecided> {
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
        // What the firmware did show: its debug console's last lines and QEMU's log of its
        // errors, as a no-boot of the other checks shows them, else its last lines alone.
        let firmware_lines = match self.progress.conclude(end) {
            Some(o) => o.evidence.lines().to_vec(),
            None => self.progress.last_lines(),
        };
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
                         line(s) on the serial console, {} line(s) shown here from the firmware and QEMU's log{shown}; \
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::observe::evidence::Reading;
    use crate::observe::script::*;
    use crate::plan::Targets;

    fn probe(steps: &[Step], end: BootEnd) -> Result<Observation, Undecided> {
        run(Check::AsBios, steps, end).0
    }

    fn kernel(steps: &[Step], end: BootEnd) -> Result<Observation, Undecided> {
        run_with(Check::AsBios, Targets::default(), steps, end).0
    }

    fn exited(stderr: &str) -> BootEnd {
        BootEnd::Exited {
            status: "exit status: 1".into(),
            stderr: stderr.into(),
        }
    }

    fn bound() -> BootEnd {
        BootEnd::Deadline {
            after: Duration::from_secs(40),
            last_line: String::new(),
        }
    }

    #[test]
    fn qemus_refusal_to_load_the_image_is_qemu_refused_with_its_line() {
        let stderr = "qemu-system-x86_64: warning: something\nqemu: could not load PC BIOS '/usr/share/OVMF/OVMF_CODE_4M.fd'\n";
        for o in [probe(&[], exited(stderr)), kernel(&[], exited(stderr))] {
            let o = o.unwrap();
            assert_eq!(o.outcome, Outcome::QemuRefused);
            let lines = o.evidence.lines();
            assert_eq!(lines.len(), 1);
            assert_eq!(lines[0].stream, Console::QemuLog);
            assert_eq!(
                lines[0].line,
                "qemu: could not load PC BIOS '/usr/share/OVMF/OVMF_CODE_4M.fd'"
            );
        }
    }

    #[test]
    fn qemu_failing_for_another_reason_is_undecided_not_a_refusal() {
        let u = probe(
            &[],
            exited("qemu-system-x86_64: -drive file=x: Could not open 'x'"),
        )
        .unwrap_err();
        assert!(u.reason.contains("QEMU exited"), "{}", u.reason);
    }

    #[test]
    fn silence_to_the_bound_is_no_boot_with_what_the_runner_measured() {
        let o = probe(&[Tick(1000), Tick(39_000)], bound()).unwrap();
        assert_eq!(o.outcome, Outcome::NoBoot);
        let lines = o.evidence.lines();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].stream, Console::Runner);
        assert!(
            lines[0].line.starts_with(
                "no payload line within the as-bios bound of 40 s: 0 line(s) on the serial console, 0 line(s) shown"
            ),
            "{}",
            lines[0].line
        );
    }

    #[test]
    fn a_no_boot_carries_the_firmwares_last_lines() {
        let o = kernel(
            &[
                Serial(500, "BdsDxe: something early"),
                DebugCon(900, "SecCoreStartupWithStack(0xFFFCC000, 0x820000)"),
            ],
            bound(),
        )
        .unwrap();
        assert_eq!(o.outcome, Outcome::NoBoot);
        let streams: Vec<Console> = o.evidence.lines().iter().map(|e| e.stream).collect();
        assert_eq!(streams, [Console::Debug, Console::Runner]);
        assert!(o.evidence.lines()[1]
            .line
            .contains("1 line(s) on the serial console"));
    }

    #[test]
    fn a_no_boot_carries_the_guest_errors_qemu_logged() {
        let o = probe(
            &[GuestError(400, "Invalid access at addr 0x0, size 4, region 'acpi-cpu-hotplug', reason: invalid size (min:1 max:1)")],
            bound(),
        )
        .unwrap();
        assert_eq!(o.outcome, Outcome::NoBoot);
        let streams: Vec<Console> = o.evidence.lines().iter().map(|e| e.stream).collect();
        assert_eq!(streams, [Console::QemuLog, Console::Runner]);
    }

    #[rstest::rstest]
    #[case::a_refusal(&[Serial(3000, OWN_REFUSAL)])]
    #[case::the_end_of_attempts(&[Serial(3000, GAVE_UP)])]
    fn a_boot_manager_verdict_is_never_no_boot(#[case] steps: &[Step]) {
        let r = probe(steps, bound());
        assert_ne!(r.map(|o| o.outcome).ok(), Some(Outcome::NoBoot));
    }

    #[test]
    fn a_kernel_that_started_and_ran_out_of_time_is_started_not_no_boot() {
        // `started` is no as-bios outcome: the judge makes it an error.
        let o = kernel(&[Serial(5000, LINUX)], bound()).unwrap();
        assert_eq!(o.outcome, Outcome::Started);
        assert_eq!(o.evidence.lines()[0].line, LINUX);
    }

    #[test]
    fn the_probe_that_ran_is_booted_with_its_secure_boot_value() {
        let (r, read) = run(
            Check::AsBios,
            &[Serial(4000, PROBE_SB0), Serial(4100, "never read")],
            bound(),
        );
        assert_eq!(read, 1, "the probe line stops the guest");
        let o = r.unwrap();
        assert_eq!(o.outcome, Outcome::Booted);
        assert_eq!(o.secure_boot, Reading::Value(0));
        assert_eq!(o.evidence.lines()[0].line, PROBE_SB0);
        assert_eq!(o.notes, ["read as runs"]);
    }

    #[rstest::rstest]
    #[case::secure_boot_off(&[Serial(5000, LINUX), Serial(5100, CMDLINE_LEGACY), Serial(5200, SB_OFF)], 0)]
    #[case::secure_boot_on(&[Serial(4000, LEGACY_WARNING), Serial(5000, LINUX), Serial(5100, CMDLINE_LEGACY), Serial(5200, SB_ON)], 1)]
    fn a_kernel_that_started_is_booted_with_its_secure_boot_value(
        #[case] steps: &[Step],
        #[case] sb: u8,
    ) {
        let o = kernel(steps, bound()).unwrap();
        assert_eq!(o.outcome, Outcome::Booted);
        assert_eq!(o.secure_boot, Reading::Value(sb));
    }

    #[test]
    fn a_refused_probe_is_refused() {
        let o = probe(&[Serial(3000, OWN_REFUSAL), Serial(3100, GAVE_UP)], bound()).unwrap();
        assert_eq!(o.outcome, Outcome::Refused);
        assert_eq!(o.evidence.lines()[0].line, OWN_REFUSAL);
    }

    #[test]
    fn the_kernel_variant_reads_no_probe_line_and_the_probe_variant_no_kernel() {
        let w = Watcher::new(Check::AsBios, Targets::default(), GRACE);
        assert_eq!(w.reads_as(), Check::KernelBoot);
        let w = Watcher::new(Check::AsBios, targets(Check::SecureBoot), GRACE);
        assert_eq!(w.reads_as(), Check::SecureBoot);
        let w = Watcher::new(Check::OptionRom, targets(Check::OptionRom), GRACE);
        assert_eq!(w.reads_as(), Check::OptionRom);
    }
}
