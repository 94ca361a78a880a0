//! `plan --verify`: a planned argv started by its own QEMU, paused (`-S`) with a QMP monitor on
//! a unix socket, and quit as soon as QEMU answers; bounded in time and killed as a group
//! ([`Bounded`]). [`classify`] (pure) says what the start showed: QEMU accepted the argv, the
//! argv is wrong (a planner bug, named by the option QEMU complains about), or the host lacks
//! a capability the cell needs (KVM, SEV).
//!
//! QEMU sends its QMP greeting from the monitor's own thread, possibly before the machine is
//! built (QEMU 7.2 greets, then fails building a SEV machine under TCG); commands are run by the
//! main loop, which starts only after every option was parsed and the machine built. So a
//! start is accepted only when QEMU answered `query-status` and then exited with status 0 on
//! `quit`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::tools::{Bounded, Ended, RunError};

/// How long one verifying start may take: QEMU 7.2 and 10.0 answer in well under a second.
pub const VERIFY_LIMIT: Duration = Duration::from_secs(20);

/// What QEMU is sent once connected: capabilities negotiation, a command only the main loop
/// answers, then quit.
const QMP_COMMANDS: &[u8] = b"{\"execute\":\"qmp_capabilities\"}\n\
{\"execute\":\"query-status\"}\n\
{\"execute\":\"quit\"}\n";

/// A capability of the host that a cell needs and QEMU found missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::Display)]
#[strum(serialize_all = "UPPERCASE")]
pub enum Capability {
    Kvm,
    /// AMD SEV, and SEV-ES and SEV-SNP on it.
    Sev,
    Tdx,
}

/// What starting an argv showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// QEMU parsed every option, built the machine and answered on QMP.
    Accepted,
    /// QEMU refused the argv (option parser, machine construction) or failed in a way not
    /// known to be the host's: a planner bug. `option`: the option QEMU names or the argument
    /// holding the property it names, when found.
    Rejected {
        option: Option<String>,
        message: String,
    },
    /// QEMU got as far as a host capability the cell needs, and the host lacks it.
    NeedsHost {
        capability: Capability,
        message: String,
    },
    /// QEMU parsed the argv and would not load the firmware image itself as `-bios` (`could
    /// not load PC BIOS`: its size is no multiple of 64 KiB): no planner bug, the as-bios
    /// check's `qemu-refused` outcome.
    FirmwareRefused { message: String },
}

impl Verdict {
    /// `accepted`, `rejected`, `needs-host` or `firmware-refused`.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::Rejected { .. } => "rejected",
            Verdict::NeedsHost { .. } => "needs-host",
            Verdict::FirmwareRefused { .. } => "firmware-refused",
        }
    }

    /// Why, in one line (empty for an accepted argv).
    pub fn reason(&self) -> String {
        match self {
            Verdict::Accepted => String::new(),
            Verdict::Rejected {
                option: Some(option),
                message,
            } if !message.starts_with(option.as_str()) => format!("{option}: {message}"),
            Verdict::Rejected { message, .. } => message.clone(),
            Verdict::NeedsHost {
                capability,
                message,
            } => format!("{capability}: {message}"),
            Verdict::FirmwareRefused { message } => message.clone(),
        }
    }
}

/// How a verifying start ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// QEMU exited (on `quit`, or on an error) with this status. `answered`: QEMU answered
    /// `query-status` on QMP.
    Exited {
        status: ExitStatus,
        answered: bool,
        stderr: String,
    },
    /// QEMU did not exit within the limit and was killed.
    Timeout { limit: Duration, stderr: String },
    /// QEMU could not be started.
    Failed(String),
}

