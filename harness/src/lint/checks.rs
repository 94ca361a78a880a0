//! The detection logic of `bootmatrix lint`: which findings a parsed command line has, given
//! the firmware it was identified as. The words said about each finding are data
//! (`scenarios/lint.json`); here only its id, the argv words it is about and the details of
//! this line.

use std::path::Path;

use crate::discover::descriptor::{Architecture, Descriptor, Feature, FlashMode, Mapping};
use crate::discover::release::Edk2Release;
use crate::discover::Firmware;
use crate::scenario::lint::FindingId;
use crate::scenario::Scenarios;

use super::argv::{Confidential, QemuLine};
use super::identify::{same_file, sha256_of, template_of};

/// The fw_cfg file that turns edk2's legacy Linux loader off (edk2 >= stable202502).
pub const LEGACY_LOADER_SWITCH: &str = "opt/org.tianocore/EnableLegacyLoader";
/// The first edk2 release that knows the switch.
pub const SWITCH_SINCE: Edk2Release = Edk2Release {
    year: 2025,
    month: 2,
};
/// The first edk2 release whose legacy loader is off by default (CVE-2025-2296).
pub const OFF_BY_DEFAULT_SINCE: Edk2Release = Edk2Release {
    year: 2026,
    month: 2,
};
/// The first edk2 release that refuses the legacy loader inside a confidential VM.
pub const CONFIDENTIAL_REFUSES_SINCE: Edk2Release = Edk2Release {
    year: 2025,
    month: 11,
};

/// A finding before its texts are attached: the id, the words (indices into the argv) and what
/// this line adds to the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub id: FindingId,
    pub at: Vec<usize>,
    pub detail: String,
}

/// The firmware of the line: how it is loaded and what it was identified as.
pub struct Loaded<'a> {
    /// The words that load it (`-bios FILE`, or pflash unit 0).
    pub at: Vec<usize>,
    pub file: String,
    pub bios: bool,
    /// sha256 of the file on the line, when it could be read here.
    pub sha256: Option<String>,
    pub firmware: Option<&'a Firmware>,
}

