//! One typed record per cell: exactly what `report.json` holds for it (and what the cell's own
//! `verdict.json` holds), written from a [`CellResult`] and read back by `explain`, the tests
//! and anyone else. [`Report`] is the whole file.
//!
//! The JSON keeps its shape: `tests/golden/report.json` holds one cell of every kind, and the
//! tests of this module check every field name and value against it.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeOwned};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::words::{kebab, nullable, present, text, variant};

use crate::boot::Console;
use crate::discover::host::Accel;
use crate::discover::qemu::Version;
use crate::discover::release::Edk2Release;
use crate::judge::VerdictKind;
use crate::matrix::{Check, Outcome, Profile, Variant};
use crate::observe::evidence::{Evidence, LoadPath, Observation, Reading};
use crate::observe::probe::{PciDevice, ProbeReport};
use crate::plan::admission::AdmissionRule;
use crate::plan::Action;
use crate::run::CellResult;
use crate::scenario::{Expectation, KnownDeviation};

/// `report.json`: how the run was planned and went, and every cell of the run, in plan order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The run (for a merged report: the merge, with the shards in `shards`); absent in the
    /// reports of bootmatrix before 0.1 shards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunRecord>,
    /// A merged report: the run of each shard, in shard order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<RunRecord>,
    pub cells: Vec<CellRecord>,
}

/// What a run was planned from and how it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The digest of the whole planned matrix's inputs (`plan::shard::fingerprint`): the same
    /// for every shard of one matrix.
    pub plan_fingerprint: String,
    /// Every cell id of the whole planned matrix (all shards), in plan order.
    pub planned: Vec<String>,
    /// The shard this run was; absent for the whole matrix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::plan::shard::Shard>,
    /// The run folder the cells' `log_dir` were written under.
    pub run_dir: PathBuf,
    /// When the run started (UTC, RFC 3339).
    pub started: String,
    pub figures: crate::run::Figures,
}

impl Report {
    pub fn new(results: &[CellResult]) -> Report {
        Report {
            run: None,
            shards: Vec::new(),
            cells: results.iter().map(CellRecord::new).collect(),
        }
    }

    /// Reads a `report.json`.
    pub fn read(path: &Path) -> Result<Report, String> {
        read_json(path)
    }

    /// The cell with this id.
    pub fn cell(&self, id: &str) -> Option<&CellRecord> {
        self.cells.iter().find(|c| c.id == id)
    }
}

/// Reads a JSON file written by [`super::write_json`] (`report.json`, `verdict.json`).
/// Only a regular file of at most [`REPORT_LIMIT`] bytes is read.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, String> {
    let bytes = crate::tools::read_input(path, crate::tools::REPORT_LIMIT)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// One cell: what was planned, what the guest showed, and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellRecord {
    pub id: String,
    /// The descriptor's file name.
    pub descriptor: String,
    pub qemu_version: Version,
    pub machine: String,
    pub accel: Accel,
    /// Why that accelerator (`KVM unusable: ...`).
    pub accel_reason: String,
    pub sev: bool,
    pub check: Check,
    /// `own-keys-vars/signed`, `own-keys-vars/unsigned/no-legacy-loader`.
    #[serde(serialize_with = "text", deserialize_with = "variant")]
    pub variant: Variant,
    pub profile: Profile,
    pub verdict: VerdictKind,
    /// Why the verdict (for a skip: why the cell did not boot).
    pub reason: String,
    /// Skipped because the planner refuses the configuration, not because the host cannot.
    pub refused_by_planner: bool,
    /// The planner's admission rule that skipped, refused or errored the cell before it booted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission_rule: Option<AdmissionRule>,
    pub observed: Observed,
    /// From QEMU start to the last console line the verdict rests on.
    pub decided_ms: Option<u64>,
    /// From QEMU start to QEMU reaped; None for a cell that did not boot.
    pub elapsed_ms: Option<u64>,
    pub firmware: FirmwareRecord,
    /// distro-chain: the shim, grub and kernel it boots (suite, package, sha256).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payload: Vec<crate::plan::variants::PayloadPart>,
    /// The rule the cell was judged by; absent for a cell without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expectation: Option<ExpectationRecord>,
    /// The known deviation that excuses the cell (or that did not happen: stale).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deviation: Option<KnownDeviation>,
    /// The command line that booted it; absent for a cell that was not to boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// The cell's folder: logs, varstore copy, `verdict.json`; only for a cell that booted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_dir: Option<PathBuf>,
}

