//! Firmware from a package tree: a descriptor folder inside an unpacked Debian package
//! (`dpkg-deb -x ovmf.deb ROOT`, descriptors in `ROOT/usr/share/qemu/firmware`) names its files
//! as the installed system sees them (`/usr/share/OVMF/OVMF_CODE_4M.ms.fd`). Those names are
//! resolved under ROOT as in a chroot: an absolute symbolic link target starts again at ROOT
//! (Debian packages ship such links), and only a `..` above ROOT is an error. Nothing outside
//! ROOT is read, or even looked at, on the way.
//!
//! The build's identity (package, version, so the edk2 release) comes from the same tree: the
//! `changelog.Debian.gz` of the package that owns the file.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::discover::descriptor::{Descriptor, DescriptorError, Mapping};
use crate::tools::{self, read_input};

/// Where a descriptor folder sits inside its own tree: `ROOT/usr/share/qemu/firmware`.
pub const TREE_DESCRIPTORS: &str = "usr/share/qemu/firmware";

/// Symbolic links followed for one name before giving up (Linux's own limit).
const MAX_LINKS: usize = 40;

/// The most doc folders whose changelogs are read to name a tree's package: an unpacked package
/// or a few from one source have a handful; a whole system tree without dpkg's file lists
/// cannot say which one owns a file anyway.
const MAX_DOCS: usize = 32;

/// The most read of one of dpkg's file lists (`var/lib/dpkg/info/PKG.list`).
const LIST_LIMIT: u64 = 16 << 20;

/// The root a descriptor folder implies: `ROOT` for `ROOT/usr/share/qemu/firmware` (after
/// resolving the folder's own links), unless that is `/` (the system's own folder).
pub fn implied_root(dir: &Path) -> Option<PathBuf> {
    let real = fs::canonicalize(dir).ok()?;
    if !real.ends_with(TREE_DESCRIPTORS) {
        return None;
    }
    let root = real.ancestors().nth(4)?;
    (root != Path::new("/")).then(|| root.to_path_buf())
}

/// One step of a name being resolved.
enum Step {
    Root,
    Up,
    Name(OsString),
}

fn steps(path: &Path) -> impl DoubleEndedIterator<Item = Step> + '_ {
    path.components().filter_map(|c| match c {
        Component::RootDir | Component::Prefix(_) => Some(Step::Root),
        Component::CurDir => None,
        Component::ParentDir => Some(Step::Up),
        Component::Normal(name) => Some(Step::Name(name.to_owned())),
    })
}

/// `name` (absolute as on the installed system; a relative one is taken from ROOT too)
/// resolved under `root`, which must be canonical. Every symbolic link on the way is followed
/// inside the tree: an absolute target starts again at `root`, a relative one from the link's
/// folder. A `..` above `root` is an error, as is a loop. Missing files are not (the caller
/// reports those when it opens the result). The result has no link in it but perhaps its
/// missing tail, so opening it reads nothing outside `root`.
pub fn resolve_in(root: &Path, name: &Path) -> Result<PathBuf, String> {
    let shown = |p: &Path| tools::shown_name(p.as_os_str());
    let mut pending: VecDeque<Step> = steps(name).collect();
    let mut at = root.to_path_buf();
    let mut depth = 0usize;
    let mut links = 0usize;
    let mut last_link: Option<(PathBuf, PathBuf)> = None;
    while let Some(step) = pending.pop_front() {
        match step {
            Step::Root => {
                at = root.to_path_buf();
                depth = 0;
            }
            Step::Up if depth == 0 => {
                let through = last_link.map_or(String::new(), |(link, target)| {
                    format!(" (through the link {} -> {})", shown(&link), shown(&target))
                });
                return Err(format!(
                    "{} leads out of the package tree {}: `..` above its root{through}",
                    shown(name),
                    shown(root)
                ));
            }
            Step::Up => {
                at.pop();
                depth -= 1;
            }
            Step::Name(part) => {
                let next = at.join(&part);
                match fs::symlink_metadata(&next) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        links += 1;
                        if links > MAX_LINKS {
                            return Err(format!(
                                "{} in the package tree {}: more than {MAX_LINKS} symbolic \
                                 links (a loop?)",
                                shown(name),
                                shown(root)
                            ));
                        }
                        let target = fs::read_link(&next)
                            .map_err(|e| format!("{}: cannot read the link: {e}", shown(&next)))?;
                        for s in steps(&target).rev() {
                            pending.push_front(s);
                        }
                        last_link = Some((next, target));
                    }
                    // A directory, a file, or nothing (yet): taken as it is.
                    _ => {
                        at = next;
                        depth += 1;
                    }
                }
            }
        }
    }
    Ok(at)
}

