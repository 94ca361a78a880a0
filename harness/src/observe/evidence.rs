//! What an observation is made of: the console lines it rests on, the values the guest read,
//! and the observation (or the undecided cell) a [`Watcher`](super::Watcher) concludes.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

use crate::boot::Console;
use crate::matrix::Outcome;
use crate::observe::probe::{PciDevice, ProbeReport};

/// One console line an observation rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    pub stream: Console,
    /// When it was read, from QEMU start.
    #[serde(rename = "at_ms", serialize_with = "millis")]
    pub at: Duration,
    pub line: String,
}

fn millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at_ms = u64::try_from(self.at.as_millis()).unwrap_or(u64::MAX);
        f.write_str(&evidence_text(self.stream.as_str(), at_ms, &self.line))
    }
}

/// An evidence line as people read it: `[serial +4.061 s] BdsDxe: failed to load ...`. Also
/// what `explain` prints of a recorded run.
pub fn evidence_text(stream: &str, at_ms: u64, line: &str) -> String {
    format!("[{stream} +{}.{:03} s] {line}", at_ms / 1000, at_ms % 1000)
}

/// The evidence of an observation, in console order: never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceLines(Vec<Evidence>);

impl EvidenceLines {
    pub fn new(first: Evidence) -> EvidenceLines {
        EvidenceLines(vec![first])
    }

    /// Adds `more`, keeping the lines in the order they were read.
    pub fn with(mut self, more: impl IntoIterator<Item = Evidence>) -> EvidenceLines {
        for e in more {
            if !self.0.contains(&e) {
                self.0.push(e);
            }
        }
        self.0.sort_by_key(|e| e.at);
        self
    }

    pub fn lines(&self) -> &[Evidence] {
        &self.0
    }
}

impl Serialize for EvidenceLines {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// A value the guest read, or why there is none. Absence is not a value: only the judge may
/// read it as one, where UEFI defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    Value(u8),
    /// The variable does not exist (the probe got EFI_NOT_FOUND).
    Absent,
    /// It could not be read, or nothing reported it; the text says why.
    Unknown(String),
}

impl Reading {
    pub fn value(&self) -> Option<u8> {
        match self {
            Reading::Value(v) => Some(*v),
            _ => None,
        }
    }
}

impl fmt::Display for Reading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reading::Value(v) => write!(f, "{v}"),
            Reading::Absent => f.write_str("absent"),
            Reading::Unknown(_) => f.write_str("unknown"),
        }
    }
}

impl Serialize for Reading {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Reading::Value(v) => s.serialize_u8(*v),
            Reading::Absent => s.serialize_str("absent"),
            Reading::Unknown(_) => s.serialize_str("unknown"),
        }
    }
}

/// How the firmware started a `-kernel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::Display)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum LoadPath {
    /// LoadImage/StartImage: the image was verified against db/dbx.
    LoadImage,
    /// OVMF's legacy Linux loader: no verification.
    LegacyLoader,
}

/// What a kernel-boot cell saw of the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelSeen {
    pub linux_version: String,
    pub command_line: Option<String>,
    /// From the firmware's own legacy-loader warning where it printed one, else from the
    /// kernel's command line (see [`loaded_by_load_image`](super::loaded_by_load_image)).
    pub loaded_by: Option<LoadPath>,
    pub legacy_warning: Option<String>,
}

/// What the firmware did, with the console lines that show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub outcome: Outcome,
    /// What the guest reported for Secure Boot (probe variable or kernel line).
    pub secure_boot: Reading,
    pub setup_mode: Reading,
    /// In words, for reasons: `ran (SecureBoot=1 SetupMode=0)`.
    pub description: String,
    pub evidence: EvidenceLines,
    /// A payload line that came after the firmware's refusal of it, in words.
    pub contradiction: Option<String>,
    /// Anything else worth knowing about how it was decided.
    pub notes: Vec<String>,
    pub probe: Option<ProbeReport>,
    pub kernel: Option<KernelSeen>,
    /// option-rom: the probe's report of the device that carries the ROM under test.
    pub rom: Option<PciDevice>,
    /// option-rom: the driver's marker as read (joined, when it was split over two lines).
    pub rom_marker: Option<String>,
    /// The refusal line, when the payload was refused.
    pub refusal: Option<String>,
}

impl Observation {
    pub fn new(outcome: Outcome, description: String, evidence: EvidenceLines) -> Observation {
        let none = || Reading::Unknown("no payload ran to report it".into());
        Observation {
            outcome,
            secure_boot: none(),
            setup_mode: none(),
            description,
            evidence,
            contradiction: None,
            notes: Vec::new(),
            probe: None,
            kernel: None,
            rom: None,
            rom_marker: None,
            refusal: None,
        }
    }
}

/// A cell the consoles did not decide: an error of the set-up or of the harness, never a
/// verdict on the firmware. Lines that were seen still travel with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecided {
    pub reason: String,
    pub evidence: Vec<Evidence>,
}

impl Undecided {
    pub(super) fn new(
        reason: impl Into<String>,
        evidence: impl IntoIterator<Item = Evidence>,
    ) -> Undecided {
        Undecided {
            reason: reason.into(),
            evidence: evidence.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::Check;
    use crate::observe::script::*;

    #[test]
    fn evidence_serializes_with_stream_and_milliseconds() {
        let o = observe(Check::SecureBoot, &[Serial(4123, PROBE)]).unwrap();
        let v = serde_json::to_value(&o.evidence).unwrap();
        assert_eq!(v[0]["stream"], "serial");
        assert_eq!(v[0]["at_ms"], 4123);
        assert_eq!(v[0]["line"], PROBE);
        assert_eq!(
            o.evidence.lines()[0].to_string(),
            format!("[serial +4.123 s] {PROBE}")
        );
    }

    #[test]
    fn readings_serialize_as_values_or_words() {
        assert_eq!(serde_json::to_value(Reading::Value(1)).unwrap(), 1);
        assert_eq!(serde_json::to_value(Reading::Absent).unwrap(), "absent");
        assert_eq!(
            serde_json::to_value(Reading::Unknown("x".into())).unwrap(),
            "unknown"
        );
    }
}