/// The record as in `report.json` (pretty JSON), for messages.
impl fmt::Display for CellRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_string_pretty(self).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

/// What the firmware did, as the guest and the consoles showed it. Empty (`{}`) for a cell that
/// showed nothing; only `payload: undecided` and `evidence` for a boot that decided nothing.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Observed {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<PayloadOutcome>,
    /// What the guest reported for Secure Boot (probe variable or kernel line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_boot: Option<VarReading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_mode: Option<VarReading>,
    /// The probe's other readings, where the probe ran.
    #[serde(flatten)]
    pub probe: Option<ProbeRecord>,
    /// In words: `ran (SecureBoot=1 SetupMode=0)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The console lines the verdict rests on, in console order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<EvidenceRecord>,
    /// A payload line that came after the firmware's refusal of it, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contradiction: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The refusal line, when the payload was refused.
    #[serde(rename = "line", default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// option-rom: the probe's report of the device that carries the ROM under test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rom: Option<PciRecord>,
    /// option-rom cells only (absent for the others): the driver's marker as read, or null.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "present",
        deserialize_with = "nullable"
    )]
    pub rom_marker: Option<Option<String>>,
    /// kernel-boot: what the kernel said.
    #[serde(flatten)]
    pub kernel: Option<KernelRecord>,
}

impl Observed {
    fn new(result: &CellResult) -> Observed {
        let verdict = &result.verdict;
        let Some(o) = verdict.observation() else {
            // The lines an undecided boot did show.
            let evidence: Vec<EvidenceRecord> = verdict.evidence().iter().map(Into::into).collect();
            return Observed {
                payload: (!evidence.is_empty()).then_some(PayloadOutcome::Undecided),
                evidence,
                ..Observed::default()
            };
        };
        Observed::of(o, result.cell.check)
    }

    fn of(o: &Observation, check: Check) -> Observed {
        Observed {
            payload: Some(PayloadOutcome::Decided(o.outcome)),
            secure_boot: Some((&o.secure_boot).into()),
            setup_mode: Some((&o.setup_mode).into()),
            probe: o.probe.as_ref().map(Into::into),
            description: Some(o.description.clone()),
            evidence: o.evidence.lines().iter().map(Into::into).collect(),
            contradiction: o.contradiction.clone(),
            notes: o.notes.clone(),
            refusal: o.refusal.clone(),
            rom: o.rom.as_ref().map(Into::into),
            rom_marker: (check == Check::OptionRom).then(|| o.rom_marker.clone()),
            kernel: o.kernel.as_ref().map(|k| KernelRecord {
                linux_version: k.linux_version.clone(),
                command_line: k.command_line.clone(),
                loaded_by: k.loaded_by,
                legacy_warning: k.legacy_warning.clone(),
            }),
        }
    }

    /// The outcome, when the cell was decided.
    pub fn outcome(&self) -> Option<Outcome> {
        match self.payload {
            Some(PayloadOutcome::Decided(o)) => Some(o),
            _ => None,
        }
    }

    /// The SecureBoot value the guest reported, when it reported a value.
    pub fn secure_boot_value(&self) -> Option<u8> {
        self.secure_boot.and_then(VarReading::value)
    }

    /// The driver's marker of an option-rom cell, when it was read.
    pub fn rom_marker(&self) -> Option<&str> {
        self.rom_marker.as_ref()?.as_deref()
    }
}

/// `observed.payload`: the outcome, or `undecided` for a boot whose lines decided nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadOutcome {
    Decided(Outcome),
    Undecided,
}

const UNDECIDED: &str = "undecided";

impl fmt::Display for PayloadOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PayloadOutcome::Decided(o) => o.fmt(f),
            PayloadOutcome::Undecided => f.write_str(UNDECIDED),
        }
    }
}

impl Serialize for PayloadOutcome {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PayloadOutcome {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text == UNDECIDED {
            return Ok(PayloadOutcome::Undecided);
        }
        kebab(&text).map(PayloadOutcome::Decided)
    }
}