/// Starts `argv` paused, with its QMP monitor on `socket` (a path that does not exist yet, short
/// enough for a unix socket), and quits it as soon as it answers; within `limit`.
pub fn start_paused(argv: &[String], socket: &Path, limit: Duration) -> Start {
    let mut cmd = match super::qemu_command(argv) {
        Ok(cmd) => cmd,
        Err(e) => return Start::Failed(e.to_string()),
    };
    cmd.arg("-S")
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", socket.display()));
    let program = argv.first().map_or("", String::as_str);
    let ended = Arc::new(AtomicBool::new(false));
    let client = {
        let (socket, ended) = (socket.to_path_buf(), ended.clone());
        std::thread::spawn(move || qmp_client(&socket, &ended, limit))
    };
    let what = format!("{program} -S (plan --verify)");
    let run = Bounded::new(&mut cmd, &what, limit).run();
    ended.store(true, Ordering::SeqCst);
    let transcript = client.join().unwrap_or_default();
    let answered = transcript
        .lines()
        .any(|l| l.contains("\"return\"") && l.contains("\"status\""));
    match run {
        Ok(out) => {
            let status = match out.ended {
                Ended::Exited(status) | Ended::Stopped(status) => status,
            };
            Start::Exited {
                status,
                answered,
                stderr: out.stderr,
            }
        }
        Err(RunError::Timeout { limit, stderr, .. }) => Start::Timeout { limit, stderr },
        Err(e) => Start::Failed(e.to_string()),
    }
}

/// Connects to QEMU's QMP socket (once QEMU has made it), sends [`QMP_COMMANDS`] and reads
/// what QEMU says until it closes the connection. Gives up when QEMU has ended or `limit`
/// passed.
fn qmp_client(socket: &PathBuf, ended: &AtomicBool, limit: Duration) -> String {
    let until = Instant::now() + limit;
    let mut stream = loop {
        match UnixStream::connect(socket) {
            Ok(stream) => break stream,
            Err(_) if !ended.load(Ordering::SeqCst) && Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => return String::new(),
        }
    };
    let left = until.saturating_duration_since(Instant::now());
    if stream
        .set_read_timeout(Some(left.max(Duration::from_millis(1))))
        .is_err()
        || stream.write_all(QMP_COMMANDS).is_err()
    {
        return String::new();
    }
    let mut transcript = String::new();
    for line in BufReader::new(stream).lines() {
        match line {
            Ok(line) => {
                transcript.push_str(&line);
                transcript.push('\n');
            }
            Err(_) => break,
        }
    }
    transcript
}

/// Texts of QEMU's that say the host lacks KVM or SEV, as QEMU 2.12 to 10.x print them
/// (`accel/kvm/kvm-all.c`, `system/vl.c`, `target/i386/sev.c`; checked against the strings of
/// QEMU 7.2 and 10.0). A `cbitpos` mismatch is the host's when the host reports no C-bit at all
/// (`host '0'`), and for an argv planned for another host (see [`classify`]).
const HOST_TEXTS: &[(Capability, &str)] = &[
    (Capability::Sev, "cbitpos check failed, host '0'"),
    (Capability::Sev, "Failed to open /dev/sev"),
    (Capability::Sev, "SEV is not enabled"),
    (Capability::Sev, "SEV feature is not available"),
    (Capability::Sev, "failed to get platform status ret="),
    (Capability::Sev, "failed to initialize ret="),
    (Capability::Sev, "host SEV-ES support unavailable"),
    (
        Capability::Sev,
        "host kernel does not support the requested SEV configuration",
    ),
    (
        Capability::Sev,
        "SEV: host kernel does not support requested",
    ),
    // A KVM without SEV-SNP or TDX (QEMU >= 9.1 and 10.1, `target/i386/kvm/kvm.c`
    // `kvm_arch_get_default_type`: "vm-type %s not supported by KVM"; captured from QEMU 10.0
    // and 11.1 here).
    (Capability::Sev, "vm-type SEV-SNP not supported by KVM"),
    (Capability::Tdx, "vm-type TDX not supported by KVM"),
    (Capability::Kvm, "Could not access KVM kernel module"),
    (Capability::Kvm, "failed to initialize kvm"),
    (Capability::Kvm, "failed to initialize KVM"),
];

