//! Fixtures for the planner's unit tests: QEMU binaries of a given version, descriptors from
//! text, and a cell candidate that every admission rule admits.

use std::path::{Path, PathBuf};

use crate::discover::descriptor;
use crate::discover::host::{Accel, KvmProbe, SevParams};
use crate::discover::qemu::{Machines, QemuBinary, Version};
use crate::discover::release::Edk2Release;
use crate::discover::{Firmware, QemuTarget};
use crate::matrix::{Check, Payload, Tweak, Variant, Vars};
use crate::scenario::{Rule, Scenarios, Subject};

use super::layout::Layout;
use super::{pick_machine, Candidate, PlanOptions};

/// A QEMU binary of `version` (`"7.2.0"`) with its q35 and pc machine types, no data folder.
pub fn qemu_binary(version: &str) -> QemuBinary {
    let v = Version::parse(version).expect("a version");
    let mm = format!("{}.{}", v.major, v.minor);
    let help = format!(
        "Supported machines are:\n\
         pc                   Standard PC (alias of pc-i440fx-{mm})\n\
         pc-i440fx-{mm}        Standard PC\n\
         q35                  Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-{mm})\n\
         pc-q35-{mm}           Standard PC (Q35 + ICH9, 2009)\n"
    );
    QemuBinary {
        path: PathBuf::from(format!("/opt/qemu-{v}/bin/qemu-system-x86_64")),
        data_dir: None,
        launch: crate::discover::launch::Launch::Direct,
        version: v,
        banner: format!("QEMU emulator version {v}"),
        machines: Machines::parse_help(&help),
        objects: None,
    }
}

pub fn sev_params() -> SevParams {
    SevParams {
        cbitpos: 51,
        reduced_phys_bits: 1,
    }
}

/// `qemu_binary(version)` on a host with working KVM (and SMM), and SEV when `sev` is Ok.
pub fn qemu_target(version: &str, sev: Result<SevParams, String>) -> QemuTarget {
    QemuTarget {
        binary: qemu_binary(version),
        kvm: KvmProbe {
            usable: Ok(()),
            smm: Ok(()),
        },
        sev,
        cc: crate::discover::host::CcHost::capable(),
    }
}

/// A descriptor with `mapping` (JSON), for x86_64 q35 machines, with `features`.
pub fn descriptor_text(mapping: &str, features: &[&str]) -> String {
    let features: Vec<String> = features.iter().map(|f| format!("{f:?}")).collect();
    format!(
        r#"{{"description": "test", "interface-types": ["uefi"], "mapping": {mapping},
            "targets": [{{"architecture": "x86_64", "machines": ["pc-q35-*"]}}],
            "features": [{}], "tags": []}}"#,
        features.join(", ")
    )
}

/// A split flash mapping: `/fw/CODE.fd` read-only, `/fw/VARS.fd` as the template.
pub const SPLIT: &str = r#"{"device": "flash",
    "executable": {"filename": "/fw/CODE.fd", "format": "raw"},
    "nvram-template": {"filename": "/fw/VARS.fd", "format": "raw"}}"#;

/// Firmware `name` from descriptor text, readable (its executable hashes to 00..00).
pub fn firmware(name: &str, text: &str) -> Firmware {
    Firmware {
        descriptor: descriptor::parse(Path::new(name), text).expect("a valid descriptor"),
        executable_sha256: Ok("00".repeat(32)),
        package: None,
        tree: None,
    }
}

/// Everything a [`Candidate`] borrows, owned, so a test can change one thing and ask again.
pub struct Fixture {
    pub firmware: Firmware,
    pub qemu: QemuTarget,
    pub sev: bool,
    /// The confidential mode when `sev` is false (`sev` means `Confidential::Sev`).
    pub mode: crate::matrix::Confidential,
    pub check: Check,
    pub variant: Variant,
    pub accel: Accel,
    pub accel_reason: String,
    pub machine: Result<String, String>,
    pub expectation: Option<Rule>,
    pub template: Option<crate::plan::template::ArgvTemplate>,
    pub edk2: Option<Edk2Release>,
    pub scenarios: Scenarios,
    pub options: PlanOptions,
}

impl Fixture {
    /// A cell every rule admits: the signed probe under Secure Boot (own keys) of a split,
    /// SMM, SEV-capable build, SEV off, on QEMU 10.0.2 under KVM on a SEV host, with a kernel
    /// and a shim given.
    pub fn admitted() -> Fixture {
        let firmware = firmware(
            "50-test.json",
            &descriptor_text(SPLIT, &["amd-sev", "requires-smm", "secure-boot"]),
        );
        let qemu = qemu_target("10.0.2", Ok(sev_params()));
        let machine = pick_machine(&qemu.binary, &firmware.descriptor);
        let mut options = PlanOptions::new(Layout::new("/run"));
        options.kernel = Ok(PathBuf::from("/kernels/vmlinuz"));
        options.shim = Some(PathBuf::from("/shim/shimx64.efi.signed"));
        let mut fixture = Fixture {
            firmware,
            qemu,
            sev: false,
            mode: crate::matrix::Confidential::Off,
            check: Check::SecureBoot,
            variant: Variant::new(Vars::OwnKeys, Payload::Signed),
            accel: Accel::Kvm,
            accel_reason: "KVM runs guest code".into(),
            machine,
            expectation: None,
            template: None,
            edk2: None,
            scenarios: Scenarios::builtin(),
            options,
        };
        fixture.expectation = fixture.rule_for();
        assert!(
            fixture.expectation.is_some(),
            "a built-in rule for the fixture"
        );
        fixture
    }

    /// The built-in scenarios' rule for the fixture as it is now.
    pub fn rule_for(&self) -> Option<Rule> {
        let subject = Subject {
            descriptor: &self.firmware.descriptor,
            edk2: self.edk2,
            qemu: self.qemu.binary.version,
            variant: self.variant,
            sev: self.sev || self.mode.is_on(),
            profile: self.options.profile,
            sbat_revoked: false,
        };
        self.scenarios.rule_for(self.check, &subject).cloned()
    }

    pub fn candidate(&self) -> Candidate<'_> {
        Candidate {
            firmware: &self.firmware,
            qemu: &self.qemu,
            mode: if self.sev {
                crate::matrix::Confidential::Sev
            } else {
                self.mode
            },
            check: self.check,
            variant: self.variant,
            accel: self.accel,
            accel_reason: &self.accel_reason,
            machine: &self.machine,
            expectation: self.expectation.as_ref(),
            template: self.template.as_ref(),
            edk2: self.edk2,
            scenarios: &self.scenarios,
            options: &self.options,
        }
    }

    /// The fixture as a kernel-boot cell with `tweak` (and its expectation).
    pub fn kernel_boot(mut self, tweak: Tweak) -> Fixture {
        self.check = Check::KernelBoot;
        self.variant.tweak = tweak;
        self.expectation = self.rule_for();
        self
    }
}
