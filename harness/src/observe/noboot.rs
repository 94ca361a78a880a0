//! `no-boot`: the firmware never reached its boot manager.
//!
//! Telling a firmware that hangs or resets before BDS from a harness that broke takes positive
//! evidence, all of it:
//!
//! - the firmware's debug console (isa-debugcon, descriptors with `verbose-dynamic`) showed
//!   firmware lines: the firmware ran, and the harness read what it wrote;
//! - none of them is the boot manager's (`[Bds] Entry...`, `[BdsDxe] ...`, `BdsDxe: ...`);
//! - the serial console showed nothing at all: edk2 connects its console (the serial port) in
//!   BDS, so every boot-manager, payload and kernel line goes there, and a line there means the
//!   firmware got further than the debug console says (or that something else speaks);
//! - the guest ran until the deadline, or QEMU ended on its own with success: under
//!   `-no-reboot` a reset (a triple fault, a reset loop) or a power-off ends QEMU with status 0.
//!   A QEMU that failed (another status), a boot that could not be started and a boot the
//!   watcher stopped are the harness's or QEMU's, never the firmware's.
//!
//! The firmware's output can also be what it did to the hardware: QEMU's log of the guest's
//! errors (`-d guest_errors`), such as the rejected 4-byte switch of the CPU hotplug register
//! block that edk2 >= stable202302 stops on under TCG on QEMU 5.1 to 7.2 (TianoCore bug 4250).
//! Debian's release builds write nothing to the debug console, so for them that log is the
//! only sign of life before the boot manager.
//!
//! Without firmware output of either kind there is no evidence: the cell stays an error.

use std::collections::VecDeque;
use std::time::Duration;

use crate::boot::guest_errors::GuestErrors;
use crate::boot::{BootEnd, Console};
use crate::matrix::Outcome;
use crate::observe::conclude::end_reason;
use crate::observe::evidence::{Evidence, EvidenceLines, Observation};

/// How many of the firmware's last lines a no-boot observation carries.
pub const LAST_LINES: usize = 5;
/// How many of QEMU's distinct guest-error lines it carries.
pub const GUEST_ERROR_LINES: usize = 3;

/// What QEMU's exit status reads as when it ended on its own with success.
const EXIT_SUCCESS: &str = "exit status: 0";

/// Whether a firmware line comes from the boot manager: BdsDxe's DEBUG output (`[Bds] Entry...`,
/// `[BdsDxe] Locate Variable Policy protocol`) or its console lines (`BdsDxe: loading ...`).
/// The DXE core's `Loading driver ... BdsDxe.efi` is not: that is the driver being loaded.
pub fn is_boot_manager_line(line: &str) -> bool {
    line.contains("[Bds") || line.contains("BdsDxe:")
}

/// How far the firmware got, as its consoles show it.
#[derive(Debug, Default)]
pub struct Progress {
    /// The debug console's last non-blank lines, oldest first.
    last_debug: VecDeque<Evidence>,
    /// How many non-blank lines the debug console showed.
    debug_lines: usize,
    /// A line of the boot manager, on either console.
    boot_manager: bool,
    /// How many non-blank lines the serial console showed.
    serial_lines: usize,
    /// What QEMU logged of the guest's errors.
    guest_errors: GuestErrors,
}

impl Progress {
    pub fn line(&mut self, console: Console, at: Duration, text: &str) {
        let line = text.trim();
        if line.is_empty() {
            return;
        }
        self.boot_manager |= is_boot_manager_line(line);
        match console {
            Console::Serial => self.serial_lines += 1,
            Console::QemuLog | Console::Varstore | Console::Runner => {}
            Console::Debug => {
                self.debug_lines += 1;
                if self.last_debug.len() == LAST_LINES {
                    self.last_debug.pop_front();
                }
                self.last_debug.push_back(Evidence {
                    stream: console,
                    at,
                    line: line.to_string(),
                });
            }
        }
    }

