//! QEMU firmware descriptors (`docs/interop/firmware.json`): parsing and discovery.
//!
//! The schema is closed for devices, modes and formats (an unknown value makes the file
//! unusable) but open for features: a newer QEMU may add feature names, and older readers are
//! expected to ignore them, so unknown features are kept as `Feature::Other` and shown.

use std::collections::BTreeMap;
use std::env;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::{Map, Value};

/// One parsed descriptor file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// Where the file was read from.
    pub path: PathBuf,
    /// File name (the key for precedence and sorting), e.g. `50-edk2-x86_64-secure.json`.
    pub name: String,
    pub description: String,
    pub interface_types: Vec<Interface>,
    pub mapping: Mapping,
    pub targets: Vec<Target>,
    pub features: Vec<Feature>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interface {
    Bios,
    OpenFirmware,
    UBoot,
    Uefi,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapping {
    Flash(FlashMapping),
    /// `-kernel FILE`
    Kernel {
        filename: PathBuf,
    },
    /// `-bios FILE`
    Memory {
        filename: PathBuf,
    },
    /// `-object igvm-cfg,file=FILE` (QEMU >= 10.1)
    Igvm {
        filename: PathBuf,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlashMapping {
    /// Absent in the file means `split`.
    pub mode: FlashMode,
    pub executable: FlashFile,
    /// Present (and required) only in `split` mode.
    pub nvram_template: Option<FlashFile>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlashMode {
    Split,
    Combined,
    Stateless,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlashFile {
    pub filename: PathBuf,
    pub format: ImageFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    Raw,
    Qcow2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Architecture {
    Aarch64,
    Arm,
    I386,
    Loongarch64,
    Riscv64,
    X86_64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub architecture: Architecture,
    /// Glob patterns over concrete machine types (`pc-q35-*`).
    pub machines: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Feature {
    AcpiS3,
    AcpiS4,
    AmdSev,
    AmdSevEs,
    AmdSevSnp,
    IntelTdx,
    EnrolledKeys,
    RequiresSmm,
    SecureBoot,
    HostUefiVars,
    VerboseDynamic,
    VerboseStatic,
    /// A name this version of bootmatrix does not know; kept and shown, never fatal.
    Other(String),
}

/// A file that could not be used, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorError {
    pub path: PathBuf,
    /// JSON path of the offending field (`mapping.executable.format`), or empty for the whole file.
    pub field: String,
    pub message: String,
}

/// Everything found in the search folders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    /// Usable descriptors, sorted by file name.
    pub descriptors: Vec<Descriptor>,
    /// Files that were skipped because they are broken, sorted by file name.
    pub errors: Vec<DescriptorError>,
    /// Files hidden by a zero-length file of the same name in a more specific folder.
    pub masked: Vec<PathBuf>,
}

impl fmt::Display for DescriptorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field.as_str() {
            "" => write!(f, "{}: {}", self.path.display(), self.message),
            field => write!(f, "{}: {field}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for DescriptorError {}

/// The closed vocabularies of the schema: one table per type gives the spelling for `Display`,
/// parsing, and the list of allowed values in error messages, so the three cannot drift apart.
macro_rules! keywords {
    ($ty:ident, $kind:literal { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in schema order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The spelling used in descriptor files.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            /// A message naming the bad value and the allowed ones.
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|k| k.as_str() == s)
                    .ok_or_else(|| unknown($kind, s, &[$($name),+]))
            }
        }
    };
}

fn unknown(kind: &str, value: &str, allowed: &[&str]) -> String {
    let expected = match allowed {
        [rest @ .., last] if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => allowed.join(""),
    };
    format!("unknown {kind} {value:?} (expected {expected})")
}

keywords!(Interface, "interface type" {
    Bios => "bios",
    OpenFirmware => "openfirmware",
    UBoot => "uboot",
    Uefi => "uefi",
});

keywords!(FlashMode, "mode" {
    Split => "split",
    Combined => "combined",
    Stateless => "stateless",
});

keywords!(ImageFormat, "format" {
    Raw => "raw",
    Qcow2 => "qcow2",
});

keywords!(Architecture, "architecture" {
    Aarch64 => "aarch64",
    Arm => "arm",
    I386 => "i386",
    Loongarch64 => "loongarch64",
    Riscv64 => "riscv64",
    X86_64 => "x86_64",
});

/// `mapping.device`: only used to pick the `Mapping` variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Device {
    Flash,
    Kernel,
    Memory,
    Igvm,
}

keywords!(Device, "device" {
    Flash => "flash",
    Kernel => "kernel",
    Memory => "memory",
    Igvm => "igvm",
});

impl Feature {
    /// Every feature this version knows, in schema order.
    pub const KNOWN: [Feature; 12] = [
        Feature::AcpiS3,
        Feature::AcpiS4,
        Feature::AmdSev,
        Feature::AmdSevEs,
        Feature::AmdSevSnp,
        Feature::IntelTdx,
        Feature::EnrolledKeys,
        Feature::RequiresSmm,
        Feature::SecureBoot,
        Feature::HostUefiVars,
        Feature::VerboseDynamic,
        Feature::VerboseStatic,
    ];

    /// The spelling used in descriptor files.
    pub fn as_str(&self) -> &str {
        match self {
            Feature::AcpiS3 => "acpi-s3",
            Feature::AcpiS4 => "acpi-s4",
            Feature::AmdSev => "amd-sev",
            Feature::AmdSevEs => "amd-sev-es",
            Feature::AmdSevSnp => "amd-sev-snp",
            Feature::IntelTdx => "intel-tdx",
            Feature::EnrolledKeys => "enrolled-keys",
            Feature::RequiresSmm => "requires-smm",
            Feature::SecureBoot => "secure-boot",
            Feature::HostUefiVars => "host-uefi-vars",
            Feature::VerboseDynamic => "verbose-dynamic",
            Feature::VerboseStatic => "verbose-static",
            Feature::Other(name) => name,
        }
    }

    /// Never fails: unknown names become `Other`, as the schema asks readers to tolerate them.
    pub fn parse(name: &str) -> Feature {
        Self::KNOWN
            .into_iter()
            .find(|f| f.as_str() == name)
            .unwrap_or_else(|| Feature::Other(name.to_owned()))
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Descriptor {
    pub fn has(&self, feature: &Feature) -> bool {
        self.features.contains(feature)
    }

    /// Whether a concrete machine type (`pc-q35-7.2`) of `arch` matches one of the targets.
    pub fn supports(&self, arch: Architecture, machine: &str) -> bool {
        self.targets
            .iter()
            .any(|t| t.architecture == arch && t.machines.iter().any(|p| glob_match(p, machine)))
    }

    /// Feature names this version does not know, in file order.
    pub fn unknown_features(&self) -> Vec<&str> {
        self.features
            .iter()
            .filter_map(|f| match f {
                Feature::Other(name) => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// Parses one descriptor. `path` is only used for `name` and error reports.
pub fn parse(path: &Path, text: &str) -> Result<Descriptor, DescriptorError> {
    let value: Value = serde_json::from_str(text).map_err(|e| DescriptorError {
        path: path.to_path_buf(),
        field: String::new(),
        message: format!("invalid JSON: {e}"),
    })?;
    let root = Node {
        value: &value,
        field: String::new(),
        file: path,
    };
    // Fields are read in schema order, so the first error reported is the first in the file.
    Ok(Descriptor {
        path: path.to_path_buf(),
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        description: root.get("description")?.str()?.to_owned(),
        interface_types: root.get("interface-types")?.list(Node::keyword)?,
        mapping: parse_mapping(&root.get("mapping")?)?,
        targets: root.get("targets")?.list(parse_target)?,
        features: root
            .get("features")?
            .list(|n| n.str().map(Feature::parse))?,
        // `tags` is free-form and the spec tells management software to ignore it.
    })
}

fn parse_mapping(node: &Node) -> Result<Mapping, DescriptorError> {
    Ok(match node.get("device")?.keyword()? {
        Device::Flash => Mapping::Flash(parse_flash(node)?),
        Device::Kernel => Mapping::Kernel {
            filename: node.get("filename")?.path()?,
        },
        Device::Memory => Mapping::Memory {
            filename: node.get("filename")?.path()?,
        },
        Device::Igvm => Mapping::Igvm {
            filename: node.get("filename")?.path()?,
        },
    })
}

fn parse_flash(node: &Node) -> Result<FlashMapping, DescriptorError> {
    let mode = match node.opt("mode")? {
        Some(mode) => mode.keyword()?,
        None => FlashMode::Split,
    };
    let executable = parse_flash_file(&node.get("executable")?)?;
    let nvram_template = match (mode, node.opt("nvram-template")?) {
        (FlashMode::Split, Some(nvram)) => Some(parse_flash_file(&nvram)?),
        (FlashMode::Split, None) => {
            return Err(node.child_err(
                "nvram-template",
                "missing mandatory key \"nvram-template\" (required in split mode)",
            ))
        }
        (_, None) => None,
        // A template next to a combined or stateless image means the author misunderstood the
        // mode; guessing which of the two they meant could boot the wrong varstore.
        (mode, Some(nvram)) => {
            return Err(nvram.err(format!(
                "\"nvram-template\" must be absent in {mode} mode (only split mode has one)"
            )))
        }
    };
    Ok(FlashMapping {
        mode,
        executable,
        nvram_template,
    })
}

fn parse_flash_file(node: &Node) -> Result<FlashFile, DescriptorError> {
    Ok(FlashFile {
        filename: node.get("filename")?.path()?,
        format: node.get("format")?.keyword()?,
    })
}

fn parse_target(node: &Node) -> Result<Target, DescriptorError> {
    Ok(Target {
        architecture: node.get("architecture")?.keyword()?,
        machines: node.get("machines")?.list(|n| n.str().map(str::to_owned))?,
    })
}

/// A JSON value together with its dotted path (`targets[0].architecture`), so that every error
/// names the exact field; serde's derive would only give line and column.
struct Node<'v> {
    value: &'v Value,
    field: String,
    file: &'v Path,
}

impl<'v> Node<'v> {
    fn err(&self, message: impl Into<String>) -> DescriptorError {
        DescriptorError {
            path: self.file.to_path_buf(),
            field: self.field.clone(),
            message: message.into(),
        }
    }

    fn child_field(&self, key: &str) -> String {
        match self.field.as_str() {
            "" => key.to_owned(),
            parent => format!("{parent}.{key}"),
        }
    }

    fn child_err(&self, key: &str, message: impl Into<String>) -> DescriptorError {
        DescriptorError {
            field: self.child_field(key),
            ..self.err(message)
        }
    }

    fn type_err(&self, expected: &str) -> DescriptorError {
        let found = match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        };
        self.err(format!("expected {expected}, found {found}"))
    }

    fn object(&self) -> Result<&'v Map<String, Value>, DescriptorError> {
        self.value
            .as_object()
            .ok_or_else(|| self.type_err("an object"))
    }

    fn opt(&self, key: &str) -> Result<Option<Node<'v>>, DescriptorError> {
        Ok(self.object()?.get(key).map(|value| Node {
            value,
            field: self.child_field(key),
            file: self.file,
        }))
    }

    fn get(&self, key: &str) -> Result<Node<'v>, DescriptorError> {
        self.opt(key)?
            .ok_or_else(|| self.child_err(key, format!("missing mandatory key {key:?}")))
    }

    fn list<T>(
        &self,
        item: impl Fn(&Node<'v>) -> Result<T, DescriptorError>,
    ) -> Result<Vec<T>, DescriptorError> {
        let items = self
            .value
            .as_array()
            .ok_or_else(|| self.type_err("an array"))?;
        items
            .iter()
            .enumerate()
            .map(|(i, value)| {
                item(&Node {
                    value,
                    field: format!("{}[{i}]", self.field),
                    file: self.file,
                })
            })
            .collect()
    }

    fn str(&self) -> Result<&'v str, DescriptorError> {
        self.value.as_str().ok_or_else(|| self.type_err("a string"))
    }

    fn path(&self) -> Result<PathBuf, DescriptorError> {
        self.str().map(PathBuf::from)
    }

    fn keyword<T: FromStr<Err = String>>(&self) -> Result<T, DescriptorError> {
        self.str()?
            .parse()
            .map_err(|message: String| self.err(message))
    }
}

/// Shell-style matching as QEMU's machine globs need it: `*`, `?`, `[...]` classes (with `!` or
/// `^` negation and `a-z` ranges) and `\` escapes. The whole text must match.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let tokens = tokenize(pattern);
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // After a mismatch, let the last `*` swallow one more character and retry from there;
    // earlier stars never need revisiting, which keeps this linear-ish with no recursion.
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Token::Star) => {
                p += 1;
                backtrack = Some((p, t));
                continue;
            }
            Some(token) if token.matches(text[t]) => {
                p += 1;
                t += 1;
                continue;
            }
            _ => {}
        }
        match backtrack {
            Some((star_p, star_t)) => {
                backtrack = Some((star_p, star_t + 1));
                (p, t) = (star_p, star_t + 1);
            }
            None => return false,
        }
    }
    tokens[p..].iter().all(|token| matches!(token, Token::Star))
}

enum Token {
    Star,
    Any,
    Char(char),
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Token {
    fn matches(&self, c: char) -> bool {
        match self {
            Token::Star | Token::Any => true,
            Token::Char(x) => *x == c,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&c)) != *negated
            }
        }
    }
}

