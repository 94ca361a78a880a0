//! The planner, pure and without QEMU: which cells exist, why they run or not, and the exact
//! argv per QEMU version. Golden files under tests/golden/; `BOOTMATRIX_BLESS=1 cargo test`
//! rewrites them after a deliberate change (review the diff).

use std::path::{Path, PathBuf};

use bootmatrix::discover::chain::{Component, DistroChain, SbatEntry, SbatLevel};
use bootmatrix::discover::descriptor;
use bootmatrix::discover::host::{Accel, CcHost, KvmProbe, SevParams};
use bootmatrix::discover::qemu::{Machines, QemuBinary, Version};
use bootmatrix::discover::{Firmware, Inventory, QemuTarget};
use bootmatrix::matrix::{Check, Suite, Vars};
use bootmatrix::plan::admission::AdmissionRule;
use bootmatrix::plan::layout::Layout;
use bootmatrix::plan::{plan, Action, Artifact, Plan, PlanOptions};
use bootmatrix::report::expect::Build;
use bootmatrix::scenario::Scenarios;
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
        tree: None,
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
            launch: bootmatrix::discover::launch::Launch::Direct,
            version,
            banner: format!("QEMU emulator version {version}"),
            machines: Machines::parse_help(&help),
            objects: None,
        },
        kvm,
        cc: match &sev {
            Ok(_) => CcHost::capable(),
            Err(why) => CcHost::unavailable(why),
        },
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

/// A suite's distro chain as `ci/debian-matrix` unpacks it, with its grub's SBAT generation and
/// its shim's default SBAT level (bullseye: grub,4 and 2024010900 grub,3; bookworm: grub,5 and
/// 2025021800 grub,5).
fn chain(suite: Suite) -> DistroChain {
    let component = |name: &str| Component {
        path: PathBuf::from(format!("/chains/{suite}/{name}")),
        package: format!("{name} 1"),
        sha256: "00".into(),
    };
    let entry = |component: &str, generation| SbatEntry {
        component: component.into(),
        generation,
    };
    let (grub, level) = match suite {
        Suite::Bullseye => (4, ("2024010900", 3)),
        _ => (5, ("2025021800", 5)),
    };
    DistroChain {
        suite,
        dir: PathBuf::from(format!("/chains/{suite}")),
        shim: component("shimx64.efi.signed"),
        grub: component("grubx64.efi.signed"),
        kernel: component("vmlinuz"),
        grub_sbat: vec![entry("sbat", 1), entry("grub", grub)],
        shim_level: Some(SbatLevel {
            date: level.0.into(),
            minimum: vec![entry("shim", 4), entry("grub", level.1)],
        }),
    }
}

/// Plan options as `bootmatrix run` makes them, with a kernel for the kernel-boot cells and
/// bullseye's and bookworm's chains for the distro-chain cells (bookworm is the machine's).
fn options() -> PlanOptions {
    PlanOptions {
        kernel: Ok(PathBuf::from("/kernels/vmlinuz")),
        chains: Ok(vec![chain(Suite::Bullseye), chain(Suite::Bookworm)]),
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
                assert!(why.reason.starts_with("-shim needs QEMU >= 10.0"), "{why}");
                assert_eq!(why.rule, AdmissionRule::ShimQemuVersion);
            }
            Action::Skip(why) => {
                assert!(cell.sev, "{}", cell.id);
                assert!(why.reason.contains("kvm_amd is not loaded"), "{why}");
                assert_eq!(why.rule, AdmissionRule::SevHost);
            }
            Action::Refused(why) => {
                assert!(cell.sev && cell.check == Check::KernelBoot, "{}", cell.id);
                assert!(why.reason.starts_with("refused by policy"), "{why}");
                assert_eq!(why.rule, AdmissionRule::SevKernelPolicy);
            }
            Action::Error(why) => panic!("{}: {why}", cell.id),
        }
        // Every cell has its expectation, except those the planner refuses: nothing is at stake.
        assert_eq!(
            cell.rule.is_some(),
            !matches!(cell.action, Action::Refused(_)),
            "{}",
            cell.id
        );
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
            Action::Skip(why) => {
                assert!(why.reason.starts_with("SEV needs KVM"), "{why}");
                assert_eq!(why.rule, AdmissionRule::SevKvm);
            }
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
        // as-bios starts every build without SMM, as a runtime that ignores the descriptor.
        let expected = if cell.descriptor.starts_with("60-") || cell.check == Check::AsBios {
            Accel::Kvm
        } else {
            Accel::Tcg
        };
        assert_eq!(cell.accel, expected, "{}: {}", cell.id, cell.accel_reason);
    }
}

