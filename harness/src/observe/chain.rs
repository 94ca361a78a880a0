//! distro-chain: how far the chain got, from what the firmware, shim, grub and the kernel say
//! on the serial console.
//!
//! - the firmware refuses shim: the boot manager's `failed to load Boot0001 ... Access Denied`
//!   for the ESP's own option (`shim-refused`);
//! - shim refuses grub: `Verification failed: (0x1A) Security Violation`, in shim's error box,
//!   before grub ever ran (`grub-refused`);
//! - shim's SBAT check refuses an image: `component grub, generation 4, was revoked by
//!   SbatLevel variable` and `image did not pass SBAT verification` (shim prints them with its
//!   `SHIM_VERBOSE` variable set, which distro-chain varstores carry, before its `Verification
//!   failed: Security Policy Violation`), or `SBAT self-check failed` (`sbat-revoked`);
//! - grub, through shim's verifier, refuses the kernel: `error: bad shim signature` (after
//!   grub's own banner; a `Verification failed` after grub started is the kernel's)
//!   (`kernel-refused`);
//! - the kernel's `secureboot:` line: the whole chain booted (`chain-booted`).
//!
//! The first of these decides; a kernel line after a refusal is a contradiction, never a pass
//! by default.

use super::evidence::{Evidence, EvidenceLines, Observation, Reading, Undecided};
use super::{Refusal, Watcher, SHIM_REFUSAL};
use crate::boot::BootEnd;
use crate::matrix::Outcome;
use crate::observe::conclude::end_reason;

/// shim's SBAT refusals (with `SHIM_VERBOSE`: `component grub, generation 4, was revoked by
/// SbatLevel variable`, then `image did not pass SBAT verification`; its own check: `SBAT
/// self-check failed`).
const SBAT_REFUSALS: &[&str] = &[
    "was revoked by SbatLevel variable",
    "image did not pass SBAT verification",
    "SBAT self-check failed",
];
/// grub refusing the kernel through shim's verifier (grub 2.06: `bad shim signature`).
const GRUB_KERNEL_REFUSALS: &[&str] = &["error: bad shim signature", "error: bad signature"];
/// grub's banner: grub is running, so shim accepted it.
const GRUB_STARTED: &[&str] = &["Welcome to GRUB!", "GNU GRUB  version"];
/// grub after a failed entry: it has given up on the kernel.
pub(super) const GRUB_GAVE_UP: &str = "Failed to boot both default and fallback entries";

impl Watcher {
    /// A serial line (or shim's unfinished error box) of a distro-chain cell.
    pub(super) fn chain_text(&mut self, ev: &Evidence) {
        let line = ev.line.as_str();
        if GRUB_STARTED.iter().any(|m| line.contains(m)) {
            self.grub_started = true;
        }
        if line.contains(GRUB_GAVE_UP) {
            self.grub_gave_up = true;
        }
        if self.chain_refusal.is_some() || self.linux_version.is_some() {
            return;
        }
        let found = if let Some(m) = SBAT_REFUSALS.iter().find(|m| line.contains(*m)) {
            Some((Outcome::SbatRevoked, format!("shim's SBAT check: {m}")))
        } else if let Some(m) = GRUB_KERNEL_REFUSALS.iter().find(|m| line.contains(*m)) {
            Some((Outcome::KernelRefused, format!("grub: {m}")))
        } else if let Some((_, rest)) = line.split_once(SHIM_REFUSAL) {
            let what = format!("shim: {SHIM_REFUSAL}{}", rest.trim().trim_end_matches('│'));
            if self.grub_started {
                Some((Outcome::KernelRefused, what))
            } else {
                Some((Outcome::GrubRefused, what))
            }
        } else {
            None
        };
        if let Some((outcome, what)) = found {
            self.chain_refusal = Some((
                outcome,
                Refusal {
                    evidence: ev.clone(),
                    what: what.trim().to_string(),
                },
            ));
        }
    }

