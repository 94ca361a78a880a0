//! Just enough PE/COFF to check what an image is and to take its signatures off.
//!
//! Offsets per the Microsoft PE format: `e_lfanew` at 0x3C points at `PE\0\0`, followed by the
//! 20-byte COFF header and the optional header, whose data directory 4 (the certificate table)
//! holds a file offset and size of the Authenticode signatures, which sit at the end of the file.
//!
//! # Why this is written here
//!
//! Considered: `goblin` and `object` (PE parsers) and `authenticode` (the Authenticode digest,
//! on top of `object`). Both parsers only read, and taking the signatures off is a write: cut
//! the file at the certificate table and zero its directory entry, which needs nothing but the
//! header fields read here. `goblin`'s `pe_authenticode` feature and the `authenticode` crate
//! compute the same digest as [`authenticode_sha256`], but the latter always brings an RSA,
//! X.509 and CMS stack, and either would give the stripper and the digest two readings of the
//! same headers, with error texts bootmatrix does not choose for a kernel that is not a PE. The
//! digest here is tested against a known answer and against `sbsign`, which must leave it
//! unchanged.

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
    /// File offset and length of the optional header.
    optional: usize,
    optional_len: usize,
    /// NumberOfSections, from the COFF header.
    sections: u16,
    /// NumberOfRvaAndSizes: the certificate table's entry exists when it is above 4.
    directories: usize,
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
    let sections = u16_at(image, coff + 2).ok_or_else(truncated)?;
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
        optional,
        optional_len,
        sections,
        directories: count,
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

/// Offsets in the optional header, the same in PE32 and PE32+.
const SIZE_OF_HEADERS_AT: usize = 60;
const CHECKSUM_AT: usize = 64;
/// A section header: SizeOfRawData at 16, PointerToRawData at 20.
const SECTION_HEADER_LEN: usize = 40;

/// The PE Authenticode SHA-256 digest of `image`: what a signature signs and what db and dbx
/// hold as `EFI_CERT_SHA256` entries. Per Microsoft's "Windows Authenticode Portable Executable
/// Signature Format": the headers up to SizeOfHeaders without the CheckSum field and the
/// certificate table's directory entry, the sections' raw data in file order, then whatever
/// follows them up to the certificate table (or the end of the file). Signing with sbsign does
/// not change it, as long as the image's length is a multiple of 8 (sbsign pads it first).
pub fn authenticode_sha256(image: &[u8]) -> Result<[u8; 32], String> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for range in authenticode_ranges(image)? {
        // Every range was checked against the image's length.
        hasher.update(image.get(range).ok_or("internal: unchecked range")?);
    }
    Ok(hasher.finalize().into())
}