/// The descriptor with every file it names resolved under `root` (see [`resolve_in`]); an
/// escape is a broken descriptor, naming the field and the path.
pub fn reroot(mut descriptor: Descriptor, root: &Path) -> Result<Descriptor, DescriptorError> {
    let file = descriptor.path.clone();
    let fix = |field: &str, name: &mut PathBuf| {
        *name = resolve_in(root, name).map_err(|message| DescriptorError {
            path: file.clone(),
            field: field.to_string(),
            message,
        })?;
        Ok::<(), DescriptorError>(())
    };
    match &mut descriptor.mapping {
        Mapping::Flash(flash) => {
            fix(
                "mapping.executable.filename",
                &mut flash.executable.filename,
            )?;
            if let Some(template) = &mut flash.nvram_template {
                fix("mapping.nvram-template.filename", &mut template.filename)?;
            }
        }
        Mapping::Kernel { filename }
        | Mapping::Memory { filename }
        | Mapping::Igvm { filename } => fix("mapping.filename", filename)?,
    }
    Ok(descriptor)
}

/// One package's changelog in the tree.
struct Doc {
    package: String,
    /// The source package of the changelog's newest entry (`edk2`).
    source: String,
    version: String,
}

/// The identity of `file` (resolved, inside `root`): `ovmf 2025.02-8 (unpacked in ROOT)`.
///
/// The owner is the package whose dpkg file list (`ROOT/var/lib/dpkg/info/PKG.list`, as an
/// installed system or provisioning that keeps `dpkg-deb --fsys-tarfile PKG.deb | tar -t` has
/// it) names the file; without lists, every package with a `usr/share/doc/PKG/changelog.Debian.gz`
/// is a candidate. One candidate names itself. Several built from one source at one version
/// (sid splits ovmf into ovmf-generic, ovmf-amdsev, ... and they may be unpacked into one tree)
/// give the source with that exact version: `edk2 2026.08-1 (source of ovmf-amdsev,
/// ovmf-generic; unpacked in ROOT)`, so the version and the edk2 release stay exact. Anything
/// else leaves the identity unknown.
pub fn tree_package(root: &Path, file: &Path) -> Option<String> {
    let inside = Path::new("/").join(file.strip_prefix(root).ok()?);
    let owners = list_owners(root, &inside);
    let docs_dir = resolve_in(root, Path::new("/usr/share/doc")).ok()?;
    let mut names: Vec<String> = fs::read_dir(&docs_dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| owners.is_empty() || owners.contains(n))
        .collect();
    names.sort();
    if names.len() > MAX_DOCS {
        return None;
    }
    let docs: Vec<Doc> = names
        .into_iter()
        .filter_map(|package| {
            let log = Path::new("/usr/share/doc")
                .join(&package)
                .join("changelog.Debian.gz");
            let (source, version) = changelog_of(&resolve_in(root, &log).ok()?)?;
            Some(Doc {
                package,
                source,
                version,
            })
        })
        .collect();
    let shown_root = root.display();
    match docs.as_slice() {
        [] => None,
        [one] => Some(format!(
            "{} {} (unpacked in {shown_root})",
            one.package, one.version
        )),
        [first, rest @ ..] => {
            let same = |d: &Doc| d.source == first.source && d.version == first.version;
            rest.iter().all(same).then(|| {
                let packages: Vec<&str> = docs.iter().map(|d| d.package.as_str()).collect();
                format!(
                    "{} {} (source of {}; unpacked in {shown_root})",
                    first.source,
                    first.version,
                    packages.join(", ")
                )
            })
        }
    }
}

