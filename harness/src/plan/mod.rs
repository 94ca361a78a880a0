//! The matrix: descriptor x QEMU x SEV x check x variant. Pure: every cell says what it will
//! run (the exact argv) or why it will not.

pub mod admission;
pub mod argv;
pub mod confidential;
pub mod firmware;
pub mod layout;
pub mod shard;
mod spec;
pub mod template;
pub mod variants;
pub mod verify;

pub use variants::{enforcing_vars, variants, vars_variants};

#[cfg(test)]
mod testkit;

use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;

use crate::discover::descriptor::{Architecture, Descriptor, Feature, Interface};
use crate::discover::host::{choose_accel, Accel};
use crate::discover::qemu::QemuBinary;
use crate::discover::release::Edk2Release;
use crate::discover::{Firmware, Inventory, QemuTarget};
use crate::matrix::{Check, Confidential, Payload, Profile, Tweak, Variant, Vars};
use crate::scenario::{Rule, Scenarios, Subject};

use admission::{Denial, DenialKind};
use layout::Layout;

/// Something `prepare` must make before cells can run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Artifact {
    /// PK, KEK and db key pairs for this run.
    TestKeys,
    /// The probe, signed or not, on its ESP folder.
    Probe(Payload),
    /// The option-ROM driver in a PCI expansion ROM, signed (before wrapping) or not.
    OptionRom(Payload),
    /// `source` without its signatures (unsigned), or that signed with the test db key.
    Kernel { source: PathBuf, payload: Payload },
    /// An empty initramfs (see [`Layout::initrd`]).
    Initrd,
    /// A distro chain's ESP folder: the suite's shim as `EFI/BOOT/BOOTX64.EFI`, grub beside it,
    /// `grub.cfg` with a serial terminal, the kernel (as shipped, unsigned or test-signed) and
    /// an empty initramfs.
    ChainEsp {
        chain: crate::matrix::Chain,
        shim: PathBuf,
        grub: PathBuf,
        kernel: PathBuf,
    },
    /// A copy of `template` with keys enrolled (`OwnKeys`), our db cert added (`DbAdded`) or
    /// shim's verbose variable set (`ShimVerbose`).
    Varstore {
        template: PathBuf,
        vars: Vars,
        out: PathBuf,
    },
}

impl Artifact {
    /// Whether making it takes the run's test keys (signing, enrolling).
    pub fn needs_test_keys(&self) -> bool {
        match self {
            Artifact::TestKeys | Artifact::Initrd => false,
            Artifact::Probe(payload)
            | Artifact::OptionRom(payload)
            | Artifact::Kernel { payload, .. } => *payload == Payload::Signed,
            Artifact::ChainEsp { chain, .. } => {
                chain.kernel == crate::matrix::ChainKernel::TestSigned
            }
            Artifact::Varstore { vars, .. } => *vars != Vars::ShimVerbose,
        }
    }
}

/// PCI slot of the ESP's virtio-blk device: the probe's boot option is `PciRoot(0x0)/Pci(0x5,0x0)`.
pub const ESP_PCI_SLOT: u8 = 0x5;
/// PCI slot of the NIC that carries the option ROM under test.
pub const ROM_NIC_PCI_SLOT: u8 = 0x6;

/// What the observer must recognise as this cell's own, fixed by the planner: a console line
/// about any other boot option or device cannot decide the cell.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Targets {
    /// Device path of the boot option that holds the probe (`PciRoot(0x0)/Pci(0x5,0x0)`);
    /// the boot manager names it when it refuses the probe.
    pub boot_device: Option<String>,
    /// PCI location (`0000:00:06.0`) of the device whose option ROM is under test, as the
    /// probe reports it.
    pub rom_device: Option<String>,
}

