//! Boot: one QEMU per cell, in its own process group, its consoles read from the first byte.
//!
//! The only stage that starts guests. Every QEMU is registered while it runs, so a panic
//! (drop guard), Ctrl-C or SIGTERM (signal thread) or the death of bootmatrix itself
//! (`PR_SET_PDEATHSIG`) kills it: no QEMU outlives the harness.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::sync::OnceLock;

use regex::Regex;
use serde::Serialize;

use crate::plan::RunSpec;

/// A console line longer than this is cut into pieces (a guest may print without newlines).
const MAX_LINE: usize = 64 * 1024;
/// Logs stop growing here; a flooding guest cannot fill the disk.
const MAX_LOG: u64 = 16 * 1024 * 1024;
/// How much of QEMU's stderr is kept for error messages.
const STDERR_TAIL: usize = 4 * 1024;
/// Console lines in flight between the readers and the watcher.
const CHANNEL_LINES: usize = 1024;

/// Which console a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Console {
    /// The guest's serial port (QEMU's stdout): firmware ConOut, payloads, the kernel.
    Serial,
    /// The firmware debug console (I/O port 0x402), for `verbose-dynamic` builds.
    Debug,
}

impl Console {
    pub fn as_str(self) -> &'static str {
        match self {
            Console::Serial => "serial",
            Console::Debug => "debug",
        }
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
        /// The last non-empty serial line, for the error message.
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

/// On SIGINT, SIGTERM or SIGHUP: kill all guests, then exit with 128+signal.
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
                    if let Some(sig) = it.forever().next() {
                        kill_all();
                        reap_all();
                        eprintln!("bootmatrix: signal {sig}: stopped all guests");
                        std::process::exit(128 + sig);
                    }
                });
            }
            Err(e) => eprintln!("bootmatrix: cannot install signal handlers: {e}"),
        }
    });
}

/// Owns a running QEMU: killing and reaping happen on every path out, panics included.
struct Guest {
    child: Child,
    pgid: i32,
    reaped: Option<ExitStatus>,
}

impl Guest {
    fn spawn(argv: &[String], stdout: Stdio, stderr: Stdio) -> std::io::Result<Guest> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| std::io::Error::other("empty argv"))?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
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

enum Event {
    /// A line and when it was read (from QEMU start).
    Line(Console, String, Duration),
    /// The unfinished line the console has been showing since its last read.
    Partial(Console, String, Duration),
    SerialClosed,
    /// Time passes (made by the watch loop, never by a reader).
    Tick(Duration),
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
    let mut serial_log = match File::create(spec.dir.join("serial.log")) {
        Ok(f) => LimitedLog::new(f),
        Err(e) => return failed(format!("cannot create serial.log: {e}")),
    };
    let stderr_log = match File::create(spec.dir.join("stderr.log")) {
        Ok(f) => f,
        Err(e) => return failed(format!("cannot create stderr.log: {e}")),
    };
    if let Some(path) = &spec.debug_log {
        // Truncate now: the tail reads from byte 0, and a previous boot's lines must not count.
        if let Err(e) = File::create(path) {
            return failed(format!("cannot create {}: {e}", path.display()));
        }
    }
    let mut guest = match Guest::spawn(&spec.argv, Stdio::piped(), Stdio::piped()) {
        Ok(g) => g,
        Err(e) => {
            let program = spec.argv.first().map_or("(empty argv)", String::as_str);
            return failed(format!("cannot start {program}: {e}"));
        }
    };
    // Bounded: a flooding guest blocks its reader instead of filling memory.
    let (tx, rx) = mpsc::sync_channel(CHANNEL_LINES);
    let stdout = guest.child.stdout.take().expect("stdout is piped");
    let serial_reader = spawn_line_reader(stdout, Console::Serial, started, tx.clone());
    let stderr_tail = Arc::new(Mutex::new(Vec::new()));
    let stderr_reader = spawn_stderr_reader(
        guest.child.stderr.take().expect("stderr is piped"),
        stderr_log,
        stderr_tail.clone(),
    );
    let stop_tail = Arc::new(AtomicBool::new(false));
    let debug_tail = spec
        .debug_log
        .as_ref()
        .map(|path| spawn_file_tail(path.clone(), started, tx.clone(), stop_tail.clone()));
    drop(tx);