#[rstest]
// 60-: secure-boot 2 + option-rom 2 + kernel-boot 4 (2 payloads x none/no-legacy-loader),
// each with SEV off and on; as-bios 2 (probe, kernel), SEV off only.
#[case("^60-", 18)]
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
            (
                Path::new("/usr/share/OVMF/OVMF_VARS_4M.ms.fd"),
                Vars::ShimVerbose
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
            Action::Error(why) => {
                assert!(why.reason.contains("OVMF_CODE_4M.fd"), "{why}");
                assert_eq!(why.rule, AdmissionRule::FirmwareReadable);
            }
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
            Action::Skip(why) => {
                assert!(why.reason.starts_with("host-uefi-vars"), "{why}");
                assert_eq!(why.rule, AdmissionRule::HostUefiVars);
            }
            other => panic!("{}: {other:?}", cell.id),
        }
    }
}

/// Plans `firmware` on a QEMU 7.2 without working KVM or SEV, with the built-in scenarios.
fn plan_on_7_2(firmware: Vec<Firmware>, options: PlanOptions) -> Plan {
    plan(
        &inventory(
            firmware,
            vec![qemu(Version::new(7, 2, 0), broken_kvm(), no_sev())],
        ),
        &Scenarios::builtin(),
        &options,
    )
}

fn cell<'a>(plan: &'a Plan, id: &str) -> &'a bootmatrix::plan::Cell {
    plan.cells
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no cell {id}"))
}

fn argv(cell: &bootmatrix::plan::Cell) -> String {
    match &cell.action {
        Action::Run(spec) => spec.argv.join(" "),
        other => panic!("{} does not run: {other:?}", cell.id),
    }
}

#[rstest]
#[case::no_sev_here(no_sev())]
#[case::sev_host(sev_host())]
fn sev_kernel_cells_are_refused_unless_measured_on_any_host(
    #[case] sev: Result<SevParams, String>,
) {
    let plan = make_plan(&inventory(
        debian(),
        vec![qemu(Version::new(10, 0, 2), working_kvm(), sev)],
    ));
    let kernel_sev: Vec<_> = plan
        .cells
        .iter()
        .filter(|c| c.sev && c.check == Check::KernelBoot)
        .collect();
    // 40-: 2 payloads x 3 tweaks; 50- and 60-: 2 x 2.
    assert_eq!(kernel_sev.len(), 14);
    for c in kernel_sev {
        match &c.action {
            Action::Refused(why) => {
                assert!(
                    why.reason
                        .contains("never allowed unless the boot is measured"),
                    "{why}"
                );
                assert!(why.reason.contains(c.executable.to_str().unwrap()), "{why}");
            }
            other => panic!("{}: {other:?}", c.id),
        }
    }
}

fn measured(sha: &str) -> Scenarios {
    let mut s = Scenarios::builtin();
    s.measured.push(bootmatrix::scenario::MeasuredBuild {
        executable_sha256: sha.into(),
        package: String::new(),
        build: "OvmfPkg/AmdSev/AmdSevX64.dsc".into(),
        reference: "test".into(),
    });
    s
}

#[test]
fn measured_build_runs_sev_kernel_cells_with_kernel_hashes() {
    let inv = inventory(
        vec![firmware("60-edk2-ovmf-x64-amdsev.json")],
        vec![qemu(Version::new(10, 0, 2), working_kvm(), sev_host())],
    );
    // The fixtures' executables all hash to 00..00.
    let plan = plan(&inv, &measured(&"00".repeat(32)), &options());
    let c = cell(
        &plan,
        "60-edk2-ovmf-x64-amdsev/qemu-10.0.2/sev-on/kernel-boot/shipped-vars-unsigned",
    );
    let line = argv(c);
    assert!(line.contains(",kernel-hashes=on"), "{line}");
    assert!(
        line.contains("-kernel /run/prepared/vmlinuz-unsigned"),
        "{line}"
    );
    assert_eq!(c.rule.as_ref().unwrap().id, "sev-measured");
    // Another build is refused even on the same host.
    let plan = plan_of_other_build(&inv);
    assert!(plan
        .cells
        .iter()
        .filter(|c| c.sev && c.check == Check::KernelBoot)
        .all(|c| matches!(c.action, Action::Refused(_))));
}