impl Targets {
    fn esp() -> Targets {
        Targets {
            boot_device: Some(format!("PciRoot(0x0)/Pci({ESP_PCI_SLOT:#x},0x0)")),
            rom_device: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    /// What the console watcher looks for.
    pub check: Check,
    /// The boot option and device that are this cell's own.
    pub targets: Targets,
    /// How long a refusal stands without the boot manager's end-of-attempts line before it
    /// counts (shim's error box waits for a key and prints nothing more).
    pub grace: Duration,
    pub argv: Vec<String>,
    pub dir: PathBuf,
    /// Files copied into the cell folder before boot: (source, private copy).
    pub copies: Vec<(PathBuf, PathBuf)>,
    /// Where the firmware debug console is written, when the descriptor has one.
    pub debug_log: Option<PathBuf>,
    pub deadline: Duration,
    /// What `prepare` must have made for this cell.
    pub needs: Vec<Artifact>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Run(Box<RunSpec>),
    /// The machine cannot run this cell; the denial names the admission rule and says why.
    Skip(Denial),
    /// The planner will not run this cell because the configuration itself breaks policy
    /// (`-kernel` under SEV without measured boot); reported as a skip with this reason.
    Refused(Denial),
    /// The harness cannot run this cell (e.g. no expectation for it): reported as error.
    Error(Denial),
}

impl Action {
    /// The denial of a cell that does not run (which admission rule kept it out, and why).
    pub fn denial(&self) -> Option<&Denial> {
        match self {
            Action::Run(_) => None,
            Action::Skip(denial) | Action::Refused(denial) | Action::Error(denial) => Some(denial),
        }
    }
}

/// The action of a denied cell, as its rule's kind says.
impl From<Denial> for Action {
    fn from(denial: Denial) -> Action {
        match denial.rule.kind() {
            DenialKind::Skip => Action::Skip(denial),
            DenialKind::Refused => Action::Refused(denial),
            DenialKind::Error => Action::Error(denial),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub id: String,
    pub descriptor: String,
    pub executable: PathBuf,
    pub executable_sha256: Option<String>,
    pub package: Option<String>,
    pub qemu_version: crate::discover::qemu::Version,
    pub machine: String,
    /// The descriptor's x86_64 machine globs: where it promises to boot.
    pub machine_globs: Vec<String>,
    pub accel: Accel,
    pub accel_reason: String,
    /// A confidential guest (any mode: SEV, SEV-ES, SEV-SNP, TDX, IGVM); `confidential` says
    /// which.
    pub sev: bool,
    /// The confidential-guest mode (`sev-off`, `sev-on`, ...: the id's third part).
    pub confidential: Confidential,
    pub check: Check,
    pub variant: Variant,
    /// The profile the expectation was chosen under.
    pub profile: Profile,
    /// The firmware's edk2 release, from its package version, when known.
    pub edk2: Option<Edk2Release>,
    /// The scenario rule that gives this cell's expectation.
    pub rule: Option<Rule>,
    /// distro-chain: the shim, grub and kernel it boots.
    pub payload: Vec<variants::PayloadPart>,
    /// Whether the descriptor declares Secure Boot support (`secure-boot` or `enrolled-keys`);
    /// only without it does UEFI read a missing SecureBoot variable as 0.
    pub secure_boot_support: bool,
    pub action: Action,
}

/// Something that found no place in the matrix, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    pub what: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub cells: Vec<Cell>,
    pub left_out: Vec<LeftOut>,
    pub artifacts: Vec<Artifact>,
}

#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub layout: Layout,
    pub forced_accel: Option<Accel>,
    pub filter: Option<Regex>,
    /// Multiplies every deadline (slow CI machines).
    pub timeout_scale: f64,
    pub memory_mib: u32,
    pub profile: Profile,
    /// The Linux kernel for kernel-boot cells, or why there is none (the cells' skip reason).
    pub kernel: Result<PathBuf, String>,
    /// The distro chains for distro-chain cells, or why there are none (their skip reason).
    pub chains: Result<Vec<crate::discover::chain::DistroChain>, String>,
    /// The machine's own Debian suite: its chain is the one tried with altered kernels.
    pub host_suite: crate::matrix::Suite,
    /// shim for `-shim` kernel-boot cells (QEMU >= 10.0).
    pub shim: Option<PathBuf>,
    /// The kernel command line (`-append`) of kernel-boot cells.
    pub kernel_append: String,
    /// Runtimes' own command lines: each also runs the secure-boot, option-rom and kernel-boot
    /// cells in its shape (`-via-NAME`), SEV off.
    pub templates: Vec<template::ArgvTemplate>,
}

impl PlanOptions {
    pub fn new(layout: Layout) -> PlanOptions {
        PlanOptions {
            layout,
            forced_accel: None,
            filter: None,
            timeout_scale: 1.0,
            memory_mib: 512,
            profile: Profile::Strict,
            kernel: Err("no kernel given (--kernel PATH)".into()),
            chains: Err("no distro chain given (--chain DIR)".into()),
            host_suite: crate::matrix::Suite::Bookworm,
            shim: None,
            kernel_append: DEFAULT_KERNEL_APPEND.into(),
            templates: Vec::new(),
        }
    }
}

/// The initrd is empty: the kernel stops at mounting root, long after its decisive lines.
pub const DEFAULT_KERNEL_APPEND: &str = "console=ttyS0 panic=-1";

/// Why a descriptor is not a candidate for cells at all, or None when it is.
pub fn ineligible(descriptor: &Descriptor) -> Option<String> {
    if !descriptor.interface_types.contains(&Interface::Uefi) {
        let kinds: Vec<String> = descriptor
            .interface_types
            .iter()
            .map(|i| i.to_string())
            .collect();
        return Some(format!(
            "not UEFI firmware (interface-types: {})",
            kinds.join(", ")
        ));
    }
    if !descriptor
        .targets
        .iter()
        .any(|t| t.architecture == Architecture::X86_64)
    {
        let archs: Vec<String> = descriptor
            .targets
            .iter()
            .map(|t| t.architecture.to_string())
            .collect();
        return Some(format!(
            "no x86_64 target (targets: {}); only x86_64 is tested",
            archs.join(", ")
        ));
    }
    None
}

/// The descriptor's machine globs for x86_64, in file order.
fn x86_64_machines(descriptor: &Descriptor) -> Vec<String> {
    descriptor
        .targets
        .iter()
        .filter(|t| t.architecture == Architecture::X86_64)
        .flat_map(|t| t.machines.iter().cloned())
        .collect()
}

/// The concrete machine type to run `descriptor` on: q35 first, then pc.
pub fn pick_machine(qemu: &QemuBinary, descriptor: &Descriptor) -> Result<String, String> {
    let mut tried = Vec::new();
    for alias in ["q35", "pc"] {
        if let Some(concrete) = qemu.machines.resolve(alias) {
            if descriptor.supports(Architecture::X86_64, concrete) {
                return Ok(concrete.to_string());
            }
            tried.push(format!("{alias} ({concrete})"));
        }
    }
    let globs = x86_64_machines(descriptor);
    Err(format!(
        "machines [{}] match none of {} on {}",
        globs.join(", "),
        tried.join(", "),
        qemu.label()
    ))
}

pub fn plan(inventory: &Inventory, scenarios: &Scenarios, options: &PlanOptions) -> Plan {
    let mut cells = Vec::new();
    let mut left_out = Vec::new();
    for firmware in &inventory.firmware {
        let d = &firmware.descriptor;
        if let Some(reason) = ineligible(d) {
            left_out.push(LeftOut {
                what: firmware.shown_name(),
                reason,
            });
            continue;
        }
        for (nth, qemu) in inventory.qemus.iter().enumerate() {
            for mode in confidential::modes(d) {
                for &check in Check::ALL {
                    // Static: once per build, on the first QEMU, without SEV.
                    if check == Check::KeyHealth && (nth > 0 || mode.is_on()) {
                        continue;
                    }
                    // A runtime that ignores the descriptor: no SEV of its own either.
                    if check == Check::AsBios && mode.is_on() {
                        continue;
                    }
                    for variant in variants(check, d, &options.chains, options.host_suite) {
                        let shapes = std::iter::once(None).chain(
                            options
                                .templates
                                .iter()
                                .filter(|_| {
                                    !mode.is_on()
                                        && TEMPLATE_CHECKS.contains(&check)
                                        && variant.tweak != Tweak::Shim
                                })
                                .map(Some),
                        );
                        for template in shapes {
                            let what = What {
                                mode,
                                check,
                                variant,
                                template,
                            };
                            let cell = plan_cell(firmware, qemu, what, scenarios, options);
                            if options.filter.as_ref().is_none_or(|f| f.is_match(&cell.id)) {
                                cells.push(cell);
                            }
                        }
                    }
                }
            }
        }
    }
    if inventory.qemus.is_empty() {
        left_out.push(LeftOut {
            what: "all descriptors".into(),
            reason: "no usable QEMU binary (install qemu-system-x86, or pass --qemu PATH)".into(),
        });
    }
    let artifacts = spec::artifacts_for(&cells);
    Plan {
        cells,
        left_out,
        artifacts,
    }
}

/// The checks a runtime's argv template runs (`-shim` is bootmatrix's own, so no shim
/// variant).
pub const TEMPLATE_CHECKS: &[Check] = &[Check::SecureBoot, Check::OptionRom, Check::KernelBoot];

/// A cell on its way through the planner: what admission looks at, and what its argv is
/// built from once admitted.
struct Candidate<'a> {
    firmware: &'a Firmware,
    qemu: &'a QemuTarget,
    /// Which confidential guest, if any (`sev-on` is plain SEV: [`Candidate::sev`]).
    mode: Confidential,
    check: Check,
    variant: Variant,
    accel: Accel,
    accel_reason: &'a str,
    /// The concrete machine type, or why the descriptor has none on this QEMU.
    machine: &'a Result<String, String>,
    /// The scenario rule for the cell, when one matches.
    expectation: Option<&'a Rule>,
    /// The runtime's argv template the cell runs in, instead of bootmatrix's own argv.
    template: Option<&'a template::ArgvTemplate>,
    edk2: Option<Edk2Release>,
    scenarios: &'a Scenarios,
    options: &'a PlanOptions,
}

impl Candidate<'_> {
    /// A plain SEV cell (the `sev-on` cells; the other confidential modes have rules of their
    /// own).
    fn sev(&self) -> bool {
        self.mode == Confidential::Sev
    }
}

