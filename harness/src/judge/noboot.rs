//! A firmware that never reached its boot manager (`no-boot`), against the descriptor's promise:
//! its machine list (`targets[].machines` globs) says on which machine types it boots.

use crate::discover::glob::glob_match;
use crate::matrix::Outcome;
use crate::observe::evidence::Observation;
use crate::scenario::{KnownDeviation, KnownNoBoot, NoBootCell, Rule, Scenarios};

use super::{subject, Case, Verdict, VerdictKind};

/// `fail` where the descriptor promises the cell's machine type, `skip` where it does not:
/// a build owes nothing on a machine it never claimed. A promised machine where a known cause
/// (`known-no-boot.json`) explains the stop, its signature among the evidence lines, is
/// `known-deviation` with the cause's reason and reference.
pub(super) fn judge_no_boot(
    case: &Case,
    rule: &Rule,
    observation: Observation,
    scenarios: &Scenarios,
) -> Verdict {
    let promised = case
        .machine_globs
        .iter()
        .any(|glob| glob_match(glob, case.machine));
    let what = format!(
        "{} {}; {} {} machine type {} (its machines: [{}])",
        subject(case.check),
        observation.description,
        case.build,
        if promised {
            "promises"
        } else {
            "does not promise"
        },
        case.machine,
        case.machine_globs.join(", ")
    );
    let lines: Vec<&str> = observation
        .evidence
        .lines()
        .iter()
        .map(|e| e.line.as_str())
        .collect();
    let cause = scenarios.no_boot_cause(&NoBootCell {
        qemu: case.qemu,
        edk2: case.edk2,
        accel: case.accel,
        evidence: &lines,
    });
    if let (true, Some(cause)) = (promised, cause) {
        let deviation = as_deviation(case, rule, cause);
        return Verdict::judged(
            VerdictKind::KnownDeviation,
            format!(
                "{what}: known no-boot cause {}: {} [{}]",
                cause.id, cause.reason, cause.reference
            ),
            observation,
            Some(&deviation),
        );
    }
    if promised {
        Verdict::judged(
            VerdictKind::Fail,
            format!("{what}, so the firmware failed to boot where it says it boots"),
            observation,
            None,
        )
    } else {
        Verdict::unjudged(
            VerdictKind::Skip,
            format!("{what}, so it owes nothing here"),
            Vec::new(),
            Some(observation),
        )
    }
}

