//! Discovery: descriptors, QEMU binaries and what the host can do, gathered once per run.

pub mod chain;
pub mod descriptor;
pub mod glob;
pub mod host;
pub mod launch;
pub mod qemu;
pub mod release;
pub mod search;
pub mod tree;
pub mod varstore;
pub mod words;

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use self::descriptor::{Descriptor, DescriptorError, Mapping};
use self::host::{KvmProbe, SevParams};
use self::launch::Launch;
use self::qemu::{QemuBinary, QemuError, QemuProblem};
use self::search::Shadowed;
use crate::tools::{open_input, FIRMWARE_LIMIT, KERNEL_LIMIT};

/// A descriptor with the identity of the build it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firmware {
    pub descriptor: Descriptor,
    /// sha256 of the executable, or why it could not be read.
    pub executable_sha256: Result<String, String>,
    /// The Debian package that owns the executable, with its version, where dpkg knows it.
    pub package: Option<String>,
    /// The package tree the descriptor names its files in (`--root`, or implied), if any.
    pub tree: Option<PathBuf>,
}

impl Firmware {
    /// How `list` and `plan` name this firmware: the descriptor's file name, or for a package
    /// tree's descriptor its [`label`](Self::label), which tells the trees apart.
    pub fn shown_name(&self) -> String {
        match self.tree {
            None => self.descriptor.name.clone(),
            Some(_) => self.label(),
        }
    }

    /// The name of this firmware in cell ids, run folders and `list`: the descriptor's file name
    /// without `.json` for the machine's own descriptors, and with `@VERSION` (the tree's
    /// package version) for a package tree's, since trees of several releases ship descriptors
    /// of the same name: `40-edk2-x86_64-secure-enrolled@2020.11-2+deb11u2`.
    pub fn label(&self) -> String {
        let name = &self.descriptor.name;
        let stem = name.strip_suffix(".json").unwrap_or(name);
        let Some(tree) = &self.tree else {
            return stem.to_string();
        };
        let version = self
            .package
            .as_deref()
            .and_then(|p| p.split_whitespace().nth(1))
            .map(str::to_string)
            .unwrap_or_else(|| {
                // No identity: the tree's own folder names it.
                let parts: Vec<String> = tree
                    .components()
                    .rev()
                    .take(2)
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                parts.into_iter().rev().collect::<Vec<_>>().join("-")
            });
        let version: String = version
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "+.~-_".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("{stem}@{version}")
    }
}

/// A QEMU binary with what it can do on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuTarget {
    pub binary: QemuBinary,
    pub kvm: KvmProbe,
    /// SEV parameters, or why SEV guests cannot start through this binary on this host.
    pub sev: Result<SevParams, String>,
    /// Whether SEV-ES, SEV-SNP and TDX guests can start through this binary on this host.
    pub cc: host::CcHost,
}

#[derive(Debug, Default)]
pub struct Inventory {
    pub firmware: Vec<Firmware>,
    pub descriptor_errors: Vec<DescriptorError>,
    pub masked: Vec<Shadowed>,
    pub overridden: Vec<Shadowed>,
    pub masks_nothing: Vec<PathBuf>,
    pub search_dirs: Vec<PathBuf>,
    pub qemus: Vec<QemuTarget>,
    /// QEMUs from `PATH` that cannot be used: reported, and the others are tested.
    pub qemu_errors: Vec<QemuError>,
    /// QEMUs asked for with `--qemu` that cannot be used: the command cannot do what it was
    /// asked (a usage error). When there are any, no QEMU's host probes ran, so `qemus` is
    /// empty.
    pub requested_qemu_errors: Vec<QemuError>,
}

#[derive(Debug, Clone, Default)]
pub struct DiscoverOptions {
    /// Replaces the default search folders (general to specific).
    pub descriptor_dirs: Vec<PathBuf>,
    /// `--root`: the package tree every folder of `descriptor_dirs` names its files in. Without
    /// it, a folder `ROOT/usr/share/qemu/firmware` implies `ROOT` ([`tree::implied_root`]).
    pub descriptor_root: Option<PathBuf>,
    /// `--qemu PATH[=DATADIR]`, in addition to `PATH`.
    pub qemus: Vec<(PathBuf, Option<PathBuf>)>,
    /// `--qemu-root DIR`: the QEMU of another Debian root, started through its own loader.
    pub qemu_roots: Vec<PathBuf>,
    /// Skip `qemu-system-x86_64` from `PATH`.
    pub no_path_qemu: bool,
    /// Where the KVM probe guest image may be written (inside the run folder).
    pub scratch: PathBuf,
}

