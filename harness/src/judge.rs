//! Judgement: observation against expectation, pure.
//!
//! A firmware that did the wrong thing is `fail`; a cell the harness or QEMU could not bring to
//! a decision is `error` (never `fail`, never `pass`); a known, referenced deviation is
//! `known-deviation`, and a recorded deviation that did not happen fails as stale.

use std::fmt;

use serde::Serialize;

use crate::observe::{Decision, ProbeReport};
use crate::scenario::{Check, Expectation, KnownDeviation, PayloadOutcome, Rule, Scenarios};

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
}

impl Verdict {
    pub fn new(kind: VerdictKind, reason: impl Into<String>) -> Verdict {
        Verdict {
            kind,
            reason: reason.into(),
            deviation: None,
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

/// Judges one cell. `executable_sha256` identifies the firmware build for known deviations.
pub fn judge(
    check: Check,
    rule: &Rule,
    end: &BootEnd,
    executable_sha256: Option<&str>,
    scenarios: &Scenarios,
) -> Verdict {
    let decision = match end {
        BootEnd::Broken(why) => return Verdict::new(VerdictKind::Error, why.clone()),
        BootEnd::Decided(d) => d,
    };
    let Some(outcome) = decision.payload_outcome() else {
        return Verdict::new(
            VerdictKind::Error,
            "the firmware found nothing bootable and never tried the probe (is the ESP attached?)",
        );
    };
    let mismatch = compare(&rule.expect, outcome, decision);
    let deviation = executable_sha256.and_then(|sha| scenarios.deviation_for(check, &rule.id, sha));
    match (mismatch, deviation) {
        (None, None) => Verdict::new(
            VerdictKind::Pass,
            format!("{} as expected: {}", describe(decision), rule.because),
        ),
        (Some(why), None) => Verdict::new(
            VerdictKind::Fail,
            format!("{why} (rule {}: {})", rule.id, rule.because),
        ),
        (Some(why), Some(dev)) if dev.observed == outcome => Verdict {
            kind: VerdictKind::KnownDeviation,
            reason: format!("{why}: known deviation {}: {} [{}]", dev.id, dev.reason, dev.reference),
            deviation: Some(dev.clone()),
        },
        (Some(why), Some(dev)) => Verdict {
            kind: VerdictKind::Fail,
            reason: format!(
                "{why}; known deviation {} expects the payload {} instead",
                dev.id, dev.observed
            ),
            deviation: Some(dev.clone()),
        },
        (None, Some(dev)) => Verdict {
            kind: VerdictKind::Fail,
            reason: format!(
                "stale-deviation: {} is recorded for this build ({}) but the firmware now behaves as rule {} expects; remove the entry",
                dev.id, dev.reference, rule.id
            ),
            deviation: Some(dev.clone()),
        },
    }
}

/// Why the observation does not meet the expectation, or None when it does.
fn compare(expect: &Expectation, outcome: PayloadOutcome, decision: &Decision) -> Option<String> {
    if expect.payload != outcome {
        return Some(format!(
            "expected the probe to be {}, but it {}",
            match expect.payload {
                PayloadOutcome::Runs => "run",
                PayloadOutcome::Refused => "refused",
            },
            describe(decision)
        ));
    }
    let Decision::ProbeRan { report } = decision else {
        return None;
    };
    let checks = [
        ("SecureBoot", expect.secure_boot, report.secure_boot),
        ("SetupMode", expect.setup_mode, report.setup_mode),
    ];
    checks
        .iter()
        .filter_map(|(name, want, saw)| match (want, saw) {
            (Some(w), Some(s)) if w != s => Some(format!("expected {name}={w}, the guest saw {s}")),
            (Some(w), None) => Some(format!(
                "expected {name}={w}, the guest has no {name} variable"
            )),
            _ => None,
        })
        .reduce(|a, b| format!("{a}; {b}"))
}

fn describe(decision: &Decision) -> String {
    match decision {
        Decision::ProbeRan { report } => format!("ran ({})", summary(report)),
        Decision::ProbeRefused { boot_option, line } => {
            let status = line.rsplit(": ").next().unwrap_or("refused");
            format!("was refused ({boot_option}: {status})")
        }
        Decision::NothingBootable { .. } => "was never tried".into(),
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

    fn rule(expect: PayloadOutcome, secure_boot: Option<u8>) -> Rule {
        Rule {
            id: "r1".into(),
            when: Condition::default(),
            expect: Expectation {
                payload: expect,
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

    fn deviation(observed: PayloadOutcome) -> Scenarios {
        Scenarios {
            rules: vec![(Check::SecureBoot, rule(PayloadOutcome::Refused, None))],
            deviations: vec![KnownDeviation {
                id: "dev1".into(),
                check: Check::SecureBoot,
                rule: "r1".into(),
                executable_sha256: "abc".into(),
                package: String::new(),
                observed,
                reason: "documented".into(),
                reference: "CVE-0000-0000".into(),
            }],
            origin: "test".into(),
        }
    }

    fn verdict(r: &Rule, end: &BootEnd, sha: Option<&str>, s: &Scenarios) -> VerdictKind {
        judge(Check::SecureBoot, r, end, sha, s).kind
    }

    #[test]
    fn signed_probe_running_with_secure_boot_passes() {
        let r = rule(PayloadOutcome::Runs, Some(1));
        assert_eq!(
            verdict(&r, &ran(1), None, &Scenarios::default()),
            VerdictKind::Pass
        );
    }

    #[test]
    fn probe_running_with_secure_boot_off_fails() {
        let r = rule(PayloadOutcome::Runs, Some(1));
        let v = judge(Check::SecureBoot, &r, &ran(0), None, &Scenarios::default());
        assert_eq!(v.kind, VerdictKind::Fail);
        assert!(
            v.reason.contains("expected SecureBoot=1, the guest saw 0"),
            "{}",
            v.reason
        );
    }

    #[test]
    fn unsigned_probe_running_fails() {
        let r = rule(PayloadOutcome::Refused, None);
        assert_eq!(
            verdict(&r, &ran(1), None, &Scenarios::default()),
            VerdictKind::Fail
        );
    }

    #[test]
    fn refusal_passes_when_expected() {
        let r = rule(PayloadOutcome::Refused, None);
        assert_eq!(
            verdict(&r, &refused(), None, &Scenarios::default()),
            VerdictKind::Pass
        );
    }

    #[test]
    fn broken_boot_is_error_never_fail() {
        let r = rule(PayloadOutcome::Refused, None);
        let end = BootEnd::Broken("QEMU exited with status 1: could not open".into());
        assert_eq!(
            verdict(&r, &end, None, &Scenarios::default()),
            VerdictKind::Error
        );
    }

    #[test]
    fn nothing_bootable_is_error() {
        let r = rule(PayloadOutcome::Refused, None);
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
        let s = deviation(PayloadOutcome::Runs);
        let r = s.rules[0].1.clone();
        let v = judge(Check::SecureBoot, &r, &ran(1), Some("ABC"), &s);
        assert_eq!(v.kind, VerdictKind::KnownDeviation);
        assert!(v.reason.contains("CVE-0000-0000"), "{}", v.reason);
    }

    #[test]
    fn deviation_of_another_build_does_not_apply() {
        let s = deviation(PayloadOutcome::Runs);
        let r = s.rules[0].1.clone();
        assert_eq!(verdict(&r, &ran(1), Some("other"), &s), VerdictKind::Fail);
    }

    #[test]
    fn deviation_that_no_longer_happens_is_stale() {
        let s = deviation(PayloadOutcome::Runs);
        let r = s.rules[0].1.clone();
        let v = judge(Check::SecureBoot, &r, &refused(), Some("abc"), &s);
        assert_eq!(v.kind, VerdictKind::Fail);
        assert!(v.reason.starts_with("stale-deviation"), "{}", v.reason);
    }
}