/// Every finding of `line`.
pub fn check(
    line: &QemuLine,
    loaded: Option<&Loaded>,
    all: &[Firmware],
    scenarios: &Scenarios,
) -> Vec<Found> {
    let mut out = Vec::new();
    let mut add = |id: FindingId, at: &[usize], detail: String| {
        out.push(Found {
            id,
            at: at.to_vec(),
            detail,
        })
    };
    let firmware = loaded.and_then(|l| l.firmware);
    match loaded {
        None => add(
            FindingId::FirmwareUnidentified,
            &[],
            "the line loads no firmware (no -bios, no pflash unit 0): QEMU's default".into(),
        ),
        Some(l) if l.firmware.is_none() => add(
            FindingId::FirmwareUnidentified,
            &l.at,
            format!("{} is named by no descriptor, by path or by sha256", l.file),
        ),
        Some(_) => {}
    }
    let machine_words = if line.machine_at.is_empty() {
        loaded.map(|l| l.at.clone()).unwrap_or_default()
    } else {
        line.machine_at.clone()
    };
    let sev = line
        .guest
        .as_ref()
        .filter(|g| matches!(g.kind, Confidential::Sev | Confidential::SevSnp));
    if let (Some(l), Some(f)) = (loaded, firmware) {
        let d = &f.descriptor;
        let name = &d.name;
        let secure_boot = d.has(&Feature::SecureBoot);
        let flash_mode = match &d.mapping {
            Mapping::Flash(flash) => Some(flash.mode),
            _ => None,
        };
        if secure_boot
            && l.bios
            && matches!(flash_mode, Some(FlashMode::Split | FlashMode::Combined))
        {
            add(
                FindingId::SecureBootBios,
                &l.at,
                format!("{name} claims secure-boot and maps the build as flash, not memory"),
            );
        }
        if secure_boot && !l.bios {
            let code_readonly = line.flash[0].as_ref().is_some_and(|f| f.readonly);
            let no_varstore = match flash_mode {
                Some(FlashMode::Split) => line.flash[1].is_none(),
                Some(FlashMode::Combined) => code_readonly,
                _ => false,
            };
            if no_varstore {
                add(
                    FindingId::SecureBootNoVarstore,
                    &l.at,
                    format!("{name} claims secure-boot; the line has no writable varstore for it"),
                );
            }
        }
        if d.has(&Feature::RequiresSmm) {
            let smm = line.machine.get("smm");
            if smm.is_none_or(|s| !super::argv::truthy(s)) {
                let how = match smm {
                    Some(s) => format!("smm={s}"),
                    None => "no smm= (QEMU's default: auto)".into(),
                };
                add(
                    FindingId::SmmNotOn,
                    &machine_words,
                    format!("{name} claims requires-smm; the machine has {how}"),
                );
            }
            if !l.bios && line.pflash_secure.is_none() {
                add(
                    FindingId::PflashNotSecure,
                    &l.at,
                    format!("{name} claims requires-smm; no -global makes cfi.pflash01 secure=on"),
                );
            }
        }
        if let Some((at, _)) = &line.kernel {
            if secure_boot && !confidential_refuses(line, f) {
                kernel_legacy(line, f, *at, &mut add);
            }
        }
        if let Some(why) = machine_unsupported(line, d) {
            add(FindingId::MachineNotSupported, &machine_words, why);
        }
    }
    if let (Some(guest), Some((kernel_at, _))) = (sev, &line.kernel) {
        let mut at = guest.at.clone();
        at.extend([kernel_at - 1, *kernel_at]);
        if !guest.kernel_hashes {
            add(
                FindingId::SevKernelUnhashed,
                &at,
                "the SEV object has no kernel-hashes=on".into(),
            );
        }
        let sha = loaded.and_then(|l| {
            l.sha256
                .clone()
                .or_else(|| l.firmware.and_then(|f| f.executable_sha256.clone().ok()))
        });
        let measured = sha.as_deref().and_then(|s| scenarios.measured_build(s));
        if measured.is_none() {
            let what = match (firmware, &sha) {
                (Some(f), Some(s)) => format!("{} (sha256 {s})", f.descriptor.name),
                (Some(f), None) => format!("{} (sha256 unknown)", f.descriptor.name),
                (None, Some(s)) => format!("an unidentified firmware (sha256 {s})"),
                (None, None) => "an unidentified firmware".into(),
            };
            let mut at = at.clone();
            at.extend(loaded.map(|l| l.at.clone()).unwrap_or_default());
            add(
                FindingId::SevKernelUnverified,
                &at,
                format!("{what} is no measured-direct-boot build of measured-boot.json"),
            );
        }
    }
    if let Some(guest) = &line.guest {
        for (at, rom) in &line.romfiles {
            let mut words = guest.at.clone();
            words.extend([at - 1, *at]);
            add(
                FindingId::ConfidentialRomfile,
                &words,
                format!("a {:?} guest; the device loads {rom}", guest.kind),
            );
        }
    }
    if let Some(vars) = &line.flash[1] {
        if vars.readonly {
            add(
                FindingId::VarstoreReadonly,
                &vars.at,
                format!("{} is mapped read-only", vars.file),
            );
        } else if let Some(why) = template_itself(&vars.file, all) {
            add(FindingId::VarstoreIsTemplate, &vars.at, why);
        }
        if let (Some(guest), Some(code)) = (sev, &line.flash[0]) {
            let mut at = guest.at.clone();
            at.extend(code.at.iter().chain(&vars.at));
            add(
                FindingId::SevSplitVarstore,
                &at,
                format!("code {} and varstore {} under SEV", code.file, vars.file),
            );
        }
    }
    out
}

/// Whether the firmware's release refuses the legacy loader in this line's confidential guest.
fn confidential_refuses(line: &QemuLine, f: &Firmware) -> bool {
    line.guest.is_some() && release(f).is_some_and(|r| r >= CONFIDENTIAL_REFUSES_SINCE)
}

fn release(f: &Firmware) -> Option<Edk2Release> {
    f.package
        .as_deref()
        .and_then(Edk2Release::from_package_version)
}

