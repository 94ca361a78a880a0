//! Real boots: QEMU, the distro's OVMF builds, the signed and unsigned probe, the option-ROM
//! driver in a PCI ROM, and a Debian kernel with `-kernel`.
//! Run with `cargo test --features qemu` (the README's test command installs what they need,
//! including the kernel in ~/.cache/bootmatrix).
#![cfg(feature = "qemu")]

use std::path::{Path, PathBuf};
use std::process::Command;

use bootmatrix::discover::release::Edk2Release;
use bootmatrix::judge::VerdictKind;
use bootmatrix::matrix::{Outcome, Profile};
use bootmatrix::observe::evidence::LoadPath;

mod common;
use common::expected::compare;
use common::run::{bootmatrix, deviation_id, kernel};
use common::scenarios::{rule_mut, scenarios_with};
use regex::Regex;

/// The package of trixie's OVMF that `ci/extra-ovmf` unpacks.
const TRIXIE_OVMF: &str = "ovmf 2025.02-8+deb13u1";

const DEBIAN_DESCRIPTORS: [&str; 3] = [
    "40-edk2-x86_64-secure-enrolled.json",
    "50-edk2-x86_64-secure.json",
    "60-edk2-x86_64.json",
];

fn sha256(path: &Path) -> String {
    bootmatrix::discover::sha256_file(path).unwrap()
}

fn qemu_processes_mentioning(needle: &Path) -> Vec<String> {
    let needle = needle.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let cmdline = std::fs::read(e.ok()?.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (cmdline.contains("qemu-system") && cmdline.contains(&needle)).then_some(cmdline)
        })
        .collect()
}

