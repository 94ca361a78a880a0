//! Judged cells for the tests of the report: real verdicts from the judge on console lines fed
//! through the watcher, one of every shape report.json knows.

use std::time::Duration;

use crate::discover::host::Accel;
use crate::discover::qemu::Version;
use crate::judge::{self, Case, Verdict};
use crate::matrix::{Check, Outcome, Payload, Variant, Vars};
use crate::observe::script::{self, Serial, Step, CMDLINE_LEGACY, LINUX, PROBE, SB_ON};
use crate::plan::admission::{AdmissionRule, Denial};
use crate::plan::{Action, Cell};
use crate::run::CellResult;
use crate::scenario::{Condition, Expectation, Outcomes, Rule, Scenarios};

pub fn cell(id: &str, check: Check) -> Cell {
    Cell {
        id: id.into(),
        descriptor: "50-edk2-x86_64-secure.json".into(),
        executable: "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd".into(),
        executable_sha256: Some("ab".repeat(32)),
        package: Some("ovmf 2022.11-6+deb12u2".into()),
        qemu_version: Version::new(7, 2, 22),
        machine: "pc-q35-7.2".into(),
        machine_globs: vec!["pc-q35-*".into()],
        accel: Accel::Tcg,
        accel_reason: "KVM unusable".into(),
        sev: false,
        confidential: crate::matrix::Confidential::Off,
        check,
        variant: Variant::new(Vars::OwnKeys, Payload::Signed),
        profile: crate::matrix::Profile::Strict,
        edk2: crate::discover::release::Edk2Release::parse("2022.11"),
        rule: None,
        payload: Vec::new(),
        secure_boot_support: true,
        action: Action::Skip(Denial::new(
            AdmissionRule::SevHost,
            "not booted in this test",
        )),
    }
}

/// A cell judged on `steps` against a rule that expects `expect`.
pub fn judged(id: &str, check: Check, expect: Outcome, steps: &[Step]) -> CellResult {
    let cell = cell(id, check);
    let rule = Rule {
        id: "r".into(),
        when: Condition::default(),
        expect: Expectation {
            payload: Outcomes::one(expect),
            secure_boot: None,
            setup_mode: None,
        },
        because: "because".into(),
    };
    let case = Case {
        check,
        tweak: cell.variant.tweak,
        qemu: cell.qemu_version,
        executable_sha256: None,
        secure_boot_support: true,
        build: "50-edk2-x86_64-secure.json",
        machine: "pc-q35-7.2",
        machine_globs: &[],
        edk2: None,
        accel: crate::discover::host::Accel::Tcg,
    };
    let verdict = judge::judge(
        &case,
        &rule,
        script::observe(check, steps),
        &Scenarios::default(),
    );
    CellResult {
        cell,
        verdict,
        decided: Some(Duration::from_millis(3421)),
        elapsed: Some(Duration::from_millis(3460)),
        deadline: false,
    }
}

pub fn passed(id: &str) -> CellResult {
    judged(id, Check::SecureBoot, Outcome::Runs, &[Serial(3421, PROBE)])
}

pub fn failed(id: &str) -> CellResult {
    judged(
        id,
        Check::SecureBoot,
        Outcome::Refused,
        &[Serial(3421, PROBE)],
    )
}

pub fn unjudged(id: &str, verdict: Verdict) -> CellResult {
    CellResult {
        cell: cell(id, Check::SecureBoot),
        verdict,
        decided: None,
        elapsed: None,
        deadline: false,
    }
}

/// A cell judged on `steps` against `rule`, with `scenarios`' deviations for `sha`.
pub fn judged_with(
    mut cell: Cell,
    rule: Rule,
    sha: Option<&str>,
    scenarios: &Scenarios,
    steps: &[Step],
) -> CellResult {
    let case = Case {
        check: cell.check,
        tweak: cell.variant.tweak,
        qemu: cell.qemu_version,
        executable_sha256: sha,
        secure_boot_support: true,
        build: "50-edk2-x86_64-secure.json",
        machine: "pc-q35-7.2",
        machine_globs: &[],
        edk2: None,
        accel: crate::discover::host::Accel::Tcg,
    };
    let verdict = judge::judge(&case, &rule, script::observe(cell.check, steps), scenarios);
    cell.rule = Some(rule);
    let decided = verdict.evidence().last().map(|e| e.at);
    CellResult {
        cell,
        verdict,
        decided,
        elapsed: Some(Duration::from_millis(9000)),
        deadline: false,
    }
}