/// A UEFI variable as the guest read it: a value, `absent`, or `unknown` (not read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarReading {
    Value(u8),
    Absent,
    Unknown,
}

impl VarReading {
    pub fn value(self) -> Option<u8> {
        match self {
            VarReading::Value(v) => Some(v),
            _ => None,
        }
    }
}

impl From<&Reading> for VarReading {
    fn from(r: &Reading) -> VarReading {
        match r {
            Reading::Value(v) => VarReading::Value(*v),
            Reading::Absent => VarReading::Absent,
            Reading::Unknown(_) => VarReading::Unknown,
        }
    }
}

impl fmt::Display for VarReading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VarReading::Value(v) => write!(f, "{v}"),
            VarReading::Absent => f.write_str("absent"),
            VarReading::Unknown => f.write_str("unknown"),
        }
    }
}

impl Serialize for VarReading {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            VarReading::Value(v) => s.serialize_u8(*v),
            other => s.collect_str(other),
        }
    }
}

impl<'de> Deserialize<'de> for VarReading {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Value(u8),
            Word(String),
        }
        match Raw::deserialize(d)? {
            Raw::Value(v) => Ok(VarReading::Value(v)),
            Raw::Word(w) if w == "absent" => Ok(VarReading::Absent),
            Raw::Word(w) if w == "unknown" => Ok(VarReading::Unknown),
            Raw::Word(w) => Err(de::Error::custom(format!(
                "{w:?} is no reading (a byte, absent or unknown)"
            ))),
        }
    }
}

/// What the probe read besides SecureBoot and SetupMode (those are in [`Observed`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRecord {
    pub audit_mode: VarReading,
    pub deployed_mode: VarReading,
    pub firmware_vendor: String,
    pub firmware_revision: String,
    pub uefi_revision: String,
}

impl From<&ProbeReport> for ProbeRecord {
    fn from(p: &ProbeReport) -> ProbeRecord {
        ProbeRecord {
            audit_mode: (&p.audit_mode).into(),
            deployed_mode: (&p.deployed_mode).into(),
            firmware_vendor: p.firmware_vendor.clone(),
            firmware_revision: p.firmware_revision.clone(),
            uefi_revision: p.uefi_revision.clone(),
        }
    }
}

/// One console line a verdict rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceRecord {
    pub stream: Console,
    /// When it was read, from QEMU start.
    pub at_ms: u64,
    pub line: String,
}

impl From<&Evidence> for EvidenceRecord {
    fn from(e: &Evidence) -> EvidenceRecord {
        EvidenceRecord {
            stream: e.stream,
            at_ms: millis(e.at),
            line: e.line.clone(),
        }
    }
}

/// `[serial +4.061 s] BdsDxe: failed to load ...`, as the summary prints evidence.
impl fmt::Display for EvidenceRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text =
            crate::observe::evidence::evidence_text(self.stream.as_str(), self.at_ms, &self.line);
        f.write_str(&text)
    }
}

/// The probe's report of one PCI device and its option ROM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciRecord {
    pub loc: String,
    pub id: String,
    pub class: String,
    pub rom_size: Option<u64>,
    pub rom_image: Option<bool>,
    pub images: Option<u32>,
}

impl From<&PciDevice> for PciRecord {
    fn from(d: &PciDevice) -> PciRecord {
        PciRecord {
            loc: d.loc.clone(),
            id: d.id.clone(),
            class: d.class.clone(),
            rom_size: d.rom_size,
            rom_image: d.rom_image,
            images: d.images,
        }
    }
}

/// What a kernel-boot cell saw of the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelRecord {
    pub linux_version: String,
    pub command_line: Option<String>,
    pub loaded_by: Option<LoadPath>,
    pub legacy_warning: Option<String>,
}

/// Which build ran: from the descriptor and its package, and from the guest's own report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwareRecord {
    pub executable: PathBuf,
    pub sha256: Option<String>,
    pub package: Option<String>,
    pub edk2_release: Option<Edk2Release>,
    pub vendor: Option<String>,
    pub revision: Option<String>,
    pub uefi_revision: Option<String>,
}

/// The rule a cell was judged by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectationRecord {
    pub rule: String,
    pub profile: Profile,
    pub expect: Expectation,
    pub because: String,
}