#[test]
fn every_debian_descriptor_is_judged_correctly() {
    for name in DEBIAN_DESCRIPTORS {
        assert!(
            Path::new("/usr/share/qemu/firmware").join(name).exists(),
            "{name} is missing: the README's test command installs the ovmf package"
        );
    }
    let templates: Vec<PathBuf> = std::fs::read_dir("/usr/share/OVMF")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("VARS"))
        .collect();
    let before: Vec<String> = templates.iter().map(|p| sha256(p)).collect();

    // ci/test adds a second QEMU version (`--qemu-root DIR`, bookworm-backports' QEMU 10.0).
    let extra = std::env::var("BOOTMATRIX_EXTRA_QEMU").ok();
    // The boots of the first three checks (distro-chain, no-shell and key-health have tests of
    // their own).
    let filter = "^(40|50|60)-edk2-x86_64[a-z-]*/[^/]*/[^/]*/(secure-boot|option-rom|kernel-boot)/";
    let mut args = vec!["--filter", filter];
    if let Some(q) = &extra {
        args.extend(["--qemu-root", q.as_str()]);
    }
    let run = bootmatrix(&args);
    // The shim variants exist on QEMU >= 10.0 only, as skips here (no --shim).
    let versions: std::collections::BTreeSet<_> =
        run.cells().iter().map(|c| c.qemu_version).collect();
    assert_eq!(
        versions.len(),
        1 + usize::from(extra.is_some()),
        "{versions:?}"
    );

    // Every cell's verdict, outcome, deviation or skipping rule, from the build's expected
    // results (tests/expected/); SEV-on cells are skipped here (no SEV), and on a SEV host
    // they boot and are held to the rules like the others, except -kernel, which the planner
    // refuses on any host (no measured build).
    let package = run.cells()[0]
        .firmware
        .package
        .clone()
        .expect("dpkg owns the firmware");
    assert!(package.starts_with("ovmf 2022.11"), "{package}");
    compare(&run.report, &package, &Regex::new(filter).unwrap());
    for cell in run.cells() {
        if cell.verdict != VerdictKind::Skip {
            assert!(cell.decided_ms.is_some(), "{cell}");
        }
        if cell.observed.outcome() == Some(Outcome::Runs) {
            assert!(cell.observed.secure_boot_value().is_some(), "{cell}");
        }
    }
    // The observed outcomes behind those verdicts.
    for (id, payload) in [
        (
            "50-edk2-x86_64-secure/qemu-7.2",
            "option-rom/own-keys-vars-unsigned",
        ),
        (
            "40-edk2-x86_64-secure-enrolled/qemu-7.2",
            "option-rom/db-added-vars-signed",
        ),
    ] {
        let cell = run.cell(id, payload);
        assert_eq!(cell.observed.outcome(), Some(Outcome::Executed), "{cell}");
        assert_eq!(cell.observed.secure_boot_value(), Some(1), "{cell}");
    }
    let silent = run.cell(
        "50-edk2-x86_64-secure/qemu-7.2",
        "kernel-boot/own-keys-vars-unsigned",
    );
    assert_eq!(
        silent.observed.outcome(),
        Some(Outcome::LegacySilent),
        "{silent}"
    );
    assert_eq!(silent.observed.secure_boot_value(), Some(1), "{silent}");
    assert!(kernel(silent).linux_version.contains("Linux version"));
    assert_eq!(
        deviation_id(silent),
        Some("debian-ovmf-2022.11-kernel-legacy-fallback"),
        "{silent}"
    );
    let signed = run.cell(
        "50-edk2-x86_64-secure/qemu-7.2",
        "kernel-boot/own-keys-vars-signed",
    );
    // QEMU 7.2 patches the kernel's setup header, so even the signed kernel fails LoadImage
    // and 2022.11 falls back without a word: it boots, but unverified.
    assert_eq!(signed.verdict, VerdictKind::Pass, "{signed}");
    assert_eq!(
        signed.observed.outcome(),
        Some(Outcome::LegacySilent),
        "{signed}"
    );
    assert_eq!(kernel(signed).loaded_by, Some(LoadPath::LegacyLoader));
    // Without Secure Boot, LoadImage takes any kernel.
    let plain = run.cell(
        "60-edk2-x86_64/qemu-7.2",
        "kernel-boot/shipped-vars-unsigned",
    );
    assert_eq!(
        kernel(plain).loaded_by,
        Some(LoadPath::LoadImage),
        "{plain}"
    );
    assert_eq!(plain.observed.outcome(), Some(Outcome::Booted), "{plain}");
    // Firmware identity, from the package and from the guest.
    let probe = run.cell(
        "50-edk2-x86_64-secure/qemu-7.2",
        "secure-boot/own-keys-vars-signed",
    );
    let firmware = &probe.firmware;
    assert_eq!(
        firmware.edk2_release,
        Edk2Release::parse("2022.11"),
        "{probe}"
    );
    assert!(firmware
        .package
        .as_deref()
        .is_some_and(|p| p.starts_with("ovmf 2022.11")));
    assert_eq!(
        firmware.sha256.as_deref().map(str::len),
        Some(64),
        "{probe}"
    );
    assert_eq!(firmware.vendor.as_deref(), Some("EDK II"), "{probe}");
    assert!(firmware.revision.is_some(), "{probe}");
    assert!(run.stdout.contains("KNOWN DEVIATIONS"), "{}", run.stdout);
    assert!(
        run.stdout.contains("REFUSED BY THE PLANNER"),
        "{}",
        run.stdout
    );
    // What the guest itself saw, where the probe ran.
    let seen = |id: &str| {
        run.cells()
            .iter()
            .filter(|c| c.id.starts_with(id) && !c.sev)
            .map(|c| c.observed.secure_boot_value())
            .collect::<Vec<_>>()
    };
    assert!(seen("40-edk2-x86_64-secure-enrolled").contains(&Some(1)));
    assert!(seen("50-edk2-x86_64-secure").contains(&Some(1)));
    assert!(!seen("60-edk2-x86_64").contains(&Some(1)));
    assert_eq!(run.status, 0, "{}", run.stdout);
    let after: Vec<String> = templates.iter().map(|p| sha256(p)).collect();
    assert_eq!(before, after, "a varstore template was modified");
    assert!(qemu_processes_mentioning(run.dir.path()).is_empty());
}