/// The packages whose dpkg file list in the tree names `inside` (`/usr/share/OVMF/...`).
fn list_owners(root: &Path, inside: &Path) -> Vec<String> {
    let Ok(info) = resolve_in(root, Path::new("/var/lib/dpkg/info")) else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(info) else {
        return Vec::new();
    };
    let wanted = inside.as_os_str().as_encoded_bytes();
    let mut owners: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let package = name.strip_suffix(".list")?;
            // Multi-arch lists are `PKG:ARCH.list`.
            let package = package.split(':').next()?.to_string();
            let list = resolve_in(root, &Path::new("/var/lib/dpkg/info").join(&name)).ok()?;
            let bytes = read_input(&list, LIST_LIMIT).ok()?;
            bytes
                .split(|b| *b == b'\n')
                .any(|line| line.strip_prefix(b".").unwrap_or(line) == wanted)
                .then_some(package)
        })
        .collect();
    owners.sort();
    owners.dedup();
    owners
}

/// The source and version of the newest entry of a gzip'd Debian changelog (a regular file).
fn changelog_of(path: &Path) -> Option<(String, String)> {
    if !fs::symlink_metadata(path).ok()?.is_file() {
        return None;
    }
    let mut cmd = std::process::Command::new("gzip");
    cmd.arg("-dc").arg(path);
    let log = tools::run_bounded(&mut cmd, Duration::from_secs(10), "gzip -dc").ok()?;
    let version = super::changelog_version(&log)?;
    let source = log.split_whitespace().next()?.to_string();
    Some((source, version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A canonical temporary root, with `files` (path under the root, content) written.
    fn tree(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap().join("tree");
        for (name, text) in files {
            let path = root.join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        fs::create_dir_all(&root).unwrap();
        (dir, root)
    }

    fn link(root: &Path, name: &str, target: &str) {
        let path = root.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        symlink(target, path).unwrap();
    }

    #[test]
    fn a_name_resolves_under_the_root() {
        let (_d, root) = tree(&[("usr/share/OVMF/CODE.fd", "code")]);
        let got = resolve_in(&root, Path::new("/usr/share/OVMF/CODE.fd")).unwrap();
        assert_eq!(got, root.join("usr/share/OVMF/CODE.fd"));
        // `..` that stays inside is fine, and a missing file is left to whoever opens it.
        let got = resolve_in(&root, Path::new("/usr/share/../share/OVMF/./none.fd")).unwrap();
        assert_eq!(got, root.join("usr/share/OVMF/none.fd"));
    }

    #[test]
    fn dot_dot_above_the_root_is_an_error() {
        let (_d, root) = tree(&[("usr/share/OVMF/CODE.fd", "code")]);
        let e = resolve_in(&root, Path::new("/usr/share/../../../etc/passwd")).unwrap_err();
        assert!(e.contains("/usr/share/../../../etc/passwd"), "{e}");
        assert!(e.contains("leads out of the package tree"), "{e}");
    }

    #[test]
    fn an_absolute_link_starts_again_at_the_root_and_never_reads_the_host() {
        let (_d, root) = tree(&[
            ("usr/share/ovmf/OVMF.fd", "tree firmware"),
            ("etc/os-release", "tree os-release"),
        ]);
        // Debian ships absolute links like this one; the host has no such folder.
        let host = "/bootmatrix-no-such-folder/ovmf/OVMF.fd";
        assert!(!Path::new(host).exists());
        link(&root, "bootmatrix-no-such-folder", "/usr/share");
        link(&root, "usr/share/qemu/OVMF.fd", host);
        let got = resolve_in(&root, Path::new("/usr/share/qemu/OVMF.fd")).unwrap();
        assert_eq!(got, root.join("usr/share/ovmf/OVMF.fd"));
        assert_eq!(fs::read_to_string(&got).unwrap(), "tree firmware");
        // A target that does exist on the host is still the tree's.
        link(&root, "usr/share/OVMF/release", "/etc/os-release");
        let got = resolve_in(&root, Path::new("/usr/share/OVMF/release")).unwrap();
        assert_eq!(fs::read_to_string(got).unwrap(), "tree os-release");
    }

    #[test]
    fn a_link_chain_escaping_with_dot_dot_is_an_error_naming_the_link() {
        let (_d, root) = tree(&[]);
        link(&root, "usr/share/OVMF/CODE.fd", "../escape/CODE.fd");
        link(&root, "usr/share/escape", "../../..");
        let e = resolve_in(&root, Path::new("/usr/share/OVMF/CODE.fd")).unwrap_err();
        assert!(e.contains("leads out of the package tree"), "{e}");
        assert!(e.contains("usr/share/escape -> ../../.."), "{e}");
    }

    #[test]
    fn a_link_loop_is_an_error() {
        let (_d, root) = tree(&[]);
        link(&root, "a", "/b");
        link(&root, "b", "a");
        let e = resolve_in(&root, Path::new("/a")).unwrap_err();
        assert!(e.contains("symbolic links"), "{e}");
    }

    #[test]
    fn a_descriptor_folder_in_its_own_tree_implies_the_root() {
        let (_d, root) = tree(&[("usr/share/qemu/firmware/60-x.json", "{}")]);
        let dir = root.join("usr/share/qemu/./firmware");
        assert_eq!(implied_root(&dir), Some(root.clone()));
        assert_eq!(implied_root(&root.join("usr/share/qemu")), None);
        assert_eq!(implied_root(Path::new("/usr/share/qemu/firmware")), None);
        assert_eq!(
            implied_root(&root.join("missing/usr/share/qemu/firmware")),
            None
        );
    }

    fn descriptor(path: &Path, code: &str) -> Descriptor {
        let text = serde_json::json!({
            "description": "d",
            "interface-types": ["uefi"],
            "mapping": {
                "device": "flash",
                "executable": {"filename": code, "format": "raw"},
                "nvram-template": {"filename": "/usr/share/OVMF/VARS.fd", "format": "raw"}
            },
            "targets": [{"architecture": "x86_64", "machines": ["pc-q35-*"]}],
            "features": []
        });
        crate::discover::descriptor::parse(path, &text.to_string()).unwrap()
    }

    #[test]
    fn reroot_resolves_every_file_and_names_the_descriptor_on_escape() {
        let (_d, root) = tree(&[]);
        let file = root.join("usr/share/qemu/firmware/60-x.json");
        let d = reroot(descriptor(&file, "/usr/share/OVMF/CODE.fd"), &root).unwrap();
        let Mapping::Flash(flash) = &d.mapping else {
            panic!("flash")
        };
        assert_eq!(
            flash.executable.filename,
            root.join("usr/share/OVMF/CODE.fd")
        );
        let template = flash.nvram_template.as_ref().unwrap();
        assert_eq!(template.filename, root.join("usr/share/OVMF/VARS.fd"));
        let e = reroot(descriptor(&file, "/../../etc/shadow"), &root).unwrap_err();
        assert_eq!(e.path, file);
        assert_eq!(e.field, "mapping.executable.filename");
        let shown = e.to_string();
        assert!(
            shown.contains("60-x.json: mapping.executable.filename: /../../etc/shadow leads out"),
            "{shown}"
        );
    }

    /// Writes `usr/share/doc/PKG/changelog.Debian.gz` with a first line of `source (version)`.
    fn changelog(root: &Path, package: &str, source: &str, version: &str) {
        let dir = root.join("usr/share/doc").join(package);
        fs::create_dir_all(&dir).unwrap();
        let log = dir.join("changelog.Debian");
        fs::write(
            &log,
            format!("{source} ({version}) unstable; urgency=medium\n\n  * x\n"),
        )
        .unwrap();
        let mut gzip = std::process::Command::new("gzip");
        gzip.arg(&log);
        tools::run_bounded(&mut gzip, Duration::from_secs(10), "gzip").unwrap();
    }

    fn release(package: &str) -> Option<String> {
        crate::discover::release::Edk2Release::from_package_version(package).map(|r| r.to_string())
    }

    #[test]
    fn one_package_names_itself() {
        let (_d, root) = tree(&[("usr/share/OVMF/CODE.fd", "code")]);
        let code = root.join("usr/share/OVMF/CODE.fd");
        assert_eq!(tree_package(&root, &code), None, "no changelog yet");
        changelog(&root, "ovmf", "edk2", "2025.02-8+deb13u1");
        let got = tree_package(&root, &code).unwrap();
        assert_eq!(
            got,
            format!("ovmf 2025.02-8+deb13u1 (unpacked in {})", root.display())
        );
        assert_eq!(release(&got).as_deref(), Some("2025.02"));
    }

    #[test]
    fn packages_of_one_source_give_the_source_and_its_exact_version() {
        let (_d, root) = tree(&[("usr/share/ovmf/x64/OVMF.fd", "code")]);
        let code = root.join("usr/share/ovmf/x64/OVMF.fd");
        changelog(&root, "ovmf-generic", "edk2", "2026.08-1");
        changelog(&root, "ovmf-amdsev", "edk2", "2026.08-1");
        let got = tree_package(&root, &code).unwrap();
        assert_eq!(
            got,
            format!(
                "edk2 2026.08-1 (source of ovmf-amdsev, ovmf-generic; unpacked in {})",
                root.display()
            )
        );
        assert_eq!(release(&got).as_deref(), Some("2026.08"));
        // Two versions: which one built the file is unknown.
        changelog(&root, "seabios", "seabios", "1.16.3-2");
        assert_eq!(tree_package(&root, &code), None);
    }

    #[test]
    fn a_dpkg_file_list_in_the_tree_names_the_owner() {
        let (_d, root) = tree(&[
            ("usr/share/ovmf/x64/OVMF.fd", "code"),
            (
                "var/lib/dpkg/info/ovmf-generic:all.list",
                "/.\n/usr/share/ovmf\n/usr/share/ovmf/x64/OVMF.fd\n",
            ),
            (
                "var/lib/dpkg/info/ovmf-amdsev.list",
                "/.\n/usr/share/ovmf/x64/AMDSEV.fd\n",
            ),
        ]);
        changelog(&root, "ovmf-generic", "edk2", "2026.08-1");
        changelog(&root, "ovmf-amdsev", "edk2", "2026.08-1");
        changelog(&root, "seabios", "seabios", "1.16.3-2");
        let got = tree_package(&root, &root.join("usr/share/ovmf/x64/OVMF.fd")).unwrap();
        assert_eq!(
            got,
            format!("ovmf-generic 2026.08-1 (unpacked in {})", root.display())
        );
    }

    #[test]
    fn a_doc_folder_linking_out_of_the_tree_is_not_read() {
        let (dir, root) = tree(&[("usr/share/OVMF/CODE.fd", "code")]);
        // A changelog on the host, beside the tree, that an absolute link names.
        let host = fs::canonicalize(dir.path()).unwrap().join("host");
        changelog(&host, "ovmf", "edk2", "2025.02-8");
        link(
            &root,
            "usr/share/doc/ovmf",
            host.join("usr/share/doc/ovmf").to_str().unwrap(),
        );
        let code = root.join("usr/share/OVMF/CODE.fd");
        assert_eq!(tree_package(&root, &code), None);
        // The same link relative, inside the tree once it has that changelog.
        changelog(&root, "ovmf-real", "edk2", "2025.02-9");
        fs::remove_file(root.join("usr/share/doc/ovmf")).unwrap();
        link(&root, "usr/share/doc/ovmf", "ovmf-real");
        let got = tree_package(&root, &code).unwrap();
        assert!(
            got.starts_with("edk2 2025.02-9 (source of ovmf, ovmf-real;"),
            "{got}"
        );
    }
}
