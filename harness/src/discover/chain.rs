//! A Debian suite's signed boot chain, as `ci/setup` (the machine's own suite) and
//! `ci/debian-matrix` (other suites) unpack it: a folder with
//!
//! - `shimx64.efi.signed` (shim-signed, signed by Microsoft's UEFI CA),
//! - `grubx64.efi.signed` (grub-efi-amd64-signed, signed by Debian),
//! - `vmlinuz` (the signed kernel of `linux-image-amd64`),
//! - `.bootmatrix-chain`: `suite NAME`, then one `PACKAGE VERSION` line per component, written
//!   last, so a folder without it is incomplete.
//!
//! Also read here, from the binaries themselves: grub's `.sbat` section (the generations it
//! claims) and shim's `.sbatlevel` section (the revocations it applies; shim's default policy,
//! `automatic`, applies the first, "previous", one).

use std::path::{Path, PathBuf};

use sha2::Digest;

use crate::matrix::Suite;
use crate::tools::{read_input, KERNEL_LIMIT};

/// The file that says a chain folder is complete.
pub const MARKER: &str = ".bootmatrix-chain";
const SHIM: &str = "shimx64.efi.signed";
const GRUB: &str = "grubx64.efi.signed";
const KERNEL: &str = "vmlinuz";
/// The most read of the marker.
const MARKER_LIMIT: u64 = 64 * 1024;

/// One binary of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    pub path: PathBuf,
    /// `shim-signed 1.51~1+deb12u1+16.1-2~deb12u1`, from the marker.
    pub package: String,
    pub sha256: String,
}

/// `grub,5`: a component name and its generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbatEntry {
    pub component: String,
    pub generation: u32,
}

/// A revocation level: `sbat,1,2025021800` then the minimum generations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbatLevel {
    /// `2025021800`.
    pub date: String,
    pub minimum: Vec<SbatEntry>,
}

impl SbatLevel {
    /// The entries of `sbat` (an image's `.sbat`) below this level's minimum: why shim
    /// refuses the image.
    pub fn revokes(&self, sbat: &[SbatEntry]) -> Vec<String> {
        sbat.iter()
            .filter_map(|e| {
                let min = self.minimum.iter().find(|m| m.component == e.component)?;
                (e.generation < min.generation).then(|| {
                    format!(
                        "{},{} is below {},{} of SBAT level {}",
                        e.component, e.generation, min.component, min.generation, self.date
                    )
                })
            })
            .collect()
    }
}

/// A suite's chain, checked and identified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistroChain {
    pub suite: Suite,
    pub dir: PathBuf,
    pub shim: Component,
    pub grub: Component,
    pub kernel: Component,
    /// grub's `.sbat` entries.
    pub grub_sbat: Vec<SbatEntry>,
    /// The level shim applies by default (the first of its `.sbatlevel`), if it has one.
    pub shim_level: Option<SbatLevel>,
}