    /// The chain's outcome, from what the consoles showed.
    pub(super) fn distro_chain(self, end: &BootEnd) -> Result<Observation, Undecided> {
        if let Some((line, reading)) = &self.kernel_secure_boot {
            let linux = self.linux_version.clone();
            let evidence = EvidenceLines::new(line.clone()).with(linux);
            if let Reading::Unknown(why) = reading {
                return Err(Undecided::new(
                    format!("the chain reached the kernel, but {why}"),
                    Some(line.clone()),
                ));
            }
            let mut o = Observation::new(
                Outcome::ChainBooted,
                format!(
                    "booted: shim, grub and the kernel ran, and the kernel says {}",
                    line.line.trim()
                ),
                evidence,
            );
            o.secure_boot = reading.clone();
            if let Some((outcome, r)) = &self.chain_refusal {
                o.contradiction = Some(format!(
                    "{outcome} was seen first ({}, at {:.3} s)",
                    r.what,
                    r.evidence.at.as_secs_f64()
                ));
            }
            return Ok(o);
        }
        if let Some(linux) = &self.linux_version {
            return Err(Undecided::new(
                format!(
                    "the kernel started but printed no secureboot: line ({})",
                    end_reason(end)
                ),
                Some(linux.clone()),
            ));
        }
        if let Some((outcome, r)) = &self.chain_refusal {
            return Ok(Observation::new(
                *outcome,
                format!("was refused ({})", r.what),
                EvidenceLines::new(r.evidence.clone()),
            ));
        }
        if let Some(r) = &self.refusal {
            if self.end_of_attempts.is_some() || self.grace_expired {
                let evidence =
                    EvidenceLines::new(r.evidence.clone()).with(self.end_of_attempts.clone());
                return Ok(Observation::new(
                    Outcome::ShimRefused,
                    format!(
                        "was refused: the firmware would not start shim ({})",
                        r.what
                    ),
                    evidence,
                ));
            }
        }
        if let Some(o) = self.nothing_bootable("the chain never started, and nothing refused it") {
            return Ok(o);
        }
        Err(Undecided::new(end_reason(end), self.failure))
    }
}

#[cfg(test)]
mod tests {
    use crate::matrix::{Check, Outcome};
    use crate::observe::evidence::Reading;
    use crate::observe::script::*;

    const GRUB: &str = "Welcome to GRUB!";
    const BAD_SIG: &str = "error: bad shim signature.";
    const NO_KERNEL: &str = "error: you need to load the kernel first.";
    const GRUB_GAVE_UP: &str = "  Failed to boot both default and fallback entries.";
    const REVOKED: &str = "sbat.c:150:verify_single_entry() component grub, generation 4, was revoked by SbatLevel variable";
    const SBAT: &str = "sbat.c:152 verify_single_entry() image did not pass SBAT verification";
    const SHIM_BOX: &str =
        "│                    Verification failed: (0x1A) Security Violation                    │";
    const STARTING: &str =
        r#"BdsDxe: starting Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x5,0x0)"#;

    fn chain(
        steps: &[Step],
    ) -> (
        Result<crate::observe::evidence::Observation, crate::observe::evidence::Undecided>,
        usize,
    ) {
        run(Check::DistroChain, steps, deadline())
    }

    fn lines(o: &crate::observe::evidence::Observation) -> Vec<&str> {
        o.evidence.lines().iter().map(|e| e.line.as_str()).collect()
    }

    /// bookworm's chain under Debian 12's OVMF_VARS_4M.ms.fd, as measured.
    #[test]
    fn the_kernels_secureboot_line_is_a_booted_chain() {
        let steps = [
            Serial(900, STARTING),
            Serial(1500, GRUB),
            Serial(9000, LINUX),
            Serial(9100, SB_ON),
            Serial(9200, "never read"),
        ];
        let (r, read) = chain(&steps);
        assert_eq!(read, 4, "the secureboot: line stops the guest");
        let o = r.unwrap();
        assert_eq!(o.outcome, Outcome::ChainBooted);
        assert_eq!(o.secure_boot, Reading::Value(1));
        assert_eq!(lines(&o), [LINUX, SB_ON]);
        assert_eq!(o.contradiction, None);
    }

    /// bookworm's chain with the kernel's signature stripped, or signed by the test key only.
    #[test]
    fn grubs_bad_shim_signature_is_a_refused_kernel() {
        let steps = [
            Serial(900, STARTING),
            Serial(1500, GRUB),
            Serial(2000, BAD_SIG),
            Serial(2001, NO_KERNEL),
            Serial(2002, GRUB_GAVE_UP),
            Serial(2003, "never read"),
        ];
        let (r, read) = chain(&steps);
        assert_eq!(read, 5, "grub giving up stops the guest");
        let o = r.unwrap();
        assert_eq!(o.outcome, Outcome::KernelRefused);
        assert_eq!(lines(&o), [BAD_SIG]);
        assert!(
            o.description.contains("grub: error: bad shim signature"),
            "{}",
            o.description
        );
    }