/// What a verifying start of `argv` showed (see the module). Anything not known to be the
/// host's is the planner's: an unknown failure is reported, not excused.
///
/// `for_another_host`: the argv was planned for a host with the capabilities this one lacks
/// (SEV). The planner then used default SEV parameters, since this host has none to read, and
/// what QEMU reads as this host's C-bit position means nothing: an Intel CPU answers the AMD
/// leaf 0x8000001F with another leaf's data (`host '1'` here). Its `cbitpos` mismatch is then
/// the host's. On a SEV host the planner reads the host's own value, so a mismatch is its own.
pub fn classify(argv: &[String], start: &Start, for_another_host: bool) -> Verdict {
    let (status, answered, stderr) = match start {
        Start::Failed(why) => {
            return Verdict::Rejected {
                option: None,
                message: format!("QEMU could not be started: {why}"),
            }
        }
        Start::Timeout { limit, stderr } => {
            return Verdict::Rejected {
                option: None,
                message: format!(
                    "QEMU did not answer on QMP and exit within {limit:?}{}",
                    said(&error_lines(stderr))
                ),
            }
        }
        Start::Exited {
            status,
            answered,
            stderr,
        } => (status, *answered, stderr),
    };
    if status.success() && answered {
        return Verdict::Accepted;
    }
    let lines = error_lines(stderr);
    // The first error is the cause: QEMU's later lines (`failed to initialize kvm` after a SEV
    // error) are its consequences.
    if let (false, Some(first)) = (status.success(), lines.first()) {
        if let Some((capability, _)) = HOST_TEXTS.iter().find(|(_, t)| first.contains(t)) {
            return Verdict::NeedsHost {
                capability: *capability,
                message: first.clone(),
            };
        }
        if first.contains("could not load PC BIOS") {
            return Verdict::FirmwareRefused {
                message: first.clone(),
            };
        }
        if for_another_host && first.contains("cbitpos check failed") {
            return Verdict::NeedsHost {
                capability: Capability::Sev,
                message: first.clone(),
            };
        }
    }
    let Some(first) = lines.first() else {
        return Verdict::Rejected {
            option: None,
            message: format!("QEMU exited ({status}) without answering on QMP and said nothing"),
        };
    };
    Verdict::Rejected {
        option: named_option(argv, first),
        message: lines.join("; "),
    }
}

/// `: lines`, or nothing.
fn said(lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!(": {}", lines.join("; "))
    }
}

/// QEMU's error lines, without the program name each starts with and without warnings.
pub fn error_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .map(|l| {
            let l = l.trim();
            match l.split_once(": ") {
                Some((program, rest)) if program.contains("qemu") && !program.contains(' ') => rest,
                _ => l,
            }
        })
        .filter(|l| !l.is_empty() && !l.starts_with("warning:"))
        .map(str::to_string)
        .collect()
}

