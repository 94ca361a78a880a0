//! Which firmware files a cell boots, per the mapping of its descriptor
//! (`docs/interop/firmware.json`): the private copies it needs and what `prepare` must make.
//! [`QemuArgs::machine`](super::argv::QemuArgs::machine) and
//! [`QemuArgs::firmware`](super::argv::QemuArgs::firmware) put it on the command line.

use std::path::{Path, PathBuf};

use crate::discover::descriptor::{Descriptor, FlashMode, ImageFormat, Mapping};
use crate::matrix::Vars;

use super::layout::Layout;
use super::Artifact;

/// One pflash unit, in unit order: the executable, then the varstore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlashUnit {
    pub file: PathBuf,
    pub format: ImageFormat,
    pub readonly: bool,
}

/// The firmware as the command line names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirmwareImage {
    /// pflash units 0 (executable) and, for split builds, 1 (varstore).
    Flash(Vec<FlashUnit>),
    /// A ROM image mapped into memory (`-bios`).
    Memory(PathBuf),
    /// A firmware image loaded as `-kernel`.
    Kernel(PathBuf),
    /// An IGVM file (`-object igvm-cfg`, QEMU >= 10.1).
    Igvm(PathBuf),
}

/// What booting a descriptor with `vars` takes: the image, the files copied into the cell
/// folder `dir` before boot (source, private copy), and what `prepare` must make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwarePlan {
    pub image: FirmwareImage,
    pub copies: Vec<(PathBuf, PathBuf)>,
    pub needs: Vec<Artifact>,
}

/// The firmware of `d` booted with the varstore `vars` from the cell folder `dir`. A template
/// is never mapped itself: the guest writes its varstore, so each cell gets a private copy (of
/// the template as shipped, or of a varstore `prepare` enrolled). A split mapping always has a
/// template (the descriptor parser and the `firmware-mapping` admission rule see to it).
pub fn firmware_plan(
    d: &Descriptor,
    label: &str,
    vars: Vars,
    dir: &Path,
    layout: &Layout,
) -> FirmwarePlan {
    let mut copies = Vec::new();
    let mut needs = Vec::new();
    let image = match &d.mapping {
        Mapping::Flash(flash) => {
            let exec = &flash.executable;
            // combined: the executable holds the varstore, so each guest needs its own copy.
            let mut units = vec![if flash.mode == FlashMode::Combined {
                let copy = dir.join(format!("firmware.{}", image_extension(exec.format)));
                copies.push((exec.filename.clone(), copy.clone()));
                FlashUnit {
                    file: copy,
                    format: exec.format,
                    readonly: false,
                }
            } else {
                FlashUnit {
                    file: exec.filename.clone(),
                    format: exec.format,
                    readonly: true,
                }
            }];
            if let (FlashMode::Split, Some(template)) = (flash.mode, &flash.nvram_template) {
                let source = match vars {
                    Vars::Shipped => template.filename.clone(),
                    other => {
                        let out = layout.varstore(label, other);
                        needs.push(Artifact::Varstore {
                            template: template.filename.clone(),
                            vars: other,
                            out: out.clone(),
                        });
                        out
                    }
                };
                let copy = dir.join(format!("vars.{}", image_extension(template.format)));
                copies.push((source, copy.clone()));
                units.push(FlashUnit {
                    file: copy,
                    format: template.format,
                    readonly: false,
                });
            }
            FirmwareImage::Flash(units)
        }
        Mapping::Memory { filename } => FirmwareImage::Memory(filename.clone()),
        Mapping::Kernel { filename } => FirmwareImage::Kernel(filename.clone()),
        Mapping::Igvm { filename } => FirmwareImage::Igvm(filename.clone()),
    };
    FirmwarePlan {
        image,
        copies,
        needs,
    }
}

fn image_extension(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Raw => "fd",
        ImageFormat::Qcow2 => "qcow2",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testkit::{descriptor_text, firmware, SPLIT};

    fn plan_of(mapping: &str, vars: Vars) -> (Descriptor, FirmwarePlan) {
        let d = firmware("50-test.json", &descriptor_text(mapping, &[])).descriptor;
        let plan = firmware_plan(
            &d,
            "50-test",
            vars,
            Path::new("/run/cells/c"),
            &Layout::new("/run"),
        );
        (d, plan)
    }

    #[test]
    fn split_maps_the_executable_and_a_private_copy_of_the_shipped_template() {
        let (_, plan) = plan_of(SPLIT, Vars::Shipped);
        assert_eq!(
            plan.image,
            FirmwareImage::Flash(vec![
                FlashUnit {
                    file: "/fw/CODE.fd".into(),
                    format: ImageFormat::Raw,
                    readonly: true
                },
                FlashUnit {
                    file: "/run/cells/c/vars.fd".into(),
                    format: ImageFormat::Raw,
                    readonly: false
                },
            ])
        );
        assert_eq!(
            plan.copies,
            [("/fw/VARS.fd".into(), "/run/cells/c/vars.fd".into())]
        );
        assert!(plan.needs.is_empty());
    }

    #[test]
    fn enrolled_varstores_are_prepared_then_copied() {
        let (_, plan) = plan_of(SPLIT, Vars::OwnKeys);
        let enrolled = Layout::new("/run").varstore("50-test", Vars::OwnKeys);
        assert_eq!(
            enrolled,
            Path::new("/run/prepared/vars/50-test.own-keys.fd")
        );
        assert_eq!(
            plan.copies,
            [(enrolled.clone(), "/run/cells/c/vars.fd".into())]
        );
        assert_eq!(
            plan.needs,
            [Artifact::Varstore {
                template: "/fw/VARS.fd".into(),
                vars: Vars::OwnKeys,
                out: enrolled
            }]
        );
    }

    #[test]
    fn combined_gets_a_writable_private_copy_of_the_executable() {
        let (_, plan) = plan_of(
            r#"{"device": "flash", "mode": "combined",
                "executable": {"filename": "/fw/OVMF.qcow2", "format": "qcow2"}}"#,
            Vars::Shipped,
        );
        assert_eq!(
            plan.image,
            FirmwareImage::Flash(vec![FlashUnit {
                file: "/run/cells/c/firmware.qcow2".into(),
                format: ImageFormat::Qcow2,
                readonly: false
            }])
        );
        assert_eq!(
            plan.copies,
            [(
                "/fw/OVMF.qcow2".into(),
                "/run/cells/c/firmware.qcow2".into()
            )]
        );
    }

    #[test]
    fn memory_igvm_and_stateless_flash_are_used_in_place() {
        let (_, memory) = plan_of(
            r#"{"device": "memory", "filename": "/fw/OVMF.fd"}"#,
            Vars::Shipped,
        );
        assert_eq!(memory.image, FirmwareImage::Memory("/fw/OVMF.fd".into()));
        let (_, igvm) = plan_of(
            r#"{"device": "igvm", "filename": "/fw/s.igvm"}"#,
            Vars::Shipped,
        );
        assert_eq!(igvm.image, FirmwareImage::Igvm("/fw/s.igvm".into()));
        let (_, stateless) = plan_of(
            r#"{"device": "flash", "mode": "stateless",
                "executable": {"filename": "/fw/OVMF.fd", "format": "raw"}}"#,
            Vars::Shipped,
        );
        assert_eq!(
            stateless.image,
            FirmwareImage::Flash(vec![FlashUnit {
                file: "/fw/OVMF.fd".into(),
                format: ImageFormat::Raw,
                readonly: true
            }])
        );
        for plan in [memory, igvm, stateless] {
            assert!(plan.copies.is_empty() && plan.needs.is_empty(), "{plan:?}");
        }
    }
}
