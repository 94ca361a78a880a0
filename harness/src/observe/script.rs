//! Feeding console lines to a watcher the way the runner does, for the tests of this stage and
//! the next.

use std::time::Duration;

use crate::boot::guest_errors::GuestErrors;
use crate::boot::{BootEnd, Console, Control, Watch};
use crate::matrix::Check;
use crate::observe::evidence::{Observation, Undecided};
use crate::observe::Watcher;
use crate::plan::Targets;

/// One thing the runner hands a watcher.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    Serial(u64, &'a str),
    DebugCon(u64, &'a str),
    Partial(u64, &'a str),
    Tick(u64),
    /// A guest-error line QEMU logged; handed over summarized when the boot is over.
    GuestError(u64, &'a str),
}

pub use Step::{DebugCon, GuestError, Partial, Serial, Tick};

/// The targets the planner gives a cell of `check`: the ESP at slot 5, the ROM's NIC at 6.
pub fn targets(check: Check) -> Targets {
    match check {
        // as-bios: its probe variant (the kernel variant has no targets: [`run_with`]).
        Check::SecureBoot | Check::DistroChain | Check::AsBios => Targets {
            boot_device: Some("PciRoot(0x0)/Pci(0x5,0x0)".into()),
            rom_device: None,
        },
        Check::OptionRom => Targets {
            boot_device: Some("PciRoot(0x0)/Pci(0x5,0x0)".into()),
            rom_device: Some("0000:00:06.0".into()),
        },
        Check::KernelBoot | Check::NoShell | Check::KeyHealth => Targets::default(),
    }
}

pub const GRACE: Duration = Duration::from_secs(8);

/// Feeds `steps` until the watcher stops the guest (the rest is never read, as in the
/// runner), then concludes with `end` (or [`BootEnd::Stopped`] when it stopped). Returns
/// the conclusion and how many steps were read.
pub fn run(check: Check, steps: &[Step], end: BootEnd) -> (Result<Observation, Undecided>, usize) {
    run_with(check, targets(check), steps, end)
}

/// [`run`] with the targets given.
pub fn run_with(
    check: Check,
    targets: Targets,
    steps: &[Step],
    end: BootEnd,
) -> (Result<Observation, Undecided>, usize) {
    let mut w = Watcher::new(check, targets, GRACE);
    let ms = Duration::from_millis;
    let mut logged = GuestErrors::default();
    for (i, step) in steps.iter().enumerate() {
        let control = match *step {
            Serial(at, text) => w.line(Console::Serial, ms(at), text),
            DebugCon(at, text) => w.line(Console::Debug, ms(at), text),
            Partial(at, text) => w.partial(Console::Serial, ms(at), text),
            Tick(at) => w.tick(ms(at)),
            GuestError(at, text) => {
                logged.add(text, ms(at));
                Control::Continue
            }
        };
        if control == Control::Stop {
            w.guest_errors(&logged);
            return (w.finish(&BootEnd::Stopped), i + 1);
        }
    }
    w.guest_errors(&logged);
    (w.finish(&end), steps.len())
}

/// The conclusion of `steps` when the guest is finally killed at the deadline.
pub fn observe(check: Check, steps: &[Step]) -> Result<Observation, Undecided> {
    run(check, steps, deadline()).0
}

pub fn deadline() -> BootEnd {
    BootEnd::Deadline {
        after: Duration::from_secs(80),
        last_line: "last".into(),
    }
}

pub const PROBE: &str = r#"BOOTMATRIX-PROBE v=2 secureboot=1 setupmode=0 auditmode=0 deployedmode=absent vendor="EDK II" revision=0x00010000 uefi=2.70"#;
pub const PROBE_SB0: &str = r#"BOOTMATRIX-PROBE v=2 secureboot=0 setupmode=1 auditmode=0 deployedmode=0 vendor="EDK II" revision=0x00010000 uefi=2.70"#;
pub const OWN_REFUSAL: &str = r#"BdsDxe: failed to load Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x5,0x0): Access Denied"#;
pub const SHELL_REFUSAL: &str = r#"BdsDxe: failed to start Boot0002 "EFI Internal Shell" from Fv(7CB8BDC9-F8EB-4F34-AAEA-3EE4AF6516A1)/FvFile(7C04A583-9E3E-4F1C-AD65-E05268D0B4D1): Security Violation"#;
pub const GAVE_UP: &str = "BdsDxe: No bootable option or device was found.";
pub const GAVE_UP_2026: &str = "BdsDxe: No bootable option was found.";
pub const OPROM: &str = "BOOTMATRIX-OPROM v=1 loaded";
pub const PCI_ROM_IDLE: &str = "BOOTMATRIX-PCI v=1 loc=0000:00:06.0 id=8086:100e class=020000 romsize=65536 romimage=1 images=0";
pub const PCI_ROM_RAN: &str = "BOOTMATRIX-PCI v=1 loc=0000:00:06.0 id=8086:100e class=020000 romsize=65536 romimage=1 images=1";
pub const PCI_NO_ROM: &str =
    "BOOTMATRIX-PCI v=1 loc=0000:00:06.0 id=8086:100e class=020000 romsize=0 romimage=0 images=0";
pub const LINUX: &str = "[    0.000000] Linux version 6.1.0-28-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)";
pub const CMDLINE_LOAD_IMAGE: &str =
    "[    0.000000] Command line: initrd=initrd console=ttyS0 panic=-1";
pub const CMDLINE_LEGACY: &str = "[    0.000000] Command line: console=ttyS0 panic=-1";
pub const SB_ON: &str = "[    0.010712] secureboot: Secure boot enabled";
pub const SB_OFF: &str = "[    0.010712] secureboot: Secure boot disabled";
pub const SB_UNKNOWN: &str = "[    0.010712] secureboot: Secure boot could not be determined";
pub const PANIC: &str = "[    1.2] Kernel panic - not syncing: VFS: Unable to mount root fs";
pub const LEGACY_WARNING: &str =
    "OVMF: Using legacy linux kernel loader (insecure and deprecated).";
pub const NO_FALLBACK: &str = "OVMF: Fallback to insecure legacy linux kernel loader is disabled.";
