//! Whether a cell runs: an ordered list of named admission rules. Each rule looks at the cell
//! and either admits it (`None`) or objects with its reason; the first objection in `ADMISSION`
//! order ([`AdmissionRule::in_order`]) decides, so the order is the precedence. What an
//! objection makes of the cell (a skip, a refusal by policy, an error) belongs to the rule
//! ([`AdmissionRule::kind`]). A cell records the rule that kept it out ([`Denial`]), by a
//! stable kebab-case name.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::discover::descriptor::{Feature, FlashMode, Mapping};
use crate::discover::host::Accel;
use crate::matrix::{Check, Confidential, Payload, Tweak, Vars};

use super::{vars_variants, Candidate};

/// One admission rule. The order of `ADMISSION` ([`AdmissionRule::in_order`]) is their
/// precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdmissionRule {
    /// The descriptor's machine globs match this QEMU's q35 or pc machine type.
    Machine,
    /// A runtime's argv template (`--argv-template`) has what the cell's check needs.
    Template,
    /// `-kernel` under SEV only when the boot is measured (a refusal, on any host).
    SevKernelPolicy,
    /// A measured-direct-boot build hands a `-kernel` over only against SEV's hash table: its
    /// kernel-boot cells without SEV have nothing to judge.
    MeasuredWithoutSev,
    /// SEV guests run under KVM only.
    SevKvm,
    /// The host (and this QEMU on it) can start SEV guests.
    SevHost,
    /// `-object sev-guest` needs QEMU >= 2.12.
    SevQemuVersion,
    /// `-kernel` under TDX is refused: nothing in the firmware verifies it (a refusal).
    TdxKernelPolicy,
    /// No option ROM on a device of a SEV-ES, SEV-SNP, TDX or IGVM guest (a refusal).
    ConfidentialOptionRom,
    /// SEV-ES, SEV-SNP and TDX guests have no SMM: firmware that requires it cannot run there.
    ConfidentialSmm,
    /// SEV-SNP and TDX load the firmware with `-bios` (a `memory` mapping) only.
    ConfidentialMapping,
    /// SEV-ES, SEV-SNP, TDX and IGVM guests run under KVM only.
    ConfidentialKvm,
    /// The host (and this QEMU on it) can start guests of the mode.
    ConfidentialHost,
    /// The QEMU release the mode first appears in (QEMU's own docs).
    ConfidentialQemuVersion,
    /// Firmware that keeps its variables in QEMU's uefi-vars device is not set up yet.
    HostUefiVars,
    /// The firmware executable can be read (an error when not).
    FirmwareReadable,
    /// A cell that needs the test db key trusted runs only where it can be enrolled: not on a
    /// build with its keys built in and no varstore (the Intel TDX `.ms` build).
    TestKey,
    /// Kernel-boot cells need a kernel.
    Kernel,
    /// The kernel command line carries no `initrd=` (an error when it does).
    KernelAppend,
    /// `-shim` needs QEMU >= 10.0.
    ShimQemuVersion,
    /// Shim cells need a shim.
    Shim,
    /// distro-chain cells need their suites' chains provisioned.
    Chain,
    /// A scenario rule gives the cell its expectation (an error when none does).
    Expectation,
    /// This QEMU can map the firmware as its descriptor says (IGVM needs QEMU >= 10.1).
    FirmwareMapping,
}

/// What a rule's objection makes of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenialKind {
    /// The machine (host, QEMU, options) cannot run it.
    Skip,
    /// The configuration itself breaks policy; reported as a skip.
    Refused,
    /// The harness cannot run it; reported as an error.
    Error,
}

/// Why a cell does not run: the rule that kept it out and that rule's reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    pub rule: AdmissionRule,
    pub reason: String,
}

type Objection = fn(&Candidate) -> Option<String>;

/// The admission rules in precedence order: the first that objects decides the cell.
const ADMISSION: &[(AdmissionRule, Objection)] = &[
    (AdmissionRule::Machine, machine),
    (AdmissionRule::Template, template),
    // Policy before host capability: a runtime maintainer sees the refusal on any host.
    (AdmissionRule::SevKernelPolicy, sev_kernel_policy),
    (AdmissionRule::MeasuredWithoutSev, measured_without_sev),
    (AdmissionRule::SevKvm, sev_kvm),
    (AdmissionRule::SevHost, sev_host),
    (AdmissionRule::SevQemuVersion, sev_qemu_version),
    // The modes after SEV: policy first, then what the build, the host and QEMU can do.
    (AdmissionRule::TdxKernelPolicy, tdx_kernel_policy),
    (
        AdmissionRule::ConfidentialOptionRom,
        confidential_option_rom,
    ),
    (AdmissionRule::ConfidentialSmm, confidential_smm),
    (AdmissionRule::ConfidentialMapping, confidential_mapping),
    (AdmissionRule::ConfidentialKvm, confidential_kvm),
    (AdmissionRule::ConfidentialHost, confidential_host),
    (
        AdmissionRule::ConfidentialQemuVersion,
        confidential_qemu_version,
    ),
    (AdmissionRule::HostUefiVars, host_uefi_vars),
    (AdmissionRule::FirmwareReadable, firmware_readable),
    // A property of the build, not of the host: before the kernel and shim a host may lack.
    (AdmissionRule::TestKey, test_key),
    (AdmissionRule::Kernel, kernel),
    (AdmissionRule::KernelAppend, kernel_append),
    (AdmissionRule::ShimQemuVersion, shim_qemu_version),
    (AdmissionRule::Shim, shim),
    (AdmissionRule::Chain, chain),
    (AdmissionRule::Expectation, expectation),
    (AdmissionRule::FirmwareMapping, firmware_mapping),
];

impl AdmissionRule {
    /// Every rule, in precedence order.
    pub fn in_order() -> impl Iterator<Item = AdmissionRule> {
        ADMISSION.iter().map(|&(rule, _)| rule)
    }

