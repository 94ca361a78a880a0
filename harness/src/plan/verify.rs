//! What `plan --verify` checks: the argv of every cell, each to be started paused by the cell's
//! own QEMU (`boot::verify`). Pure.
//!
//! A cell that runs has its argv. A cell skipped only because this host lacks a capability
//! (the `sev-kvm` and `sev-host` rules) is planned again as on a host that has KVM and SEV:
//! its argv is what such a host would run, and its QEMU is expected to get as far as the
//! host-capability check and fail there. Any other denial (the planner's own policy, such as
//! `sev-kernel-policy`; a missing kernel or shim; a QEMU too old) leaves the cell without an
//! argv to verify, and says so.

use crate::discover::host::{CcHost, KvmProbe, SevParams};
use crate::discover::{Inventory, QemuTarget};

use super::admission::{AdmissionRule, Denial};
use super::{Action, Plan, RunSpec};

/// The SEV parameters a cell is planned with on a host without SEV: C-bit 51 and one reduced
/// physical address bit, as on AMD EPYC 7xx2/7xx3. QEMU parses them with the `sev-guest`
/// object and compares them with the host only when it initialises SEV, which fails on such a
/// host in any case (`cbitpos check failed, host '0' ...`).
pub const STAND_IN_SEV: SevParams = SevParams {
    cbitpos: 51,
    reduced_phys_bits: 1,
};

/// Whether a rule keeps cells out only for want of a host capability (KVM, SEV): such cells
/// still have an argv to verify.
pub fn host_capability(rule: AdmissionRule) -> bool {
    matches!(
        rule,
        AdmissionRule::SevKvm
            | AdmissionRule::SevHost
            | AdmissionRule::ConfidentialKvm
            | AdmissionRule::ConfidentialHost
    )
}

/// Every QEMU of `inventory` as on a host where KVM (with SMM) works and SEV guests can start:
/// the host's own SEV parameters where it has them, [`STAND_IN_SEV`] where not. Plan it with
/// no forced accelerator.
pub fn capable_qemus(qemus: &[QemuTarget]) -> Vec<QemuTarget> {
    qemus
        .iter()
        .map(|q| QemuTarget {
            binary: q.binary.clone(),
            kvm: KvmProbe {
                usable: Ok(()),
                smm: Ok(()),
            },
            sev: Ok(q.sev.clone().unwrap_or(STAND_IN_SEV)),
            cc: CcHost::capable(),
        })
        .collect()
}

/// `inventory`'s firmware with [`capable_qemus`].
pub fn capable_inventory(inventory: &Inventory) -> Inventory {
    Inventory {
        firmware: inventory.firmware.clone(),
        qemus: capable_qemus(&inventory.qemus),
        ..Inventory::default()
    }
}

/// What `plan --verify` does with one cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Start this argv. `host`: the host-capability denial the cell has here, when it is
    /// planned as on a capable host.
    Argv {
        spec: Box<RunSpec>,
        host: Option<Denial>,
    },
    /// No argv: the cell is denied by this rule (on a capable host too).
    NoArgv(Denial),
}

/// What `plan --verify` does with each cell of `plan`, in plan order. `capable` is the same
/// plan made from [`capable_inventory`] (same options, no forced accelerator), into the same
/// run folder.
pub fn targets<'p>(plan: &'p Plan, capable: &Plan) -> Vec<(&'p str, Target)> {
    plan.cells
        .iter()
        .map(|cell| {
            let target = match &cell.action {
                Action::Run(spec) => Target::Argv {
                    spec: spec.clone(),
                    host: None,
                },
                other => {
                    let denial = other.denial().expect("a cell that does not run is denied");
                    if host_capability(denial.rule) {
                        as_on_capable_host(&cell.id, denial, capable)
                    } else {
                        Target::NoArgv(denial.clone())
                    }
                }
            };
            (cell.id.as_str(), target)
        })
        .collect()
}

fn as_on_capable_host(id: &str, denial: &Denial, capable: &Plan) -> Target {
    match capable.cells.iter().find(|c| c.id == id).map(|c| &c.action) {
        Some(Action::Run(spec)) => Target::Argv {
            spec: spec.clone(),
            host: Some(denial.clone()),
        },
        Some(other) => Target::NoArgv(
            other
                .denial()
                .expect("a cell that does not run is denied")
                .clone(),
        ),
        None => Target::NoArgv(denial.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testkit::qemu_target;

    #[test]
    fn only_the_kvm_and_sev_host_rules_are_host_capabilities() {
        let host: Vec<&str> = AdmissionRule::in_order()
            .filter(|r| host_capability(*r))
            .map(AdmissionRule::as_str)
            .collect();
        assert_eq!(
            host,
            [
                "sev-kvm",
                "sev-host",
                "confidential-kvm",
                "confidential-host"
            ]
        );
    }

    #[test]
    fn a_capable_host_keeps_its_own_sev_parameters_and_gets_kvm() {
        let own = SevParams {
            cbitpos: 47,
            reduced_phys_bits: 5,
        };
        let mut without = qemu_target("7.2.0", Err("host has no AMD SEV".into()));
        without.kvm = KvmProbe::unavailable("no /dev/kvm");
        let with = qemu_target("10.0.2", Ok(own));
        let capable = capable_qemus(&[without.clone(), with.clone()]);
        assert_eq!(capable[0].sev, Ok(STAND_IN_SEV));
        assert_eq!(capable[0].kvm.usable, Ok(()));
        assert_eq!(capable[0].kvm.smm, Ok(()));
        assert_eq!(capable[0].binary, without.binary);
        assert_eq!(capable[1].sev, Ok(own));
    }
}
