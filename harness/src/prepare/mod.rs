//! Prepare: the run's test keys, the probe (signed and unsigned) on its ESP folders, the
//! option-ROM driver wrapped in PCI expansion ROMs, the kernel with its signatures taken off and
//! re-signed with the test key, varstores with keys enrolled, and each cell's private copies.
//! Everything is written under the run folder; descriptor templates and the given kernel are
//! only ever read.

pub mod chain;
pub mod measure;
pub mod optionrom;
pub mod pe;
pub mod standin;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};

use self::optionrom::OPROM_EFI;
use crate::matrix::{Payload, Vars};
use crate::plan::layout::Layout;
use crate::plan::{Artifact, RunSpec};
use crate::tools::{
    open_input, read_input, shell_line, InputError, ToolError, FIRMWARE_LIMIT, KERNEL_LIMIT,
    OPENSSL, SBSIGN, VIRT_FW_VARS,
};

/// The probe EFI application, built from `images/probe` by the build script.
pub const PROBE_EFI: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/bootmatrix-probe.efi"));

/// Owner GUID for the certificates bootmatrix enrolls.
const OWNER_GUID: &str = "b0075a7e-0b1e-4c3e-8e57-000000000b07";

/// Why an artifact or a cell's folder could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// A file or folder could not be made, read or written: `cannot create DIR: ...`.
    #[error("cannot {action} {}: {source}", .path.display())]
    File {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot copy {} to {}: {source}", .from.display(), .to.display())]
    Copy {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot make {} writable: {source}", .path.display())]
    MakeWritable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// openssl, sbsign or virt-fw-vars is missing or failed.
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error("the kernel {} is not an EFI-stub bzImage: {reason}", .path.display())]
    NotEfiStub { path: PathBuf, reason: String },
    #[error("cannot wrap {} into an option ROM: {reason}", .driver.display())]
    OptionRom { driver: PathBuf, reason: String },
    #[error("the shipped varstore needs no preparing")]
    ShippedVarstore,
    /// A file bootmatrix was given (kernel, varstore template) is not a regular file of a
    /// sane size: `cannot use the kernel /dev/zero: not a regular file but a character device`.
    #[error("cannot use {what} {}: {source}", .path.display())]
    Input {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: InputError,
    },
}

/// `PrepareError::Input` for `what` (`the kernel`) at `path`.
fn input_error(what: &'static str, path: &Path) -> impl FnOnce(InputError) -> PrepareError {
    let path = path.to_path_buf();
    move |source| PrepareError::Input { what, path, source }
}

/// `PrepareError::File` for `action` (`create`, `write`, `read`) on `path`.
fn file_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PrepareError {
    let path = path.to_path_buf();
    move |source| PrepareError::File {
        action,
        path,
        source,
    }
}

/// Artifacts that could not be made, and why (in words, for the reports).
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
            make(artifact, layout).map_err(|e| e.to_string())
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

fn make(artifact: &Artifact, layout: &Layout) -> Result<(), PrepareError> {
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
        Artifact::ChainEsp {
            chain,
            shim,
            grub,
            kernel,
        } => chain::make_chain_esp(
            layout,
            &layout.chain_esp(artifact),
            chain,
            shim,
            grub,
            kernel,
        ),
    }
}

fn create_dir(dir: &Path) -> Result<(), PrepareError> {
    std::fs::create_dir_all(dir).map_err(file_error("create", dir))
}

/// Self-signed PK, KEK and db pairs, made fresh for every run: nothing secret is kept.
fn make_keys(dir: &Path) -> Result<(), PrepareError> {
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

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), PrepareError> {
    std::fs::write(path, bytes).map_err(file_error("write", path))
}

/// Signs `unsigned` with the run's db key into `signed`.
fn sign(layout: &Layout, unsigned: &Path, signed: &Path) -> Result<(), PrepareError> {
    let keys = layout.keys();
    SBSIGN.run(&[
        OsStr::new("--key"),
        keys.join("db.key").as_os_str(),
        OsStr::new("--cert"),
        keys.join("db.crt").as_os_str(),
        OsStr::new("--output"),
        signed.as_os_str(),
        unsigned.as_os_str(),
    ])?;
    Ok(())
}