impl CellRecord {
    pub fn new(result: &CellResult) -> CellRecord {
        let cell = &result.cell;
        let verdict = &result.verdict;
        let probe = verdict.observation().and_then(|o| o.probe.as_ref());
        let spec = match &cell.action {
            Action::Run(spec) => Some(spec),
            _ => None,
        };
        CellRecord {
            id: cell.id.clone(),
            descriptor: cell.descriptor.clone(),
            qemu_version: cell.qemu_version,
            machine: cell.machine.clone(),
            accel: cell.accel,
            accel_reason: cell.accel_reason.clone(),
            sev: cell.sev,
            check: cell.check,
            variant: cell.variant,
            profile: cell.profile,
            verdict: verdict.kind(),
            reason: verdict.reason().to_string(),
            refused_by_planner: matches!(cell.action, Action::Refused(_)),
            admission_rule: cell.action.denial().map(|d| d.rule),
            observed: Observed::new(result),
            decided_ms: result.decided.map(millis),
            elapsed_ms: result.elapsed.map(millis),
            firmware: FirmwareRecord {
                executable: cell.executable.clone(),
                sha256: cell.executable_sha256.clone(),
                package: cell.package.clone(),
                edk2_release: cell.edk2,
                vendor: probe.map(|r| r.firmware_vendor.clone()),
                revision: probe.map(|r| r.firmware_revision.clone()),
                uefi_revision: probe.map(|r| r.uefi_revision.clone()),
            },
            payload: cell.payload.clone(),
            expectation: cell.rule.as_ref().map(|rule| ExpectationRecord {
                rule: rule.id.clone(),
                profile: cell.profile,
                expect: rule.expect.clone(),
                because: rule.because.clone(),
            }),
            deviation: verdict.deviation().cloned(),
            argv: spec.map(|s| s.argv.clone()),
            // Only a cell that booted has its folder; the others never got one.
            log_dir: spec
                .filter(|_| result.elapsed.is_some())
                .map(|s| s.dir.clone()),
        }
    }

    /// The lines the verdict rests on (for an error: what its boot did show).
    pub fn evidence(&self) -> &[EvidenceRecord] {
        &self.observed.evidence
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::script::{Serial, CMDLINE_LEGACY, LINUX, PROBE, SB_ON};
    use crate::report::fixtures::{every_shape, judged, passed};
    use crate::report::write_json;
    use serde_json::Value;

    fn golden_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/report.json")
    }

    /// The names of a JSON object's fields, sorted.
    fn keys(v: &Value) -> Vec<&str> {
        let Value::Object(map) = v else {
            panic!("not an object: {v}")
        };
        map.keys().map(String::as_str).collect()
    }

    /// The schema itself: a record of a real judged cell has exactly the documented fields.
    #[test]
    fn a_record_serializes_to_the_documented_field_names_and_values() {
        let mut result = passed("a/b");
        result.cell = crate::report::fixtures::running(result.cell);
        let v = serde_json::to_value(CellRecord::new(&result)).unwrap();
        assert_eq!(
            keys(&v),
            [
                "accel",
                "accel_reason",
                "argv",
                "check",
                "decided_ms",
                "descriptor",
                "elapsed_ms",
                "firmware",
                "id",
                "log_dir",
                "machine",
                "observed",
                "profile",
                "qemu_version",
                "reason",
                "refused_by_planner",
                "sev",
                "variant",
                "verdict",
            ],
            "{v:#}"
        );
        assert_eq!(
            keys(&v["observed"]),
            [
                "audit_mode",
                "deployed_mode",
                "description",
                "evidence",
                "firmware_revision",
                "firmware_vendor",
                "payload",
                "secure_boot",
                "setup_mode",
                "uefi_revision",
            ],
            "{v:#}"
        );
        assert_eq!(
            keys(&v["firmware"]),
            [
                "edk2_release",
                "executable",
                "package",
                "revision",
                "sha256",
                "uefi_revision",
                "vendor"
            ]
        );
        assert_eq!(v["verdict"], "pass");
        assert_eq!(v["accel"], "tcg");
        assert_eq!(v["check"], "secure-boot");
        assert_eq!(v["qemu_version"], "7.2.22");
        assert_eq!(v["variant"], "own-keys-vars/signed");
        assert_eq!(v["decided_ms"], 3421);
        assert_eq!(v["log_dir"], "/runs/x/cells/a/b");
        assert_eq!(v["observed"]["payload"], "runs");
        assert_eq!(v["observed"]["secure_boot"], 1);
        assert_eq!(v["observed"]["deployed_mode"], "absent");
        assert_eq!(v["firmware"]["edk2_release"], "2022.11");
        let evidence = v["observed"]["evidence"].as_array().unwrap();
        assert_eq!(evidence.len(), 1);
        assert_eq!(keys(&evidence[0]), ["at_ms", "line", "stream"]);
        assert_eq!(evidence[0]["stream"], "serial");
        assert_eq!(evidence[0]["at_ms"], 3421);
        assert_eq!(evidence[0]["line"], PROBE);
    }

