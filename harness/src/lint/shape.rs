//! `lint --boot`: the line's own shape as an argv template, so bootmatrix can boot it. What
//! decides how the firmware starts is kept as the line has it: `-machine` (without the
//! properties that name objects left out), `-accel`, `-cpu`, `-m`, `-smp`, `-global`, the
//! firmware (`-bios`, or the pflash `-drive`/`-blockdev`/`-pflash` options), `-fw_cfg`,
//! `-kernel`/`-initrd`/`-append` and `-no-reboot`/`-nodefaults`/`-no-user-config`. The
//! runtime's own disks, devices, objects (confidential ones too: template cells run without
//! SEV) and consoles are left out, since they name files and sockets of another machine. Then
//! placeholders take the place of its files: the code image becomes `{firmware}`, the
//! varstore `{vars}`, the kernel `{kernel}`; the accelerator is `{accel}`; bootmatrix's ESP
//! (slot 5) and the ROM's NIC (slot 6) are added.

use super::argv::QemuLine;

/// Options whose value is kept (as the line has it).
const KEPT: &[&str] = &[
    "machine", "M", "accel", "cpu", "m", "smp", "global", "bios", "fw_cfg", "kernel", "initrd",
    "append",
];

/// Options without a value that are kept.
const KEPT_FLAGS: &[&str] = &["no-reboot", "nodefaults", "no-user-config"];

/// `-machine` properties that name an object or backend the shape leaves out.
const OBJECT_PROPERTIES: &[&str] = &[
    "confidential-guest-support",
    "memory-encryption",
    "memory-backend",
    "igvm-cfg",
];

/// What the shape left out and why, for the user, and the template's words (the program
/// first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub words: Vec<String>,
    pub left_out: Vec<String>,
}