    /// The rule's stable name (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            AdmissionRule::Machine => "machine",
            AdmissionRule::Template => "template",
            AdmissionRule::SevKernelPolicy => "sev-kernel-policy",
            AdmissionRule::MeasuredWithoutSev => "measured-without-sev",
            AdmissionRule::SevKvm => "sev-kvm",
            AdmissionRule::SevHost => "sev-host",
            AdmissionRule::SevQemuVersion => "sev-qemu-version",
            AdmissionRule::TdxKernelPolicy => "tdx-kernel-policy",
            AdmissionRule::ConfidentialOptionRom => "confidential-option-rom",
            AdmissionRule::ConfidentialSmm => "confidential-smm",
            AdmissionRule::ConfidentialMapping => "confidential-mapping",
            AdmissionRule::ConfidentialKvm => "confidential-kvm",
            AdmissionRule::ConfidentialHost => "confidential-host",
            AdmissionRule::ConfidentialQemuVersion => "confidential-qemu-version",
            AdmissionRule::HostUefiVars => "host-uefi-vars",
            AdmissionRule::FirmwareReadable => "firmware-readable",
            AdmissionRule::TestKey => "test-key",
            AdmissionRule::Kernel => "kernel",
            AdmissionRule::KernelAppend => "kernel-append",
            AdmissionRule::ShimQemuVersion => "shim-qemu-version",
            AdmissionRule::Shim => "shim",
            AdmissionRule::Chain => "chain",
            AdmissionRule::Expectation => "expectation",
            AdmissionRule::FirmwareMapping => "firmware-mapping",
        }
    }

    /// What this rule's objection makes of a cell.
    pub fn kind(self) -> DenialKind {
        match self {
            AdmissionRule::SevKernelPolicy
            | AdmissionRule::TdxKernelPolicy
            | AdmissionRule::ConfidentialOptionRom => DenialKind::Refused,
            AdmissionRule::FirmwareReadable
            | AdmissionRule::KernelAppend
            | AdmissionRule::Expectation => DenialKind::Error,
            AdmissionRule::Machine
            | AdmissionRule::Template
            | AdmissionRule::MeasuredWithoutSev
            | AdmissionRule::SevKvm
            | AdmissionRule::SevHost
            | AdmissionRule::SevQemuVersion
            | AdmissionRule::ConfidentialSmm
            | AdmissionRule::ConfidentialMapping
            | AdmissionRule::ConfidentialKvm
            | AdmissionRule::ConfidentialHost
            | AdmissionRule::ConfidentialQemuVersion
            | AdmissionRule::HostUefiVars
            | AdmissionRule::TestKey
            | AdmissionRule::Kernel
            | AdmissionRule::ShimQemuVersion
            | AdmissionRule::Shim
            | AdmissionRule::Chain
            | AdmissionRule::FirmwareMapping => DenialKind::Skip,
        }
    }
}

impl fmt::Display for AdmissionRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Denial {
    pub fn new(rule: AdmissionRule, reason: impl Into<String>) -> Denial {
        Denial {
            rule,
            reason: reason.into(),
        }
    }
}

/// The reason alone, as plans and reports have always printed it.
impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Admits the cell, or names the first rule (in [`ADMISSION`] order) that objects.
pub(super) fn admit(c: &Candidate) -> Result<(), Denial> {
    ADMISSION
        .iter()
        .try_for_each(|&(rule, objection)| match objection(c) {
            Some(reason) => Err(Denial { rule, reason }),
            None => Ok(()),
        })
}

fn machine(c: &Candidate) -> Option<String> {
    c.machine.as_ref().err().cloned()
}

fn template(c: &Candidate) -> Option<String> {
    let has_vars = matches!(&c.firmware.descriptor.mapping,
        Mapping::Flash(f) if f.mode == FlashMode::Split && f.nvram_template.is_some());
    c.template?.lacks(c.check, has_vars)
}

/// `-kernel` under SEV is allowed only when the boot is measured: a firmware build known to
/// verify the kernel against SEV kernel hashes (scenarios' measured-boot list, by sha256), on a
/// QEMU that can pass them (`kernel-hashes=on`, 6.2). QEMU accepting `kernel-hashes=on` says
/// nothing about the firmware, so the firmware build decides. The same holds in every mode of
/// the SEV family (SEV-ES, SEV-SNP, IGVM): the hashes are measured into the launch digest,
/// but only such a build checks them. `sev-snp-guest` takes `kernel-hashes` from its first
/// release (9.1, the `confidential-qemu-version` rule).
fn sev_kernel_policy(c: &Candidate) -> Option<String> {
    if !(c.mode.is_amd() && c.check == Check::KernelBoot) {
        return None;
    }
    let mode = c.mode.name();
    let measured = c
        .firmware
        .executable_sha256
        .as_ref()
        .ok()
        .and_then(|sha| c.scenarios.measured_build(sha));
    match measured {
        None => Some(format!(
            "refused by policy: -kernel with {mode} is never allowed unless the boot is measured, \
             and {} is not a build known to verify SEV kernel hashes (measured-boot list of the {} scenarios); \
             the host could hand the guest any kernel",
            crate::discover::executable_of(&c.firmware.descriptor).display(),
            c.scenarios.origin
        )),
        Some(_) if !c.mode.is_snp() && !c.qemu.binary.has_kernel_hashes() => Some(format!(
            "refused by policy: -kernel with {mode} must be measured (sev-guest kernel-hashes=on), \
             which needs QEMU >= 6.2; this is {}",
            c.qemu.binary.label()
        )),
        Some(_) => None,
    }
}

fn measured_without_sev(c: &Candidate) -> Option<String> {
    if c.mode.is_on() || !boots_a_kernel(c) {
        return None;
    }
    let sha = c.firmware.executable_sha256.as_ref().ok()?;
    let build = c.scenarios.measured_build(sha)?;
    Some(format!(
        "{} is a measured direct boot build ({}): it hands a -kernel over only after checking it \
         against the hashes SEV puts in guest memory, and without SEV there are none, so no \
         kernel starts by design and a cell without SEV has nothing to judge; its SEV cells \
         carry the check",
        c.firmware.descriptor.name, build.build
    ))
}

/// Only where the host has SEV at all: otherwise `sev-host` says why.
fn sev_kvm(c: &Candidate) -> Option<String> {
    (c.sev() && c.accel != Accel::Kvm && c.qemu.sev.is_ok()).then(|| {
        format!(
            "SEV needs KVM; this cell runs on {} ({})",
            c.accel, c.accel_reason
        )
    })
}

fn sev_host(c: &Candidate) -> Option<String> {
    c.sev()
        .then(|| c.qemu.sev.as_ref().err().cloned())
        .flatten()
}

fn sev_qemu_version(c: &Candidate) -> Option<String> {
    (c.sev() && !c.qemu.binary.has_sev()).then(|| {
        format!(
            "SEV guests need QEMU >= 2.12; this is {}",
            c.qemu.binary.label()
        )
    })
}

/// `-kernel` under TDX: QEMU has no kernel hashes for TDX and TDVF only measures the kernel
/// into an RTMR; nothing in the guest verifies it before it runs, so the host picks the kernel
/// and only a remote attestation could notice. Refused on any host, like SEV's.
fn tdx_kernel_policy(c: &Candidate) -> Option<String> {
    (c.mode == Confidential::Tdx && c.check == Check::KernelBoot).then(|| {
        "refused by policy: -kernel with TDX is never allowed: QEMU passes TDX no kernel hashes \
         and the firmware only measures the kernel (RTMR), it verifies nothing before running \
         it; the host could hand the guest any kernel"
            .into()
    })
}

