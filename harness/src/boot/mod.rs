//! Boot: one QEMU per cell, in its own process group, its consoles read from the first byte.
//!
//! The only stage that starts guests. Every QEMU is registered while it runs, so a panic
//! (drop guard), Ctrl-C or SIGTERM (signal thread) or the death of bootmatrix itself
//! (`PR_SET_PDEATHSIG`) kills it: no QEMU outlives the harness.
//!
//! `console.rs` reads the consoles; [`boot`] hands what they show to the [`Watch`]er, in one
//! place, until it has seen enough.

mod console;
pub mod guest_errors;
pub mod verify;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use regex::Regex;
use serde::{Deserialize, Serialize};
use strum::{Display, IntoStaticStr, VariantArray};

use self::console::{Consoles, Event, Logs, Read, LAST_READS};
use crate::plan::RunSpec;

/// How often a watcher is shown time passing, at least.
const TICK: Duration = Duration::from_millis(50);

/// Which console a line came from.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    IntoStaticStr,
    Display,
    VariantArray,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Console {
    /// The guest's serial port (QEMU's stdout): firmware ConOut, payloads, the kernel.
    Serial,
    /// The firmware debug console (I/O port 0x402), for `verbose-dynamic` builds.
    Debug,
    /// QEMU's log of the guest's errors (`-d guest_errors`, on its stderr), handed over
    /// summarized once the boot is over ([`Watch::guest_errors`]), never line by line.
    QemuLog,
    /// Not a console: what a static check read from a varstore file (key-health).
    Varstore,
    /// Not a console: what the runner measured of the boot itself (as-bios: its bound passed
    /// with no payload line).
    Runner,
}

impl Console {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// What a watcher tells the runner after each line or tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    /// The watcher has what it needs: kill the guest.
    Stop,
}

/// Reads a boot's console lines as they come. The runner owns no judgement: whoever calls
/// [`boot`] decides when the guest has shown enough.
pub trait Watch {
    /// A complete console line (escape codes stripped), `at` after QEMU started.
    fn line(&mut self, console: Console, at: Duration, text: &str) -> Control;
    /// The unfinished line a console has been showing since its last read: text a guest
    /// leaves on screen without a newline (shim's error box waits for a key under it). It
    /// comes again, longer, until its newline arrives as a [`Watch::line`].
    fn partial(&mut self, console: Console, at: Duration, text: &str) -> Control;
    /// Called at least every 50 ms, for decisions that rest on time passing.
    fn tick(&mut self, at: Duration) -> Control;
    /// Once the boot is over: the guest errors QEMU logged (`-d guest_errors`), summarized.
    fn guest_errors(&mut self, _errors: &guest_errors::GuestErrors) {}
}

/// How a boot ended, as far as the runner can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootEnd {
    /// The watcher stopped it.
    Stopped,
    /// QEMU exited on its own (the probe powers the VM off, or QEMU failed).
    Exited {
        status: String,
        /// The end of QEMU's stderr, or `(stderr empty)`.
        stderr: String,
    },
    /// The deadline passed; the guest was killed.
    Deadline {
        after: Duration,
        /// The last non-empty console line, for the error message.
        last_line: String,
    },
    /// The guest could not be started or its logs not written.
    Failed(String),
}

/// How one boot went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootOutcome {
    pub end: BootEnd,
    /// From QEMU start to the watcher's stop.
    pub stopped_after: Option<Duration>,
    /// From QEMU start to QEMU reaped.
    pub elapsed: Duration,
    pub serial_lines: usize,
}

static RUNNING: Mutex<Vec<i32>> = Mutex::new(Vec::new());
static SIGNALS: Once = Once::new();
/// The signal that interrupted the run (0: none). Set with `RUNNING` locked, so no guest
/// starts after it.
static INTERRUPTED: AtomicI32 = AtomicI32::new(0);
/// Whether a signal leaves the exit to the run, which reports what it decided first.
static REPORTING: AtomicBool = AtomicBool::new(false);
/// How long a reporting run has, after the signal, before the signal thread exits anyway.
const REPORT_GRACE: Duration = Duration::from_secs(10);