    /// report.json keeps its shape: every field name and value of every kind of cell, against
    /// `tests/golden/report.json` (written by the writer before records; `BOOTMATRIX_BLESS=1`
    /// rewrites it after a deliberate change).
    #[test]
    fn report_json_matches_its_golden_file() {
        let report = Report::new(&every_shape());
        let path = golden_path();
        if std::env::var_os("BOOTMATRIX_BLESS").is_some() {
            // Through a Value, so the keys are sorted as in the file.
            write_json(&path, &serde_json::to_value(&report).unwrap()).unwrap();
        }
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; run with BOOTMATRIX_BLESS=1", path.display()));
        let golden: Value = serde_json::from_str(&text).unwrap();
        let actual = serde_json::to_value(&report).unwrap();
        assert_eq!(keys(&golden), keys(&actual));
        let (Value::Array(golden), Value::Array(actual)) = (&golden["cells"], &actual["cells"])
        else {
            panic!("no cells array");
        };
        assert_eq!(golden.len(), actual.len());
        for (g, a) in golden.iter().zip(actual) {
            assert_eq!(g, a, "{} differs from {}", a["id"], path.display());
        }
    }

    #[test]
    fn the_golden_report_reads_back_as_the_records_that_wrote_it() {
        let read = Report::read(&golden_path()).unwrap();
        let records = Report::new(&every_shape());
        for (r, expected) in read.cells.iter().zip(&records.cells) {
            assert_eq!(r, expected, "{} reads back differently", expected.id);
        }
        assert_eq!(read, records);
    }

    #[test]
    fn a_report_written_to_disk_reads_back_equal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        let report = Report::new(&every_shape());
        write_json(&path, &report).unwrap();
        let read = Report::read(&path).unwrap();
        assert_eq!(read, report);
        let cell = read.cell("kernel-deviation").expect("the cell");
        assert_eq!(cell.verdict, VerdictKind::KnownDeviation);
        assert_eq!(
            cell.deviation.as_ref().map(|d| d.id.as_str()),
            Some("test-legacy-fallback")
        );
        assert!(read.cell("no-such-cell").is_none());
        // What cannot be read says which file.
        std::fs::write(&path, r#"{"cells": [{"id": "x"}]}"#).unwrap();
        let err = Report::read(&path).unwrap_err();
        assert!(err.contains("report.json"), "{err}");
    }

    #[test]
    fn every_shape_reads_back_with_its_typed_fields() {
        let report = Report::new(&every_shape());
        let cell = |id: &str| report.cell(id).unwrap_or_else(|| panic!("no {id}"));
        let rom = cell("rom-executed");
        assert_eq!(rom.observed.outcome(), Some(Outcome::Executed));
        assert_eq!(
            rom.observed.rom_marker(),
            Some("BOOTMATRIX-OPROM v=1 loaded")
        );
        assert_eq!(rom.observed.rom.as_ref().unwrap().images, Some(1));
        let idle = cell("rom-not-executed");
        assert_eq!(idle.observed.rom_marker, Some(None), "present, null");
        assert_eq!(cell("sb-pass").observed.rom_marker, None, "absent");
        let undecided = cell("sb-undecided");
        assert_eq!(undecided.observed.payload, Some(PayloadOutcome::Undecided));
        assert_eq!(undecided.observed.outcome(), None);
        assert_eq!(undecided.evidence().len(), 1);
        assert_eq!(cell("sb-deadline").observed, Observed::default());
        let refused = cell("sb-refused");
        assert!(refused
            .observed
            .refusal
            .as_deref()
            .unwrap()
            .ends_with("Access Denied"));
        assert_eq!(refused.observed.secure_boot, Some(VarReading::Unknown));
        assert!(cell("sb-fail-contradiction")
            .observed
            .contradiction
            .is_some());
        assert!(!cell("sb-nothing-bootable").observed.notes.is_empty());
        let warned = cell("kernel-warned");
        let kernel = warned.observed.kernel.as_ref().unwrap();
        assert_eq!(kernel.loaded_by, Some(LoadPath::LegacyLoader));
        assert!(kernel.legacy_warning.is_some());
        assert!(cell("sev-kernel").refused_by_planner);
        assert_eq!(cell("sev-kernel").argv, None);
        assert_eq!(cell("no-rule").verdict, VerdictKind::Error);
    }