/// Option ROMs are host-supplied code that the launch measurement does not cover: a
/// confidential guest's devices carry none. OVMF itself skips every option ROM in a
/// confidential guest since edk2-stable202211 (`IncompatiblePciDeviceSupportDxe`, `CcProbe`).
/// Plain SEV keeps its option-rom cells (the `sev-signed`/`sev-unsigned` rules judge them).
fn confidential_option_rom(c: &Candidate) -> Option<String> {
    (c.mode.encrypts_registers() && c.check == Check::OptionRom).then(|| {
        format!(
            "refused by policy: no option ROM on a device of a {} guest: a ROM is host-supplied \
             code outside the launch measurement (OVMF skips them in confidential guests since \
             edk2-stable202211)",
            c.mode.name()
        )
    })
}

fn confidential_smm(c: &Candidate) -> Option<String> {
    let d = &c.firmware.descriptor;
    (c.mode.encrypts_registers() && d.has(&Feature::RequiresSmm)).then(|| {
        format!(
            "{} requires SMM, and a {} guest has none (its register state is encrypted; QEMU's \
             amd-memory-encryption.rst and tdx.rst)",
            d.name,
            c.mode.name()
        )
    })
}

/// SEV-SNP and TDX guests take the firmware into private memory with `-bios` (no read-only
/// memslots: pflash cannot be mapped); QEMU's amd-memory-encryption.rst and tdx.rst.
fn confidential_mapping(c: &Candidate) -> Option<String> {
    let needs_bios = matches!(c.mode, Confidential::SevSnp | Confidential::Tdx);
    let mapping = &c.firmware.descriptor.mapping;
    (needs_bios && !matches!(mapping, Mapping::Memory { .. })).then(|| {
        format!(
            "a {} guest loads its firmware with -bios only (a memory mapping); this descriptor \
             maps it as {}",
            c.mode.name(),
            match mapping {
                Mapping::Flash(_) => "flash (pflash)",
                Mapping::Kernel { .. } => "kernel",
                Mapping::Igvm { .. } => "igvm",
                Mapping::Memory { .. } => "memory",
            }
        )
    })
}

/// The host-capability answer for a mode after SEV (SEV's is `sev-host`).
fn cc_host<'c>(c: &'c Candidate) -> Option<&'c Result<(), String>> {
    let cc = &c.qemu.cc;
    match c.mode {
        Confidential::Off | Confidential::Sev => None,
        Confidential::SevEs => Some(&cc.sev_es),
        Confidential::SevSnp | Confidential::Igvm => Some(&cc.sev_snp),
        Confidential::Tdx => Some(&cc.tdx),
    }
}

/// Only where the host has the mode at all: otherwise `confidential-host` says why.
fn confidential_kvm(c: &Candidate) -> Option<String> {
    (c.accel != Accel::Kvm && cc_host(c).is_some_and(Result::is_ok)).then(|| {
        format!(
            "{} needs KVM; this cell runs on {} ({})",
            c.mode.name(),
            c.accel,
            c.accel_reason
        )
    })
}

fn confidential_host(c: &Candidate) -> Option<String> {
    let why = cc_host(c)?.as_ref().err()?;
    Some(format!("host has no {}: {why}", c.mode.name()))
}

fn confidential_qemu_version(c: &Candidate) -> Option<String> {
    let (first, why) = super::confidential::qemu_gate(c.mode)?;
    (c.qemu.binary.version < first).then(|| format!("{why}; this is {}", c.qemu.binary.label()))
}

fn host_uefi_vars(c: &Candidate) -> Option<String> {
    c.firmware.descriptor.has(&Feature::HostUefiVars).then(|| {
        "host-uefi-vars: the firmware keeps its variables in QEMU's uefi-vars-x64 device, \
         which bootmatrix does not set up yet"
            .into()
    })
}

fn firmware_readable(c: &Candidate) -> Option<String> {
    c.firmware
        .executable_sha256
        .as_ref()
        .err()
        .map(|why| format!("the descriptor's firmware cannot be used: {why}"))
}

/// A build that ships with its Secure Boot keys enrolled but has no varstore template to add
/// the test db certificate to (the keys are built into the image, as in the Intel TDX build
/// `OVMF.inteltdx.ms.fd`, mapped as `memory`) cannot be made to trust the test key. A cell that
/// needs the test-signed probe (every option-rom cell: the probe reports the ROM) or the
/// test-signed kernel to run means nothing there. Cells that judge the refusal of a payload
/// (secure-boot cells, unsigned kernels) still run.
fn test_key(c: &Candidate) -> Option<String> {
    let d = &c.firmware.descriptor;
    let what = match c.check {
        Check::SecureBoot => return None,
        Check::OptionRom => "the probe that reports the option ROM is signed with the test db key",
        Check::KernelBoot if c.variant.payload == Payload::Signed => {
            "the kernel is signed with the test db key"
        }
        // The test-signed kernel of a distro chain is there to be refused.
        // as-bios boots only unsigned payloads, whose refusal or start it judges.
        Check::KernelBoot
        | Check::DistroChain
        | Check::NoShell
        | Check::KeyHealth
        | Check::AsBios => return None,
    };
    (d.has(&Feature::EnrolledKeys) && !vars_variants(d).contains(&Vars::DbAdded)).then(|| {
        format!(
            "{} has its Secure Boot keys built in, with no varstore template to enroll the test \
             db key into, and {what}: the firmware cannot be made to trust it, so the cell \
             would say nothing",
            d.name
        )
    })
}

/// The chains a distro-chain cell boots: every suite it names provisioned.
fn chain(c: &Candidate) -> Option<String> {
    let chain = c.variant.chain.filter(|_| c.check == Check::DistroChain)?;
    let chains = match &c.options.chains {
        Ok(chains) => chains,
        Err(why) => return Some(why.clone()),
    };
    let missing: Vec<&str> = [chain.shim, chain.grub]
        .into_iter()
        .filter(|s| !chains.iter().any(|c| c.suite == *s))
        .map(|s| s.as_str())
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "no distro chain of {} (pass --chain DIR; ./ci/debian-matrix fetches other suites')",
            missing.join(" and ")
        )
    })
}

/// Whether the cell hands its payload over with `-kernel` (kernel-boot, and as-bios's kernel
/// variant).
fn boots_a_kernel(c: &Candidate) -> bool {
    c.check == Check::KernelBoot || (c.check == Check::AsBios && c.variant.tweak == Tweak::Kernel)
}

fn kernel(c: &Candidate) -> Option<String> {
    boots_a_kernel(c)
        .then(|| c.options.kernel.as_ref().err().cloned())
        .flatten()
}