/// The signal (SIGINT, SIGTERM, SIGHUP) that interrupted a reporting run, if one did.
pub fn interrupted() -> Option<i32> {
    match INTERRUPTED.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

/// From now on the first signal kills every guest, starts no new one and lets the run write
/// its report and exit with 128+signal (see [`interrupted`]); the signal thread still exits on
/// its own after 10 s, or at once on a second signal.
pub fn report_on_signal() {
    REPORTING.store(true, Ordering::SeqCst);
}

/// Kills every QEMU process group still registered.
pub fn kill_all() {
    let groups = RUNNING.lock().map(|g| g.clone()).unwrap_or_default();
    for pgid in groups {
        // SAFETY: killpg has no memory-safety preconditions.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
    }
}

/// Waits for the killed group leaders, so no zombie is left where PID 1 does not reap.
fn reap_all() {
    let leaders = RUNNING.lock().map(|g| g.clone()).unwrap_or_default();
    for pid in leaders {
        // SAFETY: waitpid with a null status pointer is allowed. A leader already reaped by
        // its worker gives ECHILD, which is fine.
        unsafe {
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
}

/// On SIGINT, SIGTERM or SIGHUP: kill all guests and bounded processes (their whole groups), then exit with 128+signal (or, after
/// [`report_on_signal`], leave the exit to the run).
pub fn install_signal_handlers() {
    SIGNALS.call_once(|| {
        let signals = [
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
        ];
        match signal_hook::iterator::Signals::new(signals) {
            Ok(mut it) => {
                std::thread::spawn(move || {
                    for sig in it.forever() {
                        if REPORTING.load(Ordering::SeqCst) && interrupted().is_none() {
                            {
                                // Under the registry's lock: a guest is started and
                                // registered before this (and killed below) or not at all.
                                let _registry = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
                                INTERRUPTED.store(sig, Ordering::SeqCst);
                            }
                            // The workers reap their own guests and report them interrupted.
                            kill_all();
                            crate::tools::kill_groups();
                            eprintln!("bootmatrix: signal {sig}: stopped all guests");
                            std::thread::spawn(move || {
                                std::thread::sleep(REPORT_GRACE);
                                std::process::exit(128 + sig);
                            });
                            continue;
                        }
                        kill_all();
                        reap_all();
                        // And the probes and tools running (discovery's QEMU probes).
                        crate::tools::kill_groups();
                        eprintln!("bootmatrix: signal {sig}: stopped all guests");
                        std::process::exit(128 + sig);
                    }
                });
            }
            Err(e) => eprintln!("bootmatrix: cannot install signal handlers: {e}"),
        }
    });
}

/// The command that starts a planned argv: its first word is the QEMU binary, the rest its
/// arguments. The one place a guest's `Command` is made (boots and `plan --verify`).
pub(crate) fn qemu_command(argv: &[String]) -> std::io::Result<Command> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::other("empty argv"))?;
    let mut cmd = Command::new(program);
    cmd.args(args);
    Ok(cmd)
}

/// Owns a running QEMU: killing and reaping happen on every path out, panics included.
struct Guest {
    child: Child,
    pgid: i32,
    reaped: Option<ExitStatus>,
}

impl Guest {
    fn spawn(argv: &[String], stdout: Stdio, stderr: Stdio) -> std::io::Result<Guest> {
        let mut cmd = qemu_command(argv)?;
        cmd.stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; it only sets a flag on the child.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut registry = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sig) = interrupted() {
            return Err(std::io::Error::other(format!(
                "interrupted by signal {sig}"
            )));
        }
        let child = cmd.spawn()?;
        let pgid = child.id() as i32;
        registry.push(pgid);
        Ok(Guest {
            child,
            pgid,
            reaped: None,
        })
    }

    fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.reaped.is_none() {
            self.reaped = self.child.try_wait().ok().flatten();
        }
        self.reaped
    }

    fn kill_and_reap(&mut self) {
        // SAFETY: see kill_all. The group outlives its leader until every member is gone.
        unsafe {
            libc::killpg(self.pgid, libc::SIGKILL);
        }
        if self.reaped.is_none() {
            self.reaped = self.child.wait().ok();
        }
        if let Ok(mut registry) = RUNNING.lock() {
            registry.retain(|p| *p != self.pgid);
        }
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}

/// Boots one cell and hands every console line to `watcher` until it stops the guest, QEMU
/// exits or the deadline passes. Logs go to `spec.dir`: `serial.log`, `stderr.log` (and
/// `debug.log`, written by QEMU).
pub fn boot(spec: &RunSpec, watcher: &mut dyn Watch) -> BootOutcome {
    let started = Instant::now();
    let failed = |why: String| BootOutcome {
        end: BootEnd::Failed(why),
        stopped_after: None,
        elapsed: started.elapsed(),
        serial_lines: 0,
    };
    let logs = match Logs::create(&spec.dir, spec.debug_log.as_deref()) {
        Ok(logs) => logs,
        Err(why) => return failed(why),
    };
    let mut guest = match Guest::spawn(&spec.argv, Stdio::piped(), Stdio::piped()) {
        Ok(g) => g,
        Err(e) => {
            let program = spec.argv.first().map_or("(empty argv)", String::as_str);
            return failed(format!("cannot start {program}: {e}"));
        }
    };
    let mut consoles = Consoles::start(logs, &mut guest.child, started);
    let mut watched = watch(&mut guest, &mut consoles, watcher, spec.deadline, started);
    if let Watched::Exited(_) = watched {
        // QEMU is gone, but the debug console file may hold lines the tail has not read yet:
        // let it do its last read and hand everything over before the watcher concludes.
        if last_reads(&mut consoles, watcher) == Control::Stop {
            watched = Watched::Stopped;
        }
    }
    let stopped_after = matches!(watched, Watched::Stopped).then(|| started.elapsed());
    guest.kill_and_reap();
    // What the guest wrote up to its end still belongs in serial.log, unfinished last line
    // included (the reader hands it over at end of file).
    let totals = consoles.finish();
    watcher.guest_errors(&totals.guest_errors);
    let end = match watched {
        Watched::Stopped => BootEnd::Stopped,
        Watched::Exited(status) => BootEnd::Exited {
            status: status.to_string(),
            stderr: if totals.stderr.is_empty() {
                "(stderr empty)".to_string()
            } else {
                totals.stderr
            },
        },
        Watched::Deadline => BootEnd::Deadline {
            after: spec.deadline,
            last_line: totals.last_line,
        },
    };
    BootOutcome {
        end,
        stopped_after,
        elapsed: started.elapsed(),
        serial_lines: totals.serial_lines,
    }
}

