//! The planner, pure and without QEMU: which cells exist, why they run or not, and the exact
//! argv per QEMU version. Golden files under tests/golden/; `BOOTMATRIX_BLESS=1 cargo test`
//! rewrites them after a deliberate change (review the diff).

use std::path::{Path, PathBuf};

use bootmatrix::descriptor;
use bootmatrix::discover::{Firmware, Inventory, QemuTarget};
use bootmatrix::host::{Accel, KvmProbe, SevParams};
use bootmatrix::plan::{plan, Action, Artifact, Layout, Plan, PlanOptions};
use bootmatrix::qemu::{Machines, QemuBinary, Version};
use bootmatrix::scenario::{Check, Scenarios, Vars};
use rstest::rstest;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/descriptors")
        .join(name)
}

fn firmware_from_text(name: &str, text: &str) -> Firmware {
    let descriptor = descriptor::parse(Path::new(name), text).expect("valid descriptor");
    Firmware {
        descriptor,
        executable_sha256: Ok("00".repeat(32)),
        package: None,
    }
}

fn firmware(name: &str) -> Firmware {
    let path = data(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut f = firmware_from_text(name, &text);
    f.descriptor.path = path;
    f
}

fn qemu(version: Version, kvm: KvmProbe, sev: Result<SevParams, String>) -> QemuTarget {
    let v = format!("{}.{}", version.major, version.minor);
    let help = format!(
        "Supported machines are:\npc                   Standard PC (alias of pc-i440fx-{v})\npc-i440fx-{v}        Standard PC\nq35                  Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-{v})\npc-q35-{v}           Standard PC (Q35 + ICH9, 2009)\n"
    );
    QemuTarget {
        binary: QemuBinary {
            path: PathBuf::from(format!("/opt/qemu-{version}/bin/qemu-system-x86_64")),
            data_dir: None,
            version,
            banner: format!("QEMU emulator version {version}"),
            machines: Machines::parse_help(&help),
        },
        kvm,
        sev,
    }
}

fn broken_kvm() -> KvmProbe {
    KvmProbe::unavailable("KVM internal error. Suberror: 1")
}

fn working_kvm() -> KvmProbe {
    KvmProbe {
        usable: Ok(()),
        smm: Ok(()),
    }
}

fn no_sev() -> Result<SevParams, String> {
    Err("host has no AMD SEV: kvm_amd is not loaded".into())
}

fn sev_host() -> Result<SevParams, String> {
    Ok(SevParams {
        cbitpos: 51,
        reduced_phys_bits: 1,
    })
}

fn inventory(firmware: Vec<Firmware>, qemus: Vec<QemuTarget>) -> Inventory {
    Inventory {
        firmware,
        qemus,
        ..Inventory::default()
    }
}

fn debian() -> Vec<Firmware> {
    [
        "40-edk2-x86_64-secure-enrolled.json",
        "50-edk2-x86_64-secure.json",
        "60-edk2-x86_64.json",
    ]
    .map(firmware)
    .into()
}

/// Plan options as `bootmatrix run` makes them, with a kernel for the kernel-boot cells.
fn options() -> PlanOptions {
    PlanOptions {
        kernel: Ok(PathBuf::from("/kernels/vmlinuz")),
        ..PlanOptions::new(Layout::new("/run"))
    }
}

fn make_plan(inv: &Inventory) -> Plan {
    plan(inv, &Scenarios::builtin(), &options())
}

fn render(plan: &Plan) -> String {
    let mut out = String::new();
    for cell in &plan.cells {
        out.push_str(&format!("CELL {}\n", cell.id));
        out.push_str(&format!(
            "  accel: {} ({})\n",
            cell.accel, cell.accel_reason
        ));
        if let Some(rule) = &cell.rule {
            out.push_str(&format!(
                "  expect: {} (rule {})\n",
                rule.expect.payload, rule.id
            ));
        }
        match &cell.action {
            Action::Run(spec) => {
                out.push_str(&format!("  deadline: {:?}\n", spec.deadline));
                for (from, to) in &spec.copies {
                    out.push_str(&format!("  copy: {} -> {}\n", from.display(), to.display()));
                }
                out.push_str("  argv:");
                for arg in &spec.argv {
                    out.push_str(&format!(" {arg}"));
                }
                out.push('\n');
            }
            Action::Skip(why) => out.push_str(&format!("  skip: {why}\n")),
            Action::Refused(why) => out.push_str(&format!("  refused: {why}\n")),
            Action::Error(why) => out.push_str(&format!("  error: {why}\n")),
        }
    }
    for l in &plan.left_out {
        out.push_str(&format!("LEFT OUT {}: {}\n", l.what, l.reason));
    }
    out
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("BOOTMATRIX_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "missing golden file {}; run with BOOTMATRIX_BLESS=1",
            path.display()
        )
    });
    if expected != actual {
        let first_diff = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from the plan at line {}:\n  golden: {:?}\n  actual: {:?}\n(BOOTMATRIX_BLESS=1 rewrites it)",
            path.display(),
            first_diff + 1,
            expected.lines().nth(first_diff),
            actual.lines().nth(first_diff)
        );
    }
}