fn plan_of_other_build(inv: &Inventory) -> Plan {
    plan(inv, &measured(&"11".repeat(32)), &options())
}

#[test]
fn measured_build_still_needs_a_qemu_that_passes_kernel_hashes() {
    let inv = inventory(
        vec![firmware("60-edk2-ovmf-x64-amdsev.json")],
        vec![qemu(Version::new(6, 1, 0), working_kvm(), sev_host())],
    );
    let plan = plan(&inv, &measured(&"00".repeat(32)), &options());
    // SEV and SEV-ES; sev-snp-guest has kernel-hashes from its first release (9.1).
    for c in plan
        .cells
        .iter()
        .filter(|c| c.sev && !c.confidential.is_snp() && c.check == Check::KernelBoot)
    {
        match &c.action {
            Action::Refused(why) => assert!(why.reason.contains("needs QEMU >= 6.2"), "{why}"),
            other => panic!("{}: {other:?}", c.id),
        }
    }
}

#[test]
fn kernel_cells_without_a_kernel_are_skipped_with_the_reason() {
    let plan = plan_on_7_2(
        debian(),
        PlanOptions {
            kernel: Err("no Linux kernel for -kernel: pass --kernel PATH".into()),
            ..PlanOptions::new(Layout::new("/run"))
        },
    );
    for c in plan
        .cells
        .iter()
        .filter(|c| c.check == Check::KernelBoot && !c.sev)
    {
        match &c.action {
            Action::Skip(why) => {
                assert!(why.reason.contains("--kernel PATH"), "{}: {why}", c.id);
                assert_eq!(why.rule, AdmissionRule::Kernel);
            }
            other => panic!("{}: {other:?}", c.id),
        }
    }
    assert!(!plan
        .artifacts
        .iter()
        .any(|a| matches!(a, Artifact::Kernel { .. })));
}

#[test]
fn shim_cells_need_qemu_10_and_a_shim() {
    let id = |v: &str| {
        format!("40-edk2-x86_64-secure-enrolled/qemu-{v}/sev-off/kernel-boot/db-added-vars-unsigned-shim")
    };
    let inv = inventory(
        debian(),
        vec![
            qemu(Version::new(7, 2, 0), broken_kvm(), no_sev()),
            qemu(Version::new(10, 0, 2), broken_kvm(), no_sev()),
        ],
    );
    let without = make_plan(&inv);
    assert!(
        matches!(&cell(&without, &id("7.2.0")).action, Action::Skip(w) if w.reason.contains("QEMU >= 10.0"))
    );
    assert!(
        matches!(&cell(&without, &id("10.0.2")).action, Action::Skip(w) if w.reason.contains("--shim FILE"))
    );
    let with = plan(
        &inv,
        &Scenarios::builtin(),
        &PlanOptions {
            shim: Some(PathBuf::from("/usr/lib/shim/shimx64.efi.signed")),
            ..options()
        },
    );
    let line = argv(cell(&with, &id("10.0.2")));
    assert!(
        line.contains("-shim /usr/lib/shim/shimx64.efi.signed"),
        "{line}"
    );
    // shim is only tried where the vendor's db (which signs shim) is enrolled.
    assert!(!with
        .cells
        .iter()
        .any(|c| c.variant.tweak == bootmatrix::matrix::Tweak::Shim
            && !c.descriptor.starts_with("40-")));
}