    let mut lines = 0usize;
    let mut last_line = String::new();
    // Every event goes through here: logged (serial), then shown to the watcher.
    let mut on_event = |event: Event| -> Control {
        match event {
            Event::Line(console, raw, at) => {
                let line = strip_escapes(&raw);
                if console == Console::Serial {
                    serial_log.write_line(&line);
                    lines += 1;
                }
                if !line.trim().is_empty() {
                    last_line = line.clone();
                }
                watcher.line(console, at, &line)
            }
            // Not logged yet (the rest of the line may follow); only what it says counts.
            Event::Partial(console, raw, at) => watcher.partial(console, at, &strip_escapes(&raw)),
            Event::Tick(at) => watcher.tick(at),
            Event::SerialClosed => Control::Continue,
        }
    };
    let mut watched = watch(&mut guest, &rx, spec.deadline, started, &mut on_event);
    if let Watched::Exited(_) = watched {
        // QEMU is gone, but the debug console file may hold lines the tail has not read yet:
        // let it do its last read and hand everything over before the watcher concludes.
        stop_tail.store(true, Ordering::Relaxed);
        let drain_until = Instant::now() + Duration::from_secs(2);
        while let Some(left) = drain_until.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(event) => {
                    if on_event(event) == Control::Stop {
                        watched = Watched::Stopped;
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    }
    let stopped_after = matches!(watched, Watched::Stopped).then(|| started.elapsed());
    guest.kill_and_reap();
    stop_tail.store(true, Ordering::Relaxed);
    // What the guest wrote up to its end still belongs in serial.log, unfinished last line
    // included (the reader hands it over at end of file); bounded, for a guest that flooded.
    let drain_until = Instant::now() + Duration::from_secs(2);
    while let Some(left) = drain_until.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(Event::Line(Console::Serial, raw, _)) => {
                let line = strip_escapes(&raw);
                serial_log.write_line(&line);
                lines += 1;
                if !line.trim().is_empty() {
                    last_line = line;
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    // Readers blocked on a full channel see it closed and end.
    drop(rx);
    let _ = serial_reader.join();
    let _ = stderr_reader.join();
    if let Some(t) = debug_tail {
        let _ = t.join();
    }
    serial_log.flush();
    let end = match watched {
        Watched::Stopped => BootEnd::Stopped,
        Watched::Exited(status) => {
            let bytes = stderr_tail.lock().map(|t| t.clone()).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes).trim().to_string();
            BootEnd::Exited {
                status: status.to_string(),
                stderr: if text.is_empty() {
                    "(stderr empty)".to_string()
                } else {
                    text
                },
            }
        }
        Watched::Deadline => BootEnd::Deadline {
            after: spec.deadline,
            last_line,
        },
    };
    BootOutcome {
        end,
        stopped_after,
        elapsed: started.elapsed(),
        serial_lines: lines,
    }
}

enum Watched {
    Stopped,
    Exited(ExitStatus),
    Deadline,
}

fn watch(
    guest: &mut Guest,
    rx: &Receiver<Event>,
    deadline: Duration,
    started: Instant,
    on_event: &mut dyn FnMut(Event) -> Control,
) -> Watched {
    let mut serial_open = true;
    let mut exited_at: Option<(ExitStatus, Instant)> = None;
    loop {
        if let Some((status, at)) = exited_at {
            // Give the readers a moment to hand over what QEMU wrote just before it exited.
            if !serial_open || at.elapsed() > Duration::from_secs(2) {
                return Watched::Exited(status);
            }
        }
        let Some(left) = deadline.checked_sub(started.elapsed()) else {
            return Watched::Deadline;
        };
        match rx.recv_timeout(left.min(Duration::from_millis(50))) {
            Ok(Event::SerialClosed) => serial_open = false,
            Ok(event) => {
                if on_event(event) == Control::Stop {
                    return Watched::Stopped;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => serial_open = false,
        }
        if on_event(Event::Tick(started.elapsed())) == Control::Stop {
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

/// Splits a byte stream into lines and sends them; long lines are cut at `MAX_LINE`.
fn spawn_line_reader(
    mut source: impl Read + Send + 'static,
    console: Console,
    started: Instant,
    tx: SyncSender<Event>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = match source.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            pending.extend_from_slice(&buf[..n]);
            let at = started.elapsed();
            if send_lines(&mut pending, console, at, &tx).is_err() {
                return;
            }
            if !pending.is_empty() {
                let partial = String::from_utf8_lossy(&pending).into_owned();
                if tx.send(Event::Partial(console, partial, at)).is_err() {
                    return;
                }
            }
        }
        if !pending.is_empty() {
            let _ = tx.send(Event::Line(
                console,
                String::from_utf8_lossy(&pending).into_owned(),
                started.elapsed(),
            ));
        }
        if console == Console::Serial {
            let _ = tx.send(Event::SerialClosed);
        }
    })
}

fn send_lines(
    pending: &mut Vec<u8>,
    console: Console,
    at: Duration,
    tx: &SyncSender<Event>,
) -> Result<(), ()> {
    loop {
        let cut = match pending.iter().position(|b| *b == b'\n') {
            Some(i) => i + 1,
            None if pending.len() >= MAX_LINE => MAX_LINE,
            None => return Ok(()),
        };
        let line: Vec<u8> = pending.drain(..cut).collect();
        let text = String::from_utf8_lossy(&line)
            .trim_end_matches(['\n', '\r'])
            .to_string();
        tx.send(Event::Line(console, text, at)).map_err(|_| ())?;
    }
}

fn spawn_stderr_reader(
    mut source: impl Read + Send + 'static,
    log: File,
    tail: Arc<Mutex<Vec<u8>>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut log = LimitedLog::new(log);
        let mut buf = [0u8; 8192];
        loop {
            let n = match source.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            log.write_bytes(&buf[..n]);
            if let Ok(mut t) = tail.lock() {
                t.extend_from_slice(&buf[..n]);
                let excess = t.len().saturating_sub(STDERR_TAIL);
                t.drain(..excess);
            }
        }
        log.flush();
    })
}

/// Follows a file QEMU writes (the debug console) from its first byte until told to stop,
/// then reads what is left.
fn spawn_file_tail(
    path: std::path::PathBuf,
    started: Instant,
    tx: SyncSender<Event>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut offset = 0u64;
        let mut pending = Vec::new();
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            if let Ok(mut f) = File::open(&path) {
                if f.seek(SeekFrom::Start(offset)).is_ok() {
                    let mut chunk = Vec::new();
                    if let Ok(n) = f
                        .take(MAX_LOG.saturating_sub(offset))
                        .read_to_end(&mut chunk)
                    {
                        offset += n as u64;
                        pending.extend_from_slice(&chunk);
                        let at = started.elapsed();
                        if send_lines(&mut pending, Console::Debug, at, &tx).is_err() {
                            return;
                        }
                    }
                }
            }
            if stopping {
                if !pending.is_empty() {
                    let text = String::from_utf8_lossy(&pending).into_owned();
                    let _ = tx.send(Event::Line(Console::Debug, text, started.elapsed()));
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
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

/// A log file that stops growing at `MAX_LOG` and says so.
struct LimitedLog {
    out: BufWriter<File>,
    written: u64,
    truncated: bool,
}

impl LimitedLog {
    fn new(file: File) -> LimitedLog {
        LimitedLog {
            out: BufWriter::new(file),
            written: 0,
            truncated: false,
        }
    }

    fn write_line(&mut self, line: &str) {
        self.write_bytes(line.as_bytes());
        self.write_bytes(b"\n");
    }

    fn write_bytes(&mut self, bytes: &[u8]) {
        if self.truncated {
            return;
        }
        if self.written + bytes.len() as u64 > MAX_LOG {
            let _ = self
                .out
                .write_all(b"\n[bootmatrix: log truncated at 16 MiB]\n");
            self.truncated = true;
            return;
        }
        if self.out.write_all(bytes).is_ok() {
            self.written += bytes.len() as u64;
        }
    }

    fn flush(&mut self) {
        let _ = self.out.flush();
    }
}

/// Whether a process with this pid still exists (used by tests to prove cleanup).
pub fn process_exists(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}
