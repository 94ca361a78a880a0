//! Finding descriptors: the spec's search folders, general to specific, and the merge of their
//! `*.json` files by name (a more specific folder overrides, a zero-length file masks).

use std::collections::BTreeMap;
use std::env;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::discover::descriptor::{self, Descriptor, DescriptorError};
use crate::discover::tree;
use crate::tools::{read_input, DESCRIPTOR_LIMIT};

/// Everything found in the search folders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    /// Usable descriptors, sorted by file name.
    pub descriptors: Vec<Descriptor>,
    /// Files that were skipped because they are broken, sorted by file name.
    pub errors: Vec<DescriptorError>,
    /// Files hidden by a zero-length file of the same name in a more specific folder.
    pub masked: Vec<Shadowed>,
    /// Files hidden by a non-empty file of the same name in a more specific folder.
    pub overridden: Vec<Shadowed>,
    /// Zero-length files with nothing of their name to hide in less specific folders.
    pub masks_nothing: Vec<PathBuf>,
}

/// A file that a file of the same name in a more specific folder hides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shadowed {
    pub hidden: PathBuf,
    pub by: PathBuf,
}

/// The spec's search path, general to specific: later folders override earlier ones.
pub fn default_search_dirs() -> Vec<PathBuf> {
    search_dirs(env::var_os("XDG_CONFIG_HOME"), env::var_os("HOME"))
}

fn search_dirs(xdg_config_home: Option<OsString>, home: Option<OsString>) -> Vec<PathBuf> {
    // The XDG base-directory spec says empty or relative values are invalid and to be ignored.
    let absolute = |v: Option<OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    let config = absolute(xdg_config_home).or_else(|| absolute(home).map(|h| h.join(".config")));
    ["/usr/share/qemu/firmware", "/etc/qemu/firmware"]
        .into_iter()
        .map(PathBuf::from)
        .chain(config.map(|c| c.join("qemu/firmware")))
        .collect()
}

/// One `*.json` entry of a search folder.
struct Candidate {
    path: PathBuf,
    /// What is read: `path`, or inside a package tree, `path` resolved under its root.
    real: PathBuf,
    /// The root of the package tree the descriptor names files in.
    root: Option<PathBuf>,
    /// Zero-length (or a link to /dev/null): hides the name in less specific folders.
    empty: bool,
}

/// Lists, merges and parses descriptors from `dirs` (general to specific). Never fails as a
/// whole: unreadable folders and broken files are reported in `errors`, folder errors first.
/// Files are compared by their exact names (bytes, not a lossy text), and read only when they
/// are regular files of at most [`DESCRIPTOR_LIMIT`] bytes, so a FIFO, a device or a huge file
/// is one broken descriptor, never a hang.
pub fn scan(dirs: &[PathBuf]) -> Discovery {
    let unrooted: Vec<(PathBuf, Option<PathBuf>)> =
        dirs.iter().map(|d| (d.clone(), None)).collect();
    scan_rooted(&unrooted)
}