#[test]
fn option_rom_cells_attach_only_the_rom_under_test() {
    let plan = make_plan(&inventory(
        debian(),
        vec![qemu(Version::new(7, 2, 0), broken_kvm(), no_sev())],
    ));
    let c = cell(
        &plan,
        "50-edk2-x86_64-secure/qemu-7.2.0/sev-off/option-rom/own-keys-vars-unsigned",
    );
    let line = argv(c);
    assert!(
        line.contains(
            "-device e1000,netdev=net0,romfile=/run/prepared/oprom-unsigned.rom,addr=0x6"
        ),
        "{line}"
    );
    // Every other device gets an empty ROM; the ESP sits at its planned slot, first to boot.
    assert!(
        line.contains("virtio-blk-pci,drive=esp,romfile=,addr=0x5,bootindex=1 "),
        "{line}"
    );
    // The probe that decides the cell is the signed one, whatever the ROM.
    assert!(line.contains("fat:/run/prepared/esp-signed"), "{line}");
    let Action::Run(spec) = &c.action else {
        unreachable!()
    };
    assert!(spec
        .needs
        .contains(&Artifact::OptionRom(bootmatrix::matrix::Payload::Unsigned)));
    assert!(spec.needs.contains(&Artifact::TestKeys));
    // What observe must recognise as this cell's own: the ESP's boot option and the NIC.
    assert_eq!(
        spec.targets.boot_device.as_deref(),
        Some("PciRoot(0x0)/Pci(0x5,0x0)")
    );
    assert_eq!(spec.targets.rom_device.as_deref(), Some("0000:00:06.0"));
}

#[test]
fn kernel_command_line_with_an_initrd_token_is_refused() {
    // observe tells LoadImage from the legacy loader by the initrd=initrd OVMF adds: an
    // -append that carries its own initrd= would make every legacy boot look verified.
    let inv = inventory(
        debian(),
        vec![qemu(Version::new(7, 2, 0), broken_kvm(), no_sev())],
    );
    let mut options = PlanOptions::new(Layout::new("/run"));
    options.kernel = Ok("/boot/vmlinuz".into());
    options.kernel_append = "console=ttyS0 initrd=initrd".into();
    let plan = plan(&inv, &Scenarios::builtin(), &options);
    let kernel_cells: Vec<&bootmatrix::plan::Cell> = plan
        .cells
        .iter()
        .filter(|c| c.check == Check::KernelBoot && !c.sev)
        .collect();
    assert!(!kernel_cells.is_empty());
    for c in kernel_cells {
        match &c.action {
            Action::Error(why) => {
                assert!(why.reason.contains("\"initrd=initrd\""), "{why}");
                assert_eq!(why.rule, AdmissionRule::KernelAppend);
            }
            other => panic!("{}: {other:?}", c.id),
        }
    }
    // The default command line is fine, and is what the cells get.
    assert_eq!(
        bootmatrix::plan::admission::kernel_append_problem(bootmatrix::plan::DEFAULT_KERNEL_APPEND),
        None
    );
    assert!(bootmatrix::plan::admission::kernel_append_problem("initrd=/boot/x quiet").is_some());
}

fn debian_with_package(version: &str) -> Vec<Firmware> {
    debian()
        .into_iter()
        .map(|mut f| {
            f.package = Some(format!("ovmf {version}"));
            f
        })
        .collect()
}

#[rstest]
#[case::strict_2022_11("strict", "2022.11-6+deb12u2", "", "unsigned-refused")]
#[case::strict_2025_02("strict", "2025.02-8", "-no-legacy-loader", "unsigned-refused")]
#[case::upstream_2022_11("upstream", "2022.11-6+deb12u2", "", "unsigned-silent-fallback")]
#[case::upstream_2022_11_knob_unknown(
    "upstream",
    "2022.11-6+deb12u2",
    "-no-legacy-loader",
    "unsigned-silent-fallback"
)]
#[case::upstream_2025_02("upstream", "2025.02-8", "", "unsigned-warned-fallback")]
#[case::upstream_2025_02_knob(
    "upstream",
    "2025.02-8",
    "-no-legacy-loader",
    "unsigned-fallback-disabled"
)]
#[case::upstream_2026_02("upstream", "2026.02-1", "", "unsigned-fallback-off-by-default")]
fn kernel_rules_follow_profile_and_edk2_release(
    #[case] profile: &str,
    #[case] version: &str,
    #[case] tweak: &str,
    #[case] rule: &str,
) {
    let plan = plan_on_7_2(
        debian_with_package(version),
        PlanOptions {
            profile: profile.parse().unwrap(),
            ..options()
        },
    );
    let c = cell(
        &plan,
        &format!(
            "50-edk2-x86_64-secure/qemu-7.2.0/sev-off/kernel-boot/own-keys-vars-unsigned{tweak}"
        ),
    );
    assert_eq!(c.rule.as_ref().map(|r| r.id.as_str()), Some(rule));
    assert_eq!(
        c.edk2.map(|r| r.to_string()),
        Some(version[..7].to_string())
    );
}

