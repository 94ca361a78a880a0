//! Expectations as data: what a firmware build must do in each cell, read from `scenarios/`.
//!
//! One file per check (`secure-boot.json`, `option-rom.json`, `kernel-boot.json`) holds ordered
//! rules; the first rule whose condition matches the cell (policy profile, descriptor features,
//! edk2 release, varstore variant, payload, tweak, SEV) gives the expectation.
//! `known-deviations.json` lists firmware builds known to break a rule, with a reference;
//! `measured-boot.json` lists the builds that verify a `-kernel` against SEV kernel hashes;
//! `known-no-boot.json` lists the known causes of a firmware stopping before its boot manager
//! on purpose (see [`noboot`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::discover::qemu::Version;
use crate::discover::release::Edk2Release;
use crate::matrix::{Check, Outcome, Tweak};
use crate::tools::{read_input, InputError, SCENARIO_LIMIT};

pub mod lint;
pub mod noboot;
pub mod rule;
pub use noboot::{KnownNoBoot, NoBootCell};
pub use rule::{AnyWord, Condition, Expectation, Outcomes, Pick, Rule, Subject};

/// The built-in scenarios, so the binary works from any folder.
const BUILTIN: &[(&str, &str)] = &[
    (
        "secure-boot.json",
        include_str!("../../../scenarios/secure-boot.json"),
    ),
    (
        "option-rom.json",
        include_str!("../../../scenarios/option-rom.json"),
    ),
    (
        "kernel-boot.json",
        include_str!("../../../scenarios/kernel-boot.json"),
    ),
    (
        "distro-chain.json",
        include_str!("../../../scenarios/distro-chain.json"),
    ),
    (
        "key-health.json",
        include_str!("../../../scenarios/key-health.json"),
    ),
    (
        "no-shell.json",
        include_str!("../../../scenarios/no-shell.json"),
    ),
    (
        "as-bios.json",
        include_str!("../../../scenarios/as-bios.json"),
    ),
    (
        "known-deviations.json",
        include_str!("../../../scenarios/known-deviations.json"),
    ),
    (
        "measured-boot.json",
        include_str!("../../../scenarios/measured-boot.json"),
    ),
    (
        "known-no-boot.json",
        include_str!("../../../scenarios/known-no-boot.json"),
    ),
    (
        "well-known-certificates.json",
        include_str!("../../../scenarios/well-known-certificates.json"),
    ),
    ("lint.json", include_str!("../../../scenarios/lint.json")),
];

/// Versions `from` (inclusive) up to `before` (exclusive); either end may be open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "T: Deserialize<'de>"))]
pub struct Range<T> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<T>,
}

impl<T> Default for Range<T> {
    fn default() -> Self {
        Range {
            from: None,
            before: None,
        }
    }
}

impl<T: Ord + Copy> Range<T> {
    pub fn contains(&self, value: T) -> bool {
        self.from.is_none_or(|f| value >= f) && self.before.is_none_or(|b| value < b)
    }
}

/// edk2 releases, `{"from": "2025.02", "before": "2026.02"}`.
pub type ReleaseRange = Range<Edk2Release>;

/// QEMU versions, `{"from": "10.0"}`.
pub type QemuRange = Range<Version>;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckFile {
    check: Check,
    #[serde(default)]
    #[allow(dead_code)]
    about: String,
    rules: Vec<Rule>,
}

/// A firmware build known to break one rule in a documented way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnownDeviation {
    pub id: String,
    pub check: Check,
    /// The rule it breaks.
    pub rule: String,
    /// sha256 of the firmware executable (the `executable`/`filename` of the descriptor).
    pub executable_sha256: String,
    /// Package and version, where known (`ovmf 2022.11-6+deb12u2`).
    #[serde(default)]
    pub package: String,
    /// Only cells with this tweak deviate (kernel-boot); absent: every cell of the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tweak: Option<Tweak>,
    /// Only cells on these QEMU versions deviate; absent: every version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qemu: Option<QemuRange>,
    /// What the build does instead.
    pub observed: Outcome,
    /// The SecureBoot value the guest reported when the deviation was recorded. The entry
    /// matches only an observation with this value; absent: only an observation that has no
    /// value (a refusal, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_boot: Option<u8>,
    pub reason: String,
    /// A public reference: edk2 commit, CVE or bug.
    pub reference: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviationFile {
    #[serde(default)]
    #[allow(dead_code)]
    about: String,
    deviations: Vec<KnownDeviation>,
}