/// Writes the unsigned image (once) and, for `Signed`, its signed copy; returns the one asked.
fn image_pair(
    layout: &Layout,
    payload: Payload,
    path: impl Fn(Payload) -> PathBuf,
    unsigned_bytes: impl FnOnce() -> Result<Vec<u8>, PrepareError>,
) -> Result<PathBuf, PrepareError> {
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

fn make_option_rom(layout: &Layout, payload: Payload) -> Result<(), PrepareError> {
    let dir = layout.prepared();
    let driver = image_pair(
        layout,
        payload,
        |p| dir.join(format!("oprom-{}.efi", p.as_str())),
        || Ok(OPROM_EFI.to_vec()),
    )?;
    let pe = std::fs::read(&driver).map_err(file_error("read", &driver))?;
    let rom = optionrom::expansion_rom(&pe, optionrom::E1000_VENDOR, optionrom::E1000_DEVICE)
        .map_err(|reason| PrepareError::OptionRom {
            driver: driver.clone(),
            reason,
        })?;
    write_file(&layout.option_rom(payload), &rom)
}

/// The kernel without any signature it came with (so "unsigned" means signed by no key), and
/// that signed with the test db key.
fn make_kernel(layout: &Layout, source: &Path, payload: Payload) -> Result<(), PrepareError> {
    image_pair(
        layout,
        payload,
        |p| layout.kernel(p),
        || {
            let bytes =
                read_input(source, KERNEL_LIMIT).map_err(input_error("the kernel", source))?;
            pe::strip_signatures(&bytes).map_err(|reason| PrepareError::NotEfiStub {
                path: source.to_path_buf(),
                reason,
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

fn make_probe(layout: &Layout, payload: Payload) -> Result<(), PrepareError> {
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
        .map_err(file_error("copy the probe to", &target))
}

fn make_varstore(keys: &Path, template: &Path, vars: Vars, out: &Path) -> Result<(), PrepareError> {
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
    if vars == Vars::Shipped {
        return Err(PrepareError::ShippedVarstore);
    }
    // virt-fw-vars would read a FIFO or a device until its time limit.
    open_input(template, FIRMWARE_LIMIT).map_err(input_error("the varstore template", template))?;
    match vars {
        Vars::Shipped | Vars::Builtin => return Err(PrepareError::ShippedVarstore),
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
        // shim's own variable (its namespace, not Secure Boot's): shim says why it refuses.
        Vars::ShimVerbose => args.push(OsStr::new("--set-shim-verbose")),
    }
    VIRT_FW_VARS.run(&args)?;
    Ok(())
}

/// Makes the cell's folder, its private copies (writable, whatever the source's mode) and
/// `argv.txt`.
pub fn cell(spec: &RunSpec) -> Result<(), PrepareError> {
    create_dir(&spec.dir)?;
    for (source, copy) in &spec.copies {
        let copy_error = |source_error| PrepareError::Copy {
            from: source.clone(),
            to: copy.clone(),
            source: source_error,
        };
        let (from, _) = open_input(source, FIRMWARE_LIMIT).map_err(|e| match e {
            InputError::Io(e) => copy_error(e),
            e => input_error("the firmware file", source)(e),
        })?;
        let mut to = std::fs::File::create(copy).map_err(copy_error)?;
        // Bounded again while copying: the file may grow after it was measured.
        let copied =
            std::io::copy(&mut from.take(FIRMWARE_LIMIT + 1), &mut to).map_err(copy_error)?;
        if copied > FIRMWARE_LIMIT {
            return Err(input_error("the firmware file", source)(
                InputError::TooLarge {
                    size: copied,
                    limit: FIRMWARE_LIMIT,
                },
            ));
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(copy, std::fs::Permissions::from_mode(0o644)).map_err(
            |source| PrepareError::MakeWritable {
                path: copy.clone(),
                source,
            },
        )?;
    }
    let argv_txt = spec.dir.join("argv.txt");
    std::fs::write(&argv_txt, shell_line(&spec.argv) + "\n").map_err(file_error("write", &argv_txt))
}

/// Where `bootmatrix run` writes by default: `./bootmatrix-runs/<UTC timestamp>`, or, when a
/// run started in the same second has it, that name with `-2`, `-3`, ... (the run creates it
/// with `RunFolder::create_new`).
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

    #[test]
    fn a_missing_template_is_a_copy_error_naming_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("VARS.fd");
        let copy = dir.path().join("cell/vars.fd");
        let spec = RunSpec {
            check: crate::matrix::Check::SecureBoot,
            targets: Default::default(),
            grace: std::time::Duration::from_secs(1),
            argv: vec!["qemu".into()],
            dir: dir.path().join("cell"),
            copies: vec![(missing.clone(), copy.clone())],
            debug_log: None,
            deadline: std::time::Duration::from_secs(1),
            needs: vec![],
        };
        let e = cell(&spec).unwrap_err();
        assert!(
            matches!(&e, PrepareError::Copy { from, to, .. } if *from == missing && *to == copy),
            "{e:?}"
        );
        assert!(
            e.to_string().starts_with(&format!(
                "cannot copy {} to {}: ",
                missing.display(),
                copy.display()
            )),
            "{e}"
        );
    }

    /// A descriptor's template that is a device or a FIFO would be copied forever, or wait.
    #[rstest::rstest]
    #[case::device("/dev/zero", "a character device")]
    #[case::folder("/", "a folder")]
    fn a_template_that_is_no_regular_file_is_refused(#[case] source: &str, #[case] kind: &str) {
        let dir = tempfile::tempdir().unwrap();
        let spec = RunSpec {
            check: crate::matrix::Check::SecureBoot,
            targets: Default::default(),
            grace: std::time::Duration::from_secs(1),
            argv: vec!["qemu".into()],
            dir: dir.path().join("cell"),
            copies: vec![(source.into(), dir.path().join("cell/vars.fd"))],
            debug_log: None,
            deadline: std::time::Duration::from_secs(1),
            needs: vec![],
        };
        let e = cell(&spec).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("cannot use the firmware file {source}: not a regular file but {kind}")
        );
        let layout = Layout::new(dir.path());
        let kernel = Artifact::Kernel {
            source: source.into(),
            payload: Payload::Unsigned,
        };
        let why = &prepare(std::slice::from_ref(&kernel), &layout).failed[&kernel];
        assert_eq!(
            why,
            &format!("cannot use the kernel {source}: not a regular file but {kind}")
        );
    }

    #[test]
    fn a_failed_artifact_is_recorded_and_the_rest_go_on() {
        let dir = tempfile::tempdir().unwrap();
        // The run folder is a file: nothing can be made under it.
        let root = dir.path().join("run");
        std::fs::write(&root, b"").unwrap();
        let layout = Layout::new(&root);
        let prepared = prepare(&[Artifact::Initrd], &layout);
        let why = &prepared.failed[&Artifact::Initrd];
        assert!(
            why.starts_with(&format!("cannot create {}: ", layout.prepared().display())),
            "{why}"
        );
        let made = Layout::new(dir.path().join("ok"));
        assert!(prepare(&[Artifact::Initrd], &made).failed.is_empty());
        assert_eq!(std::fs::read(made.initrd()).unwrap(), empty_cpio());
    }

    #[test]
    fn the_shipped_varstore_is_never_made() {
        let dir = tempfile::tempdir().unwrap();
        let e = make_varstore(
            dir.path(),
            &dir.path().join("VARS.fd"),
            Vars::Shipped,
            &dir.path().join("out/vars.fd"),
        )
        .unwrap_err();
        assert!(matches!(e, PrepareError::ShippedVarstore), "{e}");
    }
}