/// Reads the chain in `dir`. Every error names the folder and the file.
pub fn load(dir: &Path) -> Result<DistroChain, String> {
    let shown = |p: &Path| crate::tools::shown_name(p.as_os_str());
    let marker_path = dir.join(MARKER);
    let marker = read_input(&marker_path, MARKER_LIMIT).map_err(|e| {
        format!(
            "{}: {e} (an incomplete chain: run the provisioning again)",
            shown(&marker_path)
        )
    })?;
    let marker = String::from_utf8_lossy(&marker);
    let mut suite = None;
    let mut packages = Vec::new();
    for line in marker.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.split_once(' ') {
            Some(("suite", name)) => {
                suite = Some(
                    name.trim()
                        .parse::<Suite>()
                        .map_err(|e| format!("{}: {e}", shown(&marker_path)))?,
                )
            }
            Some((package, version)) => packages.push(format!("{package} {}", version.trim())),
            None => return Err(format!("{}: unreadable line {line:?}", shown(&marker_path))),
        }
    }
    let suite = suite.ok_or_else(|| format!("{}: no `suite NAME` line", shown(&marker_path)))?;
    let package_of = |prefix: &str| {
        packages
            .iter()
            .find(|p| p.starts_with(prefix))
            .cloned()
            .unwrap_or_default()
    };
    let component = |name: &str, package: String| -> Result<(Component, Vec<u8>), String> {
        let path = dir.join(name);
        let bytes =
            read_input(&path, KERNEL_LIMIT).map_err(|e| format!("{}: {e}", shown(&path)))?;
        Ok((
            Component {
                path,
                package,
                sha256: super::varstore::hex(&sha2::Sha256::digest(&bytes)),
            },
            bytes,
        ))
    };
    let (shim, shim_bytes) = component(SHIM, package_of("shim-signed "))?;
    let (grub, grub_bytes) = component(GRUB, package_of("grub-efi-amd64-signed "))?;
    let (kernel, _) = component(KERNEL, package_of("linux-image-"))?;
    let grub_sbat = section(&grub_bytes, ".sbat")
        .map(|s| parse_sbat(&s))
        .ok_or_else(|| format!("{}: no .sbat section", shown(&grub.path)))?;
    let shim_level = section(&shim_bytes, ".sbatlevel").and_then(|s| first_level(&s));
    Ok(DistroChain {
        suite,
        dir: dir.to_path_buf(),
        shim,
        grub,
        kernel,
        grub_sbat,
        shim_level,
    })
}