/// The one place where what the consoles show, and time passing, becomes a decision: the
/// watcher's.
fn decide(watcher: &mut dyn Watch, event: &Event) -> Control {
    match event {
        Event::Line { console, at, text } => watcher.line(*console, *at, text),
        Event::Partial { console, at, text } => watcher.partial(*console, *at, text),
        Event::Tick(at) => watcher.tick(*at),
    }
}

enum Watched {
    Stopped,
    Exited(ExitStatus),
    Deadline,
}

/// Shows the watcher every console event and a tick at least every [`TICK`], until it stops
/// the guest, QEMU has exited (and its stdout closed, or [`LAST_READS`] passed) or the
/// deadline passes.
fn watch(
    guest: &mut Guest,
    consoles: &mut Consoles,
    watcher: &mut dyn Watch,
    deadline: Duration,
    started: Instant,
) -> Watched {
    let mut serial_open = true;
    let mut exited_at: Option<(ExitStatus, Instant)> = None;
    loop {
        if let Some((status, at)) = exited_at {
            // Give the readers a moment to hand over what QEMU wrote just before it exited.
            if !serial_open || at.elapsed() > LAST_READS {
                return Watched::Exited(status);
            }
        }
        let Some(left) = deadline.checked_sub(started.elapsed()) else {
            return Watched::Deadline;
        };
        match consoles.read(left.min(TICK)) {
            Read::Shown(event) => {
                if decide(watcher, &event) == Control::Stop {
                    return Watched::Stopped;
                }
            }
            Read::SerialClosed | Read::Ended => serial_open = false,
            Read::Quiet => {}
        }
        if decide(watcher, &Event::Tick(started.elapsed())) == Control::Stop {
            return Watched::Stopped;
        }
        if exited_at.is_none() {
            if let Some(status) = guest.try_wait() {
                exited_at = Some((status, Instant::now()));
            }
        }
        if !serial_open && exited_at.is_none() {
            // stdout closed but QEMU lives on: keep waiting for exit or deadline, not spinning.
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// After QEMU exited on its own: shows the watcher what the consoles still hold (the debug
/// console's last read included), for [`LAST_READS`] at most.
fn last_reads(consoles: &mut Consoles, watcher: &mut dyn Watch) -> Control {
    consoles.stop_debug_tail();
    let until = Instant::now() + LAST_READS;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match consoles.read(left) {
            Read::Shown(event) => {
                if decide(watcher, &event) == Control::Stop {
                    return Control::Stop;
                }
            }
            Read::SerialClosed => {}
            Read::Quiet | Read::Ended => break,
        }
    }
    Control::Continue
}

/// Removes terminal escape sequences, carriage returns and other control characters from
/// console output, so nothing a guest prints can drive the terminal bootmatrix writes to.
pub fn strip_escapes(raw: &str) -> String {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        // CSI sequences, charset selection, and any other two-byte ESC sequence.
        Regex::new(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[@-_]").expect("valid regex")
    });
    re.replace_all(raw, "")
        .chars()
        .filter(|c| *c != '\r' && (!c.is_control() || *c == '\t'))
        .collect()
}

/// Whether a process with this pid still exists (used by tests to prove cleanup).
pub fn process_exists(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consoles_are_spelled_once() {
        let words = crate::matrix::spelling::serde_agrees::<Console>();
        assert_eq!(words, ["serial", "debug", "qemu-log", "varstore", "runner"]);
        assert_eq!(Console::Debug.as_str(), "debug");
    }

    #[test]
    fn escapes_and_control_characters_are_stripped() {
        assert_eq!(
            strip_escapes("\x1b[0m\x1b[37m\x1b[40mBdsDxe: ok\r"),
            "BdsDxe: ok"
        );
        assert_eq!(strip_escapes("a\x1b(Bb\x07c\td"), "abc\td");
    }
}
