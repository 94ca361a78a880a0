//! PCI option ROMs carrying an EFI driver, to check whether firmware dispatches third-party ROM
//! code (for example an unsigned one under enforcing Secure Boot).
//!
//! [`OPROM_EFI`] is the `images/oprom` driver: when started it writes a line starting with
//! [`MARKER`] straight to COM1. [`expansion_rom`] wraps such a PE image into a PCI expansion ROM
//! that QEMU can attach to a device (`-device e1000,romfile=...`), where OVMF's PciBusDxe finds
//! it during PCI enumeration and hands it to `LoadImage`/`StartImage`.
//!
//! # ROM layout
//!
//! One EFI image (PCI Firmware spec 3.0 section 5.1, UEFI spec "EFI PCI Expansion ROM Header"),
//! all fields little-endian, offsets from the start of the ROM:
//!
//! ```text
//! 0x00  u16   Signature             0xAA55 (bytes 55 AA)
//! 0x02  u16   InitializationSize    whole image in 512-byte blocks
//! 0x04  u32   EfiSignature          0x0EF1
//! 0x08  u16   EfiSubsystem          PE subsystem: 11 boot-service / 12 runtime driver
//! 0x0A  u16   EfiMachineType        PE machine: 0x8664
//! 0x0C  u16   CompressionType       0 = uncompressed
//! 0x0E  [u8; 8] reserved            0
//! 0x16  u16   EfiImageHeaderOffset  where the PE starts (see below)
//! 0x18  u16   PcirOffset            0x1C (must be non-zero and DWORD aligned)
//! 0x1A  [u8; 2] padding             0, to align the PCIR
//! 0x1C  PCI Data Structure (PCI 3.0, 0x1C bytes):
//!   +0x00 [u8; 4] "PCIR"
//!   +0x04 u16  VendorId               must match the device (see below)
//!   +0x06 u16  DeviceId
//!   +0x08 u16  DeviceListOffset       0 (none)
//!   +0x0A u16  Length                 0x1C
//!   +0x0C u8   Revision               3 (PCI 3.0)
//!   +0x0D [u8; 3] ClassCode           00 00 02: prog-if, subclass, base class (ethernet)
//!   +0x10 u16  ImageLength            = InitializationSize (blocks)
//!   +0x12 u16  CodeRevision           0
//!   +0x14 u8   CodeType               3 = EFI
//!   +0x15 u8   Indicator              0x80 = last image in the ROM
//!   +0x16 u16  MaxRuntimeImageLength  0
//!   +0x18 u16  ConfigUtilityCodeHeaderOffset 0
//!   +0x1A u16  DMTFCLPEntryPointOffset 0
//! 0x38  0xFF padding up to EfiImageHeaderOffset
//! ....  the PE image, ending exactly at InitializationSize * 512
//! ```
//!
//! # Where the PE goes
//!
//! PciBusDxe (`LocalLoadFile2`) hands `LoadImage` the bytes from `EfiImageHeaderOffset` up to
//! `InitializationSize * 512`, so anything after the PE inside that range becomes part of the
//! "file" the firmware verifies. Authenticode hashing (edk2 `DxeImageVerificationLib`) covers
//! the bytes past the last section up to `file size - certificate table size`: trailing padding
//! would shift that window into the signature of a signed PE and change the hash of an unsigned
//! one, so neither a signature nor a db hash entry would match. Like edk2's `EfiRom` tool for
//! uncompressed images, the padding therefore goes *before* the PE, and the PE ends exactly on
//! the 512-byte boundary that closes the ROM. The offset needs no particular alignment: the
//! firmware copies the image into a fresh buffer before loading it.
//!
//! # Vendor and device IDs
//!
//! The PCI Firmware spec wants the IDs of the device carrying the ROM. For EFI images they are
//! informational: PciBusDxe does not compare them with the device (measured on QEMU 7.2 with
//! OVMF 2022.11: a ROM claiming 8086:10d3 or 1af4:1000 still ran from an `e1000`). Use
//! [`E1000_VENDOR`]/[`E1000_DEVICE`] with `-device e1000` anyway, so the ROM is also valid for
//! firmware that does check.
//!
//! # Why this is written here
//!
//! No Rust crate builds PCI expansion ROMs. The tools that do are edk2's `EfiRom` (BaseTools,
//! C) and iPXE's build scripts: either would be one more program to build or install and run
//! bounded, for a fixed 56-byte header and some padding. The layout above is short, comes with
//! its references, and the tests read every field back.

