//! QEMU binaries: where they are, which version they are, which machine types they offer.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::launch::Launch;
use crate::tools::RunError;

/// The system emulator bootmatrix drives (x86_64 guests only, for now).
pub const SYSTEM_EMULATOR: &str = "qemu-system-x86_64";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub micro: u32,
}

impl Version {
    pub const fn new(major: u32, minor: u32, micro: u32) -> Self {
        Version {
            major,
            minor,
            micro,
        }
    }

    /// Parses the first line of `qemu-system-x86_64 --version`:
    /// `QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)`.
    pub fn parse_banner(text: &str) -> Option<Version> {
        let rest = text.split("version ").nth(1)?;
        let number = rest
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()?;
        Version::parse(number)
    }

    /// `10.0`, `7.2.22` (missing parts are 0).
    pub fn parse(number: &str) -> Option<Version> {
        let mut parts = number.split('.').map(|p| p.parse::<u32>().ok());
        let major = parts.next()??;
        let minor = parts.next().flatten().unwrap_or(0);
        let micro = parts.next().flatten().unwrap_or(0);
        Some(Version::new(major, minor, micro))
    }
}

/// Deserializes a value written as a string, with `parse`; the error quotes the text and says
/// what was `expected`.
pub(crate) fn deserialize_text<'de, D: serde::Deserializer<'de>, T>(
    d: D,
    parse: fn(&str) -> Option<T>,
    expected: &str,
) -> Result<T, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(d)?;
    parse(&text).ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not {expected}")))
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_text(
            d,
            Version::parse,
            "a QEMU version (expected e.g. 10.0 or 7.2.22)",
        )
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

/// Machine types offered by one binary, with aliases (`q35` -> `pc-q35-7.2`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Machines {
    pub names: Vec<String>,
    pub aliases: BTreeMap<String, String>,
}

impl Machines {
    /// Parses `-machine help`. Lines look like
    /// `q35                  Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-7.2)`.
    pub fn parse_help(text: &str) -> Machines {
        let mut machines = Machines::default();
        for line in text.lines().skip_while(|l| l.starts_with("Supported")) {
            let Some(name) = line.split_whitespace().next() else {
                continue;
            };
            if let Some(target) = line
                .rsplit_once("(alias of ")
                .and_then(|(_, t)| t.strip_suffix(')'))
            {
                machines
                    .aliases
                    .insert(name.to_string(), target.to_string());
            } else if !machines.names.iter().any(|n| n == name) {
                machines.names.push(name.to_string());
            }
        }
        machines
    }

    /// The concrete machine type behind `name` (itself when it is not an alias).
    pub fn resolve(&self, name: &str) -> Option<&str> {
        if let Some(target) = self.aliases.get(name) {
            return Some(target);
        }
        self.names.iter().find(|n| *n == name).map(String::as_str)
    }
}

/// A QEMU binary that answered `--version` and `-machine help`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuBinary {
    pub path: PathBuf,
    /// Passed as `-L DIR` (firmware and option ROMs of an unpacked QEMU).
    pub data_dir: Option<PathBuf>,
    /// Directly, or through the loader of another Debian root (`--qemu-root`).
    pub launch: Launch,
    pub version: Version,
    /// The whole first line of `--version`, e.g. with the Debian package version.
    pub banner: String,
    pub machines: Machines,
    /// The object types `-object help` lists, when it answered (None: judged by version).
    pub objects: Option<Vec<String>>,
}

/// A binary that could not be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", .path.display())]
pub struct QemuError {
    pub path: PathBuf,
    pub problem: QemuProblem,
}

#[derive(Debug, thiserror::Error)]
pub enum QemuProblem {
    /// It could not be run, did not answer in time, or failed.
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("cannot read a version from {banner:?}")]
    NoVersion { banner: String },
    #[error("`-machine help` listed no machine types")]
    NoMachines,
    /// A `--qemu-root` that holds no usable QEMU.
    #[error("{0}")]
    Root(String),
}