#[test]
fn flipped_expectation_turns_the_cell_into_fail() {
    // Truth: with our keys enrolled, the unsigned probe is refused. Claim the opposite.
    let scenarios = scenarios_with("secure-boot.json", |s| {
        rule_mut(s, "own-keys-unsigned")["expect"] = serde_json::json!({"payload": "runs"});
    });
    let run = bootmatrix(&[
        "--scenarios",
        scenarios.path().to_str().unwrap(),
        "--filter",
        "^50-edk2-x86_64-secure/.*/sev-off/secure-boot/own-keys-vars-unsigned$",
    ]);
    let cell = run.cell("50-", "own-keys-vars-unsigned");
    assert_eq!(cell.verdict, VerdictKind::Fail, "{cell}");
    assert_eq!(cell.observed.outcome(), Some(Outcome::Refused), "{cell}");
    assert_eq!(run.status, 1);
    assert!(run.stdout.contains("FAILURES"), "{}", run.stdout);
}

#[test]
fn wrong_secure_boot_value_fails() {
    // The signed probe runs with SecureBoot=1 under our keys; expecting 0 must fail.
    let scenarios = scenarios_with("secure-boot.json", |s| {
        rule_mut(s, "own-keys-signed")["expect"]["secure_boot"] = 0.into();
    });
    let run = bootmatrix(&[
        "--scenarios",
        scenarios.path().to_str().unwrap(),
        "--filter",
        "^50-edk2-x86_64-secure/.*/sev-off/secure-boot/own-keys-vars-signed$",
    ]);
    let cell = run.cell("50-", "own-keys-vars-signed");
    assert_eq!(cell.verdict, VerdictKind::Fail, "{cell}");
    assert!(
        cell.reason
            .contains("expected SecureBoot=0, the guest saw 1"),
        "{cell}"
    );
}

fn executable_sha(descriptor: &str) -> String {
    let path = Path::new("/usr/share/qemu/firmware").join(descriptor);
    let text = std::fs::read_to_string(&path).unwrap();
    let parsed = bootmatrix::discover::descriptor::parse(&path, &text).unwrap();
    sha256(bootmatrix::discover::executable_of(&parsed))
}

#[test]
fn known_deviation_and_stale_deviation_on_real_firmware() {
    let sha = executable_sha("60-edk2-x86_64.json");
    // Pretend the unsigned probe should be refused on the no-SB build, and record the build as
    // a known deviation from that rule: the cell must be known-deviation. The signed variant
    // behaves as its rule says, so a deviation recorded for it is stale.
    let scenarios = scenarios_with("secure-boot.json", |s| {
        rule_mut(s, "no-secure-boot-unsigned")["expect"] =
            serde_json::json!({"payload": "refused"});
    });
    let deviations = serde_json::json!({
        "deviations": [
            {
                "id": "test-unsigned-runs", "check": "secure-boot", "rule": "no-secure-boot-unsigned",
                "executable_sha256": sha, "observed": "runs", "secure_boot": 0,
                "reason": "test entry", "reference": "bootmatrix test"
            },
            {
                "id": "test-stale", "check": "secure-boot", "rule": "no-secure-boot-signed",
                "executable_sha256": sha, "observed": "refused",
                "reason": "test entry", "reference": "bootmatrix test"
            }
        ]
    });
    std::fs::write(
        scenarios.path().join("known-deviations.json"),
        deviations.to_string(),
    )
    .unwrap();
    let run = bootmatrix(&[
        "--scenarios",
        scenarios.path().to_str().unwrap(),
        "--filter",
        "^60-edk2-x86_64/.*/sev-off/secure-boot/",
    ]);
    let unsigned = run.cell("60-", "secure-boot/shipped-vars-unsigned");
    assert_eq!(unsigned.verdict, VerdictKind::KnownDeviation, "{unsigned}");
    assert_eq!(deviation_id(unsigned), Some("test-unsigned-runs"));
    // The entry covers what was observed, SecureBoot=0 included; recorded with another value,
    // it would not excuse the cell (judge's unit tests).
    assert_eq!(unsigned.observed.secure_boot_value(), Some(0), "{unsigned}");
    let signed = run.cell("60-", "secure-boot/shipped-vars-signed");
    assert_eq!(signed.verdict, VerdictKind::Fail, "{signed}");
    assert!(signed.reason.starts_with("stale-deviation"), "{signed}");
    assert!(run.stdout.contains("KNOWN DEVIATIONS"), "{}", run.stdout);
}

