//! `bootmatrix plan --verify` against real QEMU: over the whole Debian release matrix (every
//! descriptor of OVMF 2020.11 to 2026.08 on QEMU 5.2 to 11.1, `ci/debian-matrix`), every planned
//! argv is accepted by its QEMU, or gets as far as a host capability this machine lacks; a
//! wrong option is rejected, by name. Run with `cargo test --features qemu --test plan_verify`.
#![cfg(feature = "qemu")]

mod common;

use std::process::Command;

/// One line of `plan --verify`: (verdict, cell id, reason).
struct Line {
    verdict: String,
    id: String,
    reason: String,
}

/// Runs `bootmatrix plan --verify ARGS`: its exit code and its lines per cell.
fn verify(args: &[&str]) -> (i32, Vec<Line>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bootmatrix"))
        .args(["plan", "--verify"])
        .args(args)
        .output()
        .expect("bootmatrix runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines = stdout
        .lines()
        .filter(|l| l.contains('/') && !l.starts_with("LEFT OUT"))
        .map(|l| {
            let (verdict, rest) = l.split_once(' ').expect("verdict first");
            let rest = rest.trim_start();
            let (id, reason) = rest.split_once("  ").unwrap_or((rest, ""));
            Line {
                verdict: verdict.to_string(),
                id: id.to_string(),
                reason: reason.to_string(),
            }
        })
        .collect();
    let all = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().expect("an exit code"), lines, all)
}

/// Whether this host can start SEV guests at all (then SEV cells may well be accepted).
fn host_has_sev() -> bool {
    std::fs::read_to_string("/sys/module/kvm_amd/parameters/sev")
        .is_ok_and(|s| matches!(s.trim(), "Y" | "1"))
}

#[test]
fn every_planned_argv_of_the_debian_matrix_is_accepted_or_needs_the_host() {
    // Every descriptor of four OVMF generations, on five QEMU versions (5.2 to 11.1).
    let args = common::debian_matrix_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, lines, all) = verify(&args);
    assert_eq!(code, 0, "{all}");
    for qemu in [
        "/qemu-5.2.",
        "/qemu-7.2.",
        "/qemu-10.0.2/",
        "/qemu-10.0.13/",
        "/qemu-11.1.",
    ] {
        assert!(
            lines.iter().any(|l| l.id.contains(qemu)),
            "no {qemu} cell: {all}"
        );
    }
    let mut sev_checked = 0;
    let mut confidential = std::collections::BTreeMap::new();
    for line in &lines {
        let Line {
            verdict,
            id,
            reason,
        } = line;
        assert!(
            ["accepted", "needs-host", "no-argv", "firmware-refused"].contains(&verdict.as_str()),
            "{id}: {verdict} {reason}"
        );
        // as-bios: QEMU parses the line and will not load a 4 MiB image as -bios (its
        // size is no multiple of 64 KiB); the 2 MiB and memory images it loads.
        if id.contains("/as-bios/") {
            let four_mib = !id.contains("-amdsev@") && !id.contains("-inteltdx@");
            let measured_kernel = id.contains("-amdsev@") && id.ends_with("-kernel");
            let want = match (four_mib, measured_kernel) {
                (true, _) => "firmware-refused",
                // measured-without-sev: no kernel starts on it without SEV's hashes.
                (false, true) => "no-argv",
                (false, false) => "accepted",
            };
            assert_eq!(verdict, want, "{id}: {reason}");
            continue;
        }
        // SEV, and the confidential modes after it (SEV-ES, SEV-SNP, TDX, IGVM).
        let sev = ["/sev-on/", "/sev-es/", "/sev-snp/", "/tdx/", "/igvm/"]
            .iter()
            .any(|mode| id.contains(mode));
        if !sev && verdict != "no-argv" {
            // Nothing this machine lacks stands in their way: TCG (or KVM) runs them.
            assert_eq!(verdict, "accepted", "{id}: {reason}");
        }
        // sid's OVMF.amdsev.fd is a measured direct boot build (scenarios/measured-boot.json):
        // its SEV -kernel cells are planned (kernel-hashes=on, QEMU >= 6.2) like other SEV cells.
        let measured = id.starts_with("60-edk2-x86_64-amdsev@") && !id.contains("/qemu-5.2.");
        let tdx = id.contains("/tdx/");
        // sev-snp-guest passes kernel hashes from its first release: its kernel cells on QEMU
        // 5.2 are kept out by the version gate, not by policy.
        let measured =
            measured || (id.contains("/sev-snp/") && id.starts_with("60-edk2-x86_64-amdsev@"));
        if sev && id.contains("/kernel-boot/") && (tdx || !measured) {
            // The planner's own policy: no argv, on any host.
            assert_eq!(verdict, "no-argv", "{id}: {reason}");
            let rule = if tdx {
                "tdx-kernel-policy: "
            } else {
                "sev-kernel-policy: "
            };
            assert!(reason.starts_with(rule), "{id}: {reason}");
        } else if sev && verdict == "no-argv" {
            // Only the modes after SEV: a QEMU older than the mode (its gate from QEMU's
            // docs), or no option ROM on a confidential guest's devices (policy).
            assert!(!id.contains("/sev-on/"), "{id}: {reason}");
            assert!(
                reason.starts_with("confidential-qemu-version: ")
                    || reason.starts_with("confidential-option-rom: "),
                "{id}: {reason}"
            );
        } else if sev {
            // Planned as on a SEV (SNP, TDX) host; QEMU parses it all and stops at the host.
            if tdx {
                assert_eq!(verdict, "needs-host", "{id}: {reason}");
                assert!(reason.starts_with("TDX: "), "{id}: {reason}");
            } else if !host_has_sev() {
                assert_eq!(verdict, "needs-host", "{id}: {reason}");
                assert!(reason.starts_with("SEV: "), "{id}: {reason}");
            }
            assert!(
                reason.contains("skipped here by sev-")
                    || reason.contains("skipped here by confidential-"),
                "{id}: {reason}"
            );
            sev_checked += 1;
            for (mode, object) in [
                ("/sev-es/", "policy=0x5"),
                ("/sev-snp/", "sev-snp-guest"),
                ("/tdx/", "tdx-guest"),
            ] {
                if id.contains(mode) {
                    *confidential.entry((mode, object)).or_insert(0) += 1;
                }
            }
        }
    }
    // On every QEMU: the SEV cells of 40-, 50- and 60- of each generation (6 per descriptor
    // with SEV support), and more.
    assert!(sev_checked >= 5 * 12, "{sev_checked} SEV cells: {all}");
    // sid's AmdSev build as SEV-ES on QEMU 7.2 to 11.1 and SEV-SNP on 10.0 to 11.1 (9.1), its
    // Intel TDX build on 11.1 (10.1): every argv parsed, stopped by the host only.
    for ((mode, _), n) in &confidential {
        assert!(*n >= 3, "{n} cells of {mode}: {all}");
    }
    assert_eq!(confidential.len(), 3, "{confidential:?}: {all}");
    for release in ["@2020.11", "@2025.02", "@2026.08"] {
        assert!(
            lines.iter().any(|l| l.id.contains(release)),
            "no cell of {release}: {all}"
        );
    }
}