// A db-signed kernel on QEMU before 10.0 fails verification (QEMU patches its setup header);
// since edk2 stable202602 nothing falls back to the legacy loader, so it is refused.
#[rstest]
#[case::edk2_2025_02("2025.02-8", "", "signed")]
#[case::edk2_2025_02_knob("2025.02-8", "-no-legacy-loader", "signed-fallback-disabled")]
#[case::edk2_2026_08("2026.08+ds-2", "", "signed-fallback-off-by-default")]
#[case::edk2_2026_08_knob("2026.08+ds-2", "-no-legacy-loader", "signed-fallback-disabled")]
fn signed_kernel_rules_follow_the_legacy_loader_default(
    #[case] version: &str,
    #[case] tweak: &str,
    #[case] rule: &str,
) {
    for profile in ["strict", "upstream"] {
        let plan = plan_on_7_2(
            debian_with_package(version),
            PlanOptions {
                profile: profile.parse().unwrap(),
                ..options()
            },
        );
        let c = cell(
            &plan,
            &format!(
                "50-edk2-x86_64-secure/qemu-7.2.0/sev-off/kernel-boot/own-keys-vars-signed{tweak}"
            ),
        );
        assert_eq!(
            c.rule.as_ref().map(|r| r.id.as_str()),
            Some(rule),
            "{profile}"
        );
    }
}

#[test]
fn upstream_profile_without_a_known_release_is_an_error_naming_it() {
    let plan = plan_on_7_2(
        debian(),
        PlanOptions {
            profile: bootmatrix::matrix::Profile::Upstream,
            ..options()
        },
    );
    let c = cell(
        &plan,
        "50-edk2-x86_64-secure/qemu-7.2.0/sev-off/kernel-boot/own-keys-vars-unsigned",
    );
    match &c.action {
        Action::Error(why) => {
            assert!(why.reason.contains("profile upstream"), "{why}");
            assert!(why.reason.contains("edk2 release unknown"), "{why}");
            assert_eq!(why.rule, AdmissionRule::Expectation);
        }
        other => panic!("{other:?}"),
    }
    // Rules that do not depend on the release still apply.
    let signed = cell(
        &plan,
        "50-edk2-x86_64-secure/qemu-7.2.0/sev-off/kernel-boot/own-keys-vars-signed",
    );
    assert!(matches!(signed.action, Action::Run(_)));
}

#[test]
fn option_rom_rules_follow_the_profile() {
    let rule_of = |profile: &str| {
        let plan = plan_on_7_2(
            debian(),
            PlanOptions {
                profile: profile.parse().unwrap(),
                ..options()
            },
        );
        let c = cell(
            &plan,
            "40-edk2-x86_64-secure-enrolled/qemu-7.2.0/sev-off/option-rom/db-added-vars-unsigned",
        );
        let r = c.rule.clone().unwrap();
        (r.id, r.expect.payload.to_string())
    };
    assert_eq!(
        rule_of("strict"),
        ("unsigned-rejected".into(), "not-executed".into())
    );
    assert_eq!(
        rule_of("upstream"),
        ("unsigned-runs-without-sev".into(), "executed".into())
    );
}