/// The option ROM driver built from `images/oprom` (PE32+, boot-service driver).
pub const OPROM_EFI: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/bootmatrix-oprom.efi"));

/// Start of the line the driver writes to COM1 when the firmware starts it
/// (`\r\nBOOTMATRIX-OPROM v=1 loaded\r\n`).
pub const MARKER: &str = "BOOTMATRIX-OPROM";

/// PCI vendor ID of QEMU's `e1000` (Intel 82540EM).
pub const E1000_VENDOR: u16 = 0x8086;
/// PCI device ID of QEMU's `e1000` (Intel 82540EM).
pub const E1000_DEVICE: u16 = 0x100e;

/// Size unit of InitializationSize and ImageLength.
const BLOCK: usize = 512;
const ROM_SIGNATURE: [u8; 2] = [0x55, 0xAA];
const EFI_SIGNATURE: u32 = 0x0EF1;
const PCIR_OFFSET: usize = 0x1C;
const PCIR_LEN: usize = 0x1C;
/// First byte after the fixed headers; the PE may start here at the earliest.
const HEADERS_END: usize = PCIR_OFFSET + PCIR_LEN;
const PCIR_REVISION_3_0: u8 = 3;
/// Network controller / Ethernet / no programming interface, low byte first.
const CLASS_CODE_ETHERNET: [u8; 3] = [0x00, 0x00, 0x02];
const CODE_TYPE_EFI: u8 = 0x03;
const INDICATOR_LAST_IMAGE: u8 = 0x80;
const PAD: u8 = 0xFF;

use crate::prepare::pe::{
    MACHINE_X64, PE32_PLUS_MAGIC, SUBSYSTEM_EFI_APPLICATION, SUBSYSTEM_EFI_BOOT_SERVICE_DRIVER,
    SUBSYSTEM_EFI_RUNTIME_DRIVER,
};

/// Wraps an x86-64 EFI driver into a single-image PCI expansion ROM for the PCI function
/// `vendor:device` (see the module docs for the layout).
///
/// The PE must be PE32+, machine x86-64 and subsystem boot-service or runtime driver:
/// PciBusDxe skips EFI applications found in option ROMs. The result is a multiple of 512 bytes.
pub fn expansion_rom(pe: &[u8], vendor: u16, device: u16) -> Result<Vec<u8>, String> {
    let subsystem = check_pe(pe)?;

    // Smallest offset past the headers at which the PE ends on a block boundary.
    let tail = pe.len() % BLOCK;
    let mut image_offset = if tail == 0 { BLOCK } else { BLOCK - tail };
    if image_offset < HEADERS_END {
        image_offset += BLOCK;
    }
    let total = image_offset + pe.len();
    debug_assert_eq!(total % BLOCK, 0);
    let blocks = u16::try_from(total / BLOCK).map_err(|_| {
        format!(
            "PE image of {} bytes is too large for an option ROM (at most {} bytes)",
            pe.len(),
            usize::from(u16::MAX) * BLOCK - HEADERS_END
        )
    })?;
    let image_offset_field = u16::try_from(image_offset).expect("below 2 * BLOCK");

    let mut rom = Vec::with_capacity(total);
    // EFI PCI expansion ROM header (0x00..0x1A).
    rom.extend_from_slice(&ROM_SIGNATURE);
    rom.extend_from_slice(&blocks.to_le_bytes()); // InitializationSize
    rom.extend_from_slice(&EFI_SIGNATURE.to_le_bytes());
    rom.extend_from_slice(&subsystem.to_le_bytes());
    rom.extend_from_slice(&MACHINE_X64.to_le_bytes());
    rom.extend_from_slice(&0u16.to_le_bytes()); // CompressionType: none
    rom.extend_from_slice(&[0; 8]); // reserved
    rom.extend_from_slice(&image_offset_field.to_le_bytes()); // EfiImageHeaderOffset
    rom.extend_from_slice(&(PCIR_OFFSET as u16).to_le_bytes());
    rom.resize(PCIR_OFFSET, 0);
    // PCI Data Structure, PCI 3.0 (0x1C..0x38).
    rom.extend_from_slice(b"PCIR");
    rom.extend_from_slice(&vendor.to_le_bytes());
    rom.extend_from_slice(&device.to_le_bytes());
    rom.extend_from_slice(&0u16.to_le_bytes()); // DeviceListOffset: none
    rom.extend_from_slice(&(PCIR_LEN as u16).to_le_bytes());
    rom.push(PCIR_REVISION_3_0);
    rom.extend_from_slice(&CLASS_CODE_ETHERNET);
    rom.extend_from_slice(&blocks.to_le_bytes()); // ImageLength
    rom.extend_from_slice(&0u16.to_le_bytes()); // CodeRevision
    rom.push(CODE_TYPE_EFI);
    rom.push(INDICATOR_LAST_IMAGE);
    rom.extend_from_slice(&0u16.to_le_bytes()); // MaxRuntimeImageLength
    rom.extend_from_slice(&0u16.to_le_bytes()); // ConfigUtilityCodeHeaderOffset
    rom.extend_from_slice(&0u16.to_le_bytes()); // DMTFCLPEntryPointOffset
    debug_assert_eq!(rom.len(), HEADERS_END);
    // Padding before the PE, so that the PE ends the ROM (see the module docs).
    rom.resize(image_offset, PAD);
    rom.extend_from_slice(pe);
    Ok(rom)
}

