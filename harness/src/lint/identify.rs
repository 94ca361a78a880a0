//! Which descriptor a command line's firmware is: by its path (as written, or the file it
//! resolves to), else by the sha256 of the file against each descriptor's executable.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::discover::descriptor::Mapping;
use crate::discover::{executable_of, sha256_file, Firmware};

/// How the firmware was recognized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum How {
    Path,
    Sha256,
}

/// sha256 of a file of the line, or None when it cannot be read (a path of another machine).
/// Reads only a regular file of bounded size ([`sha256_file`]).
pub fn sha256_of(file: &str) -> Option<String> {
    sha256_file(Path::new(file)).ok()
}

/// Whether `a` and `b` name the same file: the same text, or the same device and inode.
pub fn same_file(a: &Path, b: &Path) -> bool {
    if a == b {
        return true;
    }
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// The descriptor of `file`. Several descriptors may name one executable (Debian's
/// `OVMF_CODE_4M.secboot.fd` with an empty or an enrolled varstore): the one whose
/// nvram-template the line's varstore is (or has the content of) is taken, else the first.
pub fn identify<'a>(
    file: &str,
    file_sha256: Option<&str>,
    varstore: Option<(&str, Option<&str>)>,
    firmware: &'a [Firmware],
) -> Option<(&'a Firmware, How)> {
    // The path as written first: another descriptor's file may be a link to the same build.
    let mut by_path: Vec<&Firmware> = firmware
        .iter()
        .filter(|f| Path::new(file) == executable_of(&f.descriptor))
        .collect();
    if by_path.is_empty() {
        by_path = firmware
            .iter()
            .filter(|f| same_file(Path::new(file), executable_of(&f.descriptor)))
            .collect();
    }
    let (candidates, how) = if by_path.is_empty() {
        let sha = file_sha256?;
        let by_sha: Vec<&Firmware> = firmware
            .iter()
            .filter(|f| {
                f.executable_sha256
                    .as_deref()
                    .is_ok_and(|s| s.eq_ignore_ascii_case(sha))
            })
            .collect();
        (by_sha, How::Sha256)
    } else {
        (by_path, How::Path)
    };
    let paired = varstore.and_then(|(vars, vars_sha)| {
        candidates.iter().copied().find(|f| match template_of(f) {
            Some(t) => {
                same_file(Path::new(vars), t)
                    || vars_sha.is_some_and(|s| sha256_of_path(t).as_deref() == Some(s))
            }
            None => false,
        })
    });
    paired.or(candidates.first().copied()).map(|f| (f, how))
}

/// The descriptor's varstore template, if it has one.
pub fn template_of(f: &Firmware) -> Option<&Path> {
    match &f.descriptor.mapping {
        Mapping::Flash(flash) => flash.nvram_template.as_ref().map(|t| t.filename.as_path()),
        _ => None,
    }
}

fn sha256_of_path(p: &Path) -> Option<String> {
    sha256_file(p).ok()
}