#[test]
fn explain_names_rule_source_firmware_and_what_was_recorded() {
    let firmware = debian_with_package("2022.11-6+deb12u2");
    let inv = inventory(
        firmware.clone(),
        vec![qemu(Version::new(7, 2, 0), broken_kvm(), no_sev())],
    );
    let mut scenarios = Scenarios::builtin();
    for d in &mut scenarios.deviations {
        d.executable_sha256 = "00".repeat(32);
    }
    let plan = plan(&inv, &scenarios, &options());
    let id = "50-edk2-x86_64-secure/qemu-7.2.0/sev-off/kernel-boot/own-keys-vars-unsigned";
    let cell = bootmatrix::report::explain::find_cell(&plan, id).unwrap();
    let fw = firmware
        .iter()
        .find(|f| f.descriptor.name == cell.descriptor);
    let run_dir = Path::new("/runs/x");

    let text = bootmatrix::report::explain::explain(cell, fw, &scenarios, run_dir, None);
    for needle in [
        "cell 50-edk2-x86_64-secure/qemu-7.2.0/sev-off/kernel-boot/own-keys-vars-unsigned",
        "features: acpi-s3, amd-sev, requires-smm, secure-boot, verbose-dynamic",
        "package:    ovmf 2022.11-6+deb12u2",
        "edk2:       2022.11 (from the package version)",
        "expectation (profile strict, scenarios built-in)",
        "rule kernel-boot/unsigned-refused: payload refused",
        "known deviation debian-ovmf-2022.11-kernel-legacy-fallback",
        "-kernel /run/prepared/vmlinuz-unsigned",
        "not recorded: run it with `bootmatrix run --filter",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }

    // A record as the run folder holds it (edited: escape sequences in the reason).
    let recorded: bootmatrix::report::record::CellRecord = serde_json::from_value(serde_json::json!({
        "id": id, "descriptor": "50-edk2-x86_64-secure.json", "qemu_version": "7.2.0",
        "machine": "pc-q35-7.2", "accel": "tcg", "accel_reason": "forced", "sev": false,
        "check": "kernel-boot", "variant": "own-keys-vars/unsigned", "profile": "upstream",
        "verdict": "known-deviation",
        "reason": "expected the kernel to be refused ...\u{1b}[2J\u{1b}]0;owned\u{7}",
        "refused_by_planner": false,
        "decided_ms": 6572, "elapsed_ms": 6600,
        "observed": {
            "payload": "legacy-silent", "secure_boot": 1, "setup_mode": "unknown",
            "linux_version": "Linux version 6.1.0-28-amd64", "command_line": null,
            "loaded_by": "legacy-loader", "legacy_warning": null,
            "evidence": [
                {"stream": "serial", "at_ms": 6500, "line": "[    0.000000] Linux version 6.1.0-28-amd64"},
                {"stream": "serial", "at_ms": 6572, "line": "[    0.010712] secureboot: Secure boot enabled"}
            ]
        },
        "firmware": {
            "executable": "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd", "sha256": null,
            "package": null, "edk2_release": "2022.11",
            "vendor": "EDK II", "revision": "0x00010000", "uefi_revision": "2.70"
        },
    }))
    .expect("a record");
    let text = bootmatrix::report::explain::explain(cell, fw, &scenarios, run_dir, Some(&recorded));
    for needle in [
        "note: that run used profile upstream, this explanation profile strict",
        "payload: legacy-silent",
        "evidence:\n    [serial +6.500 s] [    0.000000] Linux version 6.1.0-28-amd64\n    [serial +6.572 s] [    0.010712] secureboot: Secure boot enabled",
        "decided after 6572 ms",
        "reported by the guest: EDK II revision 0x00010000",
        "verdict: known-deviation",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(
        !text.contains("legacy_warning"),
        "null fields are left out:\n{text}"
    );
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "escape sequences from the run folder reach the terminal:\n{text:?}"
    );

    let refused = bootmatrix::report::explain::find_cell(
        &plan,
        "50-edk2-x86_64-secure/qemu-7.2.0/sev-on/kernel-boot/own-keys-vars-unsigned",
    )
    .unwrap();
    let text = bootmatrix::report::explain::explain(refused, fw, &scenarios, run_dir, None);
    assert!(
        text.contains("refused by the planner: refused by policy"),
        "{text}"
    );
}

#[test]
fn explain_finds_a_cell_by_a_unique_part_of_its_id() {
    let plan = make_plan(&inventory(
        debian(),
        vec![qemu(Version::new(7, 2, 0), broken_kvm(), no_sev())],
    ));
    let found = bootmatrix::report::explain::find_cell(
        &plan,
        "60-edk2-x86_64/qemu-7.2.0/sev-off/option-rom/shipped-vars-signed",
    )
    .unwrap();
    assert!(found.id.ends_with("option-rom/shipped-vars-signed"));
    let many = bootmatrix::report::explain::find_cell(&plan, "option-rom").unwrap_err();
    assert!(many.contains("matches 12 cells"), "{many}");
    let none = bootmatrix::report::explain::find_cell(&plan, "no-such-cell").unwrap_err();
    assert!(none.contains("no cell \"no-such-cell\""), "{none}");
}