/// The file ranges the Authenticode digest covers, in hashing order, each within `image`.
fn authenticode_ranges(image: &[u8]) -> Result<Vec<std::ops::Range<usize>>, String> {
    let h = headers(image)?;
    let len = image.len();
    let truncated = |what: &str| format!("truncated PE image ({len} bytes): no {what}");
    if h.optional_len < CHECKSUM_AT + 4 {
        return Err(format!(
            "PE optional header of {} bytes is too short to hold the checksum",
            h.optional_len
        ));
    }
    let checksum = h.optional + CHECKSUM_AT;
    let size_of_headers = u32_at(image, h.optional + SIZE_OF_HEADERS_AT)
        .ok_or_else(|| truncated("SizeOfHeaders"))? as usize;
    if size_of_headers > len || size_of_headers < checksum + 4 {
        return Err(format!(
            "SizeOfHeaders {size_of_headers:#x} does not fit a {len}-byte image whose checksum \
             ends at {:#x}",
            checksum + 4
        ));
    }
    let mut ranges = Vec::with_capacity(4 + usize::from(h.sections));
    ranges.push(0..checksum);
    let has_entry = h.directories > CERTIFICATE_TABLE;
    if has_entry {
        let entry_end = h.security_entry + 8;
        if entry_end > h.optional + h.optional_len || entry_end > size_of_headers {
            return Err(format!(
                "the certificate table's directory entry (ending at {entry_end:#x}) lies \
                 outside the optional header or SizeOfHeaders {size_of_headers:#x}"
            ));
        }
        ranges.push(checksum + 4..h.security_entry);
        ranges.push(entry_end..size_of_headers);
    } else {
        ranges.push(checksum + 4..size_of_headers);
    }

    // The sections with raw data, in the order of their file offsets.
    let table = h.optional + h.optional_len;
    let mut sections = Vec::with_capacity(usize::from(h.sections));
    for i in 0..usize::from(h.sections) {
        let at = table + i * SECTION_HEADER_LEN;
        let size = u32_at(image, at + 16).ok_or_else(|| truncated("section table"))? as usize;
        let start = u32_at(image, at + 20).ok_or_else(|| truncated("section table"))? as usize;
        if size == 0 {
            continue;
        }
        let end = start
            .checked_add(size)
            .filter(|&end| end <= len)
            .ok_or_else(|| {
                format!(
                    "section {i} ({size} bytes at {start:#x}) runs past the end of the \
                     {len}-byte image"
                )
            })?;
        sections.push(start..end);
    }
    sections.sort_by_key(|r| r.start);
    // SUM_OF_BYTES_HASHED: the bytes after it are the "extra data" (edk2 counts the same way).
    let mut hashed = size_of_headers;
    for section in sections {
        hashed += section.len(); // each <= len, at most 65535 of them: no overflow
        ranges.push(section);
    }

    let (cert_at, cert_size) = (h.signatures.0 as usize, h.signatures.1 as usize);
    let end = if has_entry && cert_size != 0 {
        if cert_at.checked_add(cert_size) != Some(len) {
            return Err(format!(
                "the signatures ({cert_size} bytes at {cert_at:#x}) are not at the end of the \
                 {len}-byte image"
            ));
        }
        if cert_at < hashed {
            return Err(format!(
                "the signatures at {cert_at:#x} overlap the headers and sections ({hashed:#x} \
                 bytes)"
            ));
        }
        cert_at
    } else {
        len
    };
    if hashed < end {
        ranges.push(hashed..end);
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal PE32+ header with a certificate table of `sig` bytes appended.
    pub(super) fn fake_pe(subsystem: u16, sig: &[u8]) -> Vec<u8> {
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

#[cfg(test)]
mod authenticode_tests {
    use super::tests::fake_pe;
    use super::*;

    /// [`fake_pe`] with SizeOfHeaders 0x200, a checksum, and three sections listed out of file
    /// order (one without raw data at offset 0, as Rust's EFI images have), then 16 bytes of
    /// trailing data.
    fn pe_with_sections() -> Vec<u8> {
        let mut b = fake_pe(SUBSYSTEM_EFI_APPLICATION, &[]);
        let opt = 0x80 + 24;
        b[opt + 60..opt + 64].copy_from_slice(&0x200u32.to_le_bytes());
        b[opt + 64..opt + 68].copy_from_slice(&0xdead_beefu32.to_le_bytes());
        b[0x86..0x88].copy_from_slice(&3u16.to_le_bytes());
        let table = opt + 240;
        for (i, (name, start, size)) in [
            (b".rdata\0\0", 0x400u32, 0x200u32),
            (b".data\0\0\0", 0, 0),
            (b".text\0\0\0", 0x200, 0x200),
        ]
        .into_iter()
        .enumerate()
        {
            let at = table + i * SECTION_HEADER_LEN;
            b[at..at + 8].copy_from_slice(name);
            b[at + 16..at + 20].copy_from_slice(&size.to_le_bytes());
            b[at + 20..at + 24].copy_from_slice(&start.to_le_bytes());
        }
        b.extend((0..0x400u32).map(|i| (i * 7 + i / 256) as u8));
        b.extend_from_slice(b"trailing data...");
        b
    }

    fn hex(digest: [u8; 32]) -> String {
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// `image` with a certificate table of `sig` bytes appended (at an 8-byte boundary) and the
    /// checksum changed, as a signing tool leaves it.
    fn with_signature(image: &[u8], sig: &[u8]) -> Vec<u8> {
        let h = headers(image).unwrap();
        let mut b = image.to_vec();
        b.resize(b.len().div_ceil(8) * 8, 0);
        let at = b.len() as u32;
        b[h.security_entry..h.security_entry + 4].copy_from_slice(&at.to_le_bytes());
        b[h.security_entry + 4..h.security_entry + 8]
            .copy_from_slice(&(sig.len() as u32).to_le_bytes());
        b[h.optional + CHECKSUM_AT..h.optional + CHECKSUM_AT + 4].copy_from_slice(&[1, 2, 3, 4]);
        b.extend_from_slice(sig);
        b
    }

    #[test]
    fn known_answer_for_a_synthetic_image() {
        // The same figure from virt-firmware's pe_authenticode_hash, from the digest sbsign
        // signs, and from `osslsigncode verify` on that signed copy.
        let image = pe_with_sections();
        assert_eq!(
            hex(authenticode_sha256(&image).unwrap()),
            "da54addeeffd70f2a69ce5e1194faa7e29b03a2dfe870517946454d99dff02d6"
        );
        // Neither the checksum, the certificate entry nor the signatures count.
        let signed = with_signature(&image, &[0x5a; 40]);
        assert_eq!(
            authenticode_sha256(&signed).unwrap(),
            authenticode_sha256(&image).unwrap()
        );
        // Every other byte does: the headers, a section, the trailing data.
        for at in [0x10, 0x250, image.len() - 1] {
            let mut changed = image.clone();
            changed[at] ^= 1;
            assert_ne!(
                authenticode_sha256(&changed).unwrap(),
                authenticode_sha256(&image).unwrap(),
                "byte {at:#x}"
            );
        }
    }

    #[test]
    fn signing_the_probe_with_sbsign_keeps_its_digest() {
        use crate::tools::{OPENSSL, SBSIGN};
        use std::ffi::OsStr;
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name).into_os_string();
        let (key, crt, unsigned, signed) = (
            path("db.key"),
            path("db.crt"),
            path("probe.efi"),
            path("probe-signed.efi"),
        );
        std::fs::write(&unsigned, crate::prepare::PROBE_EFI).unwrap();
        let args = [
            "req",
            "-new",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-days",
            "1",
            "-subj",
            "/CN=bootmatrix pe test/",
            "-keyout",
        ];
        let mut openssl: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        openssl.extend([key.as_os_str(), OsStr::new("-out"), crt.as_os_str()]);
        OPENSSL.run(&openssl).unwrap();
        SBSIGN
            .run(&[
                OsStr::new("--key"),
                &key,
                OsStr::new("--cert"),
                &crt,
                OsStr::new("--output"),
                &signed,
                &unsigned,
            ])
            .unwrap();
        let signed = std::fs::read(&signed).unwrap();
        assert_ne!(headers(&signed).unwrap().signatures.1, 0);

        let digest = authenticode_sha256(crate::prepare::PROBE_EFI).unwrap();
        assert_eq!(authenticode_sha256(&signed).unwrap(), digest);
        // sbsign computed the digest itself and put it into the signature it made.
        let certificates = &signed[headers(&signed).unwrap().signatures.0 as usize..];
        assert!(
            certificates.windows(32).any(|w| w == digest),
            "the signature does not carry the digest {}",
            hex(digest)
        );
        // Taking the signature off again (sbsign's checksum stays) keeps it too.
        let stripped = strip_signatures(&signed).unwrap();
        assert_eq!(stripped.len(), crate::prepare::PROBE_EFI.len());
        assert_eq!(authenticode_sha256(&stripped).unwrap(), digest);
    }

    /// Every range lies within the image, or the image is refused: never a panic.
    fn check_bounded(image: &[u8]) -> bool {
        match authenticode_ranges(image) {
            Ok(ranges) => {
                assert!(
                    ranges
                        .iter()
                        .all(|r| r.start <= r.end && r.end <= image.len()),
                    "{ranges:?} for {} bytes",
                    image.len()
                );
                true
            }
            Err(_) => false,
        }
    }

    #[test]
    fn truncated_and_garbage_images_are_refused_without_panicking() {
        let probe = crate::prepare::PROBE_EFI;
        // The probe's last section ends at the end of the file: every prefix lacks something.
        for len in 0..probe.len() {
            assert!(
                authenticode_sha256(&probe[..len]).is_err(),
                "{len}-byte prefix"
            );
        }
        assert!(authenticode_sha256(b"").unwrap_err().contains("MZ"));
        assert!(authenticode_sha256(&[0xffu8; 4096]).is_err());

        // Hostile values in every field that is an offset, a size or a count.
        let h = headers(probe).unwrap();
        let table = h.optional + h.optional_len;
        let coff = h.optional - 20;
        for (at, width) in [
            (0x3C, 4),                                // e_lfanew
            (coff + 2, 2),                            // NumberOfSections
            (coff + 16, 2),                           // SizeOfOptionalHeader
            (h.optional + 60, 4),                     // SizeOfHeaders
            (h.optional + 108, 4),                    // NumberOfRvaAndSizes
            (h.security_entry, 4),                    // certificate table offset
            (h.security_entry + 4, 4),                // certificate table size
            (table + 16, 4),                          // SizeOfRawData
            (table + 20, 4),                          // PointerToRawData
            (table + 3 * SECTION_HEADER_LEN + 20, 4), // the last section's PointerToRawData
        ] {
            for value in [
                0u32,
                1,
                4,
                0x7f,
                0x200,
                0x2dff,
                0x2e00,
                0xffff,
                u32::MAX - 7,
                u32::MAX,
            ] {
                let mut b = probe.to_vec();
                b[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
                check_bounded(&b);
                let signed = with_signature(probe, &[0; 16]);
                let mut s = signed.clone();
                s[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
                check_bounded(&s);
            }
        }
        // And every single byte of the headers set to 0x00 and 0xff.
        for at in 0..0x400 {
            for value in [0u8, 0xff] {
                let mut b = probe.to_vec();
                b[at] = value;
                check_bounded(&b);
            }
        }
        // Signatures that are not at the end, or that overlap the sections.
        let mut signed = with_signature(probe, &[0; 16]);
        signed.extend_from_slice(&[0; 8]);
        assert!(authenticode_sha256(&signed)
            .unwrap_err()
            .contains("not at the end"));
        // The last 0x200 bytes of the image (the end of its last section) named as signatures.
        let mut overlap = probe.to_vec();
        let tail = u32::try_from(probe.len() - 0x200).unwrap();
        overlap[h.security_entry..h.security_entry + 4].copy_from_slice(&tail.to_le_bytes());
        overlap[h.security_entry + 4..h.security_entry + 8]
            .copy_from_slice(&0x200u32.to_le_bytes());
        assert!(authenticode_sha256(&overlap)
            .unwrap_err()
            .contains("overlap"));
    }
}