/// A firmware build that verifies a `-kernel` against the hashes QEMU puts in guest memory
/// under SEV (`kernel-hashes=on`): only such a build makes direct kernel boot under SEV
/// measured. QEMU accepting `kernel-hashes=on` proves nothing about the firmware.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasuredBuild {
    pub executable_sha256: String,
    #[serde(default)]
    pub package: String,
    /// Which build it is (`OvmfPkg/AmdSev/AmdSevX64.dsc, edk2 stable202502`).
    pub build: String,
    pub reference: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MeasuredFile {
    #[serde(default)]
    #[allow(dead_code)]
    about: String,
    measured_direct_boot: Vec<MeasuredBuild>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scenarios {
    pub rules: Vec<(Check, Rule)>,
    pub deviations: Vec<KnownDeviation>,
    pub measured: Vec<MeasuredBuild>,
    pub no_boot: Vec<KnownNoBoot>,
    /// Certificates known by name (`well-known-certificates.json`), for `key-health`.
    pub well_known: Vec<crate::discover::varstore::WellKnown>,
    /// What `bootmatrix lint` says of each finding (`lint.json`); empty when the folder has
    /// none.
    pub lint: Vec<lint::LintText>,
    /// Where they came from (a folder, or "built-in").
    pub origin: String,
}

/// Why the scenarios could not be loaded, with the file (or, for a rule that clashes with
/// another file's, the folder) at fault.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", .file.display())]
pub struct ScenarioError {
    pub file: PathBuf,
    pub problem: ScenarioProblem,
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioProblem {
    #[error("{0}")]
    Read(#[source] std::io::Error),
    /// Not a regular file of at most [`SCENARIO_LIMIT`] bytes, or not UTF-8.
    #[error("{0}")]
    Input(#[source] InputError),
    #[error("not UTF-8 text: {0}")]
    NotText(#[source] std::string::FromUtf8Error),
    /// Not JSON, or not a scenario file's shape (the text names the field).
    #[error("{0}")]
    Json(#[source] serde_json::Error),
    #[error(
        "no scenario rules here: expected *.json files with rules, like the built-in \
         scenarios/secure-boot.json"
    )]
    NoRules,
    #[error("rule {check}/{rule} is defined twice")]
    RuleTwice { check: Check, rule: String },
    #[error(
        "rule {check}/{rule} expects {:?}, which is not an outcome of {check} (one of: {})",
        .expects.as_str(),
        outcome_list(*.check)
    )]
    NotAnOutcome {
        check: Check,
        rule: String,
        expects: Outcome,
    },
    #[error(
        "known deviation {deviation} observes {:?}, which is not an outcome of {check} (one of: {})",
        .observed.as_str(),
        outcome_list(*.check)
    )]
    DeviationNotAnOutcome {
        deviation: String,
        check: Check,
        observed: Outcome,
    },
    #[error("{0}")]
    Lint(#[source] lint::LintTextProblem),
    #[error("known no-boot cause {id}: evidence is not a regular expression: {problem}")]
    NoBootSignature { id: String, problem: String },
    #[error("known deviation {deviation} names rule {check}/{rule} which does not exist")]
    NoSuchRule {
        deviation: String,
        check: Check,
        rule: String,
    },
}

fn outcome_list(check: Check) -> String {
    check
        .outcomes()
        .iter()
        .map(|o| o.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Scenarios {
    /// The scenarios compiled into the binary (the repository's `scenarios/` folder).
    pub fn builtin() -> Scenarios {
        let files = BUILTIN
            .iter()
            .map(|(name, text)| (PathBuf::from(name), text.to_string()));
        Scenarios::from_files("built-in", files).expect("built-in scenarios are valid")
    }

    /// Reads every `*.json` file of `dir`; a folder without a single rule is an error.
    pub fn load_dir(dir: &Path) -> Result<Scenarios, ScenarioError> {
        let err = |file: &Path| {
            let file = file.to_path_buf();
            move |e| ScenarioError {
                file,
                problem: ScenarioProblem::Read(e),
            }
        };
        let entries = std::fs::read_dir(dir).map_err(err(dir))?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        let mut files = Vec::new();
        for path in paths {
            let problem = |problem| ScenarioError {
                file: path.clone(),
                problem,
            };
            let bytes = read_input(&path, SCENARIO_LIMIT)
                .map_err(|e| problem(ScenarioProblem::Input(e)))?;
            let text =
                String::from_utf8(bytes).map_err(|e| problem(ScenarioProblem::NotText(e)))?;
            files.push((path, text));
        }
        let scenarios = Scenarios::from_files(&dir.display().to_string(), files)?;
        if scenarios.rules.is_empty() {
            return Err(ScenarioError {
                file: dir.to_path_buf(),
                problem: ScenarioProblem::NoRules,
            });
        }
        Ok(scenarios)
    }

    fn from_files(
        origin: &str,
        files: impl IntoIterator<Item = (PathBuf, String)>,
    ) -> Result<Scenarios, ScenarioError> {
        let mut scenarios = Scenarios {
            origin: origin.to_string(),
            ..Scenarios::default()
        };
        for (path, text) in files {
            let err = |e| ScenarioError {
                file: path.clone(),
                problem: ScenarioProblem::Json(e),
            };
            let value: serde_json::Value = serde_json::from_str(&text).map_err(err)?;
            if value.get("measured_direct_boot").is_some() {
                let file: MeasuredFile = serde_json::from_value(value).map_err(err)?;
                scenarios.measured.extend(file.measured_direct_boot);
            } else if value.get("known_no_boot").is_some() {
                let file: noboot::NoBootFile = serde_json::from_value(value).map_err(err)?;
                scenarios.no_boot.extend(file.known_no_boot);
            } else if value.get("well_known_certificates").is_some() {
                let file: crate::discover::varstore::WellKnownFile =
                    serde_json::from_value(value).map_err(err)?;
                scenarios.well_known.extend(file.well_known_certificates);
            } else if value.get("lint_findings").is_some() {
                let file: lint::LintFile = serde_json::from_value(value).map_err(err)?;
                scenarios.lint.extend(file.lint_findings);
            } else if value.get("deviations").is_some() {
                let file: DeviationFile = serde_json::from_value(value).map_err(err)?;
                scenarios.deviations.extend(file.deviations);
            } else {
                let file: CheckFile = serde_json::from_value(value).map_err(err)?;
                scenarios
                    .rules
                    .extend(file.rules.into_iter().map(|r| (file.check, r)));
            }
        }
        scenarios.validate().map_err(|problem| ScenarioError {
            file: PathBuf::from(origin),
            problem,
        })?;
        Ok(scenarios)
    }

    /// Rule ids are unique per check, rules and deviations name outcomes of their check, and
    /// every deviation names an existing rule.
    fn validate(&self) -> Result<(), ScenarioProblem> {
        for (i, (check, rule)) in self.rules.iter().enumerate() {
            if self.rules[..i]
                .iter()
                .any(|(c, r)| c == check && r.id == rule.id)
            {
                return Err(ScenarioProblem::RuleTwice {
                    check: *check,
                    rule: rule.id.clone(),
                });
            }
        }
        for (check, rule) in &self.rules {
            if let Some(wrong) = rule
                .expect
                .payload
                .0
                .iter()
                .find(|o| !check.outcomes().contains(o))
            {
                return Err(ScenarioProblem::NotAnOutcome {
                    check: *check,
                    rule: rule.id.clone(),
                    expects: *wrong,
                });
            }
        }
        for d in &self.deviations {
            if !d.check.outcomes().contains(&d.observed) {
                return Err(ScenarioProblem::DeviationNotAnOutcome {
                    deviation: d.id.clone(),
                    check: d.check,
                    observed: d.observed,
                });
            }
            if !self
                .rules
                .iter()
                .any(|(c, r)| *c == d.check && r.id == d.rule)
            {
                return Err(ScenarioProblem::NoSuchRule {
                    deviation: d.id.clone(),
                    check: d.check,
                    rule: d.rule.clone(),
                });
            }
        }
        lint::validate(&self.lint).map_err(ScenarioProblem::Lint)?;
        for n in &self.no_boot {
            n.signature()
                .map_err(|e| ScenarioProblem::NoBootSignature {
                    id: n.id.clone(),
                    problem: e.to_string(),
                })?;
        }
        Ok(())
    }

    /// The known cause that explains a no-boot of `cell`, if one does.
    pub fn no_boot_cause(&self, cell: &NoBootCell) -> Option<&KnownNoBoot> {
        self.no_boot.iter().find(|n| n.explains(cell))
    }

    /// The first rule of `check` that matches the cell.
    pub fn rule_for(&self, check: Check, subject: &Subject) -> Option<&Rule> {
        self.rules
            .iter()
            .filter(|(c, _)| *c == check)
            .map(|(_, r)| r)
            .find(|r| r.when.matches(subject))
    }

    /// The measured-direct-boot entry for this firmware build, if it is one.
    pub fn measured_build(&self, executable_sha256: &str) -> Option<&MeasuredBuild> {
        self.measured
            .iter()
            .find(|m| m.executable_sha256.eq_ignore_ascii_case(executable_sha256))
    }

    /// The deviations recorded for this firmware build, rule, tweak and QEMU version: each one
    /// still has to match the observation (outcome and SecureBoot value) to excuse a cell.
    pub fn deviations_for(
        &self,
        check: Check,
        rule: &str,
        executable_sha256: &str,
        tweak: Tweak,
        qemu: Version,
    ) -> Vec<&KnownDeviation> {
        self.deviations
            .iter()
            .filter(|d| {
                d.check == check
                    && d.rule == rule
                    && d.executable_sha256.eq_ignore_ascii_case(executable_sha256)
                    && d.tweak.is_none_or(|t| t == tweak)
                    && d.qemu.as_ref().is_none_or(|r| r.contains(qemu))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::{Payload, Profile, Variant, Vars};
    use rstest::rstest;

    #[rstest]
    #[case("2022.11", Some((2022, 11)))]
    #[case("stable202502", Some((2025, 2)))]
    #[case("edk2-stable202602", Some((2026, 2)))]
    #[case("202511", Some((2025, 11)))]
    #[case("2025.13", None)]
    #[case("latest", None)]
    fn parses_releases(#[case] text: &str, #[case] want: Option<(u16, u8)>) {
        let got = Edk2Release::parse(text).map(|r| (r.year, r.month));
        assert_eq!(got, want, "{text}");
    }

    #[rstest]
    #[case("ovmf 2022.11-6+deb12u2", Some("2022.11"))]
    #[case("ovmf 2025.02-8 (unpacked in /tmp/x)", Some("2025.02"))]
    #[case("edk2-ovmf 20230524-3.fc39", Some("2023.05"))]
    #[case("edk2-ovmf 0~20191122.bd85bf54-2ubuntu3", Some("2019.11"))]
    #[case("ovmf 1.0", None)]
    fn reads_the_release_from_a_package_version(#[case] text: &str, #[case] want: Option<&str>) {
        let got = Edk2Release::from_package_version(text).map(|r| r.to_string());
        assert_eq!(got.as_deref(), want, "{text}");
    }

    #[test]
    fn release_ranges_are_half_open() {
        let r = |t: &str| Edk2Release::parse(t).unwrap();
        let range = ReleaseRange {
            from: Some(r("2025.02")),
            before: Some(r("2026.02")),
        };
        assert!(!range.contains(r("2024.11")));
        assert!(range.contains(r("2025.02")));
        assert!(range.contains(r("2025.11")));
        assert!(!range.contains(r("2026.02")));
        assert!(ReleaseRange::default().contains(r("2010.01")));
    }

    fn load(files: &[(&str, &str)]) -> Result<Scenarios, ScenarioError> {
        Scenarios::from_files(
            "test",
            files.iter().map(|(n, t)| (PathBuf::from(n), t.to_string())),
        )
    }

    /// The scenarios a `--scenarios` copy is read from and the ones compiled in go through the
    /// same loader and hold the same data: a flip test on a copy is a flip of the built-in.
    #[test]
    fn builtin_scenarios_are_the_repository_files_read_the_same_way() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let from_dir = Scenarios::load_dir(&dir).unwrap();
        let builtin = Scenarios::builtin();
        for check in Check::ALL {
            let of = |s: &Scenarios| -> Vec<Rule> {
                s.rules
                    .iter()
                    .filter(|(c, _)| c == check)
                    .map(|(_, r)| r.clone())
                    .collect()
            };
            assert!(!of(&builtin).is_empty(), "{check}");
            assert_eq!(of(&builtin), of(&from_dir), "{check}");
        }
        assert_eq!(builtin.deviations, from_dir.deviations);
        assert_eq!(builtin.measured, from_dir.measured);
        let on_disk: std::collections::BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json"))
            .collect();
        let embedded: std::collections::BTreeSet<String> =
            BUILTIN.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(on_disk, embedded, "every scenario file is compiled in");
    }

    #[test]
    fn no_rule_may_expect_what_cannot_be_judged() {
        for outcome in [Outcome::Started, Outcome::NothingBootable, Outcome::NoBoot] {
            for check in Check::ALL {
                // as-bios: not booting within its bound is an answer its rules may expect.
                let allowed = outcome == Outcome::NoBoot && *check == Check::AsBios;
                assert_eq!(
                    check.outcomes().contains(&outcome),
                    allowed,
                    "{check}: {outcome}"
                );
            }
            let rule = format!(
                r#"{{"check": "kernel-boot", "rules": [{{"id": "x", "when": {{}}, "expect": {{"payload": "{outcome}"}}, "because": "b"}}]}}"#
            );
            let err = Scenarios::from_files("test", [(PathBuf::from("k.json"), rule)]).unwrap_err();
            assert!(
                matches!(err.problem, ScenarioProblem::NotAnOutcome { expects, .. } if expects == outcome),
                "{err}"
            );
            assert!(
                err.to_string().contains("not an outcome of kernel-boot"),
                "{err}"
            );
        }
    }

    #[test]
    fn builtin_scenarios_cover_every_check() {
        let s = Scenarios::builtin();
        for check in Check::ALL {
            assert!(s.rules.iter().any(|(c, _)| c == check), "{check}");
        }
        assert!(!s.deviations.is_empty());
    }

    #[test]
    fn an_outcome_of_another_check_is_rejected_with_the_rule_named() {
        let err = load(&[(
            "option-rom.json",
            r#"{"check": "option-rom", "rules": [{"id": "x", "when": {}, "expect": {"payload": "verified"}, "because": "b"}]}"#,
        )])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "test: rule option-rom/x expects \"verified\", which is not an outcome of option-rom \
             (one of: executed, not-executed)"
        );
    }

    /// A kernel-boot rule file, and a deviation of `rule` that observed `observed`.
    fn rule_and_deviation(rule: &str, observed: &str) -> [(&'static str, String); 2] {
        [
            (
                "kernel-boot.json",
                r#"{"check": "kernel-boot", "rules": [{"id": "x", "when": {}, "expect": {"payload": "refused"}, "because": "b"}]}"#.to_string(),
            ),
            (
                "known-deviations.json",
                format!(
                    r#"{{"deviations": [{{"id": "d", "check": "kernel-boot", "rule": "{rule}", "executable_sha256": "00", "observed": "{observed}", "reason": "r", "reference": "ref"}}]}}"#
                ),
            ),
        ]
    }

    #[test]
    fn the_whole_set_is_checked_and_the_problem_named() {
        let load = |files: &[(&str, String)]| {
            Scenarios::from_files(
                "folder",
                files.iter().map(|(n, t)| (PathBuf::from(n), t.clone())),
            )
        };
        assert!(load(&rule_and_deviation("x", "legacy-silent")).is_ok());
        let e = load(&rule_and_deviation("y", "legacy-silent")).unwrap_err();
        assert!(
            matches!(e.problem, ScenarioProblem::NoSuchRule { .. }),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            "folder: known deviation d names rule kernel-boot/y which does not exist"
        );
        let e = load(&rule_and_deviation("x", "executed")).unwrap_err();
        assert!(
            matches!(
                e.problem,
                ScenarioProblem::DeviationNotAnOutcome {
                    observed: Outcome::Executed,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("observes \"executed\""), "{e}");
        let [rules, _] = rule_and_deviation("x", "refused");
        let e = load(&[rules.clone(), rules]).unwrap_err();
        assert_eq!(e.to_string(), "folder: rule kernel-boot/x is defined twice");
    }

    #[test]
    fn an_unreadable_folder_is_a_read_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none");
        let e = Scenarios::load_dir(&missing).unwrap_err();
        assert_eq!(e.file, missing);
        assert!(matches!(e.problem, ScenarioProblem::Read(_)), "{e}");
    }

    /// A FIFO named like a scenario file would block the read forever; a device, never end.
    #[test]
    fn a_scenario_file_that_is_no_regular_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("a-fifo.json");
        let name = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo reads a NUL-terminated path and has no other preconditions.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o644) }, 0);
        let e = Scenarios::load_dir(dir.path()).unwrap_err();
        assert_eq!(e.file, fifo);
        assert!(
            e.to_string().ends_with("not a regular file but a FIFO"),
            "{e}"
        );
        std::fs::remove_file(&fifo).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.json")).unwrap();
        let e = Scenarios::load_dir(dir.path()).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("not a regular file but a character device"),
            "{e}"
        );
    }

    #[test]
    fn a_folder_without_rules_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a scenario").unwrap();
        let e = Scenarios::load_dir(dir.path()).unwrap_err();
        assert_eq!(e.file, dir.path());
        assert!(matches!(e.problem, ScenarioProblem::NoRules), "{e}");
        assert!(e
            .to_string()
            .starts_with(&format!("{}: no scenario rules", dir.path().display())));
    }

    #[test]
    fn a_bad_release_names_the_file_and_the_value() {
        let err = load(&[(
            "kernel-boot.json",
            r#"{"check": "kernel-boot", "rules": [{"id": "x", "when": {"edk2": {"from": "soon"}}, "expect": {"payload": "refused"}, "because": "b"}]}"#,
        )])
        .unwrap_err();
        assert_eq!(err.file, PathBuf::from("kernel-boot.json"));
        assert!(matches!(err.problem, ScenarioProblem::Json(_)), "{err}");
        assert!(
            err.to_string().contains("\"soon\" is not an edk2 release"),
            "{err}"
        );
    }

    #[test]
    fn outcome_lists_and_qemu_ranges_parse_and_match() {
        let e: Expectation =
            serde_json::from_str(r#"{"payload": ["verified", "legacy-silent"]}"#).unwrap();
        assert!(e.payload.admits(Outcome::LegacySilent));
        assert!(!e.payload.admits(Outcome::Refused));
        assert_eq!(e.payload.to_string(), "verified|legacy-silent");
        assert!(serde_json::from_str::<Expectation>(r#"{"payload": []}"#).is_err());
        let range: QemuRange = serde_json::from_str(r#"{"from": "10.0"}"#).unwrap();
        assert!(range.contains(Version::new(10, 0, 2)));
        assert!(!range.contains(Version::new(7, 2, 22)));
        assert!(serde_json::from_str::<QemuRange>(r#"{"from": "ten"}"#).is_err());
    }

    #[test]
    fn measured_builds_are_found_by_sha256() {
        let s = load(&[(
            "measured-boot.json",
            r#"{"measured_direct_boot": [{"executable_sha256": "ABCD", "build": "AmdSev", "reference": "r"}]}"#,
        )])
        .unwrap();
        assert!(s.measured_build("abcd").is_some());
        assert!(s.measured_build("abce").is_none());
    }

    #[test]
    fn rules_match_on_profile_release_and_tweak() {
        let d = crate::discover::descriptor::parse(
            Path::new("50.json"),
            r#"{"description": "d", "interface-types": ["uefi"],
                "mapping": {"device": "memory", "filename": "/fw.fd"},
                "targets": [{"architecture": "x86_64", "machines": ["pc-q35-*"]}],
                "features": ["secure-boot"], "tags": []}"#,
        )
        .unwrap();
        let when: Condition = serde_json::from_str(
            r#"{"profile": "upstream", "payload": "unsigned", "tweak": "none", "edk2": {"from": "2025.02"}}"#,
        )
        .unwrap();
        let subject = |profile, edk2: Option<&str>, tweak| Subject {
            descriptor: &d,
            edk2: edk2.and_then(Edk2Release::parse),
            qemu: Version::new(7, 2, 0),
            variant: Variant {
                tweak,
                ..Variant::new(Vars::OwnKeys, Payload::Unsigned)
            },
            sev: false,
            profile,
            sbat_revoked: false,
        };
        assert!(when.matches(&subject(Profile::Upstream, Some("2025.02"), Tweak::None)));
        assert!(!when.matches(&subject(Profile::Strict, Some("2025.02"), Tweak::None)));
        assert!(!when.matches(&subject(Profile::Upstream, Some("2024.11"), Tweak::None)));
        assert!(!when.matches(&subject(Profile::Upstream, None, Tweak::None)));
        assert!(!when.matches(&subject(
            Profile::Upstream,
            Some("2025.02"),
            Tweak::NoLegacyLoader
        )));
    }
}
