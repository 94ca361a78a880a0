//! How a QEMU binary is started: directly, or from a Debian root of another release.
//!
//! QEMU from trixie, forky or sid needs a newer C library than the host's. `--qemu-root ROOT`
//! names an unpacked root holding `qemu-system-x86` with its whole dependency closure down to
//! `libc6` (what `ci/debian-matrix` fetches). bootmatrix starts that QEMU through the root's own
//! dynamic loader, with the root's library folders as the only library path (`--inhibit-cache`:
//! the host's `ld.so.cache` takes no part), and `QEMU_MODULE_DIR` at the root's modules.
//!
//! Why the loader and not chroot or bubblewrap: the guest's files (varstore copy, ESP image,
//! kernel, sockets) live in the run folder on the host, and QEMU must open them at the paths the
//! plan names. Under the loader QEMU runs in the host's file system, so every path is the same
//! without bind mounts (which chroot would need, and which outlive a killed run), and nothing
//! more is needed than the root itself (bubblewrap is not installed on a plain Debian, and user
//! namespaces can be disabled). The price: a file QEMU opens by an absolute path of its own
//! (its data folder, its modules) must be redirected into the root, which `-L` and
//! `QEMU_MODULE_DIR` do.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The environment variable QEMU reads its loadable modules' folder from.
pub const MODULE_DIR_VAR: &str = "QEMU_MODULE_DIR";

/// How to start a QEMU binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    /// `exec` the binary itself, on the host's libraries.
    Direct,
    /// Through `loader` of an unpacked Debian root.
    Root(RootLaunch),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootLaunch {
    pub root: PathBuf,
    /// The root's `ld-linux-x86-64.so.2`.
    pub loader: PathBuf,
    /// The root's library folders, searched in this order.
    pub library_path: Vec<PathBuf>,
    /// The root's QEMU modules, when it has any.
    pub module_dir: Option<PathBuf>,
}

/// What a root provides: how to start its QEMU, the binary, and its data folder (for `-L`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuRoot {
    pub launch: Launch,
    pub binary: PathBuf,
    pub data_dir: Option<PathBuf>,
}

const MULTIARCH: &str = "x86_64-linux-gnu";
const LOADER: &str = "ld-linux-x86-64.so.2";
const BINARY: &str = "usr/bin/qemu-system-x86_64";

/// Finds the QEMU, the loader and the libraries of `root`. Every path must resolve inside the
/// root: a root whose loader is an absolute link to the host's (bullseye's `/lib64` link is
/// one) is not used through that link.
pub fn inspect_root(root: &Path) -> Result<QemuRoot, String> {
    let real_root = std::fs::canonicalize(root)
        .map_err(|e| format!("cannot open the QEMU root {}: {e}", root.display()))?;
    if !real_root.is_dir() {
        return Err(format!("the QEMU root {} is not a folder", root.display()));
    }
    let inside = |rel: &str| -> Option<PathBuf> {
        let real = std::fs::canonicalize(real_root.join(rel)).ok()?;
        real.starts_with(&real_root).then_some(real)
    };
    let binary = inside(BINARY).filter(|p| p.is_file()).ok_or_else(|| {
        format!(
            "{} has no {BINARY} (fetch qemu-system-x86 into it, e.g. with ./ci/debian-matrix)",
            root.display()
        )
    })?;
    let library_path: Vec<PathBuf> = [format!("lib/{MULTIARCH}"), format!("usr/lib/{MULTIARCH}")]
        .iter()
        .filter_map(|rel| inside(rel).filter(|p| p.is_dir()))
        .fold(Vec::new(), |mut dirs, dir| {
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
            dirs
        });
    let loader = library_path
        .iter()
        .map(|dir| dir.join(LOADER))
        .find_map(|p| {
            let real = std::fs::canonicalize(&p).ok()?;
            (real.starts_with(&real_root) && real.is_file()).then_some(real)
        })
        .ok_or_else(|| {
            format!(
                "{} has no {LOADER} of its own under lib/{MULTIARCH} or usr/lib/{MULTIARCH} \
                 (its libc6 is missing: the root needs qemu-system-x86's whole dependency closure)",
                root.display()
            )
        })?;
    let module_dir = inside(&format!("usr/lib/{MULTIARCH}/qemu")).filter(|p| p.is_dir());
    let data_dir = inside("usr/share/qemu").filter(|p| p.is_dir());
    Ok(QemuRoot {
        launch: Launch::Root(RootLaunch {
            root: real_root,
            loader,
            library_path,
            module_dir,
        }),
        binary,
        data_dir,
    })
}

impl Launch {
    /// The words that start `binary`: the binary alone, or the root's loader with its options
    /// and the binary, behind `env QEMU_MODULE_DIR=...`, so a planned argv is one command a
    /// shell can run as it is.
    pub fn program(&self, binary: &Path) -> Vec<String> {
        match self {
            Launch::Direct => vec![binary.display().to_string()],
            Launch::Root(r) => {
                let mut words = Vec::new();
                if let Some(dir) = &r.module_dir {
                    words.push("env".to_string());
                    words.push(format!("{MODULE_DIR_VAR}={}", dir.display()));
                }
                words.push(r.loader.display().to_string());
                words.push("--inhibit-cache".to_string());
                words.push("--library-path".to_string());
                words.push(
                    r.library_path
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(":"),
                );
                words.push(binary.display().to_string());
                words
            }
        }
    }

