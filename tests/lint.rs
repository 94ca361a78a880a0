//! `bootmatrix lint` over a corpus of real command-line shapes (`tests/data/lint/*.args`, one
//! line per file, each with a header saying where its shape comes from): every file gives
//! exactly the findings the table names, every finding id is produced by some line and absent
//! from the line that fixes it, and firmware is identified by sha256 where its path says
//! nothing. The descriptors are `tests/data/descriptors` (plus `tests/data/lint/descriptors`),
//! with the edk2 release each row names; nothing is booted.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use bootmatrix::discover::search;
use bootmatrix::discover::words;
use bootmatrix::discover::Firmware;
use bootmatrix::lint;
use bootmatrix::scenario::lint::FindingId::{self, *};
use bootmatrix::scenario::{MeasuredBuild, Scenarios};
use strum::VariantArray;

fn data(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(path)
}

/// The sha256 the AmdSev descriptor's build has in these tests (listed as measured).
const AMDSEV_SHA: &str = "5eb1c0ffee5eb1c0ffee5eb1c0ffee5eb1c0ffee5eb1c0ffee5eb1c0ffee0001";

/// The test descriptors as firmware of edk2 `release`, identities fixed (no host file read).
fn firmware(release: &str) -> Vec<Firmware> {
    let found = search::scan(&[data("descriptors"), data("lint/descriptors")]);
    assert!(found.errors.is_empty(), "{:?}", found.errors);
    found
        .descriptors
        .into_iter()
        .map(|descriptor| Firmware {
            executable_sha256: if descriptor.name.contains("amdsev") {
                Ok(AMDSEV_SHA.to_string())
            } else {
                Err("not read in this test".into())
            },
            package: Some(format!("ovmf {release}-1")),
            tree: None,
            descriptor,
        })
        .collect()
}

fn scenarios() -> Scenarios {
    let mut s = Scenarios::builtin();
    s.measured.push(MeasuredBuild {
        executable_sha256: AMDSEV_SHA.into(),
        package: String::new(),
        build: "OvmfPkg/AmdSev (test)".into(),
        reference: "test".into(),
    });
    s
}

