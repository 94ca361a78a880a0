//! QEMU firmware descriptors (`docs/interop/firmware.json`): parsing. Finding them is
//! [`crate::discover::search`].
//!
//! The schema is closed for devices, modes and formats (an unknown value makes the file
//! unusable) but open for features: a newer QEMU may add feature names, and older readers are
//! expected to ignore them, so unknown features are kept as `Feature::Other` and shown.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::discover::glob;
use crate::tools;

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

/// A file that could not be used, with the field at fault:
/// `FILE: mapping.executable.format: unknown format "vmdk" (expected raw or qcow2)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}{message}", tools::shown_name(.path.as_os_str()), field_prefix(.field))]
pub struct DescriptorError {
    pub path: PathBuf,
    /// JSON path of the offending field (`mapping.executable.format`), or empty for the whole file.
    pub field: String,
    pub message: String,
}

/// `FIELD: `, or nothing for the whole file.
fn field_prefix(field: &str) -> String {
    match field {
        "" => String::new(),
        field => format!("{field}: "),
    }
}

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
    let value = tools::shown(value, QUOTED);
    format!("unknown {kind} \"{value}\" (expected {expected})")
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
        self.targets.iter().any(|t| {
            t.architecture == arch && t.machines.iter().any(|p| glob::glob_match(p, machine))
        })
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

/// How much of a value from a file an error message quotes.
const QUOTED: usize = 200;