fn kernel_append(c: &Candidate) -> Option<String> {
    boots_a_kernel(c)
        .then(|| kernel_append_problem(&c.options.kernel_append))
        .flatten()
}

/// Why a kernel command line cannot be used, or None. OVMF's LoadImage path adds
/// `initrd=initrd` to the command line and the legacy loader does not: observe tells the two
/// apart by that token, so bootmatrix's own `-append` must never carry an `initrd=`.
pub fn kernel_append_problem(append: &str) -> Option<String> {
    append
        .split_whitespace()
        .find(|w| w.starts_with("initrd="))
        .map(|w| {
            format!(
                "the kernel command line {append:?} contains {w:?}: the firmware adds \
                 initrd=initrd only when it loads the kernel through LoadImage, and that is how \
                 bootmatrix tells LoadImage from the legacy loader, so it must not come from -append"
            )
        })
}

fn shim_qemu_version(c: &Candidate) -> Option<String> {
    (c.variant.tweak == Tweak::Shim && !c.qemu.binary.has_shim()).then(|| {
        format!(
            "-shim needs QEMU >= 10.0; this is {}",
            c.qemu.binary.label()
        )
    })
}

fn shim(c: &Candidate) -> Option<String> {
    (c.variant.tweak == Tweak::Shim && c.options.shim.is_none())
        .then(|| "no shim given (--shim FILE, e.g. Debian's shimx64.efi.signed)".into())
}

fn expectation(c: &Candidate) -> Option<String> {
    c.expectation.is_none().then(|| {
        let features: Vec<String> = (c.firmware.descriptor.features.iter())
            .map(|f| f.to_string())
            .collect();
        format!(
            "no rule in scenarios ({}) matches check {}, variant {}, profile {}, \
             features [{}], edk2 release {}",
            c.scenarios.origin,
            c.check,
            c.variant,
            c.options.profile,
            features.join(", "),
            c.edk2
                .map_or("unknown (no package version)".to_string(), |r| r
                    .to_string())
        )
    })
}

