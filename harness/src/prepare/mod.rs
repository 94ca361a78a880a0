//! Prepare: the run's test keys, the probe (signed and unsigned) on its ESP folders, the
//! option-ROM driver wrapped in PCI expansion ROMs, the kernel with its signatures taken off and
//! re-signed with the test key, varstores with keys enrolled, and each cell's private copies.
//! Everything is written under the run folder; descriptor templates and the given kernel are
//! only ever read.

pub mod optionrom;
pub mod pe;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use self::optionrom::OPROM_EFI;
use crate::matrix::{Payload, Vars};
use crate::plan::layout::Layout;
use crate::plan::{Artifact, RunSpec};
use crate::tools::{shell_line, OPENSSL, SBSIGN, VIRT_FW_VARS};

/// The probe EFI application, built from `images/probe` by the build script.
pub const PROBE_EFI: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/bootmatrix-probe.efi"));

/// Owner GUID for the certificates bootmatrix enrolls.
const OWNER_GUID: &str = "b0075a7e-0b1e-4c3e-8e57-000000000b07";

/// Artifacts that could not be made, and why.
#[derive(Debug, Default, Clone)]
pub struct Prepared {
    pub failed: BTreeMap<Artifact, String>,
}

impl Prepared {
    /// Why a cell cannot run because something it needs is missing, if so.
    pub fn blocker(&self, spec: &RunSpec) -> Option<String> {
        spec.needs
            .iter()
            .find_map(|a| self.failed.get(a))
            .map(|why| format!("preparing failed: {why}"))
    }
}

/// Makes every artifact, in order; a failure is recorded and the rest go on.
pub fn prepare(artifacts: &[Artifact], layout: &Layout) -> Prepared {
    let mut prepared = Prepared::default();
    for artifact in artifacts {
        let result = if let Some(why) = prerequisite_failure(artifact, &prepared) {
            Err(why)
        } else {
            make(artifact, layout)
        };
        if let Err(why) = result {
            prepared.failed.insert(artifact.clone(), why);
        }
    }
    prepared
}

fn prerequisite_failure(artifact: &Artifact, prepared: &Prepared) -> Option<String> {
    if artifact.needs_test_keys() {
        prepared.failed.get(&Artifact::TestKeys).cloned()
    } else {
        None
    }
}

fn make(artifact: &Artifact, layout: &Layout) -> Result<(), String> {
    match artifact {
        Artifact::TestKeys => make_keys(&layout.keys()),
        Artifact::Probe(payload) => make_probe(layout, *payload),
        Artifact::OptionRom(payload) => make_option_rom(layout, *payload),
        Artifact::Kernel { source, payload } => make_kernel(layout, source, *payload),
        Artifact::Initrd => {
            create_dir(&layout.prepared())?;
            write_file(&layout.initrd(), &empty_cpio())
        }
        Artifact::Varstore {
            template,
            vars,
            out,
        } => make_varstore(&layout.keys(), template, *vars, out),
    }
}

fn create_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

