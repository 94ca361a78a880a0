// SPDX-License-Identifier: MIT OR Apache-2.0
//! bootmatrix guest probe.
//!
//! Booted as `\EFI\BOOT\BOOTX64.EFI`, it prints one machine-parsable line on
//! ConOut (which OVMF routes to the serial port when there is no display) and
//! powers the VM off, so the harness gets both a verdict and a prompt QEMU
//! exit. The line format is a contract with the host-side parser: bump `v=`
//! whenever it changes.

#![no_main]
#![no_std]

use core::fmt::{self, Write};
use uefi::prelude::*;
use uefi::runtime::{self, ResetType, VariableVendor};
use uefi::{system, CStr16, Char16};

/// Format version of the probe line.
const LINE_VERSION: u32 = 1;

#[entry]
fn main() -> Status {
    let mut line = Line::new();
    // Leading CRLF: firmware may have left the cursor mid-line, and the host
    // parser looks for the marker at the start of a line.
    let _ = write!(line, "\r\nBOOTMATRIX-PROBE v={LINE_VERSION}");
    for (key, name) in [
        ("secureboot", cstr16!("SecureBoot")),
        ("setupmode", cstr16!("SetupMode")),
        ("auditmode", cstr16!("AuditMode")),
        ("deployedmode", cstr16!("DeployedMode")),
    ] {
        // Absence is normal (AuditMode/DeployedMode only exist since UEFI
        // 2.5), so every failure is reported as "-", never as an error.
        let _ = match read_u8_var(name) {
            Some(v) => write!(line, " {key}={v}"),
            None => write!(line, " {key}=-"),
        };
    }
    let _ = line.write_str(" vendor=\"");
    line.push_vendor(system::firmware_vendor());
    // Not `Revision`'s Display: it prints 2.70 as "2.7"; the parser expects
    // the raw minor field ("2.70", "2.31" for 2.3.1).
    let uefi = system::uefi_revision();
    let _ = write!(
        line,
        "\" revision={:#010x} uefi={}.{:02}\r\n",
        system::firmware_revision(),
        uefi.major(),
        uefi.minor()
    );

    // One OutputString call for the whole line so nothing the firmware prints
    // from a timer event can land in the middle of it. A console error is
    // ignored: there is nobody to report it to, and the shutdown below still
    // ends the VM.
    system::with_stdout(|out| {
        let _ = out.output_string(line.as_cstr16());
    });

    shutdown()
}

/// Reads a 1-byte global variable. `None` covers not-found, wrong size and
/// any other read error alike: the probe reports, the host judges.
fn read_u8_var(name: &CStr16) -> Option<u8> {
    let mut buf = [0u8; 1];
    let (data, _) = runtime::get_variable(name, &VariableVendor::GLOBAL_VARIABLE, &mut buf).ok()?;
    data.first().copied()
}

/// ResetSystem(EfiResetShutdown), then halt forever if the firmware returns.
///
/// Not `uefi::runtime::reset`: both it and uefi-raw declare ResetSystem as
/// `-> !`, so a buggy firmware that returns would be undefined behaviour
/// (in practice a #UD trap). Calling through a returning signature makes
/// that case well-defined: we park the CPU and let the harness timeout act.
fn shutdown() -> ! {
    type ResetSystem = unsafe extern "efiapi" fn(ResetType, Status, usize, *const u8);
    if let Some(st) = uefi::table::system_table_raw() {
        // SAFETY: the firmware-provided system table is live while we run.
        let rt = unsafe { st.as_ref() }.runtime_services;
        if !rt.is_null() {
            // SAFETY: `rt` is the firmware's runtime services table. The
            // transmute only drops the `!` return type; the ABI is identical.
            unsafe {
                let reset: ResetSystem = core::mem::transmute((*rt).reset_system);
                reset(ResetType::SHUTDOWN, Status::SUCCESS, 0, core::ptr::null());
            }
        }
    }
    loop {
        // SAFETY: `hlt` only pauses the CPU until the next interrupt.
        unsafe { core::arch::asm!("hlt", options(nomem, nostack)) };
    }
}

/// Fixed-size UCS-2 line buffer.
///
/// Used instead of `print!` because uefi's console `fmt::Write` rewrites each
/// `\n` into `\r\n` (our explicit `\r\n` would become `\r\r\n`), and because
/// it needs no allocator.
struct Line {
    buf: [u16; Self::CAP],
    len: usize,
}

impl Line {
    const CAP: usize = 512;
    /// Room kept for the closing `\r\n` and NUL, so an absurdly long vendor
    /// string truncates the field instead of the line ending.
    const RESERVE: usize = 3;

    fn new() -> Self {
        Self {
            buf: [0; Self::CAP],
            len: 0,
        }
    }

    fn push(&mut self, c: u16) -> fmt::Result {
        let is_eol = c == u16::from(b'\r') || c == u16::from(b'\n');
        let limit = if is_eol {
            Self::CAP - 1
        } else {
            Self::CAP - Self::RESERVE
        };
        // NUL would end the string early when handed to the firmware.
        if c == 0 || self.len >= limit {
            return Err(fmt::Error);
        }
        self.buf[self.len] = c;
        self.len += 1;
        Ok(())
    }

    /// Copies the vendor string as-is (it is already UCS-2), swapping `"` for
    /// `'` so the quoted field stays unambiguous for the parser.
    fn push_vendor(&mut self, vendor: &CStr16) {
        for &c in vendor.iter() {
            let c = match u16::from(c) {
                0x22 => 0x27, // '"' -> '\''
                c => c,
            };
            if self.push(c).is_err() {
                break;
            }
        }
    }

    fn as_cstr16(&mut self) -> &CStr16 {
        self.buf[self.len] = 0;
        // Every unit came from a CStr16 or a `char` accepted by
        // `Char16::try_from`, and `push` rejects NUL, so this cannot fail.
        CStr16::from_u16_with_nul(&self.buf[..=self.len])
            .unwrap_or(cstr16!("\r\nBOOTMATRIX-PROBE v=1 error\r\n"))
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for ch in s.chars() {
            let c = Char16::try_from(ch).map_err(|_| fmt::Error)?;
            self.push(u16::from(c))?;
        }
        Ok(())
    }
}