fn tokenize(pattern: &str) -> Vec<Token> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        tokens.push(match chars[i] {
            '*' => Token::Star,
            '?' => Token::Any,
            '\\' if i + 1 < chars.len() => {
                i += 1;
                Token::Char(chars[i])
            }
            '[' => match parse_class(&chars[i + 1..]) {
                Some((class, used)) => {
                    i += used;
                    class
                }
                // As in fnmatch(3), an unterminated class is a literal `[`.
                None => Token::Char('['),
            },
            c => Token::Char(c),
        });
        i += 1;
    }
    tokens
}

/// Parses what follows a `[`; returns the class and how many characters it took, `]` included.
fn parse_class(chars: &[char]) -> Option<(Token, usize)> {
    let negated = matches!(chars.first(), Some('!' | '^'));
    let start = usize::from(negated);
    let mut ranges = Vec::new();
    let mut i = start;
    loop {
        let c = *chars.get(i)?;
        // A `]` first in the class is a member, so `[]]` matches `]`.
        if c == ']' && i > start {
            return Some((Token::Class { negated, ranges }, i + 1));
        }
        match (chars.get(i + 1), chars.get(i + 2)) {
            // A `-` just before the closing `]` is a literal, as in `[a-]`.
            (Some('-'), Some(&hi)) if hi != ']' => {
                ranges.push((c, hi));
                i += 3;
            }
            _ => {
                ranges.push((c, c));
                i += 1;
            }
        }
    }
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
    /// Zero-length (or a link to /dev/null): hides the name in less specific folders.
    empty: bool,
}

