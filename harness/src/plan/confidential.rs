//! The confidential-guest modes a descriptor is planned in, and the QEMU release each first
//! appears in. Which checks run in which mode, and why, is the admission rules' to say
//! (`confidential-*`, `sev-kernel-policy`, `tdx-kernel-policy`).

use std::path::PathBuf;

use serde::Serialize;

use crate::discover::descriptor::{Descriptor, Feature, Mapping};
use crate::discover::qemu::Version;
use crate::matrix::{Check, Confidential};

use super::{Action, Cell, PlanOptions};

/// The CPU model of SEV-SNP cells: the predicted launch measurement covers the vCPUs' VMSAs,
/// which carry the model's signature (`sev-snp-measure --vcpu-type`).
pub const SNP_CPU_MODEL: &str = "EPYC-v4";

/// The vCPUs of every cell (`-smp 1`, [`super::argv::QemuArgs::new`]).
pub const VCPUS: u32 = 1;

/// The modes `d` is planned in: always without a confidential guest; SEV (`amd-sev`), SEV-ES
/// (`amd-sev-es`), SEV-SNP (`amd-sev-snp`: from `-bios`, or, for an `igvm` mapping, from the
/// IGVM file as mode `igvm`) and TDX (`intel-tdx`) as its features claim.
pub fn modes(d: &Descriptor) -> Vec<Confidential> {
    let igvm = matches!(d.mapping, Mapping::Igvm { .. });
    let mut modes = vec![Confidential::Off];
    if d.has(&Feature::AmdSev) {
        modes.push(Confidential::Sev);
    }
    if d.has(&Feature::AmdSevEs) {
        modes.push(Confidential::SevEs);
    }
    if d.has(&Feature::AmdSevSnp) {
        modes.push(if igvm {
            Confidential::Igvm
        } else {
            Confidential::SevSnp
        });
    }
    if d.has(&Feature::IntelTdx) {
        modes.push(Confidential::Tdx);
    }
    modes
}

/// The first QEMU release that starts a guest of `mode`, and where that is written. SEV's
/// (2.12) is the `sev-qemu-version` rule's, as it always was.
pub fn qemu_gate(mode: Confidential) -> Option<(Version, &'static str)> {
    match mode {
        Confidential::Off | Confidential::Sev => None,
        // QEMU 6.0 added SEV-ES guests (encrypted VMSAs, LAUNCH_UPDATE_VMSA; ChangeLog/6.0);
        // docs/system/i386/amd-memory-encryption.rst: "Setting the SEV-ES required policy bit
        // (bit 2) will launch the guest as a SEV-ES guest", with confidential-guest-support
        // (6.0).
        Confidential::SevEs => Some((
            Version::new(6, 0, 0),
            "SEV-ES guests (sev-guest policy bit 2) need QEMU >= 6.0",
        )),
        // qapi/qom.json SevSnpGuestProperties: "Since: 9.1"; amd-memory-encryption.rst,
        // "Launching (SEV-SNP)": the firmware through -bios.
        Confidential::SevSnp => Some((
            Version::new(9, 1, 0),
            "SEV-SNP guests (sev-snp-guest) need QEMU >= 9.1",
        )),
        // qapi/qom.json TdxGuestProperties: "Since: 10.1"; docs/system/i386/tdx.rst.
        Confidential::Tdx => Some((
            Version::new(10, 1, 0),
            "TDX guests (tdx-guest) need QEMU >= 10.1",
        )),
        // qapi/qom.json IgvmCfgProperties: "Since: 10.1" (docs/system/igvm.rst); SEV-SNP
        // (9.1) is older.
        Confidential::Igvm => Some((
            Version::new(10, 1, 0),
            "IGVM files (igvm-cfg) need QEMU >= 10.1",
        )),
    }
}

/// What a SEV-SNP launch is measured from: the inputs of `sev-snp-measure --mode snp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnpLaunch {
    pub vcpus: u32,
    /// The QEMU CPU model the cell runs (`-cpu`), whose signature the VMSAs carry.
    pub vcpu_type: String,
    /// The firmware, as `-bios` loads it.
    pub ovmf: PathBuf,
    /// `-kernel`, `-initrd`, `-append` of a kernel-boot cell (`kernel-hashes=on`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initrd: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub append: Option<String>,
    /// The guest policy on the command line (`sev-snp-guest,policy=`): not part of the
    /// measurement, but of the report an attestation policy checks.
    pub policy: &'static str,
}