/// Parses one descriptor file's bytes: UTF-8 JSON without a byte order mark (RFC 8259 forbids
/// writing one, and QEMU's and libvirt's parsers reject it).
pub fn parse_bytes(path: &Path, bytes: &[u8]) -> Result<Descriptor, DescriptorError> {
    let whole = |message: String| DescriptorError {
        path: path.to_path_buf(),
        field: String::new(),
        message,
    };
    if bytes.starts_with(b"\xef\xbb\xbf") {
        return Err(whole(
            "starts with a UTF-8 byte order mark (BOM, bytes EF BB BF), which JSON does not \
             allow: save the file without it"
                .into(),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        whole(format!(
            "not UTF-8 text: invalid byte 0x{:02x} at offset {}",
            bytes[e.valid_up_to()],
            e.valid_up_to()
        ))
    })?;
    parse(path, text)
}

/// `invalid JSON: ...`, naming what serde_json only points at: the number that does not fit.
fn json_error(text: &str, e: &serde_json::Error) -> String {
    let message = e.to_string();
    if !message.starts_with("number out of range") {
        return format!("invalid JSON: {message}");
    }
    // The number ends at the reported column (1-based, in bytes) of the reported line.
    let line = text.lines().nth(e.line().saturating_sub(1)).unwrap_or("");
    let end = e.column().min(line.len());
    let head = line.get(..end).unwrap_or("");
    let start = head
        .rfind(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
        .map_or(0, |i| i + 1);
    format!(
        "invalid JSON: number {} out of range (beyond a 64-bit float) at line {} column {}",
        tools::shown(&head[start..], QUOTED),
        e.line(),
        e.column()
    )
}

/// Parses one descriptor. `path` is only used for `name` and error reports.
pub fn parse(path: &Path, text: &str) -> Result<Descriptor, DescriptorError> {
    let value: Value = serde_json::from_str(text).map_err(|e| DescriptorError {
        path: path.to_path_buf(),
        field: String::new(),
        message: json_error(text, &e),
    })?;
    let root = Node {
        value: &value,
        field: String::new(),
        file: path,
    };
    // Fields are read in schema order, so the first error reported is the first in the file.
    Ok(Descriptor {
        path: path.to_path_buf(),
        // Escaped, so that names differing only in bytes that are not UTF-8 stay apart.
        name: path.file_name().map(tools::shown_name).unwrap_or_default(),
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

    /// A file name; an empty one is an error (not "the current folder").
    fn path(&self) -> Result<PathBuf, DescriptorError> {
        match self.str()? {
            "" => Err(self.err("empty path")),
            path => Ok(PathBuf::from(path)),
        }
    }

    fn keyword<T: FromStr<Err = String>>(&self) -> Result<T, DescriptorError> {
        self.str()?
            .parse()
            .map_err(|message: String| self.err(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

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
    fn errors_name_the_file_and_the_field() {
        let err = parse_value(&edited("/mapping", "mode", Some(json!("hybrid")))).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                r#"{TEST_PATH}: mapping.mode: unknown mode "hybrid" (expected split, combined or stateless)"#
            )
        );
        let err = parse(Path::new(TEST_PATH), "[1]").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{TEST_PATH}: expected an object, found an array")
        );
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
    #[case(Architecture::X86_64, "pc-q35-7.2", true)]
    #[case(Architecture::X86_64, "pc-i440fx-2.12", true)]
    #[case(Architecture::X86_64, "q35", false)]
    #[case(Architecture::Aarch64, "pc-q35-7.2", false)]
    fn supports_machines(#[case] arch: Architecture, #[case] machine: &str, #[case] ok: bool) {
        let d = parse_value(&base()).expect("valid");
        assert_eq!(d.supports(arch, machine), ok);
    }

    fn data_dir(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name)
    }

    fn load(dir: &str, name: &str) -> Result<Descriptor, DescriptorError> {
        let path = data_dir(dir).join(name);
        let text = std::fs::read_to_string(&path).expect("test data is readable");
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

    #[rstest]
    #[case::bom(b"\xef\xbb\xbf{}", "starts with a UTF-8 byte order mark (BOM")]
    #[case::not_utf8(
        b"{\"description\": \"\xc3\"}",
        "not UTF-8 text: invalid byte 0xc3 at offset 17"
    )]
    #[case::huge_number(
        b"{\n  \"description\": 1e400\n}",
        "invalid JSON: number 1e400 out of range (beyond a 64-bit float) at line 2 column 22"
    )]
    #[case::negative_number(b"[-2.5E+999]", "invalid JSON: number -2.5E+999 out of range")]
    fn a_file_that_is_no_json_says_why(#[case] bytes: &[u8], #[case] message: &str) {
        let e = parse_bytes(Path::new(TEST_PATH), bytes).unwrap_err();
        assert_eq!(e.field, "");
        assert!(e.message.starts_with(message), "{e}");
    }

    #[rstest]
    #[case("/mapping/executable", "mapping.executable.filename")]
    #[case("/mapping/nvram-template", "mapping.nvram-template.filename")]
    fn an_empty_path_is_named_so(#[case] parent: &str, #[case] field: &str) {
        let e = parse_value(&edited(parent, "filename", Some(json!("")))).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            (field, "empty path")
        );
    }

    #[test]
    fn a_huge_unknown_value_is_quoted_cut_and_escaped() {
        let value = format!("\x1b[31m{}", "v".repeat(5000));
        let e =
            parse_value(&edited("/mapping/executable", "format", Some(json!(value)))).unwrap_err();
        assert!(
            e.message.starts_with("unknown format \"\\x1b[31mvvv"),
            "{e}"
        );
        assert!(
            e.message
                .contains("… (5005 bytes, cut)\" (expected raw or qcow2)"),
            "{e}"
        );
        assert!(e.message.len() < 400, "{e}");
    }

    #[test]
    fn names_that_are_not_utf8_stay_apart() {
        use std::os::unix::ffi::OsStrExt;
        let name = |b: &[u8]| {
            let path = Path::new("/d").join(std::ffi::OsStr::from_bytes(b));
            parse_value_at(&path).name
        };
        assert_eq!(name(b"50-\xff.json"), r"50-\xff.json");
        assert_ne!(name(b"50-\xff.json"), name(b"50-\xfe.json"));
    }

    fn parse_value_at(path: &Path) -> Descriptor {
        parse(path, &base().to_string()).expect("base descriptor is valid")
    }
}