fn firmware_mapping(c: &Candidate) -> Option<String> {
    match &c.firmware.descriptor.mapping {
        Mapping::Igvm { .. } if !c.qemu.binary.has_igvm() => Some(format!(
            "igvm mapping needs QEMU >= 10.1 built with IGVM (-object igvm-cfg); this is {}{}",
            c.qemu.binary.label(),
            if c.qemu.binary.has_object("igvm-cfg") {
                ""
            } else {
                ", whose -object help lists no igvm-cfg"
            }
        )),
        Mapping::Flash(flash)
            if flash.mode == FlashMode::Split && flash.nvram_template.is_none() =>
        {
            Some("split flash mapping without nvram-template".into())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::descriptor::Mapping;
    use crate::discover::release::Edk2Release;
    use crate::plan::pick_machine;
    use crate::plan::testkit::{
        descriptor_text, firmware, qemu_target, sev_params, Fixture, SPLIT,
    };
    use crate::plan::Action;
    use crate::scenario::MeasuredBuild;
    use std::path::PathBuf;
    use AdmissionRule as R;

    /// What `rule`, as the admission list runs it, says of the fixture.
    fn objection(f: &Fixture, rule: AdmissionRule) -> Option<String> {
        let (_, objection) = ADMISSION
            .iter()
            .find(|(r, _)| *r == rule)
            .unwrap_or_else(|| panic!("{rule} is not in the admission list"));
        objection(&f.candidate())
    }

    fn admit_fixture(f: &Fixture) -> Result<(), Denial> {
        admit(&f.candidate())
    }

    /// The rule that keeps the fixture out.
    fn denied_by(f: &Fixture) -> AdmissionRule {
        admit_fixture(f).expect_err("a denial").rule
    }

    fn sev_kernel() -> Fixture {
        let mut f = Fixture::admitted().kernel_boot(Tweak::None);
        f.sev = true;
        f
    }

    fn measured(f: &mut Fixture) {
        f.scenarios.measured.push(MeasuredBuild {
            executable_sha256: "00".repeat(32),
            package: String::new(),
            build: "OvmfPkg/AmdSev/AmdSevX64.dsc".into(),
            reference: "test".into(),
        });
    }

    #[test]
    fn measured_without_sev_skips_only_kernel_cells_without_sev_of_a_measured_build() {
        let mut f = Fixture::admitted();
        f.check = Check::KernelBoot;
        // Not a measured build: nothing to object to.
        assert_eq!(objection(&f, R::MeasuredWithoutSev), None);
        measured(&mut f);
        let why = objection(&f, R::MeasuredWithoutSev).expect("a skip");
        assert!(
            why.contains("is a measured direct boot build (OvmfPkg/AmdSev/AmdSevX64.dsc)"),
            "{why}"
        );
        assert!(why.contains("without SEV there are none"), "{why}");
        assert_eq!(R::MeasuredWithoutSev.kind(), DenialKind::Skip);
        // Its SEV cells, and its other checks, are not this rule's.
        f.sev = true;
        assert_eq!(objection(&f, R::MeasuredWithoutSev), None);
        f.sev = false;
        f.check = Check::SecureBoot;
        assert_eq!(objection(&f, R::MeasuredWithoutSev), None);
    }

    #[test]
    fn template_objects_when_the_runtimes_line_lacks_what_the_check_needs() {
        let mut f = Fixture::admitted();
        assert_eq!(objection(&f, R::Template), None, "bootmatrix's own argv");
        let words: Vec<String> =
            "qemu -bios {firmware} -kernel {kernel} -initrd {initrd} -append {append}"
                .split(' ')
                .map(String::from)
                .collect();
        f.template = Some(
            crate::plan::template::ArgvTemplate::parse(std::path::Path::new("k.args"), words)
                .unwrap(),
        );
        let why = objection(&f, R::Template).expect("a secure-boot cell needs {esp}");
        assert_eq!(
            why,
            "template k has no {esp}, which a secure-boot cell needs"
        );
        assert_eq!(R::Template.kind(), DenialKind::Skip);
        f.check = Check::KernelBoot;
        assert_eq!(objection(&f, R::Template), None);
    }

    #[test]
    fn the_precedence_is_the_documented_order() {
        let names: Vec<&str> = AdmissionRule::in_order().map(R::as_str).collect();
        assert_eq!(
            names,
            [
                "machine",
                "template",
                "sev-kernel-policy",
                "measured-without-sev",
                "sev-kvm",
                "sev-host",
                "sev-qemu-version",
                "tdx-kernel-policy",
                "confidential-option-rom",
                "confidential-smm",
                "confidential-mapping",
                "confidential-kvm",
                "confidential-host",
                "confidential-qemu-version",
                "host-uefi-vars",
                "firmware-readable",
                "test-key",
                "kernel",
                "kernel-append",
                "shim-qemu-version",
                "shim",
                "chain",
                "expectation",
                "firmware-mapping",
            ]
        );
    }

    #[test]
    fn rules_serialize_by_their_kebab_case_name() {
        for rule in AdmissionRule::in_order() {
            let value = serde_json::to_value(rule).unwrap();
            assert_eq!(value, serde_json::json!(rule.as_str()));
            assert_eq!(rule.to_string(), rule.as_str());
            assert_eq!(
                serde_json::from_value::<AdmissionRule>(value).unwrap(),
                rule
            );
        }
        let denial = Denial::new(R::SevHost, "host has no AMD SEV");
        assert_eq!(
            serde_json::to_value(&denial).unwrap(),
            serde_json::json!({"rule": "sev-host", "reason": "host has no AMD SEV"})
        );
        // Printed, a denial is its reason alone, as plans have always shown it.
        assert_eq!(denial.to_string(), "host has no AMD SEV");
    }

    #[test]
    fn a_denial_becomes_the_action_of_its_rules_kind() {
        for rule in AdmissionRule::in_order() {
            let action = Action::from(Denial::new(rule, "why"));
            let kind = match action {
                Action::Skip(_) => DenialKind::Skip,
                Action::Refused(_) => DenialKind::Refused,
                Action::Error(_) => DenialKind::Error,
                Action::Run(_) => panic!("{rule}: a denial runs"),
            };
            assert_eq!(kind, rule.kind(), "{rule}");
            assert_eq!(action.denial(), Some(&Denial::new(rule, "why")));
        }
        assert_eq!(R::SevKernelPolicy.kind(), DenialKind::Refused);
        assert_eq!(R::Expectation.kind(), DenialKind::Error);
        assert_eq!(R::SevHost.kind(), DenialKind::Skip);
    }

    #[test]
    fn the_fixture_is_admitted_by_every_rule() {
        let f = Fixture::admitted();
        assert_eq!(admit_fixture(&f), Ok(()));
        for rule in AdmissionRule::in_order() {
            assert_eq!(objection(&f, rule), None, "{rule}");
        }
        let mut sev = Fixture::admitted();
        sev.sev = true;
        assert_eq!(admit_fixture(&sev), Ok(()));
    }

    #[test]
    fn machine_objects_when_no_machine_type_matches() {
        let mut f = Fixture::admitted();
        f.firmware = firmware(
            "60-virt.json",
            &descriptor_text(crate::plan::testkit::SPLIT, &[]).replace("pc-q35-*", "microvm"),
        );
        f.machine = pick_machine(&f.qemu.binary, &f.firmware.descriptor);
        assert_eq!(
            objection(&f, R::Machine).as_deref(),
            Some("machines [microvm] match none of q35 (pc-q35-10.0), pc (pc-i440fx-10.0) on qemu-10.0.2")
        );
    }

    #[test]
    fn sev_kernel_policy_refuses_unmeasured_builds_on_any_host() {
        let mut f = sev_kernel();
        let why = objection(&f, R::SevKernelPolicy).expect("refused");
        assert!(
            why.starts_with("refused by policy: -kernel with SEV is never allowed unless the boot is measured, and /fw/CODE.fd is not a build known"),
            "{why}"
        );
        assert!(
            why.contains("(measured-boot list of the built-in scenarios)"),
            "{why}"
        );
        // No SEV on the host changes nothing: the configuration itself is refused.
        f.qemu.sev = Err("host has no AMD SEV".into());
        assert!(objection(&f, R::SevKernelPolicy).is_some());
        // Without SEV, or for another check, the rule has nothing to say.
        let mut off = sev_kernel();
        off.sev = false;
        assert_eq!(objection(&off, R::SevKernelPolicy), None);
        let mut probe = Fixture::admitted();
        probe.sev = true;
        assert_eq!(objection(&probe, R::SevKernelPolicy), None);
    }

    #[test]
    fn sev_kernel_policy_admits_a_measured_build_on_a_qemu_that_passes_hashes() {
        let mut f = sev_kernel();
        measured(&mut f);
        assert_eq!(objection(&f, R::SevKernelPolicy), None);
        f.qemu = qemu_target("6.1.0", Ok(sev_params()));
        assert_eq!(
            objection(&f, R::SevKernelPolicy).as_deref(),
            Some(
                "refused by policy: -kernel with SEV must be measured (sev-guest \
                 kernel-hashes=on), which needs QEMU >= 6.2; this is qemu-6.1.0"
            )
        );
        f.qemu = qemu_target("6.2.0", Ok(sev_params()));
        assert_eq!(objection(&f, R::SevKernelPolicy), None);
        // An unreadable executable is no measured build.
        f.firmware.executable_sha256 = Err("gone".into());
        assert!(objection(&f, R::SevKernelPolicy).is_some());
    }

    #[test]
    fn sev_kvm_objects_to_sev_under_tcg_on_a_sev_host() {
        let mut f = Fixture::admitted();
        f.sev = true;
        f.accel = Accel::Tcg;
        f.accel_reason = "--accel tcg".into();
        assert_eq!(
            objection(&f, R::SevKvm).as_deref(),
            Some("SEV needs KVM; this cell runs on tcg (--accel tcg)")
        );
        // Where the host has no SEV, sev-host says why instead.
        f.qemu.sev = Err("host has no AMD SEV".into());
        assert_eq!(objection(&f, R::SevKvm), None);
        f.sev = false;
        f.qemu.sev = Ok(sev_params());
        assert_eq!(objection(&f, R::SevKvm), None);
    }

    #[test]
    fn sev_host_gives_the_hosts_reason() {
        let mut f = Fixture::admitted();
        f.qemu.sev = Err("host has no AMD SEV: kvm_amd is not loaded".into());
        assert_eq!(objection(&f, R::SevHost), None);
        f.sev = true;
        assert_eq!(
            objection(&f, R::SevHost).as_deref(),
            Some("host has no AMD SEV: kvm_amd is not loaded")
        );
    }

    #[test]
    fn sev_qemu_version_needs_2_12() {
        let mut f = Fixture::admitted();
        f.sev = true;
        f.qemu = qemu_target("2.11.2", Ok(sev_params()));
        assert_eq!(
            objection(&f, R::SevQemuVersion).as_deref(),
            Some("SEV guests need QEMU >= 2.12; this is qemu-2.11.2")
        );
        f.sev = false;
        assert_eq!(objection(&f, R::SevQemuVersion), None);
        f.sev = true;
        f.qemu = qemu_target("2.12.0", Ok(sev_params()));
        assert_eq!(objection(&f, R::SevQemuVersion), None);
    }

    #[test]
    fn host_uefi_vars_firmware_is_not_set_up() {
        let mut f = Fixture::admitted();
        f.firmware = firmware(
            "20-host-vars.json",
            &descriptor_text(
                r#"{"device": "memory", "filename": "/fw/OVMF.fd"}"#,
                &["host-uefi-vars"],
            ),
        );
        let why = objection(&f, R::HostUefiVars).expect("skipped");
        assert!(
            why.starts_with(
                "host-uefi-vars: the firmware keeps its variables in QEMU's uefi-vars-x64 device"
            ),
            "{why}"
        );
    }

    #[test]
    fn firmware_readable_names_why_the_executable_cannot_be_used() {
        let mut f = Fixture::admitted();
        f.firmware.executable_sha256 = Err("cannot read /fw/CODE.fd: No such file".into());
        assert_eq!(
            objection(&f, R::FirmwareReadable).as_deref(),
            Some("the descriptor's firmware cannot be used: cannot read /fw/CODE.fd: No such file")
        );
    }

    /// The Intel TDX build of edk2 2026.08: keys built in, `memory` mapping, no varstore.
    fn tdx() -> Fixture {
        let mut f = Fixture::admitted();
        f.firmware = firmware(
            "60-edk2-x86_64-inteltdx.json",
            &descriptor_text(
                r#"{"device": "memory", "filename": "/usr/share/OVMF/OVMF.inteltdx.ms.fd"}"#,
                &["enrolled-keys", "secure-boot", "intel-tdx"],
            ),
        );
        f.variant.vars = Vars::Shipped;
        f
    }

    #[rstest::rstest]
    #[case::option_rom_signed(Check::OptionRom, Payload::Signed, Tweak::None, true)]
    #[case::option_rom_unsigned(Check::OptionRom, Payload::Unsigned, Tweak::None, true)]
    #[case::kernel_signed(Check::KernelBoot, Payload::Signed, Tweak::None, true)]
    #[case::kernel_signed_no_legacy(
        Check::KernelBoot,
        Payload::Signed,
        Tweak::NoLegacyLoader,
        true
    )]
    #[case::kernel_signed_shim(Check::KernelBoot, Payload::Signed, Tweak::Shim, true)]
    #[case::kernel_unsigned(Check::KernelBoot, Payload::Unsigned, Tweak::None, false)]
    #[case::kernel_unsigned_shim(Check::KernelBoot, Payload::Unsigned, Tweak::Shim, false)]
    #[case::probe_signed(Check::SecureBoot, Payload::Signed, Tweak::None, false)]
    #[case::probe_unsigned(Check::SecureBoot, Payload::Unsigned, Tweak::None, false)]
    fn test_key_skips_what_needs_the_test_key_on_a_build_with_keys_built_in(
        #[case] check: Check,
        #[case] payload: Payload,
        #[case] tweak: Tweak,
        #[case] skipped: bool,
    ) {
        let mut f = tdx();
        f.check = check;
        f.variant.payload = payload;
        f.variant.tweak = tweak;
        let why = objection(&f, R::TestKey);
        assert_eq!(why.is_some(), skipped, "{why:?}");
        if let Some(why) = why {
            assert!(
                why.starts_with(
                    "60-edk2-x86_64-inteltdx.json has its Secure Boot keys built in, with no \
                     varstore template to enroll the test db key into, and the "
                ),
                "{why}"
            );
            assert!(why.contains("test db key: the firmware cannot"), "{why}");
        }
        assert_eq!(R::TestKey.kind(), DenialKind::Skip);
    }

    #[test]
    fn test_key_admits_builds_whose_keys_can_be_added_to_or_that_have_none() {
        // Enrolled with a varstore template: the test db key is added (db-added).
        let mut f = Fixture::admitted();
        f.firmware = firmware(
            "40-enrolled.json",
            &descriptor_text(SPLIT, &["enrolled-keys", "secure-boot", "requires-smm"]),
        );
        f.check = Check::OptionRom;
        assert_eq!(objection(&f, R::TestKey), None);
        // No keys at all (the AmdSev build, memory mapped): nothing to trust the key.
        f.firmware = firmware(
            "60-amdsev.json",
            &descriptor_text(
                r#"{"device": "memory", "filename": "/fw/OVMF.amdsev.fd"}"#,
                &["amd-sev", "amd-sev-es", "amd-sev-snp"],
            ),
        );
        assert_eq!(objection(&f, R::TestKey), None);
        f.check = Check::KernelBoot;
        assert_eq!(objection(&f, R::TestKey), None);
        // Secure Boot without enrolled keys and no varstore: not this rule's case.
        f.firmware = firmware(
            "60-sb.json",
            &descriptor_text(
                r#"{"device": "memory", "filename": "/fw/OVMF.fd"}"#,
                &["secure-boot"],
            ),
        );
        assert_eq!(objection(&f, R::TestKey), None);
    }

    #[test]
    fn kernel_cells_need_a_kernel() {
        let mut f = Fixture::admitted().kernel_boot(Tweak::None);
        assert_eq!(objection(&f, R::Kernel), None);
        f.options.kernel = Err("no kernel given (--kernel PATH)".into());
        assert_eq!(
            objection(&f, R::Kernel).as_deref(),
            Some("no kernel given (--kernel PATH)")
        );
        f.check = Check::OptionRom;
        assert_eq!(objection(&f, R::Kernel), None);
    }

    #[test]
    fn kernel_append_may_not_carry_an_initrd() {
        let mut f = Fixture::admitted().kernel_boot(Tweak::None);
        f.options.kernel_append = "console=ttyS0 initrd=initrd".into();
        let why = objection(&f, R::KernelAppend).expect("an error");
        assert!(
            why.starts_with(
                r#"the kernel command line "console=ttyS0 initrd=initrd" contains "initrd=initrd""#
            ),
            "{why}"
        );
        assert_eq!(kernel_append_problem(&f.options.kernel_append), Some(why));
        assert_eq!(
            kernel_append_problem(super::super::DEFAULT_KERNEL_APPEND),
            None
        );
        // A word that merely contains the token is fine; only kernel-boot cells are judged.
        assert_eq!(kernel_append_problem("rd.initrd=x"), None);
        f.check = Check::SecureBoot;
        assert_eq!(objection(&f, R::KernelAppend), None);
    }

    #[test]
    fn shim_needs_qemu_10_and_a_shim() {
        let mut f = Fixture::admitted().kernel_boot(Tweak::Shim);
        assert_eq!(objection(&f, R::ShimQemuVersion), None);
        f.qemu = qemu_target("9.2.0", Ok(sev_params()));
        assert_eq!(
            objection(&f, R::ShimQemuVersion).as_deref(),
            Some("-shim needs QEMU >= 10.0; this is qemu-9.2.0")
        );
        assert_eq!(objection(&f, R::Shim), None);
        f.options.shim = None;
        assert_eq!(
            objection(&f, R::Shim).as_deref(),
            Some("no shim given (--shim FILE, e.g. Debian's shimx64.efi.signed)")
        );
        // Other tweaks need neither.
        f.variant.tweak = Tweak::NoLegacyLoader;
        assert_eq!(objection(&f, R::ShimQemuVersion), None);
        assert_eq!(objection(&f, R::Shim), None);
    }

    #[test]
    fn expectation_names_what_no_scenario_rule_matched() {
        let mut f = Fixture::admitted();
        f.expectation = None;
        assert_eq!(
            objection(&f, R::Expectation).as_deref(),
            Some(
                "no rule in scenarios (built-in) matches check secure-boot, variant \
                 own-keys-vars/signed, profile strict, features [amd-sev, requires-smm, \
                 secure-boot], edk2 release unknown (no package version)"
            )
        );
        f.edk2 = Edk2Release::from_package_version("ovmf 2025.02-8");
        let why = objection(&f, R::Expectation).unwrap();
        assert!(why.ends_with("edk2 release 2025.02"), "{why}");
    }

    #[test]
    fn firmware_mapping_needs_a_qemu_that_maps_it() {
        let mut f = Fixture::admitted();
        f.firmware = firmware(
            "70-igvm.json",
            &descriptor_text(r#"{"device": "igvm", "filename": "/fw/svsm.igvm"}"#, &[]),
        );
        f.qemu = qemu_target("10.0.2", Ok(sev_params()));
        assert_eq!(
            objection(&f, R::FirmwareMapping).as_deref(),
            Some("igvm mapping needs QEMU >= 10.1 built with IGVM (-object igvm-cfg); this is qemu-10.0.2")
        );
        f.qemu = qemu_target("10.1.0", Ok(sev_params()));
        assert_eq!(objection(&f, R::FirmwareMapping), None);
        // A build without IGVM (Debian's 11.1): its -object help lists no igvm-cfg.
        f.qemu = qemu_target("11.1.3", Ok(sev_params()));
        f.qemu.binary.objects = Some(vec!["sev-guest".into(), "sev-snp-guest".into()]);
        assert_eq!(
            objection(&f, R::FirmwareMapping).as_deref(),
            Some("igvm mapping needs QEMU >= 10.1 built with IGVM (-object igvm-cfg); this is qemu-11.1.3, whose -object help lists no igvm-cfg")
        );
        f.qemu.binary.objects = Some(vec!["igvm-cfg".into()]);
        assert_eq!(objection(&f, R::FirmwareMapping), None);
        // A split mapping without its template (the parser never makes one) is not booted.
        let mut split = Fixture::admitted();
        if let Mapping::Flash(flash) = &mut split.firmware.descriptor.mapping {
            flash.nvram_template = None;
        }
        assert_eq!(
            objection(&split, R::FirmwareMapping).as_deref(),
            Some("split flash mapping without nvram-template")
        );
    }

    #[test]
    fn a_cell_failing_two_rules_is_denied_by_the_earlier() {
        // machine before sev-kernel-policy.
        let mut f = sev_kernel();
        f.machine = Err("no machine".into());
        assert_eq!(denied_by(&f), R::Machine);
        // Policy before host capability: refused even where SEV cannot run.
        let mut f = sev_kernel();
        f.qemu = qemu_target("2.11.0", Err("host has no AMD SEV".into()));
        f.accel = Accel::Tcg;
        assert_eq!(denied_by(&f), R::SevKernelPolicy);
        assert!(matches!(
            Action::from(admit_fixture(&f).unwrap_err()),
            Action::Refused(_)
        ));
        // sev-kvm before sev-qemu-version.
        let mut f = Fixture::admitted();
        f.sev = true;
        f.accel = Accel::Tcg;
        f.qemu = qemu_target("2.11.0", Ok(sev_params()));
        assert_eq!(denied_by(&f), R::SevKvm);
        // sev-host before host-uefi-vars and firmware-readable.
        let mut f = Fixture::admitted();
        f.sev = true;
        f.qemu.sev = Err("host has no AMD SEV".into());
        f.firmware.executable_sha256 = Err("gone".into());
        assert_eq!(denied_by(&f), R::SevHost);
        // firmware-readable (an error) before test-key, test-key before kernel.
        let mut f = tdx().kernel_boot(Tweak::None);
        f.firmware.executable_sha256 = Err("gone".into());
        f.options.kernel = Err("no kernel".into());
        assert_eq!(denied_by(&f), R::FirmwareReadable);
        f.firmware.executable_sha256 = Ok("00".repeat(32));
        assert_eq!(denied_by(&f), R::TestKey);
        // firmware-readable (an error) before kernel (a skip).
        let mut f = Fixture::admitted().kernel_boot(Tweak::None);
        f.firmware.executable_sha256 = Err("gone".into());
        f.options.kernel = Err("no kernel".into());
        assert_eq!(denied_by(&f), R::FirmwareReadable);
        // kernel before kernel-append, shim-qemu-version and shim.
        let mut f = Fixture::admitted().kernel_boot(Tweak::Shim);
        f.options.kernel = Err("no kernel".into());
        f.options.kernel_append = "initrd=x".into();
        f.options.shim = None;
        f.qemu = qemu_target("9.2.0", Ok(sev_params()));
        assert_eq!(denied_by(&f), R::Kernel);
        f.options.kernel = Ok(PathBuf::from("/k"));
        assert_eq!(denied_by(&f), R::KernelAppend);
        f.options.kernel_append = "quiet".into();
        assert_eq!(denied_by(&f), R::ShimQemuVersion);
        f.qemu = qemu_target("10.0.2", Ok(sev_params()));
        assert_eq!(denied_by(&f), R::Shim);
        // expectation before firmware-mapping.
        let mut f = Fixture::admitted();
        f.firmware = firmware(
            "70-igvm.json",
            &descriptor_text(r#"{"device": "igvm", "filename": "/fw/svsm.igvm"}"#, &[]),
        );
        f.expectation = None;
        assert_eq!(denied_by(&f), R::Expectation);
        f.expectation = Fixture::admitted().expectation;
        assert_eq!(denied_by(&f), R::FirmwareMapping);
    }

    /// sid's AmdSev build (`memory` mapping, SEV, SEV-ES, SEV-SNP) in `mode` on QEMU
    /// `version`, on a host that has every mode.
    fn amdsev(mode: Confidential, version: &str) -> Fixture {
        let mut f = Fixture::admitted();
        f.firmware = firmware(
            "60-edk2-x86_64-amdsev.json",
            &descriptor_text(
                r#"{"device": "memory", "filename": "/usr/share/ovmf/OVMF.amdsev.fd"}"#,
                &["amd-sev", "amd-sev-es", "amd-sev-snp"],
            ),
        );
        f.qemu = qemu_target(version, Ok(sev_params()));
        f.machine = pick_machine(&f.qemu.binary, &f.firmware.descriptor);
        f.variant.vars = Vars::Shipped;
        f.mode = mode;
        f.expectation = f.rule_for();
        f
    }

    #[test]
    fn every_confidential_mode_of_a_fitting_build_is_admitted_on_a_capable_host() {
        for mode in [Confidential::SevEs, Confidential::SevSnp] {
            let f = amdsev(mode, "10.0.2");
            assert_eq!(admit_fixture(&f), Ok(()), "{mode}");
        }
        let mut tdx = tdx();
        tdx.mode = Confidential::Tdx;
        tdx.qemu = qemu_target("11.1.3", Ok(sev_params()));
        tdx.machine = pick_machine(&tdx.qemu.binary, &tdx.firmware.descriptor);
        tdx.expectation = tdx.rule_for();
        assert_eq!(admit_fixture(&tdx), Ok(()));
    }

    #[test]
    fn kernel_boot_in_the_sev_family_needs_a_measured_build_and_under_tdx_is_refused() {
        let mut f = amdsev(Confidential::SevSnp, "10.0.2").kernel_boot(Tweak::None);
        let why = objection(&f, R::SevKernelPolicy).expect("refused");
        assert!(
            why.starts_with("refused by policy: -kernel with SEV-SNP is never allowed unless the boot is measured"),
            "{why}"
        );
        measured(&mut f);
        assert_eq!(objection(&f, R::SevKernelPolicy), None);
        // sev-snp-guest has kernel-hashes from its first release: the 6.2 clause is SEV's.
        f.qemu = qemu_target("5.2.0", Ok(sev_params()));
        assert_eq!(objection(&f, R::SevKernelPolicy), None);
        assert_eq!(
            objection(&f, R::ConfidentialQemuVersion).as_deref(),
            Some("SEV-SNP guests (sev-snp-guest) need QEMU >= 9.1; this is qemu-5.2.0")
        );
        // A measured build's kernel cells in a confidential mode are not "without SEV".
        assert_eq!(objection(&f, R::MeasuredWithoutSev), None);
        let mut t = tdx().kernel_boot(Tweak::None);
        t.mode = Confidential::Tdx;
        let why = objection(&t, R::TdxKernelPolicy).expect("refused");
        assert!(
            why.starts_with("refused by policy: -kernel with TDX is never allowed"),
            "{why}"
        );
        assert_eq!(R::TdxKernelPolicy.kind(), DenialKind::Refused);
        t.mode = Confidential::Off;
        assert_eq!(objection(&t, R::TdxKernelPolicy), None);
    }

    #[test]
    fn no_option_rom_on_a_confidential_guest_after_sev() {
        let mut f = amdsev(Confidential::SevEs, "10.0.2");
        f.check = Check::OptionRom;
        let why = objection(&f, R::ConfidentialOptionRom).expect("refused");
        assert!(
            why.starts_with("refused by policy: no option ROM on a device of a SEV-ES guest"),
            "{why}"
        );
        assert_eq!(R::ConfidentialOptionRom.kind(), DenialKind::Refused);
        // Plain SEV keeps its option-rom cells.
        f.mode = Confidential::Sev;
        assert_eq!(objection(&f, R::ConfidentialOptionRom), None);
    }

    #[test]
    fn register_encrypting_modes_have_no_smm_and_snp_and_tdx_need_bios() {
        // The fixture's build is split flash and requires SMM.
        let mut f = Fixture::admitted();
        f.mode = Confidential::SevEs;
        assert_eq!(
            objection(&f, R::ConfidentialSmm).as_deref(),
            Some(
                "50-test.json requires SMM, and a SEV-ES guest has none (its register state is \
                 encrypted; QEMU's amd-memory-encryption.rst and tdx.rst)"
            )
        );
        assert_eq!(objection(&f, R::ConfidentialMapping), None);
        f.mode = Confidential::SevSnp;
        assert_eq!(
            objection(&f, R::ConfidentialMapping).as_deref(),
            Some(
                "a SEV-SNP guest loads its firmware with -bios only (a memory mapping); this \
                 descriptor maps it as flash (pflash)"
            )
        );
        f.mode = Confidential::Sev;
        assert_eq!(objection(&f, R::ConfidentialSmm), None);
        assert_eq!(objection(&f, R::ConfidentialMapping), None);
    }

    #[test]
    fn confidential_host_and_kvm_give_the_hosts_reason() {
        let mut f = amdsev(Confidential::SevSnp, "10.0.2");
        f.qemu.cc.sev_snp = Err(
            "kvm_amd is not loaded or predates SEV-SNP (no /sys/module/kvm_amd/parameters/sev_snp)"
                .into(),
        );
        assert_eq!(
            objection(&f, R::ConfidentialHost).as_deref(),
            Some(
                "host has no SEV-SNP: kvm_amd is not loaded or predates SEV-SNP (no \
                 /sys/module/kvm_amd/parameters/sev_snp)"
            )
        );
        // Under TCG the host's reason decides, as for SEV.
        f.accel = Accel::Tcg;
        f.accel_reason = "KVM unusable: no /dev/kvm".into();
        assert_eq!(objection(&f, R::ConfidentialKvm), None);
        assert_eq!(denied_by(&f), R::ConfidentialHost);
        f.qemu.cc.sev_snp = Ok(());
        assert_eq!(
            objection(&f, R::ConfidentialKvm).as_deref(),
            Some("SEV-SNP needs KVM; this cell runs on tcg (KVM unusable: no /dev/kvm)")
        );
        // SEV's own cells are sev-host's and sev-kvm's.
        f.mode = Confidential::Sev;
        assert_eq!(objection(&f, R::ConfidentialKvm), None);
        assert_eq!(objection(&f, R::ConfidentialHost), None);
    }

    #[test]
    fn confidential_qemu_versions_from_qemus_docs() {
        let gate =
            |mode, version: &str| objection(&amdsev(mode, version), R::ConfidentialQemuVersion);
        assert_eq!(
            gate(Confidential::SevEs, "5.2.0").as_deref(),
            Some("SEV-ES guests (sev-guest policy bit 2) need QEMU >= 6.0; this is qemu-5.2.0")
        );
        assert_eq!(gate(Confidential::SevEs, "6.0.0"), None);
        assert!(gate(Confidential::SevSnp, "9.0.0").is_some());
        assert_eq!(gate(Confidential::SevSnp, "9.1.0"), None);
        assert!(gate(Confidential::Tdx, "10.0.13").is_some());
        assert_eq!(gate(Confidential::Tdx, "10.1.0"), None);
        assert_eq!(gate(Confidential::Sev, "2.12.0"), None);
    }
}