/// The bytes of a PE image's section `name`, if it has one.
pub fn section(image: &[u8], name: &str) -> Option<Vec<u8>> {
    let u16_at = |o: usize| {
        image
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |o: usize| {
        image
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    if image.get(..2)? != b"MZ" {
        return None;
    }
    let pe = u32_at(0x3c)? as usize;
    if image.get(pe..pe + 4)? != b"PE\0\0" {
        return None;
    }
    let sections = u16_at(pe + 6)? as usize;
    let optional = u16_at(pe + 20)? as usize;
    let table = pe + 24 + optional;
    // Names longer than 8 bytes (`.sbatlevel`) are `/N`: offset N into the COFF string table,
    // which follows the symbol table.
    let strings = u32_at(pe + 12)? as usize + u32_at(pe + 16)? as usize * 18;
    let long_name = |raw: &[u8]| -> Option<Vec<u8>> {
        let offset: usize = std::str::from_utf8(raw.strip_prefix(b"/")?)
            .ok()?
            .parse()
            .ok()?;
        let at = strings.checked_add(offset)?;
        let rest = image.get(at..at.checked_add(64)?.min(image.len()))?;
        Some(rest[..rest.iter().position(|b| *b == 0)?].to_vec())
    };
    (0..sections.min(96)).find_map(|i| {
        let entry = table + i * 40;
        let raw_name = image.get(entry..entry + 8)?;
        let end = raw_name.iter().position(|b| *b == 0).unwrap_or(8);
        let full = long_name(&raw_name[..end]).unwrap_or_else(|| raw_name[..end].to_vec());
        if full != name.as_bytes() {
            return None;
        }
        let virtual_size = u32_at(entry + 8)? as usize;
        let raw_size = u32_at(entry + 16)? as usize;
        let raw_at = u32_at(entry + 20)? as usize;
        let len = if virtual_size == 0 {
            raw_size
        } else {
            virtual_size.min(raw_size)
        };
        image
            .get(raw_at..raw_at.checked_add(len)?)
            .map(<[u8]>::to_vec)
    })
}

/// `.sbat` CSV: `component,generation,...` per line (NUL padding ignored).
pub fn parse_sbat(bytes: &[u8]) -> Vec<SbatEntry> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter_map(|line| {
            let mut fields = line.trim_matches(char::from(0)).trim().split(',');
            let component = fields.next()?.trim().to_string();
            let generation = fields.next()?.trim().parse().ok()?;
            (!component.is_empty()).then_some(SbatEntry {
                component,
                generation,
            })
        })
        .collect()
}

/// shim's `.sbatlevel`: a version word and two offsets (previous, latest), each to a
/// NUL-terminated level text `sbat,1,DATE\ncomponent,gen\n...`. The first is the one shim's
/// default policy applies.
fn first_level(bytes: &[u8]) -> Option<SbatLevel> {
    let u32_at = |o: usize| {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let previous = u32_at(4)? + 4;
    let text = bytes.get(previous..)?;
    let end = text.iter().position(|b| *b == 0).unwrap_or(text.len());
    let entries = parse_level_text(&text[..end]);
    let (head, minimum) = entries.split_first()?;
    (head.0 == "sbat").then(|| SbatLevel {
        date: head.2.clone(),
        minimum: minimum
            .iter()
            .map(|(c, g, _)| SbatEntry {
                component: c.clone(),
                generation: *g,
            })
            .collect(),
    })
}

fn parse_level_text(bytes: &[u8]) -> Vec<(String, u32, String)> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter_map(|line| {
            let mut f = line.trim().split(',');
            let c = f.next()?.trim().to_string();
            let g = f.next()?.trim().parse().ok()?;
            Some((c, g, f.next().unwrap_or_default().trim().to_string()))
        })
        .collect()
}

/// Where the provisioning puts `suite`'s chain: `$XDG_CACHE_HOME/bootmatrix/debian/SUITE/chain`.
pub fn cached_dir(suite: &str) -> Option<PathBuf> {
    Some(super::cache_dir()?.join("debian").join(suite).join("chain"))
}

/// The machine's own Debian suite (`VERSION_CODENAME` of /etc/os-release).
pub fn host_suite() -> Option<String> {
    let text = read_input(Path::new("/etc/os-release"), MARKER_LIMIT).ok()?;
    String::from_utf8_lossy(&text).lines().find_map(|l| {
        l.strip_prefix("VERSION_CODENAME=")
            .map(|v| v.trim().trim_matches('"').to_string())
    })
}

/// The chains of a run: each `--chain DIR`, else the machine's own suite's, fetched by
/// `ci/setup`. The error is the distro-chain cells' skip reason.
pub fn find(explicit: &[PathBuf]) -> Result<Vec<DistroChain>, String> {
    if !explicit.is_empty() {
        let mut chains: Vec<DistroChain> = Vec::new();
        for dir in explicit {
            let chain = load(dir).map_err(|e| format!("--chain: {e}"))?;
            if let Some(other) = chains.iter().find(|c| c.suite == chain.suite) {
                return Err(format!(
                    "--chain: {} and {} are both {}'s chain",
                    other.dir.display(),
                    dir.display(),
                    chain.suite
                ));
            }
            chains.push(chain);
        }
        chains.sort_by_key(|c| c.suite);
        return Ok(chains);
    }
    let suite = host_suite().unwrap_or_else(|| "bookworm".into());
    let dir = cached_dir(&suite)
        .ok_or_else(|| "no distro chain: neither XDG_CACHE_HOME nor HOME is set".to_string())?;
    load(&dir).map(|c| vec![c]).map_err(|e| {
        format!(
            "no distro chain: pass --chain DIR, or run ./ci/setup, which fetches {suite}'s \
             shim-signed, grub-efi-amd64-signed and signed kernel ({e})"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PE image with one section of `data` named `name`.
    fn pe_with(name: &str, data: &[u8]) -> Vec<u8> {
        let mut image = vec![0u8; 0x200];
        image[..2].copy_from_slice(b"MZ");
        image[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
        image[0x40..0x44].copy_from_slice(b"PE\0\0");
        image[0x46..0x48].copy_from_slice(&1u16.to_le_bytes());
        image[0x54..0x56].copy_from_slice(&0u16.to_le_bytes());
        let entry = 0x40 + 24;
        image[entry..entry + name.len()].copy_from_slice(name.as_bytes());
        image[entry + 8..entry + 12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        image[entry + 16..entry + 20].copy_from_slice(&(data.len() as u32).to_le_bytes());
        image[entry + 20..entry + 24].copy_from_slice(&0x200u32.to_le_bytes());
        image.extend_from_slice(data);
        image
    }

    /// `.sbatlevel` is longer than 8 bytes: the header says `/4`, the string table the rest.
    #[test]
    fn long_section_names_come_from_the_string_table() {
        let mut image = pe_with("/4", b"sbat-level-bytes");
        let strings = image.len() as u32;
        image[0x40 + 12..0x40 + 16].copy_from_slice(&strings.to_le_bytes());
        image[0x40 + 16..0x40 + 20].copy_from_slice(&0u32.to_le_bytes());
        image.extend_from_slice(&[0, 0, 0, 0]);
        image.extend_from_slice(b".sbatlevel\0");
        assert_eq!(section(&image, ".sbatlevel").unwrap(), b"sbat-level-bytes");
        assert!(section(&image, "/4").is_none());
    }

    const BULLSEYE_GRUB: &str = "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\ngrub,4,Free Software Foundation,grub,2.06,https://www.gnu.org/software/grub/\ngrub.debian,4,Debian,grub2,2.06-3~deb11u6,https://tracker.debian.org/pkg/grub2\n\0\0";

    #[test]
    fn grubs_sbat_is_read_from_its_section() {
        let image = pe_with(".sbat", BULLSEYE_GRUB.as_bytes());
        let sbat = parse_sbat(&section(&image, ".sbat").unwrap());
        let gens: Vec<(&str, u32)> = sbat
            .iter()
            .map(|e| (e.component.as_str(), e.generation))
            .collect();
        assert_eq!(gens, [("sbat", 1), ("grub", 4), ("grub.debian", 4)]);
        assert!(section(&image, ".text").is_none());
        assert!(section(b"not a PE image", ".sbat").is_none());
        assert!(section(&image[..0x50], ".sbat").is_none(), "cut short");
    }

    /// bookworm's shim 16.1: previous 2025021800 (shim,4 grub,5), latest 2025051000.
    #[test]
    fn shims_default_level_is_the_first_and_revokes_older_grubs() {
        let previous = b"sbat,1,2025021800\nshim,4\ngrub,5\n\0";
        let latest = b"sbat,1,2025051000\nshim,4\ngrub,5\ngrub.proxmox,2\n\0";
        let mut level = Vec::new();
        level.extend_from_slice(&0u32.to_le_bytes());
        level.extend_from_slice(&8u32.to_le_bytes());
        level.extend_from_slice(&(8 + previous.len() as u32).to_le_bytes());
        level.extend_from_slice(previous);
        level.extend_from_slice(latest);
        let l = first_level(&level).unwrap();
        assert_eq!(l.date, "2025021800");
        assert_eq!(l.minimum.len(), 2);
        let old_grub = parse_sbat(BULLSEYE_GRUB.as_bytes());
        assert_eq!(
            l.revokes(&old_grub),
            ["grub,4 is below grub,5 of SBAT level 2025021800"]
        );
        let new_grub = parse_sbat(b"sbat,1,x\ngrub,5,y\ngrub.debian,5,z\n");
        assert!(l.revokes(&new_grub).is_empty());
    }

    #[test]
    fn a_folder_without_its_marker_is_incomplete() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(dir.path()).unwrap_err();
        assert!(err.contains(MARKER) && err.contains("incomplete"), "{err}");
        std::fs::write(dir.path().join(MARKER), "suite buster\n").unwrap();
        let err = load(dir.path()).unwrap_err();
        assert!(err.contains("unknown Debian suite \"buster\""), "{err}");
        std::fs::write(dir.path().join(MARKER), "suite bookworm\n").unwrap();
        let err = load(dir.path()).unwrap_err();
        assert!(err.contains(SHIM), "{err}");
    }
}