/// What a cell tries on a firmware and QEMU.
#[derive(Clone, Copy)]
struct What<'a> {
    mode: Confidential,
    check: Check,
    variant: Variant,
    /// The runtime's argv template it runs in, or bootmatrix's own argv.
    template: Option<&'a template::ArgvTemplate>,
}

fn plan_cell(
    firmware: &Firmware,
    qemu: &QemuTarget,
    what: What,
    scenarios: &Scenarios,
    options: &PlanOptions,
) -> Cell {
    let What {
        mode,
        check,
        variant,
        template,
    } = what;
    let d = &firmware.descriptor;
    let via = template.map_or(String::new(), |t| format!("-via-{}", t.name));
    let id = format!(
        "{}/{}/{}/{}/{}{via}",
        firmware.label(),
        qemu.binary.label(),
        mode,
        check,
        variant.id_part()
    );
    // as-bios starts the build without SMM, as a runtime that ignores the descriptor does.
    let needs_smm = d.has(&Feature::RequiresSmm) && check != Check::AsBios;
    let (accel, accel_reason) = choose_accel(options.forced_accel, &qemu.kvm, needs_smm);
    let machine = pick_machine(&qemu.binary, d);
    let edk2 = firmware
        .package
        .as_deref()
        .and_then(Edk2Release::from_package_version);
    let subject = Subject {
        descriptor: d,
        edk2,
        qemu: qemu.binary.version,
        variant,
        // Every confidential mode is "SEV on" to the scenarios: the host is not trusted.
        sev: mode.is_on(),
        profile: options.profile,
        sbat_revoked: !variants::sbat_revocations(variant, &options.chains).is_empty(),
    };
    let expectation = scenarios.rule_for(check, &subject).cloned();
    let candidate = Candidate {
        firmware,
        qemu,
        mode,
        check,
        variant,
        accel,
        accel_reason: &accel_reason,
        machine: &machine,
        expectation: expectation.as_ref(),
        template,
        edk2,
        scenarios,
        options,
    };
    let action = match (admission::admit(&candidate), &machine) {
        (Err(denial), _) => Action::from(denial),
        (Ok(()), Ok(machine)) => Action::Run(Box::new(spec::run_spec(&candidate, machine, &id))),
        (Ok(()), Err(_)) => unreachable!("the machine rule admits no cell without a machine"),
    };
    // A cell the planner refuses has no expectation: nothing of the firmware is at stake.
    let rule = match action {
        Action::Refused(_) => None,
        _ => expectation,
    };
    Cell {
        id,
        descriptor: d.name.clone(),
        executable: crate::discover::executable_of(d).to_path_buf(),
        executable_sha256: firmware.executable_sha256.clone().ok(),
        package: firmware.package.clone(),
        qemu_version: qemu.binary.version,
        machine: machine.unwrap_or_default(),
        machine_globs: x86_64_machines(d),
        accel,
        accel_reason,
        sev: mode.is_on(),
        confidential: mode,
        check,
        variant,
        profile: options.profile,
        edk2,
        rule,
        payload: variants::chain_parts(variant, &options.chains),
        secure_boot_support: d.has(&Feature::SecureBoot) || d.has(&Feature::EnrolledKeys),
        action,
    }
}
