//! The predicted launch measurement of a SEV-SNP cell, computed offline by `sev-snp-measure`
//! (PyPI `sev-snp-measure`, run as an external program): what the MEASUREMENT field of the
//! guest's SEV-SNP attestation report must hold when the host launched exactly this firmware
//! (and kernel, initrd and command line, with `kernel-hashes=on`) on these vCPUs. It is a
//! prediction, never an observation: this host has no SEV-SNP. An attestation policy can be
//! written from it, and a SEV-SNP host compares it with the guest's report.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Serialize;

use crate::plan::confidential::SnpLaunch;
use crate::tools::{run_bounded, Tool, ToolError};

pub const SEV_SNP_MEASURE: Tool = Tool {
    name: "sev-snp-measure",
    package: "PyPI package `sev-snp-measure` (./ci/setup installs it in a venv under \
              ~/.cache/bootmatrix/sev-snp-measure; or pip install sev-snp-measure)",
};

/// What a prediction says it is, in the plan's JSON.
pub const PREDICTED: &str = "predicted offline by sev-snp-measure from the files named here, \
    not observed: compare it with the MEASUREMENT of the guest's SEV-SNP attestation report";

/// How long one `sev-snp-measure` may take (it hashes the firmware, and the kernel and initrd
/// when given: well under a second for OVMF and a Debian kernel here).
const LIMIT: Duration = Duration::from_secs(60);

/// `sev-snp-measure` in `PATH`, else in the venv `./ci/setup` makes under the cache
/// (`$XDG_CACHE_HOME` or `~/.cache`, `bootmatrix/sev-snp-measure/bin/`): Debian 12's pip is
/// externally managed, so it is not installed system-wide.
pub fn find_tool() -> Result<PathBuf, ToolError> {
    SEV_SNP_MEASURE.find().or_else(|missing| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")));
        cache
            .map(|c| c.join("bootmatrix/sev-snp-measure/bin/sev-snp-measure"))
            .filter(|p| p.is_file())
            .ok_or(missing)
    })
}

/// A SEV-SNP cell's predicted measurement, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Prediction {
    pub status: &'static str,
    #[serde(flatten)]
    pub launch: SnpLaunch,
    /// SHA-384 launch digest, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measurement: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why_not: Option<String>,
}

/// The arguments of `sev-snp-measure` for `launch`.
pub fn tool_args(launch: &SnpLaunch) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["--mode", "snp", "--output-format", "hex", "--vcpus"]
        .map(OsString::from)
        .into();
    args.push(launch.vcpus.to_string().into());
    args.extend(["--vcpu-type".into(), OsString::from(&launch.vcpu_type)]);
    args.extend(["--ovmf".into(), launch.ovmf.clone().into_os_string()]);
    if let (Some(kernel), Some(initrd), Some(append)) =
        (&launch.kernel, &launch.initrd, &launch.append)
    {
        args.extend([
            "--kernel".into(),
            kernel.clone().into_os_string(),
            "--initrd".into(),
            initrd.clone().into_os_string(),
            "--append".into(),
            append.into(),
        ]);
    }
    args
}

/// Predicts `launch`'s measurement with the `sev-snp-measure` at `tool` (or why not: a file
/// the launch names is not there yet, the tool failed). The kernel-boot files are made by
/// `bootmatrix run` (prepare) in its run folder.
pub fn predict(tool: &Result<PathBuf, String>, launch: SnpLaunch) -> Prediction {
    let missing: Vec<String> = [Some(&launch.ovmf), launch.kernel.as_ref()]
        .into_iter()
        .chain([launch.initrd.as_ref()])
        .flatten()
        .filter(|f| !f.is_file())
        .map(|f| f.display().to_string())
        .collect();
    let measured = if !missing.is_empty() {
        Err(format!(
            "not computed: {} not there yet (kernel-boot files are made by `bootmatrix run` in \
             its run folder; `plan --json --out RUN_FOLDER` predicts from them)",
            missing.join(", ")
        ))
    } else {
        tool.clone()
            .and_then(|tool| measure(&tool, &tool_args(&launch)))
    };
    let (measurement, why_not) = match measured {
        Ok(m) => (Some(m), None),
        Err(why) => (None, Some(why)),
    };
    Prediction {
        status: PREDICTED,
        launch,
        measurement,
        why_not,
    }
}

/// Runs `tool` with `args` (bounded) and reads the digest it prints.
pub fn measure(tool: &Path, args: &[OsString]) -> Result<String, String> {
    let mut cmd = Command::new(tool);
    cmd.args(args);
    let what = format!("{} {}", tool.display(), shown_args(args));
    let out = run_bounded(&mut cmd, LIMIT, &what).map_err(|e| e.to_string())?;
    digest(&out).ok_or_else(|| format!("{what} printed no SHA-384 digest: {:?}", out.trim()))
}

