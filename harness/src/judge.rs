//! Judgement: observation against expectation, pure.
//!
//! A firmware that did the wrong thing is `fail`; a cell the harness or QEMU could not bring to
//! a decision is `error` (never `fail`, never `pass`); a known, referenced deviation is
//! `known-deviation`, and a recorded deviation that did not happen fails as stale.

use std::fmt;

use serde::Serialize;

use crate::observe::{loaded_by_load_image, Decision, ProbeReport};
use crate::scenario::{Check, Expectation, KnownDeviation, Outcome, Rule, Scenarios, Tweak};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum VerdictKind {
    Pass,
    Fail,
    KnownDeviation,
    Skip,
    Error,
}

impl VerdictKind {
    pub const ALL: [VerdictKind; 5] = [
        VerdictKind::Pass,
        VerdictKind::Fail,
        VerdictKind::KnownDeviation,
        VerdictKind::Skip,
        VerdictKind::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VerdictKind::Pass => "pass",
            VerdictKind::Fail => "fail",
            VerdictKind::KnownDeviation => "known-deviation",
            VerdictKind::Skip => "skip",
            VerdictKind::Error => "error",
        }
    }
}

impl fmt::Display for VerdictKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub kind: VerdictKind,
    pub reason: String,
    /// The deviation entry that explains (or, when stale, no longer explains) this cell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deviation: Option<KnownDeviation>,
    /// What the firmware did, when the cell got that far; reports show it as it was judged.
    #[serde(skip)]
    pub observation: Option<Observation>,
}

impl Verdict {
    pub fn new(kind: VerdictKind, reason: impl Into<String>) -> Verdict {
        Verdict {
            kind,
            reason: reason.into(),
            deviation: None,
            observation: None,
        }
    }
}

/// How a boot ended, as far as judgement cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootEnd {
    /// A decisive console line was seen.
    Decided(Decision),
    /// Something outside the firmware's control went wrong (QEMU died, deadline, I/O).
    Broken(String),
}

/// What the firmware did, as the decisive console event tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub outcome: Outcome,
    /// What the guest reported for Secure Boot (probe variable or kernel line), if anything.
    pub secure_boot: Option<u8>,
    pub setup_mode: Option<u8>,
    /// In words, for reasons: `ran (SecureBoot=1 SetupMode=0)`.
    pub description: String,
}

/// Reads the outcome off the decisive event, or says why the event cannot decide this check
/// (an error of the cell's set-up, never a verdict on the firmware).
pub fn observe(check: Check, decision: &Decision) -> Result<Observation, String> {
    let obs = |outcome, secure_boot, setup_mode, description: String| Observation {
        outcome,
        secure_boot,
        setup_mode,
        description,
    };
    match (check, decision) {
        (Check::SecureBoot, Decision::ProbeRan { report }) => Ok(obs(
            Outcome::Runs,
            report.secure_boot,
            report.setup_mode,
            format!("ran ({})", summary(report)),
        )),
        (Check::SecureBoot, Decision::ProbeRefused { boot_option, line }) => {
            let status = line.rsplit(": ").next().unwrap_or("refused");
            Ok(obs(
                Outcome::Refused,
                None,
                None,
                format!("was refused ({boot_option}: {status})"),
            ))
        }
        (Check::OptionRom, Decision::OptionRomDispatched { marker, report }) => Ok(obs(
            if marker.is_some() {
                Outcome::Executed
            } else {
                Outcome::NotExecuted
            },
            report.secure_boot,
            report.setup_mode,
            format!(
                "{} by the time the probe reported ({})",
                if marker.is_some() {
                    "ran"
                } else {
                    "had not run"
                },
                summary(report)
            ),
        )),
        (Check::OptionRom, Decision::ProbeRefused { line, .. }) => Err(format!(
            "the probe signed with the test db key was refused ({line}), so whether the option \
             ROM ran cannot be told: the cell's varstore does not trust the test key"
        )),
        (Check::KernelBoot, Decision::KernelRefused { line }) => Ok(obs(
            Outcome::Refused,
            None,
            None,
            format!("was not started ({line})"),
        )),
        (
            Check::KernelBoot,
            Decision::KernelStarted {
                secure_boot,
                legacy_warning,
                command_line,
                ..
            },
        ) => {
            let sb = secure_boot.map(u8::from);
            let sb_text = match secure_boot {
                Some(true) => "Secure Boot enabled",
                Some(false) => "Secure Boot disabled",
                None => "no secureboot: line",
            };
            let Some(command_line) = command_line else {
                return Err(
                    "the kernel started but printed no `Command line:`, so how the firmware \
                     loaded it cannot be told"
                        .into(),
                );
            };
            let (outcome, how) = match (
                legacy_warning,
                secure_boot,
                loaded_by_load_image(command_line),
            ) {
                (Some(_), _, _) => (
                    Outcome::LegacyWarned,
                    "booted through the legacy loader, with OVMF's warning",
                ),
                (None, Some(true), true) => (
                    Outcome::Verified,
                    "booted through LoadImage, which verified its signature",
                ),
                (None, Some(true), false) => (
                    Outcome::LegacySilent,
                    "booted through the legacy loader (no initrd=initrd on its command line) \
                     under Secure Boot, and the firmware said nothing",
                ),
                (None, _, _) => (Outcome::Booted, "booted"),
            };
            Ok(obs(outcome, sb, None, format!("{how} ({sb_text})")))
        }
        (_, Decision::NothingBootable { .. }) => Err(
            "the firmware found nothing bootable and never tried the probe (is the ESP attached?)"
                .into(),
        ),
        (check, other) => Err(format!(
            "the console event {other:?} cannot decide a {check} cell (harness bug)"
        )),
    }
}