#[test]
fn a_misspelled_machine_property_is_rejected_by_name() {
    let filter =
        "^(40|60)-edk2-x86_64[a-z-]*/qemu-7[^/]*/sev-(on|off)/secure-boot/shipped-vars-signed$";
    let (code, lines, all) = verify(&[
        "--filter",
        filter,
        "--verify-machine-property",
        "bootmatrix-misspelt=on",
    ]);
    assert_eq!(code, 1, "{all}");
    // Two descriptors, SEV off and on (the SEV argv as planned for a SEV host).
    assert_eq!(lines.len(), 4, "{all}");
    for Line {
        verdict,
        id,
        reason,
    } in &lines
    {
        assert_eq!(verdict, "rejected", "{id}: {reason}");
        assert!(reason.starts_with("-machine pc-q35-"), "{id}: {reason}");
        assert!(
            reason.contains(",bootmatrix-misspelt=on: Property 'pc-q35-")
                && reason.contains("machine.bootmatrix-misspelt' not found"),
            "{id}: {reason}"
        );
    }
    assert!(all.contains("0 accepted, 4 rejected"), "{all}");
}

/// `plan --json` over sid's AmdSev build: every SEV-SNP secure-boot cell on a QEMU with
/// `sev-snp-guest` (10.0, 11.1) carries the launch measurement sev-snp-measure predicts for it
/// (./ci/setup installs the tool), labelled as predicted; the cell itself is skipped here with
/// the host's reason.
#[test]
fn sev_snp_cells_carry_their_predicted_measurement_in_the_plans_json() {
    let args = common::debian_matrix_args();
    let out = Command::new(env!("CARGO_BIN_EXE_bootmatrix"))
        .args([
            "plan",
            "--json",
            "--filter",
            "^60-edk2-x86_64-amdsev@[^/]*/[^/]*/sev-snp/secure-boot/",
        ])
        .args(&args)
        .output()
        .expect("bootmatrix runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let cells = plan["cells"].as_array().expect("cells");
    let predicted: Vec<&serde_json::Value> = cells
        .iter()
        .filter(|c| c["predicted_measurement"].is_object())
        .collect();
    // Two payloads on 10.0.2, 10.0.13 and 11.1.3; none on 5.2 and 7.2 (no sev-snp-guest).
    assert_eq!(predicted.len(), 6, "{plan:#}");
    let measurement = predicted[0]["predicted_measurement"]["measurement"]
        .as_str()
        .expect("a measurement");
    assert_eq!(measurement.len(), 96, "{measurement}");
    for c in &predicted {
        let p = &c["predicted_measurement"];
        assert_eq!(
            p["measurement"], measurement,
            "one firmware, one launch: {c:#}"
        );
        assert!(p["status"]
            .as_str()
            .unwrap()
            .starts_with("predicted offline by sev-snp-measure"));
        assert_eq!(
            (p["vcpus"].as_u64(), p["vcpu_type"].as_str()),
            (Some(1), Some("EPYC-v4"))
        );
        assert!(
            p["ovmf"].as_str().unwrap().ends_with("/OVMF.amdsev.fd"),
            "{c:#}"
        );
        if !host_has_sev() {
            assert_eq!(c["action"], "skip", "{c:#}");
            assert_eq!(c["rule"], "confidential-host", "{c:#}");
        }
    }
}