/// Self-signed PK, KEK and db pairs, made fresh for every run: nothing secret is kept.
fn make_keys(dir: &Path) -> Result<(), String> {
    create_dir(dir)?;
    for name in ["PK", "KEK", "db"] {
        let key = dir.join(format!("{name}.key"));
        let crt = dir.join(format!("{name}.crt"));
        let subject = format!("/CN=bootmatrix test {name}/");
        OPENSSL.run(&[
            OsStr::new("req"),
            OsStr::new("-new"),
            OsStr::new("-x509"),
            OsStr::new("-newkey"),
            OsStr::new("rsa:2048"),
            OsStr::new("-nodes"),
            OsStr::new("-sha256"),
            OsStr::new("-days"),
            OsStr::new("3650"),
            OsStr::new("-subj"),
            OsStr::new(&subject),
            OsStr::new("-keyout"),
            key.as_os_str(),
            OsStr::new("-out"),
            crt.as_os_str(),
        ])?;
    }
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Signs `unsigned` with the run's db key into `signed`.
fn sign(layout: &Layout, unsigned: &Path, signed: &Path) -> Result<(), String> {
    let keys = layout.keys();
    SBSIGN.run(&[
        OsStr::new("--key"),
        keys.join("db.key").as_os_str(),
        OsStr::new("--cert"),
        keys.join("db.crt").as_os_str(),
        OsStr::new("--output"),
        signed.as_os_str(),
        unsigned.as_os_str(),
    ])
}

/// Writes the unsigned image (once) and, for `Signed`, its signed copy; returns the one asked.
fn image_pair(
    layout: &Layout,
    payload: Payload,
    path: impl Fn(Payload) -> PathBuf,
    unsigned_bytes: impl FnOnce() -> Result<Vec<u8>, String>,
) -> Result<PathBuf, String> {
    create_dir(&layout.prepared())?;
    let unsigned = path(Payload::Unsigned);
    if !unsigned.exists() {
        write_file(&unsigned, &unsigned_bytes()?)?;
    }
    let image = path(payload);
    if payload == Payload::Signed {
        sign(layout, &unsigned, &image)?;
    }
    Ok(image)
}

fn make_option_rom(layout: &Layout, payload: Payload) -> Result<(), String> {
    let dir = layout.prepared();
    let driver = image_pair(
        layout,
        payload,
        |p| dir.join(format!("oprom-{}.efi", p.as_str())),
        || Ok(OPROM_EFI.to_vec()),
    )?;
    let pe =
        std::fs::read(&driver).map_err(|e| format!("cannot read {}: {e}", driver.display()))?;
    let rom = optionrom::expansion_rom(&pe, optionrom::E1000_VENDOR, optionrom::E1000_DEVICE)
        .map_err(|e| format!("cannot wrap {} into an option ROM: {e}", driver.display()))?;
    write_file(&layout.option_rom(payload), &rom)
}

/// The kernel without any signature it came with (so "unsigned" means signed by no key), and
/// that signed with the test db key.
fn make_kernel(layout: &Layout, source: &Path, payload: Payload) -> Result<(), String> {
    image_pair(
        layout,
        payload,
        |p| layout.kernel(p),
        || {
            let bytes = std::fs::read(source)
                .map_err(|e| format!("cannot read the kernel {}: {e}", source.display()))?;
            pe::strip_signatures(&bytes).map_err(|e| {
                format!(
                    "the kernel {} is not an EFI-stub bzImage: {e}",
                    source.display()
                )
            })
        },
    )
    .map(|_| ())
}

/// A cpio archive (`newc` format) holding nothing but its `TRAILER!!!` record.
pub fn empty_cpio() -> Vec<u8> {
    let name = b"TRAILER!!!\0";
    // magic, then 13 eight-digit hex fields: ino mode uid gid nlink mtime filesize devmajor
    // devminor rdevmajor rdevminor namesize check.
    let mut out = b"070701".to_vec();
    for (i, _) in (0..13).enumerate() {
        let value = match i {
            4 => 1,           // nlink
            11 => name.len(), // namesize, with the NUL
            _ => 0,
        };
        out.extend_from_slice(format!("{value:08X}").as_bytes());
    }
    out.extend_from_slice(name);
    // The header plus name is padded to 4 bytes, the archive to 512.
    out.resize(out.len().div_ceil(4) * 4, 0);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn make_probe(layout: &Layout, payload: Payload) -> Result<(), String> {
    let image = image_pair(
        layout,
        payload,
        |p| layout.probe_efi(p),
        || Ok(PROBE_EFI.to_vec()),
    )?;
    let boot_dir = layout.esp(payload).join("EFI").join("BOOT");
    create_dir(&boot_dir)?;
    let target = boot_dir.join("BOOTX64.EFI");
    std::fs::copy(&image, &target)
        .map(|_| ())
        .map_err(|e| format!("cannot copy the probe to {}: {e}", target.display()))
}

fn make_varstore(keys: &Path, template: &Path, vars: Vars, out: &Path) -> Result<(), String> {
    if let Some(dir) = out.parent() {
        create_dir(dir)?;
    }
    let cert = |name: &str| keys.join(format!("{name}.crt")).into_os_string();
    let (pk, kek, db) = (cert("PK"), cert("KEK"), cert("db"));
    let guid = OsStr::new(OWNER_GUID);
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("-i"),
        template.as_os_str(),
        OsStr::new("-o"),
        out.as_os_str(),
    ];
    match vars {
        Vars::Shipped => return Err("the shipped varstore needs no preparing".into()),
        // --enroll-cert alone leaves db empty; set all three and turn Secure Boot on.
        Vars::OwnKeys => args.extend([
            OsStr::new("--set-pk"),
            guid,
            &pk,
            OsStr::new("--add-kek"),
            guid,
            &kek,
            OsStr::new("--add-db"),
            guid,
            &db,
            OsStr::new("--sb"),
        ]),
        Vars::DbAdded => args.extend([OsStr::new("--add-db"), guid, &db]),
    }
    VIRT_FW_VARS.run(&args)
}

/// Makes the cell's folder, its private copies (writable, whatever the source's mode) and
/// `argv.txt`.
pub fn cell(spec: &RunSpec) -> Result<(), String> {
    create_dir(&spec.dir)?;
    for (source, copy) in &spec.copies {
        std::fs::copy(source, copy).map_err(|e| {
            format!(
                "cannot copy {} to {}: {e}",
                source.display(),
                copy.display()
            )
        })?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(copy, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| format!("cannot make {} writable: {e}", copy.display()))?;
    }
    let argv_txt = spec.dir.join("argv.txt");
    std::fs::write(&argv_txt, shell_line(&spec.argv) + "\n")
        .map_err(|e| format!("cannot write {}: {e}", argv_txt.display()))
}

/// Where `bootmatrix run` writes by default: `./bootmatrix-runs/<UTC timestamp>`.
pub fn default_run_dir() -> PathBuf {
    let now = jiff::Timestamp::now().as_second();
    PathBuf::from("bootmatrix-runs").join(utc_stamp(u64::try_from(now).unwrap_or(0)))
}

/// `20261126-143000` for a Unix time (UTC).
pub fn utc_stamp(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .unwrap_or(jiff::Timestamp::MAX)
        .strftime("%Y%m%d-%H%M%S")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_cpio_is_a_lone_trailer() {
        let cpio = empty_cpio();
        assert_eq!(cpio.len(), 512);
        assert_eq!(&cpio[..6], b"070701");
        // namesize (field 12) is 11: "TRAILER!!!" and its NUL, right after the 110-byte header.
        assert_eq!(&cpio[6 + 11 * 8..6 + 12 * 8], b"0000000B");
        assert_eq!(&cpio[110..121], b"TRAILER!!!\0");
        assert!(cpio[121..].iter().all(|&b| b == 0));
    }

    #[test]
    fn stamps_known_dates() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        assert_eq!(utc_stamp(1_795_703_400), "20261126-143000");
        assert_eq!(utc_stamp(951_782_400), "20000229-000000");
        assert_eq!(utc_stamp(4_102_444_799), "20991231-235959");
    }

    #[test]
    fn cell_copies_are_private_and_writable() {
        let dir = tempfile::tempdir().unwrap();
        let template = dir.path().join("VARS.fd");
        std::fs::write(&template, b"template").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&template, std::fs::Permissions::from_mode(0o444)).unwrap();
        let cell_dir = dir.path().join("cells/x");
        let spec = RunSpec {
            check: crate::matrix::Check::SecureBoot,
            targets: Default::default(),
            grace: std::time::Duration::from_secs(1),
            argv: vec!["qemu".into()],
            dir: cell_dir.clone(),
            copies: vec![(template.clone(), cell_dir.join("vars.fd"))],
            debug_log: None,
            deadline: std::time::Duration::from_secs(1),
            needs: vec![],
        };
        cell(&spec).unwrap();
        std::fs::write(cell_dir.join("vars.fd"), b"guest wrote").unwrap();
        assert_eq!(std::fs::read(&template).unwrap(), b"template");
        assert_eq!(
            std::fs::read_to_string(cell_dir.join("argv.txt")).unwrap(),
            "qemu\n"
        );
    }
}
