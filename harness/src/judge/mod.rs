//! Judgement: observation against expectation, pure.
//!
//! A firmware that did the wrong thing is `fail`; a cell the harness or QEMU could not bring to
//! a decision is `error` (never `fail`, never `pass`); a known, referenced deviation is
//! `known-deviation` when it matches the whole observation it was recorded for, and a recorded
//! deviation that did not happen fails as stale. A value the rule asks for that the guest could
//! not read is an error, and absence is read as a value only where UEFI defines it.

pub mod keyhealth;
mod noboot;

use serde::{Deserialize, Serialize};
use strum::{Display, IntoStaticStr, VariantArray};

use crate::discover::host::Accel;
use crate::discover::qemu::Version;
use crate::discover::release::Edk2Release;
use crate::matrix::{Check, Outcome, Tweak};
use crate::observe::evidence::{Evidence, Observation, Reading, Undecided};
use crate::scenario::{Expectation, KnownDeviation, Rule, Scenarios};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    PartialOrd,
    Ord,
    IntoStaticStr,
    Display,
    VariantArray,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum VerdictKind {
    Pass,
    Fail,
    KnownDeviation,
    Skip,
    Error,
}

impl VerdictKind {
    /// Every kind, in the order reports count them.
    pub const ALL: &'static [VerdictKind] = <VerdictKind as VariantArray>::VARIANTS;

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A cell's verdict. `pass`, `fail` and `known-deviation` can only be made by [`judge`] from an
/// [`Observation`], which cannot exist without an evidence line; `skip` and `error` carry their
/// reason (and an error whatever lines its boot did show).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    kind: VerdictKind,
    reason: String,
    deviation: Option<KnownDeviation>,
    observation: Option<Observation>,
    /// The lines an undecided boot did show.
    seen: Vec<Evidence>,
}

impl Verdict {
    /// A cell that does not run here, and why.
    pub fn skip(reason: impl Into<String>) -> Verdict {
        Verdict::unjudged(VerdictKind::Skip, reason, Vec::new(), None)
    }

    /// A cell the harness could not bring to a decision, and why.
    pub fn error(reason: impl Into<String>) -> Verdict {
        Verdict::unjudged(VerdictKind::Error, reason, Vec::new(), None)
    }

    fn unjudged(
        kind: VerdictKind,
        reason: impl Into<String>,
        seen: Vec<Evidence>,
        observation: Option<Observation>,
    ) -> Verdict {
        Verdict {
            kind,
            reason: reason.into(),
            deviation: None,
            observation,
            seen,
        }
    }

    fn judged(
        kind: VerdictKind,
        reason: String,
        observation: Observation,
        deviation: Option<&KnownDeviation>,
    ) -> Verdict {
        Verdict {
            kind,
            reason,
            deviation: deviation.cloned(),
            observation: Some(observation),
            seen: Vec::new(),
        }
    }

    pub fn kind(&self) -> VerdictKind {
        self.kind
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The deviation entry that explains (or, when stale, no longer explains) this cell.
    pub fn deviation(&self) -> Option<&KnownDeviation> {
        self.deviation.as_ref()
    }

    /// What the firmware did, when the consoles showed it; reports show it as it was judged.
    pub fn observation(&self) -> Option<&Observation> {
        self.observation.as_ref()
    }

    /// The console lines the verdict rests on (for an error: what its boot did show).
    pub fn evidence(&self) -> &[Evidence] {
        match &self.observation {
            Some(o) => o.evidence.lines(),
            None => &self.seen,
        }
    }
}

/// What the judge needs to know of a cell besides its rule.
#[derive(Debug, Clone, Copy)]
pub struct Case<'a> {
    pub check: Check,
    pub tweak: Tweak,
    pub qemu: Version,
    /// Identifies the firmware build for known deviations.
    pub executable_sha256: Option<&'a str>,
    /// Whether the descriptor declares Secure Boot support.
    pub secure_boot_support: bool,
    /// The descriptor's name, for reasons.
    pub build: &'a str,
    /// The concrete machine type the cell ran on (`pc-q35-7.2`).
    pub machine: &'a str,
    /// The descriptor's machine globs for x86_64 (`targets[].machines`): where it promises to
    /// boot.
    pub machine_globs: &'a [String],
    /// The firmware's edk2 release, when known, and the accelerator the cell ran under: for
    /// the known causes of a firmware that stops before its boot manager.
    pub edk2: Option<Edk2Release>,
    pub accel: Accel,
}

