//! `bootmatrix plan --verify` against real QEMU (7.2 from the system, 10.0 from
//! bookworm-backports through `BOOTMATRIX_EXTRA_QEMU`, see `ci/test`): every planned argv is
//! accepted by its QEMU, or gets as far as a host capability this machine lacks; a wrong
//! option is rejected, by name. Run with `cargo test --features qemu --test plan_verify`.
#![cfg(feature = "qemu")]

use std::path::Path;
use std::process::Command;

/// `BOOTMATRIX_EXTRA_QEMU`, or what `ci/extra-qemu` prints, as the arguments that add that
/// QEMU: `--qemu BINARY=DATADIR`, or `--qemu-root DIR` where it is an unpacked Debian root.
fn extra_qemu() -> Vec<String> {
    let value = match std::env::var("BOOTMATRIX_EXTRA_QEMU") {
        Ok(value) => value,
        Err(_) => {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ci/extra-qemu");
            let out = Command::new(&script).output().expect("ci/extra-qemu runs");
            assert!(
                out.status.success(),
                "ci/extra-qemu failed (run ./ci/test, which sets BOOTMATRIX_EXTRA_QEMU): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        }
    };
    let option = if Path::new(&value).is_dir() {
        "--qemu-root"
    } else {
        "--qemu"
    };
    vec![option.to_string(), value]
}

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
fn every_planned_argv_is_accepted_or_needs_the_host_on_both_qemus() {
    let extra = extra_qemu();
    let filter = "^(40|50|60)-edk2-x86_64[a-z-]*/";
    let (code, lines, all) = verify(&[&extra[0], &extra[1], "--filter", filter]);
    assert_eq!(code, 0, "{all}");
    for qemu in ["/qemu-7.", "/qemu-10."] {
        assert!(
            lines.iter().any(|l| l.id.contains(qemu)),
            "no {qemu} cell: {all}"
        );
    }
    let mut sev_checked = 0;
    for line in &lines {
        let Line {
            verdict,
            id,
            reason,
        } = line;
        assert!(
            ["accepted", "needs-host", "no-argv"].contains(&verdict.as_str()),
            "{id}: {verdict} {reason}"
        );
        let sev = id.contains("/sev-on/");
        if !sev && verdict != "no-argv" {
            // Nothing this machine lacks stands in their way: TCG (or KVM) runs them.
            assert_eq!(verdict, "accepted", "{id}: {reason}");
        }
        if sev && id.contains("/kernel-boot/") {
            // The planner's own policy: no argv, on any host.
            assert_eq!(verdict, "no-argv", "{id}: {reason}");
            assert!(reason.starts_with("sev-kernel-policy: "), "{id}: {reason}");
        } else if sev {
            // Planned as on a SEV host; QEMU parses it all and stops at SEV itself.
            if !host_has_sev() {
                assert_eq!(verdict, "needs-host", "{id}: {reason}");
                assert!(reason.starts_with("SEV: "), "{id}: {reason}");
            }
            assert!(reason.contains("skipped here by sev-"), "{id}: {reason}");
            sev_checked += 1;
        }
    }
    // 3 descriptors, 2 of them with SEV cells (6 per QEMU), on two QEMUs.
    assert!(sev_checked >= 12, "{sev_checked} SEV cells: {all}");
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