fn lint_file(name: &str, release: &str) -> lint::Report {
    let text = std::fs::read_to_string(data("lint").join(name)).unwrap();
    let argv = words::split(&text).unwrap();
    lint::lint(&argv, &firmware(release), &scenarios()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// (file, edk2 release of the descriptors, the findings expected, the findings whose fix this
/// line is).
const TABLE: &[(&str, &str, &[FindingId], &[FindingId])] = &[
    (
        "libvirt-q35-secboot-blockdev.args",
        "2022.11",
        &[],
        &[
            FirmwareUnidentified,
            SecureBootBios,
            SecureBootNoVarstore,
            SmmNotOn,
            PflashNotSecure,
            VarstoreIsTemplate,
            VarstoreReadonly,
            MachineNotSupported,
        ],
    ),
    ("libvirt-q35-secboot-drive.args", "2022.11", &[], &[]),
    (
        "libvirt-q35-no-smm.args",
        "2022.11",
        &[SmmNotOn, PflashNotSecure],
        &[],
    ),
    (
        "libvirt-nvram-template-shared.args",
        "2022.11",
        &[VarstoreIsTemplate],
        &[],
    ),
    (
        "blog-readonly-varstore.args",
        "2022.11",
        &[VarstoreReadonly],
        &[],
    ),
    (
        "kata-bios-secboot.args",
        "2022.11",
        &[SecureBootBios, SmmNotOn, KernelLegacyLoaderNoSwitch],
        &[],
    ),
    (
        "single-pflash-secboot.args",
        "2022.11",
        &[SecureBootNoVarstore],
        &[],
    ),
    (
        "mkosi-direct-kernel.args",
        "2025.02",
        &[KernelLegacyLoader],
        &[],
    ),
    (
        "mkosi-direct-kernel.args",
        "2026.02",
        &[],
        &[KernelLegacyLoader, KernelLegacyLoaderNoSwitch],
    ),
    (
        "mkosi-direct-kernel-no-legacy.args",
        "2025.02",
        &[],
        &[KernelLegacyLoader],
    ),
    (
        "mkosi-direct-kernel-no-legacy.args",
        "2022.11",
        &[KernelLegacyLoaderNoSwitch],
        &[],
    ),
    (
        "kata-snp.args",
        "2026.08",
        &[],
        &[
            SevKernelUnhashed,
            SevKernelUnverified,
            ConfidentialRomfile,
            SevSplitVarstore,
        ],
    ),
    (
        "kata-snp-unhashed.args",
        "2026.08",
        &[SevKernelUnhashed],
        &[],
    ),
    (
        "snp-generic-ovmf.args",
        "2025.02",
        &[SevKernelUnverified],
        &[],
    ),
    (
        "libvirt-sev-pflash.args",
        "2022.11",
        &[SevSplitVarstore],
        &[],
    ),
    (
        "libvirt-sev-romfile.args",
        "2026.08",
        &[ConfidentialRomfile],
        &[],
    ),
    (
        "tdx-bios-inteltdx-ms.args",
        "2026.08",
        &[],
        &[SecureBootBios],
    ),
    (
        "i440fx-smm-build.args",
        "2022.11",
        &[MachineNotSupported],
        &[],
    ),
    (
        "vendor-firmware.args",
        "2022.11",
        &[FirmwareUnidentified],
        &[],
    ),
];

#[test]
fn each_line_of_the_corpus_gives_exactly_its_findings() {
    let mut wrong = Vec::new();
    for (file, release, expected, _) in TABLE {
        let report = lint_file(file, release);
        let got: BTreeSet<FindingId> = report.ids().into_iter().collect();
        let want: BTreeSet<FindingId> = expected.iter().copied().collect();
        if got != want {
            wrong.push(format!(
                "{file} (edk2 {release}): got {got:?}, expected {want:?}\n{}",
                lint::text(&report)
            ));
        }
        assert_eq!(
            report.exit_code(),
            u8::from(
                report
                    .findings
                    .iter()
                    .any(|f| f.severity.to_string() == "error")
            ),
        );
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_finding_is_produced_and_gone_on_the_fixed_line() {
    for id in FindingId::VARIANTS {
        assert!(
            TABLE
                .iter()
                .any(|(_, _, expected, _)| expected.contains(id)),
            "no line of the corpus produces {id}"
        );
        let fixed = TABLE.iter().find(|(_, _, _, fixes)| fixes.contains(id));
        let (file, release, expected, _) =
            fixed.unwrap_or_else(|| panic!("no line of the corpus is the fix of {id}"));
        assert!(!expected.contains(id), "{file} fixes and has {id}");
        assert!(
            !lint_file(file, release).ids().contains(id),
            "{file} still has {id}"
        );
    }
}

#[test]
fn every_corpus_file_is_in_the_table_and_says_where_its_shape_comes_from() {
    for entry in std::fs::read_dir(data("lint")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "args") {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(
            TABLE.iter().any(|(f, ..)| *f == name),
            "{name} is in no row of TABLE"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# "), "{name} has no comment header");
        assert!(
            text.contains("written for this corpus"),
            "{name}: where is it from?"
        );
    }
}

#[test]
fn a_finding_names_its_words_reason_and_reference() {
    let report = lint_file("kata-bios-secboot.args", "2022.11");
    let bios = report
        .findings
        .iter()
        .find(|f| f.id == SecureBootBios)
        .unwrap();
    let words: Vec<&str> = bios.words.iter().map(|w| w.word.as_str()).collect();
    assert_eq!(words, ["-bios", "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"]);
    assert_eq!(report.argv[bios.words[0].index], "-bios");
    assert!(bios.reason.contains("-bios"), "{}", bios.reason);
    assert!(bios.reference.contains("Ersek"), "{}", bios.reference);
    assert!(
        bios.detail.contains("50-edk2-x86_64-secure.json"),
        "{}",
        bios.detail
    );
    let kernel = report
        .findings
        .iter()
        .find(|f| f.id == KernelLegacyLoaderNoSwitch)
        .unwrap();
    assert!(kernel.detail.contains("2022.11"), "{}", kernel.detail);
    assert!(kernel.reason.contains("CVE-2025-2296"), "{}", kernel.reason);
    assert_eq!(report.exit_code(), 1);
    let seen = report.firmware.as_ref().unwrap();
    assert_eq!(
        seen.descriptor.as_deref(),
        Some("50-edk2-x86_64-secure.json")
    );
    assert_eq!(seen.loaded_as, "bios");
}

#[test]
fn the_built_in_texts_are_the_repository_file_and_cover_every_id() {
    let from_dir =
        Scenarios::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")).unwrap();
    let builtin = Scenarios::builtin();
    assert_eq!(builtin.lint, from_dir.lint);
    for id in FindingId::VARIANTS {
        assert_eq!(
            builtin.lint.iter().filter(|t| t.id == *id).count(),
            1,
            "{id}"
        );
    }
}

#[test]
fn a_lint_file_with_an_unknown_or_missing_id_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    for e in std::fs::read_dir(&base).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    let lint = dir.path().join("lint.json");
    let text = std::fs::read_to_string(&lint).unwrap();
    std::fs::write(&lint, text.replace("\"smm-not-on\"", "\"smm-off\"")).unwrap();
    let e = Scenarios::load_dir(dir.path()).unwrap_err().to_string();
    assert!(e.contains("lint.json") && e.contains("smm-off"), "{e}");

    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["lint_findings"]
        .as_array_mut()
        .unwrap()
        .retain(|f| f["id"] != "smm-not-on");
    std::fs::write(&lint, value.to_string()).unwrap();
    let e = Scenarios::load_dir(dir.path()).unwrap_err().to_string();
    assert!(e.contains("smm-not-on") && e.contains("no entry"), "{e}");
}

/// Fake firmware in a temp folder, and descriptors naming it: a build is recognized by its
/// content where the line names another path.
struct Fake {
    dir: tempfile::TempDir,
    firmware: Vec<Firmware>,
}

impl Fake {
    fn new() -> Fake {
        let dir = tempfile::tempdir().unwrap();
        let fw = dir.path().join("fw");
        std::fs::create_dir(&fw).unwrap();
        std::fs::write(fw.join("CODE.secboot.fd"), b"secure boot smm code").unwrap();
        std::fs::write(fw.join("VARS.ms.fd"), b"enrolled varstore").unwrap();
        let descriptors = dir.path().join("descriptors");
        std::fs::create_dir(&descriptors).unwrap();
        let text = std::fs::read_to_string(data("descriptors/40-edk2-x86_64-secure-enrolled.json"))
            .unwrap()
            .replace(
                "/usr/share/OVMF/OVMF_CODE_4M.ms.fd",
                &fw.join("CODE.secboot.fd").to_string_lossy(),
            )
            .replace(
                "/usr/share/OVMF/OVMF_VARS_4M.ms.fd",
                &fw.join("VARS.ms.fd").to_string_lossy(),
            );
        std::fs::write(descriptors.join("40-fake.json"), text).unwrap();
        let inventory =
            bootmatrix::discover::discover_firmware(&bootmatrix::discover::DiscoverOptions {
                descriptor_dirs: vec![descriptors],
                ..Default::default()
            });
        assert_eq!(inventory.firmware.len(), 1);
        Fake {
            dir,
            firmware: inventory.firmware,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    fn copy(&self, from: &str, to: &str) -> String {
        let to = self.path(to);
        std::fs::create_dir_all(Path::new(&to).parent().unwrap()).unwrap();
        std::fs::copy(self.path(from), &to).unwrap();
        to
    }

    fn lint(&self, argv: &[&str]) -> lint::Report {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        lint::lint(&argv, &self.firmware, &Scenarios::builtin()).unwrap()
    }
}

#[test]
fn firmware_is_identified_by_sha256_under_another_path() {
    let fake = Fake::new();
    let renamed = fake.copy("fw/CODE.secboot.fd", "runtime/share/ovmf.fd");
    let report = fake.lint(&["-machine", "q35,smm=on", "-bios", &renamed]);
    let seen = report.firmware.as_ref().unwrap();
    assert_eq!(seen.descriptor.as_deref(), Some("40-fake.json"));
    assert_eq!(seen.identified_by, Some(lint::identify::How::Sha256));
    assert_eq!(report.ids(), [SecureBootBios]);

    // Other content: not identified, and nothing about Secure Boot can be said.
    std::fs::write(&renamed, b"some other build").unwrap();
    let report = fake.lint(&["-machine", "q35,smm=on", "-bios", &renamed]);
    assert_eq!(report.ids(), [FirmwareUnidentified]);
    assert_eq!(report.exit_code(), 0);
}

#[test]
fn the_template_is_told_from_a_private_copy_of_it() {
    let fake = Fake::new();
    let code = fake.path("fw/CODE.secboot.fd");
    let line = |vars: &str| {
        fake.lint(&[
            "-machine",
            "q35,smm=on",
            "-global",
            "driver=cfi.pflash01,property=secure,value=on",
            "-drive",
            &format!("if=pflash,format=raw,unit=0,readonly=on,file={code}"),
            "-drive",
            &format!("if=pflash,format=raw,unit=1,file={vars}"),
        ])
        .ids()
    };
    // The template itself, and another install of it among the firmware's files: shared.
    assert_eq!(line(&fake.path("fw/VARS.ms.fd")), [VarstoreIsTemplate]);
    let installed = fake.copy("fw/VARS.ms.fd", "fw/VARS.ms.copy.fd");
    assert_eq!(line(&installed), [VarstoreIsTemplate]);
    // A link to it is still the template.
    let link = fake.path("vm/linked_VARS.fd");
    std::fs::create_dir_all(fake.path("vm")).unwrap();
    std::os::unix::fs::symlink(fake.path("fw/VARS.ms.fd"), &link).unwrap();
    assert_eq!(line(&link), [VarstoreIsTemplate]);
    // The guest's own fresh copy has the same content, and is what is wanted.
    let private = fake.copy("fw/VARS.ms.fd", "vm/guest_VARS.fd");
    assert_eq!(line(&private), []);
}

fn bootmatrix(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bootmatrix"))
        .args(args)
        .output()
        .expect("bootmatrix starts");
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_command_exits_by_the_worst_finding_and_prints_json() {
    let descriptors = data("descriptors");
    let descriptors = descriptors.to_str().unwrap();
    let file = |name: &str| data("lint").join(name).to_string_lossy().into_owned();
    let clean = file("libvirt-q35-secboot-blockdev.args");
    let (code, out, err) = bootmatrix(&["lint", "--descriptors", descriptors, "--file", &clean]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("0 errors"), "{out}");

    let bad = file("libvirt-q35-no-smm.args");
    let (code, out, _) = bootmatrix(&[
        "lint",
        "--descriptors",
        descriptors,
        "--file",
        &bad,
        "--json",
    ]);
    assert_eq!(code, 1, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ids: Vec<&str> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["smm-not-on", "pflash-not-secure"]);
    assert_eq!(json["findings"][0]["severity"], "error");
    assert_eq!(json["findings"][0]["words"][0]["word"], "-machine");

    // Only warnings and infos: 0.
    let (code, out, _) = bootmatrix(&[
        "lint",
        "--descriptors",
        descriptors,
        "--",
        "-bios",
        "/opt/none/OVMF.fd",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("info firmware-unidentified"), "{out}");
}

#[test]
fn bad_input_is_exit_2_naming_the_word_and_text_is_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let unclosed = dir.path().join("unclosed.args");
    std::fs::write(&unclosed, "qemu -machine 'q35,smm=on\n").unwrap();
    let (code, _, err) = bootmatrix(&["lint", "--file", unclosed.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unclosed.args: line 1") && err.contains("never closed"),
        "{err}"
    );

    let (code, _, err) = bootmatrix(&["lint", "--file", "/dev/zero"]);
    assert_eq!(code, 2);
    assert!(err.contains("not a regular file"), "{err}");

    let (code, _, err) = bootmatrix(&["lint", "--", "-machine", "q35", "-bios"]);
    assert_eq!(code, 2);
    assert!(err.contains("-bios") && err.contains("no value"), "{err}");

    let (code, _, err) = bootmatrix(&["lint", "--", "-blockdev", "{\"driver\":", "-bios", "x"]);
    assert_eq!(code, 2);
    assert!(err.contains("not a JSON object"), "{err}");

    // A file name with an escape sequence reaches the terminal escaped.
    let (code, out, _) = bootmatrix(&["lint", "--", "-bios", "/x/\u{1b}[31mred.fd"]);
    assert_eq!(code, 0);
    assert!(!out.contains('\u{1b}'), "{out}");
    assert!(out.contains("\\x1b[31mred.fd"), "{out}");

    let (code, _, err) = bootmatrix(&["lint"]);
    assert_eq!(code, 2, "{err}");
}