#[test]
fn debian_descriptors_on_qemu_7_2_without_kvm_or_sev() {
    let inv = inventory(
        debian(),
        vec![qemu(Version::new(7, 2, 22), broken_kvm(), no_sev())],
    );
    golden("plan-debian-qemu-7.2-tcg.txt", &render(&make_plan(&inv)));
}

#[test]
fn debian_descriptors_on_a_sev_host_with_kvm() {
    let inv = inventory(
        debian(),
        vec![qemu(Version::new(10, 0, 2), working_kvm(), sev_host())],
    );
    golden(
        "plan-debian-qemu-10.0-kvm-sev.txt",
        &render(&make_plan(&inv)),
    );
}

#[test]
fn old_qemu_uses_pflash_drives_and_memory_encryption() {
    let inv = inventory(
        vec![firmware("50-edk2-x86_64-secure.json")],
        vec![qemu(Version::new(3, 1, 0), working_kvm(), sev_host())],
    );
    golden(
        "plan-secure-qemu-3.1-kvm-sev.txt",
        &render(&make_plan(&inv)),
    );
}

#[test]
fn other_mappings_and_modes() {
    let combined = firmware_from_text(
        "30-ovmf-combined.json",
        r#"{"description": "combined", "interface-types": ["uefi"],
            "mapping": {"device": "flash", "mode": "combined",
                        "executable": {"filename": "/fw/OVMF.combined.qcow2", "format": "qcow2"}},
            "targets": [{"architecture": "x86_64", "machines": ["pc-i440fx-*"]}],
            "features": ["verbose-static"], "tags": []}"#,
    );
    let inv = inventory(
        vec![
            combined,
            firmware("60-edk2-ovmf-x64-stateless.json"),
            firmware("60-edk2-ovmf-x64-amdsev.json"),
            firmware("70-svsm-x86_64-igvm.json"),
            firmware("60-edk2-aarch64-qcow2.json"),
            firmware("80-seabios-bios-256k.json"),
        ],
        vec![
            qemu(Version::new(9, 2, 0), broken_kvm(), no_sev()),
            qemu(Version::new(10, 1, 0), broken_kvm(), no_sev()),
        ],
    );
    golden("plan-other-mappings.txt", &render(&make_plan(&inv)));
}