/// `bootmatrix expect`'s text for Debian's 2022.11 firmware on QEMU 7.2 (no SEV) and 10.0 (a
/// SEV host), with the scenarios' deviations pointed at the test firmware's sha256.
fn expect_2022_11(build: &Build) -> String {
    let firmware = debian_with_package("2022.11-6+deb12u2");
    let inv = inventory(
        firmware.clone(),
        vec![
            qemu(Version::new(7, 2, 0), broken_kvm(), no_sev()),
            qemu(Version::new(10, 0, 2), working_kvm(), sev_host()),
        ],
    );
    let mut scenarios = Scenarios::builtin();
    for d in &mut scenarios.deviations {
        if d.package.starts_with("ovmf 2022.11") {
            d.executable_sha256 = "00".repeat(32);
        }
    }
    let plan = plan(&inv, &scenarios, &options());
    let selected: Vec<&Firmware> = firmware.iter().filter(|f| build.selects(f)).collect();
    bootmatrix::report::expect::render(build, &selected, &plan, &scenarios)
}

/// The lines of `text` that start (after indentation) with `prefix`.
fn lines_starting<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.trim_start().starts_with(prefix))
        .collect()
}

#[test]
fn expect_lists_every_cell_of_the_build_with_its_rule_and_deviation() {
    let text = expect_2022_11(&Build::Package("ovmf 2022.11-6+deb12u2".into()));
    // All three descriptors, each on both QEMUs with SEV off and on.
    for name in [
        "40-edk2-x86_64-secure-enrolled",
        "50-edk2-x86_64-secure",
        "60-edk2-x86_64",
    ] {
        assert!(text.contains(&format!("\n{name}.json (")), "{text}");
    }
    assert_eq!(
        lines_starting(&text, "QEMU 7.2.0, SEV off:").len(),
        3,
        "{text}"
    );
    assert_eq!(
        lines_starting(&text, "QEMU 10.0.2, SEV on:").len(),
        3,
        "{text}"
    );
    // The deviation travels with the cell it excuses, and only with that one.
    let rom = lines_starting(&text, "option-rom own-keys-vars/unsigned:");
    assert_eq!(rom.len(), 4, "{text}");
    assert!(rom[0].contains("not-executed, SecureBoot=1 (rule unsigned-rejected); known deviation debian-ovmf-2022.11-oprom-always-execute: executed, SecureBoot=1"), "{text}");
    let signed_rom = lines_starting(&text, "option-rom own-keys-vars/signed:");
    assert!(
        signed_rom.iter().all(|l| !l.contains("known deviation")),
        "{text}"
    );
    // A cell this host cannot run still shows its expectation, and why it does not run here.
    let shim = lines_starting(&text, "kernel-boot db-added-vars/unsigned/shim:");
    assert_eq!(shim.len(), 4, "{text}");
    let expected_but_not_run = shim
        .iter()
        .filter(|l| l.contains("refused (rule unsigned-refused)") && l.contains("; not run here ["))
        .count();
    assert_eq!(
        expected_but_not_run, 2,
        "QEMU 7.2 and 10.0 with SEV off: {text}"
    );
    for why in [
        "no shim given",
        "(admission rule shim)",
        "-shim needs QEMU >= 10.0; this is qemu-7.2.0 (admission rule shim-qemu-version)",
    ] {
        assert!(text.contains(why), "{why} in {text}");
    }
    // SEV on a SEV host runs probe cells; -kernel under SEV never runs on any host.
    let sev_probe = text
        .split("QEMU 10.0.2, SEV on:")
        .nth(1)
        .unwrap()
        .lines()
        .find(|l| {
            l.trim_start()
                .starts_with("secure-boot own-keys-vars/unsigned:")
        })
        .unwrap();
    assert!(!sev_probe.contains("not run"), "{sev_probe}");
    assert!(text.contains("never run, on any host"), "{text}");
    assert!(
        text.contains("(admission rule sev-kernel-policy)"),
        "{text}"
    );
    // Why, the deviations in full, and the release-dependent rules with their verdict.
    assert!(
        text.contains("kernel-boot/unsigned-refused: strict:"),
        "{text}"
    );
    assert!(text.contains("reference: CVE-2025-2296"), "{text}");
    assert!(text.contains("kernel-boot/unsigned-silent-fallback [edk2 before 2025.02]: this build's release is in range"), "{text}");
    assert!(text.contains("kernel-boot/signed-verified [edk2 from 2025.02, QEMU from 10.0.0]: not for this build's release"), "{text}");
}

