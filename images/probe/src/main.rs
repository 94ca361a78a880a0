// SPDX-License-Identifier: MIT OR Apache-2.0
//! bootmatrix guest probe.
//!
//! Booted as `\EFI\BOOT\BOOTX64.EFI`, it prints machine-parsable lines on
//! ConOut (which OVMF routes to the serial port when there is no display) and
//! powers the VM off, so the harness gets both a verdict and a prompt QEMU
//! exit:
//!
//! * one `BOOTMATRIX-PCI` line per PCI function (handle with
//!   EFI_PCI_IO_PROTOCOL), saying whether it has an option ROM and how many
//!   images loaded from that ROM are still resident;
//! * then exactly one `BOOTMATRIX-PROBE` line with the Secure Boot state.
//!
//! Both formats are a contract with the host-side parser: bump their `v=`
//! whenever they change.

#![no_main]
#![no_std]

use core::ffi::c_void;
use core::fmt::{self, Write};
use uefi::boot::{self, OpenProtocolAttributes, OpenProtocolParams, ScopedProtocol, SearchType};
use uefi::prelude::*;
use uefi::proto::loaded_image::LoadedImage;
use uefi::proto::unsafe_protocol;
use uefi::runtime::{self, ResetType, VariableVendor};
use uefi::{system, CStr16, Char16, Identify};

/// Format version of the `BOOTMATRIX-PROBE` line.
/// v=2: a variable the firmware reports as not found is `absent`, not `-`.
const LINE_VERSION: u32 = 2;

/// Format version of the `BOOTMATRIX-PCI` lines.
const PCI_LINE_VERSION: u32 = 1;

