//! For `plan --verify`: what the cells' argv name, made so QEMU can open it, without the
//! test keys. QEMU opens and sizes every file of the argv while it builds the machine (a
//! missing one fails there, which says nothing of the argv), but never checks a signature or
//! reads an enrolled key. So the unsigned payloads are made for real (the probe on its ESP, the
//! option ROM, the kernel without its signatures, the empty initramfs: no external tool
//! needed), a signed one is its unsigned twin at the signed one's path, and a varstore with
//! keys is a plain copy of its template (same format and size as the enrolled copy).

use std::path::Path;

use crate::matrix::Payload;
use crate::plan::layout::Layout;
use crate::plan::Artifact;

use super::{create_dir, file_error, make, PrepareError, Prepared};

/// Makes a stand-in for every artifact (see the module): a failure is recorded and the rest go
/// on, as [`super::prepare`] does.
pub fn stand_ins(artifacts: &[Artifact], layout: &Layout) -> Prepared {
    let mut prepared = Prepared::default();
    for artifact in artifacts {
        if let Err(why) = stand_in(artifact, layout) {
            prepared.failed.insert(artifact.clone(), why.to_string());
        }
    }
    prepared
}

fn stand_in(artifact: &Artifact, layout: &Layout) -> Result<(), PrepareError> {
    match artifact {
        // Only signing and enrolling need them.
        Artifact::TestKeys => Ok(()),
        // The kernel stays as shipped: signing is what stand-ins leave out.
        Artifact::ChainEsp {
            chain,
            shim,
            grub,
            kernel,
        } => super::chain::make_chain_esp(
            layout,
            &layout.chain_esp(artifact),
            &crate::matrix::Chain {
                kernel: crate::matrix::ChainKernel::AsShipped,
                ..*chain
            },
            shim,
            grub,
            kernel,
        ),
        Artifact::Varstore { template, out, .. } => {
            if let Some(dir) = out.parent() {
                create_dir(dir)?;
            }
            copy(template, out)
        }
        Artifact::Probe(Payload::Signed) => {
            make(&Artifact::Probe(Payload::Unsigned), layout)?;
            let boot_dir = layout.esp(Payload::Signed).join("EFI").join("BOOT");
            create_dir(&boot_dir)?;
            copy(
                &layout.probe_efi(Payload::Unsigned),
                &boot_dir.join("BOOTX64.EFI"),
            )
        }
        Artifact::OptionRom(Payload::Signed) => {
            make(&Artifact::OptionRom(Payload::Unsigned), layout)?;
            copy(
                &layout.option_rom(Payload::Unsigned),
                &layout.option_rom(Payload::Signed),
            )
        }
        Artifact::Kernel {
            source,
            payload: Payload::Signed,
        } => {
            let unsigned = Artifact::Kernel {
                source: source.clone(),
                payload: Payload::Unsigned,
            };
            make(&unsigned, layout)?;
            copy(
                &layout.kernel(Payload::Unsigned),
                &layout.kernel(Payload::Signed),
            )
        }
        Artifact::Probe(Payload::Unsigned)
        | Artifact::OptionRom(Payload::Unsigned)
        | Artifact::Kernel { .. }
        | Artifact::Initrd => make(artifact, layout),
    }
}

fn copy(from: &Path, to: &Path) -> Result<(), PrepareError> {
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(file_error("copy a stand-in to", to))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::Vars;

    #[test]
    fn every_artifact_gets_a_stand_in_without_keys_or_tools() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().join("run"));
        let template = dir.path().join("VARS.fd");
        std::fs::write(&template, vec![0x5a; 4096]).unwrap();
        let out = layout.prepared().join("vars").join("x.own-keys.fd");
        let mut artifacts = vec![
            Artifact::TestKeys,
            Artifact::Initrd,
            Artifact::Varstore {
                template: template.clone(),
                vars: Vars::OwnKeys,
                out: out.clone(),
            },
        ];
        for payload in [Payload::Signed, Payload::Unsigned] {
            artifacts.extend([Artifact::Probe(payload), Artifact::OptionRom(payload)]);
        }
        let prepared = stand_ins(&artifacts, &layout);
        assert!(prepared.failed.is_empty(), "{:?}", prepared.failed);
        assert_eq!(std::fs::read(&out).unwrap(), vec![0x5a; 4096]);
        for payload in [Payload::Signed, Payload::Unsigned] {
            let probe = layout.esp(payload).join("EFI/BOOT/BOOTX64.EFI");
            assert_eq!(std::fs::read(probe).unwrap(), crate::prepare::PROBE_EFI);
            assert!(layout.option_rom(payload).is_file());
        }
        assert!(!layout.keys().exists(), "no keys are made");
        assert!(layout.initrd().is_file());
    }

    #[test]
    fn a_missing_template_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let missing = Artifact::Varstore {
            template: dir.path().join("absent.fd"),
            vars: Vars::DbAdded,
            out: dir.path().join("vars.fd"),
        };
        let prepared = stand_ins(std::slice::from_ref(&missing), &layout);
        let why = &prepared.failed[&missing];
        assert!(
            why.contains("vars.fd") && why.contains("No such file"),
            "{why}"
        );
    }
}
