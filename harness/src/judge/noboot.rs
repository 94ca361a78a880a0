//! A firmware that never reached its boot manager (`no-boot`), against the descriptor's promise:
//! its machine list (`targets[].machines` globs) says on which machine types it boots.

use crate::discover::glob::glob_match;
use crate::observe::evidence::Observation;

use super::{subject, Case, Verdict, VerdictKind};

/// `fail` where the descriptor promises the cell's machine type, `skip` where it does not:
/// a build owes nothing on a machine it never claimed.
pub(super) fn judge_no_boot(case: &Case, observation: Observation) -> Verdict {
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
        for check in Check::ALL {
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
}