fn shown_args(args: &[OsString]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The SHA-384 digest (96 hex digits, lower case) that `sev-snp-measure --output-format hex`
/// prints as its last line.
pub fn digest(stdout: &str) -> Option<String> {
    let last = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())?;
    (last.len() == 96 && last.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| last.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha384};
    use std::os::unix::fs::PermissionsExt;

    fn launch(ovmf: &Path) -> SnpLaunch {
        SnpLaunch {
            vcpus: 1,
            vcpu_type: "EPYC-v4".into(),
            ovmf: ovmf.into(),
            kernel: None,
            initrd: None,
            append: None,
            policy: "0x30000",
        }
    }

    /// A stand-in `sev-snp-measure` that records its arguments and prints `out`.
    fn fake_tool(dir: &Path, out: &str) -> PathBuf {
        let tool = dir.join("sev-snp-measure");
        std::fs::write(
            &tool,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$@\" > {}/args\nprintf '{out}'\n",
                dir.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        tool
    }

    #[test]
    fn a_prediction_runs_the_tool_with_the_cells_launch_and_reads_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let ovmf = dir.path().join("OVMF.amdsev.fd");
        std::fs::write(&ovmf, [0u8; 4096]).unwrap();
        let d = "ab".repeat(48);
        let tool = fake_tool(dir.path(), &format!("{}\\n", d.to_uppercase()));
        let mut l = launch(&ovmf);
        let p = predict(&Ok(tool.clone()), l.clone());
        assert_eq!(p.measurement.as_deref(), Some(d.as_str()), "{p:?}");
        assert_eq!(p.status, PREDICTED);
        let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
        let expected = format!(
            "--mode\nsnp\n--output-format\nhex\n--vcpus\n1\n--vcpu-type\nEPYC-v4\n--ovmf\n{}\n",
            ovmf.display()
        );
        assert_eq!(args, expected);
        // With kernel hashes: the kernel, initrd and command line go along.
        let (kernel, initrd) = (dir.path().join("vmlinuz"), dir.path().join("initrd"));
        std::fs::write(&kernel, b"k").unwrap();
        std::fs::write(&initrd, b"").unwrap();
        l.kernel = Some(kernel.clone());
        l.initrd = Some(initrd.clone());
        l.append = Some("console=ttyS0 panic=-1".into());
        assert!(predict(&Ok(tool), l.clone()).measurement.is_some());
        let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
        assert!(
            args.ends_with(&format!(
                "--kernel\n{}\n--initrd\n{}\n--append\nconsole=ttyS0 panic=-1\n",
                kernel.display(),
                initrd.display()
            )),
            "{args}"
        );
        let json = serde_json::to_value(predict(&Err("x".into()), l)).unwrap();
        assert_eq!(json["append"], "console=ttyS0 panic=-1");
        assert_eq!(json["why_not"], "x");
        assert!(json.get("measurement").is_none());
    }

    #[test]
    fn no_prediction_from_files_that_are_not_there_or_a_tool_that_says_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let ovmf = dir.path().join("OVMF.fd");
        let tool = fake_tool(dir.path(), "\\n");
        let p = predict(&Ok(tool.clone()), launch(&ovmf));
        let why = p.why_not.unwrap();
        assert!(why.starts_with("not computed: "), "{why}");
        assert!(why.contains("OVMF.fd not there yet"), "{why}");
        std::fs::write(&ovmf, [0u8; 4096]).unwrap();
        let why = predict(&Ok(tool), launch(&ovmf)).why_not.unwrap();
        assert!(why.contains("printed no SHA-384 digest"), "{why}");
        let missing = SEV_SNP_MEASURE.to_string();
        assert_eq!(missing, "sev-snp-measure");
        assert_eq!(digest(&format!("{}\n", "0".repeat(95))), None);
    }

    #[cfg(feature = "qemu")]
    /// The SEV-SNP launch digest over the firmware's pages, computed here from the AMD SEV-SNP
    /// ABI (SNP_LAUNCH_UPDATE, PAGE_INFO): for every 4 KiB page of the image, mapped to end at
    /// 4 GiB, LD = SHA-384(LD || SHA-384(page) || 0x70 u16 || PAGE_TYPE_NORMAL 1 u8 || IMI 0 ||
    /// VMPL3..1 perms 0 || reserved 0 || GPA u64), starting from 48 zero bytes.
    fn ovmf_pages_digest(image: &[u8]) -> String {
        let mut ld = [0u8; 48];
        let base = (1u64 << 32) - image.len() as u64;
        for (n, page) in image.chunks(4096).enumerate() {
            let mut info = Vec::with_capacity(0x70);
            info.extend(ld);
            info.extend(Sha384::digest(page));
            info.extend(0x70u16.to_le_bytes());
            info.extend([1, 0, 0, 0, 0, 0]);
            info.extend((base + 4096 * n as u64).to_le_bytes());
            assert_eq!(info.len(), 0x70);
            ld.copy_from_slice(&Sha384::digest(&info));
        }
        ld.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The real `sev-snp-measure` (./ci/setup installs it; this test runs with the qemu
    /// feature, as CI does) agrees with the page chain above over a small synthetic firmware
    /// image: its `--mode snp:ovmf-hash` is exactly the firmware part of the SNP launch digest
    /// (the part `--snp-ovmf-hash` feeds into `--mode snp`). The VMSA and metadata pages that
    /// `--mode snp` adds are not recomputed here.
    #[cfg(feature = "qemu")]
    #[test]
    fn sev_snp_measure_agrees_with_the_page_chain_computed_here() {
        let tool = find_tool().unwrap_or_else(|e| panic!("{e}"));
        let dir = tempfile::tempdir().unwrap();
        let image: Vec<u8> = (0..3 * 4096u32).map(|i| (i * 7 % 251) as u8).collect();
        let ovmf = dir.path().join("synthetic.fd");
        std::fs::write(&ovmf, &image).unwrap();
        let args: Vec<OsString> = [
            "--mode",
            "snp:ovmf-hash",
            "--output-format",
            "hex",
            "--ovmf",
        ]
        .map(OsString::from)
        .into_iter()
        .chain([ovmf.into_os_string()])
        .collect();
        let theirs = measure(&tool, &args).unwrap();
        assert_eq!(theirs, ovmf_pages_digest(&image));
        // And the digest moves with one byte of the firmware.
        let mut other = image.clone();
        other[5000] ^= 1;
        assert_ne!(ovmf_pages_digest(&other), theirs);
    }
}