#[test]
fn upstream_profile_passes_what_edk2_documents_for_2022_11() {
    let run = bootmatrix(&[
        "--profile",
        "upstream",
        "--filter",
        "^(40|50)-edk2-x86_64-secure[a-z-]*/qemu-7[^/]*/sev-off/(option-rom|kernel-boot)/.*-unsigned(-no-legacy-loader)?$",
    ]);
    assert_eq!(run.cells().len(), 6, "{}", run.stdout);
    for cell in run.cells() {
        assert_eq!(cell.verdict, VerdictKind::Pass, "{cell}");
        assert_eq!(cell.profile, Profile::Upstream, "{cell}");
    }
    assert_eq!(run.status, 0);

    // explain reads the run back: expectation, its source, the firmware, what was seen.
    let id = run
        .cell("50-", "kernel-boot/own-keys-vars-unsigned")
        .id
        .clone();
    let output = Command::new(env!("CARGO_BIN_EXE_bootmatrix"))
        .args(["explain", &id, "--profile", "upstream", "--out"])
        .arg(run.dir.path().join("run"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    for needle in [
        "rule kernel-boot/unsigned-silent-fallback: payload legacy-silent",
        "expectation (profile upstream, scenarios built-in)",
        "edk2:       2022.11 (from the package version)",
        "sha256:     ",
        "payload: legacy-silent",
        "linux_version: ",
        "verdict: pass",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn without_its_deviation_entry_the_unsigned_kernel_fails_strict() {
    // The deviation list is keyed to the build: move the entry to another build's sha256 and
    // the silent fallback is a plain failure again.
    let scenarios = scenarios_with("known-deviations.json", |s| {
        for d in s["deviations"].as_array_mut().unwrap() {
            d["executable_sha256"] = "00".repeat(32).into();
        }
    });
    let run = bootmatrix(&[
        "--scenarios",
        scenarios.path().to_str().unwrap(),
        "--filter",
        "^50-edk2-x86_64-secure/qemu-7[^/]*/sev-off/kernel-boot/own-keys-vars-unsigned$",
    ]);
    let cell = run.cell("50-", "kernel-boot/own-keys-vars-unsigned");
    assert_eq!(cell.verdict, VerdictKind::Fail, "{cell}");
    assert!(
        cell.reason.contains("expected the kernel to be refused"),
        "{cell}"
    );
    assert_eq!(run.status, 1);
}

/// What `ci/test` passes in `variable`, or else what `ci/<script>` prints (it fetches it).
fn from_ci(variable: &str, script: &str) -> String {
    if let Ok(value) = std::env::var(variable) {
        return value;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("ci")
        .join(script);
    let out = Command::new(&path).output().expect("the ci script runs");
    assert!(
        out.status.success(),
        "ci/{script} failed (run ./ci/test, which sets {variable}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The descriptors of Debian trixie's OVMF 2025.02 as the package ships them, in the tree
/// `ci/extra-ovmf` unpacks: `ROOT/usr/share/qemu/firmware`, which implies `--root ROOT`.
fn trixie_descriptors() -> String {
    from_ci("BOOTMATRIX_EXTRA_OVMF", "extra-ovmf")
}

#[test]
fn trixie_ovmf_2025_02_warns_and_can_refuse() {
    let descriptors = trixie_descriptors();
    let extra = std::env::var("BOOTMATRIX_EXTRA_QEMU").ok();
    // A package tree's cells are NAME@VERSION (tests/expected/ keys leave the version out).
    let filter =
        "^(40|50|60)-edk2-x86_64[a-z-]*(@[^/]*)?/[^/]*/sev-off/(secure-boot|option-rom|kernel-boot)/";
    let mut args = vec!["--descriptors", descriptors.as_str(), "--filter", filter];
    if let Some(q) = &extra {
        args.extend(["--qemu-root", q.as_str()]);
    }
    let run = bootmatrix(&args);
    assert!(run.cells().len() >= 28, "{}", run.stdout);
    // The fallback is warned about now, the switch turns it off, and QEMU 10 hands over the
    // unpatched kernel, whose signature verifies: all in tests/expected/.
    compare(&run.report, TRIXIE_OVMF, &Regex::new(filter).unwrap());
    // The package's own descriptors, with their paths resolved in its tree (the implied root).
    let tree = Path::new(&descriptors)
        .ancestors()
        .nth(4)
        .expect("ROOT/usr/share/qemu/firmware");
    for cell in run.cells() {
        assert_eq!(
            cell.firmware.edk2_release,
            Edk2Release::parse("2025.02"),
            "{cell}"
        );
        assert!(cell.firmware.executable.starts_with(tree), "{cell}");
    }
    let warned = run.cell(
        "50-edk2-x86_64-secure@2025.02-8+deb13u1/qemu-7.2",
        "kernel-boot/own-keys-vars-unsigned",
    );
    assert!(kernel(warned)
        .legacy_warning
        .as_deref()
        .is_some_and(|w| w.starts_with("OVMF: Using legacy linux kernel loader")));
    assert_eq!(
        deviation_id(warned),
        Some("debian-ovmf-2025.02-kernel-legacy-fallback-warned"),
        "{warned}"
    );
    assert_eq!(run.status, 0, "{}", run.stdout);
}

#[test]
fn shim_refuses_the_unsigned_kernel_on_trixie_ovmf() {
    // -shim needs QEMU >= 10.0 and edk2 >= stable202502; shim is Microsoft-signed, so only the
    // enrolled descriptor runs it.
    let descriptors = trixie_descriptors();
    let qemu = from_ci("BOOTMATRIX_EXTRA_QEMU", "extra-qemu");
    let shim = from_ci("BOOTMATRIX_SHIM", "extra-shim");
    let run = bootmatrix(&[
        "--descriptors",
        &descriptors,
        "--qemu-root",
        &qemu,
        "--no-path-qemu",
        "--shim",
        &shim,
        "--filter",
        "^40-edk2-x86_64-secure-enrolled@[^/]*/qemu-10[^/]*/sev-off/kernel-boot/.*-shim$",
    ]);
    assert_eq!(run.cells().len(), 2, "{}", run.stdout);
    let unsigned = run.cell("40-", "kernel-boot/db-added-vars-unsigned-shim");
    assert_eq!(unsigned.verdict, VerdictKind::Pass, "{unsigned}");
    assert_eq!(
        unsigned.observed.outcome(),
        Some(Outcome::Refused),
        "{unsigned}"
    );
    assert!(
        unsigned
            .observed
            .refusal
            .as_deref()
            .is_some_and(|l| l.contains("Verification failed")),
        "{unsigned}"
    );
    let signed = run.cell("40-", "kernel-boot/db-added-vars-signed-shim");
    assert_eq!(signed.verdict, VerdictKind::Pass, "{signed}");
    assert!(
        signed.argv.iter().flatten().any(|a| a == "-shim"),
        "{signed}"
    );
    assert_eq!(run.status, 0, "{}", run.stdout);
}

#[test]
fn option_rom_that_runs_against_its_rule_fails() {
    // The signed ROM runs; claim it must not: the marker the driver writes must make it a fail.
    let scenarios = scenarios_with("option-rom.json", |s| {
        rule_mut(s, "signed")["expect"] = serde_json::json!({"payload": "not-executed"});
    });
    let run = bootmatrix(&[
        "--scenarios",
        scenarios.path().to_str().unwrap(),
        "--filter",
        "^50-edk2-x86_64-secure/qemu-7[^/]*/sev-off/option-rom/own-keys-vars-signed$",
    ]);
    let cell = run.cell("50-", "option-rom/own-keys-vars-signed");
    assert_eq!(cell.verdict, VerdictKind::Fail, "{cell}");
    assert_eq!(cell.observed.outcome(), Some(Outcome::Executed), "{cell}");
    assert!(
        cell.observed
            .rom_marker()
            .is_some_and(|m| m.contains("BOOTMATRIX-OPROM")),
        "{cell}"
    );
    assert_eq!(run.status, 1);
}

#[test]
fn flipped_expectation_of_a_probe_that_runs_turns_the_cell_into_fail() {
    // The other direction: with our keys enrolled, the signed probe runs. Claim it is refused.
    let scenarios = scenarios_with("secure-boot.json", |s| {
        rule_mut(s, "own-keys-signed")["expect"] = serde_json::json!({"payload": "refused"});
    });
    let run = bootmatrix(&[
        "--scenarios",
        scenarios.path().to_str().unwrap(),
        "--filter",
        "^50-edk2-x86_64-secure/qemu-7[^/]*/sev-off/secure-boot/own-keys-vars-signed$",
    ]);
    let cell = run.cell("50-", "own-keys-vars-signed");
    assert_eq!(cell.verdict, VerdictKind::Fail, "{cell}");
    assert_eq!(cell.observed.outcome(), Some(Outcome::Runs), "{cell}");
    assert!(
        cell.evidence()[0]
            .line
            .starts_with("BOOTMATRIX-PROBE v=2 secureboot=1"),
        "{cell}"
    );
    assert_eq!(run.status, 1);
}

#[test]
fn flipped_expectation_of_a_refused_kernel_turns_the_cell_into_fail() {
    // trixie's OVMF refuses the unsigned kernel when the legacy loader is switched off (a pass
    // under rule unsigned-refused). Claim it boots: the refusal, stood by, must fail the cell.
    let descriptors = trixie_descriptors();
    let scenarios = scenarios_with("kernel-boot.json", |s| {
        rule_mut(s, "unsigned-refused")["expect"] = serde_json::json!({"payload": "legacy-warned"});
    });
    let run = bootmatrix(&[
        "--descriptors",
        &descriptors,
        "--scenarios",
        scenarios.path().to_str().unwrap(),
        "--filter",
        "^50-edk2-x86_64-secure@[^/]*/qemu-7[^/]*/sev-off/kernel-boot/own-keys-vars-unsigned-no-legacy-loader$",
    ]);
    let cell = run.cell("50-", "kernel-boot/own-keys-vars-unsigned-no-legacy-loader");
    assert_eq!(cell.verdict, VerdictKind::Fail, "{cell}");
    assert_eq!(cell.observed.outcome(), Some(Outcome::Refused), "{cell}");
    let lines: Vec<&str> = cell.evidence().iter().map(|e| e.line.as_str()).collect();
    assert_eq!(lines.len(), 2, "{cell}");
    assert!(
        lines[0].contains("Fallback to insecure legacy linux kernel loader is disabled"),
        "{cell}"
    );
    assert!(lines[1].starts_with("BdsDxe: No bootable option"), "{cell}");
    assert_eq!(run.status, 1);
}