#[test]
fn variants_follow_features() {
    let plan = make_plan(&inventory(
        debian(),
        vec![qemu(Version::new(7, 2, 0), broken_kvm(), no_sev())],
    ));
    let variants = |descriptor: &str| {
        let mut v: Vec<String> = plan
            .cells
            .iter()
            .filter(|c| c.descriptor == descriptor && !c.sev && c.check == Check::SecureBoot)
            .map(|c| c.variant.to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        variants("40-edk2-x86_64-secure-enrolled.json"),
        [
            "db-added-vars/signed",
            "db-added-vars/unsigned",
            "shipped-vars/signed",
            "shipped-vars/unsigned"
        ]
    );
    assert_eq!(
        variants("50-edk2-x86_64-secure.json"),
        [
            "own-keys-vars/signed",
            "own-keys-vars/unsigned",
            "shipped-vars/signed",
            "shipped-vars/unsigned"
        ]
    );
    assert_eq!(
        variants("60-edk2-x86_64.json"),
        ["shipped-vars/signed", "shipped-vars/unsigned"]
    );
}

#[test]
fn every_cell_carries_its_reason() {
    let plan = make_plan(&inventory(
        debian(),
        vec![qemu(Version::new(7, 2, 0), broken_kvm(), no_sev())],
    ));
    for cell in &plan.cells {
        assert!(!cell.accel_reason.is_empty(), "{}", cell.id);
        match &cell.action {
            Action::Run(_) => assert!(!cell.sev, "{}: SEV cell runs without SEV", cell.id),
            Action::Skip(why) if cell.check == Check::KernelBoot && !cell.sev => {
                assert!(why.starts_with("-shim needs QEMU >= 10.0"), "{why}")
            }
            Action::Skip(why) => {
                assert!(cell.sev, "{}", cell.id);
                assert!(why.contains("kvm_amd is not loaded"), "{why}");
            }
            Action::Refused(why) => {
                assert!(cell.sev && cell.check == Check::KernelBoot, "{}", cell.id);
                assert!(why.starts_with("refused by policy"), "{why}");
            }
            Action::Error(why) => panic!("{}: {why}", cell.id),
        }
        assert!(cell.rule.is_some(), "{} has no expectation", cell.id);
    }
}

#[test]
fn sev_cells_need_kvm_even_on_a_sev_host() {
    let plan = plan(
        &inventory(
            debian(),
            vec![qemu(Version::new(10, 0, 2), working_kvm(), sev_host())],
        ),
        &Scenarios::builtin(),
        &PlanOptions {
            forced_accel: Some(Accel::Tcg),
            ..PlanOptions::new(Layout::new("/run"))
        },
    );
    let sev: Vec<_> = plan
        .cells
        .iter()
        .filter(|c| c.sev && c.check != Check::KernelBoot)
        .collect();
    assert!(!sev.is_empty());
    for cell in sev {
        match &cell.action {
            Action::Skip(why) => assert!(why.starts_with("SEV needs KVM"), "{why}"),
            other => panic!("{}: {other:?}", cell.id),
        }
    }
}

#[test]
fn smm_firmware_runs_on_tcg_when_kvm_lacks_smm() {
    let kvm = KvmProbe {
        usable: Ok(()),
        smm: Err("System Management Mode not supported by this hypervisor".into()),
    };
    let plan = make_plan(&inventory(
        debian(),
        vec![qemu(Version::new(7, 2, 0), kvm, no_sev())],
    ));
    for cell in plan.cells.iter().filter(|c| !c.sev) {
        let expected = if cell.descriptor.starts_with("60-") {
            Accel::Kvm
        } else {
            Accel::Tcg
        };
        assert_eq!(cell.accel, expected, "{}: {}", cell.id, cell.accel_reason);
    }
}

#[rstest]
// 60-: secure-boot 2 + option-rom 2 + kernel-boot 4 (2 payloads x none/no-legacy-loader),
// each with SEV off and on.
#[case("^60-", 16)]
#[case("sev-off/secure-boot/.*own-keys", 2)]
#[case("sev-off/.*own-keys", 8)]
// 40- has the shim variants too: 2 + 2 + 6.
#[case("sev-on/.*/db-added", 10)]
#[case("nothing-matches-this", 0)]
fn filter_selects_cells_by_id(#[case] filter: &str, #[case] count: usize) {
    let plan = plan(
        &inventory(
            debian(),
            vec![qemu(Version::new(7, 2, 0), broken_kvm(), no_sev())],
        ),
        &Scenarios::builtin(),
        &PlanOptions {
            filter: Some(regex::Regex::new(filter).unwrap()),
            ..PlanOptions::new(Layout::new("/run"))
        },
    );
    assert_eq!(plan.cells.len(), count, "{filter}");
    let re = regex::Regex::new(filter).unwrap();
    assert!(plan.cells.iter().all(|c| re.is_match(&c.id)));
}

#[test]
fn each_prepared_varstore_is_made_once_per_descriptor() {
    let plan = make_plan(&inventory(
        debian(),
        vec![
            qemu(Version::new(7, 2, 0), broken_kvm(), no_sev()),
            qemu(Version::new(10, 0, 2), broken_kvm(), no_sev()),
        ],
    ));
    let varstores: Vec<(&Path, Vars)> = plan
        .artifacts
        .iter()
        .filter_map(|a| match a {
            Artifact::Varstore { template, vars, .. } => Some((template.as_path(), *vars)),
            _ => None,
        })
        .collect();
    assert_eq!(
        varstores,
        [
            (Path::new("/usr/share/OVMF/OVMF_VARS_4M.fd"), Vars::OwnKeys),
            (
                Path::new("/usr/share/OVMF/OVMF_VARS_4M.ms.fd"),
                Vars::DbAdded
            ),
        ]
    );
    assert_eq!(plan.artifacts[0], Artifact::TestKeys);
}

#[test]
fn templates_are_never_mapped_directly() {
    let plan = make_plan(&inventory(
        debian(),
        vec![qemu(Version::new(7, 2, 0), broken_kvm(), no_sev())],
    ));
    for cell in &plan.cells {
        if let Action::Run(spec) = &cell.action {
            let argv = spec.argv.join(" ");
            assert!(!argv.contains("OVMF_VARS"), "{}: {argv}", cell.id);
            assert!(argv.contains("/run/cells/"), "{}", cell.id);
            assert!(!argv.contains("readonly,"), "bare readonly in {argv}");
        }
    }
}

#[test]
fn missing_firmware_file_is_an_error_not_a_boot() {
    let mut f = firmware("60-edk2-x86_64.json");
    f.executable_sha256 = Err("cannot read /usr/share/OVMF/OVMF_CODE_4M.fd: No such file".into());
    let plan = make_plan(&inventory(
        vec![f],
        vec![qemu(Version::new(7, 2, 0), broken_kvm(), no_sev())],
    ));
    for cell in plan.cells.iter().filter(|c| !c.sev) {
        match &cell.action {
            Action::Error(why) => assert!(why.contains("OVMF_CODE_4M.fd"), "{why}"),
            other => panic!("{}: {other:?}", cell.id),
        }
    }
    assert!(plan.artifacts.is_empty());
}

#[test]
fn host_uefi_vars_firmware_is_skipped_with_its_reason() {
    let f = firmware_from_text(
        "20-ovmf-host-vars.json",
        r#"{"description": "OVMF with host uefi vars", "interface-types": ["uefi"],
            "mapping": {"device": "memory", "filename": "/fw/OVMF.hostvars.fd"},
            "targets": [{"architecture": "x86_64", "machines": ["pc-q35-*"]}],
            "features": ["host-uefi-vars", "secure-boot"], "tags": []}"#,
    );
    let plan = make_plan(&inventory(
        vec![f],
        vec![qemu(Version::new(10, 0, 2), broken_kvm(), no_sev())],
    ));
    assert!(!plan.cells.is_empty());
    for cell in &plan.cells {
        match &cell.action {
            Action::Skip(why) => assert!(why.starts_with("host-uefi-vars"), "{why}"),
            other => panic!("{}: {other:?}", cell.id),
        }
    }
}
