//! Expectations as data: what a firmware build must do in each cell, read from `scenarios/`.
//!
//! One file per check (`secure-boot.json`) holds ordered rules; the first rule whose condition
//! matches the cell (descriptor features, varstore variant, payload, SEV) gives the expectation.
//! `known-deviations.json` lists firmware builds known to break a rule, with a reference.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::descriptor::{Descriptor, Feature};

/// The built-in scenarios, so the binary works from any folder.
const BUILTIN: &[(&str, &str)] = &[
    (
        "secure-boot.json",
        include_str!("../../scenarios/secure-boot.json"),
    ),
    (
        "known-deviations.json",
        include_str!("../../scenarios/known-deviations.json"),
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    SecureBoot,
}

impl Check {
    pub const ALL: &'static [Check] = &[Check::SecureBoot];

    pub fn as_str(self) -> &'static str {
        match self {
            Check::SecureBoot => "secure-boot",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which variable store a cell boots with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Vars {
    /// A private copy of the descriptor's template, as shipped.
    Shipped,
    /// The template with our own PK, KEK and db enrolled and Secure Boot turned on.
    OwnKeys,
    /// The shipped (already enrolled) template with our db certificate added.
    DbAdded,
}

impl Vars {
    pub fn as_str(self) -> &'static str {
        match self {
            Vars::Shipped => "shipped",
            Vars::OwnKeys => "own-keys",
            Vars::DbAdded => "db-added",
        }
    }
}

/// Which probe image the cell boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Payload {
    /// Signed with the run's test db key.
    Signed,
    Unsigned,
}

impl Payload {
    pub const ALL: [Payload; 2] = [Payload::Signed, Payload::Unsigned];

    pub fn as_str(self) -> &'static str {
        match self {
            Payload::Signed => "signed",
            Payload::Unsigned => "unsigned",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Variant {
    pub vars: Vars,
    pub payload: Payload,
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-vars/{}", self.vars.as_str(), self.payload.as_str())
    }
}

/// What the firmware does with the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PayloadOutcome {
    Runs,
    Refused,
}

impl fmt::Display for PayloadOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PayloadOutcome::Runs => "runs",
            PayloadOutcome::Refused => "refused",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub payload: PayloadOutcome,
    /// What the probe must read from the `SecureBoot` variable when it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_boot: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_mode: Option<u8>,
}

/// `"any"` or one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Pick<T> {
    One(T),
    Any(AnyWord),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnyWord {
    Any,
}

impl<T: PartialEq> Pick<T> {
    fn admits(&self, value: &T) -> bool {
        match self {
            Pick::Any(_) => true,
            Pick::One(v) => v == value,
        }
    }
}

impl<T> Default for Pick<T> {
    fn default() -> Self {
        Pick::Any(AnyWord::Any)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// Feature names the descriptor must have; `!name` means it must not have it.
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub vars: Pick<Vars>,
    #[serde(default)]
    pub payload: Pick<Payload>,
    #[serde(default)]
    pub sev: Pick<bool>,
}

impl Condition {
    pub fn matches(&self, descriptor: &Descriptor, variant: Variant, sev: bool) -> bool {
        let features_ok = self.features.iter().all(|f| match f.strip_prefix('!') {
            Some(absent) => !descriptor.has(&Feature::parse(absent)),
            None => descriptor.has(&Feature::parse(f)),
        });
        features_ok
            && self.vars.admits(&variant.vars)
            && self.payload.admits(&variant.payload)
            && self.sev.admits(&sev)
    }
}

/// One rule of a check's scenario file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    pub when: Condition,
    pub expect: Expectation,
    /// Why the firmware must behave so.
    pub because: String,
}

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
    /// What the build does instead.
    pub observed: PayloadOutcome,
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

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scenarios {
    pub rules: Vec<(Check, Rule)>,
    pub deviations: Vec<KnownDeviation>,
    /// Where they came from (a folder, or "built-in").
    pub origin: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    pub file: PathBuf,
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.message)
    }
}

impl std::error::Error for ScenarioError {}

impl Scenarios {
    /// The scenarios compiled into the binary (the repository's `scenarios/` folder).
    pub fn builtin() -> Scenarios {
        let files = BUILTIN
            .iter()
            .map(|(name, text)| (PathBuf::from(name), text.to_string()));
        Scenarios::from_files("built-in", files).expect("built-in scenarios are valid")
    }

    /// Reads every `*.json` file of `dir`.
    pub fn load_dir(dir: &Path) -> Result<Scenarios, ScenarioError> {
        let err = |file: &Path, message: String| ScenarioError {
            file: file.to_path_buf(),
            message,
        };
        let entries = std::fs::read_dir(dir).map_err(|e| err(dir, e.to_string()))?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        let mut files = Vec::new();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|e| err(&path, e.to_string()))?;
            files.push((path, text));
        }
        Scenarios::from_files(&dir.display().to_string(), files)
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
            let err = |message: String| ScenarioError {
                file: path.clone(),
                message,
            };
            let value: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
            if value.get("deviations").is_some() {
                let file: DeviationFile =
                    serde_json::from_value(value).map_err(|e| err(e.to_string()))?;
                scenarios.deviations.extend(file.deviations);
            } else {
                let file: CheckFile =
                    serde_json::from_value(value).map_err(|e| err(e.to_string()))?;
                scenarios
                    .rules
                    .extend(file.rules.into_iter().map(|r| (file.check, r)));
            }
        }
        scenarios.validate()?;
        Ok(scenarios)
    }

    /// Rule ids are unique per check and every deviation names an existing rule.
    fn validate(&self) -> Result<(), ScenarioError> {
        let err = |message: String| ScenarioError {
            file: PathBuf::from(&self.origin),
            message,
        };
        for (i, (check, rule)) in self.rules.iter().enumerate() {
            if self.rules[..i]
                .iter()
                .any(|(c, r)| c == check && r.id == rule.id)
            {
                return Err(err(format!("rule {check}/{} is defined twice", rule.id)));
            }
        }
        for d in &self.deviations {
            if !self
                .rules
                .iter()
                .any(|(c, r)| *c == d.check && r.id == d.rule)
            {
                return Err(err(format!(
                    "known deviation {} names rule {}/{} which does not exist",
                    d.id, d.check, d.rule
                )));
            }
        }
        Ok(())
    }

    /// The first rule of `check` that matches the cell.
    pub fn rule_for(
        &self,
        check: Check,
        descriptor: &Descriptor,
        variant: Variant,
        sev: bool,
    ) -> Option<&Rule> {
        self.rules
            .iter()
            .filter(|(c, _)| *c == check)
            .map(|(_, r)| r)
            .find(|r| r.when.matches(descriptor, variant, sev))
    }

    /// Deviations recorded for this firmware build and rule.
    pub fn deviation_for(
        &self,
        check: Check,
        rule: &str,
        executable_sha256: &str,
    ) -> Option<&KnownDeviation> {
        self.deviations.iter().find(|d| {
            d.check == check
                && d.rule == rule
                && d.executable_sha256.eq_ignore_ascii_case(executable_sha256)
        })
    }
}