    /// A command that runs `binary` (arguments still to add).
    pub fn command(&self, binary: &Path) -> Command {
        match self {
            Launch::Direct => Command::new(binary),
            Launch::Root(r) => {
                let mut cmd = Command::new(&r.loader);
                if let Some(dir) = &r.module_dir {
                    cmd.env(MODULE_DIR_VAR, dir);
                }
                let paths: Vec<String> = r
                    .library_path
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                cmd.arg("--inhibit-cache")
                    .arg("--library-path")
                    .arg(paths.join(":"))
                    .arg(binary);
                cmd
            }
        }
    }

    /// For `list`: how the binary is started.
    pub fn describe(&self) -> String {
        match self {
            Launch::Direct => "started directly, on this machine's libraries".to_string(),
            Launch::Root(r) => format!(
                "root {}, started through the root's loader {} on the root's libraries",
                r.root.display(),
                r.loader.display()
            ),
        }
    }

    pub fn root(&self) -> Option<&Path> {
        match self {
            Launch::Direct => None,
            Launch::Root(r) => Some(&r.root),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use tempfile::TempDir;

    /// A root laid out like bookworm's and later (`usr/lib/x86_64-linux-gnu`) or bullseye's
    /// (`lib/x86_64-linux-gnu`, with `lib64` an absolute link to the host).
    fn root(merged: bool) -> TempDir {
        let dir = TempDir::new().unwrap();
        let lib = if merged {
            "usr/lib/x86_64-linux-gnu"
        } else {
            "lib/x86_64-linux-gnu"
        };
        std::fs::create_dir_all(dir.path().join(lib)).unwrap();
        std::fs::create_dir_all(dir.path().join("usr/bin")).unwrap();
        std::fs::write(dir.path().join(BINARY), b"qemu").unwrap();
        std::fs::write(dir.path().join(lib).join("ld-2.31.so"), b"ld").unwrap();
        symlink("ld-2.31.so", dir.path().join(lib).join(LOADER)).unwrap();
        std::fs::create_dir_all(dir.path().join("lib64")).unwrap();
        symlink(
            "/lib/x86_64-linux-gnu/ld-2.31.so",
            dir.path().join("lib64").join(LOADER),
        )
        .unwrap();
        dir
    }

    #[test]
    fn finds_the_loader_inside_the_root_not_through_an_absolute_link() {
        for merged in [true, false] {
            let dir = root(merged);
            let found = inspect_root(dir.path()).unwrap();
            let Launch::Root(r) = &found.launch else {
                panic!("a root is started through its loader")
            };
            let real = std::fs::canonicalize(dir.path()).unwrap();
            assert!(r.loader.starts_with(&real), "{:?}", r.loader);
            assert!(r.loader.ends_with("ld-2.31.so"));
            assert_eq!(r.library_path.len(), 1);
            assert_eq!(found.binary, real.join(BINARY));
            assert_eq!(found.data_dir, None);
            assert_eq!(r.module_dir, None);
        }
    }

    #[test]
    fn a_loader_that_leads_out_of_the_root_is_refused() {
        let dir = TempDir::new().unwrap();
        std::fs::create_dir_all(dir.path().join("usr/bin")).unwrap();
        std::fs::create_dir_all(dir.path().join("usr/lib/x86_64-linux-gnu")).unwrap();
        std::fs::write(dir.path().join(BINARY), b"qemu").unwrap();
        let outside = TempDir::new().unwrap();
        std::fs::write(outside.path().join("ld.so"), b"ld").unwrap();
        symlink(
            outside.path().join("ld.so"),
            dir.path().join("usr/lib/x86_64-linux-gnu").join(LOADER),
        )
        .unwrap();
        let err = inspect_root(dir.path()).unwrap_err();
        assert!(
            err.contains("has no ld-linux-x86-64.so.2 of its own"),
            "{err}"
        );
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
    }

    #[test]
    fn a_root_without_qemu_names_the_missing_binary() {
        let dir = TempDir::new().unwrap();
        let err = inspect_root(dir.path()).unwrap_err();
        assert!(err.contains("usr/bin/qemu-system-x86_64"), "{err}");
        let err = inspect_root(&dir.path().join("nothing")).unwrap_err();
        assert!(err.contains("cannot open the QEMU root"), "{err}");
    }

    #[test]
    fn program_is_one_shell_command_with_the_module_folder() {
        let launch = Launch::Root(RootLaunch {
            root: "/r".into(),
            loader: "/r/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2".into(),
            library_path: vec![
                "/r/lib/x86_64-linux-gnu".into(),
                "/r/usr/lib/x86_64-linux-gnu".into(),
            ],
            module_dir: Some("/r/usr/lib/x86_64-linux-gnu/qemu".into()),
        });
        assert_eq!(
            launch.program(Path::new("/r/usr/bin/qemu-system-x86_64")),
            [
                "env",
                "QEMU_MODULE_DIR=/r/usr/lib/x86_64-linux-gnu/qemu",
                "/r/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
                "--inhibit-cache",
                "--library-path",
                "/r/lib/x86_64-linux-gnu:/r/usr/lib/x86_64-linux-gnu",
                "/r/usr/bin/qemu-system-x86_64"
            ]
        );
        let cmd = launch.command(Path::new("/r/usr/bin/qemu-system-x86_64"));
        assert_eq!(
            cmd.get_program(),
            "/r/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
        );
        assert_eq!(
            cmd.get_envs().collect::<Vec<_>>(),
            [(
                std::ffi::OsStr::new("QEMU_MODULE_DIR"),
                Some(std::ffi::OsStr::new("/r/usr/lib/x86_64-linux-gnu/qemu"))
            )]
        );
        assert_eq!(
            Launch::Direct.program(Path::new("/usr/bin/qemu-system-x86_64")),
            ["/usr/bin/qemu-system-x86_64"]
        );
    }
}
