//! Folder layout of one run: where `prepare` puts what it makes and where each cell keeps its
//! private copies and logs.

use std::path::PathBuf;

use crate::matrix::{Payload, Vars};

/// Folder layout of one run. Everything a run writes lives under `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Layout {
        Layout { root: root.into() }
    }
    pub fn prepared(&self) -> PathBuf {
        self.root.join("prepared")
    }
    pub fn keys(&self) -> PathBuf {
        self.prepared().join("keys")
    }
    pub fn probe_efi(&self, payload: Payload) -> PathBuf {
        self.prepared()
            .join(format!("probe-{}.efi", payload.as_str()))
    }
    /// A folder holding `EFI/BOOT/BOOTX64.EFI`, given to QEMU as a read-only FAT disk.
    pub fn esp(&self, payload: Payload) -> PathBuf {
        self.prepared().join(format!("esp-{}", payload.as_str()))
    }
    /// The option-ROM driver wrapped in a PCI expansion ROM, signed or not.
    pub fn option_rom(&self, payload: Payload) -> PathBuf {
        self.prepared()
            .join(format!("oprom-{}.rom", payload.as_str()))
    }
    /// The kernel for `-kernel`: the given one with its signatures removed, or that one signed
    /// with the test db key.
    pub fn kernel(&self, payload: Payload) -> PathBuf {
        self.prepared()
            .join(format!("vmlinuz-{}", payload.as_str()))
    }
    /// An empty initramfs: with an initrd, OVMF's verified load path marks the kernel's
    /// command line (`initrd=initrd`), which tells it from the legacy loader.
    pub fn initrd(&self) -> PathBuf {
        self.prepared().join("initrd.cpio")
    }
    /// The varstore `vars` made from the template of the firmware labelled `label`
    /// ([`crate::discover::Firmware::label`]: unique in a run, trees included).
    pub fn varstore(&self, label: &str, vars: Vars) -> PathBuf {
        self.prepared()
            .join("vars")
            .join(format!("{label}.{}.fd", vars.as_str()))
    }
    /// The ESP folder of a distro chain (`prepared/chain-bookworm-as-shipped`).
    pub fn chain_esp(&self, esp: &super::Artifact) -> PathBuf {
        let name = match esp {
            super::Artifact::ChainEsp { chain, .. } => chain.to_string(),
            other => format!("{other:?}"),
        };
        self.prepared().join(format!("chain-{name}"))
    }
    pub fn cell_dir(&self, id: &str) -> PathBuf {
        self.root.join("cells").join(id)
    }
}

/// A descriptor's file name without `.json`: how cell ids and varstore files name it.
pub fn stem(name: &str) -> &str {
    name.strip_suffix(".json").unwrap_or(name)
}