#[entry]
fn main() -> Status {
    // Before the probe line, so the host can treat the probe line as "the
    // report is complete".
    report_pci_functions();

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
        // 2.5; newer OVMF builds without Secure Boot lack SecureBoot), so no
        // reading is an error here: the probe reports, the host judges.
        let _ = match read_u8_var(name) {
            VarRead::Value(v) => write!(line, " {key}={v}"),
            VarRead::Absent => write!(line, " {key}=absent"),
            VarRead::Unknown => write!(line, " {key}=-"),
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
    line.output(cstr16!("\r\nBOOTMATRIX-PROBE v=2 error\r\n"));

    shutdown()
}

/// Outcome of reading a 1-byte global variable.
enum VarRead {
    /// The variable exists and holds exactly one byte.
    Value(u8),
    /// GetVariable said EFI_NOT_FOUND.
    Absent,
    /// Any other failure (wrong size, buffer too small, device error, ...).
    Unknown,
}

/// Reads a 1-byte global variable, telling "not there" from "unreadable".
fn read_u8_var(name: &CStr16) -> VarRead {
    let mut buf = [0u8; 1];
    match runtime::get_variable(name, &VariableVendor::GLOBAL_VARIABLE, &mut buf) {
        Ok((data, _)) => match data {
            [v] => VarRead::Value(*v),
            // Zero bytes (a variable cannot be empty, so a firmware bug).
            _ => VarRead::Unknown,
        },
        Err(e) if e.status() == Status::NOT_FOUND => VarRead::Absent,
        // BUFFER_TOO_SMALL (longer than one byte) included.
        Err(_) => VarRead::Unknown,
    }
}

/// EFI_PCI_IO_PROTOCOL (UEFI spec 2.10 section 14.4; edk2
/// MdePkg/Include/Protocol/PciIo.h). The `uefi` crate has no binding for it.
///
/// Only the members the probe calls are typed; the others are kept as
/// pointer-sized placeholders so that `rom_size` and `rom_image` land at the
/// right offsets. The typed ones are `Option`s (same layout as a nullable
/// pointer) so that a NULL entry from a broken firmware is a `-`, not
/// undefined behaviour.
#[repr(C)]
#[unsafe_protocol("4cf5b200-68b8-4ca5-9eec-b23e3f50029a")]
struct PciIo {
    poll_mem: *const c_void,
    poll_io: *const c_void,
    mem_read: *const c_void,
    mem_write: *const c_void,
    io_read: *const c_void,
    io_write: *const c_void,
    pci_read: Option<PciIoConfigRead>,
    pci_write: *const c_void,
    copy_mem: *const c_void,
    map: *const c_void,
    unmap: *const c_void,
    allocate_buffer: *const c_void,
    free_buffer: *const c_void,
    flush: *const c_void,
    get_location: Option<PciIoGetLocation>,
    attributes: *const c_void,
    get_bar_attributes: *const c_void,
    set_bar_attributes: *const c_void,
    /// Size in bytes of the ROM image PciBusDxe copied to memory (0: none).
    rom_size: u64,
    /// That in-memory copy, or NULL.
    rom_image: *mut c_void,
}

// 18 function pointers, then RomSize and RomImage (x86_64: 8-byte members).
const _: () = {
    assert!(core::mem::offset_of!(PciIo, pci_read) == 6 * 8);
    assert!(core::mem::offset_of!(PciIo, get_location) == 14 * 8);
    assert!(core::mem::offset_of!(PciIo, rom_size) == 18 * 8);
    assert!(core::mem::offset_of!(PciIo, rom_image) == 19 * 8);
    assert!(core::mem::size_of::<PciIo>() == 20 * 8);
};

/// EFI_PCI_IO_PROTOCOL.Pci.Read (Width, Offset, Count, Buffer).
type PciIoConfigRead =
    unsafe extern "efiapi" fn(*mut PciIo, u32, u32, usize, *mut c_void) -> Status;
/// EFI_PCI_IO_PROTOCOL.GetLocation (Segment, Bus, Device, Function).
type PciIoGetLocation =
    unsafe extern "efiapi" fn(*mut PciIo, *mut usize, *mut usize, *mut usize, *mut usize) -> Status;

/// EfiPciIoWidthUint32 (EFI_PCI_IO_PROTOCOL_WIDTH).
const PCI_IO_WIDTH_UINT32: u32 = 2;

impl PciIo {
    /// Reads the configuration-space dword at `offset` (must be 4-aligned).
    fn config_dword(&mut self, offset: u32) -> Option<u32> {
        let read = self.pci_read?;
        let mut value = 0u32;
        // SAFETY: `self` is the live interface the firmware installed; the
        // buffer holds exactly Count (1) items of Width (4 bytes).
        let status = unsafe {
            read(
                self,
                PCI_IO_WIDTH_UINT32,
                offset,
                1,
                (&raw mut value).cast(),
            )
        };
        status.is_success().then_some(value)
    }

    /// (segment, bus, device, function), or `None` if the firmware fails or
    /// returns numbers that do not fit the PCI address format.
    fn location(&mut self) -> Option<(usize, usize, usize, usize)> {
        let get_location = self.get_location?;
        let (mut seg, mut bus, mut dev, mut func) = (0, 0, 0, 0);
        // SAFETY: `self` is the live interface; the out-pointers are valid.
        let status = unsafe { get_location(self, &mut seg, &mut bus, &mut dev, &mut func) };
        let fits = seg <= 0xffff && bus <= 0xff && dev <= 0x1f && func <= 7;
        (status.is_success() && fits).then_some((seg, bus, dev, func))
    }
}

/// Prints one `BOOTMATRIX-PCI` line per handle carrying EFI_PCI_IO_PROTOCOL,
/// in the firmware's handle order, e.g.
/// `BOOTMATRIX-PCI v=1 loc=0000:00:06.0 id=8086:100e class=020000 romsize=2560 romimage=1 images=1`.
/// A field that cannot be read is `-`.
///
/// Handle lists come from LocateHandleBuffer (firmware pool, freed on drop),
/// so there is no fixed cap on the number of PCI functions or loaded images
/// and no Rust allocator. If the PCI handles cannot be listed at all
/// (EFI_NOT_FOUND: no PCI I/O handles; or out of pool) no line is printed.
fn report_pci_functions() {
    let Ok(pci_handles) = boot::locate_handle_buffer(SearchType::ByProtocol(&PciIo::GUID)) else {
        return;
    };
    // Listed once for all PCI lines; `None` makes every `images` field `-`.
    let images = boot::locate_handle_buffer(SearchType::ByProtocol(&LoadedImage::GUID)).ok();

    for &pci in pci_handles.iter() {
        let mut line = Line::new();
        let _ = write!(line, "\r\nBOOTMATRIX-PCI v={PCI_LINE_VERSION}");
        let _ = match open::<PciIo>(pci).as_mut().and_then(|p| p.get_mut()) {
            Some(pci_io) => write_pci_fields(&mut line, pci_io),
            None => line.write_str(" loc=- id=- class=- romsize=- romimage=-"),
        };
        let resident = images
            .as_deref()
            .and_then(|all| count_images_from(all, pci));
        let _ = match resident {
            Some(n) => write!(line, " images={n}\r\n"),
            None => line.write_str(" images=-\r\n"),
        };
        // One OutputString per line, like the probe line.
        line.output(cstr16!(""));
    }
}

/// Writes ` loc=.. id=.. class=.. romsize=.. romimage=..` for one function.
fn write_pci_fields(line: &mut Line, pci_io: &mut PciIo) -> fmt::Result {
    match pci_io.location() {
        Some((seg, bus, dev, func)) => write!(line, " loc={seg:04x}:{bus:02x}:{dev:02x}.{func:x}")?,
        None => line.write_str(" loc=-")?,
    }
    // Offset 0x00: vendor ID (low word), device ID (high word).
    match pci_io.config_dword(0x00) {
        Some(ids) => write!(line, " id={:04x}:{:04x}", ids & 0xffff, ids >> 16)?,
        None => line.write_str(" id=-")?,
    }
    // Offset 0x08: revision ID (byte 0x08), then the class code, prog-if
    // (0x09), subclass (0x0A), base class (0x0B). Dropping the revision
    // leaves base class, subclass, prog-if from the most significant digit
    // down: e1000 prints 020000.
    match pci_io.config_dword(0x08) {
        Some(dword) => write!(line, " class={:06x}", dword >> 8)?,
        None => line.write_str(" class=-")?,
    }
    write!(
        line,
        " romsize={} romimage={}",
        pci_io.rom_size,
        u8::from(!pci_io.rom_image.is_null())
    )
}

/// How many of the loaded-image handles `images` were loaded from
/// `device`, i.e. have EFI_LOADED_IMAGE_PROTOCOL.DeviceHandle == `device`.
/// PciBusDxe loads option-ROM drivers with the device's path, so their
/// DeviceHandle is the PCI handle; an image that Secure Boot refused (or that
/// exited with an error) has been unloaded and is not in the list any more.
/// `None` if any image's protocol cannot be read: a partial count would be a
/// guess.
fn count_images_from(images: &[Handle], device: Handle) -> Option<usize> {
    let mut count = 0;
    for &image in images {
        let loaded = open::<LoadedImage>(image)?;
        if loaded.get()?.device() == Some(device) {
            count += 1;
        }
    }
    Some(count)
}

/// Opens protocol `P` on `handle` with GET_PROTOCOL: non-exclusive, so no
/// driver is disconnected; closed again when the result is dropped.
fn open<P: uefi::proto::ProtocolPointer>(handle: Handle) -> Option<ScopedProtocol<P>> {
    let params = OpenProtocolParams {
        handle,
        agent: boot::image_handle(),
        controller: None,
    };
    // SAFETY: the probe only reads the interface, stays at TPL_APPLICATION
    // and does not connect or disconnect anything, so nothing uninstalls it
    // while the ScopedProtocol lives.
    unsafe { boot::open_protocol::<P>(params, OpenProtocolAttributes::GetProtocol) }.ok()
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

    /// Prints the line with one OutputString call, so nothing the firmware
    /// prints from a timer event can land in the middle of it. A console
    /// error is ignored: there is nobody to report it to, and the shutdown
    /// at the end still ends the VM.
    ///
    /// Every unit came from a CStr16 or a `char` accepted by
    /// `Char16::try_from`, and `push` rejects NUL, so the conversion cannot
    /// fail; `fallback` is printed if it does anyway.
    fn output(&mut self, fallback: &CStr16) {
        self.buf[self.len] = 0;
        let text = CStr16::from_u16_with_nul(&self.buf[..=self.len]).unwrap_or(fallback);
        system::with_stdout(|out| {
            let _ = out.output_string(text);
        });
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
