//! A QEMU command line, read the way QEMU reads the options that decide how firmware is
//! loaded: `-bios`, `-drive if=pflash` / `-pflash`, `-blockdev` nodes named by
//! `-machine pflash0=`/`pflash1=`, `-machine`/`-M` (merged, `smm=`, `confidential-guest-support=`
//! or the older `memory-encryption=`), `-object sev-guest`/`sev-snp-guest`/`tdx-guest`,
//! `-global` (both spellings), `-kernel`, `-device ...,romfile=` and `-fw_cfg`. Values are
//! QEMU's `key=value` lists (`,,` is a comma) or JSON objects (libvirt writes `-blockdev`,
//! `-object` and `-device` as JSON). Options this module does not need are skipped with their
//! value.

use std::collections::BTreeMap;

/// One option's `key=value` properties, in order; a later key wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Props {
    pub pairs: Vec<(String, String)>,
}

impl Props {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean property as QEMU reads it (`on`, `yes`, `true`, `y`); None when absent.
    pub fn flag(&self, key: &str) -> Option<bool> {
        self.get(key).map(truthy)
    }

    /// The properties under `prefix.` (a `-blockdev` child given inline), prefix taken off.
    fn child(&self, prefix: &str) -> Props {
        let dotted = format!("{prefix}.");
        Props {
            pairs: self
                .pairs
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(&dotted).map(|k| (k.to_string(), v.clone())))
                .collect(),
        }
    }
}

pub fn truthy(value: &str) -> bool {
    matches!(value, "on" | "yes" | "true" | "y")
}

/// Reads `a=b,c=d` (`,,` for a comma; a bare word after the first is `word=on`) or a JSON
/// object. `implied`: the key of a bare first word (`q35` in `-machine q35,...` is `type`).
pub fn props(value: &str, implied: Option<&str>) -> Result<Props, String> {
    if value.trim_start().starts_with('{') {
        let json: serde_json::Value =
            serde_json::from_str(value).map_err(|e| format!("not a JSON object: {e}"))?;
        let mut pairs = Vec::new();
        flatten("", &json, &mut pairs);
        return Ok(Props { pairs });
    }
    let mut pairs = Vec::new();
    let mut part = String::new();
    let mut parts = Vec::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                part.push(',');
            } else {
                parts.push(std::mem::take(&mut part));
            }
        } else {
            part.push(c);
        }
    }
    parts.push(part);
    for (i, part) in parts.into_iter().enumerate() {
        match part.split_once('=') {
            Some((k, v)) => pairs.push((k.to_string(), v.to_string())),
            None if part.is_empty() => {}
            None => match (i, implied) {
                (0, Some(key)) => pairs.push((key.to_string(), part)),
                _ => pairs.push((part, "on".to_string())),
            },
        }
    }
    Ok(Props { pairs })
}

fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    use serde_json::Value;
    let text = match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
            return;
        }
        Value::Bool(b) => if *b { "on" } else { "off" }.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Null | Value::Array(_) => return,
    };
    out.push((prefix.to_string(), text));
}

/// A flash image: the file, whether it is mapped read-only, and the words that say so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub file: String,
    pub readonly: bool,
    pub at: Vec<usize>,
}

/// The confidential guest an `-object` makes: `sev-guest` (SEV, or SEV-ES by its policy: lint
/// does not tell them apart), `sev-snp-guest` or `tdx-guest`; the matrix's own word for it.
pub use crate::matrix::Confidential;

/// The confidential-guest object the machine uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guest {
    pub kind: Confidential,
    pub kernel_hashes: bool,
    pub at: Vec<usize>,
}

/// What lint needs of a QEMU command line. `at` fields are indices into `words`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QemuLine {
    pub words: Vec<String>,
    /// `qemu-system-x86_64` when the line starts with its program.
    pub program: Option<String>,
    /// Every `-machine`/`-M`, merged.
    pub machine: Props,
    pub machine_at: Vec<usize>,
    pub bios: Option<(usize, String)>,
    /// pflash units 0 (code) and 1 (varstore).
    pub flash: [Option<Flash>; 2],
    /// The `-global` that makes `cfi.pflash01` SMM-only, if any.
    pub pflash_secure: Option<usize>,
    pub kernel: Option<(usize, String)>,
    pub guest: Option<Guest>,
    /// Devices with a non-empty `romfile=`: (word, file).
    pub romfiles: Vec<(usize, String)>,
    /// `-fw_cfg`: (word, name, string value).
    pub fw_cfg: Vec<(usize, String, Option<String>)>,
}

