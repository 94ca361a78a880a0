//! What the host can do: a KVM that really runs guest code (with and without SMM), and AMD SEV.
//!
//! `/dev/kvm` existing proves little: on nested or restricted hosts the first FPU instruction
//! of a guest dies with `KVM internal error ... emulation failure`, and SMM may be refused with
//! `System Management Mode not supported by this hypervisor`. So KVM is probed by running a tiny
//! guest, with and without `smm=on`, through each QEMU binary.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use strum::{Display, EnumString, IntoStaticStr, VariantArray, VariantNames};

use crate::discover::qemu::QemuBinary;
use crate::matrix::{unknown_word, Word};
use crate::tools::{Bounded, Ended, RunError};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    PartialOrd,
    Ord,
    IntoStaticStr,
    Display,
    EnumString,
    VariantArray,
    VariantNames,
)]
#[serde(rename_all = "kebab-case")]
#[strum(
    serialize_all = "kebab-case",
    parse_err_ty = String,
    parse_err_fn = unknown_word::<Self>
)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Word for Accel {
    const KIND: &'static str = "accelerator";
}

/// The outcome of running the KVM probe guest through one QEMU binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvmProbe {
    /// `Ok` when a guest ran under KVM; otherwise why not.
    pub usable: Result<(), String>,
    /// `Ok` when it also ran with `-machine smm=on`.
    pub smm: Result<(), String>,
}

impl KvmProbe {
    pub fn unavailable(reason: &str) -> KvmProbe {
        KvmProbe {
            usable: Err(reason.to_string()),
            smm: Err(reason.to_string()),
        }
    }
}

/// Picks the accelerator for one cell and says why.
pub fn choose_accel(forced: Option<Accel>, kvm: &KvmProbe, needs_smm: bool) -> (Accel, String) {
    if let Some(accel) = forced {
        return (accel, format!("--accel {accel}"));
    }
    match (&kvm.usable, &kvm.smm) {
        (Err(why), _) => (Accel::Tcg, format!("KVM unusable: {why}")),
        (Ok(()), Err(why)) if needs_smm => (
            Accel::Tcg,
            format!("firmware requires SMM and KVM has none: {why}"),
        ),
        _ => (Accel::Kvm, "KVM runs guest code".to_string()),
    }
}

/// A 64 KiB "BIOS" whose reset vector runs `fwait; fninit` (the first instructions OVMF runs
/// that a broken KVM cannot emulate), then writes 0x2a to the isa-debug-exit port: QEMU exits
/// with status (0x2a << 1) | 1 = 85.
fn probe_bios() -> Vec<u8> {
    let mut image = vec![0xf4u8; 64 * 1024]; // hlt everywhere
    let code = [
        0x9b, 0xdb, 0xe3, // fwait; fninit
        0xb0, 0x2a, // mov al, 0x2a
        0xe6, 0xf4, // out 0xf4, al
        0xf4, // hlt
        0xeb, 0xfd, // jmp back to hlt
    ];
    image[0xfff0..0xfff0 + code.len()].copy_from_slice(&code);
    image
}

const PROBE_EXIT_STATUS: i32 = 85;

/// Runs the probe guest under KVM through `qemu`; `scratch` receives the probe image.
pub fn probe_kvm(qemu: &QemuBinary, scratch: &Path) -> KvmProbe {
    let dev = Path::new("/dev/kvm");
    if !dev.exists() {
        return KvmProbe::unavailable("no /dev/kvm");
    }
    if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open(dev) {
        return KvmProbe::unavailable(&format!("cannot open /dev/kvm read-write: {e}"));
    }
    let bios = scratch.join("kvm-probe.bin");
    if let Err(e) = std::fs::write(&bios, probe_bios()) {
        return KvmProbe::unavailable(&format!("cannot write {}: {e}", bios.display()));
    }
    let usable = run_probe_guest(qemu, &bios, "q35,accel=kvm");
    let smm = match &usable {
        Ok(()) => run_probe_guest(qemu, &bios, "q35,accel=kvm,smm=on"),
        Err(why) => Err(why.clone()),
    };
    KvmProbe { usable, smm }
}