/// The option an error line is about: the one QEMU names first (`-machine q35,foo=on: ...`),
/// else the argument that holds a property the line quotes (`Property
/// 'pc-q35-7.2-machine.foo' not found`: the `-machine` argument with `foo=`).
pub fn named_option(argv: &[String], line: &str) -> Option<String> {
    if line.starts_with('-') {
        if let Some((option, _)) = line.split_once(": ") {
            return Some(option.to_string());
        }
    }
    line.split('\'')
        .skip(1)
        .step_by(2)
        .filter_map(|quoted| quoted.rsplit(['.', ' ']).next())
        .filter(|name| !name.is_empty())
        .find_map(|name| {
            argv.windows(2).find_map(|pair| {
                let holds = pair[1]
                    .split(',')
                    .any(|item| item == name || item.split('=').next() == Some(name));
                (pair[0].starts_with('-') && holds).then(|| format!("{} {}", pair[0], pair[1]))
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn argv(line: &str) -> Vec<String> {
        line.split(' ').map(String::from).collect()
    }

    const Q35: &str = "/usr/bin/qemu-system-x86_64 -nodefaults -machine pc-q35-7.2,accel=tcg,foo=on -drive if=none,id=esp";

    fn exited(code: i32, answered: bool, stderr: &str) -> Start {
        Start::Exited {
            status: ExitStatus::from_raw(code << 8),
            answered,
            stderr: stderr.into(),
        }
    }

    #[test]
    fn a_firmware_image_qemu_will_not_load_is_the_firmwares_not_a_rejection() {
        let stderr = "qemu: could not load PC BIOS '/usr/share/OVMF/OVMF_CODE_4M.fd'\n";
        assert_eq!(
            classify(&argv(Q35), &exited(1, false, stderr), false),
            Verdict::FirmwareRefused {
                message: "could not load PC BIOS '/usr/share/OVMF/OVMF_CODE_4M.fd'".into()
            }
        );
        // Only as QEMU's first error: after another, it is that error's consequence.
        let after = "qemu-system-x86_64: -drive if=none,id=esp: Could not open 'x'\nqemu: could not load PC BIOS 'y'\n";
        assert!(matches!(
            classify(&argv(Q35), &exited(1, false, after), false),
            Verdict::Rejected { .. }
        ));
    }

    #[test]
    fn an_answer_and_a_clean_exit_is_accepted() {
        let stderr = "qemu-system-x86_64: warning: host doesn't support requested feature: CPUID.01H:ECX.pni [bit 0]\n";
        assert_eq!(
            classify(&argv(Q35), &exited(0, true, stderr), false),
            Verdict::Accepted
        );
        // Greeted, but no answer from the main loop: not accepted.
        assert!(matches!(
            classify(&argv(Q35), &exited(0, false, ""), false),
            Verdict::Rejected { .. }
        ));
    }

    #[test]
    fn an_unknown_property_is_rejected_naming_its_option() {
        // QEMU 7.2 and 10.0, `-machine q35,...,foo=on`, captured.
        for stderr in [
            "qemu-system-x86_64: Property 'pc-q35-7.2-machine.foo' not found\n",
            "qemu-system-x86_64: Property 'pc-q35-10.0-machine.foo' not found\n",
        ] {
            let verdict = classify(&argv(Q35), &exited(1, false, stderr), false);
            let Verdict::Rejected { option, message } = &verdict else {
                panic!("{verdict:?}")
            };
            assert_eq!(
                option.as_deref(),
                Some("-machine pc-q35-7.2,accel=tcg,foo=on")
            );
            assert!(message.starts_with("Property 'pc-q35-"), "{message}");
            assert!(verdict
                .reason()
                .starts_with("-machine pc-q35-7.2,accel=tcg,foo=on: Property"));
        }
    }

    #[test]
    fn an_option_qemu_names_itself_is_taken_as_named() {
        let stderr = "qemu-system-x86_64: -drive if=none,id=esp,bogus=1: Block format 'raw' does not support the option 'bogus'\n";
        let verdict = classify(&argv(Q35), &exited(1, false, stderr), false);
        assert_eq!(
            verdict,
            Verdict::Rejected {
                option: Some("-drive if=none,id=esp,bogus=1".into()),
                message: "-drive if=none,id=esp,bogus=1: Block format 'raw' does not support the option 'bogus'".into(),
            }
        );
        assert_eq!(
            verdict.reason(),
            "-drive if=none,id=esp,bogus=1: Block format 'raw' does not support the option 'bogus'"
        );
    }

    #[test]
    fn no_sev_on_the_host_needs_the_host() {
        // This machine (KVM opens, no SEV), QEMU 7.2 and 10.0, captured.
        for stderr in [
            "qemu-system-x86_64: sev_kvm_init: cbitpos check failed, host '0' requested '51'\nqemu-system-x86_64: failed to initialize kvm: Operation not permitted\n",
            "qemu-system-x86_64: sev_common_kvm_init: cbitpos check failed, host '0' requested '51'\nqemu-system-x86_64: failed to initialize kvm: Operation not permitted\n",
            "qemu-system-x86_64: sev_kvm_init: Failed to open /dev/sev 'No such file or directory'\nqemu-system-x86_64: failed to initialize kvm: Operation not permitted\n",
            "qemu-system-x86_64: sev_kvm_init: failed to initialize ret=-25 fw_error=0 ''\n",
        ] {
            match classify(&argv(Q35), &exited(1, false, stderr), false) {
                Verdict::NeedsHost {
                    capability: Capability::Sev,
                    message,
                } => assert!(message.starts_with("sev_"), "{message}"),
                other => panic!("{stderr}: {other:?}"),
            }
        }
    }

    /// An Intel host without SEV: QEMU reads garbage as its C-bit position. For an argv planned
    /// for a SEV host, that is the host's; for one planned for this host, the planner's.
    #[test]
    fn a_cbitpos_read_on_a_host_without_sev_is_the_hosts_for_an_argv_planned_elsewhere() {
        let stderr = "qemu-system-x86_64: sev_common_kvm_init: cbitpos check failed, host '1' requested '51'\nqemu-system-x86_64: failed to initialize kvm: Operation not permitted\n";
        match classify(&argv(Q35), &exited(1, false, stderr), true) {
            Verdict::NeedsHost {
                capability: Capability::Sev,
                message,
            } => assert!(
                message.starts_with("sev_common_kvm_init: cbitpos check failed"),
                "{message}"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            classify(&argv(Q35), &exited(1, false, stderr), false).word(),
            "rejected"
        );
    }

    #[test]
    fn a_cbitpos_the_host_does_not_have_is_the_planners() {
        let stderr = "qemu-system-x86_64: sev_kvm_init: cbitpos check failed, host '47' requested '51'\nqemu-system-x86_64: failed to initialize kvm: Operation not permitted\n";
        let verdict = classify(&argv(Q35), &exited(1, false, stderr), false);
        // The KVM line that follows is a consequence, not the cause.
        assert_eq!(verdict.word(), "rejected", "{verdict:?}");
        assert!(verdict
            .reason()
            .starts_with("sev_kvm_init: cbitpos check failed, host '47'"));
    }

    #[test]
    fn no_snp_or_tdx_in_kvm_needs_the_host() {
        // This machine, QEMU 10.0.2 and 11.1.3 with a sev-snp-guest, 11.1.3 with a tdx-guest.
        for (stderr, capability) in [
            (
                "qemu-system-x86_64: vm-type SEV-SNP not supported by KVM\n",
                Capability::Sev,
            ),
            (
                "qemu-system-x86_64: vm-type TDX not supported by KVM\n",
                Capability::Tdx,
            ),
        ] {
            let verdict = classify(&argv(Q35), &exited(1, false, stderr), true);
            assert_eq!(
                verdict,
                Verdict::NeedsHost {
                    capability,
                    message: stderr
                        .trim()
                        .trim_start_matches("qemu-system-x86_64: ")
                        .into(),
                }
            );
        }
        assert_eq!(
            classify(
                &argv(Q35),
                &exited(1, false, "vm-type TDX not supported by KVM\n"),
                false
            )
            .reason(),
            "TDX: vm-type TDX not supported by KVM"
        );
    }

    #[test]
    fn no_kvm_needs_the_host() {
        let stderr = "Could not access KVM kernel module: No such file or directory\nqemu-system-x86_64: -machine pc-q35-7.2,accel=kvm: failed to initialize kvm: No such file or directory\n";
        match classify(&argv(Q35), &exited(1, false, stderr), false) {
            Verdict::NeedsHost {
                capability: Capability::Kvm,
                message,
            } => assert_eq!(
                message,
                "Could not access KVM kernel module: No such file or directory"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_failures_are_rejected() {
        // QEMU 7.2, a SEV machine under TCG: greets on QMP, then aborts building the machine.
        let stderr = "qemu-system-x86_64: ../../softmmu/vl.c:2590: qemu_machine_creation_done: Assertion `machine->cgs->ready' failed.\n";
        let verdict = classify(
            &argv(Q35),
            &Start::Exited {
                status: ExitStatus::from_raw(libc::SIGABRT),
                answered: false,
                stderr: stderr.into(),
            },
            false,
        );
        assert_eq!(verdict.word(), "rejected");
        assert!(verdict.reason().contains("Assertion"), "{verdict:?}");
        // QEMU 10.0, the same under TCG: the accelerator is the planner's choice.
        let stderr =
            "qemu-system-x86_64: accelerator does not support confidential guest sev-guest\n";
        assert_eq!(
            classify(&argv(Q35), &exited(1, false, stderr), false).word(),
            "rejected"
        );
        let silent = classify(&argv(Q35), &exited(1, false, ""), false);
        assert!(silent.reason().contains("said nothing"), "{silent:?}");
        let timeout = Start::Timeout {
            limit: VERIFY_LIMIT,
            stderr: String::new(),
        };
        assert_eq!(classify(&argv(Q35), &timeout, false).word(), "rejected");
        assert_eq!(
            classify(
                &argv(Q35),
                &Start::Failed("No such file or directory".into()),
                false
            )
            .word(),
            "rejected"
        );
    }
}