/// Judges one cell. `executable_sha256` identifies the firmware build for known deviations.
pub fn judge(
    check: Check,
    tweak: Tweak,
    rule: &Rule,
    end: &BootEnd,
    executable_sha256: Option<&str>,
    scenarios: &Scenarios,
) -> Verdict {
    let decision = match end {
        BootEnd::Broken(why) => return Verdict::new(VerdictKind::Error, why.clone()),
        BootEnd::Decided(d) => d,
    };
    let observation = match observe(check, decision) {
        Ok(o) => o,
        Err(why) => return Verdict::new(VerdictKind::Error, why),
    };
    let outcome = observation.outcome;
    let mismatch = compare(check, &rule.expect, &observation);
    let deviation =
        executable_sha256.and_then(|sha| scenarios.deviation_for(check, &rule.id, sha, tweak));
    let what = subject(check);
    let verdict = match (mismatch, deviation) {
        (None, None) => Verdict::new(
            VerdictKind::Pass,
            format!(
                "{what} {} as expected: {}",
                observation.description, rule.because
            ),
        ),
        (Some(why), None) => Verdict::new(
            VerdictKind::Fail,
            format!("{why} (rule {}: {})", rule.id, rule.because),
        ),
        (Some(why), Some(dev)) if dev.observed == outcome => Verdict {
            deviation: Some(dev.clone()),
            ..Verdict::new(
                VerdictKind::KnownDeviation,
                format!("{why}: known deviation {}: {} [{}]", dev.id, dev.reason, dev.reference),
            )
        },
        (Some(why), Some(dev)) => Verdict {
            deviation: Some(dev.clone()),
            ..Verdict::new(
                VerdictKind::Fail,
                format!(
                    "{why}; known deviation {} expects {} instead",
                    dev.id, dev.observed
                ),
            )
        },
        (None, Some(dev)) => Verdict {
            deviation: Some(dev.clone()),
            ..Verdict::new(
                VerdictKind::Fail,
                format!(
                    "stale-deviation: {} is recorded for this build ({}) but the firmware now behaves as rule {} expects; remove the entry",
                    dev.id, dev.reference, rule.id
                ),
            )
        },
    };
    Verdict {
        observation: Some(observation),
        ..verdict
    }
}

/// What the check's payload is called in reasons.
fn subject(check: Check) -> &'static str {
    match check {
        Check::SecureBoot => "the probe",
        Check::OptionRom => "the option ROM",
        Check::KernelBoot => "the kernel",
    }
}

/// Why the observation does not meet the expectation, or None when it does.
fn compare(check: Check, expect: &Expectation, observation: &Observation) -> Option<String> {
    if !expect.payload.admits(observation.outcome) {
        let expected = match expect.payload.0.as_slice() {
            [one] => expected_words(*one).to_string(),
            _ => format!("to end as one of {}", expect.payload),
        };
        return Some(format!(
            "expected {} {expected}, but it {} [{}]",
            subject(check),
            observation.description,
            observation.outcome
        ));
    }
    let checks = [
        ("SecureBoot", expect.secure_boot, observation.secure_boot),
        ("SetupMode", expect.setup_mode, observation.setup_mode),
    ];
    checks
        .iter()
        .filter_map(|(name, want, saw)| match (want, saw) {
            (Some(w), Some(s)) if w != s => Some(format!("expected {name}={w}, the guest saw {s}")),
            // UEFI: no SecureBoot variable means the platform has no Secure Boot, i.e. off.
            (Some(0), None) if *name == "SecureBoot" => None,
            (Some(w), None) => Some(format!("expected {name}={w}, the guest reported none")),
            _ => None,
        })
        .reduce(|a, b| format!("{a}; {b}"))
}