/// [`scan`] over folders each with the root of the package tree it names files in, if any:
/// the files a descriptor from such a folder names are resolved under that root
/// ([`tree::reroot`]), and a descriptor inside that root is itself read through it.
pub fn scan_rooted(dirs: &[(PathBuf, Option<PathBuf>)]) -> Discovery {
    let mut out = Discovery::default();
    // (tree, file name) -> entries from general to specific; the BTreeMap gives the spec's sort
    // order. The machine's own folders (no tree) are one search path, where a more specific
    // folder overrides or masks; each package tree is a search path of its own, so trees of
    // several releases never hide each other's descriptors of the same name.
    let mut by_name: BTreeMap<(Option<PathBuf>, OsString), Vec<Candidate>> = BTreeMap::new();
    for (dir, root) in dirs {
        let dir_err = |e: io::Error| DescriptorError {
            path: dir.clone(),
            field: String::new(),
            message: format!("cannot read folder: {e}"),
        };
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            // Most search folders do not exist on a given host; that is normal.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                out.errors.push(dir_err(e));
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    out.errors.push(dir_err(e));
                    continue;
                }
            };
            let name = entry.file_name();
            if name.as_bytes().starts_with(b".") || !name.as_bytes().ends_with(b".json") {
                continue;
            }
            let path = entry.path();
            // Inside a package tree, the file itself is read through the tree's links.
            let real = match root.as_deref().map(|r| (r, path.strip_prefix(r))) {
                Some((r, Ok(inside))) => match tree::resolve_in(r, &Path::new("/").join(inside)) {
                    Ok(real) => real,
                    Err(message) => {
                        out.errors.push(DescriptorError {
                            path,
                            field: String::new(),
                            message,
                        });
                        continue;
                    }
                },
                _ => path.clone(),
            };
            // fs::metadata follows symlinks, so links to regular files count as files.
            let empty = match fs::metadata(&real) {
                Ok(meta) if meta.is_file() => meta.len() == 0,
                // systemd-style masking with a link to /dev/null.
                Ok(_) => fs::canonicalize(&real).is_ok_and(|p| p == Path::new("/dev/null")),
                // A folder, a FIFO, a device or a dangling link is kept, so that reading it
                // reports the problem by path.
                Err(_) => false,
            };
            by_name
                .entry((root.clone(), name))
                .or_default()
                .push(Candidate {
                    path,
                    real,
                    root: root.clone(),
                    empty,
                });
        }
    }
    for candidates in by_name.into_values() {
        let Some((winner, hidden)) = candidates.split_last() else {
            continue;
        };
        let shadowed = |c: &Candidate| Shadowed {
            hidden: c.path.clone(),
            by: winner.path.clone(),
        };
        if winner.empty {
            let masked: Vec<Shadowed> = hidden.iter().filter(|c| !c.empty).map(shadowed).collect();
            if masked.is_empty() {
                out.masks_nothing.push(winner.path.clone());
            }
            out.masked.extend(masked);
            continue;
        }
        out.overridden.extend(hidden.iter().map(shadowed));
        let result = read_input(&winner.real, DESCRIPTOR_LIMIT)
            .map_err(|e| DescriptorError {
                path: winner.path.clone(),
                field: String::new(),
                message: e.to_string(),
            })
            .and_then(|bytes| descriptor::parse_bytes(&winner.path, &bytes))
            .and_then(|d| match &winner.root {
                Some(root) => tree::reroot(d, root),
                None => Ok(d),
            });
        match result {
            Ok(descriptor) => out.descriptors.push(descriptor),
            Err(e) => out.errors.push(e),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::descriptor::{Architecture, Feature, Interface};
    use rstest::rstest;
    use serde_json::json;
    use tempfile::TempDir;

    #[rstest]
    #[case(Some("/xdg"), Some("/home/u"), Some("/xdg/qemu/firmware"))]
    #[case(None, Some("/home/u"), Some("/home/u/.config/qemu/firmware"))]
    #[case(Some(""), Some("/home/u"), Some("/home/u/.config/qemu/firmware"))]
    #[case(Some("relative"), None, None)]
    #[case(None, None, None)]
    fn search_dirs_follow_xdg(
        #[case] xdg: Option<&str>,
        #[case] home: Option<&str>,
        #[case] user: Option<&str>,
    ) {
        let mut expected = vec![
            PathBuf::from("/usr/share/qemu/firmware"),
            PathBuf::from("/etc/qemu/firmware"),
        ];
        expected.extend(user.map(PathBuf::from));
        assert_eq!(
            search_dirs(xdg.map(Into::into), home.map(Into::into)),
            expected
        );
        assert_eq!(default_search_dirs()[..2], expected[..2]);
    }

    /// Three search folders, general to specific, like /usr/share, /etc and ~/.config.
    fn folders() -> (TempDir, Vec<PathBuf>) {
        let tmp = TempDir::new().expect("temp dir");
        let dirs: Vec<PathBuf> = ["usr", "etc", "user"]
            .iter()
            .map(|d| tmp.path().join(d))
            .collect();
        for dir in &dirs {
            fs::create_dir(dir).expect("create folder");
        }
        (tmp, dirs)
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, text).expect("write test file");
        path
    }

    /// A valid descriptor whose description tells which copy was used.
    fn good(description: &str) -> String {
        descriptor_with(description, "flash").to_string()
    }

    /// A descriptor with a `mapping.device` of `device`.
    fn descriptor_with(description: &str, device: &str) -> serde_json::Value {
        json!({
            "description": description,
            "interface-types": ["uefi"],
            "mapping": {
                "device": device,
                "executable": {"filename": "/fw/CODE.fd", "format": "raw"},
                "nvram-template": {"filename": "/fw/VARS.fd", "format": "raw"}
            },
            "targets": [{"architecture": "x86_64", "machines": ["pc-q35-*"]}],
            "features": ["secure-boot"]
        })
    }

    fn data_dir(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name)
    }

    fn descriptions(found: &Discovery) -> Vec<&str> {
        found
            .descriptors
            .iter()
            .map(|d| d.description.as_str())
            .collect()
    }

    #[test]
    fn more_specific_folder_wins() {
        let (_tmp, dirs) = folders();
        write(&dirs[0], "50-a.json", &good("usr"));
        let etc = write(&dirs[1], "50-a.json", &good("etc"));
        let found = scan(&dirs);
        assert_eq!(descriptions(&found), ["etc"]);
        assert_eq!(found.descriptors[0].path, etc);
        assert!(found.errors.is_empty() && found.masked.is_empty());
        let by = etc;
        assert_eq!(
            found.overridden,
            [Shadowed {
                hidden: dirs[0].join("50-a.json"),
                by
            }]
        );
    }

    #[test]
    fn package_trees_never_hide_each_others_descriptors() {
        let tmp = TempDir::new().unwrap();
        let mut dirs = vec![(tmp.path().join("host"), None)];
        fs::create_dir_all(&dirs[0].0).unwrap();
        write(&dirs[0].0, "50-a.json", &good("host"));
        for release in ["bullseye", "sid"] {
            let root = tmp.path().join(release);
            let dir = root.join("usr/share/qemu/firmware");
            fs::create_dir_all(&dir).unwrap();
            fs::create_dir_all(root.join("fw")).unwrap();
            fs::write(root.join("fw/CODE.fd"), b"code").unwrap();
            fs::write(root.join("fw/VARS.fd"), b"vars").unwrap();
            write(&dir, "50-a.json", &good(release));
            dirs.push((dir, Some(root)));
        }
        let found = scan_rooted(&dirs);
        assert_eq!(
            descriptions(&found),
            ["host", "bullseye", "sid"],
            "{found:#?}"
        );
        assert!(found.overridden.is_empty() && found.masked.is_empty());
        assert!(found.errors.is_empty(), "{:?}", found.errors);
    }

    #[test]
    fn only_the_winner_is_parsed() {
        let (_tmp, dirs) = folders();
        write(&dirs[0], "50-a.json", "{ broken");
        write(&dirs[1], "50-a.json", &good("etc"));
        let found = scan(&dirs);
        assert_eq!(descriptions(&found), ["etc"]);
        assert!(found.errors.is_empty());
    }

    #[test]
    fn zero_length_file_masks_less_specific_ones() {
        let (_tmp, dirs) = folders();
        let usr = write(&dirs[0], "50-a.json", &good("usr"));
        let etc = write(&dirs[1], "50-a.json", &good("etc"));
        let by = write(&dirs[2], "50-a.json", "");
        // An empty file with nothing below it hides nothing and is no error, but is named.
        let nothing = write(&dirs[1], "60-b.json", "");
        let found = scan(&dirs);
        let masked = |hidden: PathBuf| Shadowed {
            hidden,
            by: by.clone(),
        };
        assert_eq!(
            found,
            Discovery {
                masked: vec![masked(usr), masked(etc)],
                masks_nothing: vec![nothing],
                ..Discovery::default()
            }
        );
    }

    #[test]
    fn dev_null_link_masks_too() {
        let (_tmp, dirs) = folders();
        let usr = write(&dirs[0], "50-a.json", &good("usr"));
        std::os::unix::fs::symlink("/dev/null", dirs[1].join("50-a.json")).expect("symlink");
        let found = scan(&dirs);
        assert!(found.descriptors.is_empty() && found.errors.is_empty());
        let by = dirs[1].join("50-a.json");
        assert_eq!(found.masked, [Shadowed { hidden: usr, by }]);
    }

    #[test]
    fn more_specific_file_unmasks() {
        let (_tmp, dirs) = folders();
        write(&dirs[0], "50-a.json", &good("usr"));
        write(&dirs[1], "50-a.json", "");
        write(&dirs[2], "50-a.json", &good("user"));
        let found = scan(&dirs);
        assert_eq!(descriptions(&found), ["user"]);
        assert!(found.masked.is_empty());
    }

    #[test]
    fn sorts_by_file_name_across_folders() {
        let (_tmp, dirs) = folders();
        write(&dirs[0], "60-c.json", &good("c"));
        write(&dirs[0], "10-a.json", &good("a"));
        write(&dirs[1], "30-b.json", &good("b"));
        write(&dirs[2], "20-x.json", &good("x"));
        let found = scan(&dirs);
        assert_eq!(descriptions(&found), ["a", "x", "b", "c"]);
        let names: Vec<&str> = found.descriptors.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["10-a.json", "20-x.json", "30-b.json", "60-c.json"]);
    }

    #[test]
    fn broken_file_does_not_stop_the_others() {
        let (_tmp, dirs) = folders();
        write(&dirs[1], "10-good.json", &good("first"));
        let broken = write(&dirs[1], "20-broken.json", "{\n  \"description\": \n");
        let unknown = descriptor_with("unknown", "rom").to_string();
        let wrong = write(&dirs[0], "25-wrong.json", &unknown);
        write(&dirs[2], "30-good.json", &good("second"));
        let found = scan(&dirs);
        assert_eq!(descriptions(&found), ["first", "second"]);
        let errors: Vec<(&Path, &str)> = found
            .errors
            .iter()
            .map(|e| (e.path.as_path(), e.field.as_str()))
            .collect();
        assert_eq!(
            errors,
            [(broken.as_path(), ""), (wrong.as_path(), "mapping.device")]
        );
        assert!(
            found.errors[0].message.contains("line 3"),
            "{}",
            found.errors[0]
        );
    }

    #[test]
    fn missing_folder_is_skipped_silently() {
        let (tmp, mut dirs) = folders();
        write(&dirs[1], "50-a.json", &good("etc"));
        dirs.insert(0, tmp.path().join("does-not-exist"));
        let found = scan(&dirs);
        assert_eq!(descriptions(&found), ["etc"]);
        assert!(found.errors.is_empty());
    }

    #[test]
    fn unreadable_folder_is_an_error() {
        let (_tmp, dirs) = folders();
        write(&dirs[1], "50-a.json", &good("etc"));
        // Tests run as root in CI, where permissions do not stop reading; a file does.
        let not_a_dir = write(&dirs[0], "firmware", "");
        let found = scan(&[not_a_dir.clone(), dirs[1].clone()]);
        assert_eq!(descriptions(&found), ["etc"]);
        assert_eq!(found.errors.len(), 1);
        assert_eq!(found.errors[0].path, not_a_dir);
        assert_eq!(found.errors[0].field, "");
    }

    #[test]
    fn lists_only_json_files_and_links_to_them_and_names_other_json_entries() {
        let (tmp, dirs) = folders();
        write(&dirs[1], ".50-hidden.json", &good("hidden"));
        write(&dirs[1], "50-readme.txt", &good("txt"));
        write(&dirs[1], "50-a.json.bak", &good("bak"));
        fs::create_dir(dirs[1].join("50-dir.json")).expect("mkdir");
        let target = write(tmp.path(), "elsewhere.json", &good("linked"));
        std::os::unix::fs::symlink(&target, dirs[1].join("70-link.json")).expect("symlink");
        let found = scan(&dirs);
        assert_eq!(descriptions(&found), ["linked"]);
        assert_eq!(found.descriptors[0].name, "70-link.json");
        // A folder named like a descriptor is not silently passed over.
        assert_eq!(found.errors.len(), 1, "{:?}", found.errors);
        assert_eq!(found.errors[0].path, dirs[1].join("50-dir.json"));
        assert_eq!(found.errors[0].message, "not a regular file but a folder");
    }

    #[rstest]
    #[case::dangling_link(None, "cannot read: No such file or directory")]
    #[case::not_utf8(
        Some(&b"{\"description\": \"\xff\"}"[..]),
        "not UTF-8 text: invalid byte 0xff at offset 17"
    )]
    fn unreadable_file_is_an_error_naming_it(
        #[case] content: Option<&[u8]>,
        #[case] message: &str,
    ) {
        let (tmp, dirs) = folders();
        let path = dirs[1].join("50-a.json");
        match content {
            Some(bytes) => fs::write(&path, bytes).expect("write"),
            None => {
                std::os::unix::fs::symlink(tmp.path().join("gone.json"), &path).expect("symlink")
            }
        }
        write(&dirs[1], "60-b.json", &good("b"));
        let found = scan(&dirs);
        assert_eq!(descriptions(&found), ["b"]);
        assert_eq!(found.errors.len(), 1);
        assert_eq!(found.errors[0].path, path);
        assert!(
            found.errors[0].message.starts_with(message),
            "{}",
            found.errors[0]
        );
    }

    #[test]
    fn names_are_compared_as_bytes_not_as_lossy_text() {
        use std::os::unix::ffi::OsStrExt;
        let (_tmp, dirs) = folders();
        for (byte, description) in [(0xfe, "fe"), (0xff, "ff")] {
            let name = [b"50-".as_slice(), &[byte], b".json"].concat();
            let path = dirs[1].join(std::ffi::OsStr::from_bytes(&name));
            fs::write(path, good(description)).expect("write");
        }
        let found = scan(&dirs);
        assert_eq!(descriptions(&found), ["fe", "ff"]);
        assert!(found.overridden.is_empty(), "{:?}", found.overridden);
    }

    #[test]
    fn a_fifo_or_a_device_named_like_a_descriptor_is_named_not_read() {
        let (_tmp, dirs) = folders();
        let fifo = dirs[1].join("50-fifo.json");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo reads a NUL-terminated path and has no other preconditions.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let zero = dirs[1].join("60-zero.json");
        std::os::unix::fs::symlink("/dev/zero", &zero).expect("symlink");
        write(&dirs[1], "70-ok.json", &good("ok"));
        let found = scan(&dirs);
        assert_eq!(descriptions(&found), ["ok"]);
        let errors: Vec<(&Path, &str)> = found
            .errors
            .iter()
            .map(|e| (e.path.as_path(), e.message.as_str()))
            .collect();
        assert_eq!(
            errors,
            [
                (fifo.as_path(), "not a regular file but a FIFO"),
                (zero.as_path(), "not a regular file but a character device"),
            ]
        );
    }

    #[test]
    fn golden_folder() {
        let found = scan(&[data_dir("descriptors")]);
        assert!(found.errors.is_empty(), "{:?}", found.errors);
        let names: Vec<&str> = found.descriptors.iter().map(|d| d.name.as_str()).collect();
        // Every file here must also have a `golden` case in descriptor.rs.
        assert_eq!(
            names,
            [
                "40-edk2-x86_64-secure-enrolled.json",
                "50-edk2-x86_64-secure.json",
                "60-edk2-aarch64-qcow2.json",
                "60-edk2-ovmf-x64-amdsev.json",
                "60-edk2-ovmf-x64-stateless.json",
                "60-edk2-x86_64.json",
                "70-svsm-x86_64-igvm.json",
                "80-seabios-bios-256k.json",
                "85-u-boot-riscv64.json",
                "90-edk2-loongarch64-future.json",
            ]
        );
        let by_name = |n: &str| found.descriptors.iter().find(|d| d.name == n).expect(n);
        let secure = by_name("40-edk2-x86_64-secure-enrolled.json");
        assert!(secure.has(&Feature::EnrolledKeys) && secure.has(&Feature::RequiresSmm));
        assert!(secure.supports(Architecture::X86_64, "pc-q35-9.2"));
        assert!(!secure.supports(Architecture::X86_64, "pc-i440fx-9.2"));
        assert!(by_name("60-edk2-x86_64.json").supports(Architecture::X86_64, "pc-i440fx-9.2"));
        let seabios = by_name("80-seabios-bios-256k.json");
        assert_eq!(seabios.interface_types, [Interface::Bios]);
        assert!(seabios.supports(Architecture::I386, "pc-i440fx-2.0"));
        let arm = by_name("60-edk2-aarch64-qcow2.json");
        assert!(arm.supports(Architecture::Aarch64, "virt-9.0"));
        assert_eq!(
            by_name("85-u-boot-riscv64.json").interface_types,
            [Interface::UBoot]
        );
        let future = by_name("90-edk2-loongarch64-future.json");
        assert_eq!(future.unknown_features(), ["x-future-measured-boot"]);
        assert!(found
            .descriptors
            .iter()
            .filter(|d| d.name != future.name)
            .all(|d| d.unknown_features().is_empty()));
    }

    #[test]
    fn golden_broken_folder() {
        let found = scan(&[data_dir("descriptors-broken")]);
        assert!(found.descriptors.is_empty());
        // Every file here must also have a `golden_broken` case in descriptor.rs.
        assert_eq!(found.errors.len(), 13);
    }
}