impl QemuBinary {
    /// Asks the binary for its version and machine types.
    pub fn inspect(
        path: &Path,
        data_dir: Option<&Path>,
        launch: &Launch,
    ) -> Result<QemuBinary, QemuError> {
        let err = |problem: QemuProblem| QemuError {
            path: path.to_path_buf(),
            problem,
        };
        let banner_text = query(launch, path, data_dir, &["--version"], VERSION_LIMIT)
            .map_err(|e| err(e.into()))?;
        let banner = banner_text.lines().next().unwrap_or_default().to_string();
        let version = Version::parse_banner(&banner).ok_or_else(|| {
            err(QemuProblem::NoVersion {
                banner: banner.clone(),
            })
        })?;
        let help = query(
            launch,
            path,
            data_dir,
            &["-machine", "help"],
            MACHINES_LIMIT,
        )
        .map_err(|e| err(e.into()))?;
        let machines = Machines::parse_help(&help);
        if machines.names.is_empty() {
            return Err(err(QemuProblem::NoMachines));
        }
        // Built-in object types differ by build, not only by version (Debian's QEMU 11.1 has
        // no igvm-cfg). A binary that does not answer is judged by its version.
        let objects = query(launch, path, data_dir, &["-object", "help"], MACHINES_LIMIT)
            .ok()
            .map(|text| parse_object_help(&text));
        Ok(QemuBinary {
            path: path.to_path_buf(),
            data_dir: data_dir.map(Path::to_path_buf),
            launch: launch.clone(),
            version,
            banner,
            machines,
            objects,
        })
    }

    /// The words that start this binary (the binary itself, or a root's loader and the binary).
    pub fn program(&self) -> Vec<String> {
        self.launch.program(&self.path)
    }

    /// A command that starts this binary, its data folder named (`-L`) when it has one.
    pub fn command(&self) -> Command {
        let mut cmd = self.launch.command(&self.path);
        cmd.args(self.data_dir_args());
        cmd
    }

    /// `-L DIR` when the binary needs its data folder named.
    pub fn data_dir_args(&self) -> Vec<String> {
        match &self.data_dir {
            Some(dir) => vec!["-L".into(), dir.display().to_string()],
            None => Vec::new(),
        }
    }

    /// `-machine pflash0=...` exists since QEMU 4.0; before that only `-drive if=pflash`.
    pub fn has_pflash_properties(&self) -> bool {
        self.version >= Version::new(4, 0, 0)
    }

    /// `-object sev-guest` appeared in QEMU 2.12.
    pub fn has_sev(&self) -> bool {
        self.version >= Version::new(2, 12, 0)
    }

    /// `confidential-guest-support` replaced `memory-encryption` in QEMU 6.0.
    pub fn has_confidential_guest_support(&self) -> bool {
        self.version >= Version::new(6, 0, 0)
    }

    /// `sev-guest,kernel-hashes=on` (measured direct boot) appeared in QEMU 6.2.
    pub fn has_kernel_hashes(&self) -> bool {
        self.version >= Version::new(6, 2, 0)
    }

    /// `-shim FILE` (direct kernel boot verified through shim) appeared in QEMU 10.0.
    pub fn has_shim(&self) -> bool {
        self.version >= Version::new(10, 0, 0)
    }

    /// `-object igvm-cfg` appeared in QEMU 10.1, in builds with IGVM support (`-object help`
    /// lists it).
    pub fn has_igvm(&self) -> bool {
        self.version >= Version::new(10, 1, 0) && self.has_object("igvm-cfg")
    }

    /// Whether `-object help` listed `kind`; true when it was not read.
    pub fn has_object(&self, kind: &str) -> bool {
        self.objects
            .as_ref()
            .is_none_or(|o| o.iter().any(|k| k == kind))
    }

    /// A short label for cell ids and tables: `qemu-7.2.22`.
    pub fn label(&self) -> String {
        format!("qemu-{}", self.version)
    }
}

/// The type names of `-object help`: `List of user creatable objects:`, then one indented
/// name per line.
pub fn parse_object_help(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// How long `--version` may take. QEMU answers in milliseconds (it prints and exits before
/// initialising anything), so a binary that takes seconds is broken, and a `--qemu` that hangs
/// should cost no more than this.
pub const VERSION_LIMIT: Duration = Duration::from_secs(5);

/// How long `-machine help` may take: it registers QEMU's types first, still well under a
/// second on a loaded machine.
pub const MACHINES_LIMIT: Duration = Duration::from_secs(10);

/// Runs the binary with `args` and returns its stdout; bounded (the whole process group is
/// killed at `limit`), so a broken binary cannot hang discovery or leave children behind.
fn query(
    launch: &Launch,
    path: &Path,
    data_dir: Option<&Path>,
    args: &[&str],
    limit: Duration,
) -> Result<String, RunError> {
    let mut cmd = launch.command(path);
    if let Some(dir) = data_dir {
        cmd.arg("-L").arg(dir);
    }
    cmd.args(args);
    crate::tools::run_bounded(&mut cmd, limit, &args.join(" "))
}

/// `qemu-system-x86_64` in every `PATH` folder (first one wins for each real file).
pub fn find_in_path(path_var: Option<&std::ffi::OsStr>) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = Vec::new();
    let Some(path_var) = path_var else {
        return found;
    };
    for dir in std::env::split_paths(path_var) {
        let candidate = dir.join(SYSTEM_EMULATOR);
        if !candidate.is_file() {
            continue;
        }
        // /bin and /usr/bin are often the same folder on merged-/usr systems.
        let real = std::fs::canonicalize(&candidate).unwrap_or_else(|_| candidate.clone());
        if !found
            .iter()
            .any(|f| std::fs::canonicalize(f).unwrap_or_else(|_| f.clone()) == real)
        {
            found.push(candidate);
        }
    }
    found
}