    /// The debug console's last non-blank lines, oldest first.
    pub fn last_lines(&self) -> Vec<Evidence> {
        self.last_debug.iter().cloned().collect()
    }

    /// How many non-blank lines the serial console showed (a partial line counts each time
    /// it is shown).
    pub fn serial_lines(&self) -> usize {
        self.serial_lines
    }

    pub fn guest_errors(&mut self, errors: &GuestErrors) {
        self.guest_errors = errors.clone();
    }

    /// The no-boot observation, where the consoles and the end of the boot show one.
    pub fn conclude(&self, end: &BootEnd) -> Option<Observation> {
        if self.boot_manager || self.serial_lines > 0 {
            return None;
        }
        let how = match end {
            BootEnd::Deadline { .. } => end_reason(end),
            BootEnd::Exited { status, .. } if status == EXIT_SUCCESS => {
                "QEMU ended on its own with success (under -no-reboot: the guest reset or powered \
                 off)"
                    .to_string()
            }
            _ => return None,
        };
        let guest = self.guest_errors.distinct.iter().take(GUEST_ERROR_LINES);
        let mut lines = self
            .last_debug
            .iter()
            .cloned()
            .chain(guest.map(|e| Evidence {
                stream: Console::QemuLog,
                at: e.first_at,
                line: e.line.clone(),
            }));
        let evidence = EvidenceLines::new(lines.next()?).with(lines);
        let logged = match &self.guest_errors {
            g if g.is_empty() => String::new(),
            g => format!(
                ", and QEMU logged {} guest error(s) in {}{} distinct line(s), the last at {:.1} s",
                g.total,
                if g.uncounted > 0 { "more than " } else { "" },
                g.distinct.len(),
                g.distinct
                    .iter()
                    .map(|e| e.last_at)
                    .max()
                    .unwrap_or_default()
                    .as_secs_f64()
            ),
        };
        Some(Observation::new(
            Outcome::NoBoot,
            format!(
                "was never tried: the firmware never reached its boot manager ({} line(s) on its \
                 debug console, none from the boot manager, nothing on the serial console{logged}; \
                 {how})",
                self.debug_lines
            ),
            evidence,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::Check;
    use crate::observe::script::*;

    /// A DEBUG build that hangs in DXE: the debug console's last lines before the deadline.
    const HANG: &[&str] = &[
        "SecCoreStartupWithStack(0xFFFCC000, 0x820000)",
        "Platform PEIM Loaded",
        "DXE IPL Entry",
        "Loading driver at 0x0007EB4A000 EntryPoint=0x0007EB4B0A9 BdsDxe.efi",
        "InstallProtocolInterface: 5B1B31A1-9562-11D2-8E3F-00A0C969723B 7EB5D040",
        "PlatformDxe: something went wrong",
        "ASSERT [PlatformDxe] Platform.c(123): !EFI_ERROR (Status)",
    ];

    fn debug_steps(lines: &[&'static str]) -> Vec<Step<'static>> {
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| DebugCon(100 * (i as u64 + 1), l))
            .collect()
    }

    fn exited(status: &str) -> BootEnd {
        BootEnd::Exited {
            status: status.into(),
            stderr: "(stderr empty)".into(),
        }
    }

    #[test]
    fn firmware_lines_without_the_boot_manager_until_the_deadline_is_no_boot() {
        // as-bios reads a silent boot against its own bound (observe/asbios.rs).
        for check in &Check::booting()
            .filter(|c| *c != Check::AsBios)
            .collect::<Vec<_>>()
        {
            let (r, read) = run(*check, &debug_steps(HANG), deadline());
            assert_eq!(read, HANG.len(), "no-boot never stops the guest early");
            let o = r.unwrap();
            assert_eq!(o.outcome, Outcome::NoBoot, "{check}");
            let lines: Vec<&str> = o.evidence.lines().iter().map(|e| e.line.as_str()).collect();
            assert_eq!(lines, HANG[HANG.len() - LAST_LINES..], "the last lines");
            assert!(o
                .evidence
                .lines()
                .iter()
                .all(|e| e.stream == Console::Debug));
            assert!(
                o.description.contains(
                    "never reached its boot manager (7 line(s) on its debug console, none from \
                     the boot manager, nothing on the serial console; no decisive console line \
                     within 80 s"
                ),
                "{}",
                o.description
            );
        }
    }

    #[test]
    fn a_reset_under_no_reboot_is_no_boot_and_a_failed_qemu_is_not() {
        let steps = debug_steps(&HANG[..2]);
        let (r, _) = run(Check::SecureBoot, &steps, exited("exit status: 0"));
        let o = r.unwrap();
        assert_eq!(o.outcome, Outcome::NoBoot);
        assert!(
            o.description.contains("the guest reset"),
            "{}",
            o.description
        );
        assert_eq!(o.evidence.lines().len(), 2);
        for end in [
            exited("exit status: 1"),
            exited("signal: 6 (SIGABRT)"),
            BootEnd::Failed("cannot start".into()),
            BootEnd::Stopped,
        ] {
            let (r, _) = run(Check::SecureBoot, &steps, end.clone());
            assert!(r.is_err(), "{end:?}: {r:?}");
        }
    }

    /// trixie's OVMF 2025.02 (a release build) on bullseye's QEMU 5.2 under TCG: nothing on any
    /// console, only QEMU's rejection of the firmware's switch of the CPU hotplug register block.
    const CPUHP: &str = "Invalid access at addr 0x0, size 4, region 'acpi-cpu-hotplug', reason: invalid size (min:1 max:1)";

    #[test]
    fn guest_errors_alone_show_a_firmware_that_ran_and_never_reached_its_boot_manager() {
        let steps: Vec<Step> = (0..6).map(|i| GuestError(300 + i, CPUHP)).collect();
        // as-bios reads a silent boot against its own bound (observe/asbios.rs).
        for check in &Check::booting()
            .filter(|c| *c != Check::AsBios)
            .collect::<Vec<_>>()
        {
            let o = run(*check, &steps, deadline()).0.unwrap();
            assert_eq!(o.outcome, Outcome::NoBoot, "{check}");
            let lines = o.evidence.lines();
            assert_eq!(lines.len(), 1, "each distinct line once");
            assert_eq!(lines[0].stream, Console::QemuLog);
            assert_eq!(lines[0].line, CPUHP);
            assert_eq!(lines[0].at, Duration::from_millis(300));
            assert!(
                o.description.contains(
                    "(0 line(s) on its debug console, none from the boot manager, nothing on the \
                     serial console, and QEMU logged 6 guest error(s) in 1 distinct line(s), the \
                     last at 0.3 s;"
                ),
                "{}",
                o.description
            );
        }
    }

    #[test]
    fn more_distinct_guest_errors_than_are_kept_are_said_to_be_more() {
        let lines: Vec<String> = (0..20)
            .map(|i| format!("Invalid read at addr 0x{i:X}, size 1, region 'x', reason: rejected"))
            .collect();
        let steps: Vec<Step> = lines.iter().map(|l| GuestError(300, l.as_str())).collect();
        let o = run(Check::SecureBoot, &steps, deadline()).0.unwrap();
        assert!(
            o.description
                .contains("QEMU logged 20 guest error(s) in more than 16 distinct line(s)"),
            "{}",
            o.description
        );
        assert_eq!(o.evidence.lines().len(), GUEST_ERROR_LINES);
    }

    #[test]
    fn debug_lines_and_guest_errors_travel_together() {
        let mut steps = debug_steps(&HANG[..2]);
        steps.push(GuestError(250, CPUHP));
        let o = run(Check::SecureBoot, &steps, deadline()).0.unwrap();
        let streams: Vec<Console> = o.evidence.lines().iter().map(|e| e.stream).collect();
        assert_eq!(streams, [Console::Debug, Console::Debug, Console::QemuLog]);
    }

    #[rstest::rstest]
    #[case::serial(Serial(900, "BdsDxe: loading Boot0001 \"UEFI Misc Device\""))]
    #[case::kernel(Serial(900, "[    0.000000] Linux version 6.1.0"))]
    #[case::boot_manager_on_debug(DebugCon(900, "[Bds] Entry..."))]
    fn guest_errors_of_a_firmware_that_got_further_are_no_no_boot(#[case] step: Step<'static>) {
        let steps = [GuestError(100, CPUHP), step];
        let (r, _) = run(Check::KernelBoot, &steps, deadline());
        assert!(
            !matches!(&r, Ok(o) if o.outcome == Outcome::NoBoot),
            "{r:?}"
        );
    }

    #[test]
    fn guest_errors_with_a_failed_qemu_are_no_evidence() {
        let steps = [GuestError(100, CPUHP)];
        for end in [exited("exit status: 1"), BootEnd::Stopped] {
            let (r, _) = run(Check::SecureBoot, &steps, end.clone());
            assert!(r.is_err(), "{end:?}: {r:?}");
        }
        let (r, _) = run(Check::SecureBoot, &steps, exited("exit status: 0"));
        assert_eq!(r.unwrap().outcome, Outcome::NoBoot);
    }

    #[test]
    fn no_firmware_output_is_no_evidence() {
        let (r, _) = run(
            Check::SecureBoot,
            &[Tick(1000), DebugCon(1100, "  ")],
            deadline(),
        );
        assert!(r.is_err(), "{r:?}");
        let (r, _) = run(Check::KernelBoot, &[], exited("exit status: 0"));
        assert!(r.is_err(), "{r:?}");
    }

    #[rstest::rstest]
    #[case::bds_entry(DebugCon(900, "[Bds] Entry..."))]
    #[case::bds_dxe_debug(DebugCon(900, "[BdsDxe] Locate Variable Policy protocol - Success"))]
    #[case::bds_dxe_on_the_debug_console(DebugCon(900, "BdsDxe: loading Boot0001"))]
    #[case::bds_dxe_on_serial(Serial(900, "BdsDxe: loading Boot0001 \"UEFI Misc Device\""))]
    #[case::anything_on_serial(Serial(900, "EFI stub: UEFI Secure Boot is enabled."))]
    fn the_boot_manager_or_any_serial_line_rules_it_out(#[case] step: Step<'static>) {
        let mut steps = debug_steps(&HANG[..3]);
        steps.push(step);
        let (r, _) = run(Check::KernelBoot, &steps, deadline());
        let u = r.expect_err("an error, not no-boot");
        assert!(
            u.reason.contains("no decisive console line"),
            "{}",
            u.reason
        );
    }

    #[test]
    fn blank_serial_lines_are_not_output() {
        let mut steps = debug_steps(&HANG[..3]);
        steps.push(Serial(900, ""));
        steps.push(Serial(901, "   "));
        let (r, _) = run(Check::SecureBoot, &steps, deadline());
        assert_eq!(r.unwrap().outcome, Outcome::NoBoot);
    }

    #[test]
    fn serial_text_without_a_newline_is_output_too() {
        let mut steps = debug_steps(&HANG[..3]);
        steps.push(Partial(900, "Verification failed: (0x1A) Security Vi"));
        let (r, _) = run(Check::SecureBoot, &steps, deadline());
        assert!(r.is_err(), "{r:?}");
    }

    #[test]
    fn driver_loading_is_not_the_boot_manager() {
        assert!(!is_boot_manager_line(HANG[3]));
        assert!(is_boot_manager_line("[Bds] Entry..."));
        assert!(is_boot_manager_line(
            "[BdsDxe] Locate Variable Policy protocol - Success"
        ));
        assert!(is_boot_manager_line(
            "BdsDxe: No bootable option was found."
        ));
    }
}
