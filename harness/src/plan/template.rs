//! A runtime's own QEMU command line (`run --argv-template FILE`): its words with placeholders
//! that bootmatrix fills in per cell, so the secure-boot, option-rom and kernel-boot checks run
//! with the runtime's shape instead of bootmatrix's own.
//!
//! Placeholders: `{firmware}` (the descriptor's executable), `{vars}` (the cell's private copy
//! of its varstore), `{esp}` (a folder holding `EFI/BOOT/BOOTX64.EFI`: give it to QEMU as
//! `file=fat:{esp}`), `{kernel}`, `{initrd}`, `{append}`, `{romfile}` (the option ROM under
//! test) and `{accel}` (the cell's accelerator, `kvm` or `tcg`). The first word (the runtime's
//! QEMU) is replaced by each cell's QEMU. bootmatrix adds only what it reads the guest by: the
//! serial console on QEMU's stdout, the firmware debug console, `-d guest_errors`, and
//! `-display none` where the line has no `-display`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use regex::Regex;

use crate::matrix::Check;

/// The placeholders a template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "firmware", "vars", "esp", "kernel", "initrd", "append", "romfile", "accel",
];

/// Options that would take the serial console, the process or the terminal from bootmatrix.
const FORBIDDEN: &[(&str, &str)] = &[
    ("-serial", "bootmatrix reads the serial console itself, on QEMU's stdout"),
    ("-nographic", "it puts the serial console and the monitor on stdio, where bootmatrix reads the serial console"),
    ("-daemonize", "bootmatrix must keep QEMU as its child, to bound and kill it"),
    ("-monitor", "a monitor on stdio would mix with the serial console"),
    ("-S", "the guest would wait for a monitor command that never comes"),
];

/// A runtime's command line, checked and ready to fill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgvTemplate {
    /// The name its cells carry (`-via-NAME`): the file's stem in lower case, other characters
    /// than `a-z`, `0-9` and `-` as `-`.
    pub name: String,
    pub source: PathBuf,
    /// The words after the program.
    pub words: Vec<String>,
    /// The PCI slot of the device that holds `{esp}` (its `addr=`).
    pub esp_slot: Option<u8>,
    /// The PCI slot of the device whose `romfile=` is `{romfile}`.
    pub rom_slot: Option<u8>,
}

/// What a cell fills a template with.
#[derive(Debug, Clone, Default)]
pub struct Fill {
    pub firmware: PathBuf,
    pub vars: Option<PathBuf>,
    pub esp: Option<PathBuf>,
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub append: Option<String>,
    pub romfile: Option<PathBuf>,
    pub accel: String,
}

fn placeholder_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\{([^{}]*)\}").expect("valid regex"))
}

