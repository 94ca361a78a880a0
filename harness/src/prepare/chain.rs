//! A distro chain's ESP folder, given to QEMU as a read-only FAT disk:
//!
//! ```text
//! EFI/BOOT/BOOTX64.EFI   shim (shimx64.efi.signed), what the firmware's removable-media
//!                        boot option starts
//! EFI/BOOT/grubx64.efi   grub (grubx64.efi.signed), which shim looks for beside itself
//! EFI/BOOT/grub.cfg      the configuration below (for a grub whose prefix is its own folder)
//! EFI/debian/grub.cfg    the same (Debian's signed grub reads $prefix=/EFI/debian)
//! vmlinuz                the kernel: as shipped, unsigned, or signed by the test key only
//! initrd.img             an empty initramfs (a zero-length one makes grub fail to allocate it)
//! ```
//!
//! grub talks on the serial console only, boots the one entry at once, and hands the kernel
//! `console=ttyS0 panic=-1`: the kernel's `secureboot:` line reaches the serial console.

use std::path::Path;

use super::{create_dir, empty_cpio, file_error, input_error, pe, sign, write_file, PrepareError};
use crate::matrix::{Chain, ChainKernel};
use crate::plan::layout::Layout;
use crate::tools::{read_input, KERNEL_LIMIT};

/// grub's configuration: serial terminal, no menu wait, one entry.
pub const GRUB_CFG: &str = "\
serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
set timeout=0
set default=0
menuentry 'bootmatrix distro chain' {
  linux /vmlinuz console=ttyS0 panic=-1
  initrd /initrd.img
}
";

pub(super) fn make_chain_esp(
    layout: &Layout,
    esp: &Path,
    chain: &Chain,
    shim: &Path,
    grub: &Path,
    kernel: &Path,
) -> Result<(), PrepareError> {
    let boot = esp.join("EFI").join("BOOT");
    let debian = esp.join("EFI").join("debian");
    create_dir(&boot)?;
    create_dir(&debian)?;
    let read = |what: &'static str, path: &Path| {
        read_input(path, KERNEL_LIMIT).map_err(input_error(what, path))
    };
    write_file(&boot.join("BOOTX64.EFI"), &read("shim", shim)?)?;
    write_file(&boot.join("grubx64.efi"), &read("grub", grub)?)?;
    write_file(&boot.join("grub.cfg"), GRUB_CFG.as_bytes())?;
    write_file(&debian.join("grub.cfg"), GRUB_CFG.as_bytes())?;
    write_file(&esp.join("initrd.img"), &empty_cpio())?;
    let shipped = read("the kernel", kernel)?;
    let target = esp.join("vmlinuz");
    match chain.kernel {
        ChainKernel::AsShipped => write_file(&target, &shipped),
        ChainKernel::Unsigned | ChainKernel::TestSigned => {
            let unsigned =
                pe::strip_signatures(&shipped).map_err(|reason| PrepareError::NotEfiStub {
                    path: kernel.to_path_buf(),
                    reason,
                })?;
            if chain.kernel == ChainKernel::Unsigned {
                return write_file(&target, &unsigned);
            }
            let staged = esp.with_extension("unsigned-kernel");
            write_file(&staged, &unsigned)?;
            let signed = sign(layout, &staged, &target);
            std::fs::remove_file(&staged).map_err(file_error("remove", &staged))?;
            signed
        }
    }
}