fn expected_words(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Runs => "to run",
        Outcome::Refused => "to be refused",
        Outcome::Executed => "to run",
        Outcome::NotExecuted => "not to run",
        Outcome::Verified => "to boot verified",
        Outcome::LegacyWarned => "to boot through the legacy loader with a warning",
        Outcome::LegacySilent => "to boot through the silent legacy-loader fallback",
        Outcome::Booted => "to boot with Secure Boot off",
    }
}

/// `SecureBoot=1 SetupMode=0` with `-` for absent variables.
pub fn summary(report: &ProbeReport) -> String {
    let v = |x: Option<u8>| x.map_or("-".to_string(), |v| v.to_string());
    format!(
        "SecureBoot={} SetupMode={}",
        v(report.secure_boot),
        v(report.setup_mode)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Condition, KnownDeviation};
    use rstest::rstest;

    fn rule(expect: Outcome, secure_boot: Option<u8>) -> Rule {
        Rule {
            id: "r1".into(),
            when: Condition::default(),
            expect: Expectation {
                payload: crate::scenario::Outcomes::one(expect),
                secure_boot,
                setup_mode: None,
            },
            because: "because".into(),
        }
    }

    fn ran(secure_boot: u8) -> BootEnd {
        BootEnd::Decided(Decision::ProbeRan {
            report: ProbeReport::sample(secure_boot),
        })
    }

    fn refused() -> BootEnd {
        BootEnd::Decided(Decision::ProbeRefused {
            boot_option: "Boot0001 \"UEFI QEMU HARDDISK QM00001\"".into(),
            line: "BdsDxe: failed to load Boot0001 ...: Access Denied".into(),
        })
    }

    fn deviation(observed: Outcome) -> Scenarios {
        Scenarios {
            rules: vec![(Check::SecureBoot, rule(Outcome::Refused, None))],
            deviations: vec![KnownDeviation {
                id: "dev1".into(),
                check: Check::SecureBoot,
                rule: "r1".into(),
                executable_sha256: "abc".into(),
                package: String::new(),
                tweak: None,
                observed,
                reason: "documented".into(),
                reference: "CVE-0000-0000".into(),
            }],
            origin: "test".into(),
            ..Scenarios::default()
        }
    }

    fn verdict(r: &Rule, end: &BootEnd, sha: Option<&str>, s: &Scenarios) -> VerdictKind {
        judge(Check::SecureBoot, Tweak::None, r, end, sha, s).kind
    }

    #[test]
    fn signed_probe_running_with_secure_boot_passes() {
        let r = rule(Outcome::Runs, Some(1));
        assert_eq!(
            verdict(&r, &ran(1), None, &Scenarios::default()),
            VerdictKind::Pass
        );
    }

    #[test]
    fn probe_running_with_secure_boot_off_fails() {
        let r = rule(Outcome::Runs, Some(1));
        let v = judge(
            Check::SecureBoot,
            Tweak::None,
            &r,
            &ran(0),
            None,
            &Scenarios::default(),
        );
        assert_eq!(v.kind, VerdictKind::Fail);
        assert!(
            v.reason.contains("expected SecureBoot=1, the guest saw 0"),
            "{}",
            v.reason
        );
    }

    #[test]
    fn unsigned_probe_running_fails() {
        let r = rule(Outcome::Refused, None);
        assert_eq!(
            verdict(&r, &ran(1), None, &Scenarios::default()),
            VerdictKind::Fail
        );
    }

    #[test]
    fn refusal_passes_when_expected() {
        let r = rule(Outcome::Refused, None);
        assert_eq!(
            verdict(&r, &refused(), None, &Scenarios::default()),
            VerdictKind::Pass
        );
    }

    #[test]
    fn broken_boot_is_error_never_fail() {
        let r = rule(Outcome::Refused, None);
        let end = BootEnd::Broken("QEMU exited with status 1: could not open".into());
        assert_eq!(
            verdict(&r, &end, None, &Scenarios::default()),
            VerdictKind::Error
        );
    }

    #[test]
    fn nothing_bootable_is_error() {
        let r = rule(Outcome::Refused, None);
        let end = BootEnd::Decided(Decision::NothingBootable {
            line: "BdsDxe: No bootable option or device was found.".into(),
        });
        assert_eq!(
            verdict(&r, &end, None, &Scenarios::default()),
            VerdictKind::Error
        );
    }

    #[test]
    fn recorded_deviation_is_known_deviation() {
        let s = deviation(Outcome::Runs);
        let r = s.rules[0].1.clone();
        let v = judge(Check::SecureBoot, Tweak::None, &r, &ran(1), Some("ABC"), &s);
        assert_eq!(v.kind, VerdictKind::KnownDeviation);
        assert!(v.reason.contains("CVE-0000-0000"), "{}", v.reason);
    }

    #[test]
    fn deviation_of_another_build_does_not_apply() {
        let s = deviation(Outcome::Runs);
        let r = s.rules[0].1.clone();
        assert_eq!(verdict(&r, &ran(1), Some("other"), &s), VerdictKind::Fail);
    }

    #[test]
    fn deviation_that_no_longer_happens_is_stale() {
        let s = deviation(Outcome::Runs);
        let r = s.rules[0].1.clone();
        let v = judge(
            Check::SecureBoot,
            Tweak::None,
            &r,
            &refused(),
            Some("abc"),
            &s,
        );
        assert_eq!(v.kind, VerdictKind::Fail);
        assert!(v.reason.starts_with("stale-deviation"), "{}", v.reason);
    }

    fn oprom(marker: bool) -> BootEnd {
        BootEnd::Decided(Decision::OptionRomDispatched {
            marker: marker.then(|| "BOOTMATRIX-OPROM v=1 loaded".to_string()),
            report: ProbeReport::sample(1),
        })
    }

    #[rstest]
    #[case::rom_ran_as_expected(true, Outcome::Executed, VerdictKind::Pass)]
    #[case::rom_rejected_as_expected(false, Outcome::NotExecuted, VerdictKind::Pass)]
    #[case::unsigned_rom_ran(true, Outcome::NotExecuted, VerdictKind::Fail)]
    #[case::signed_rom_did_not_run(false, Outcome::Executed, VerdictKind::Fail)]
    fn option_rom_verdicts(
        #[case] marker: bool,
        #[case] expect: Outcome,
        #[case] kind: VerdictKind,
    ) {
        let r = rule(expect, Some(1));
        let v = judge(
            Check::OptionRom,
            Tweak::None,
            &r,
            &oprom(marker),
            None,
            &Scenarios::default(),
        );
        assert_eq!(v.kind, kind, "{}", v.reason);
    }

    #[test]
    fn option_rom_cell_whose_probe_was_refused_is_an_error() {
        let r = rule(Outcome::NotExecuted, None);
        let v = judge(
            Check::OptionRom,
            Tweak::None,
            &r,
            &refused(),
            None,
            &Scenarios::default(),
        );
        assert_eq!(v.kind, VerdictKind::Error);
        assert!(
            v.reason.contains("does not trust the test key"),
            "{}",
            v.reason
        );
    }

    const LOAD_IMAGE: &str = "initrd=initrd console=ttyS0 panic=-1";
    const LEGACY: &str = "console=ttyS0 panic=-1";

    fn started_with(secure_boot: Option<bool>, warned: bool, command_line: &str) -> Decision {
        Decision::KernelStarted {
            linux_version: "Linux version 6.1.0-28-amd64".into(),
            secure_boot,
            legacy_warning: warned.then(|| {
                "OVMF: Using legacy linux kernel loader (insecure and deprecated).".into()
            }),
            command_line: Some(command_line.into()),
            line: "secureboot: Secure boot enabled".into(),
        }
    }

    /// Booted by the legacy loader (no `initrd=initrd`), warned or not.
    fn started(secure_boot: Option<bool>, warned: bool) -> Decision {
        started_with(secure_boot, warned, LEGACY)
    }

    #[rstest]
    #[case::load_image_under_secure_boot(
        started_with(Some(true), false, LOAD_IMAGE),
        Outcome::Verified
    )]
    #[case::legacy_loader_silently(started(Some(true), false), Outcome::LegacySilent)]
    #[case::legacy_loader_warned(started(Some(true), true), Outcome::LegacyWarned)]
    #[case::no_secure_boot(started(Some(false), false), Outcome::Booted)]
    #[case::no_secure_boot_load_image(
        started_with(Some(false), false, LOAD_IMAGE),
        Outcome::Booted
    )]
    #[case::no_secureboot_line(started(None, false), Outcome::Booted)]
    #[case::refused(Decision::KernelRefused { line: "OVMF: Fallback to insecure legacy linux kernel loader is disabled.".into() }, Outcome::Refused)]
    fn kernel_outcomes(#[case] decision: Decision, #[case] outcome: Outcome) {
        let o = observe(Check::KernelBoot, &decision).unwrap();
        assert_eq!(o.outcome, outcome, "{}", o.description);
    }

    #[test]
    fn kernel_without_a_command_line_is_undecidable() {
        let decision = Decision::KernelStarted {
            linux_version: "Linux version 6.1".into(),
            secure_boot: Some(true),
            legacy_warning: None,
            command_line: None,
            line: "secureboot: Secure boot enabled".into(),
        };
        let err = observe(Check::KernelBoot, &decision).unwrap_err();
        assert!(err.contains("Command line"), "{err}");
    }

    #[test]
    fn absent_secure_boot_variable_reads_as_off() {
        let mut report = ProbeReport::sample(0);
        report.secure_boot = None;
        let end = BootEnd::Decided(Decision::ProbeRan { report });
        let r0 = rule(Outcome::Runs, Some(0));
        let r1 = rule(Outcome::Runs, Some(1));
        let s = Scenarios::default();
        assert_eq!(verdict(&r0, &end, None, &s), VerdictKind::Pass);
        assert_eq!(verdict(&r1, &end, None, &s), VerdictKind::Fail);
    }

    #[test]
    fn silent_fallback_under_strict_is_a_failure_naming_the_outcome() {
        let r = rule(Outcome::Refused, None);
        let end = BootEnd::Decided(started(Some(true), false));
        let v = judge(
            Check::KernelBoot,
            Tweak::None,
            &r,
            &end,
            None,
            &Scenarios::default(),
        );
        assert_eq!(v.kind, VerdictKind::Fail);
        assert!(v.reason.contains("[legacy-silent]"), "{}", v.reason);
        assert!(
            v.reason.contains("expected the kernel to be refused"),
            "{}",
            v.reason
        );
    }

    #[test]
    fn kernel_deviation_is_known_and_goes_stale_when_fixed() {
        let mut s = deviation(Outcome::LegacySilent);
        s.rules[0].0 = Check::KernelBoot;
        s.deviations[0].check = Check::KernelBoot;
        let r = s.rules[0].1.clone();
        let booted = BootEnd::Decided(started(Some(true), false));
        let refused = BootEnd::Decided(Decision::KernelRefused {
            line: "BdsDxe: No bootable option or device was found.".into(),
        });
        let warned = BootEnd::Decided(started(Some(true), true));
        let kind = |end: &BootEnd| judge(Check::KernelBoot, Tweak::None, &r, end, Some("abc"), &s);
        assert_eq!(kind(&booted).kind, VerdictKind::KnownDeviation);
        let stale = kind(&refused);
        assert_eq!(stale.kind, VerdictKind::Fail);
        assert!(
            stale.reason.starts_with("stale-deviation"),
            "{}",
            stale.reason
        );
        // A different misbehaviour than the one recorded is a plain failure.
        let other = kind(&warned);
        assert_eq!(other.kind, VerdictKind::Fail);
        assert!(
            other.reason.contains("expects legacy-silent instead"),
            "{}",
            other.reason
        );
    }

    #[test]
    fn deviation_scoped_to_a_tweak_leaves_the_other_tweaks_alone() {
        let mut s = deviation(Outcome::LegacyWarned);
        s.rules[0].0 = Check::KernelBoot;
        s.deviations[0].check = Check::KernelBoot;
        s.deviations[0].tweak = Some(Tweak::None);
        let r = s.rules[0].1.clone();
        let warned = BootEnd::Decided(started(Some(true), true));
        let refused = BootEnd::Decided(Decision::KernelRefused {
            line: "OVMF: Fallback to insecure legacy linux kernel loader is disabled.".into(),
        });
        let kind =
            |tweak, end: &BootEnd| judge(Check::KernelBoot, tweak, &r, end, Some("abc"), &s).kind;
        assert_eq!(kind(Tweak::None, &warned), VerdictKind::KnownDeviation);
        // The switch works on this build: its cell passes, and the entry is not stale for it.
        assert_eq!(kind(Tweak::NoLegacyLoader, &refused), VerdictKind::Pass);
        assert_eq!(kind(Tweak::None, &refused), VerdictKind::Fail);
    }
}
