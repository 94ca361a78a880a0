//! The run of an admitted cell: its argv, step by step, how long it may take, and what
//! `prepare` must make for it.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use crate::discover::descriptor::Feature;
use crate::discover::host::Accel;
use crate::matrix::{Check, Payload, Tweak, Variant};

use super::argv::console_args;
use super::argv::QemuArgs;
use super::firmware::FirmwareImage;
use super::firmware::{firmware_plan, FirmwarePlan};
use super::template::{ArgvTemplate, Fill};
use super::{
    variants, Action, Artifact, Candidate, Cell, RunSpec, Targets, ESP_PCI_SLOT, ROM_NIC_PCI_SLOT,
};

/// How long a refusal waits for the boot manager's end-of-attempts line before it counts
/// anyway (KVM; TCG gets [`TCG_FACTOR`]). OVMF prints that line 0.45-0.5 s after refusing the
/// probe under TCG (it tries the shell first); only shim's error box, which waits for a key,
/// needs the window.
const GRACE_KVM: Duration = Duration::from_secs(2);

/// How long a cell may take before it is an error. Measured under TCG on a 2-core machine:
/// the probe reports after 3.3-4.3 s; a kernel's `secureboot:` line comes after ~9 s. KVM is
/// several times faster; TCG gets a larger factor for loaded CI hosts.
const PROBE_DEADLINE_KVM: Duration = Duration::from_secs(20);
const KERNEL_DEADLINE_KVM: Duration = Duration::from_secs(30);
const TCG_FACTOR: u32 = 4;

/// How long an as-bios cell waits for its payload before the firmware counts as not booting
/// (`no-boot`, which its rules may expect): 40 s under TCG. Through pflash, the same builds on
/// the same QEMUs bring the probe up in at most 16.3 s and a kernel's `secureboot:` line in at
/// most 23.2 s under TCG on a loaded 2-core machine (the whole Debian matrix run, 452 decided
/// cells), so the bound is 2.5x and 1.7x the slowest of them.
pub const AS_BIOS_BOUND_KVM: Duration = Duration::from_secs(10);

/// The run of an admitted cell on `machine`: its argv, step by step, and what it needs.
pub(super) fn run_spec(c: &Candidate, machine: &str, id: &str) -> RunSpec {
    let (d, options) = (&c.firmware.descriptor, c.options);
    let layout = &options.layout;
    let Variant { payload, tweak, .. } = c.variant;
    let dir = layout.cell_dir(id);
    let debug_log = d
        .has(&Feature::VerboseDynamic)
        .then(|| dir.join("debug.log"));
    let FirmwarePlan {
        image,
        copies,
        mut needs,
    } = match c.check {
        // `-bios` with the executable itself: QEMU maps it read-only as a ROM, and there is no
        // varstore to copy.
        Check::AsBios => FirmwarePlan {
            image: FirmwareImage::Memory(crate::discover::executable_of(d).to_path_buf()),
            copies: Vec::new(),
            needs: Vec::new(),
        },
        _ => firmware_plan(d, &c.firmware.label(), c.variant.vars, &dir, layout),
    };
    if let Some(t) = c.template {
        let firmware = FirmwarePlan {
            image,
            copies,
            needs,
        };
        return template_spec(c, t, dir, debug_log, firmware);
    }
    // Guest memory is encrypted: virtio goes through the IOMMU (see `QemuArgs::esp`).
    let encrypted = c.mode.is_on();
    // as-bios: no `smm=on`, no secure flash: what a runtime that ignores the descriptor gives.
    let smm = d.has(&Feature::RequiresSmm) && c.check != Check::AsBios;

    let mut cmd = QemuArgs::new(&c.qemu.binary, options.memory_mib);
    cmd.machine(machine, c.accel, &image, smm);
    if c.mode.is_snp() {
        cmd.cpu_model(super::confidential::SNP_CPU_MODEL);
    } else {
        cmd.cpu(c.accel);
    }
    cmd.firmware(&image, smm && d.has(&Feature::SecureBoot));
    // Only a measured kernel-boot cell gets this far in the SEV family (sev-kernel-policy),
    // none under TDX (tdx-kernel-policy).
    cmd.confidential(
        c.mode,
        c.qemu.sev.as_ref().ok(),
        c.check == Check::KernelBoot,
    );
    cmd.console(debug_log.as_deref());
    match c.check {
        Check::SecureBoot => {
            needs.push(Artifact::Probe(payload));
            cmd.esp(&layout.esp(payload), encrypted);
        }
        Check::OptionRom => {
            // The probe, signed with the test db key, decides the cell when it reports; the
            // ROM under test sits on a NIC that OVMF has no driver of its own for.
            needs.extend([
                Artifact::Probe(Payload::Signed),
                Artifact::OptionRom(payload),
            ]);
            cmd.esp(&layout.esp(Payload::Signed), encrypted);
            cmd.nic(&layout.option_rom(payload));
        }
        Check::AsBios if tweak == Tweak::None => {
            needs.push(Artifact::Probe(payload));
            cmd.esp(&layout.esp(payload), false);
        }
        Check::KernelBoot | Check::AsBios => {
            // Admitted: the kernel and shim rules keep out cells without them.
            if let Ok(source) = &options.kernel {
                needs.push(Artifact::Kernel {
                    source: source.clone(),
                    payload,
                });
            }
            needs.push(Artifact::Initrd);
            cmd.kernel(
                &layout.kernel(payload),
                &layout.initrd(),
                &options.kernel_append,
                tweak == Tweak::NoLegacyLoader,
            );
            if let (Tweak::Shim, Some(shim)) = (tweak, &options.shim) {
                cmd.shim(shim);
            }
        }
        // No bootable media: the boot manager is left with its own options (the shell).
        // key-health boots nothing: run reads the cell's varstore copy.
        Check::NoShell | Check::KeyHealth => {}
        Check::DistroChain => {
            // Admitted: the chain rule keeps out cells whose suites were not provisioned.
            if let Some(esp) = variants::chain_esp(c.variant, &options.chains, layout) {
                cmd.esp(&layout.chain_esp(&esp), encrypted);
                needs.push(esp);
            }
        }
    }
    let targets = match c.check {
        Check::SecureBoot | Check::DistroChain => Targets::esp(),
        Check::OptionRom => Targets {
            rom_device: Some(format!("0000:00:{ROM_NIC_PCI_SLOT:02x}.0")),
            ..Targets::esp()
        },
        Check::AsBios if tweak == Tweak::None => Targets::esp(),
        Check::KernelBoot | Check::NoShell | Check::KeyHealth | Check::AsBios => Targets::default(),
    };
    let base = match c.check {
        Check::SecureBoot | Check::OptionRom | Check::NoShell | Check::KeyHealth => {
            PROBE_DEADLINE_KVM
        }
        Check::KernelBoot | Check::DistroChain => KERNEL_DEADLINE_KVM,
        Check::AsBios => AS_BIOS_BOUND_KVM,
    };
    let factor = if c.accel == Accel::Tcg { TCG_FACTOR } else { 1 };
    let deadline = (base * factor).mul_f64(options.timeout_scale.max(0.01));
    let grace = (GRACE_KVM * factor).mul_f64(options.timeout_scale.max(0.01));
    if needs.iter().any(Artifact::needs_test_keys) {
        needs.insert(0, Artifact::TestKeys);
    }
    RunSpec {
        check: c.check,
        targets,
        grace,
        argv: cmd.into_argv(),
        dir,
        copies,
        debug_log,
        deadline,
        needs,
    }
}