fn run_probe_guest(qemu: &QemuBinary, bios: &Path, machine: &str) -> Result<(), String> {
    let mut cmd = qemu.command();
    cmd.args(["-nodefaults", "-no-user-config", "-display", "none"])
        .args(["-machine", machine, "-bios"])
        .arg(bios)
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    let limit = Duration::from_secs(10);
    // A failed emulation does not end QEMU: it stops the guest and waits. Watch stderr instead.
    let out = Bounded::new(
        &mut cmd,
        &format!("{} (KVM probe)", qemu.path.display()),
        limit,
    )
    .stop_when_stderr(|text| text.contains("KVM internal error") || text.contains("not supported"))
    .run()
    .map_err(|e| match e {
        RunError::Timeout { limit, .. } => {
            format!("probe guest did not finish within {limit:?}")
        }
        RunError::Spawn { source, .. } => {
            format!("cannot run {}: {source}", qemu.path.display())
        }
        other => other.to_string(),
    })?;
    match out.ended {
        Ended::Exited(status) if status.code() == Some(PROBE_EXIT_STATUS) => Ok(()),
        Ended::Exited(status) | Ended::Stopped(status) => Err(first_error_line(&out.stderr)
            .unwrap_or_else(|| format!("probe guest ended with {status}"))),
    }
}

/// The line of QEMU's stderr worth showing (warnings about CPUID bits are noise).
fn first_error_line(stderr: &str) -> Option<String> {
    stderr
        .lines()
        .map(|l| l.trim_start_matches("qemu-system-x86_64: ").trim())
        .find(|l| !l.is_empty() && !l.starts_with("warning:"))
        .map(|l| l.trim_end_matches('.').to_string())
}

/// Parameters QEMU needs for `-object sev-guest`, read from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SevParams {
    pub cbitpos: u32,
    pub reduced_phys_bits: u32,
}