/// The boot shape of `line`, or why it has none (no firmware to put in its place).
pub fn boot_shape(line: &QemuLine) -> Result<Shape, String> {
    let code = match (&line.bios, &line.flash[0]) {
        (Some((_, file)), _) => file.clone(),
        (None, Some(flash)) => flash.file.clone(),
        (None, None) => {
            return Err("the line loads no firmware (-bios or pflash): nothing to boot".into())
        }
    };
    let vars = line.flash[1].as_ref().map(|f| f.file.clone());
    let flash_words: Vec<usize> = line
        .flash
        .iter()
        .flatten()
        .flat_map(|f| f.at.clone())
        .collect();
    let words = &line.words;
    let mut out = vec!["qemu".to_string()];
    let mut left_out = Vec::new();
    let mut has_accel = false;
    let (mut has_initrd, mut has_append) = (false, false);
    let mut i = usize::from(line.program.is_some());
    while i < words.len() {
        let word = &words[i];
        let Some(name) = word.strip_prefix("--").or_else(|| word.strip_prefix('-')) else {
            left_out.push(word.clone());
            i += 1;
            continue;
        };
        if super::argv::takes_no_value(name) {
            if KEPT_FLAGS.contains(&name) {
                out.push(format!("-{name}"));
            } else {
                left_out.push(word.clone());
            }
            i += 1;
            continue;
        }
        let Some(value) = words.get(i + 1) else {
            left_out.push(word.clone());
            break;
        };
        let firmware_drive = matches!(name, "drive" | "blockdev" | "pflash")
            && (flash_words.contains(&i) || flash_words.contains(&(i + 1)));
        if KEPT.contains(&name) || firmware_drive {
            let value = match name {
                "machine" | "M" => {
                    let props: Vec<String> = value
                        .split(',')
                        .filter(|p| {
                            let key = p.split('=').next().unwrap_or_default();
                            !OBJECT_PROPERTIES.contains(&key)
                        })
                        .map(|p| {
                            if p.starts_with("accel=") {
                                has_accel = true;
                                "accel={accel}".to_string()
                            } else {
                                p.to_string()
                            }
                        })
                        .collect();
                    props.join(",")
                }
                "accel" => {
                    has_accel = true;
                    "{accel}".to_string()
                }
                "kernel" => "{kernel}".to_string(),
                "initrd" => {
                    has_initrd = true;
                    "{initrd}".to_string()
                }
                "append" => {
                    has_append = true;
                    "{append}".to_string()
                }
                _ => {
                    let v = value.replace(&code, "{firmware}");
                    match &vars {
                        Some(vars) => v.replace(vars, "{vars}"),
                        None => v,
                    }
                }
            };
            out.extend([format!("-{name}"), value]);
        } else {
            left_out.push(format!("{word} {value}"));
        }
        i += 2;
    }
    if !has_accel {
        out.extend(["-accel".into(), "{accel}".into()]);
    }
    if line.kernel.is_some() {
        if !has_initrd {
            out.extend(["-initrd".into(), "{initrd}".into()]);
        }
        if !has_append {
            out.extend(["-append".into(), "{append}".into()]);
        }
    }
    out.extend(
        [
            "-drive",
            "if=none,id=bootmatrix-esp,format=raw,readonly=on,file=fat:{esp}",
            "-device",
            "virtio-blk-pci,drive=bootmatrix-esp,romfile=,addr=0x5,bootindex=1",
            "-netdev",
            "user,id=bootmatrix-net,restrict=on",
            "-device",
            "e1000,netdev=bootmatrix-net,romfile={romfile},addr=0x6",
        ]
        .map(String::from),
    );
    Ok(Shape {
        words: out,
        left_out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(line: &str) -> Shape {
        let words = crate::discover::words::split(line).unwrap();
        boot_shape(&QemuLine::parse(&words).unwrap()).unwrap()
    }

    #[test]
    fn a_libvirt_pflash_line_keeps_its_firmware_shape_and_leaves_its_devices_out() {
        let s = shape(
            "/usr/bin/qemu-system-x86_64 -name guest=vm1 \
             -machine pc-q35-7.2,usb=off,smm=on,accel=kvm,confidential-guest-support=lsec0 \
             -global driver=cfi.pflash01,property=secure,value=on \
             -drive if=pflash,format=raw,unit=0,file=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd,readonly=on \
             -drive if=pflash,format=raw,unit=1,file=/var/lib/libvirt/qemu/nvram/vm1_VARS.fd \
             -object sev-guest,id=lsec0,cbitpos=51,reduced-phys-bits=1,policy=0x1 \
             -m 2048 -chardev socket,id=mon,path=/run/mon.sock -serial pty \
             -drive file=/var/lib/vm1.qcow2,if=none,id=d0 -device virtio-blk-pci,drive=d0 \
             -nodefaults",
        );
        let line = s.words.join(" ");
        assert_eq!(
            line,
            "qemu -machine pc-q35-7.2,usb=off,smm=on,accel={accel} \
             -global driver=cfi.pflash01,property=secure,value=on \
             -drive if=pflash,format=raw,unit=0,file={firmware},readonly=on \
             -drive if=pflash,format=raw,unit=1,file={vars} -m 2048 -nodefaults \
             -drive if=none,id=bootmatrix-esp,format=raw,readonly=on,file=fat:{esp} \
             -device virtio-blk-pci,drive=bootmatrix-esp,romfile=,addr=0x5,bootindex=1 \
             -netdev user,id=bootmatrix-net,restrict=on \
             -device e1000,netdev=bootmatrix-net,romfile={romfile},addr=0x6"
        );
        assert!(
            s.left_out.contains(&"-serial pty".to_string()),
            "{:?}",
            s.left_out
        );
        assert!(s
            .left_out
            .iter()
            .any(|w| w.starts_with("-object sev-guest")));
        let t = crate::plan::template::ArgvTemplate::parse(std::path::Path::new("lint"), s.words)
            .unwrap();
        assert_eq!((t.esp_slot, t.rom_slot), (Some(5), Some(6)));
    }

    #[test]
    fn a_bios_line_with_a_kernel_gets_its_initrd_and_append_and_an_accelerator() {
        let s = shape("qemu-system-x86_64 -enable-kvm -bios /x/OVMF.fd -kernel /k/vmlinux");
        let line = s.words.join(" ");
        assert!(
            line.starts_with("qemu -bios {firmware} -kernel {kernel} -accel {accel} -initrd {initrd} -append {append} "),
            "{line}"
        );
        assert_eq!(s.left_out, ["-enable-kvm"]);
    }

    #[test]
    fn a_line_without_firmware_has_no_shape() {
        let words = crate::discover::words::split("qemu -kernel /k").unwrap();
        let e = boot_shape(&QemuLine::parse(&words).unwrap()).unwrap_err();
        assert!(e.contains("no firmware"), "{e}");
    }
}