/// Options that take no value (QEMU's `qemu-options.hx`, the ones runtimes use).
const FLAGS: &[&str] = &[
    "S",
    "s",
    "nographic",
    "no-reboot",
    "no-shutdown",
    "enable-kvm",
    "snapshot",
    "daemonize",
    "no-hpet",
    "no-acpi",
    "nodefaults",
    "no-user-config",
    "full-screen",
    "usb",
    "no-fd-bootchk",
    "only-migratable",
    "preconfig",
    "version",
    "help",
    "h",
    "enable-fips",
    "no-quit",
    "win2k-hack",
    "no-graphic",
    "old-param",
    "semihosting",
    "xen-attach",
    "alt-grab",
    "ctrl-grab",
    "no-frame",
    "singlestep",
    "perfmap",
    "jitdump",
];

/// Whether QEMU's option `name` (without its dash) takes no value.
pub fn takes_no_value(name: &str) -> bool {
    FLAGS.contains(&name)
}

/// Options known to take a value, even one that starts with `-`.
const VALUED: &[&str] = &[
    "machine",
    "M",
    "bios",
    "drive",
    "blockdev",
    "pflash",
    "object",
    "global",
    "kernel",
    "initrd",
    "append",
    "device",
    "fw_cfg",
    "accel",
    "cpu",
    "m",
    "smp",
    "name",
    "netdev",
    "nic",
    "net",
    "chardev",
    "serial",
    "monitor",
    "mon",
    "qmp",
    "vga",
    "display",
    "boot",
    "L",
    "uuid",
    "rtc",
    "incoming",
    "sandbox",
    "msg",
    "overcommit",
    "D",
    "d",
    "trace",
    "pidfile",
    "runas",
    "vnc",
    "spice",
    "audiodev",
    "fsdev",
    "virtfs",
    "numa",
    "add-fd",
    "smbios",
    "cdrom",
    "hda",
    "hdb",
    "hdc",
    "hdd",
    "fda",
    "fdb",
    "k",
    "loadvm",
    "icount",
    "action",
    "set",
    "readconfig",
    "dtb",
    "shim",
    "tpmdev",
    "parallel",
    "debugcon",
    "compat",
    "chroot",
    "option-rom",
    "mem-path",
    "mem-prealloc",
    "watchdog-action",
    "usbdevice",
    "iscsi",
    "mtdblock",
    "sd",
    "semihosting-config",
    "device-tree",
    "plugin",
    "run-with",
    "vga",
    "g",
];