pub fn discover(options: &DiscoverOptions) -> Inventory {
    let found = discover_firmware(options);
    let mut candidates: Vec<(PathBuf, Option<PathBuf>, Launch)> = Vec::new();
    if !options.no_path_qemu {
        let path_var = std::env::var_os("PATH");
        candidates.extend(
            qemu::find_in_path(path_var.as_deref())
                .into_iter()
                .map(|p| (p, None, Launch::Direct)),
        );
    }
    let from_path = candidates.len();
    candidates.extend(
        options
            .qemus
            .iter()
            .map(|(p, d)| (p.clone(), d.clone(), Launch::Direct)),
    );
    let mut binaries: Vec<QemuBinary> = Vec::new();
    let mut qemu_errors: Vec<QemuError> = Vec::new();
    let mut requested_qemu_errors = Vec::new();
    for root in &options.qemu_roots {
        match launch::inspect_root(root) {
            Ok(found) => candidates.push((found.binary, found.data_dir, found.launch)),
            Err(why) => requested_qemu_errors.push(QemuError {
                path: root.clone(),
                problem: QemuProblem::Root(why),
            }),
        }
    }
    for (n, (path, data_dir, launch)) in candidates.into_iter().enumerate() {
        if binaries
            .iter()
            .any(|b| same_file(&b.path, &path) && b.data_dir == data_dir)
        {
            continue;
        }
        // Asked for and already failed from PATH: one answer is enough (a hang costs once).
        let failed = qemu_errors.iter().position(|e| same_file(&e.path, &path));
        if let (true, None, Some(i)) = (n >= from_path, &data_dir, failed) {
            requested_qemu_errors.push(qemu_errors.remove(i));
            continue;
        }
        match QemuBinary::inspect(&path, data_dir.as_deref(), &launch) {
            Ok(binary) => binaries.push(binary),
            // Named by the root it was asked for with.
            Err(e) if launch.root().is_some() => requested_qemu_errors.push(QemuError {
                path: launch.root().unwrap_or(&path).to_path_buf(),
                problem: QemuProblem::Root(format!("{}: {}", path.display(), e.problem)),
            }),
            Err(e) if n >= from_path => requested_qemu_errors.push(e),
            Err(e) => qemu_errors.push(e),
        }
    }
    // The host probes take seconds each: not for a command that is about to fail.
    if !requested_qemu_errors.is_empty() {
        binaries.clear();
    }
    let sev_host = host::probe_sev_host();
    let qemus = binaries
        .into_iter()
        .map(|binary| {
            let kvm = host::probe_kvm(&binary, &options.scratch);
            let sev = match (&sev_host, &kvm.usable) {
                (Err(why), _) => Err(format!("host has no AMD SEV: {why}")),
                (Ok(_), Err(why)) => Err(format!("SEV needs a working KVM: {why}")),
                (Ok(params), Ok(())) => {
                    host::probe_sev_qemu(&binary, *params).map_err(|e| e.to_string())
                }
            };
            let cc = host::probe_cc_host(&sev, &kvm.usable);
            QemuTarget {
                binary,
                kvm,
                sev,
                cc,
            }
        })
        .collect();
    Inventory {
        qemus,
        qemu_errors,
        requested_qemu_errors,
        ..found
    }
}

/// The descriptors alone, each with the identity of its build: what `discover` finds before
/// it looks for QEMU (no QEMU is started; `bootmatrix lint` needs no more).
pub fn discover_firmware(options: &DiscoverOptions) -> Inventory {
    let rooted = rooted_dirs(options);
    let search_dirs: Vec<PathBuf> = rooted.iter().map(|(dir, _)| dir.clone()).collect();
    let found = search::scan_rooted(&rooted);
    let firmware = found
        .descriptors
        .into_iter()
        .map(|descriptor| {
            let executable = executable_of(&descriptor).to_path_buf();
            let root = rooted
                .iter()
                .find(|(dir, _)| descriptor.path.parent() == Some(dir.as_path()))
                .and_then(|(_, root)| root.as_deref());
            let package = match root {
                // The tree's own files say what it is; the host's dpkg knows nothing of it.
                Some(root) => tree::tree_package(root, &executable),
                None => owning_package(&executable).or_else(|| unpacked_package(&executable)),
            };
            Firmware {
                executable_sha256: sha256_file(&executable),
                package,
                tree: root.map(Path::to_path_buf),
                descriptor,
            }
        })
        .collect();

    Inventory {
        firmware,
        descriptor_errors: found.errors,
        masked: found.masked,
        overridden: found.overridden,
        masks_nothing: found.masks_nothing,
        search_dirs,
        ..Inventory::default()
    }
}