/// Judges one cell: what the consoles showed (or why they showed nothing decisive) against
/// its rule and the known deviations.
pub fn judge(
    case: &Case,
    rule: &Rule,
    observed: Result<Observation, Undecided>,
    scenarios: &Scenarios,
) -> Verdict {
    let observation = match observed {
        Ok(o) => o,
        Err(undecided) => {
            return Verdict::unjudged(
                VerdictKind::Error,
                undecided.reason,
                undecided.evidence,
                None,
            )
        }
    };
    let what = subject(case.check);
    // as-bios: a firmware that does not boot under -bios is an answer its rules may expect.
    if observation.outcome == Outcome::NoBoot && case.check != Check::AsBios {
        return noboot::judge_no_boot(case, rule, observation, scenarios);
    }
    if observation.outcome == Outcome::NothingBootable {
        let reason = format!(
            "{what} {}: it was never handed over, so this says nothing of the firmware's policy",
            observation.description
        );
        return Verdict::unjudged(VerdictKind::Error, reason, Vec::new(), Some(observation));
    }
    if observation.outcome == Outcome::Started && rule.expect.payload.0.iter().any(|o| started(*o))
    {
        let reason = format!(
            "{what} {}; rule {} expects it to end as {}, and which one cannot be told",
            observation.description, rule.id, rule.expect.payload
        );
        return Verdict::unjudged(VerdictKind::Error, reason, Vec::new(), Some(observation));
    }
    let fields = compare_fields(case, rule, &observation);
    let applicable = case
        .executable_sha256
        .map(|sha| scenarios.deviations_for(case.check, &rule.id, sha, case.tweak, case.qemu))
        .unwrap_or_default();
    let matching = applicable
        .iter()
        .copied()
        .find(|d| deviation_matches(d, &observation));
    let mut notes = fields.notes;
    notes.extend(observation.contradiction.clone());
    let notes = if notes.is_empty() {
        String::new()
    } else {
        format!(" [note: {}]", notes.join("; "))
    };
    let rule_text = format!("rule {}: {}", rule.id, rule.because);
    let unknown = fields.unknown.join("; ");
    let problems = fields.problems.join("; ");

    if rule.expect.payload.admits(observation.outcome) {
        let (kind, reason, deviation) = if !fields.unknown.is_empty() {
            return Verdict::unjudged(
                VerdictKind::Error,
                format!("{what} {}, but {unknown}", observation.description),
                Vec::new(),
                Some(observation),
            );
        } else if !fields.problems.is_empty() {
            (
                VerdictKind::Fail,
                format!("{problems} ({rule_text}){notes}"),
                None,
            )
        } else if let Some(dev) = applicable.first() {
            (
                VerdictKind::Fail,
                format!(
                    "stale-deviation: {} is recorded for this build ({}) but the firmware now \
                     behaves as rule {} expects; remove the entry{notes}",
                    dev.id, dev.reference, rule.id
                ),
                Some(*dev),
            )
        } else {
            (
                VerdictKind::Pass,
                format!(
                    "{what} {} as expected: {}{notes}",
                    observation.description, rule.because
                ),
                None,
            )
        };
        return Verdict::judged(kind, reason, observation, deviation);
    }

    let why = outcome_mismatch(case.check, &rule.expect, &observation);
    match matching {
        Some(dev) if !fields.unknown.is_empty() => Verdict {
            deviation: Some(dev.clone()),
            ..Verdict::unjudged(
                VerdictKind::Error,
                format!(
                    "{why}, as known deviation {} records, but {unknown}",
                    dev.id
                ),
                Vec::new(),
                Some(observation),
            )
        },
        Some(dev) if !fields.problems.is_empty() => Verdict::judged(
            VerdictKind::Fail,
            format!(
                "{why}, as known deviation {} records, but also {problems} ({rule_text}){notes}",
                dev.id
            ),
            observation,
            Some(dev),
        ),
        Some(dev) => Verdict::judged(
            VerdictKind::KnownDeviation,
            format!(
                "{why}: known deviation {}: {} [{}]{notes}",
                dev.id, dev.reason, dev.reference
            ),
            observation,
            Some(dev),
        ),
        None => {
            let recorded = applicable
                .first()
                .map(|d| {
                    format!(
                        "; known deviation {} expects {} instead",
                        d.id,
                        deviation_words(d)
                    )
                })
                .unwrap_or_default();
            let deviation = applicable.first().copied();
            Verdict::judged(
                VerdictKind::Fail,
                format!("{why} ({rule_text}){recorded}{notes}"),
                observation,
                deviation,
            )
        }
    }
}

/// Whether an outcome says the payload started (as opposed to refused, never tried).
fn started(outcome: Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Verified
            | Outcome::LegacyWarned
            | Outcome::LegacySilent
            | Outcome::Booted
            | Outcome::Started
    )
}

/// A deviation excuses a cell only when it matches the whole observation it was recorded for:
/// the outcome and the SecureBoot value (an entry without one matches only an observation
/// without one).
fn deviation_matches(d: &KnownDeviation, o: &Observation) -> bool {
    d.observed == o.outcome && o.secure_boot.value() == d.secure_boot
}

fn deviation_words(d: &KnownDeviation) -> String {
    match d.secure_boot {
        Some(sb) => format!("{} with SecureBoot={sb}", d.observed),
        None => d.observed.to_string(),
    }
}

/// What the check's payload is called in reasons.
fn subject(check: Check) -> &'static str {
    match check {
        Check::SecureBoot => "the probe",
        Check::OptionRom => "the option ROM",
        Check::KernelBoot => "the kernel",
        Check::DistroChain => "the distro chain",
        Check::NoShell => "the UEFI shell",
        Check::KeyHealth => "the varstore's keys",
        Check::AsBios => "the payload under -bios",
    }
}

fn outcome_mismatch(check: Check, expect: &Expectation, observation: &Observation) -> String {
    let expected = match expect.payload.0.as_slice() {
        // as-bios: `booted` whatever the SecureBoot value (the rule's field judges that).
        [Outcome::Booted] if check == Check::AsBios => "to start".to_string(),
        [one] => expected_words(*one).to_string(),
        _ => format!("to end as one of {}", expect.payload),
    };
    format!(
        "expected {} {expected}, but it {} [{}]",
        subject(check),
        observation.description,
        observation.outcome
    )
}

