//! Discovery: descriptors, QEMU binaries and what the host can do, gathered once per run.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::descriptor::{self, Descriptor, DescriptorError, Mapping};
use crate::host::{self, KvmProbe, SevParams};
use crate::qemu::{self, QemuBinary, QemuError};

/// A descriptor with the identity of the build it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firmware {
    pub descriptor: Descriptor,
    /// sha256 of the executable, or why it could not be read.
    pub executable_sha256: Result<String, String>,
    /// The Debian package that owns the executable, with its version, where dpkg knows it.
    pub package: Option<String>,
}

/// A QEMU binary with what it can do on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuTarget {
    pub binary: QemuBinary,
    pub kvm: KvmProbe,
    /// SEV parameters, or why SEV guests cannot start through this binary on this host.
    pub sev: Result<SevParams, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inventory {
    pub firmware: Vec<Firmware>,
    pub descriptor_errors: Vec<DescriptorError>,
    pub masked: Vec<PathBuf>,
    pub search_dirs: Vec<PathBuf>,
    pub qemus: Vec<QemuTarget>,
    pub qemu_errors: Vec<QemuError>,
}

#[derive(Debug, Clone, Default)]
pub struct DiscoverOptions {
    /// Replaces the default search folders (general to specific).
    pub descriptor_dirs: Vec<PathBuf>,
    /// `--qemu PATH[=DATADIR]`, in addition to `PATH`.
    pub qemus: Vec<(PathBuf, Option<PathBuf>)>,
    /// Skip `qemu-system-x86_64` from `PATH`.
    pub no_path_qemu: bool,
    /// Where the KVM probe guest image may be written (inside the run folder).
    pub scratch: PathBuf,
}

pub fn discover(options: &DiscoverOptions) -> Inventory {
    let search_dirs = if options.descriptor_dirs.is_empty() {
        descriptor::default_search_dirs()
    } else {
        options.descriptor_dirs.clone()
    };
    let found = descriptor::discover(&search_dirs);
    let firmware = found
        .descriptors
        .into_iter()
        .map(|descriptor| {
            let executable = executable_of(&descriptor).to_path_buf();
            Firmware {
                executable_sha256: sha256_file(&executable),
                package: owning_package(&executable),
                descriptor,
            }
        })
        .collect();

    let mut candidates: Vec<(PathBuf, Option<PathBuf>)> = Vec::new();
    if !options.no_path_qemu {
        let path_var = std::env::var_os("PATH");
        candidates.extend(
            qemu::find_in_path(path_var.as_deref())
                .into_iter()
                .map(|p| (p, None)),
        );
    }
    candidates.extend(options.qemus.iter().cloned());
    let mut qemus: Vec<QemuTarget> = Vec::new();
    let mut qemu_errors = Vec::new();
    let sev_host = host::probe_sev_host();
    for (path, data_dir) in candidates {
        if qemus
            .iter()
            .any(|q| same_file(&q.binary.path, &path) && q.binary.data_dir == data_dir)
        {
            continue;
        }
        match QemuBinary::inspect(&path, data_dir.as_deref()) {
            Ok(binary) => {
                let kvm = host::probe_kvm(&binary, &options.scratch);
                let sev = match (&sev_host, &kvm.usable) {
                    (Err(why), _) => Err(format!("host has no AMD SEV: {why}")),
                    (Ok(_), Err(why)) => Err(format!("SEV needs a working KVM: {why}")),
                    (Ok(params), Ok(())) => host::probe_sev_qemu(&binary, *params),
                };
                qemus.push(QemuTarget { binary, kvm, sev });
            }
            Err(e) => qemu_errors.push(e),
        }
    }
    Inventory {
        firmware,
        descriptor_errors: found.errors,
        masked: found.masked,
        search_dirs,
        qemus,
        qemu_errors,
    }
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

pub fn sha256_file(path: &Path) -> Result<String, String> {
    let mut file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// `ovmf 2022.11-6+deb12u2` for files dpkg knows; None elsewhere (or without dpkg).
fn owning_package(path: &Path) -> Option<String> {
    let real = std::fs::canonicalize(path).ok()?;
    let out = std::process::Command::new("dpkg-query")
        .arg("-S")
        .arg(&real)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let package = text.split(':').next()?.trim().to_string();
    let version = std::process::Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", &package])
        .output()
        .ok()?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    Some(format!("{package} {version}"))
}

/// Where `ci/setup` puts a Debian kernel for kernel-boot cells:
/// `$XDG_CACHE_HOME/bootmatrix/vmlinuz` (default `~/.cache`).
pub fn cached_kernel() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(cache.join("bootmatrix").join("vmlinuz"))
}

/// The Linux kernel for kernel-boot cells: `explicit` (`--kernel`), else the one `ci/setup`
/// fetched, else the newest readable `/boot/vmlinuz-*`. The error is the cells' skip reason.
pub fn find_kernel(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return std::fs::File::open(path)
            .map(|_| path.to_path_buf())
            .map_err(|e| format!("--kernel {}: {e}", path.display()));
    }
    let mut looked = Vec::new();
    if let Some(cached) = cached_kernel() {
        if std::fs::File::open(&cached).is_ok() {
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
    if let Some(readable) = boot.iter().rev().find(|p| std::fs::File::open(p).is_ok()) {
        return Ok(readable.clone());
    }
    looked.push("/boot/vmlinuz-*".into());
    Err(format!(
        "no Linux kernel for -kernel: pass --kernel PATH, or run ./ci/setup, which fetches \
         Debian's (looked in {})",
        looked.join(", ")
    ))
}