/// The descriptor folders with the package tree each names its files in: `--root` for every
/// `--descriptors` folder, else the root a folder inside its own tree implies; the default
/// folders are the system's own. Rooted folders are made canonical, so their descriptors lie
/// inside the root as it is resolved.
fn rooted_dirs(options: &DiscoverOptions) -> Vec<(PathBuf, Option<PathBuf>)> {
    if options.descriptor_dirs.is_empty() {
        return search::default_search_dirs()
            .into_iter()
            .map(|d| (d, None))
            .collect();
    }
    let explicit = options
        .descriptor_root
        .as_ref()
        .map(|r| std::fs::canonicalize(r).unwrap_or_else(|_| r.clone()));
    options
        .descriptor_dirs
        .iter()
        .map(|dir| {
            let root = explicit.clone().or_else(|| tree::implied_root(dir));
            match root {
                Some(root) => (
                    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone()),
                    Some(root),
                ),
                None => (dir.clone(), None),
            }
        })
        .collect()
}

/// The file that identifies the firmware build.
pub fn executable_of(descriptor: &Descriptor) -> &Path {
    match &descriptor.mapping {
        Mapping::Flash(flash) => &flash.executable.filename,
        Mapping::Kernel { filename }
        | Mapping::Memory { filename }
        | Mapping::Igvm { filename } => filename,
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// sha256 of a regular file of at most [`FIRMWARE_LIMIT`] bytes; the error names the file.
pub fn sha256_file(path: &Path) -> Result<String, String> {
    // The path comes from a descriptor: shown escaped, as the error ends up on terminals.
    let shown = crate::tools::shown_name(path.as_os_str());
    let (file, _) = open_input(path, FIRMWARE_LIMIT).map_err(|e| match e {
        crate::tools::InputError::EmptyPath => e.to_string(),
        e => format!("{shown}: {e}"),
    })?;
    // One byte more than the limit tells a file that grew while being hashed.
    let mut file = file.take(FIRMWARE_LIMIT + 1);
    let mut read = 0u64;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| format!("{shown}: cannot read: {e}"))?;
        if n == 0 {
            break;
        }
        read += n as u64;
        if read > FIRMWARE_LIMIT {
            return Err(format!(
                "{shown}: {}",
                crate::tools::InputError::TooLarge {
                    size: read,
                    limit: FIRMWARE_LIMIT
                }
            ));
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// For a Debian package unpacked with `dpkg-deb -x` (not installed, so dpkg does not know it):
/// `ovmf 2025.02-8 (unpacked in DIR)`, read from the package's own changelog next to the
/// executable (`DIR/usr/share/doc/<package>/changelog.Debian.gz`).
///
/// For descriptors that name absolute paths into a tree without a root being known, the tree
/// is guessed by cutting the real path at its last `/usr/share/` (never the system's own `/`);
/// see [`tree::tree_package`].
fn unpacked_package(executable: &Path) -> Option<String> {
    let real = std::fs::canonicalize(executable).ok()?;
    let text = real.to_str()?;
    let (root, _) = text.rsplit_once("/usr/share/")?;
    if root.is_empty() {
        return None;
    }
    tree::tree_package(Path::new(root), &real)
}

/// The version of the newest entry of a Debian changelog: `edk2 (2025.02-8) unstable; ...`.
pub fn changelog_version(changelog: &str) -> Option<String> {
    let first = changelog.lines().find(|l| !l.trim().is_empty())?;
    let start = first.find('(')? + 1;
    let end = start + first[start..].find(')')?;
    Some(first[start..end].to_string())
}

/// `ovmf 2022.11-6+deb12u2` for files dpkg knows; None elsewhere (or without dpkg).
fn owning_package(path: &Path) -> Option<String> {
    let real = std::fs::canonicalize(path).ok()?;
    // Bounded like every other external process: a wedged dpkg database must not hang discovery.
    let limit = std::time::Duration::from_secs(10);
    let mut search = std::process::Command::new("dpkg-query");
    search.arg("-S").arg(&real);
    let text = crate::tools::run_bounded(&mut search, limit, "dpkg-query -S").ok()?;
    let package = text.split(':').next()?.trim().to_string();
    let mut show = std::process::Command::new("dpkg-query");
    show.args(["-W", "-f=${Version}", &package]);
    let version = crate::tools::run_bounded(&mut show, limit, "dpkg-query -W").ok()?;
    Some(format!("{package} {}", version.trim()))
}

/// A file given on the command line (`--kernel`, `--shim`): a readable regular file of at most
/// `limit` bytes, checked without reading it. The error names the option and the file:
/// `--kernel /dev/zero: not a regular file but a character device`.
pub fn input_file(option: &str, path: &Path, limit: u64) -> Result<PathBuf, String> {
    match open_input(path, limit) {
        Ok(_) => Ok(path.to_path_buf()),
        Err(e) => Err(format!(
            "{option} {}: {e}",
            crate::tools::shown_name(path.as_os_str())
        )),
    }
}

/// bootmatrix's cache folder, where `ci/setup` and `ci/debian-matrix` put what they fetch:
/// `$XDG_CACHE_HOME/bootmatrix` (default `~/.cache/bootmatrix`).
pub fn cache_dir() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(cache.join("bootmatrix"))
}

/// Where `ci/setup` puts a Debian kernel for kernel-boot cells: `CACHE/vmlinuz`.
pub fn cached_kernel() -> Option<PathBuf> {
    Some(cache_dir()?.join("vmlinuz"))
}

/// The Linux kernel for kernel-boot cells: `explicit` (`--kernel`), else the one `ci/setup`
/// fetched, else the newest readable `/boot/vmlinuz-*`. The error is the cells' skip reason.
pub fn find_kernel(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return input_file("--kernel", path, KERNEL_LIMIT);
    }
    let usable = |p: &Path| open_input(p, KERNEL_LIMIT).is_ok();
    let mut looked = Vec::new();
    if let Some(cached) = cached_kernel() {
        if usable(&cached) {
            return Ok(cached);
        }
        looked.push(cached.display().to_string());
    }
    let mut boot: Vec<PathBuf> = std::fs::read_dir("/boot")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("vmlinuz-"))
                })
                .collect()
        })
        .unwrap_or_default();
    boot.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    if let Some(readable) = boot.iter().rev().find(|p| usable(p)) {
        return Ok(readable.clone());
    }
    looked.push("/boot/vmlinuz-*".into());
    Err(format!(
        "no Linux kernel for -kernel: pass --kernel PATH, or run ./ci/setup, which fetches \
         Debian's (looked in {})",
        looked.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_s_firmware_is_labelled_with_its_version_the_machine_s_by_its_name() {
        let text = r#"{"description": "d", "interface-types": ["uefi"],
            "mapping": {"device": "memory", "filename": "/fw/OVMF.fd"},
            "targets": [{"architecture": "x86_64", "machines": ["pc-q35-*"]}], "features": []}"#;
        let descriptor =
            descriptor::parse(Path::new("/d/40-edk2-x86_64-secure-enrolled.json"), text).unwrap();
        let mut f = Firmware {
            descriptor,
            executable_sha256: Ok(String::new()),
            package: Some("ovmf 2022.11-6+deb12u2".into()),
            tree: None,
        };
        assert_eq!(f.label(), "40-edk2-x86_64-secure-enrolled");
        f.tree = Some("/cache/debian/sid/ovmf".into());
        f.package =
            Some("edk2 2026.08+ds-2 (source of ovmf-generic, ovmf-amdsev; unpacked in /x)".into());
        assert_eq!(f.label(), "40-edk2-x86_64-secure-enrolled@2026.08+ds-2");
        f.package = None;
        assert_eq!(f.label(), "40-edk2-x86_64-secure-enrolled@sid-ovmf");
        f.tree = Some("/cache/my tree/a:b".into());
        assert_eq!(f.label(), "40-edk2-x86_64-secure-enrolled@my_tree-a_b");
    }

    #[test]
    fn reads_the_newest_changelog_version() {
        let log = "edk2 (2025.02-8) unstable; urgency=medium\n\n  * New upstream.\n\nedk2 (2024.11-1) unstable; urgency=medium\n";
        assert_eq!(changelog_version(log).as_deref(), Some("2025.02-8"));
        assert_eq!(changelog_version("no version here"), None);
    }

    #[test]
    fn finds_the_package_of_an_unpacked_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/share/OVMF")).unwrap();
        std::fs::create_dir_all(root.join("usr/share/doc/ovmf")).unwrap();
        let code = root.join("usr/share/OVMF/OVMF_CODE_4M.fd");
        std::fs::write(&code, b"firmware").unwrap();
        assert_eq!(unpacked_package(&code), None, "no changelog yet");
        let changelog = root.join("usr/share/doc/ovmf/changelog.Debian");
        std::fs::write(&changelog, "edk2 (2025.02-8) unstable; urgency=medium\n").unwrap();
        let mut gzip = std::process::Command::new("gzip");
        gzip.arg(&changelog);
        crate::tools::run_bounded(&mut gzip, std::time::Duration::from_secs(10), "gzip").unwrap();
        let package = unpacked_package(&code).unwrap();
        assert!(
            package.starts_with("ovmf 2025.02-8 (unpacked in "),
            "{package}"
        );
        assert_eq!(
            crate::discover::release::Edk2Release::from_package_version(&package)
                .map(|r| r.to_string())
                .as_deref(),
            Some("2025.02")
        );
    }
}