/// Checks that `pe` is an x86-64 PE32+ EFI driver; returns its subsystem.
fn check_pe(pe: &[u8]) -> Result<u16, String> {
    let h = crate::prepare::pe::headers(pe)?;
    if h.machine != MACHINE_X64 {
        return Err(format!(
            "PE machine type {:#06x} is not x86-64 ({MACHINE_X64:#06x})",
            h.machine
        ));
    }
    if h.magic != PE32_PLUS_MAGIC {
        return Err(format!(
            "PE optional header magic {:#x} is not PE32+ ({PE32_PLUS_MAGIC:#x}), as x86-64 \
             images must be",
            h.magic
        ));
    }
    match h.subsystem {
        SUBSYSTEM_EFI_BOOT_SERVICE_DRIVER | SUBSYSTEM_EFI_RUNTIME_DRIVER => Ok(h.subsystem),
        other => {
            let what = match other {
                SUBSYSTEM_EFI_APPLICATION => " (EFI application)".to_string(),
                _ => String::new(),
            };
            Err(format!(
                "PE subsystem {other}{what} is not an EFI driver: option ROMs need subsystem \
                 {SUBSYSTEM_EFI_BOOT_SERVICE_DRIVER} (boot-service driver) or \
                 {SUBSYSTEM_EFI_RUNTIME_DRIVER} (runtime driver); firmware skips anything else"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prepare::pe::u32_at as read_u32;
    use rstest::rstest;

    fn u16_at(rom: &[u8], at: usize) -> u16 {
        crate::prepare::pe::u16_at(rom, at).expect("in bounds")
    }

    /// Offset of the PE optional header's Subsystem field in `pe`.
    fn subsystem_offset(pe: &[u8]) -> usize {
        read_u32(pe, 0x3C).expect("e_lfanew") as usize + 4 + 20 + 68
    }

    fn with_u16(pe: &[u8], at: usize, value: u16) -> Vec<u8> {
        let mut copy = pe.to_vec();
        copy[at..at + 2].copy_from_slice(&value.to_le_bytes());
        copy
    }

    /// What PciBusDxe (`LoadOpRomImage`, `ProcessOpRomImage`, `LocalLoadFile2`) checks before
    /// it hands an image to LoadImage; returns the bytes LoadImage would get.
    fn firmware_view(rom: &[u8]) -> &[u8] {
        assert_eq!(rom[..2], ROM_SIGNATURE);
        let pcir = usize::from(u16_at(rom, 0x18));
        assert!(pcir != 0 && pcir % 4 == 0 && pcir + PCIR_LEN <= rom.len());
        assert_eq!(&rom[pcir..pcir + 4], b"PCIR");
        let image_len = usize::from(u16_at(rom, pcir + 0x10)) * BLOCK;
        assert!(image_len <= rom.len());
        assert_eq!(rom[pcir + 0x14], CODE_TYPE_EFI);
        assert_eq!(read_u32(rom, 4), Some(EFI_SIGNATURE));
        assert!(matches!(u16_at(rom, 8), 11 | 12));
        assert_eq!(u16_at(rom, 0x0A), MACHINE_X64);
        assert!(u16_at(rom, 0x0C) <= 1);
        let init = usize::from(u16_at(rom, 2)) * BLOCK;
        let pe_at = usize::from(u16_at(rom, 0x16));
        assert!(init <= image_len && pe_at < init);
        &rom[pe_at..init]
    }

    #[test]
    fn oprom_is_a_boot_service_driver() {
        assert_eq!(check_pe(OPROM_EFI), Ok(SUBSYSTEM_EFI_BOOT_SERVICE_DRIVER));
    }

    #[test]
    fn header_fields_read_back() {
        let rom = expansion_rom(OPROM_EFI, E1000_VENDOR, E1000_DEVICE).unwrap();
        let blocks = u16::try_from(rom.len() / BLOCK).unwrap();
        assert_eq!(rom[..2], [0x55, 0xAA]);
        assert_eq!(u16_at(&rom, 0x02), blocks, "InitializationSize");
        assert_eq!(read_u32(&rom, 0x04), Some(0x0EF1), "EfiSignature");
        assert_eq!(u16_at(&rom, 0x08), 11, "EfiSubsystem");
        assert_eq!(u16_at(&rom, 0x0A), 0x8664, "EfiMachineType");
        assert_eq!(u16_at(&rom, 0x0C), 0, "CompressionType");
        assert_eq!(rom[0x0E..0x16], [0; 8], "reserved");
        let pe_at = usize::from(u16_at(&rom, 0x16));
        assert_eq!(u16_at(&rom, 0x18), 0x1C, "PcirOffset");

        let p = 0x1C;
        assert_eq!(&rom[p..p + 4], b"PCIR");
        assert_eq!(u16_at(&rom, p + 0x04), E1000_VENDOR);
        assert_eq!(u16_at(&rom, p + 0x06), E1000_DEVICE);
        assert_eq!(u16_at(&rom, p + 0x08), 0, "DeviceListOffset");
        assert_eq!(u16_at(&rom, p + 0x0A), 0x1C, "Length");
        assert_eq!(rom[p + 0x0C], 3, "Revision");
        assert_eq!(rom[p + 0x0D..p + 0x10], [0x00, 0x00, 0x02], "ClassCode");
        assert_eq!(u16_at(&rom, p + 0x10), blocks, "ImageLength");
        assert_eq!(u16_at(&rom, p + 0x12), 0, "CodeRevision");
        assert_eq!(rom[p + 0x14], 0x03, "CodeType");
        assert_eq!(rom[p + 0x15], 0x80, "Indicator");
        assert_eq!(
            rom[p + 0x16..p + 0x1C],
            [0; 6],
            "MaxRuntime/ConfigUtility/DMTF CLP"
        );

        assert!(pe_at >= HEADERS_END);
        assert!(rom[HEADERS_END..pe_at].iter().all(|&b| b == PAD));
        assert_eq!(&rom[pe_at..], OPROM_EFI);
        assert_eq!(firmware_view(&rom), OPROM_EFI);
    }

    /// A signed PE is a multiple of 8 bytes, not of 512: whatever its length, the ROM is
    /// 512-aligned and the firmware gets exactly the PE, with no trailing bytes.
    #[rstest]
    #[case::unsigned_as_linked(0)]
    #[case::signature_appended(8 * 90)]
    #[case::tail_just_fits(BLOCK - HEADERS_END)]
    #[case::tail_needs_another_block(BLOCK - HEADERS_END + 8)]
    #[case::odd(1)]
    fn rom_is_block_aligned_and_pe_ends_it(#[case] extra: usize) {
        let mut pe = OPROM_EFI.to_vec();
        pe.resize(pe.len() + extra, 0xA5);
        let rom = expansion_rom(&pe, E1000_VENDOR, E1000_DEVICE).unwrap();
        assert_eq!(rom.len() % BLOCK, 0);
        assert_eq!(usize::from(u16_at(&rom, 0x02)) * BLOCK, rom.len());
        assert!(usize::from(u16_at(&rom, 0x16)) >= HEADERS_END);
        assert!(
            rom.len() - pe.len() < HEADERS_END + BLOCK,
            "no block wasted"
        );
        assert_eq!(firmware_view(&rom), pe.as_slice());
    }

    #[test]
    fn runtime_driver_accepted_and_subsystem_copied() {
        let pe = with_u16(OPROM_EFI, subsystem_offset(OPROM_EFI), 12);
        let rom = expansion_rom(&pe, E1000_VENDOR, E1000_DEVICE).unwrap();
        assert_eq!(u16_at(&rom, 0x08), 12);
    }

    #[rstest]
    #[case::empty(b"".to_vec(), "no MZ signature")]
    #[case::text(b"hello, world".to_vec(), "no MZ signature")]
    #[case::dos_header_truncated(b"MZ\0\0".to_vec(), "truncated DOS header")]
    #[case::no_pe_signature({ let mut v = vec![0u8; 0x80]; v[..2].copy_from_slice(b"MZ"); v[0x3C] = 0x40; v }, "no PE\\0\\0 signature")]
    #[case::lfanew_out_of_range({ let mut v = vec![0u8; 0x40]; v[..2].copy_from_slice(b"MZ"); v[0x3C..0x40].copy_from_slice(&u32::MAX.to_le_bytes()); v }, "no PE\\0\\0 signature")]
    #[case::headers_truncated(OPROM_EFI[..0x90].to_vec(), "truncated PE headers")]
    fn non_pe_rejected(#[case] input: Vec<u8>, #[case] wanted: &str) {
        let err = expansion_rom(&input, E1000_VENDOR, E1000_DEVICE).unwrap_err();
        assert!(err.contains(wanted), "{err}");
    }

    #[test]
    fn efi_application_rejected() {
        let app = with_u16(OPROM_EFI, subsystem_offset(OPROM_EFI), 10);
        let err = expansion_rom(&app, E1000_VENDOR, E1000_DEVICE).unwrap_err();
        assert!(err.contains("subsystem 10 (EFI application)"), "{err}");
        assert!(err.contains("not an EFI driver"), "{err}");
    }

    #[rstest]
    #[case::ia32(0x014c, "0x014c")]
    #[case::aarch64(0xaa64, "0xaa64")]
    fn wrong_machine_rejected(#[case] machine: u16, #[case] shown: &str) {
        let at = read_u32(OPROM_EFI, 0x3C).unwrap() as usize + 4;
        let pe = with_u16(OPROM_EFI, at, machine);
        let err = expansion_rom(&pe, E1000_VENDOR, E1000_DEVICE).unwrap_err();
        assert!(err.contains("machine type") && err.contains(shown), "{err}");
        assert!(err.contains("not x86-64"), "{err}");
    }

    #[test]
    fn pe32_rejected() {
        let at = read_u32(OPROM_EFI, 0x3C).unwrap() as usize + 4 + 20;
        let pe = with_u16(OPROM_EFI, at, 0x10B);
        let err = expansion_rom(&pe, E1000_VENDOR, E1000_DEVICE).unwrap_err();
        assert!(err.contains("not PE32+"), "{err}");
    }

    #[test]
    fn oversized_pe_rejected() {
        let mut pe = OPROM_EFI.to_vec();
        pe.resize(usize::from(u16::MAX) * BLOCK, 0);
        let err = expansion_rom(&pe, E1000_VENDOR, E1000_DEVICE).unwrap_err();
        assert!(err.contains("too large"), "{err}");
    }
}