/// Lists, merges and parses descriptors from `dirs` (general to specific). Never fails as a
/// whole: unreadable folders and broken files are reported in `errors`, folder errors first.
pub fn discover(dirs: &[PathBuf]) -> Discovery {
    let mut out = Discovery::default();
    // File name -> entries from general to specific; the BTreeMap gives the spec's sort order.
    let mut by_name: BTreeMap<String, Vec<Candidate>> = BTreeMap::new();
    for dir in dirs {
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
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            let path = entry.path();
            // fs::metadata follows symlinks, so links to regular files count as files.
            let empty = match fs::metadata(&path) {
                Ok(meta) if meta.is_file() => meta.len() == 0,
                // systemd-style masking with a link to /dev/null.
                Ok(_) if fs::canonicalize(&path).is_ok_and(|p| p == Path::new("/dev/null")) => true,
                Ok(_) => continue,
                // A dangling link: keep it so that reading it reports the problem by path.
                Err(_) => false,
            };
            by_name
                .entry(name)
                .or_default()
                .push(Candidate { path, empty });
        }
    }
    for candidates in by_name.into_values() {
        let Some((winner, hidden)) = candidates.split_last() else {
            continue;
        };
        if winner.empty {
            let hidden = hidden.iter().filter(|c| !c.empty);
            out.masked.extend(hidden.map(|c| c.path.clone()));
            continue;
        }
        let result = fs::read_to_string(&winner.path)
            .map_err(|e| DescriptorError {
                path: winner.path.clone(),
                field: String::new(),
                message: format!("cannot read file: {e}"),
            })
            .and_then(|text| parse(&winner.path, &text));
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
    use rstest::rstest;
    use serde_json::json;
    use tempfile::TempDir;

    const TEST_PATH: &str = "/etc/qemu/firmware/50-test.json";

    fn base() -> Value {
        json!({
            "description": "test firmware",
            "interface-types": ["uefi"],
            "mapping": {
                "device": "flash",
                "executable": {"filename": "/fw/CODE.fd", "format": "raw"},
                "nvram-template": {"filename": "/fw/VARS.fd", "format": "raw"}
            },
            "targets": [{"architecture": "x86_64", "machines": ["pc-q35-*", "pc-i440fx-*"]}],
            "features": ["acpi-s3", "secure-boot"],
            "tags": []
        })
    }

    /// `base()` with `key` of the object at JSON pointer `parent` set to `value`, or removed.
    fn edited(parent: &str, key: &str, value: Option<Value>) -> Value {
        let mut v = base();
        let obj = v
            .pointer_mut(parent)
            .and_then(Value::as_object_mut)
            .expect("test pointer names an object");
        match value {
            Some(value) => obj.insert(key.to_owned(), value),
            None => obj.remove(key),
        };
        v
    }

    fn parse_value(v: &Value) -> Result<Descriptor, DescriptorError> {
        parse(Path::new(TEST_PATH), &v.to_string())
    }

    fn file(filename: &str, format: ImageFormat) -> FlashFile {
        FlashFile {
            filename: filename.into(),
            format,
        }
    }

    fn raw(filename: &str) -> FlashFile {
        file(filename, ImageFormat::Raw)
    }

    fn flash(mode: FlashMode, executable: FlashFile, nvram_template: Option<FlashFile>) -> Mapping {
        Mapping::Flash(FlashMapping {
            mode,
            executable,
            nvram_template,
        })
    }

    fn names(features: &[Feature]) -> String {
        features
            .iter()
            .map(Feature::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn parses_a_complete_descriptor() {
        let d = parse_value(&base()).expect("base descriptor is valid");
        assert_eq!(d.path, Path::new(TEST_PATH));
        assert_eq!(d.name, "50-test.json");
        assert_eq!(d.description, "test firmware");
        assert_eq!(d.interface_types, [Interface::Uefi]);
        let code = raw("/fw/CODE.fd");
        assert_eq!(
            d.mapping,
            flash(FlashMode::Split, code, Some(raw("/fw/VARS.fd")))
        );
        assert_eq!(
            d.targets,
            [Target {
                architecture: Architecture::X86_64,
                machines: vec!["pc-q35-*".into(), "pc-i440fx-*".into()],
            }]
        );
        assert_eq!(d.features, [Feature::AcpiS3, Feature::SecureBoot]);
    }

    #[rstest]
    #[case::flash_default_split(
        json!({"device": "flash",
               "executable": {"filename": "/c.fd", "format": "raw"},
               "nvram-template": {"filename": "/v.fd", "format": "raw"}}),
        flash(FlashMode::Split, raw("/c.fd"), Some(raw("/v.fd"))),
    )]
    #[case::flash_explicit_split(
        json!({"device": "flash", "mode": "split",
               "executable": {"filename": "/c.fd", "format": "raw"},
               "nvram-template": {"filename": "/v.fd", "format": "raw"}}),
        flash(FlashMode::Split, raw("/c.fd"), Some(raw("/v.fd"))),
    )]
    #[case::flash_combined(
        json!({"device": "flash", "mode": "combined",
               "executable": {"filename": "/all.fd", "format": "raw"}}),
        flash(FlashMode::Combined, raw("/all.fd"), None),
    )]
    #[case::flash_stateless(
        json!({"device": "flash", "mode": "stateless",
               "executable": {"filename": "/tdx.fd", "format": "raw"}}),
        flash(FlashMode::Stateless, raw("/tdx.fd"), None),
    )]
    #[case::flash_qcow2(
        json!({"device": "flash",
               "executable": {"filename": "/c.qcow2", "format": "qcow2"},
               "nvram-template": {"filename": "/v.qcow2", "format": "qcow2"}}),
        flash(FlashMode::Split, file("/c.qcow2", ImageFormat::Qcow2),
              Some(file("/v.qcow2", ImageFormat::Qcow2))),
    )]
    #[case::kernel(
        json!({"device": "kernel", "filename": "/u-boot.elf"}),
        Mapping::Kernel { filename: "/u-boot.elf".into() },
    )]
    #[case::memory(
        json!({"device": "memory", "filename": "/bios.bin"}),
        Mapping::Memory { filename: "/bios.bin".into() },
    )]
    #[case::igvm(
        json!({"device": "igvm", "filename": "/svsm.igvm"}),
        Mapping::Igvm { filename: "/svsm.igvm".into() },
    )]
    fn parses_every_mapping(#[case] mapping: Value, #[case] expected: Mapping) {
        let d = parse_value(&edited("", "mapping", Some(mapping))).expect("valid mapping");
        assert_eq!(d.mapping, expected);
    }

    #[rstest]
    // Each mandatory key, at every level.
    #[case(
        "",
        "description",
        None,
        "description",
        r#"missing mandatory key "description""#
    )]
    #[case(
        "",
        "interface-types",
        None,
        "interface-types",
        "missing mandatory key"
    )]
    #[case("", "mapping", None, "mapping", "missing mandatory key")]
    #[case("", "targets", None, "targets", "missing mandatory key")]
    #[case("", "features", None, "features", "missing mandatory key")]
    #[case("/mapping", "device", None, "mapping.device", "missing mandatory key")]
    #[case(
        "/mapping",
        "executable",
        None,
        "mapping.executable",
        "missing mandatory key"
    )]
    #[case(
        "/mapping/executable",
        "filename",
        None,
        "mapping.executable.filename",
        "missing mandatory key"
    )]
    #[case(
        "/mapping/nvram-template",
        "format",
        None,
        "mapping.nvram-template.format",
        "missing mandatory key"
    )]
    #[case(
        "/targets/0",
        "architecture",
        None,
        "targets[0].architecture",
        "missing"
    )]
    #[case("/targets/0", "machines", None, "targets[0].machines", "missing")]
    #[case("/mapping", "device", Some(json!("kernel")), "mapping.filename", "missing")]
    // The nvram-template rule of each mode.
    #[case(
        "/mapping",
        "nvram-template",
        None,
        "mapping.nvram-template",
        "required in split mode"
    )]
    #[case(
        "/mapping",
        "mode",
        Some(json!("combined")),
        "mapping.nvram-template",
        "must be absent in combined mode"
    )]
    #[case(
        "/mapping",
        "mode",
        Some(json!("stateless")),
        "mapping.nvram-template",
        "must be absent in stateless mode"
    )]
    // Values outside the closed vocabularies.
    #[case(
        "/mapping",
        "device",
        Some(json!("rom")),
        "mapping.device",
        r#"unknown device "rom" (expected flash, kernel, memory or igvm)"#
    )]
    #[case(
        "/mapping",
        "mode",
        Some(json!("hybrid")),
        "mapping.mode",
        r#"unknown mode "hybrid" (expected split, combined or stateless)"#
    )]
    #[case(
        "/mapping/executable",
        "format",
        Some(json!("vmdk")),
        "mapping.executable.format",
        r#"unknown format "vmdk" (expected raw or qcow2)"#
    )]
    #[case(
        "/targets/0",
        "architecture",
        Some(json!("mips")),
        "targets[0].architecture",
        r#"unknown architecture "mips" (expected aarch64, arm, i386, loongarch64, riscv64 or x86_64)"#
    )]
    #[case(
        "",
        "interface-types",
        Some(json!(["uefi", "efi"])),
        "interface-types[1]",
        r#"unknown interface type "efi" (expected bios, openfirmware, uboot or uefi)"#
    )]
    // Wrong JSON types.
    #[case("", "description", Some(json!(5)), "description", "expected a string, found a number")]
    #[case("", "interface-types", Some(json!("uefi")), "interface-types", "expected an array")]
    #[case("", "mapping", Some(json!([])), "mapping", "expected an object, found an array")]
    #[case("", "targets", Some(json!(["x86_64"])), "targets[0]", "expected an object")]
    #[case("", "features", Some(json!([true])), "features[0]", "found a boolean")]
    #[case(
        "/mapping",
        "executable",
        Some(Value::Null),
        "mapping.executable",
        "found null"
    )]
    #[case(
        "/targets/0",
        "machines",
        Some(json!(["pc-q35-*", 7])),
        "targets[0].machines[1]",
        "expected a string, found a number"
    )]
    fn rejects(
        #[case] parent: &str,
        #[case] key: &str,
        #[case] value: Option<Value>,
        #[case] field: &str,
        #[case] message: &str,
    ) {
        let err = parse_value(&edited(parent, key, value)).expect_err("must be rejected");
        assert_eq!(err.path, Path::new(TEST_PATH));
        assert_eq!(err.field, field, "{err}");
        assert!(err.message.contains(message), "{err}");
    }

    #[test]
    fn broken_json_reports_line_and_column() {
        let text = "{\n  \"description\": \"x\",\n  \"mapping\": {,\n}";
        let err = parse(Path::new(TEST_PATH), text).expect_err("broken JSON");
        assert_eq!(err.field, "");
        assert!(err.message.contains("line 3 column"), "{err}");
    }

    #[test]
    fn rejects_a_file_that_is_not_an_object() {
        let err = parse(Path::new(TEST_PATH), "[1]").expect_err("not an object");
        assert_eq!(err.field, "");
        assert_eq!(err.message, "expected an object, found an array");
    }

    #[test]
    fn keeps_unknown_features() {
        let features = json!(["secure-boot", "x-new-thing", "acpi-s4"]);
        let d = parse_value(&edited("", "features", Some(features))).expect("valid");
        assert_eq!(
            d.features,
            [
                Feature::SecureBoot,
                Feature::Other("x-new-thing".into()),
                Feature::AcpiS4
            ]
        );
        assert_eq!(d.unknown_features(), ["x-new-thing"]);
        assert!(d.has(&Feature::SecureBoot));
        assert!(!d.has(&Feature::EnrolledKeys));
    }

    #[rstest]
    #[case::tags_absent("tags", None)]
    #[case::tags_not_even_an_array("tags", Some(json!({"free": "form"})))]
    #[case::unknown_top_level_key("x-vendor", Some(json!([1, 2, 3])))]
    fn ignores_tags_and_unknown_keys(#[case] key: &str, #[case] value: Option<Value>) {
        let d = parse_value(&edited("", key, value)).expect("still valid");
        assert_eq!(d, parse_value(&base()).expect("base is valid"));
    }

    #[test]
    fn spellings_round_trip() {
        for f in Feature::KNOWN {
            assert_eq!(Feature::parse(f.as_str()), f);
            assert_eq!(f.to_string(), f.as_str());
        }
        assert_eq!(Feature::parse("x-new").to_string(), "x-new");
        for a in Architecture::ALL {
            assert_eq!(a.to_string().parse(), Ok(*a));
        }
        for i in Interface::ALL {
            assert_eq!(i.to_string().parse(), Ok(*i));
        }
        assert_eq!(FlashMode::Stateless.to_string(), "stateless");
        assert_eq!(ImageFormat::Qcow2.to_string(), "qcow2");
        assert_eq!(Interface::OpenFirmware.to_string(), "openfirmware");
    }

    #[rstest]
    #[case("pc-q35-*", "pc-q35-7.2", true)]
    #[case("pc-q35-*", "q35", false)]
    #[case("pc-q35-*", "pc-q35-", true)]
    #[case("pc-q35-*", "pc-i440fx-7.2", false)]
    #[case("pc-i440fx-?.*", "pc-i440fx-8.2", true)]
    #[case("pc-i440fx-?.*", "pc-i440fx-10.0", false)]
    #[case("virt", "virt", true)]
    #[case("virt", "virt-9.0", false)]
    #[case("virt*", "virt-9.0", true)]
    #[case("*-7.2", "pc-q35-7.2", true)]
    #[case("a*b*c", "axxbyyc", true)]
    #[case("a*b*c", "axxbyyca", false)]
    #[case("*", "", true)]
    #[case("", "", true)]
    #[case("", "x", false)]
    #[case("pc-[iq]*", "pc-q35-1", true)]
    #[case("pc-[!q]*", "pc-q35-1", false)]
    #[case("pc-[^q]*", "pc-i440fx-1", true)]
    #[case("[0-9].[0-9]", "7.2", true)]
    #[case("[0-9].[0-9]", "x.2", false)]
    #[case("[]]", "]", true)]
    #[case("[a-]", "-", true)]
    #[case("[abc", "[abc", true)]
    #[case(r"\*", "*", true)]
    #[case(r"\*", "x", false)]
    #[case("ü?", "üx", true)]
    fn globs(#[case] pattern: &str, #[case] text: &str, #[case] expected: bool) {
        assert_eq!(glob_match(pattern, text), expected);
    }

    #[rstest]
    #[case(Architecture::X86_64, "pc-q35-7.2", true)]
    #[case(Architecture::X86_64, "pc-i440fx-2.12", true)]
    #[case(Architecture::X86_64, "q35", false)]
    #[case(Architecture::Aarch64, "pc-q35-7.2", false)]
    fn supports_machines(#[case] arch: Architecture, #[case] machine: &str, #[case] ok: bool) {
        let d = parse_value(&base()).expect("valid");
        assert_eq!(d.supports(arch, machine), ok);
    }

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
        edited("", "description", Some(json!(description))).to_string()
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
        let found = discover(&dirs);
        assert_eq!(descriptions(&found), ["etc"]);
        assert_eq!(found.descriptors[0].path, etc);
        assert!(found.errors.is_empty() && found.masked.is_empty());
    }

    #[test]
    fn only_the_winner_is_parsed() {
        let (_tmp, dirs) = folders();
        write(&dirs[0], "50-a.json", "{ broken");
        write(&dirs[1], "50-a.json", &good("etc"));
        let found = discover(&dirs);
        assert_eq!(descriptions(&found), ["etc"]);
        assert!(found.errors.is_empty());
    }

    #[test]
    fn zero_length_file_masks_less_specific_ones() {
        let (_tmp, dirs) = folders();
        let usr = write(&dirs[0], "50-a.json", &good("usr"));
        let etc = write(&dirs[1], "50-a.json", &good("etc"));
        write(&dirs[2], "50-a.json", "");
        // An empty file with nothing below it hides nothing and is no error.
        write(&dirs[1], "60-b.json", "");
        let found = discover(&dirs);
        assert_eq!(
            found,
            Discovery {
                masked: vec![usr, etc],
                ..Discovery::default()
            }
        );
    }

    #[test]
    fn dev_null_link_masks_too() {
        let (_tmp, dirs) = folders();
        let usr = write(&dirs[0], "50-a.json", &good("usr"));
        std::os::unix::fs::symlink("/dev/null", dirs[1].join("50-a.json")).expect("symlink");
        let found = discover(&dirs);
        assert!(found.descriptors.is_empty() && found.errors.is_empty());
        assert_eq!(found.masked, [usr]);
    }

    #[test]
    fn more_specific_file_unmasks() {
        let (_tmp, dirs) = folders();
        write(&dirs[0], "50-a.json", &good("usr"));
        write(&dirs[1], "50-a.json", "");
        write(&dirs[2], "50-a.json", &good("user"));
        let found = discover(&dirs);
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
        let found = discover(&dirs);
        assert_eq!(descriptions(&found), ["a", "x", "b", "c"]);
        let names: Vec<&str> = found.descriptors.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["10-a.json", "20-x.json", "30-b.json", "60-c.json"]);
    }

    #[test]
    fn broken_file_does_not_stop_the_others() {
        let (_tmp, dirs) = folders();
        write(&dirs[1], "10-good.json", &good("first"));
        let broken = write(&dirs[1], "20-broken.json", "{\n  \"description\": \n");
        let unknown = edited("/mapping", "device", Some(json!("rom"))).to_string();
        let wrong = write(&dirs[0], "25-wrong.json", &unknown);
        write(&dirs[2], "30-good.json", &good("second"));
        let found = discover(&dirs);
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
        let found = discover(&dirs);
        assert_eq!(descriptions(&found), ["etc"]);
        assert!(found.errors.is_empty());
    }

    #[test]
    fn unreadable_folder_is_an_error() {
        let (_tmp, dirs) = folders();
        write(&dirs[1], "50-a.json", &good("etc"));
        // Tests run as root in CI, where permissions do not stop reading; a file does.
        let not_a_dir = write(&dirs[0], "firmware", "");
        let found = discover(&[not_a_dir.clone(), dirs[1].clone()]);
        assert_eq!(descriptions(&found), ["etc"]);
        assert_eq!(found.errors.len(), 1);
        assert_eq!(found.errors[0].path, not_a_dir);
        assert_eq!(found.errors[0].field, "");
    }

    #[test]
    fn lists_only_json_files_and_links_to_them() {
        let (tmp, dirs) = folders();
        write(&dirs[1], ".50-hidden.json", &good("hidden"));
        write(&dirs[1], "50-readme.txt", &good("txt"));
        write(&dirs[1], "50-a.json.bak", &good("bak"));
        fs::create_dir(dirs[1].join("50-dir.json")).expect("mkdir");
        let target = write(tmp.path(), "elsewhere.json", &good("linked"));
        std::os::unix::fs::symlink(&target, dirs[1].join("70-link.json")).expect("symlink");
        let found = discover(&dirs);
        assert_eq!(descriptions(&found), ["linked"]);
        assert_eq!(found.descriptors[0].name, "70-link.json");
        assert!(found.errors.is_empty());
    }

    #[rstest]
    #[case::dangling_link(None)]
    #[case::not_utf8(Some(&b"{\"description\": \"\xff\"}"[..]))]
    fn unreadable_file_is_an_error_naming_it(#[case] content: Option<&[u8]>) {
        let (tmp, dirs) = folders();
        let path = dirs[1].join("50-a.json");
        match content {
            Some(bytes) => fs::write(&path, bytes).expect("write"),
            None => {
                std::os::unix::fs::symlink(tmp.path().join("gone.json"), &path).expect("symlink")
            }
        }
        write(&dirs[1], "60-b.json", &good("b"));
        let found = discover(&dirs);
        assert_eq!(descriptions(&found), ["b"]);
        assert_eq!(found.errors.len(), 1);
        assert_eq!(found.errors[0].path, path);
        assert!(
            found.errors[0].message.starts_with("cannot read file"),
            "{}",
            found.errors[0]
        );
    }

    fn data_dir(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name)
    }

    fn load(dir: &str, name: &str) -> Result<Descriptor, DescriptorError> {
        let path = data_dir(dir).join(name);
        let text = fs::read_to_string(&path).expect("test data is readable");
        parse(&path, &text)
    }

    #[rstest]
    #[case(
        "40-edk2-x86_64-secure-enrolled.json",
        flash(
            FlashMode::Split,
            raw("/usr/share/OVMF/OVMF_CODE_4M.ms.fd"),
            Some(raw("/usr/share/OVMF/OVMF_VARS_4M.ms.fd"))
        ),
        "acpi-s3 amd-sev enrolled-keys requires-smm secure-boot verbose-dynamic"
    )]
    #[case(
        "50-edk2-x86_64-secure.json",
        flash(
            FlashMode::Split,
            raw("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"),
            Some(raw("/usr/share/OVMF/OVMF_VARS_4M.fd"))
        ),
        "acpi-s3 amd-sev requires-smm secure-boot verbose-dynamic"
    )]
    #[case(
        "60-edk2-x86_64.json",
        flash(
            FlashMode::Split,
            raw("/usr/share/OVMF/OVMF_CODE_4M.fd"),
            Some(raw("/usr/share/OVMF/OVMF_VARS_4M.fd"))
        ),
        "acpi-s3 amd-sev verbose-dynamic"
    )]
    #[case(
        "60-edk2-ovmf-x64-stateless.json",
        flash(
            FlashMode::Stateless,
            raw("/usr/share/edk2/ovmf/OVMF.inteltdx.fd"),
            None
        ),
        "intel-tdx verbose-dynamic"
    )]
    #[case(
        "60-edk2-ovmf-x64-amdsev.json",
        Mapping::Memory { filename: "/usr/share/edk2/ovmf/OVMF.amdsev.fd".into() },
        "amd-sev amd-sev-es amd-sev-snp verbose-dynamic"
    )]
    #[case(
        "60-edk2-aarch64-qcow2.json",
        flash(
            FlashMode::Split,
            file(
                "/usr/share/edk2/aarch64/QEMU_EFI-silent-pflash.qcow2",
                ImageFormat::Qcow2
            ),
            Some(file(
                "/usr/share/edk2/aarch64/vars-template-pflash.qcow2",
                ImageFormat::Qcow2
            ))
        ),
        "verbose-static"
    )]
    #[case(
        "70-svsm-x86_64-igvm.json",
        Mapping::Igvm { filename: "/usr/share/coconut-svsm/svsm.igvm".into() },
        "amd-sev-snp"
    )]
    #[case(
        "80-seabios-bios-256k.json",
        Mapping::Memory { filename: "/usr/share/seabios/bios-256k.bin".into() },
        ""
    )]
    #[case(
        "85-u-boot-riscv64.json",
        Mapping::Kernel { filename: "/usr/lib/u-boot/qemu-riscv64_smode/uboot.elf".into() },
        ""
    )]
    #[case(
        "90-edk2-loongarch64-future.json",
        flash(
            FlashMode::Combined,
            raw("/usr/share/edk2/loongarch64/QEMU_EFI_VARS.fd"),
            None
        ),
        "acpi-s3 x-future-measured-boot"
    )]
    fn golden(#[case] name: &str, #[case] mapping: Mapping, #[case] features: &str) {
        let d = load("descriptors", name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.name, name);
        assert_eq!(d.mapping, mapping);
        assert_eq!(names(&d.features), features);
    }

    #[test]
    fn golden_folder() {
        let found = discover(&[data_dir("descriptors")]);
        assert!(found.errors.is_empty(), "{:?}", found.errors);
        let names: Vec<&str> = found.descriptors.iter().map(|d| d.name.as_str()).collect();
        // Every file here must also have a `golden` case above.
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

    #[rstest]
    #[case("broken-json.json", "", "line 6 column")]
    #[case("not-an-object.json", "", "expected an object, found an array")]
    #[case("missing-description.json", "description", "missing mandatory key")]
    #[case(
        "missing-executable.json",
        "mapping.executable",
        "missing mandatory key"
    )]
    #[case(
        "missing-nvram-template.json",
        "mapping.nvram-template",
        "required in split mode"
    )]
    #[case(
        "combined-with-nvram-template.json",
        "mapping.nvram-template",
        "combined mode"
    )]
    #[case(
        "stateless-with-nvram-template.json",
        "mapping.nvram-template",
        "stateless mode"
    )]
    #[case("unknown-device.json", "mapping.device", r#"unknown device "rom""#)]
    #[case("unknown-mode.json", "mapping.mode", r#"unknown mode "hybrid""#)]
    #[case(
        "unknown-format.json",
        "mapping.executable.format",
        r#"unknown format "vmdk""#
    )]
    #[case(
        "unknown-architecture.json",
        "targets[0].architecture",
        r#""mips64el""#
    )]
    #[case(
        "unknown-interface.json",
        "interface-types[0]",
        r#"unknown interface type "efi""#
    )]
    #[case(
        "wrong-type.json",
        "targets[0].machines",
        "expected an array, found a string"
    )]
    fn golden_broken(#[case] name: &str, #[case] field: &str, #[case] message: &str) {
        let err = load("descriptors-broken", name).expect_err("broken test file");
        assert_eq!(err.path, data_dir("descriptors-broken").join(name));
        assert_eq!(err.field, field, "{err}");
        assert!(err.message.contains(message), "{err}");
    }

    #[test]
    fn golden_broken_folder() {
        let found = discover(&[data_dir("descriptors-broken")]);
        assert!(found.descriptors.is_empty());
        // Every file here must also have a `golden_broken` case above.
        assert_eq!(found.errors.len(), 13);
    }
}