/// The cause as the deviation that excused this cell, for reports.
fn as_deviation(case: &Case, rule: &Rule, cause: &KnownNoBoot) -> KnownDeviation {
    KnownDeviation {
        id: cause.id.clone(),
        check: case.check,
        rule: rule.id.clone(),
        executable_sha256: case.executable_sha256.unwrap_or_default().to_string(),
        package: String::new(),
        tweak: None,
        qemu: Some(cause.qemu),
        observed: Outcome::NoBoot,
        secure_boot: None,
        reason: cause.reason.clone(),
        reference: cause.reference.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::BootEnd;
    use crate::judge::judge;
    use crate::judge::tests::{case, rule};
    use crate::matrix::{Check, Outcome};
    use crate::observe::script::*;
    use crate::scenario::Scenarios;

    fn no_boot(check: Check) -> Result<Observation, crate::observe::evidence::Undecided> {
        run(
            check,
            &[
                DebugCon(100, "SecCoreStartupWithStack(0xFFFCC000, 0x820000)"),
                DebugCon(200, "DXE IPL Entry"),
            ],
            BootEnd::Exited {
                status: "exit status: 0".into(),
                stderr: "(stderr empty)".into(),
            },
        )
        .0
    }

    #[test]
    fn no_boot_fails_where_the_machine_is_promised_and_skips_where_not() {
        let globs = ["pc-i440fx-*".to_string(), "pc-q35-*".to_string()];
        // as-bios reads a silent boot against its own bound (observe/asbios.rs).
        for check in &Check::booting()
            .filter(|c| *c != Check::AsBios)
            .collect::<Vec<_>>()
        {
            let r = rule(&check.outcomes()[..1], None, None);
            let promised = Case {
                machine: "pc-q35-7.2",
                machine_globs: &globs,
                ..case(*check)
            };
            let v = judge(&promised, &r, no_boot(*check), &Scenarios::default());
            assert_eq!(v.kind(), VerdictKind::Fail, "{}", v.reason());
            assert!(
                v.reason().contains(
                    "50-edk2-x86_64-secure.json promises machine type pc-q35-7.2 (its machines: \
                     [pc-i440fx-*, pc-q35-*]), so the firmware failed to boot"
                ),
                "{}",
                v.reason()
            );
            assert!(v.reason().starts_with(subject(*check)), "{}", v.reason());
            assert_eq!(v.evidence().len(), 2);
            assert_eq!(v.observation().unwrap().outcome, Outcome::NoBoot);
            let elsewhere = Case {
                machine: "microvm",
                ..promised
            };
            let v = judge(&elsewhere, &r, no_boot(*check), &Scenarios::default());
            assert_eq!(v.kind(), VerdictKind::Skip, "{}", v.reason());
            assert!(
                v.reason().contains(
                    "does not promise machine type microvm (its machines: [pc-i440fx-*, \
                     pc-q35-*]), so it owes nothing here"
                ),
                "{}",
                v.reason()
            );
            assert_eq!(v.evidence().len(), 2, "the lines travel with the skip");
        }
    }

    const CPUHP: &str = "Invalid access at addr 0x0, size 4, region 'acpi-cpu-hotplug', reason: invalid size (min:1 max:1)";

    /// trixie's OVMF on bullseye's QEMU 5.2 under TCG: only QEMU's rejection of the CPU hotplug
    /// switch shows, and the built-in scenarios know that cause.
    #[test]
    fn a_known_cause_with_its_signature_is_a_known_deviation_and_nothing_else_is() {
        let globs = ["pc-q35-*".to_string()];
        let builtin = Scenarios::builtin();
        let stopped = |check, line: &'static str| {
            run(
                check,
                &[GuestError(300, line)],
                crate::observe::script::deadline(),
            )
            .0
        };
        // as-bios reads a silent boot against its own bound (observe/asbios.rs).
        for check in &Check::booting()
            .filter(|c| *c != Check::AsBios)
            .collect::<Vec<_>>()
        {
            let r = rule(&check.outcomes()[..1], None, None);
            let cell = Case {
                qemu: crate::discover::qemu::Version::new(5, 2, 0),
                machine: "pc-q35-5.2",
                machine_globs: &globs,
                edk2: crate::discover::release::Edk2Release::parse("2025.02"),
                ..case(*check)
            };
            let v = judge(&cell, &r, stopped(*check, CPUHP), &builtin);
            assert_eq!(v.kind(), VerdictKind::KnownDeviation, "{}", v.reason());
            assert!(
                v.reason()
                    .contains("known no-boot cause qemu-cpuhp-legacy-switch-rejected"),
                "{}",
                v.reason()
            );
            assert_eq!(
                v.deviation().unwrap().id,
                "qemu-cpuhp-legacy-switch-rejected"
            );
            assert_eq!(v.evidence()[0].line, CPUHP);

            // Another guest error, an older edk2, KVM, a fixed QEMU: the firmware failed.
            let other =
                "Invalid read at addr 0xFED40000, size 1, region '(null)', reason: rejected";
            let older = Case {
                edk2: crate::discover::release::Edk2Release::parse("2022.11"),
                ..cell
            };
            let kvm = Case {
                accel: crate::discover::host::Accel::Kvm,
                ..cell
            };
            let fixed = Case {
                qemu: crate::discover::qemu::Version::new(8, 0, 0),
                ..cell
            };
            for (c, line) in [(cell, other), (older, CPUHP), (kvm, CPUHP), (fixed, CPUHP)] {
                let v = judge(&c, &r, stopped(*check, line), &builtin);
                assert_eq!(v.kind(), VerdictKind::Fail, "{}", v.reason());
                assert!(v.deviation().is_none());
            }
            // Where the machine is not promised, the cause changes nothing: a skip.
            let elsewhere = Case {
                machine: "microvm",
                ..cell
            };
            let v = judge(&elsewhere, &r, stopped(*check, CPUHP), &builtin);
            assert_eq!(v.kind(), VerdictKind::Skip, "{}", v.reason());
        }
    }
}