/// Everything the runnable cells need prepared, each once, in dependency order.
pub(super) fn artifacts_for(cells: &[Cell]) -> Vec<Artifact> {
    let set: BTreeSet<Artifact> = cells
        .iter()
        .filter_map(|c| match &c.action {
            Action::Run(spec) => Some(spec.needs.iter().cloned()),
            _ => None,
        })
        .flatten()
        .collect();
    set.into_iter().collect()
}

/// The run of a cell in a runtime's argv template: the template filled in with the cell's
/// firmware, varstore copy and payloads, then what bootmatrix reads the guest by.
fn template_spec(
    c: &Candidate,
    t: &ArgvTemplate,
    dir: PathBuf,
    debug_log: Option<PathBuf>,
    firmware: FirmwarePlan,
) -> RunSpec {
    let (d, options) = (&c.firmware.descriptor, c.options);
    let layout = &options.layout;
    let Variant { payload, tweak, .. } = c.variant;
    let FirmwarePlan {
        image,
        copies,
        mut needs,
    } = firmware;
    let vars = match &image {
        FirmwareImage::Flash(units) => units.get(1).map(|u| u.file.clone()),
        _ => None,
    };
    let mut fill = Fill {
        firmware: crate::discover::executable_of(d).to_path_buf(),
        vars,
        accel: c.accel.to_string(),
        ..Fill::default()
    };
    let slot = |s: Option<u8>| s.unwrap_or(ESP_PCI_SLOT);
    let mut targets = Targets::default();
    match c.check {
        Check::SecureBoot | Check::OptionRom => {
            let probe = if c.check == Check::SecureBoot {
                payload
            } else {
                Payload::Signed
            };
            needs.push(Artifact::Probe(probe));
            fill.esp = Some(layout.esp(probe));
            targets.boot_device = Some(format!("PciRoot(0x0)/Pci({:#x},0x0)", slot(t.esp_slot)));
            if c.check == Check::OptionRom {
                needs.push(Artifact::OptionRom(payload));
                fill.romfile = Some(layout.option_rom(payload));
                targets.rom_device = Some(format!("0000:00:{:02x}.0", slot(t.rom_slot)));
            }
        }
        _ => {
            if let Ok(source) = &options.kernel {
                needs.push(Artifact::Kernel {
                    source: source.clone(),
                    payload,
                });
            }
            needs.push(Artifact::Initrd);
            fill.kernel = Some(layout.kernel(payload));
            fill.initrd = Some(layout.initrd());
            fill.append = Some(options.kernel_append.clone());
        }
    }
    let mut argv = c.qemu.binary.program();
    argv.extend(c.qemu.binary.data_dir_args());
    argv.extend(["-d".into(), "guest_errors".into()]);
    if !t.has_option("-display") {
        argv.extend(["-display".into(), "none".into()]);
    }
    argv.extend(t.fill(&fill));
    argv.extend(console_args(debug_log.as_deref()));
    if c.check == Check::KernelBoot {
        if !t.has_option("-no-reboot") {
            argv.push("-no-reboot".into());
        }
        if tweak == Tweak::NoLegacyLoader {
            argv.extend([
                "-fw_cfg".into(),
                "name=opt/org.tianocore/EnableLegacyLoader,string=no".into(),
            ]);
        }
    }
    let base = match c.check {
        Check::KernelBoot => KERNEL_DEADLINE_KVM,
        _ => PROBE_DEADLINE_KVM,
    };
    let factor = if c.accel == Accel::Tcg { TCG_FACTOR } else { 1 };
    let scale = options.timeout_scale.max(0.01);
    if needs.iter().any(Artifact::needs_test_keys) {
        needs.insert(0, Artifact::TestKeys);
    }
    RunSpec {
        check: c.check,
        targets,
        grace: (GRACE_KVM * factor).mul_f64(scale),
        argv,
        dir,
        copies,
        debug_log,
        deadline: (base * factor).mul_f64(scale),
        needs,
    }
}