    /// bookworm's shim 16.1 (SBAT level 2025021800, grub,5) with bullseye's grub (grub,4),
    /// SHIM_VERBOSE set.
    #[test]
    fn shims_sbat_line_is_a_revocation() {
        let steps = [
            Serial(900, STARTING),
            Serial(1100, REVOKED),
            Serial(1101, "Verification failed: Security Policy Violation"),
            Serial(1200, SBAT),
            Serial(
                1201,
                "shim.c:404 start_image() Failed to load image: Security Policy Violation",
            ),
            Serial(1400, GAVE_UP),
        ];
        let o = chain(&steps).0.unwrap();
        assert_eq!(o.outcome, Outcome::SbatRevoked);
        assert_eq!(lines(&o), [REVOKED]);
        // Without the first line, the second still says it.
        let o = chain(&[
            Serial(900, STARTING),
            Serial(1200, SBAT),
            Serial(1400, GAVE_UP),
        ])
        .0
        .unwrap();
        assert_eq!(o.outcome, Outcome::SbatRevoked);
        // Without shim's verbose lines, its box alone cannot tell a revocation from a signature.
        let o = chain(&[
            Serial(900, STARTING),
            Serial(1101, "Verification failed: Security Policy Violation"),
            Serial(1400, GAVE_UP),
        ])
        .0
        .unwrap();
        assert_eq!(o.outcome, Outcome::GrubRefused);
    }

    #[test]
    fn shims_error_box_before_grub_is_a_refused_grub_and_after_it_a_refused_kernel() {
        let o = chain(&[Serial(900, STARTING), Partial(1200, SHIM_BOX), Tick(20_000)])
            .0
            .unwrap();
        assert_eq!(o.outcome, Outcome::GrubRefused);
        assert!(
            o.description.contains("(0x1A) Security Violation"),
            "{}",
            o.description
        );
        let o = chain(&[Serial(1000, GRUB), Serial(1200, SHIM_BOX), Tick(20_000)])
            .0
            .unwrap();
        assert_eq!(o.outcome, Outcome::KernelRefused);
    }

    #[test]
    fn the_firmware_refusing_shim_is_a_refused_shim() {
        let o = chain(&[
            Serial(900, OWN_REFUSAL),
            Serial(1000, SHELL_REFUSAL),
            Serial(1100, GAVE_UP),
        ])
        .0
        .unwrap();
        assert_eq!(o.outcome, Outcome::ShimRefused);
        assert_eq!(lines(&o), [OWN_REFUSAL, GAVE_UP]);
    }

    #[test]
    fn a_kernel_after_a_refusal_boots_with_the_contradiction_noted() {
        let o = chain(&[
            Serial(1000, GRUB),
            Serial(1100, BAD_SIG),
            Serial(2000, LINUX),
            Serial(2100, SB_ON),
        ])
        .0
        .unwrap();
        assert_eq!(o.outcome, Outcome::ChainBooted);
        assert!(o
            .contradiction
            .unwrap()
            .contains("kernel-refused was seen first"));
    }

    /// A refusal whose grace window passed stops the guest, unless the kernel has started:
    /// then its secureboot: line is awaited.
    #[test]
    fn a_started_kernel_is_waited_for_after_the_grace_window() {
        let steps = [
            Serial(1000, GRUB),
            Serial(1100, BAD_SIG),
            Serial(2000, LINUX),
            Tick(20_000),
            Serial(20_100, SB_ON),
        ];
        let (r, read) = chain(&steps);
        assert_eq!(
            read, 5,
            "the tick past the window does not stop a started kernel"
        );
        assert_eq!(r.unwrap().outcome, Outcome::ChainBooted);
        let (r, read) = chain(&[
            Serial(1000, GRUB),
            Serial(1100, BAD_SIG),
            Tick(20_000),
            Serial(20_100, "x"),
        ]);
        assert_eq!(read, 3, "without a kernel the window's end stops the guest");
        assert_eq!(r.unwrap().outcome, Outcome::KernelRefused);
    }

    #[test]
    fn the_first_refusal_decides() {
        let steps = [
            Serial(900, STARTING),
            Serial(1100, REVOKED),
            Serial(1200, SHIM_BOX),
            Serial(1300, BAD_SIG),
            Serial(1400, GAVE_UP),
        ];
        let o = chain(&steps).0.unwrap();
        assert_eq!(o.outcome, Outcome::SbatRevoked);
        assert_eq!(lines(&o), [REVOKED]);
    }

    #[test]
    fn nothing_decisive_is_an_error_not_a_refusal() {
        for steps in [
            vec![Serial(900, STARTING), Serial(1500, GRUB)],
            vec![Serial(1500, GRUB), Serial(9000, LINUX), Serial(9500, PANIC)],
            vec![],
        ] {
            let r = chain(&steps).0;
            assert!(
                !matches!(&r, Ok(o) if o.outcome != Outcome::NoBoot),
                "{steps:?}: {r:?}"
            );
        }
    }
}