/// The launch of a SEV-SNP cell (`sev-snp` from `-bios`) that the planner did not refuse;
/// None for any other cell. An IGVM cell's measurement depends on the SVSM inside the IGVM
/// file (`--mode snp:svsm`), which bootmatrix does not take apart: not predicted.
pub fn snp_launch(cell: &Cell, options: &PlanOptions) -> Option<SnpLaunch> {
    if cell.confidential != Confidential::SevSnp || matches!(cell.action, Action::Refused(_)) {
        return None;
    }
    // A QEMU without sev-snp-guest launches nothing to predict.
    if qemu_gate(cell.confidential).is_some_and(|(first, _)| cell.qemu_version < first) {
        return None;
    }
    let kernel_boot = cell.check == Check::KernelBoot;
    let layout = &options.layout;
    Some(SnpLaunch {
        vcpus: VCPUS,
        vcpu_type: SNP_CPU_MODEL.into(),
        ovmf: cell.executable.clone(),
        kernel: kernel_boot.then(|| layout.kernel(cell.variant.payload)),
        initrd: kernel_boot.then(|| layout.initrd()),
        append: kernel_boot.then(|| options.kernel_append.clone()),
        policy: "0x30000",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::layout::Layout;
    use crate::plan::testkit::{descriptor_text, firmware, SPLIT};

    fn modes_of(mapping: &str, features: &[&str]) -> Vec<Confidential> {
        modes(&firmware("t.json", &descriptor_text(mapping, features)).descriptor)
    }

    #[test]
    fn modes_follow_features_and_the_igvm_mapping() {
        let bios = r#"{"device": "memory", "filename": "/fw/OVMF.amdsev.fd"}"#;
        assert_eq!(modes_of(SPLIT, &["secure-boot"]), [Confidential::Off]);
        assert_eq!(
            modes_of(bios, &["amd-sev", "amd-sev-es", "amd-sev-snp"]),
            [
                Confidential::Off,
                Confidential::Sev,
                Confidential::SevEs,
                Confidential::SevSnp
            ]
        );
        assert_eq!(
            modes_of(bios, &["intel-tdx", "enrolled-keys"]),
            [Confidential::Off, Confidential::Tdx]
        );
        let igvm = r#"{"device": "igvm", "filename": "/fw/svsm.igvm"}"#;
        assert_eq!(
            modes_of(igvm, &["amd-sev-snp"]),
            [Confidential::Off, Confidential::Igvm]
        );
    }

    #[test]
    fn gates_by_mode() {
        let gate = |m| qemu_gate(m).map(|(v, _)| v.to_string());
        assert_eq!(gate(Confidential::Sev), None);
        assert_eq!(gate(Confidential::SevEs).as_deref(), Some("6.0.0"));
        assert_eq!(gate(Confidential::SevSnp).as_deref(), Some("9.1.0"));
        assert_eq!(gate(Confidential::Tdx).as_deref(), Some("10.1.0"));
        assert_eq!(gate(Confidential::Igvm).as_deref(), Some("10.1.0"));
    }
    #[test]
    fn only_sev_snp_cells_that_are_not_refused_have_a_launch() {
        let mut options = PlanOptions::new(Layout::new("/run"));
        options.kernel_append = "console=ttyS0".into();
        let inv = crate::discover::Inventory {
            firmware: vec![firmware(
                "60-amdsev.json",
                &descriptor_text(
                    r#"{"device": "memory", "filename": "/fw/OVMF.amdsev.fd"}"#,
                    &["amd-sev", "amd-sev-snp"],
                ),
            )],
            qemus: vec![crate::plan::testkit::qemu_target(
                "10.0.2",
                Err("host has no AMD SEV".into()),
            )],
            ..Default::default()
        };
        let plan = crate::plan::plan(&inv, &crate::scenario::Scenarios::builtin(), &options);
        let mut cell = plan
            .cells
            .iter()
            .find(|c| c.check == Check::KernelBoot && c.confidential == Confidential::Sev)
            .expect("a SEV kernel-boot cell")
            .clone();
        assert_eq!(snp_launch(&cell, &options), None);
        // The planner's own SEV-SNP cells: skipped here (no SEV-SNP), but predicted.
        let snp: Vec<_> = plan
            .cells
            .iter()
            .filter(|c| c.confidential == Confidential::SevSnp && c.check == Check::SecureBoot)
            .collect();
        assert_eq!(snp.len(), 2);
        for c in snp {
            let l = snp_launch(c, &options).expect("a launch");
            assert_eq!(l.ovmf, PathBuf::from("/fw/OVMF.amdsev.fd"));
            assert!(c.id.contains("/sev-snp/"), "{}", c.id);
            // Not on a QEMU without sev-snp-guest.
            let mut old = (*c).clone();
            old.qemu_version = Version::new(9, 0, 0);
            assert_eq!(snp_launch(&old, &options), None);
        }
        cell.confidential = Confidential::SevSnp;
        cell.action = Action::Skip(crate::plan::admission::Denial::new(
            crate::plan::admission::AdmissionRule::ConfidentialHost,
            "host has no SEV-SNP",
        ));
        let l = snp_launch(&cell, &options).expect("a launch");
        assert_eq!(l.ovmf, cell.executable);
        assert_eq!(l.kernel, Some(options.layout.kernel(cell.variant.payload)));
        assert_eq!(l.append.as_deref(), Some("console=ttyS0"));
        assert_eq!((l.vcpus, l.vcpu_type.as_str()), (1, "EPYC-v4"));
        cell.check = Check::SecureBoot;
        assert_eq!(snp_launch(&cell, &options).unwrap().kernel, None);
        cell.action = Action::Refused(crate::plan::admission::Denial::new(
            crate::plan::admission::AdmissionRule::SevKernelPolicy,
            "refused",
        ));
        assert_eq!(snp_launch(&cell, &options), None);
    }
}
