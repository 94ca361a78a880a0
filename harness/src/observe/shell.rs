//! no-shell: with no bootable media under the enforcing varstore the firmware ships, the boot
//! manager is left with its own options, the built-in UEFI shell among them. Positive evidence
//! either way:
//!
//! - `shell-refused`: its line for the shell's option, `BdsDxe: failed to start Boot0002 "EFI
//!   Internal Shell" from Fv(...)/FvFile(...): Security Violation` (Secure Boot refused the
//!   shell image), then the end of its attempts;
//! - `shell-absent`: the end of its attempts (`BdsDxe: No bootable option ...`) with no shell
//!   option tried at all (a build without a shell);
//! - `shell-reached`: the shell's banner (`UEFI Interactive Shell`), its startup countdown
//!   (`Press ESC in 5 seconds to skip startup.nsh`) or its prompt (`Shell>`, left without a
//!   newline).

use super::evidence::{Evidence, EvidenceLines, Observation, Undecided};
use super::Watcher;
use crate::boot::BootEnd;
use crate::matrix::Outcome;
use crate::observe::conclude::end_reason;

/// The shell's own lines.
const SHELL_STARTED: &[&str] = &["UEFI Interactive Shell", "to skip startup.nsh", "Shell> "];
/// The description of the shell's boot option.
const SHELL_OPTION: &str = "\"EFI Internal Shell\"";

impl Watcher {
    /// A serial line (or an unfinished one: the prompt) of a no-shell cell.
    pub(super) fn shell_text(&mut self, ev: &Evidence) {
        if self.shell_reached.is_none()
            && SHELL_STARTED
                .iter()
                .any(|m| ev.line.contains(m) || ev.line.trim_end() == m.trim_end())
        {
            self.shell_reached = Some(ev.clone());
        }
    }

    pub(super) fn no_shell(self, end: &BootEnd) -> Result<Observation, Undecided> {
        if let Some(reached) = &self.shell_reached {
            return Ok(Observation::new(
                Outcome::ShellReached,
                format!("started: {}", reached.line.trim()),
                EvidenceLines::new(reached.clone()),
            ));
        }
        let Some(gave_up) = self.end_of_attempts.clone() else {
            return Err(Undecided::new(end_reason(end), self.failure));
        };
        let refused = self.other_refusals.iter().find(|e| {
            e.line.contains(SHELL_OPTION)
                && (e.line.contains("Security Violation") || e.line.contains("Access Denied"))
        });
        Ok(match refused {
            Some(r) => Observation::new(
                Outcome::ShellRefused,
                "was refused: the boot manager would not start it, and gave up".to_string(),
                EvidenceLines::new(r.clone()).with([gave_up]),
            ),
            None => Observation::new(
                Outcome::ShellAbsent,
                "was never tried: the boot manager had no shell option, and gave up".to_string(),
                EvidenceLines::new(gave_up),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::matrix::{Check, Outcome};
    use crate::observe::script::*;

    fn lines(o: &crate::observe::evidence::Observation) -> Vec<&str> {
        o.evidence.lines().iter().map(|e| e.line.as_str()).collect()
    }

    /// Debian 12's OVMF_CODE_4M.ms.fd with OVMF_VARS_4M.ms.fd and no disk, as measured.
    #[test]
    fn a_refused_shell_and_the_end_of_attempts_is_shell_refused() {
        let steps = [
            Serial(3000, SHELL_REFUSAL),
            Serial(3100, GAVE_UP),
            Serial(3200, "x"),
        ];
        let (r, read) = run(Check::NoShell, &steps, deadline());
        assert_eq!(read, 2, "the end of attempts stops the guest");
        let o = r.unwrap();
        assert_eq!(o.outcome, Outcome::ShellRefused);
        assert_eq!(lines(&o), [SHELL_REFUSAL, GAVE_UP]);
    }

    #[test]
    fn the_end_of_attempts_without_a_shell_option_is_shell_absent() {
        let o = run(Check::NoShell, &[Serial(3100, GAVE_UP_2026)], deadline())
            .0
            .unwrap();
        assert_eq!(o.outcome, Outcome::ShellAbsent);
        assert_eq!(lines(&o), [GAVE_UP_2026]);
    }

    #[rstest::rstest]
    #[case::banner(Serial(3000, "UEFI Interactive Shell v2.2"))]
    #[case::countdown(Serial(
        3000,
        "Press ESC in 5 seconds to skip startup.nsh or any other key to continue."
    ))]
    #[case::prompt(Partial(3000, "Shell> "))]
    #[case::prompt_without_its_space(Partial(3000, "Shell>"))]
    fn the_shells_own_lines_are_shell_reached(#[case] step: Step<'static>) {
        let (r, read) = run(
            Check::NoShell,
            &[step, Serial(9000, "never read")],
            deadline(),
        );
        assert_eq!(read, 1);
        assert_eq!(r.unwrap().outcome, Outcome::ShellReached);
    }

    #[test]
    fn nothing_from_the_boot_manager_is_no_evidence() {
        let (r, _) = run(
            Check::NoShell,
            &[Serial(3000, "BdsDxe: loading Boot0001")],
            deadline(),
        );
        assert!(r.is_err(), "{r:?}");
        // Another option's refusal is not the shell's.
        let other = r#"BdsDxe: failed to load Boot0003 "UEFI PXEv4 (MAC:525400123456)" from PciRoot(0x0)/Pci(0x6,0x0): Access Denied"#;
        let o = run(
            Check::NoShell,
            &[Serial(3000, other), Serial(3100, GAVE_UP)],
            deadline(),
        )
        .0
        .unwrap();
        assert_eq!(o.outcome, Outcome::ShellAbsent);
    }
}