fn kernel_legacy(
    line: &QemuLine,
    f: &Firmware,
    at: usize,
    add: &mut impl FnMut(FindingId, &[usize], String),
) {
    let name = &f.descriptor.name;
    let switch = line
        .fw_cfg
        .iter()
        .find(|(_, n, value)| n == LEGACY_LOADER_SWITCH && value.as_deref() == Some("no"));
    match release(f) {
        Some(r) if r < SWITCH_SINCE => add(
            FindingId::KernelLegacyLoaderNoSwitch,
            &[at - 1, at],
            format!("{name} is edk2 {r}, which predates the EnableLegacyLoader switch"),
        ),
        Some(r) if r >= OFF_BY_DEFAULT_SINCE => {}
        r if switch.is_none() => add(
            FindingId::KernelLegacyLoader,
            &[at - 1, at],
            match r {
                Some(r) => format!("{name} is edk2 {r}; the line does not set EnableLegacyLoader=no"),
                None => format!(
                    "the edk2 release of {name} is unknown; the line does not set EnableLegacyLoader=no"
                ),
            },
        ),
        _ => {}
    }
}

/// Why the line's varstore is a descriptor's template itself: the same file, or a file with
/// its content in the folder of a descriptor's own files (another install of it). A private
/// copy elsewhere has the template's content until the guest writes, and is what is wanted.
fn template_itself(vars: &str, all: &[Firmware]) -> Option<String> {
    let path = Path::new(vars);
    let templates = || all.iter().filter_map(|f| template_of(f).map(|t| (f, t)));
    if let Some((f, t)) = templates().find(|(_, t)| same_file(path, t)) {
        let name = &f.descriptor.name;
        return Some(if path == t {
            format!("{vars} is the nvram-template of {name}")
        } else {
            format!("{vars} is {} (the nvram-template of {name})", t.display())
        });
    }
    let folder = path.parent()?;
    let shared = all.iter().any(|f| {
        let exec = crate::discover::executable_of(&f.descriptor);
        exec.parent().is_some_and(|p| same_file(p, folder))
            || template_of(f)
                .and_then(Path::parent)
                .is_some_and(|p| same_file(p, folder))
    });
    if !shared {
        return None;
    }
    let sha = sha256_of(vars)?;
    templates()
        .find(|(_, t)| sha256_of(&t.to_string_lossy()).as_deref() == Some(sha.as_str()))
        .map(|(f, t)| {
            format!(
                "{vars} has the content of {} (the nvram-template of {}) and lies among the firmware's own files",
                t.display(),
                f.descriptor.name
            )
        })
}

/// The architecture a `qemu-system-ARCH` program runs.
fn arch_of(program: Option<&str>) -> Option<Architecture> {
    let base = Path::new(program?).file_name()?.to_str()?;
    let arch = base.strip_prefix("qemu-system-")?;
    arch.parse().ok()
}

/// Why the descriptor does not list the line's machine type, if it does not.
fn machine_unsupported(line: &QemuLine, d: &Descriptor) -> Option<String> {
    let arch = arch_of(line.program.as_deref());
    let given = line.machine_type();
    let machine = match (given, arch) {
        (Some(m), _) => m,
        (None, None | Some(Architecture::X86_64 | Architecture::I386)) => "pc",
        // Other targets have no default machine: QEMU itself refuses the line.
        (None, Some(_)) => return None,
    };
    // An alias names the newest versioned type of its QEMU.
    let newest = match machine {
        "q35" => "pc-q35-99.0".to_string(),
        "pc" => "pc-i440fx-99.0".to_string(),
        m => format!("{m}-99.0"),
    };
    let supported = d.targets.iter().any(|t| {
        arch.is_none_or(|a| a == t.architecture)
            && t.machines.iter().any(|p| {
                crate::discover::glob::glob_match(p, machine)
                    || crate::discover::glob::glob_match(p, &newest)
            })
    });
    (!supported).then(|| {
        let listed: Vec<String> = d
            .targets
            .iter()
            .filter(|t| arch.is_none_or(|a| a == t.architecture))
            .map(|t| format!("{} {}", t.architecture, t.machines.join(" ")))
            .collect();
        format!(
            "machine {}{} is not among {}'s targets ({})",
            machine,
            if given.is_none() {
                " (QEMU's default)"
            } else {
                ""
            },
            d.name,
            listed.join("; ")
        )
    })
}