#[test]
fn expect_selects_by_package_name_version_or_file() {
    let by_name = expect_2022_11(&Build::Package("ovmf".into()));
    assert!(by_name.contains("\n60-edk2-x86_64.json ("), "{by_name}");
    let other = expect_2022_11(&Build::Package("ovmf 2025.02-8+deb13u1".into()));
    assert!(!other.contains(".json ("), "{other}");
    let one = expect_2022_11(&Build::Firmware(data("50-edk2-x86_64-secure.json")));
    assert!(one.contains("\n50-edk2-x86_64-secure.json ("), "{one}");
    assert!(
        !one.contains("\n40-edk2-x86_64-secure-enrolled.json ("),
        "{one}"
    );
    assert!(!one.contains("\n60-edk2-x86_64.json ("), "{one}");
    // Only the selected build's deviations are listed.
    let plain = expect_2022_11(&Build::Firmware(data("60-edk2-x86_64.json")));
    assert!(!plain.contains("known deviation"), "{plain}");
}

#[test]
fn explain_names_the_admission_rule_that_skipped_the_cell() {
    let plan = plan_on_7_2(debian(), options());
    let scenarios = Scenarios::builtin();
    let explain = |id: &str| {
        let c = cell(&plan, id);
        bootmatrix::report::explain::explain(c, None, &scenarios, Path::new("/runs/x"), None)
    };
    let sev = explain("50-edk2-x86_64-secure/qemu-7.2.0/sev-on/secure-boot/own-keys-vars-signed");
    assert!(sev.contains("  decided by admission rule sev-host (the rules, in order: machine, template, sev-kernel-policy, measured-without-sev, sev-kvm, sev-host,"), "{sev}");
    let policy =
        explain("50-edk2-x86_64-secure/qemu-7.2.0/sev-on/kernel-boot/own-keys-vars-signed");
    assert!(
        policy.contains("decided by admission rule sev-kernel-policy"),
        "{policy}"
    );
    let run = explain("50-edk2-x86_64-secure/qemu-7.2.0/sev-off/secure-boot/own-keys-vars-signed");
    assert!(!run.contains("admission rule"), "{run}");
}

/// `plan --verify`: a cell skipped only for want of KVM or SEV is planned again as on a capable
/// host (KVM, the stand-in SEV parameters) and verified; a cell the planner refuses by policy
/// has no argv; a running cell keeps its own.
#[test]
fn verify_targets_plan_host_denied_cells_as_on_a_capable_host() {
    use bootmatrix::plan::verify::{capable_inventory, targets, Target};
    let inv = inventory(
        debian(),
        vec![qemu(Version::new(7, 2, 0), broken_kvm(), no_sev())],
    );
    let real = make_plan(&inv);
    let capable = make_plan(&capable_inventory(&inv));
    let found = targets(&real, &capable);
    assert_eq!(found.len(), real.cells.len());
    let (mut host, mut policy, mut own) = (0, 0, 0);
    for ((id, target), cell) in found.iter().zip(&real.cells) {
        assert_eq!(*id, cell.id);
        match (target, &cell.action) {
            (Target::Argv { spec, host: None }, Action::Run(planned)) => {
                assert_eq!(spec, planned, "{id}");
                own += 1;
            }
            (
                Target::Argv {
                    spec,
                    host: Some(denial),
                },
                Action::Skip(skip),
            ) => {
                assert_eq!(denial, skip, "{id}");
                assert_eq!(denial.rule, AdmissionRule::SevHost, "{id}");
                let argv = spec.argv.join(" ");
                assert!(argv.contains(",accel=kvm,"), "{id}: {argv}");
                assert!(
                    argv.contains("sev-guest,id=sev0,cbitpos=51,reduced-phys-bits=1"),
                    "{id}: {argv}"
                );
                host += 1;
            }
            (Target::NoArgv(denial), Action::Refused(refusal)) => {
                assert_eq!(denial, refusal, "{id}");
                assert_eq!(denial.rule, AdmissionRule::SevKernelPolicy, "{id}");
                policy += 1;
            }
            (Target::NoArgv(denial), Action::Skip(skip)) => {
                assert_eq!(denial, skip, "{id}");
                assert_ne!(denial.rule, AdmissionRule::SevHost, "{id}");
            }
            (target, action) => panic!("{id}: {target:?} for {action:?}"),
        }
    }
    assert!(host > 0 && policy > 0 && own > 0, "{host} {policy} {own}");
}
