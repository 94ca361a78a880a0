//! The QEMU command line of a cell, one named step per concern. Each step adds its own
//! arguments (and, for the machine, firmware and SEV steps, `-machine` properties); where QEMU
//! spells something differently by version, the step asks the binary what it has.
//!
//! The argv comes out as: the binary and its fixed options, `-machine` with its properties,
//! then every other argument in the order the steps were taken.

use std::path::Path;

use crate::discover::host::{Accel, SevParams};
use crate::discover::qemu::QemuBinary;
use crate::matrix::Confidential;

use super::firmware::FirmwareImage;
use super::{ESP_PCI_SLOT, ROM_NIC_PCI_SLOT};

/// A QEMU command line under construction.
#[derive(Debug, Clone)]
pub struct QemuArgs<'q> {
    qemu: &'q QemuBinary,
    /// The binary and the options every cell has.
    head: Vec<String>,
    /// The `-machine` properties, the machine type first.
    machine: Vec<String>,
    /// Everything after `-machine`, in step order.
    args: Vec<String>,
}

impl<'q> QemuArgs<'q> {
    /// The binary (with `-L` for an unpacked one), no default devices, no user config, no
    /// display, one CPU, QEMU's log of the guest's errors on its stderr (`-d guest_errors`: a
    /// release firmware that stops before its console shows nothing else; see
    /// `observe::noboot`), `memory_mib` MiB of memory.
    pub fn new(qemu: &'q QemuBinary, memory_mib: u32) -> QemuArgs<'q> {
        let mut head = qemu.program();
        head.extend(qemu.data_dir_args());
        head.extend(
            [
                "-nodefaults",
                "-no-user-config",
                "-display",
                "none",
                "-smp",
                "1",
                "-d",
                "guest_errors",
            ]
            .map(String::from),
        );
        head.extend(["-m".into(), memory_mib.to_string()]);
        QemuArgs {
            qemu,
            head,
            machine: Vec::new(),
            args: Vec::new(),
        }
    }

    /// `-machine TYPE,accel=ACCEL`, wired to the firmware's pflash drives (`pflashN=pflashN`,
    /// QEMU >= 4.0; older ones take `-drive if=pflash` and need no wiring) or its IGVM object,
    /// with `smm=on` for firmware that requires SMM.
    pub fn machine(&mut self, machine: &str, accel: Accel, firmware: &FirmwareImage, smm: bool) {
        self.machine
            .extend([machine.to_string(), format!("accel={accel}")]);
        match firmware {
            FirmwareImage::Flash(units) if self.qemu.has_pflash_properties() => self
                .machine
                .extend((0..units.len()).map(|unit| format!("pflash{unit}=pflash{unit}"))),
            FirmwareImage::Igvm(_) => self.machine.push("igvm-cfg=igvm0".into()),
            FirmwareImage::Flash(_) | FirmwareImage::Memory(_) | FirmwareImage::Kernel(_) => {}
        }
        if smm {
            self.machine.push("smm=on".into());
        }
    }

    /// `-cpu host` under KVM: a SEV guest finds SEV through CPUID 0x8000001F, which only the
    /// host's model passes on. TCG keeps QEMU's default model.
    pub fn cpu(&mut self, accel: Accel) {
        if accel == Accel::Kvm {
            self.args.extend(["-cpu".into(), "host".into()]);
        }
    }

    /// The firmware: pflash drives (`if=none` for the machine's `pflashN` properties since
    /// QEMU 4.0, `if=pflash,unit=N` before), `-bios`, `-kernel` or an `igvm-cfg` object.
    /// `secure_flash`: only SMM code may write the flash (`cfi.pflash01` `secure=on`), or the
    /// guest OS could rewrite the keys.
    pub fn firmware(&mut self, firmware: &FirmwareImage, secure_flash: bool) {
        if secure_flash {
            self.args.extend(
                ["-global", "driver=cfi.pflash01,property=secure,value=on"].map(String::from),
            );
        }
        match firmware {
            FirmwareImage::Flash(units) => {
                for (unit, u) in units.iter().enumerate() {
                    let (format, file) = (u.format, u.file.display());
                    let readonly = if u.readonly { "on" } else { "off" };
                    let drive = if self.qemu.has_pflash_properties() {
                        format!("if=none,id=pflash{unit},format={format},readonly={readonly},file={file}")
                    } else {
                        format!(
                            "if=pflash,unit={unit},format={format},readonly={readonly},file={file}"
                        )
                    };
                    self.args.extend(["-drive".into(), drive]);
                }
            }
            FirmwareImage::Memory(file) => {
                self.args
                    .extend(["-bios".into(), file.display().to_string()]);
            }
            FirmwareImage::Kernel(file) => {
                self.args
                    .extend(["-kernel".into(), file.display().to_string()]);
            }
            FirmwareImage::Igvm(file) => self.args.extend([
                "-object".into(),
                format!("igvm-cfg,id=igvm0,file={}", file.display()),
            ]),
        }
    }

    /// An SEV guest: the machine's memory encryption (`confidential-guest-support` since QEMU
    /// 6.0, `memory-encryption` before) points at a `sev-guest` object with the host's C-bit
    /// position. `kernel_hashes`: QEMU puts the hashes of `-kernel`, `-initrd` and `-append`
    /// into encrypted memory for the firmware to verify (QEMU >= 6.2; only a measured
    /// kernel-boot cell gets this far, see the `sev-kernel-policy` admission rule).
    pub fn sev(&mut self, params: &SevParams, kernel_hashes: bool) {
        self.sev_guest("sev-guest", params, "0x1", kernel_hashes);
    }

    /// A confidential guest of a mode after SEV (SEV is [`QemuArgs::sev`]); the admission
    /// rules keep out every QEMU too old for it (`confidential-qemu-version`):
    /// - SEV-ES: `sev-guest` with the "SEV-ES required" policy bit 2 (`policy=0x5`, QEMU's
    ///   docs/system/i386/amd-memory-encryption.rst);
    /// - SEV-SNP, and IGVM (whose file the firmware step names; QEMU launches it as SEV-SNP):
    ///   `sev-snp-guest` with policy 0x30000 (SMT allowed, reserved bit 17 set: QEMU's default,
    ///   written out so the predicted measurement's policy is on the command line);
    /// - TDX: `tdx-guest` (docs/system/i386/tdx.rst; QEMU splits the irqchip itself).
    ///
    /// `params`: the host's SEV parameters, which the SEV family needs (its admission rules
    /// keep out every cell of a host without them; without them nothing is added).
    /// `kernel_hashes` as for [`QemuArgs::sev`] (the SEV family only).
    pub fn confidential(
        &mut self,
        mode: Confidential,
        params: Option<&SevParams>,
        kernel_hashes: bool,
    ) {
        let policy = match (mode, params) {
            (Confidential::Off, _) => return,
            (Confidential::Tdx, _) => {
                self.machine.push("confidential-guest-support=tdx0".into());
                self.args
                    .extend(["-object".into(), "tdx-guest,id=tdx0".into()]);
                return;
            }
            (_, None) => return,
            (Confidential::Sev, Some(_)) => ("sev-guest", "0x1"),
            (Confidential::SevEs, Some(_)) => ("sev-guest", "0x5"),
            (Confidential::SevSnp | Confidential::Igvm, Some(_)) => ("sev-snp-guest", "0x30000"),
        };
        if let Some(params) = params {
            self.sev_guest(policy.0, params, policy.1, kernel_hashes);
        }
    }

    fn sev_guest(&mut self, object: &str, params: &SevParams, policy: &str, kernel_hashes: bool) {
        let key = if self.qemu.has_confidential_guest_support() {
            "confidential-guest-support"
        } else {
            "memory-encryption"
        };
        self.machine.push(format!("{key}=sev0"));
        let hashes = if kernel_hashes {
            ",kernel-hashes=on"
        } else {
            ""
        };
        self.args.extend([
            "-object".into(),
            format!(
                "{object},id=sev0,cbitpos={},reduced-phys-bits={},policy={policy}{hashes}",
                params.cbitpos, params.reduced_phys_bits
            ),
        ]);
    }

    /// `-cpu MODEL`: a SEV-SNP guest's launch measurement covers its vCPUs' VMSAs, which carry
    /// the CPU model's signature, so it runs a named model (`EPYC-v4`) that the predicted
    /// measurement names too, not the host's.
    pub fn cpu_model(&mut self, model: &str) {
        self.args.extend(["-cpu".into(), model.into()]);
    }

    /// See [`console_args`].
    pub fn console(&mut self, debug_log: Option<&Path>) {
        self.args.extend(console_args(debug_log));
    }

    /// The ESP: a read-only FAT view of `folder` (the probe as `\EFI\BOOT\BOOTX64.EFI`) on a
    /// virtio-blk at a fixed PCI slot, so the boot manager's lines about it can be told from
    /// others, and first in the boot order (bootindex), so no other option is tried before it.
    /// `romfile=` (none): only the ROM under test may run. Under SEV guest memory is
    /// encrypted: virtio must go through the (bounce buffering) IOMMU path, which only modern
    /// virtio offers.
    pub fn esp(&mut self, folder: &Path, sev: bool) {
        let device = format!("addr={ESP_PCI_SLOT:#x},bootindex=1");
        let sev_opts = if sev {
            ",disable-legacy=on,iommu_platform=on"
        } else {
            ""
        };
        self.args.extend([
            "-drive".into(),
            format!(
                "if=none,id=esp,format=raw,readonly=on,file=fat:{}",
                folder.display()
            ),
            "-device".into(),
            format!("virtio-blk-pci,drive=esp,romfile=,{device}{sev_opts}"),
        ]);
    }

    /// The option ROM under test, `rom`, on an e1000 NIC (OVMF has no driver of its own for
    /// it) at a fixed PCI slot, on a user network that reaches nothing.
    pub fn nic(&mut self, rom: &Path) {
        self.args.extend([
            "-netdev".into(),
            "user,id=net0,restrict=on".into(),
            "-device".into(),
            format!(
                "e1000,netdev=net0,romfile={},addr={ROM_NIC_PCI_SLOT:#x}",
                rom.display()
            ),
        ]);
    }

    /// Direct kernel boot: `-kernel`, `-initrd`, `-append`, no reboot on a panic (the cell
    /// ends, it does not loop). `no_legacy_loader`: tell OVMF (stable202502 and later) not to
    /// fall back to its legacy Linux loader (`opt/org.tianocore/EnableLegacyLoader`).
    pub fn kernel(&mut self, kernel: &Path, initrd: &Path, append: &str, no_legacy_loader: bool) {
        self.args.extend([
            "-kernel".into(),
            kernel.display().to_string(),
            "-initrd".into(),
            initrd.display().to_string(),
            "-append".into(),
            append.to_string(),
            "-no-reboot".into(),
        ]);
        if no_legacy_loader {
            self.args.extend([
                "-fw_cfg".into(),
                "name=opt/org.tianocore/EnableLegacyLoader,string=no".into(),
            ]);
        }
    }

    /// `-shim FILE`: QEMU (>= 10.0, see the `shim-qemu-version` admission rule) hands the
    /// firmware shim along with the kernel, to verify it through shim.
    pub fn shim(&mut self, shim: &Path) {
        self.args
            .extend(["-shim".into(), shim.display().to_string()]);
    }

    /// The finished argv: the binary and its fixed options, `-machine` (when a step gave it
    /// properties), then the other steps' arguments in order.
    pub fn into_argv(self) -> Vec<String> {
        let mut argv = self.head;
        if !self.machine.is_empty() {
            argv.extend(["-machine".into(), self.machine.join(",")]);
        }
        argv.extend(self.args);
        argv
    }
}

/// The serial console on QEMU's stdout (read from the first byte, no file to poll) and, for
/// `verbose-dynamic` firmware, the debug console (port 0x402) into `debug_log`.
pub fn console_args(debug_log: Option<&Path>) -> Vec<String> {
    let mut args: Vec<String> = [
        "-chardev",
        "stdio,id=console,signal=off",
        "-serial",
        "chardev:console",
    ]
    .map(String::from)
    .into();
    if let Some(log) = debug_log {
        args.extend([
            "-chardev".into(),
            format!("file,id=fwdebug,path={}", log.display()),
            "-device".into(),
            "isa-debugcon,iobase=0x402,chardev=fwdebug".into(),
        ]);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::descriptor::ImageFormat;
    use crate::plan::firmware::FlashUnit;
    use crate::plan::testkit::{qemu_binary, sev_params};
    use std::path::PathBuf;

    /// What one step adds on QEMU `version`: (`-machine` properties, other arguments).
    fn added(version: &str, step: impl FnOnce(&mut QemuArgs)) -> (Vec<String>, Vec<String>) {
        let qemu = qemu_binary(version);
        let mut cmd = QemuArgs::new(&qemu, 512);
        step(&mut cmd);
        (cmd.machine, cmd.args)
    }

    /// The arguments alone of a step that adds no `-machine` property.
    fn args(version: &str, step: impl FnOnce(&mut QemuArgs)) -> Vec<String> {
        let (machine, args) = added(version, step);
        assert_eq!(
            machine,
            Vec::<String>::new(),
            "no -machine property expected"
        );
        args
    }

    fn split() -> FirmwareImage {
        FirmwareImage::Flash(vec![
            FlashUnit {
                file: PathBuf::from("/fw/CODE.fd"),
                format: ImageFormat::Raw,
                readonly: true,
            },
            FlashUnit {
                file: PathBuf::from("/cell/vars.qcow2"),
                format: ImageFormat::Qcow2,
                readonly: false,
            },
        ])
    }

    #[test]
    fn new_is_the_binary_and_the_options_every_cell_has() {
        let mut qemu = qemu_binary("7.2.0");
        assert_eq!(
            QemuArgs::new(&qemu, 512).into_argv(),
            [
                "/opt/qemu-7.2.0/bin/qemu-system-x86_64",
                "-nodefaults",
                "-no-user-config",
                "-display",
                "none",
                "-smp",
                "1",
                "-d",
                "guest_errors",
                "-m",
                "512"
            ]
        );
        qemu.data_dir = Some(PathBuf::from("/opt/qemu/share"));
        let argv = QemuArgs::new(&qemu, 1024).into_argv();
        assert_eq!(argv[1..3], ["-L", "/opt/qemu/share"]);
        assert_eq!(argv[argv.len() - 2..], ["-m", "1024"]);
    }

    #[test]
    fn machine_wires_pflash_properties_since_qemu_4_0() {
        let machine = |version: &str, image: &FirmwareImage, smm: bool| {
            let (machine, args) = added(version, |c| c.machine("pc-q35-x", Accel::Kvm, image, smm));
            assert!(args.is_empty(), "{args:?}");
            machine
        };
        assert_eq!(
            machine("3.1.0", &split(), true),
            ["pc-q35-x", "accel=kvm", "smm=on"]
        );
        assert_eq!(
            machine("4.0.0", &split(), true),
            [
                "pc-q35-x",
                "accel=kvm",
                "pflash0=pflash0",
                "pflash1=pflash1",
                "smm=on"
            ]
        );
        let bios = FirmwareImage::Memory(PathBuf::from("/fw/OVMF.fd"));
        assert_eq!(machine("10.0.2", &bios, false), ["pc-q35-x", "accel=kvm"]);
        let igvm = FirmwareImage::Igvm(PathBuf::from("/fw/svsm.igvm"));
        assert_eq!(
            machine("10.1.0", &igvm, false),
            ["pc-q35-x", "accel=kvm", "igvm-cfg=igvm0"]
        );
        let (tcg, _) = added("7.2.0", |c| {
            c.machine("pc-i440fx-7.2", Accel::Tcg, &bios, false)
        });
        assert_eq!(tcg, ["pc-i440fx-7.2", "accel=tcg"]);
    }

    #[test]
    fn cpu_is_the_hosts_under_kvm_only() {
        assert_eq!(args("7.2.0", |c| c.cpu(Accel::Kvm)), ["-cpu", "host"]);
        assert_eq!(args("7.2.0", |c| c.cpu(Accel::Tcg)), Vec::<String>::new());
    }

    #[test]
    fn firmware_pflash_drives_by_qemu_version() {
        assert_eq!(
            args("3.1.0", |c| c.firmware(&split(), false)),
            [
                "-drive",
                "if=pflash,unit=0,format=raw,readonly=on,file=/fw/CODE.fd",
                "-drive",
                "if=pflash,unit=1,format=qcow2,readonly=off,file=/cell/vars.qcow2"
            ]
        );
        assert_eq!(
            args("4.0.0", |c| c.firmware(&split(), false)),
            [
                "-drive",
                "if=none,id=pflash0,format=raw,readonly=on,file=/fw/CODE.fd",
                "-drive",
                "if=none,id=pflash1,format=qcow2,readonly=off,file=/cell/vars.qcow2"
            ]
        );
    }

    #[test]
    fn firmware_secure_flash_comes_first() {
        let args = args("7.2.0", |c| c.firmware(&split(), true));
        assert_eq!(
            args[..2],
            ["-global", "driver=cfi.pflash01,property=secure,value=on"]
        );
        assert_eq!(args.len(), 6);
    }

    #[test]
    fn firmware_other_mappings() {
        assert_eq!(
            args("7.2.0", |c| c.firmware(
                &FirmwareImage::Memory(PathBuf::from("/fw/OVMF.fd")),
                false
            )),
            ["-bios", "/fw/OVMF.fd"]
        );
        assert_eq!(
            args("7.2.0", |c| c.firmware(
                &FirmwareImage::Kernel(PathBuf::from("/fw/fw.elf")),
                false
            )),
            ["-kernel", "/fw/fw.elf"]
        );
        assert_eq!(
            args("10.1.0", |c| c.firmware(
                &FirmwareImage::Igvm(PathBuf::from("/fw/svsm.igvm")),
                false
            )),
            ["-object", "igvm-cfg,id=igvm0,file=/fw/svsm.igvm"]
        );
    }

    #[test]
    fn sev_names_its_machine_property_by_qemu_version() {
        let object = "sev-guest,id=sev0,cbitpos=51,reduced-phys-bits=1,policy=0x1";
        assert_eq!(
            added("5.2.0", |c| c.sev(&sev_params(), false)),
            (
                vec!["memory-encryption=sev0".to_string()],
                vec!["-object".to_string(), object.to_string()]
            )
        );
        assert_eq!(
            added("6.0.0", |c| c.sev(&sev_params(), false)),
            (
                vec!["confidential-guest-support=sev0".to_string()],
                vec!["-object".to_string(), object.to_string()]
            )
        );
        let (_, hashes) = added("6.2.0", |c| c.sev(&sev_params(), true));
        assert_eq!(hashes, ["-object", &format!("{object},kernel-hashes=on")]);
    }

    #[test]
    fn confidential_objects_per_mode() {
        let p = sev_params();
        let (machine, args) = added("10.0.2", |c| {
            c.confidential(Confidential::SevEs, Some(&p), false)
        });
        assert_eq!(machine, ["confidential-guest-support=sev0"]);
        assert_eq!(
            args,
            [
                "-object",
                "sev-guest,id=sev0,cbitpos=51,reduced-phys-bits=1,policy=0x5"
            ]
        );
        for mode in [Confidential::SevSnp, Confidential::Igvm] {
            let (machine, args) = added("10.1.0", |c| c.confidential(mode, Some(&p), true));
            assert_eq!(machine, ["confidential-guest-support=sev0"]);
            assert_eq!(
                args,
                [
                    "-object",
                    "sev-snp-guest,id=sev0,cbitpos=51,reduced-phys-bits=1,policy=0x30000,kernel-hashes=on"
                ]
            );
        }
        let (machine, args) = added("10.1.0", |c| c.confidential(Confidential::Tdx, None, false));
        assert_eq!(machine, ["confidential-guest-support=tdx0"]);
        assert_eq!(args, ["-object", "tdx-guest,id=tdx0"]);
        // SEV through here is SEV as always; off adds nothing.
        assert_eq!(
            added("7.2.0", |c| c.confidential(
                Confidential::Sev,
                Some(&p),
                false
            )),
            added("7.2.0", |c| c.sev(&p, false))
        );
        assert_eq!(
            added("7.2.0", |c| c.confidential(
                Confidential::Off,
                Some(&p),
                false
            )),
            (vec![], vec![])
        );
        assert_eq!(
            added("10.0.2", |c| c.confidential(
                Confidential::SevSnp,
                None,
                false
            )),
            (vec![], vec![])
        );
        assert_eq!(args_of_cpu_model(), ["-cpu", "EPYC-v4"]);
    }

    fn args_of_cpu_model() -> Vec<String> {
        args("10.0.2", |c| c.cpu_model("EPYC-v4"))
    }

    #[test]
    fn console_is_stdio_plus_the_debug_port_when_asked() {
        let serial = [
            "-chardev",
            "stdio,id=console,signal=off",
            "-serial",
            "chardev:console",
        ];
        assert_eq!(args("7.2.0", |c| c.console(None)), serial);
        let log = PathBuf::from("/cell/debug.log");
        let with_log = args("7.2.0", |c| c.console(Some(&log)));
        assert_eq!(with_log[..4], serial);
        assert_eq!(
            with_log[4..],
            [
                "-chardev",
                "file,id=fwdebug,path=/cell/debug.log",
                "-device",
                "isa-debugcon,iobase=0x402,chardev=fwdebug"
            ]
        );
        assert_eq!(console_args(Some(&log)), with_log);
    }

    #[test]
    fn esp_at_its_slot_first_to_boot_and_through_the_iommu_under_sev() {
        let esp = PathBuf::from("/run/prepared/esp-signed");
        let drive = "if=none,id=esp,format=raw,readonly=on,file=fat:/run/prepared/esp-signed";
        assert_eq!(
            args("7.2.0", |c| c.esp(&esp, false)),
            [
                "-drive",
                drive,
                "-device",
                "virtio-blk-pci,drive=esp,romfile=,addr=0x5,bootindex=1"
            ]
        );
        assert_eq!(
            args("7.2.0", |c| c.esp(&esp, true)),
            [
                "-drive",
                drive,
                "-device",
                "virtio-blk-pci,drive=esp,romfile=,addr=0x5,bootindex=1,disable-legacy=on,iommu_platform=on"
            ]
        );
    }

    #[test]
    fn nic_carries_the_rom_under_test_at_its_slot() {
        assert_eq!(
            args("7.2.0", |c| c
                .nic(Path::new("/run/prepared/oprom-unsigned.rom"))),
            [
                "-netdev",
                "user,id=net0,restrict=on",
                "-device",
                "e1000,netdev=net0,romfile=/run/prepared/oprom-unsigned.rom,addr=0x6"
            ]
        );
    }

    #[test]
    fn kernel_with_initrd_append_and_the_legacy_loader_switch() {
        let kernel = |off: bool| {
            args("7.2.0", |c| {
                c.kernel(
                    Path::new("/p/vmlinuz-signed"),
                    Path::new("/p/initrd.cpio"),
                    "console=ttyS0 panic=-1",
                    off,
                )
            })
        };
        let plain = [
            "-kernel",
            "/p/vmlinuz-signed",
            "-initrd",
            "/p/initrd.cpio",
            "-append",
            "console=ttyS0 panic=-1",
            "-no-reboot",
        ];
        assert_eq!(kernel(false), plain);
        let off = kernel(true);
        assert_eq!(off[..7], plain);
        assert_eq!(
            off[7..],
            [
                "-fw_cfg",
                "name=opt/org.tianocore/EnableLegacyLoader,string=no"
            ]
        );
    }

    #[test]
    fn shim_is_handed_over_as_is() {
        assert_eq!(
            args("10.0.2", |c| c.shim(Path::new("/shim/shimx64.efi.signed"))),
            ["-shim", "/shim/shimx64.efi.signed"]
        );
    }

    #[test]
    fn into_argv_puts_machine_after_the_head_and_steps_in_order() {
        let qemu = qemu_binary("4.0.0");
        let mut cmd = QemuArgs::new(&qemu, 512);
        cmd.machine("pc-q35-4.0", Accel::Kvm, &split(), false);
        cmd.cpu(Accel::Kvm);
        cmd.sev(&sev_params(), false);
        cmd.shim(Path::new("/s"));
        let argv = cmd.into_argv();
        assert_eq!(
            argv[11..],
            [
                "-machine",
                "pc-q35-4.0,accel=kvm,pflash0=pflash0,pflash1=pflash1,memory-encryption=sev0",
                "-cpu",
                "host",
                "-object",
                "sev-guest,id=sev0,cbitpos=51,reduced-phys-bits=1,policy=0x1",
                "-shim",
                "/s"
            ]
        );
    }
}