impl ArgvTemplate {
    /// Checks a template's words (the first is the runtime's QEMU); the error names the file
    /// and the word.
    pub fn parse(source: &Path, words: Vec<String>) -> Result<ArgvTemplate, String> {
        let at = |what: String| format!("--argv-template {}: {what}", source.display());
        let Some((_, words)) = words.split_first() else {
            return Err(at("no command line in it".into()));
        };
        let words = words.to_vec();
        for word in &words {
            for caps in placeholder_re().captures_iter(word) {
                if !PLACEHOLDERS.contains(&&caps[1]) {
                    return Err(at(format!(
                        "unknown placeholder {{{}}} in {word:?} (known: {})",
                        &caps[1],
                        PLACEHOLDERS
                            .iter()
                            .map(|p| format!("{{{p}}}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
            if let Some((option, why)) = FORBIDDEN.iter().find(|(o, _)| word == o) {
                return Err(at(format!("{option} cannot be used: {why}")));
            }
            if word.starts_with("stdio") || word.contains(",stdio") || word.contains("=stdio") {
                return Err(at(format!(
                    "{word:?} uses stdio, where bootmatrix reads the serial console"
                )));
            }
        }
        let mut t = ArgvTemplate {
            name: name_of(source),
            source: source.to_path_buf(),
            words,
            esp_slot: None,
            rom_slot: None,
        };
        if !t.uses("firmware") {
            return Err(at(
                "it never names {firmware}, so no cell's firmware would run".into(),
            ));
        }
        if t.uses("esp") {
            t.esp_slot = Some(t.slot_of_drive("{esp}").map_err(at)?);
        }
        if t.uses("romfile") {
            t.rom_slot = Some(t.slot_of_device("romfile={romfile}").map_err(at)?);
        }
        Ok(t)
    }

    /// Whether a word holds `{placeholder}`.
    pub fn uses(&self, placeholder: &str) -> bool {
        let p = format!("{{{placeholder}}}");
        self.words.iter().any(|w| w.contains(&p))
    }

    /// Whether the line has `option` as a word of its own.
    pub fn has_option(&self, option: &str) -> bool {
        self.words.iter().any(|w| w == option)
    }

    /// Why the template cannot carry a cell of `check` on a build with (`has_vars`) or without
    /// a varstore template, or None.
    pub fn lacks(&self, check: Check, has_vars: bool) -> Option<String> {
        let needed: &[&str] = match check {
            Check::SecureBoot => &["esp"],
            Check::OptionRom => &["esp", "romfile"],
            Check::KernelBoot => &["kernel", "initrd", "append"],
            _ => {
                return Some(format!(
                    "template {} runs secure-boot, option-rom and kernel-boot cells only",
                    self.name
                ))
            }
        };
        let missing: Vec<String> = needed
            .iter()
            .filter(|p| !self.uses(p))
            .map(|p| format!("{{{p}}}"))
            .collect();
        if !missing.is_empty() {
            return Some(format!(
                "template {} has no {}, which a {check} cell needs",
                self.name,
                missing.join(" or ")
            ));
        }
        (self.uses("vars") && !has_vars).then(|| {
            format!(
                "template {} gives the firmware {{vars}}, and this build has no varstore template \
                 to copy",
                self.name
            )
        })
    }

    /// The words with the cell's values filled in. An option whose argument names a
    /// placeholder the cell has no value for is left out, with its argument: a secure-boot cell
    /// gets no `-kernel`, a kernel-boot cell no ESP drive; a `-device` on a drive left out goes
    /// too. ([`ArgvTemplate::lacks`] keeps out cells that lack a value they need.)
    pub fn fill(&self, fill: &Fill) -> Vec<String> {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let values = [
            ("{firmware}", Some(fill.firmware.display().to_string())),
            ("{vars}", path(&fill.vars)),
            ("{esp}", path(&fill.esp)),
            ("{kernel}", path(&fill.kernel)),
            ("{initrd}", path(&fill.initrd)),
            ("{append}", fill.append.clone()),
            ("{romfile}", path(&fill.romfile)),
            ("{accel}", Some(fill.accel.clone())),
        ];
        let unfilled = |w: &str| values.iter().any(|(p, v)| v.is_none() && w.contains(p));
        let mut kept: Vec<&String> = Vec::new();
        let mut dropped_ids: Vec<&str> = Vec::new();
        let mut i = 0;
        while i < self.words.len() {
            let word = &self.words[i];
            match self.words.get(i + 1) {
                Some(arg) if word.starts_with('-') && unfilled(arg) => {
                    dropped_ids.extend(property(arg, "id"));
                    i += 2;
                }
                _ => {
                    kept.push(word);
                    i += 1;
                }
            }
        }
        let mut out: Vec<String> = Vec::new();
        let mut i = 0;
        while i < kept.len() {
            let on_dropped_drive = kept[i] == "-device"
                && kept.get(i + 1).is_some_and(|d| {
                    property(d, "drive").is_some_and(|id| dropped_ids.contains(&id))
                });
            if on_dropped_drive {
                i += 2;
                continue;
            }
            let filled = values.iter().fold(kept[i].clone(), |w, (p, v)| match v {
                Some(v) => w.replace(p, v),
                None => w,
            });
            out.push(filled);
            i += 1;
        }
        out
    }

    /// The `addr=` slot of the `-device` that uses the drive whose file holds `needle`.
    fn slot_of_drive(&self, needle: &str) -> Result<u8, String> {
        let drive = self
            .words
            .iter()
            .find(|w| w.contains(needle))
            .expect("uses() found it");
        let id = property(drive, "id").ok_or_else(|| {
            format!(
                "the drive {drive:?} has no id=, so no -device can name it; bootmatrix needs the \
                 ESP on a -device with addr= to tell a refusal of its probe from other lines"
            )
        })?;
        self.slot_of_device(&format!("drive={id}"))
    }

    /// The `addr=` slot of the `-device` argument holding `needle` as a property.
    fn slot_of_device(&self, needle: &str) -> Result<u8, String> {
        let device = self
            .words
            .windows(2)
            .filter(|w| w[0] == "-device")
            .map(|w| &w[1])
            .find(|d| d.split(',').any(|p| p == needle))
            .ok_or_else(|| format!("no -device has {needle}"))?;
        let addr = property(device, "addr").ok_or_else(|| {
            format!(
                "-device {device:?} has no addr=: bootmatrix needs its PCI slot to tell the boot \
                 manager's and the probe's lines about it from others; add addr=0x5 (or any free \
                 slot)"
            )
        })?;
        let slot = addr.split('.').next().unwrap_or_default();
        let parsed = match slot.strip_prefix("0x") {
            Some(hex) => u8::from_str_radix(hex, 16),
            None => slot.parse(),
        };
        parsed
            .ok()
            .filter(|s| *s < 32)
            .ok_or_else(|| format!("-device {device:?}: addr={addr} is no PCI slot (0-31)"))
    }
}

/// `key`'s value among a QEMU option argument's comma-separated properties.
fn property<'a>(arg: &'a str, key: &str) -> Option<&'a str> {
    arg.split(',')
        .find_map(|p| p.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
}

fn name_of(source: &Path) -> String {
    let stem = source
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if name.is_empty() {
        "template".into()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        crate::discover::words::split(line).unwrap()
    }

    const KATA: &str = "/opt/kata/bin/qemu-system-x86_64 -machine q35,accel={accel},smm=on \
        -global driver=cfi.pflash01,property=secure,value=on \
        -drive if=pflash,format=raw,readonly=on,file={firmware} \
        -drive if=pflash,format=raw,file={vars} -m 2048 \
        -drive if=none,id=esp,format=raw,readonly=on,file=fat:{esp} \
        -device virtio-blk-pci,drive=esp,addr=0x5,bootindex=1 \
        -device e1000,netdev=n0,romfile={romfile},addr=0x6 -netdev user,id=n0 \
        -kernel {kernel} -initrd {initrd} -append {append}";

    fn kata() -> ArgvTemplate {
        ArgvTemplate::parse(Path::new("/t/Kata Q35.args"), words(KATA)).unwrap()
    }

    #[test]
    fn a_template_is_named_after_its_file_and_finds_its_slots() {
        let t = kata();
        assert_eq!(t.name, "kata-q35");
        assert_eq!(t.words[0], "-machine");
        assert_eq!((t.esp_slot, t.rom_slot), (Some(5), Some(6)));
        assert_eq!(t.lacks(Check::SecureBoot, true), None);
        assert_eq!(t.lacks(Check::KernelBoot, true), None);
        assert!(t
            .lacks(Check::SecureBoot, false)
            .unwrap()
            .contains("{vars}"));
        assert!(t.lacks(Check::NoShell, true).is_some());
    }

    #[test]
    fn fill_puts_the_cells_values_in() {
        let filled = kata().fill(&Fill {
            firmware: "/fw/CODE.fd".into(),
            vars: Some("/cell/vars.fd".into()),
            esp: Some("/run/esp-signed".into()),
            kernel: Some("/run/vmlinuz".into()),
            initrd: Some("/run/initrd".into()),
            append: Some("console=ttyS0 panic=-1".into()),
            romfile: Some("/run/rom".into()),
            accel: "tcg".into(),
        });
        assert_eq!(filled[1], "q35,accel=tcg,smm=on");
        assert!(filled.contains(&"if=pflash,format=raw,file=/cell/vars.fd".to_string()));
        assert!(filled.contains(&"console=ttyS0 panic=-1".to_string()));
        assert!(!filled.iter().any(|w| w.contains('{')), "{filled:?}");
    }

    #[test]
    fn options_a_cell_has_no_value_for_are_left_out_with_their_devices() {
        let secure_boot = kata().fill(&Fill {
            firmware: "/fw/CODE.fd".into(),
            vars: Some("/cell/vars.fd".into()),
            esp: Some("/run/esp-unsigned".into()),
            accel: "kvm".into(),
            ..Fill::default()
        });
        let line = secure_boot.join(" ");
        assert!(
            !line.contains("-kernel") && !line.contains("-append"),
            "{line}"
        );
        assert!(!line.contains("e1000"), "{line}");
        assert!(
            line.contains("file=fat:/run/esp-unsigned -device virtio-blk-pci,drive=esp,addr=0x5"),
            "{line}"
        );
        let kernel = kata().fill(&Fill {
            firmware: "/fw/CODE.fd".into(),
            vars: Some("/cell/vars.fd".into()),
            kernel: Some("/run/vmlinuz".into()),
            initrd: Some("/run/initrd".into()),
            append: Some("console=ttyS0".into()),
            accel: "tcg".into(),
            ..Fill::default()
        });
        let line = kernel.join(" ");
        assert!(
            !line.contains("esp") && !line.contains("virtio-blk-pci"),
            "{line}"
        );
        assert!(
            line.ends_with("-kernel /run/vmlinuz -initrd /run/initrd -append console=ttyS0"),
            "{line}"
        );
        assert!(line.contains("-netdev user,id=n0"), "{line}");
    }

    #[test]
    fn a_template_without_what_a_check_needs_names_it() {
        let t = ArgvTemplate::parse(
            Path::new("bios.args"),
            words("qemu -bios {firmware} -kernel {kernel}"),
        )
        .unwrap();
        assert_eq!(
            t.lacks(Check::KernelBoot, false).unwrap(),
            "template bios has no {initrd} or {append}, which a kernel-boot cell needs"
        );
        assert!(t
            .lacks(Check::SecureBoot, false)
            .unwrap()
            .contains("no {esp}"));
    }

    #[rstest::rstest]
    #[case("qemu -bios x", "never names {firmware}")]
    #[case("qemu -bios {firmware} {disk}", "unknown placeholder {disk}")]
    #[case("qemu -bios {firmware} -serial mon:stdio", "-serial cannot be used")]
    #[case("qemu -bios {firmware} -nographic", "-nographic cannot be used")]
    #[case("qemu -bios {firmware} -chardev stdio,id=c", "uses stdio")]
    #[case(
        "qemu -bios {firmware} -drive if=none,id=e,file=fat:{esp} -device virtio-blk-pci,drive=e",
        "has no addr="
    )]
    #[case("qemu -bios {firmware} -drive if=virtio,file=fat:{esp}", "has no id=")]
    #[case(
        "qemu -bios {firmware} -device e1000,romfile={romfile},addr=0x40",
        "is no PCI slot"
    )]
    #[case("", "no command line")]
    fn bad_templates_are_errors_naming_the_file_and_the_word(
        #[case] line: &str,
        #[case] says: &str,
    ) {
        let e = ArgvTemplate::parse(Path::new("/t/x.args"), words(line)).unwrap_err();
        assert!(e.starts_with("--argv-template /t/x.args: "), "{e}");
        assert!(e.contains(says), "{e}");
    }
}
