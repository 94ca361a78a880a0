//! Just enough PE/COFF to check what an image is and to take its signatures off.
//!
//! Offsets per the Microsoft PE format: `e_lfanew` at 0x3C points at `PE\0\0`, followed by the
//! 20-byte COFF header and the optional header, whose data directory 4 (the certificate table)
//! holds a file offset and size of the Authenticode signatures, which sit at the end of the file.

/// `IMAGE_FILE_MACHINE_AMD64`.
pub const MACHINE_X64: u16 = 0x8664;
pub const SUBSYSTEM_EFI_APPLICATION: u16 = 10;
pub const SUBSYSTEM_EFI_BOOT_SERVICE_DRIVER: u16 = 11;
pub const SUBSYSTEM_EFI_RUNTIME_DRIVER: u16 = 12;

const CERTIFICATE_TABLE: usize = 4;

pub const PE32_MAGIC: u16 = 0x10B;
pub const PE32_PLUS_MAGIC: u16 = 0x20B;

/// The header fields bootmatrix cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeHeaders {
    pub machine: u16,
    /// Optional header magic: [`PE32_MAGIC`] or [`PE32_PLUS_MAGIC`].
    pub magic: u16,
    pub subsystem: u16,
    /// File offset of the certificate table's directory entry (offset u32, size u32).
    security_entry: usize,
    /// (file offset, size) of the signatures; size 0 when unsigned.
    pub signatures: (u32, u32),
}

pub(crate) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Offset of the Subsystem field in both PE32 and PE32+ optional headers.
const SUBSYSTEM_AT: usize = 68;

pub fn headers(image: &[u8]) -> Result<PeHeaders, String> {
    if image.get(..2) != Some(b"MZ".as_slice()) {
        return Err("not a PE image: no MZ signature at offset 0".into());
    }
    let lfanew = u32_at(image, 0x3C)
        .ok_or("not a PE image: truncated DOS header (no e_lfanew at 0x3C)")?
        as usize;
    if image.get(lfanew..lfanew.saturating_add(4)) != Some(b"PE\0\0".as_slice()) {
        return Err(format!(
            "not a PE image: no PE\\0\\0 signature at e_lfanew {lfanew:#x}"
        ));
    }
    let truncated = || {
        format!(
            "truncated PE headers (e_lfanew {lfanew:#x}, {} bytes)",
            image.len()
        )
    };
    // The COFF file header follows the signature; the optional header follows it (20 bytes).
    let coff = lfanew + 4;
    let machine = u16_at(image, coff).ok_or_else(truncated)?;
    let optional_len = usize::from(u16_at(image, coff + 16).ok_or_else(truncated)?);
    let optional = coff + 20;
    if optional_len < SUBSYSTEM_AT + 2 {
        return Err(format!(
            "PE optional header of {optional_len} bytes is too short to hold the subsystem"
        ));
    }
    let magic = u16_at(image, optional).ok_or_else(truncated)?;
    let (count_at, dirs_at) = match magic {
        PE32_PLUS_MAGIC => (optional + 108, optional + 112),
        PE32_MAGIC => (optional + 92, optional + 96),
        other => return Err(format!("unknown PE optional header magic {other:#x}")),
    };
    let subsystem = u16_at(image, optional + SUBSYSTEM_AT).ok_or_else(truncated)?;
    let count = u32_at(image, count_at).ok_or_else(truncated)? as usize;
    let security_entry = dirs_at + CERTIFICATE_TABLE * 8;
    let signatures = if count > CERTIFICATE_TABLE {
        (
            u32_at(image, security_entry).ok_or_else(truncated)?,
            u32_at(image, security_entry + 4).ok_or_else(truncated)?,
        )
    } else {
        (0, 0)
    };
    Ok(PeHeaders {
        machine,
        magic,
        subsystem,
        security_entry,
        signatures,
    })
}

/// The image without its Authenticode signatures (unchanged when it has none).
pub fn strip_signatures(image: &[u8]) -> Result<Vec<u8>, String> {
    let h = headers(image)?;
    let (offset, size) = (h.signatures.0 as usize, h.signatures.1 as usize);
    if size == 0 {
        return Ok(image.to_vec());
    }
    if offset.checked_add(size) != Some(image.len()) {
        return Err(format!(
            "the signatures ({size} bytes at {offset:#x}) are not at the end of the {}-byte image",
            image.len()
        ));
    }
    let mut out = image[..offset].to_vec();
    out[h.security_entry..h.security_entry + 8].fill(0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal PE32+ header with a certificate table of `sig` bytes appended.
    pub fn fake_pe(subsystem: u16, sig: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 0x200];
        b[..2].copy_from_slice(b"MZ");
        b[0x3C..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        b[0x80..0x84].copy_from_slice(b"PE\0\0");
        b[0x84..0x86].copy_from_slice(&MACHINE_X64.to_le_bytes());
        b[0x94..0x96].copy_from_slice(&240u16.to_le_bytes()); // SizeOfOptionalHeader
        let opt = 0x80 + 24;
        b[opt..opt + 2].copy_from_slice(&0x20bu16.to_le_bytes());
        b[opt + 68..opt + 70].copy_from_slice(&subsystem.to_le_bytes());
        b[opt + 108..opt + 112].copy_from_slice(&16u32.to_le_bytes());
        if !sig.is_empty() {
            let entry = opt + 112 + 4 * 8;
            b[entry..entry + 4].copy_from_slice(&0x200u32.to_le_bytes());
            b[entry + 4..entry + 8].copy_from_slice(&(sig.len() as u32).to_le_bytes());
            b.extend_from_slice(sig);
        }
        b
    }

    #[test]
    fn reads_machine_and_subsystem() {
        let h = headers(&fake_pe(SUBSYSTEM_EFI_BOOT_SERVICE_DRIVER, &[])).unwrap();
        assert_eq!(h.machine, MACHINE_X64);
        assert_eq!(h.subsystem, SUBSYSTEM_EFI_BOOT_SERVICE_DRIVER);
        assert_eq!(h.signatures, (0, 0));
    }

    #[test]
    fn strips_signatures_and_clears_the_directory_entry() {
        let signed = fake_pe(SUBSYSTEM_EFI_APPLICATION, &[7u8; 24]);
        let stripped = strip_signatures(&signed).unwrap();
        assert_eq!(stripped.len(), 0x200);
        assert_eq!(headers(&stripped).unwrap().signatures, (0, 0));
        assert_eq!(strip_signatures(&stripped).unwrap(), stripped);
    }

    #[test]
    fn refuses_signatures_that_are_not_at_the_end() {
        let mut signed = fake_pe(SUBSYSTEM_EFI_APPLICATION, &[7u8; 24]);
        signed.extend_from_slice(&[0u8; 8]);
        let err = strip_signatures(&signed).unwrap_err();
        assert!(err.contains("not at the end"), "{err}");
    }

    #[test]
    fn rejects_non_pe() {
        assert!(headers(b"#!/bin/sh\n").unwrap_err().contains("MZ"));
        let mut b = fake_pe(10, &[]);
        b[0x80] = b'X';
        assert!(headers(&b).unwrap_err().contains("no PE\\0\\0 signature"));
    }
}