impl QemuLine {
    /// Reads `words` (the program first, or the options alone). The error names the word.
    pub fn parse(words: &[String]) -> Result<QemuLine, String> {
        let mut line = QemuLine {
            words: words.to_vec(),
            ..QemuLine::default()
        };
        let mut i = 0;
        if let Some(first) = words.first().filter(|w| !w.starts_with('-')) {
            line.program = Some(first.clone());
            i = 1;
        }
        let mut drives: Vec<(Option<usize>, Flash)> = Vec::new();
        let mut nodes: BTreeMap<String, (usize, Props)> = BTreeMap::new();
        let mut objects: Vec<(usize, Props)> = Vec::new();
        while i < words.len() {
            let word = &words[i];
            let Some(name) = word.strip_prefix("--").or_else(|| word.strip_prefix('-')) else {
                // A disk image given without an option (`qemu disk.img`).
                i += 1;
                continue;
            };
            let takes_value = VALUED.contains(&name)
                || (!FLAGS.contains(&name)
                    && words.get(i + 1).is_some_and(|next| !next.starts_with('-')));
            if !takes_value {
                i += 1;
                continue;
            }
            let at = i + 1;
            let value = words
                .get(at)
                .ok_or_else(|| format!("word {i} ({word}): the option has no value"))?;
            let bad = |e: String| format!("word {at} ({word} {value}): {e}");
            match name {
                "machine" | "M" => {
                    line.machine
                        .pairs
                        .extend(props(value, Some("type")).map_err(bad)?.pairs);
                    line.machine_at.extend([i, at]);
                }
                "bios" => line.bios = Some((at, value.clone())),
                "kernel" => line.kernel = Some((at, value.clone())),
                "pflash" => drives.push((
                    None,
                    Flash {
                        file: value.clone(),
                        readonly: false,
                        at: vec![i, at],
                    },
                )),
                "drive" => {
                    let p = props(value, None).map_err(bad)?;
                    if p.get("if") == Some("pflash") {
                        let unit = match p.get("unit").or(p.get("index")) {
                            Some(u) => Some(
                                u.parse::<usize>()
                                    .map_err(|_| bad(format!("unit {u:?} is not a number")))?,
                            ),
                            None => None,
                        };
                        let file = p.get("file").unwrap_or_default().to_string();
                        let readonly = p.flag("readonly").unwrap_or(false)
                            || p.flag("read-only").unwrap_or(false);
                        drives.push((
                            unit,
                            Flash {
                                file,
                                readonly,
                                at: vec![i, at],
                            },
                        ));
                    }
                }
                "blockdev" => {
                    let p = props(value, None).map_err(bad)?;
                    if let Some(node) = p.get("node-name") {
                        nodes.insert(node.to_string(), (at, p.clone()));
                    }
                }
                "object" => objects.push((at, props(value, Some("qom-type")).map_err(bad)?)),
                "global" => {
                    let p = props(value, None).map_err(bad)?;
                    let (driver, property, set) = match (p.get("driver"), p.get("property")) {
                        (Some(d), Some(prop)) => (d, prop, p.get("value").unwrap_or_default()),
                        _ => match p.pairs.first() {
                            Some((k, v)) => match k.rsplit_once('.') {
                                Some((d, prop)) => (d, prop, v.as_str()),
                                None => ("", "", ""),
                            },
                            None => ("", "", ""),
                        },
                    };
                    if driver == "cfi.pflash01" && property == "secure" {
                        line.pflash_secure = truthy(set).then_some(at);
                    }
                }
                "device" => {
                    let p = props(value, Some("driver")).map_err(bad)?;
                    if let Some(rom) = p.get("romfile").filter(|r| !r.is_empty()) {
                        line.romfiles.push((at, rom.to_string()));
                    }
                }
                "fw_cfg" => {
                    let p = props(value, Some("name")).map_err(bad)?;
                    let name = p.get("name").unwrap_or_default().to_string();
                    line.fw_cfg
                        .push((at, name, p.get("string").map(str::to_string)));
                }
                _ => {}
            }
            i += 2;
        }
        // -drive if=pflash without a unit takes the next free one, as QEMU numbers them.
        for (unit, flash) in drives {
            let unit = match unit {
                Some(u) => u,
                None => (0..)
                    .find(|u| line.flash.get(*u).is_none_or(Option::is_none))
                    .unwrap_or(0),
            };
            match line.flash.get_mut(unit) {
                Some(slot) => *slot = Some(flash),
                None => {
                    return Err(format!(
                        "word {} ({}): pflash unit {unit}: x86 machines have units 0 and 1",
                        flash.at[1], line.words[flash.at[1]]
                    ))
                }
            }
        }
        for (unit, key) in ["pflash0", "pflash1"].iter().enumerate() {
            if let Some(node) = line.machine.get(key) {
                line.flash[unit] =
                    Some(resolve(node, &nodes).map_err(|e| format!("-machine {key}={node}: {e}"))?);
            }
        }
        let guest_id = line
            .machine
            .get("confidential-guest-support")
            .or(line.machine.get("memory-encryption"));
        if let Some(id) = guest_id {
            let (at, object) = objects
                .iter()
                .find(|(_, o)| o.get("id") == Some(id))
                .ok_or_else(|| {
                    format!("-machine names the object {id:?}, which no -object defines")
                })?;
            let kind = match object.get("qom-type") {
                Some("sev-guest") => Some(Confidential::Sev),
                Some("sev-snp-guest") => Some(Confidential::SevSnp),
                Some("tdx-guest") => Some(Confidential::Tdx),
                _ => None,
            };
            line.guest = kind.map(|kind| Guest {
                kind,
                kernel_hashes: object.flag("kernel-hashes").unwrap_or(false),
                at: vec![at - 1, *at],
            });
        }
        Ok(line)
    }