/// Why SEV guests cannot start on this host, or through one QEMU binary.
#[derive(Debug, thiserror::Error)]
pub enum SevError {
    #[error("kvm_amd is not loaded (no /sys/module/kvm_amd/parameters/sev)")]
    NoKvmAmd,
    #[error("kvm_amd has SEV disabled (/sys/module/kvm_amd/parameters/sev is off)")]
    Disabled,
    #[error("cannot open /dev/sev read-write: {0}")]
    DevSev(#[source] std::io::Error),
    #[error("CPUID leaf 0x8000001F is missing")]
    NoCpuidLeaf,
    #[error("CPUID 0x8000001F says the CPU has no SEV")]
    CpuHasNoSev,
    /// QEMU's own `query-sev-capabilities` error.
    #[error("QEMU says: {0}")]
    Qemu(String),
    #[error("QEMU did not answer query-sev-capabilities within 10 s")]
    NoAnswerInTime,
    /// QEMU ended without an answer; `why` is the line of its stderr that says why, if any.
    #[error("QEMU gave no answer to query-sev-capabilities{}", in_parens(.why))]
    NoAnswer { why: Option<String> },
    #[error(transparent)]
    Run(RunError),
}

/// ` (why)`, or nothing.
fn in_parens(why: &Option<String>) -> String {
    why.as_ref().map(|w| format!(" ({w})")).unwrap_or_default()
}

/// Decides SEV availability from the facts the kernel and CPU give.
/// `sysfs_sev` is the content of `/sys/module/kvm_amd/parameters/sev` (None: missing);
/// `dev_sev` whether `/dev/sev` opened read-write;
/// `cpuid` is (EAX, EBX) of leaf 0x8000001F (None: leaf not present).
pub fn sev_from_facts(
    sysfs_sev: Option<&str>,
    dev_sev: std::io::Result<()>,
    cpuid: Option<(u32, u32)>,
) -> Result<SevParams, SevError> {
    let enabled = match sysfs_sev.map(str::trim) {
        None => return Err(SevError::NoKvmAmd),
        Some(v) => v == "Y" || v == "1",
    };
    if !enabled {
        return Err(SevError::Disabled);
    }
    dev_sev.map_err(SevError::DevSev)?;
    let (eax, ebx) = cpuid.ok_or(SevError::NoCpuidLeaf)?;
    if eax & 0b10 == 0 {
        return Err(SevError::CpuHasNoSev);
    }
    Ok(SevParams {
        cbitpos: ebx & 0x3f,
        reduced_phys_bits: (ebx >> 6) & 0x3f,
    })
}

fn cpuid_sev_leaf() -> Option<(u32, u32)> {
    #[cfg(target_arch = "x86_64")]
    #[allow(unused_unsafe)] // __cpuid is safe in newer Rust, unsafe in older
    {
        // SAFETY: CPUID is always available on x86_64.
        let max = unsafe { std::arch::x86_64::__cpuid(0x8000_0000) }.eax;
        if max < 0x8000_001f {
            return None;
        }
        let leaf = unsafe { std::arch::x86_64::__cpuid(0x8000_001f) };
        Some((leaf.eax, leaf.ebx))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// Reads the host's SEV facts. Checked before any QEMU is asked.
pub fn probe_sev_host() -> Result<SevParams, SevError> {
    let sysfs = std::fs::read_to_string("/sys/module/kvm_amd/parameters/sev").ok();
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/sev")
        .map(|_| ());
    sev_from_facts(sysfs.as_deref(), dev, cpuid_sev_leaf())
}

/// Asks QEMU itself (QMP `query-sev-capabilities`, which needs KVM) whether it can start a SEV
/// guest, and prefers its C-bit over CPUID's.
pub fn probe_sev_qemu(qemu: &QemuBinary, host: SevParams) -> Result<SevParams, SevError> {
    let mut cmd = qemu.command();
    cmd.args(["-nodefaults", "-no-user-config", "-display", "none", "-S"])
        .args(["-machine", "none,accel=kvm", "-qmp", "stdio"]);
    let out = Bounded::new(
        &mut cmd,
        &format!("{} (query-sev-capabilities)", qemu.path.display()),
        Duration::from_secs(10),
    )
    .stdin(
        b"{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"query-sev-capabilities\"}\n{\"execute\":\"quit\"}\n",
    )
    .run()
    .map_err(|e| match e {
        RunError::Timeout { .. } => SevError::NoAnswerInTime,
        other => SevError::Run(other),
    })?;
    sev_from_qmp(&out.stdout, host).map_err(|e| match e {
        // QEMU that would not start says why on stderr.
        SevError::NoAnswer { .. } => SevError::NoAnswer {
            why: first_error_line(&out.stderr),
        },
        other => other,
    })
}

/// Reads the answer to `query-sev-capabilities` from a QMP transcript.
pub fn sev_from_qmp(transcript: &str, host: SevParams) -> Result<SevParams, SevError> {
    for line in transcript.lines() {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let Some(ret) = value.get("return").filter(|r| r.get("cbitpos").is_some()) {
            let get = |k: &str| ret.get(k).and_then(|v| v.as_u64()).map(|v| v as u32);
            return Ok(SevParams {
                cbitpos: get("cbitpos").unwrap_or(host.cbitpos),
                reduced_phys_bits: get("reduced-phys-bits").unwrap_or(host.reduced_phys_bits),
            });
        }
        if let Some(desc) = value
            .get("error")
            .and_then(|e| e.get("desc"))
            .and_then(|d| d.as_str())
        {
            return Err(SevError::Qemu(desc.to_string()));
        }
    }
    Err(SevError::NoAnswer { why: None })
}

/// Why a guest of one of the confidential modes after SEV (SEV-ES, SEV-SNP, Intel TDX) cannot
/// start on this host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CcError {
    /// SEV-ES and SEV-SNP build on SEV: the host's (or this QEMU's) SEV reason.
    #[error("{feature} builds on SEV, and {why}")]
    NoSev { feature: &'static str, why: String },
    #[error(
        "{module} is not loaded or predates {feature} (no /sys/module/{module}/parameters/{param})"
    )]
    NoParameter {
        module: &'static str,
        param: &'static str,
        feature: &'static str,
    },
    #[error("{module} has {feature} disabled (/sys/module/{module}/parameters/{param} is off)")]
    Disabled {
        module: &'static str,
        param: &'static str,
        feature: &'static str,
    },
    #[error("CPUID 0x8000001F says the CPU has no {feature}")]
    CpuLacks { feature: &'static str },
    /// The mode runs under KVM only.
    #[error("{feature} needs a working KVM: {why}")]
    NoKvm { feature: &'static str, why: String },
}

/// A kernel module's boolean parameter as sysfs shows it (`Y`/`N`, `1`/`0` on old kernels):
/// on, or why not.
fn module_param(
    value: Option<&str>,
    module: &'static str,
    param: &'static str,
    feature: &'static str,
) -> Result<(), CcError> {
    match value.map(str::trim) {
        None => Err(CcError::NoParameter {
            module,
            param,
            feature,
        }),
        Some("Y" | "1") => Ok(()),
        Some(_) => Err(CcError::Disabled {
            module,
            param,
            feature,
        }),
    }
}

/// CPUID 0x8000001F EAX: bit 3 SEV-ES, bit 4 SEV-SNP (AMD APM vol. 3, E.4.17).
const CPUID_SEV_ES: u32 = 1 << 3;
const CPUID_SEV_SNP: u32 = 1 << 4;

/// Decides SEV-ES availability: SEV itself (`sev`, the host's or the QEMU's answer), kvm_amd's
/// `sev_es` parameter and the CPU's SEV-ES bit (`cpuid_eax`: EAX of leaf 0x8000001F).
pub fn sev_es_from_facts(
    sev: Result<(), String>,
    sysfs_sev_es: Option<&str>,
    cpuid_eax: Option<u32>,
) -> Result<(), CcError> {
    amd_mode_from_facts(
        "SEV-ES",
        "sev_es",
        CPUID_SEV_ES,
        sev,
        sysfs_sev_es,
        cpuid_eax,
    )
}

/// Decides SEV-SNP availability, as [`sev_es_from_facts`] with kvm_amd's `sev_snp` parameter
/// (Linux >= 6.11) and the CPU's SEV-SNP bit.
pub fn sev_snp_from_facts(
    sev: Result<(), String>,
    sysfs_sev_snp: Option<&str>,
    cpuid_eax: Option<u32>,
) -> Result<(), CcError> {
    amd_mode_from_facts(
        "SEV-SNP",
        "sev_snp",
        CPUID_SEV_SNP,
        sev,
        sysfs_sev_snp,
        cpuid_eax,
    )
}

fn amd_mode_from_facts(
    feature: &'static str,
    param: &'static str,
    bit: u32,
    sev: Result<(), String>,
    sysfs: Option<&str>,
    cpuid_eax: Option<u32>,
) -> Result<(), CcError> {
    sev.map_err(|why| CcError::NoSev { feature, why })?;
    module_param(sysfs, "kvm_amd", param, feature)?;
    match cpuid_eax {
        Some(eax) if eax & bit != 0 => Ok(()),
        _ => Err(CcError::CpuLacks { feature }),
    }
}

/// Decides Intel TDX availability from kvm_intel's `tdx` parameter (Linux >= 6.16; the kernel
/// writes back whether the TDX module initialised) and a working KVM.
pub fn tdx_from_facts(sysfs_tdx: Option<&str>, kvm: &Result<(), String>) -> Result<(), CcError> {
    module_param(sysfs_tdx, "kvm_intel", "tdx", "TDX")?;
    kvm.as_ref().map_err(|why| CcError::NoKvm {
        feature: "TDX",
        why: why.clone(),
    })?;
    Ok(())
}

/// Whether the confidential modes after SEV can start through one QEMU binary on this host:
/// `Ok`, or the host's reason (a cell's skip reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CcHost {
    pub sev_es: Result<(), String>,
    pub sev_snp: Result<(), String>,
    pub tdx: Result<(), String>,
}

impl CcHost {
    /// Every mode possible (a host planned as capable, for `plan --verify`).
    pub fn capable() -> CcHost {
        CcHost {
            sev_es: Ok(()),
            sev_snp: Ok(()),
            tdx: Ok(()),
        }
    }

    /// No mode possible, for `why`.
    pub fn unavailable(why: &str) -> CcHost {
        CcHost {
            sev_es: Err(why.to_string()),
            sev_snp: Err(why.to_string()),
            tdx: Err(why.to_string()),
        }
    }
}

/// Reads the host's SEV-ES, SEV-SNP and TDX facts for one QEMU binary: `sev` is its SEV
/// answer (SEV-ES and SEV-SNP need it), `kvm` whether KVM runs guest code through it.
pub fn probe_cc_host(sev: &Result<SevParams, String>, kvm: &Result<(), String>) -> CcHost {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let eax = cpuid_sev_leaf().map(|(eax, _)| eax);
    let sev = || sev.as_ref().map(|_| ()).map_err(String::clone);
    CcHost {
        sev_es: sev_es_from_facts(
            sev(),
            read("/sys/module/kvm_amd/parameters/sev_es").as_deref(),
            eax,
        )
        .map_err(|e| e.to_string()),
        sev_snp: sev_snp_from_facts(
            sev(),
            read("/sys/module/kvm_amd/parameters/sev_snp").as_deref(),
            eax,
        )
        .map_err(|e| e.to_string()),
        tdx: tdx_from_facts(read("/sys/module/kvm_intel/parameters/tdx").as_deref(), kvm)
            .map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kvm(usable: Result<(), &str>, smm: Result<(), &str>) -> KvmProbe {
        KvmProbe {
            usable: usable.map_err(str::to_string),
            smm: smm.map_err(str::to_string),
        }
    }

    #[test]
    fn accelerators_are_spelled_once() {
        assert_eq!(
            crate::matrix::spelling::parses_back::<Accel>(),
            ["kvm", "tcg"]
        );
        assert_eq!(
            "hvf".parse::<Accel>().unwrap_err(),
            r#"unknown accelerator "hvf" (expected kvm or tcg)"#
        );
    }

    #[test]
    fn broken_kvm_falls_back_to_tcg_with_reason() {
        let probe = kvm(Err("KVM internal error. Suberror: 1"), Err("x"));
        let (accel, why) = choose_accel(None, &probe, false);
        assert_eq!(accel, Accel::Tcg);
        assert!(why.contains("KVM internal error"), "{why}");
    }

    #[test]
    fn smm_firmware_leaves_kvm_without_smm() {
        let probe = kvm(Ok(()), Err("System Management Mode not supported"));
        assert_eq!(choose_accel(None, &probe, true).0, Accel::Tcg);
        assert_eq!(choose_accel(None, &probe, false).0, Accel::Kvm);
    }

    #[test]
    fn forced_accel_wins() {
        let probe = kvm(Ok(()), Ok(()));
        assert_eq!(choose_accel(Some(Accel::Tcg), &probe, true).0, Accel::Tcg);
    }

    #[test]
    fn probe_bios_jumps_from_reset_vector() {
        let bios = probe_bios();
        assert_eq!(bios.len(), 65536);
        assert_eq!(&bios[0xfff0..0xfff3], &[0x9b, 0xdb, 0xe3]);
    }

    #[test]
    fn no_kvm_amd_means_no_sev() {
        let e = sev_from_facts(None, Ok(()), Some((2, 47))).unwrap_err();
        assert!(matches!(e, SevError::NoKvmAmd), "{e}");
        assert!(e.to_string().contains("kvm_amd is not loaded"), "{e}");
    }

    #[test]
    fn sev_disabled_in_module() {
        let e = sev_from_facts(Some("N\n"), Ok(()), Some((2, 47))).unwrap_err();
        assert!(matches!(e, SevError::Disabled), "{e}");
        assert!(e.to_string().contains("disabled"), "{e}");
    }

    #[test]
    fn missing_dev_sev_is_reported() {
        let gone = std::io::Error::new(std::io::ErrorKind::NotFound, "no /dev/sev");
        let e = sev_from_facts(Some("Y"), Err(gone), Some((2, 47))).unwrap_err();
        assert!(matches!(e, SevError::DevSev(_)), "{e}");
        assert_eq!(
            e.to_string(),
            "cannot open /dev/sev read-write: no /dev/sev"
        );
        let e = sev_from_facts(Some("Y"), Ok(()), None).unwrap_err();
        assert!(matches!(e, SevError::NoCpuidLeaf), "{e}");
        let e = sev_from_facts(Some("Y"), Ok(()), Some((0b01, 47))).unwrap_err();
        assert!(matches!(e, SevError::CpuHasNoSev), "{e}");
    }

    #[test]
    fn cbit_comes_from_cpuid() {
        // EBX: cbitpos 51 in bits 5:0, reduced phys bits 1 in bits 11:6.
        let params = sev_from_facts(Some("1"), Ok(()), Some((0b10, 51 | (1 << 6)))).unwrap();
        assert_eq!(
            params,
            SevParams {
                cbitpos: 51,
                reduced_phys_bits: 1
            }
        );
    }

    #[test]
    fn qmp_answer_overrides_cpuid() {
        let host = SevParams {
            cbitpos: 47,
            reduced_phys_bits: 1,
        };
        let t = "{\"QMP\": {}}\n{\"return\": {}}\n{\"return\": {\"cbitpos\": 51, \"reduced-phys-bits\": 1, \"pdh\": \"x\", \"cert-chain\": \"y\"}}\n";
        assert_eq!(sev_from_qmp(t, host).unwrap().cbitpos, 51);
        let e = "{\"return\": {}}\n{\"error\": {\"class\": \"GenericError\", \"desc\": \"SEV is not enabled in KVM\"}}\n";
        let e = sev_from_qmp(e, host).unwrap_err();
        assert!(
            matches!(&e, SevError::Qemu(desc) if desc == "SEV is not enabled in KVM"),
            "{e}"
        );
        assert_eq!(e.to_string(), "QEMU says: SEV is not enabled in KVM");
        let e = sev_from_qmp("{\"QMP\": {}}\n", host).unwrap_err();
        assert_eq!(
            e.to_string(),
            "QEMU gave no answer to query-sev-capabilities"
        );
        let why = Some("could not access KVM kernel module: No such file or directory".into());
        assert_eq!(
            SevError::NoAnswer { why }.to_string(),
            "QEMU gave no answer to query-sev-capabilities (could not access KVM kernel module: \
             No such file or directory)"
        );
    }

    #[test]
    fn stderr_noise_is_skipped() {
        let text = "qemu-system-x86_64: warning: host doesn't support requested feature: CPUID.01H:ECX.pni [bit 0]\nqemu-system-x86_64: System Management Mode not supported by this hypervisor.\n";
        assert_eq!(
            first_error_line(text).as_deref(),
            Some("System Management Mode not supported by this hypervisor")
        );
    }

    #[test]
    fn sev_es_and_snp_need_sev_their_parameter_and_their_cpuid_bit() {
        let on = 0b1_1010; // SEV, SEV-ES, SEV-SNP
        assert_eq!(sev_es_from_facts(Ok(()), Some("Y\n"), Some(on)), Ok(()));
        assert_eq!(sev_snp_from_facts(Ok(()), Some("1"), Some(on)), Ok(()));
        let e = sev_snp_from_facts(
            Err("host has no AMD SEV: kvm_amd is not loaded".into()),
            Some("Y"),
            Some(on),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "SEV-SNP builds on SEV, and host has no AMD SEV: kvm_amd is not loaded"
        );
        let e = sev_snp_from_facts(Ok(()), None, Some(on)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "kvm_amd is not loaded or predates SEV-SNP (no /sys/module/kvm_amd/parameters/sev_snp)"
        );
        let e = sev_es_from_facts(Ok(()), Some("N"), Some(on)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "kvm_amd has SEV-ES disabled (/sys/module/kvm_amd/parameters/sev_es is off)"
        );
        // SEV and SEV-ES, no SEV-SNP bit.
        let e = sev_snp_from_facts(Ok(()), Some("Y"), Some(0b1010)).unwrap_err();
        assert_eq!(e, CcError::CpuLacks { feature: "SEV-SNP" });
        assert_eq!(sev_es_from_facts(Ok(()), Some("Y"), Some(0b1010)), Ok(()));
        let e = sev_es_from_facts(Ok(()), Some("Y"), None).unwrap_err();
        assert_eq!(e.to_string(), "CPUID 0x8000001F says the CPU has no SEV-ES");
    }

    #[test]
    fn tdx_needs_kvm_intels_parameter_and_kvm() {
        assert_eq!(tdx_from_facts(Some("Y\n"), &Ok(())), Ok(()));
        assert_eq!(
            tdx_from_facts(None, &Ok(())).unwrap_err().to_string(),
            "kvm_intel is not loaded or predates TDX (no /sys/module/kvm_intel/parameters/tdx)"
        );
        assert_eq!(
            tdx_from_facts(Some("N"), &Ok(())).unwrap_err().to_string(),
            "kvm_intel has TDX disabled (/sys/module/kvm_intel/parameters/tdx is off)"
        );
        assert_eq!(
            tdx_from_facts(Some("Y"), &Err("no /dev/kvm".into()))
                .unwrap_err()
                .to_string(),
            "TDX needs a working KVM: no /dev/kvm"
        );
    }
}