pub fn rule(id: &str, expect: Outcome, secure_boot: Option<u8>) -> Rule {
    Rule {
        id: id.into(),
        when: Condition::default(),
        expect: Expectation {
            payload: Outcomes::one(expect),
            secure_boot,
            setup_mode: None,
        },
        because: format!("because {id}"),
    }
}

pub fn running(mut cell: Cell) -> Cell {
    cell.action = Action::Run(Box::new(crate::plan::RunSpec {
        check: cell.check,
        targets: script::targets(cell.check),
        grace: Duration::from_secs(8),
        argv: vec!["qemu-system-x86_64".into(), "-nodefaults".into()],
        dir: format!("/runs/x/cells/{}", cell.id).into(),
        copies: vec![],
        debug_log: None,
        deadline: Duration::from_secs(80),
        needs: vec![],
    }));
    cell
}

/// One judged cell of every shape report.json knows.
pub fn every_shape() -> Vec<CellResult> {
    let none = Scenarios::default();
    let sha = "ab".repeat(32);
    let mut deviating = Scenarios::default();
    deviating.deviations.push(crate::scenario::KnownDeviation {
        id: "test-legacy-fallback".into(),
        check: Check::KernelBoot,
        rule: "unsigned-refused".into(),
        executable_sha256: sha.clone(),
        package: "ovmf 2022.11-6+deb12u2".into(),
        tweak: None,
        qemu: None,
        observed: Outcome::LegacySilent,
        secure_boot: Some(1),
        reason: "the silent fallback".into(),
        reference: "CVE-2025-2296".into(),
    });
    let kernel = |id: &str, payload: Payload| {
        let mut c = cell(id, Check::KernelBoot);
        c.variant = Variant::new(Vars::OwnKeys, payload);
        running(c)
    };
    let mut refused = cell("sev-kernel", Check::KernelBoot);
    refused.sev = true;
    refused.confidential = crate::matrix::Confidential::Sev;
    refused.action = Action::Refused(Denial::new(
        AdmissionRule::SevKernelPolicy,
        "refused by policy: no measured build",
    ));
    let mut planned_error = cell("no-rule", Check::SecureBoot);
    planned_error.action = Action::Error(Denial::new(
        AdmissionRule::Expectation,
        "no expectation for this cell",
    ));
    let rom = |id: &str| running(cell(id, Check::OptionRom));
    vec![
        judged_with(
            running(cell("sb-pass", Check::SecureBoot)),
            rule("own-keys-signed", Outcome::Runs, Some(1)),
            None,
            &none,
            &[Serial(3421, PROBE)],
        ),
        judged_with(
            running(cell("sb-fail-contradiction", Check::SecureBoot)),
            rule("own-keys-unsigned", Outcome::Refused, None),
            None,
            &none,
            &[Serial(3000, script::OWN_REFUSAL), Serial(3421, PROBE)],
        ),
        judged_with(
            running(cell("sb-refused", Check::SecureBoot)),
            rule("own-keys-unsigned", Outcome::Refused, None),
            None,
            &none,
            &[
                Serial(3000, script::OWN_REFUSAL),
                Serial(3100, script::GAVE_UP),
            ],
        ),
        judged_with(
            running(cell("sb-nothing-bootable", Check::SecureBoot)),
            rule("own-keys-unsigned", Outcome::Refused, None),
            None,
            &none,
            &[
                Serial(4000, script::SHELL_REFUSAL),
                Serial(4100, script::GAVE_UP),
            ],
        ),
        judged_with(
            running(cell("sb-undecided", Check::SecureBoot)),
            rule("own-keys-signed", Outcome::Runs, Some(1)),
            None,
            &none,
            &[Serial(
                4000,
                r#"BdsDxe: failed to load Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x5,0x0): Not Found"#,
            )],
        ),
        judged_with(
            running(cell("sb-deadline", Check::SecureBoot)),
            rule("own-keys-signed", Outcome::Runs, Some(1)),
            None,
            &none,
            &[],
        ),
        judged_with(
            rom("rom-executed"),
            rule("signed", Outcome::Executed, None),
            None,
            &none,
            &[
                Serial(2000, script::OPROM),
                Serial(3000, script::PCI_ROM_RAN),
                Serial(3001, PROBE),
            ],
        ),
        judged_with(
            rom("rom-not-executed"),
            rule("unsigned", Outcome::NotExecuted, None),
            None,
            &none,
            &[Serial(3000, script::PCI_ROM_IDLE), Serial(3001, PROBE)],
        ),
        judged_with(
            kernel("kernel-deviation", Payload::Unsigned),
            rule("unsigned-refused", Outcome::Refused, None),
            Some(&sha),
            &deviating,
            &[
                Serial(5000, LINUX),
                Serial(5001, CMDLINE_LEGACY),
                Serial(5100, SB_ON),
            ],
        ),
        judged_with(
            kernel("kernel-verified", Payload::Signed),
            rule("signed", Outcome::Verified, Some(1)),
            None,
            &none,
            &[
                Serial(5000, LINUX),
                Serial(5001, script::CMDLINE_LOAD_IMAGE),
                Serial(5100, SB_ON),
            ],
        ),
        judged_with(
            kernel("kernel-warned", Payload::Unsigned),
            rule("unsigned-warned", Outcome::LegacyWarned, None),
            None,
            &none,
            &[
                Serial(4000, script::LEGACY_WARNING),
                Serial(5000, LINUX),
                Serial(5001, CMDLINE_LEGACY),
                Serial(5100, SB_ON),
            ],
        ),
        judged_with(
            kernel("kernel-refused", Payload::Unsigned),
            rule("unsigned-refused", Outcome::Refused, None),
            None,
            &none,
            &[
                Serial(900, script::NO_FALLBACK),
                Serial(1000, script::GAVE_UP),
            ],
        ),
        unjudged("sev-probe", Verdict::skip("host has no AMD SEV")),
        CellResult {
            cell: refused,
            ..unjudged("", Verdict::skip("refused by policy: no measured build"))
        },
        CellResult {
            cell: planned_error,
            ..unjudged("", Verdict::error("no expectation for this cell"))
        },
    ]
}