/// The rule's field expectations against the guest's readings.
#[derive(Debug, Default)]
struct Fields {
    /// Values that differ from the rule's.
    problems: Vec<String>,
    /// Values the rule asks for that could not be read.
    unknown: Vec<String>,
    /// How an absent value was read.
    notes: Vec<String>,
}

/// Whether an outcome says no payload ran, so that there is nothing it could have read: a rule's
/// fields are what the guest reports "when the payload runs".
fn no_payload_ran(outcome: Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Refused
            | Outcome::QemuRefused
            | Outcome::NoBoot
            | Outcome::NothingBootable
            | Outcome::ShimRefused
            | Outcome::GrubRefused
            | Outcome::KernelRefused
            | Outcome::SbatRevoked
            | Outcome::ShellRefused
            | Outcome::ShellAbsent
    )
}

fn compare_fields(case: &Case, rule: &Rule, observation: &Observation) -> Fields {
    let mut fields = Fields::default();
    if no_payload_ran(observation.outcome) {
        return fields;
    }
    let checks = [
        (
            "SecureBoot",
            rule.expect.secure_boot,
            &observation.secure_boot,
        ),
        ("SetupMode", rule.expect.setup_mode, &observation.setup_mode),
    ];
    for (name, want, reading) in checks {
        let Some(want) = want else { continue };
        match reading {
            Reading::Value(saw) if *saw == want => {}
            Reading::Value(saw) => fields
                .problems
                .push(format!("expected {name}={want}, the guest saw {saw}")),
            // UEFI: a platform without Secure Boot support has no SecureBoot variable, which
            // means Secure Boot is off. Nowhere else is absence a value.
            Reading::Absent if name == "SecureBoot" && want == 0 && !case.secure_boot_support => {
                fields.notes.push(format!(
                    "SecureBoot does not exist; UEFI defines that as 0 on a platform without \
                     Secure Boot support, and {} declares none (rule {})",
                    case.build, rule.id
                ))
            }
            Reading::Absent => fields.problems.push(format!(
                "expected {name}={want}, but the variable does not exist"
            )),
            // The same build may not even be able to read it (the AmdSev build has no variable
            // store, and the probe prints `-`). That is not 0 either: the field is not judged,
            // and the payload's own line decides.
            Reading::Unknown(why)
                if name == "SecureBoot" && want == 0 && !case.secure_boot_support =>
            {
                fields.notes.push(format!(
                    "SecureBoot could not be read ({why}); {} declares no Secure Boot support, so \
                     rule {} is judged on the payload alone, without SecureBoot",
                    case.build, rule.id
                ))
            }
            Reading::Unknown(why) => fields.unknown.push(format!(
                "rule {} asks for {name}={want}, which is unknown: {why}",
                rule.id
            )),
        }
    }
    fields
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
        Outcome::QemuRefused => "not to be loaded by QEMU",
        Outcome::Started => "to start",
        Outcome::NothingBootable => "never to be tried",
        Outcome::NoBoot => "never to reach the boot manager",
        Outcome::ChainBooted => "to boot through shim and grub to the kernel",
        Outcome::ShimRefused => "to have shim refused by the firmware",
        Outcome::GrubRefused => "to have grub refused by shim",
        Outcome::KernelRefused => "to have the kernel refused by grub and shim",
        Outcome::SbatRevoked => "to be refused by shim's SBAT check",
        Outcome::ShellRefused => "to be refused by the boot manager",
        Outcome::ShellAbsent => "to have no boot option at all",
        Outcome::ShellReached => "to start",
        Outcome::KeysCurrent => "to be current",
        Outcome::KeysOutdated => "to be outdated",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::observe::script::*;
    use crate::scenario::{Condition, Outcomes, QemuRange};
    use rstest::rstest;

    pub(crate) fn rule(
        expect: &[Outcome],
        secure_boot: Option<u8>,
        setup_mode: Option<u8>,
    ) -> Rule {
        Rule {
            id: "r1".into(),
            when: Condition::default(),
            expect: Expectation {
                payload: Outcomes(expect.to_vec()),
                secure_boot,
                setup_mode,
            },
            because: "because".into(),
        }
    }

    pub(crate) fn case(check: Check) -> Case<'static> {
        Case {
            check,
            tweak: Tweak::None,
            qemu: Version::new(7, 2, 22),
            executable_sha256: Some("abc"),
            secure_boot_support: true,
            build: "50-edk2-x86_64-secure.json",
            machine: "pc-q35-7.2",
            machine_globs: &[],
            edk2: None,
            accel: Accel::Tcg,
        }
    }

    fn deviation(check: Check, observed: Outcome, secure_boot: Option<u8>) -> Scenarios {
        Scenarios {
            rules: vec![(check, rule(&[Outcome::Refused], None, None))],
            deviations: vec![KnownDeviation {
                id: "dev1".into(),
                check,
                rule: "r1".into(),
                executable_sha256: "ABC".into(),
                package: String::new(),
                tweak: None,
                qemu: None,
                observed,
                secure_boot,
                reason: "documented".into(),
                reference: "CVE-0000-0000".into(),
            }],
            origin: "test".into(),
            ..Scenarios::default()
        }
    }

    fn judged(c: &Case, r: &Rule, steps: &[Step], s: &Scenarios) -> Verdict {
        judge(c, r, observe(c.check, steps), s)
    }

    fn kind(c: &Case, r: &Rule, steps: &[Step], s: &Scenarios) -> VerdictKind {
        judged(c, r, steps, s).kind()
    }

    const RAN: &[Step] = &[Serial(4100, PROBE)];
    const REFUSED: &[Step] = &[Serial(4000, OWN_REFUSAL), Serial(4100, GAVE_UP)];
    const NOTHING: &[Step] = &[Serial(4000, SHELL_REFUSAL), Serial(4100, GAVE_UP)];

    #[test]
    fn signed_probe_running_with_secure_boot_passes_with_its_evidence() {
        let v = judged(
            &case(Check::SecureBoot),
            &rule(&[Outcome::Runs], Some(1), Some(0)),
            RAN,
            &Scenarios::default(),
        );
        assert_eq!(v.kind(), VerdictKind::Pass, "{}", v.reason());
        assert_eq!(v.evidence().len(), 1);
        assert_eq!(v.evidence()[0].line, PROBE);
        assert!(v.reason().contains("as expected"), "{}", v.reason());
        assert!(v.observation().is_some());
    }

    #[test]
    fn probe_running_with_secure_boot_off_fails() {
        let v = judged(
            &case(Check::SecureBoot),
            &rule(&[Outcome::Runs], Some(1), None),
            &[Serial(1, PROBE_SB0)],
            &Scenarios::default(),
        );
        assert_eq!(v.kind(), VerdictKind::Fail);
        assert!(
            v.reason()
                .contains("expected SecureBoot=1, the guest saw 0"),
            "{}",
            v.reason()
        );
    }

    #[test]
    fn unsigned_probe_running_fails_and_refusal_passes_when_expected() {
        let c = case(Check::SecureBoot);
        let refused = rule(&[Outcome::Refused], None, None);
        let s = Scenarios::default();
        assert_eq!(kind(&c, &refused, RAN, &s), VerdictKind::Fail);
        let v = judged(&c, &refused, REFUSED, &s);
        assert_eq!(v.kind(), VerdictKind::Pass);
        assert_eq!(v.evidence().len(), 2, "refusal and the end of attempts");
    }

    // Finding 3: refusal then payload is the payload.
    #[test]
    fn a_refusal_the_firmware_went_back_on_fails_an_expected_refusal() {
        let v = judged(
            &case(Check::SecureBoot),
            &rule(&[Outcome::Refused], None, None),
            &[Serial(4000, OWN_REFUSAL), Serial(4150, PROBE)],
            &Scenarios::default(),
        );
        assert_eq!(v.kind(), VerdictKind::Fail);
        assert!(
            v.reason().contains("and then the probe ran"),
            "{}",
            v.reason()
        );
    }

    #[test]
    fn undecided_boot_is_error_never_fail_and_keeps_what_it_saw() {
        let c = case(Check::SecureBoot);
        let r = rule(&[Outcome::Refused], None, None);
        let v = judge(
            &c,
            &r,
            Err(Undecided {
                reason: "QEMU exited (exit status: 1) before any decisive console line".into(),
                evidence: vec![],
            }),
            &Scenarios::default(),
        );
        assert_eq!(v.kind(), VerdictKind::Error);
        assert!(v.observation().is_none());
        // A refusal the boot ended on before the firmware gave up: error, with the line.
        let v = judge(
            &c,
            &r,
            run(
                Check::SecureBoot,
                &[Serial(4000, OWN_REFUSAL)],
                crate::boot::BootEnd::Failed("killed".into()),
            )
            .0,
            &Scenarios::default(),
        );
        assert_eq!(v.kind(), VerdictKind::Error);
        assert_eq!(v.evidence()[0].line, OWN_REFUSAL);
    }

    // Finding 1: never handed over is an error, whatever the rule expects.
    #[rstest]
    #[case::secure_boot(Check::SecureBoot)]
    #[case::kernel_boot(Check::KernelBoot)]
    fn nothing_bootable_is_error_with_its_line(#[case] check: Check) {
        let v = judged(
            &case(check),
            &rule(&[Outcome::Refused], None, None),
            NOTHING,
            &Scenarios::default(),
        );
        assert_eq!(v.kind(), VerdictKind::Error, "{}", v.reason());
        assert!(v.reason().contains("never handed over"), "{}", v.reason());
        assert_eq!(v.evidence()[0].line, GAVE_UP);
    }

    #[test]
    fn recorded_deviation_is_known_deviation() {
        let c = case(Check::SecureBoot);
        let s = deviation(Check::SecureBoot, Outcome::Runs, Some(1));
        let v = judged(&c, &s.rules[0].1, RAN, &s);
        assert_eq!(v.kind(), VerdictKind::KnownDeviation, "{}", v.reason());
        assert!(v.reason().contains("CVE-0000-0000"), "{}", v.reason());
        assert_eq!(v.deviation().unwrap().id, "dev1");
    }

    #[test]
    fn deviation_of_another_build_does_not_apply() {
        let s = deviation(Check::SecureBoot, Outcome::Runs, Some(1));
        let c = Case {
            executable_sha256: Some("other"),
            ..case(Check::SecureBoot)
        };
        let v = judged(&c, &s.rules[0].1, RAN, &s);
        assert_eq!(v.kind(), VerdictKind::Fail);
        assert!(v.deviation().is_none());
        let unknown_build = Case {
            executable_sha256: None,
            ..case(Check::SecureBoot)
        };
        assert_eq!(
            kind(&unknown_build, &s.rules[0].1, RAN, &s),
            VerdictKind::Fail
        );
    }

    #[test]
    fn deviation_that_no_longer_happens_is_stale() {
        let s = deviation(Check::SecureBoot, Outcome::Runs, Some(1));
        let v = judged(&case(Check::SecureBoot), &s.rules[0].1, REFUSED, &s);
        assert_eq!(v.kind(), VerdictKind::Fail);
        assert!(v.reason().starts_with("stale-deviation"), "{}", v.reason());
        assert_eq!(v.deviation().unwrap().id, "dev1");
    }

    // Finding 4: a deviation matches the whole observation.
    #[test]
    fn deviation_with_another_secure_boot_value_does_not_excuse() {
        let c = case(Check::OptionRom);
        let s = deviation(Check::OptionRom, Outcome::Executed, Some(1));
        let r = rule(&[Outcome::NotExecuted], Some(1), None);
        let ran_sb1: &[Step] = &[
            Serial(3000, OPROM),
            Serial(4000, PCI_ROM_RAN),
            Serial(4100, PROBE),
        ];
        let ran_sb0: &[Step] = &[
            Serial(3000, OPROM),
            Serial(4000, PCI_ROM_RAN),
            Serial(4100, PROBE_SB0),
        ];
        assert_eq!(kind(&c, &r, ran_sb1, &s), VerdictKind::KnownDeviation);
        let v = judged(&c, &r, ran_sb0, &s);
        assert_eq!(v.kind(), VerdictKind::Fail, "{}", v.reason());
        assert!(
            v.reason()
                .contains("expects executed with SecureBoot=1 instead"),
            "{}",
            v.reason()
        );
    }

    #[test]
    fn deviation_without_a_secure_boot_value_matches_only_observations_without_one() {
        let c = case(Check::SecureBoot);
        let s = deviation(Check::SecureBoot, Outcome::Runs, None);
        assert_eq!(kind(&c, &s.rules[0].1, RAN, &s), VerdictKind::Fail);
    }

    #[test]
    fn deviation_keeps_judging_the_rest_of_the_rule() {
        // The outcome is excused; the SetupMode the rule asks for is still judged.
        let c = case(Check::SecureBoot);
        let mut s = deviation(Check::SecureBoot, Outcome::Runs, Some(0));
        s.rules[0].1 = rule(&[Outcome::Refused], None, Some(0));
        let v = judged(&c, &s.rules[0].1, &[Serial(1, PROBE_SB0)], &s);
        assert_eq!(v.kind(), VerdictKind::Fail, "{}", v.reason());
        assert!(
            v.reason().contains("expected SetupMode=0, the guest saw 1"),
            "{}",
            v.reason()
        );
        assert_eq!(v.deviation().unwrap().id, "dev1");
    }

    #[rstest]
    #[case::inside(Version::new(7, 2, 22), VerdictKind::KnownDeviation)]
    #[case::before(Version::new(6, 2, 0), VerdictKind::Fail)]
    #[case::at_the_end(Version::new(10, 0, 0), VerdictKind::Fail)]
    fn deviation_scoped_to_qemu_versions(#[case] qemu: Version, #[case] expected: VerdictKind) {
        let mut s = deviation(Check::SecureBoot, Outcome::Runs, Some(1));
        s.deviations[0].qemu = Some(QemuRange {
            from: Some(Version::new(7, 0, 0)),
            before: Some(Version::new(10, 0, 0)),
        });
        let c = Case {
            qemu,
            ..case(Check::SecureBoot)
        };
        assert_eq!(kind(&c, &s.rules[0].1, RAN, &s), expected);
    }

    #[test]
    fn deviation_scoped_to_a_tweak_leaves_the_other_tweaks_alone() {
        let mut s = deviation(Check::KernelBoot, Outcome::LegacyWarned, Some(1));
        s.deviations[0].tweak = Some(Tweak::None);
        let r = s.rules[0].1.clone();
        let warned: &[Step] = &[
            Serial(3000, LEGACY_WARNING),
            Serial(5000, LINUX),
            Serial(5001, CMDLINE_LEGACY),
            Serial(5100, SB_ON),
        ];
        let refused: &[Step] = &[Serial(3000, NO_FALLBACK), Serial(3100, GAVE_UP)];
        let with = |tweak| Case {
            tweak,
            ..case(Check::KernelBoot)
        };
        assert_eq!(
            kind(&with(Tweak::None), &r, warned, &s),
            VerdictKind::KnownDeviation
        );
        // The switch works on this build: its cell passes, and the entry is not stale for it.
        assert_eq!(
            kind(&with(Tweak::NoLegacyLoader), &r, refused, &s),
            VerdictKind::Pass
        );
        assert_eq!(kind(&with(Tweak::None), &r, refused, &s), VerdictKind::Fail);
    }

    #[test]
    fn kernel_deviation_another_misbehaviour_is_a_plain_failure() {
        let s = deviation(Check::KernelBoot, Outcome::LegacySilent, Some(1));
        let r = s.rules[0].1.clone();
        let c = case(Check::KernelBoot);
        let silent: &[Step] = &[
            Serial(5000, LINUX),
            Serial(5001, CMDLINE_LEGACY),
            Serial(5100, SB_ON),
        ];
        let warned: &[Step] = &[
            Serial(3000, LEGACY_WARNING),
            Serial(5000, LINUX),
            Serial(5001, CMDLINE_LEGACY),
            Serial(5100, SB_ON),
        ];
        assert_eq!(kind(&c, &r, silent, &s), VerdictKind::KnownDeviation);
        let v = judged(&c, &r, warned, &s);
        assert_eq!(v.kind(), VerdictKind::Fail);
        assert!(
            v.reason()
                .contains("expects legacy-silent with SecureBoot=1 instead"),
            "{}",
            v.reason()
        );
    }

    // Finding 6: missing values are not 0.
    #[test]
    fn absent_setup_mode_does_not_satisfy_zero() {
        let probe = PROBE.replace("setupmode=0", "setupmode=absent");
        let v = judged(
            &case(Check::SecureBoot),
            &rule(&[Outcome::Runs], Some(1), Some(0)),
            &[Serial(1, &probe)],
            &Scenarios::default(),
        );
        assert_eq!(v.kind(), VerdictKind::Fail);
        assert!(
            v.reason()
                .contains("SetupMode=0, but the variable does not exist"),
            "{}",
            v.reason()
        );
    }

    #[test]
    fn deviation_does_not_excuse_an_unreadable_field() {
        // The outcome is the recorded deviation, but the rule's SetupMode cannot be read.
        let c = case(Check::SecureBoot);
        let mut s = deviation(Check::SecureBoot, Outcome::Runs, Some(1));
        s.rules[0].1 = rule(&[Outcome::Refused], None, Some(0));
        let probe = PROBE.replace("setupmode=0", "setupmode=-");
        let v = judged(&c, &s.rules[0].1, &[Serial(1, &probe)], &s);
        assert_eq!(v.kind(), VerdictKind::Error, "{}", v.reason());
        assert!(
            v.reason().contains("as known deviation dev1 records"),
            "{}",
            v.reason()
        );
        assert_eq!(v.deviation().unwrap().id, "dev1");
        assert!(v.observation().is_some());
    }

    #[test]
    fn unreadable_field_the_rule_asks_for_is_an_error() {
        let probe = PROBE.replace("secureboot=1", "secureboot=-");
        let c = case(Check::SecureBoot);
        let v = judged(
            &c,
            &rule(&[Outcome::Runs], Some(1), None),
            &[Serial(1, &probe)],
            &Scenarios::default(),
        );
        assert_eq!(v.kind(), VerdictKind::Error);
        assert!(
            v.reason().contains("SecureBoot=1, which is unknown"),
            "{}",
            v.reason()
        );
        assert!(
            v.observation().is_some(),
            "the probe's line travels with the error"
        );
        // A rule that does not ask for the field is judged as usual.
        assert_eq!(
            kind(
                &c,
                &rule(&[Outcome::Runs], None, None),
                &[Serial(1, &probe)],
                &Scenarios::default()
            ),
            VerdictKind::Pass
        );
    }

    #[test]
    fn absent_secure_boot_reads_as_off_only_without_secure_boot_support() {
        let probe = PROBE_SB0.replace("secureboot=0", "secureboot=absent");
        let steps: &[Step] = &[Serial(1, &probe)];
        let r0 = rule(&[Outcome::Runs], Some(0), None);
        let r1 = rule(&[Outcome::Runs], Some(1), None);
        let s = Scenarios::default();
        let plain = Case {
            secure_boot_support: false,
            build: "60-edk2-x86_64.json",
            ..case(Check::SecureBoot)
        };
        let v = judged(&plain, &r0, steps, &s);
        assert_eq!(v.kind(), VerdictKind::Pass);
        assert!(
            v.reason()
                .contains("60-edk2-x86_64.json declares none (rule r1)"),
            "{}",
            v.reason()
        );
        assert_eq!(kind(&plain, &r1, steps, &s), VerdictKind::Fail);
        // A build that claims Secure Boot must have the variable.
        assert_eq!(
            kind(&case(Check::SecureBoot), &r0, steps, &s),
            VerdictKind::Fail
        );
    }

    // The AmdSev build: no Secure Boot feature, no variable store, the probe prints `-`.
    #[test]
    fn unreadable_secure_boot_is_not_judged_only_without_secure_boot_support() {
        let probe = PROBE_SB0.replace("secureboot=0 setupmode=1", "secureboot=- setupmode=-");
        let steps: &[Step] = &[Serial(1, &probe)];
        let r0 = rule(&[Outcome::Runs], Some(0), None);
        let s = Scenarios::default();
        let amdsev = Case {
            secure_boot_support: false,
            build: "60-edk2-x86_64-amdsev.json",
            ..case(Check::SecureBoot)
        };
        let v = judged(&amdsev, &r0, steps, &s);
        assert_eq!(v.kind(), VerdictKind::Pass, "{}", v.reason());
        assert!(
            v.reason().contains(
                "SecureBoot could not be read (the probe could not read it); \
                 60-edk2-x86_64-amdsev.json declares no Secure Boot support, so rule r1 is judged \
                 on the payload alone"
            ),
            "{}",
            v.reason()
        );
        // Not read as a value: the observation keeps it unknown.
        assert!(matches!(
            v.observation().unwrap().secure_boot,
            Reading::Unknown(_)
        ));
        // A rule that asks for 1, a build that declares Secure Boot, or an unreadable SetupMode
        // the rule asks for: still unknown, an error.
        let r1 = rule(&[Outcome::Runs], Some(1), None);
        assert_eq!(kind(&amdsev, &r1, steps, &s), VerdictKind::Error);
        assert_eq!(
            kind(&case(Check::SecureBoot), &r0, steps, &s),
            VerdictKind::Error
        );
        let setup = rule(&[Outcome::Runs], Some(0), Some(0));
        assert_eq!(kind(&amdsev, &setup, steps, &s), VerdictKind::Error);
        // The payload must still do what the rule expects.
        let refused = rule(&[Outcome::Refused], Some(0), None);
        assert_eq!(kind(&amdsev, &refused, steps, &s), VerdictKind::Fail);
    }

    #[rstest]
    #[case::could_not_be_determined(SB_UNKNOWN)]
    #[case::panic_first(PANIC)]
    fn kernel_without_a_secure_boot_state(#[case] line: &str) {
        let c = case(Check::KernelBoot);
        let steps: &[Step] = &[
            Serial(5000, LINUX),
            Serial(5001, CMDLINE_LEGACY),
            Serial(5100, line),
        ];
        let s = Scenarios::default();
        // It started: a rule that expects a refusal fails on that alone.
        assert_eq!(
            kind(&c, &rule(&[Outcome::Refused], None, None), steps, &s),
            VerdictKind::Fail
        );
        // A rule about how it booted cannot be answered, and `secure_boot: 0` is not met.
        let v = judged(&c, &rule(&[Outcome::Booted], Some(0), None), steps, &s);
        assert_eq!(v.kind(), VerdictKind::Error, "{}", v.reason());
        assert!(v.reason().contains("cannot be told"), "{}", v.reason());
    }

    #[rstest]
    #[case::rom_ran_as_expected(&[Serial(3000, OPROM), Serial(4000, PCI_ROM_RAN), Serial(4100, PROBE)], Outcome::Executed, VerdictKind::Pass)]
    #[case::rom_rejected_as_expected(&[Serial(4000, PCI_ROM_IDLE), Serial(4100, PROBE)], Outcome::NotExecuted, VerdictKind::Pass)]
    #[case::unsigned_rom_ran(&[Serial(3000, OPROM), Serial(4000, PCI_ROM_RAN), Serial(4100, PROBE)], Outcome::NotExecuted, VerdictKind::Fail)]
    #[case::signed_rom_did_not_run(&[Serial(4000, PCI_ROM_IDLE), Serial(4100, PROBE)], Outcome::Executed, VerdictKind::Fail)]
    #[case::rom_not_presented(&[Serial(4000, PCI_NO_ROM), Serial(4100, PROBE)], Outcome::NotExecuted, VerdictKind::Error)]
    fn option_rom_verdicts(
        #[case] steps: &[Step],
        #[case] expect: Outcome,
        #[case] expected: VerdictKind,
    ) {
        let v = judged(
            &case(Check::OptionRom),
            &rule(&[expect], Some(1), None),
            steps,
            &Scenarios::default(),
        );
        assert_eq!(v.kind(), expected, "{}", v.reason());
        assert!(!v.evidence().is_empty());
    }

    #[rstest]
    #[case::verified(CMDLINE_LOAD_IMAGE, SB_ON, &[Outcome::Verified], VerdictKind::Pass)]
    #[case::silent_fallback_under_strict(CMDLINE_LEGACY, SB_ON, &[Outcome::Refused], VerdictKind::Fail)]
    #[case::signed_any_path(CMDLINE_LEGACY, SB_ON, &[Outcome::Verified, Outcome::LegacyWarned, Outcome::LegacySilent], VerdictKind::Pass)]
    #[case::no_secure_boot(CMDLINE_LOAD_IMAGE, SB_OFF, &[Outcome::Booted], VerdictKind::Pass)]
    fn kernel_verdicts(
        #[case] cmdline: &str,
        #[case] sb: &str,
        #[case] expect: &[Outcome],
        #[case] expected: VerdictKind,
    ) {
        let steps: &[Step] = &[Serial(5000, LINUX), Serial(5001, cmdline), Serial(5100, sb)];
        let v = judged(
            &case(Check::KernelBoot),
            &rule(expect, None, None),
            steps,
            &Scenarios::default(),
        );
        assert_eq!(v.kind(), expected, "{}", v.reason());
        assert_eq!(v.evidence().len(), 3);
    }

    #[test]
    fn silent_fallback_failure_names_the_outcome() {
        let steps: &[Step] = &[
            Serial(5000, LINUX),
            Serial(5001, CMDLINE_LEGACY),
            Serial(5100, SB_ON),
        ];
        let v = judged(
            &case(Check::KernelBoot),
            &rule(&[Outcome::Refused], None, None),
            steps,
            &Scenarios::default(),
        );
        assert!(v.reason().contains("[legacy-silent]"), "{}", v.reason());
        assert!(
            v.reason().contains("expected the kernel to be refused"),
            "{}",
            v.reason()
        );
        assert!(v.reason().contains("(rule r1: because)"), "{}", v.reason());
    }

    #[test]
    fn verdicts_that_do_not_judge_carry_no_observation() {
        let skip = Verdict::skip("host has no AMD SEV");
        assert_eq!(skip.kind(), VerdictKind::Skip);
        assert_eq!(skip.reason(), "host has no AMD SEV");
        assert!(skip.observation().is_none() && skip.evidence().is_empty());
        let error = Verdict::error("no expectation");
        assert_eq!(error.kind(), VerdictKind::Error);
        assert!(error.deviation().is_none());
    }

    #[test]
    fn verdict_kinds_have_their_names() {
        let names: Vec<String> = VerdictKind::ALL.iter().map(|k| k.to_string()).collect();
        assert_eq!(names, ["pass", "fail", "known-deviation", "skip", "error"]);
        // strum's word is serde's, and as_str gives it.
        let words = crate::matrix::spelling::serde_agrees::<VerdictKind>();
        let as_str: Vec<&str> = VerdictKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(as_str, words);
    }

    /// as-bios: the outcomes its rules expect, judged on the rule, never as a firmware that
    /// never reached its boot manager.
    fn as_bios(steps: &[Step], end: crate::boot::BootEnd) -> Result<Observation, Undecided> {
        run(Check::AsBios, steps, end).0
    }

    fn bound() -> crate::boot::BootEnd {
        crate::boot::BootEnd::Deadline {
            after: std::time::Duration::from_secs(40),
            last_line: String::new(),
        }
    }

    #[test]
    fn as_bios_no_boot_is_judged_on_its_rule() {
        let c = case(Check::AsBios);
        let admits = rule(
            &[Outcome::QemuRefused, Outcome::NoBoot, Outcome::Refused],
            None,
            None,
        );
        let v = judge(&c, &admits, as_bios(&[], bound()), &Scenarios::default());
        assert_eq!(v.kind(), VerdictKind::Pass, "{}", v.reason());
        assert_eq!(v.evidence()[0].stream, crate::boot::Console::Runner);
        let expects_a_boot = rule(&[Outcome::Booted], None, None);
        let v = judge(
            &c,
            &expects_a_boot,
            as_bios(&[], bound()),
            &Scenarios::default(),
        );
        assert_eq!(v.kind(), VerdictKind::Fail, "{}", v.reason());
        assert!(v.reason().contains("[no-boot]"), "{}", v.reason());
    }

    #[test]
    fn as_bios_payload_with_secure_boot_off_fails_a_secure_boot_rule() {
        let c = case(Check::AsBios);
        let r = rule(
            &[
                Outcome::QemuRefused,
                Outcome::NoBoot,
                Outcome::Refused,
                Outcome::Booted,
            ],
            Some(1),
            None,
        );
        let off = judge(
            &c,
            &r,
            as_bios(&[Serial(4000, PROBE_SB0)], bound()),
            &Scenarios::default(),
        );
        assert_eq!(off.kind(), VerdictKind::Fail, "{}", off.reason());
        assert!(
            off.reason()
                .contains("expected SecureBoot=1, the guest saw 0"),
            "{}",
            off.reason()
        );
        let on = judge(
            &c,
            &r,
            as_bios(&[Serial(4000, PROBE)], bound()),
            &Scenarios::default(),
        );
        assert_eq!(on.kind(), VerdictKind::Pass, "{}", on.reason());
    }

    #[rstest]
    #[case::refused(&[Serial(4000, OWN_REFUSAL), Serial(4100, GAVE_UP)], Outcome::Refused)]
    #[case::not_booting(&[], Outcome::NoBoot)]
    fn a_rules_fields_are_not_asked_of_a_payload_that_never_ran(
        #[case] steps: &[Step],
        #[case] outcome: Outcome,
    ) {
        let r = rule(
            &[Outcome::NoBoot, Outcome::Refused, Outcome::Booted],
            Some(1),
            Some(0),
        );
        let v = judge(
            &case(Check::AsBios),
            &r,
            as_bios(steps, bound()),
            &Scenarios::default(),
        );
        assert_eq!(v.kind(), VerdictKind::Pass, "{}", v.reason());
        assert_eq!(v.observation().unwrap().outcome, outcome);
    }

    #[test]
    fn a_kernel_rule_expecting_a_boot_says_with_secure_boot_off() {
        let v = judged(
            &case(Check::KernelBoot),
            &rule(&[Outcome::Booted], None, None),
            &[Serial(4000, NO_FALLBACK), Serial(4100, GAVE_UP)],
            &Scenarios::default(),
        );
        assert_eq!(v.kind(), VerdictKind::Fail, "{}", v.reason());
        assert!(
            v.reason()
                .starts_with("expected the kernel to boot with Secure Boot off, but it"),
            "{}",
            v.reason()
        );
    }

    #[test]
    fn qemu_refusing_the_image_passes_only_where_the_rule_admits_it() {
        let end = crate::boot::BootEnd::Exited {
            status: "exit status: 1".into(),
            stderr: "qemu: could not load PC BIOS 'x.fd'".into(),
        };
        let c = case(Check::AsBios);
        let admits = rule(&[Outcome::QemuRefused], None, None);
        let v = judge(
            &c,
            &admits,
            as_bios(&[], end.clone()),
            &Scenarios::default(),
        );
        assert_eq!(v.kind(), VerdictKind::Pass, "{}", v.reason());
        let flipped = rule(&[Outcome::Booted], None, None);
        let v = judge(&c, &flipped, as_bios(&[], end), &Scenarios::default());
        assert_eq!(v.kind(), VerdictKind::Fail, "{}", v.reason());
        assert!(
            v.reason()
                .contains("expected the payload under -bios to start, but it was never started"),
            "{}",
            v.reason()
        );
    }
}
