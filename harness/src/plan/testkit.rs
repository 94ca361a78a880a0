//! Fixtures for the planner's unit tests: QEMU binaries of a given version, descriptors from
//! text.

use std::path::{Path, PathBuf};

use crate::discover::descriptor;
use crate::discover::host::SevParams;
use crate::discover::qemu::{Machines, QemuBinary, Version};
use crate::discover::Firmware;

/// A QEMU binary of `version` (`"7.2.0"`) with its q35 and pc machine types, no data folder.
pub fn qemu_binary(version: &str) -> QemuBinary {
    let v = Version::parse(version).expect("a version");
    let mm = format!("{}.{}", v.major, v.minor);
    let help = format!(
        "Supported machines are:\n\
         pc                   Standard PC (alias of pc-i440fx-{mm})\n\
         pc-i440fx-{mm}        Standard PC\n\
         q35                  Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-{mm})\n\
         pc-q35-{mm}           Standard PC (Q35 + ICH9, 2009)\n"
    );
    QemuBinary {
        path: PathBuf::from(format!("/opt/qemu-{v}/bin/qemu-system-x86_64")),
        data_dir: None,
        version: v,
        banner: format!("QEMU emulator version {v}"),
        machines: Machines::parse_help(&help),
    }
}

pub fn sev_params() -> SevParams {
    SevParams {
        cbitpos: 51,
        reduced_phys_bits: 1,
    }
}

/// A descriptor with `mapping` (JSON), for x86_64 q35 machines, with `features`.
pub fn descriptor_text(mapping: &str, features: &[&str]) -> String {
    let features: Vec<String> = features.iter().map(|f| format!("{f:?}")).collect();
    format!(
        r#"{{"description": "test", "interface-types": ["uefi"], "mapping": {mapping},
            "targets": [{{"architecture": "x86_64", "machines": ["pc-q35-*"]}}],
            "features": [{}], "tags": []}}"#,
        features.join(", ")
    )
}

/// A split flash mapping: `/fw/CODE.fd` read-only, `/fw/VARS.fd` as the template.
pub const SPLIT: &str = r#"{"device": "flash",
    "executable": {"filename": "/fw/CODE.fd", "format": "raw"},
    "nvram-template": {"filename": "/fw/VARS.fd", "format": "raw"}}"#;

/// Firmware `name` from descriptor text, readable (its executable hashes to 00..00).
pub fn firmware(name: &str, text: &str) -> Firmware {
    Firmware {
        descriptor: descriptor::parse(Path::new(name), text).expect("a valid descriptor"),
        executable_sha256: Ok("00".repeat(32)),
        package: None,
    }
}