/// Parses a `--qemu` argument: `PATH` or `PATH=DATADIR`.
pub fn parse_qemu_arg(arg: &str) -> (PathBuf, Option<PathBuf>) {
    match arg.split_once('=') {
        Some((path, dir)) => (PathBuf::from(path), Some(PathBuf::from(dir))),
        None => (PathBuf::from(arg), None),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn object_help_lists_the_type_names() {
        let help = "List of user creatable objects:\n  authz-list\n  igvm-cfg\n  sev-guest\n";
        assert_eq!(
            parse_object_help(help),
            ["authz-list", "igvm-cfg", "sev-guest"]
        );
    }

    use super::*;

    #[test]
    fn reads_debian_banner() {
        let v =
            Version::parse_banner("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)");
        assert_eq!(v, Some(Version::new(7, 2, 22)));
    }

    #[test]
    fn reads_two_part_version() {
        assert_eq!(
            Version::parse_banner("QEMU emulator version 10.1"),
            Some(Version::new(10, 1, 0))
        );
    }

    #[test]
    fn rejects_banner_without_version() {
        assert_eq!(Version::parse_banner("bash: command not found"), None);
    }

    const HELP: &str = "Supported machines are:
microvm              microvm (i386)
pc                   Standard PC (i440FX + PIIX, 1996) (alias of pc-i440fx-7.2)
pc-i440fx-7.2        Standard PC (i440FX + PIIX, 1996) (default)
pc-i440fx-7.1        Standard PC (i440FX + PIIX, 1996)
q35                  Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-7.2)
pc-q35-7.2           Standard PC (Q35 + ICH9, 2009)
none                 empty machine
";

    #[test]
    fn resolves_q35_alias_to_versioned_machine() {
        let m = Machines::parse_help(HELP);
        assert_eq!(m.resolve("q35"), Some("pc-q35-7.2"));
        assert_eq!(m.resolve("pc"), Some("pc-i440fx-7.2"));
        assert_eq!(m.resolve("pc-i440fx-7.1"), Some("pc-i440fx-7.1"));
        assert_eq!(m.resolve("virt"), None);
        assert!(!m.names.contains(&"q35".to_string()));
    }

    #[test]
    fn a_binary_that_is_no_qemu_is_an_error_naming_it() {
        let e = QemuBinary::inspect(Path::new("/bin/true"), None, &Launch::Direct).unwrap_err();
        assert_eq!(e.path, Path::new("/bin/true"));
        assert!(matches!(&e.problem, QemuProblem::NoVersion { .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with("/bin/true: cannot read a version from \""),
            "{e}"
        );
        let missing = Path::new("/nonexistent/qemu-system-x86_64");
        let e = QemuBinary::inspect(missing, None, &Launch::Direct).unwrap_err();
        assert!(
            matches!(e.problem, QemuProblem::Run(RunError::Spawn { .. })),
            "{e}"
        );
        assert!(
            e.to_string()
                .starts_with("/nonexistent/qemu-system-x86_64: cannot run `--version`: "),
            "{e}"
        );
    }

    #[test]
    fn splits_qemu_arg_with_data_dir() {
        assert_eq!(
            parse_qemu_arg("/opt/q/usr/bin/qemu-system-x86_64=/opt/q/usr/share/qemu"),
            (
                PathBuf::from("/opt/q/usr/bin/qemu-system-x86_64"),
                Some(PathBuf::from("/opt/q/usr/share/qemu"))
            )
        );
        assert_eq!(parse_qemu_arg("qemu"), (PathBuf::from("qemu"), None));
    }
}