    /// The words at `at`, for a finding.
    pub fn words_at(&self, at: &[usize]) -> Vec<(usize, String)> {
        at.iter()
            .filter_map(|i| self.words.get(*i).map(|w| (*i, w.clone())))
            .collect()
    }

    /// The machine type as given (`q35`, `pc-q35-8.2`), if any.
    pub fn machine_type(&self) -> Option<&str> {
        self.machine.get("type")
    }
}

/// A `-blockdev` node chain down to its file: read-only if any node on the way is.
fn resolve(name: &str, nodes: &BTreeMap<String, (usize, Props)>) -> Result<Flash, String> {
    let (mut at, mut props) = nodes
        .get(name)
        .cloned()
        .ok_or_else(|| format!("no -blockdev has node-name {name:?}"))?;
    let mut readonly = false;
    let mut words = vec![at - 1, at];
    for _ in 0..16 {
        readonly |= props.flag("read-only").unwrap_or(false);
        if let Some(file) = props.get("filename") {
            return Ok(Flash {
                file: file.to_string(),
                readonly,
                at: words,
            });
        }
        match props.get("file") {
            Some(next) => {
                (at, props) = nodes
                    .get(next)
                    .cloned()
                    .ok_or_else(|| format!("no -blockdev has node-name {next:?}"))?;
                words.extend([at - 1, at]);
            }
            None if props.pairs.iter().any(|(k, _)| k.starts_with("file.")) => {
                props = props.child("file");
            }
            None => return Err(format!("node {name:?} names no file")),
        }
    }
    Err(format!("node {name:?}: too many nodes in its chain"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> QemuLine {
        let words: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        QemuLine::parse(&words).unwrap()
    }

    #[test]
    fn double_commas_are_commas_and_bare_words_are_on() {
        let p = props("q35,smm=on,x=a,,b,,,readonly", Some("type")).unwrap();
        assert_eq!(p.get("type"), Some("q35"));
        assert_eq!(p.get("x"), Some("a,b,"));
        assert_eq!(p.flag("readonly"), Some(true));
        assert_eq!(p.flag("smm"), Some(true));
        assert_eq!(p.flag("absent"), None);
        let line = parse(&["-drive", "if=pflash,unit=1,file=/v/a,,b.fd"]);
        assert_eq!(line.flash[1].as_ref().unwrap().file, "/v/a,b.fd");
    }

    #[test]
    fn drives_number_their_units_and_read_readonly() {
        let line = parse(&[
            "qemu-system-x86_64",
            "-drive",
            "if=pflash,format=raw,readonly,file=/c.fd",
            "-drive",
            "file=/v.fd,if=pflash,format=raw",
            "-drive",
            "file=disk.img,if=virtio",
        ]);
        assert_eq!(line.program.as_deref(), Some("qemu-system-x86_64"));
        let code = line.flash[0].as_ref().unwrap();
        assert_eq!(
            (code.file.as_str(), code.readonly, code.at.as_slice()),
            ("/c.fd", true, &[1, 2][..])
        );
        let vars = line.flash[1].as_ref().unwrap();
        assert_eq!((vars.file.as_str(), vars.readonly), ("/v.fd", false));
        let pflash = parse(&["-pflash", "/c.fd", "-pflash", "/v.fd"]);
        assert_eq!(pflash.flash[1].as_ref().unwrap().file, "/v.fd");
        let words: Vec<String> = ["-drive", "if=pflash,unit=2,file=/x"]
            .map(String::from)
            .to_vec();
        assert!(QemuLine::parse(&words).unwrap_err().contains("unit 2"));
    }

    #[test]
    fn blockdev_chains_resolve_through_node_names_json_and_inline_files() {
        let line = parse(&[
            "-blockdev",
            r#"{"driver":"file","filename":"/c.fd","node-name":"code-file","auto-read-only":true}"#,
            "-blockdev",
            r#"{"node-name":"code","read-only":true,"driver":"raw","file":"code-file"}"#,
            "-blockdev",
            "driver=raw,node-name=vars,file.driver=file,file.filename=/v,,1.fd",
            "-machine",
            "q35,pflash0=code",
            "-M",
            "pflash1=vars,smm=on",
        ]);
        let code = line.flash[0].as_ref().unwrap();
        assert_eq!((code.file.as_str(), code.readonly), ("/c.fd", true));
        assert_eq!(code.at, [2, 3, 0, 1]);
        let vars = line.flash[1].as_ref().unwrap();
        assert_eq!((vars.file.as_str(), vars.readonly), ("/v,1.fd", false));
        assert_eq!(line.machine_type(), Some("q35"));
        assert_eq!(line.machine.get("smm"), Some("on"));
        let words: Vec<String> = ["-machine", "q35,pflash0=nowhere"]
            .map(String::from)
            .to_vec();
        let e = QemuLine::parse(&words).unwrap_err();
        assert!(
            e.contains("pflash0=nowhere") && e.contains("node-name"),
            "{e}"
        );
    }

    #[test]
    fn sev_objects_are_found_by_the_old_and_the_new_property() {
        let old = parse(&[
            "-machine",
            "pc-q35-4.0,memory-encryption=sev0",
            "-object",
            "sev-guest,id=sev0,cbitpos=47,reduced-phys-bits=1,policy=0x1",
        ]);
        let guest = old.guest.unwrap();
        assert_eq!(
            (guest.kind, guest.kernel_hashes, guest.at),
            (Confidential::Sev, false, vec![2, 3])
        );
        let new = parse(&[
            "-object",
            r#"{"qom-type":"sev-snp-guest","id":"lsec0","cbitpos":51,"kernel-hashes":true}"#,
            "-machine",
            "q35,confidential-guest-support=lsec0",
        ]);
        let guest = new.guest.unwrap();
        assert_eq!(
            (guest.kind, guest.kernel_hashes),
            (Confidential::SevSnp, true)
        );
        let tdx = parse(&[
            "-object",
            "tdx-guest,id=t",
            "-machine",
            "q35,confidential-guest-support=t",
        ]);
        assert_eq!(tdx.guest.unwrap().kind, Confidential::Tdx);
        // An object the machine does not use makes no confidential guest.
        assert_eq!(
            parse(&["-object", "sev-guest,id=s", "-machine", "q35"]).guest,
            None
        );
        let words: Vec<String> = ["-machine", "q35,confidential-guest-support=x"]
            .map(String::from)
            .to_vec();
        assert!(QemuLine::parse(&words).unwrap_err().contains("\"x\""));
    }

    #[test]
    fn globals_devices_and_fw_cfg() {
        for global in [
            "driver=cfi.pflash01,property=secure,value=on",
            "cfi.pflash01.secure=on",
        ] {
            assert_eq!(
                parse(&["-global", global]).pflash_secure,
                Some(1),
                "{global}"
            );
        }
        assert_eq!(
            parse(&["-global", "cfi.pflash01.secure=off"]).pflash_secure,
            None
        );
        assert_eq!(
            parse(&["-global", "ICH9-LPC.disable_s3=1"]).pflash_secure,
            None
        );
        let line = parse(&[
            "-device",
            "virtio-net-pci,romfile=",
            "-device",
            r#"{"driver":"e1000","romfile":"/r.rom"}"#,
            "-fw_cfg",
            "name=opt/org.tianocore/EnableLegacyLoader,string=no",
            "-nographic",
            "-kernel",
            "/k",
        ]);
        assert_eq!(line.romfiles, [(3, "/r.rom".to_string())]);
        assert_eq!(
            line.fw_cfg,
            [(
                5,
                "opt/org.tianocore/EnableLegacyLoader".to_string(),
                Some("no".to_string())
            )]
        );
        assert_eq!(line.kernel, Some((8, "/k".to_string())));
    }

    #[test]
    fn an_option_without_its_value_is_named() {
        let words: Vec<String> = ["-m", "1G", "-kernel"].map(String::from).to_vec();
        assert_eq!(
            QemuLine::parse(&words).unwrap_err(),
            "word 2 (-kernel): the option has no value"
        );
    }
}
