//! The run folder, held by one run: created or found empty, locked for the whole run (an
//! `flock` on `run.lock` inside it, which records the run's pid), and the report files checked
//! writable before anything boots.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The lock file inside a run folder: the pid of the run that holds (or last held) it.
pub const LOCK_FILE: &str = "run.lock";

/// A run folder this process holds until it is dropped (the lock goes with the file).
#[derive(Debug)]
pub struct RunFolder {
    pub path: PathBuf,
    _lock: File,
}

impl RunFolder {
    /// The folder the user named (`--out`): created if missing, refused when another run
    /// holds it or a run has already written into it.
    pub fn claim(path: &Path) -> Result<RunFolder, String> {
        std::fs::create_dir_all(path)
            .map_err(|e| format!("cannot create the run folder {}: {e}", path.display()))?;
        lock(path)
    }

    /// A new folder: `base` if it does not exist yet, else `base-2`, `base-3`, ...; made with
    /// `create_dir`, so two runs starting in the same second never share one.
    pub fn create_new(base: &Path) -> Result<RunFolder, String> {
        if let Some(parent) = base.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        for n in 1..=1000 {
            let candidate = match n {
                1 => base.to_path_buf(),
                n => {
                    let mut name = base.as_os_str().to_os_string();
                    name.push(format!("-{n}"));
                    PathBuf::from(name)
                }
            };
            match std::fs::create_dir(&candidate) {
                Ok(()) => return lock(&candidate),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(format!(
                        "cannot create the run folder {}: {e}",
                        candidate.display()
                    ))
                }
            }
        }
        Err(format!(
            "cannot create a new run folder: {} and 999 more with suffixes exist",
            base.display()
        ))
    }
}

/// Locks `dir` for this process, refusing a folder another run holds or has written into.
fn lock(dir: &Path) -> Result<RunFolder, String> {
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // SAFETY: flock has no memory-safety preconditions; the descriptor is open.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(format!("cannot lock {}: {e}", path.display()));
        }
        let mut pid = String::new();
        let _ = file.read_to_string(&mut pid);
        let pid = match pid.trim() {
            "" => "pid not recorded yet".to_string(),
            pid => format!("pid {pid}"),
        };
        return Err(format!(
            "the run folder {} is in use by another bootmatrix run ({pid}); give --out another folder",
            dir.display()
        ));
    }
    let mut others: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read the run folder {}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name != LOCK_FILE)
        .collect();
    if !others.is_empty() {
        others.sort();
        return Err(format!(
            "the run folder {} is not empty (it holds {}): a run writes into a new or empty \
             folder only, so that its report shows its own cells; give --out another folder",
            dir.display(),
            others.join(", ")
        ));
    }
    let recorded = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()));
    recorded.map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(RunFolder {
        path: dir.to_path_buf(),
        _lock: file,
    })
}

/// Checks that the run can write a report file at its end (opening it, or creating and removing
/// it), so that a path it cannot write is a usage error before anything boots.
pub fn check_writable(flag: &str, path: &Path) -> Result<(), String> {
    let existed = path.exists();
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| format!("{flag} {}: cannot write: {e}", path.display()))?;
    if !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_folder_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let held = RunFolder::claim(&run).unwrap();
        let text = std::fs::read_to_string(run.join(LOCK_FILE)).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
        let e = RunFolder::claim(&run).unwrap_err();
        assert!(e.contains("in use by another bootmatrix run"), "{e}");
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        drop(held);
        // Released, and still empty but for the lock file: usable again.
        RunFolder::claim(&run).unwrap();
    }

    #[test]
    fn a_folder_with_a_run_in_it_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("report.json"), "{}").unwrap();
        let e = RunFolder::claim(dir.path()).unwrap_err();
        assert!(e.contains("is not empty (it holds report.json)"), "{e}");
    }

    #[test]
    fn new_folders_never_collide() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("runs/20261201-044704");
        let first = RunFolder::create_new(&base).unwrap();
        let second = RunFolder::create_new(&base).unwrap();
        let third = RunFolder::create_new(&base).unwrap();
        assert_eq!(first.path, base);
        assert_eq!(second.path, dir.path().join("runs/20261201-044704-2"));
        assert_eq!(third.path, dir.path().join("runs/20261201-044704-3"));
    }

    #[test]
    fn an_unwritable_report_path_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing/report.json");
        let e = check_writable("--report-json", &path).unwrap_err();
        assert!(
            e.starts_with(&format!("--report-json {}: cannot write", path.display())),
            "{e}"
        );
        let new = dir.path().join("junit.xml");
        check_writable("--junit", &new).unwrap();
        assert!(!new.exists(), "the check leaves nothing behind");
        std::fs::write(&new, "kept").unwrap();
        check_writable("--junit", &new).unwrap();
        assert_eq!(std::fs::read_to_string(&new).unwrap(), "kept");
    }
}
