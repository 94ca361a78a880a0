//! JUnit XML for CI systems, written by quick-junit: one test suite `bootmatrix`, one test case
//! per cell (class name: the descriptor). `fail` is a failure and `error` an error, each with
//! the evidence lines in system-out; `skip` is skipped with its reason; a known deviation passes
//! with its reason in system-out.

use std::path::Path;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::record::CellRecord;
use crate::judge::VerdictKind;

/// The name of the report and of its one test suite.
pub const SUITE: &str = "bootmatrix";

/// Writes the JUnit XML of a run's cells to `path`.
pub fn write(path: &Path, cells: &[CellRecord]) -> Result<(), String> {
    std::fs::write(path, junit_xml(cells)?)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The JUnit XML of a run's cells.
pub fn junit_xml(cells: &[CellRecord]) -> Result<String, String> {
    let mut suite = TestSuite::new(SUITE);
    let seconds = |r: &CellRecord| Duration::from_millis(r.elapsed_ms.unwrap_or(0));
    suite.set_time(cells.iter().map(seconds).sum());
    suite.add_test_cases(cells.iter().map(|r| {
        let mut case = TestCase::new(r.id.as_str(), status(r));
        case.set_classname(r.descriptor.as_str());
        case.set_time(seconds(r));
        match r.verdict {
            VerdictKind::Fail | VerdictKind::Error if !r.evidence().is_empty() => {
                case.set_system_out(evidence(r));
            }
            VerdictKind::KnownDeviation => {
                case.set_system_out(format!("known-deviation: {}", r.reason));
            }
            _ => {}
        }
        case
    }));
    let mut report = Report::new(SUITE);
    report.add_test_suite(suite);
    report
        .to_string()
        .map_err(|e| format!("cannot write the JUnit report: {e}"))
}

fn status(r: &CellRecord) -> TestCaseStatus {
    let mut status = match r.verdict {
        VerdictKind::Pass | VerdictKind::KnownDeviation => return TestCaseStatus::success(),
        VerdictKind::Fail => TestCaseStatus::non_success(NonSuccessKind::Failure),
        VerdictKind::Error => TestCaseStatus::non_success(NonSuccessKind::Error),
        VerdictKind::Skip => TestCaseStatus::skipped(),
    };
    status.set_message(r.reason.as_str());
    status
}

/// The lines a failed or errored cell was decided on, for the CI's test page.
fn evidence(r: &CellRecord) -> String {
    let lines: Vec<String> = r.evidence().iter().map(|e| e.to_string()).collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::Verdict;
    use crate::observe::script::PROBE;
    use crate::report::fixtures::{every_shape, failed, passed, unjudged};
    use crate::report::records;

    /// The XML as a CI reads it, parsed back.
    fn parsed(cells: &[CellRecord]) -> quick_junit::Report {
        let xml = junit_xml(cells).unwrap();
        quick_junit::Report::deserialize_from_str(&xml).unwrap_or_else(|e| panic!("{e}:\n{xml}"))
    }

    fn case<'a>(suite: &'a TestSuite, name: &str) -> &'a TestCase {
        suite
            .test_cases
            .iter()
            .find(|c| c.name.as_str() == name)
            .unwrap_or_else(|| panic!("no test case {name}"))
    }

    #[test]
    fn counts_every_cell_by_its_verdict() {
        let report = parsed(&records(&[
            passed("ok"),
            failed("bad"),
            unjudged("broken", Verdict::error("QEMU exited <1> & \"x\"")),
            unjudged("skipped", Verdict::skip("no SEV")),
        ]));
        assert_eq!(report.test_suites.len(), 1);
        let suite = &report.test_suites[0];
        assert_eq!(suite.name.as_str(), SUITE);
        assert_eq!(
            (suite.tests, suite.failures, suite.errors, suite.skipped),
            (4, 1, 1, 1)
        );
        assert_eq!(
            case(suite, "ok").classname.as_ref().map(|c| c.as_str()),
            Some("50-edk2-x86_64-secure.json")
        );
        assert_eq!(case(suite, "ok").time, Some(Duration::from_millis(3460)));
        assert_eq!(case(suite, "ok").status, TestCaseStatus::success());
        // Escaped on the way out, the reason reads back as it was.
        match &case(suite, "broken").status {
            TestCaseStatus::NonSuccess { kind, message, .. } => {
                assert_eq!(*kind, NonSuccessKind::Error);
                assert_eq!(
                    message.as_ref().map(|m| m.as_str()),
                    Some("QEMU exited <1> & \"x\"")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_failure_carries_its_reason_and_the_lines_it_was_decided_on() {
        let report = parsed(&records(&[failed("bad")]));
        let bad = case(&report.test_suites[0], "bad");
        match &bad.status {
            TestCaseStatus::NonSuccess { kind, message, .. } => {
                assert_eq!(*kind, NonSuccessKind::Failure);
                let message = message.as_ref().unwrap().as_str();
                assert!(
                    message.starts_with("expected the probe to be refused"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            bad.system_out.as_ref().map(|s| s.as_str()),
            Some(format!("[serial +3.421 s] {PROBE}").as_str())
        );
    }

    #[test]
    fn skips_carry_their_reason_and_deviations_pass_with_theirs() {
        let cells = records(&every_shape());
        let report = parsed(&cells);
        let suite = &report.test_suites[0];
        assert_eq!(suite.tests, cells.len());
        match &case(suite, "sev-kernel").status {
            TestCaseStatus::Skipped { message, .. } => assert_eq!(
                message.as_ref().map(|m| m.as_str()),
                Some("refused by policy: no measured build")
            ),
            other => panic!("{other:?}"),
        }
        let deviation = case(suite, "kernel-deviation");
        assert_eq!(deviation.status, TestCaseStatus::success());
        let out = deviation.system_out.as_ref().unwrap().as_str();
        assert!(
            out.starts_with("known-deviation: expected the kernel"),
            "{out}"
        );
        // Undecided boots show what they did see; a pass shows nothing.
        let undecided = case(suite, "sb-undecided").system_out.as_ref().unwrap();
        assert!(undecided.as_str().contains("Not Found"), "{undecided:?}");
        assert_eq!(case(suite, "sb-pass").system_out, None);
    }

    #[test]
    fn writes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junit.xml");
        write(&path, &records(&[passed("ok")])).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("<?xml"), "{text}");
        let err = write(&dir.path().join("no/such/dir.xml"), &[]).unwrap_err();
        assert!(err.contains("cannot write"), "{err}");
    }
}