    #[test]
    fn kernel_cells_report_the_loader_path_and_firmware_identity() {
        let r = judged(
            "k",
            Check::KernelBoot,
            Outcome::LegacySilent,
            &[
                Serial(5000, LINUX),
                Serial(5001, CMDLINE_LEGACY),
                Serial(5100, SB_ON),
            ],
        );
        let rec = CellRecord::new(&r);
        assert_eq!(rec.observed.outcome(), Some(Outcome::LegacySilent), "{rec}");
        let kernel = rec.observed.kernel.as_ref().expect("kernel fields");
        assert_eq!(kernel.loaded_by, Some(LoadPath::LegacyLoader), "{rec}");
        assert_eq!(kernel.linux_version, LINUX, "{rec}");
        assert_eq!(rec.observed.secure_boot_value(), Some(1), "{rec}");
        assert_eq!(rec.evidence().len(), 3, "{rec}");
        assert_eq!(rec.observed.probe, None, "{rec}");
        assert_eq!(rec.firmware.edk2_release, Edk2Release::parse("2022.11"));
        assert_eq!(
            rec.firmware.package.as_deref(),
            Some("ovmf 2022.11-6+deb12u2")
        );
        assert_eq!(rec.firmware.revision, None, "no probe, no revision: {rec}");
        let probe = CellRecord::new(&passed("p"));
        assert_eq!(probe.firmware.revision.as_deref(), Some("0x00010000"));
        assert_eq!(probe.firmware.vendor.as_deref(), Some("EDK II"));
        assert_eq!(probe.observed.kernel, None);
    }

    #[test]
    fn readings_outcomes_and_evidence_are_read_strictly() {
        let v: VarReading = serde_json::from_str("1").unwrap();
        assert_eq!(v, VarReading::Value(1));
        let v: VarReading = serde_json::from_str(r#""absent""#).unwrap();
        assert_eq!(v, VarReading::Absent);
        assert!(serde_json::from_str::<VarReading>(r#""maybe""#).is_err());
        assert!(serde_json::from_str::<VarReading>("300").is_err());
        let p: PayloadOutcome = serde_json::from_str(r#""legacy-silent""#).unwrap();
        assert_eq!(p, PayloadOutcome::Decided(Outcome::LegacySilent));
        assert!(serde_json::from_str::<PayloadOutcome>(r#""ran""#).is_err());
        let e: EvidenceRecord =
            serde_json::from_str(r#"{"stream": "debug", "at_ms": 12, "line": "x"}"#).unwrap();
        assert_eq!(e.stream, Console::Debug);
        assert_eq!(e.to_string(), "[debug +0.012 s] x");
        let err = serde_json::from_str::<EvidenceRecord>(
            r#"{"stream": "stderr", "at_ms": 12, "line": "x"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("unknown variant `stderr`, expected one of `serial`, `debug`, `qemu-log`, `varstore`"),
            "{err}"
        );
    }

    #[test]
    fn a_report_is_read_only_from_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = Report::read(dir.path()).unwrap_err();
        assert!(
            err.starts_with(&format!("cannot read {}: ", dir.path().display())),
            "{err}"
        );
        assert!(err.ends_with("not a regular file but a folder"), "{err}");
        let fifo = dir.path().join("report.json");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let err = Report::read(&fifo).unwrap_err();
        assert!(err.contains("fifo") || err.contains("FIFO"), "{err}");
    }
}