/// Cells of two generations on two QEMUs for the tables: real records of judged cells, with
/// their generation, QEMU, descriptor, variant and outcome set per case, and one SEV-on cell
/// that no table may show.
pub fn table_report() -> crate::report::record::Report {
    use crate::discover::release::Edk2Release;
    use crate::judge::VerdictKind;
    use crate::report::record::{CellRecord, PayloadOutcome};
    let template = CellRecord::new(&passed("template"));
    let make = |descriptor: &str,
                release: &str,
                qemu: Version,
                variant: Variant,
                outcome: Option<Outcome>,
                verdict: VerdictKind| {
        let mut c = template.clone();
        c.id = format!("{descriptor}@{release}/qemu-{qemu}/sev-off/kernel-boot/{variant}");
        c.descriptor = format!("{descriptor}.json");
        c.check = Check::KernelBoot;
        c.variant = variant;
        c.qemu_version = qemu;
        c.firmware.edk2_release = Edk2Release::parse(release);
        c.observed.payload = outcome.map(PayloadOutcome::Decided);
        c.verdict = verdict;
        c.admission_rule = (verdict == VerdictKind::Skip).then_some(AdmissionRule::Shim);
        c
    };
    let unsigned = Variant::new(Vars::DbAdded, Payload::Unsigned);
    let (q7, q10) = (Version::new(7, 2, 22), Version::new(10, 0, 2));
    let enrolled = "40-edk2-x86_64-secure-enrolled";
    let dev = VerdictKind::KnownDeviation;
    let mut cells = vec![
        make(
            enrolled,
            "2022.11",
            q7,
            unsigned,
            Some(Outcome::LegacySilent),
            dev,
        ),
        make(
            enrolled,
            "2025.02",
            q7,
            unsigned,
            Some(Outcome::LegacyWarned),
            dev,
        ),
        make(
            enrolled,
            "2025.02",
            q10,
            unsigned,
            Some(Outcome::Refused),
            VerdictKind::Pass,
        ),
        make(
            "60-edk2-x86_64",
            "2022.11",
            q7,
            Variant::new(Vars::Shipped, Payload::Unsigned),
            None,
            VerdictKind::Skip,
        ),
    ];
    let mut sev = cells[0].clone();
    sev.sev = true;
    sev.id = sev.id.replace("sev-off", "sev-on");
    sev.observed.payload = Some(PayloadOutcome::Decided(Outcome::Booted));
    cells.push(sev);
    crate::report::report_json(None, &cells)
}
