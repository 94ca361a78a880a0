//! The consoles of one boot, read from their first byte: the serial console (QEMU's stdout),
//! the firmware debug console (a file QEMU writes, followed as it grows) and QEMU's stderr.
//!
//! Each has its own reader thread. Lines come out of [`Consoles::read`] in the order they were
//! read, cleaned of escape codes, and every serial line goes to `serial.log` as it comes out,
//! whether a watcher still looks at it or not; stderr goes to `stderr.log`. Nothing here
//! decides anything: [`super::boot`] hands what comes out to the watcher.

use std::fs::File;
use std::io::{BufWriter, Read as _, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::guest_errors::{is_guest_error, GuestErrors};
use super::{strip_escapes, Console};

/// A console line longer than this is cut into pieces (a guest may print without newlines).
const MAX_LINE: usize = 64 * 1024;
/// Logs stop growing here; a flooding guest cannot fill the disk.
const MAX_LOG: u64 = 16 * 1024 * 1024;
/// How much of QEMU's stderr is kept for error messages.
const STDERR_TAIL: usize = 4 * 1024;
/// Console lines in flight between the readers and the watcher.
const CHANNEL_LINES: usize = 1024;
/// How often the debug console file is read.
const TAIL_EVERY: Duration = Duration::from_millis(50);
/// How long the last reads may take once QEMU is gone: what it wrote up to its end is still
/// read (bounded, for a guest that flooded).
pub(super) const LAST_READS: Duration = Duration::from_secs(2);

/// What a watcher is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Event {
    /// A complete line (escape codes stripped), `at` after QEMU started.
    Line {
        console: Console,
        at: Duration,
        text: String,
    },
    /// The unfinished line the console has been showing since its last read.
    Partial {
        console: Console,
        at: Duration,
        text: String,
    },
    /// Time passes (made by the watch loop, never by a reader).
    Tick(Duration),
}

/// One read of the consoles.
#[derive(Debug)]
pub(super) enum Read {
    /// A line or an unfinished line.
    Shown(Event),
    /// The serial console ended: QEMU's stdout is closed.
    SerialClosed,
    /// Nothing within the wait.
    Quiet,
    /// Every reader has ended: nothing more will come.
    Ended,
}

/// What the reader threads send, as read.
enum Raw {
    /// A line and when it was read (from QEMU start).
    Line(Console, String, Duration),
    /// The unfinished line the console has been showing since its last read.
    Partial(Console, String, Duration),
    SerialClosed,
}

/// The log files of one boot, made before QEMU starts.
pub(super) struct Logs {
    serial: File,
    stderr: File,
    debug: Option<PathBuf>,
}

impl Logs {
    /// Creates `serial.log` and `stderr.log` in `dir`, and empties the debug console file QEMU
    /// will write (`debug.log`), where there is one.
    pub(super) fn create(dir: &Path, debug: Option<&Path>) -> Result<Logs, String> {
        let serial = File::create(dir.join("serial.log"))
            .map_err(|e| format!("cannot create serial.log: {e}"))?;
        let stderr = File::create(dir.join("stderr.log"))
            .map_err(|e| format!("cannot create stderr.log: {e}"))?;
        if let Some(path) = debug {
            // Truncate now: the tail reads from byte 0, and a previous boot's lines must not
            // count.
            File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        }
        Ok(Logs {
            serial,
            stderr,
            debug: debug.map(Path::to_path_buf),
        })
    }
}

/// What the consoles showed in all, once they are closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Totals {
    pub serial_lines: usize,
    /// The last non-empty console line.
    pub last_line: String,
    /// The end of QEMU's stderr (its guest-error lines left out), trimmed.
    pub stderr: String,
    /// QEMU's guest-error lines, summarized.
    pub guest_errors: GuestErrors,
}

/// The reader threads of one running QEMU and what they have sent.
pub(super) struct Consoles {
    rx: Receiver<Raw>,
    readers: Vec<JoinHandle<()>>,
    /// Tells the debug console's tail to do its last read and end.
    stop_tail: Arc<AtomicBool>,
    stderr_tail: Arc<Mutex<Vec<u8>>>,
    guest_errors: Arc<Mutex<GuestErrors>>,
    serial_log: LimitedLog,
    serial_lines: usize,
    last_line: String,
}

impl Consoles {
    /// Starts reading `child`'s stdout and stderr (both piped) and the debug console file.
    pub(super) fn start(logs: Logs, child: &mut Child, started: Instant) -> Consoles {
        // Bounded: a flooding guest blocks its reader instead of filling memory.
        let (tx, rx) = mpsc::sync_channel(CHANNEL_LINES);
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let stderr_tail = Arc::new(Mutex::new(Vec::new()));
        let guest_errors = Arc::new(Mutex::new(GuestErrors::default()));
        let stop_tail = Arc::new(AtomicBool::new(false));
        let mut readers = vec![
            spawn_line_reader(stdout, Console::Serial, started, tx.clone()),
            spawn_stderr_reader(
                stderr,
                logs.stderr,
                stderr_tail.clone(),
                guest_errors.clone(),
                started,
            ),
        ];
        if let Some(path) = logs.debug {
            readers.push(spawn_file_tail(path, started, tx, stop_tail.clone()));
        }
        Consoles {
            rx,
            readers,
            stop_tail,
            stderr_tail,
            guest_errors,
            serial_log: LimitedLog::new(logs.serial),
            serial_lines: 0,
            last_line: String::new(),
        }
    }

    /// The next thing the consoles show, waiting at most `wait`.
    pub(super) fn read(&mut self, wait: Duration) -> Read {
        match self.rx.recv_timeout(wait) {
            Ok(raw) => self.take(raw),
            Err(RecvTimeoutError::Timeout) => Read::Quiet,
            Err(RecvTimeoutError::Disconnected) => Read::Ended,
        }
    }

    /// Cleans what a reader sent; a complete serial line is logged and counted here, and only
    /// here.
    fn take(&mut self, raw: Raw) -> Read {
        match raw {
            Raw::Line(console, raw, at) => {
                let text = strip_escapes(&raw);
                if console == Console::Serial {
                    self.serial_log.write_line(&text);
                    self.serial_lines += 1;
                }
                if !text.trim().is_empty() {
                    self.last_line.clone_from(&text);
                }
                Read::Shown(Event::Line { console, at, text })
            }
            // Not logged yet (the rest of the line may follow); only what it says counts.
            Raw::Partial(console, raw, at) => Read::Shown(Event::Partial {
                console,
                at,
                text: strip_escapes(&raw),
            }),
            Raw::SerialClosed => Read::SerialClosed,
        }
    }

    /// Tells the debug console's tail to read what is left of the file and end.
    pub(super) fn stop_debug_tail(&self) {
        self.stop_tail.store(true, Ordering::Relaxed);
    }

    /// Once QEMU is gone: reads what its consoles still hold (into the log, shown to no one),
    /// for [`LAST_READS`] at most, then ends the readers.
    pub(super) fn finish(mut self) -> Totals {
        self.stop_debug_tail();
        let until = Instant::now() + LAST_READS;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.read(left) {
                Read::Shown(_) | Read::SerialClosed => {}
                Read::Quiet | Read::Ended => break,
            }
        }
        // Readers blocked on a full channel see it closed and end.
        drop(self.rx);
        for reader in self.readers {
            let _ = reader.join();
        }
        self.serial_log.flush();
        let stderr = self
            .stderr_tail
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default();
        Totals {
            serial_lines: self.serial_lines,
            last_line: self.last_line,
            stderr: String::from_utf8_lossy(&stderr).trim().to_string(),
            guest_errors: self
                .guest_errors
                .lock()
                .map(|g| g.clone())
                .unwrap_or_default(),
        }
    }
}

/// Splits a byte stream into lines and sends them; long lines are cut at `MAX_LINE`.
fn spawn_line_reader(
    mut source: impl std::io::Read + Send + 'static,
    console: Console,
    started: Instant,
    tx: SyncSender<Raw>,
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
                if tx.send(Raw::Partial(console, partial, at)).is_err() {
                    return;
                }
            }
        }
        if !pending.is_empty() {
            let _ = tx.send(Raw::Line(
                console,
                String::from_utf8_lossy(&pending).into_owned(),
                started.elapsed(),
            ));
        }
        if console == Console::Serial {
            let _ = tx.send(Raw::SerialClosed);
        }
    })
}

fn send_lines(
    pending: &mut Vec<u8>,
    console: Console,
    at: Duration,
    tx: &SyncSender<Raw>,
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
        tx.send(Raw::Line(console, text, at)).map_err(|_| ())?;
    }
}

fn spawn_stderr_reader(
    mut source: impl std::io::Read + Send + 'static,
    log: File,
    tail: Arc<Mutex<Vec<u8>>>,
    guest_errors: Arc<Mutex<GuestErrors>>,
    started: Instant,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut log = LimitedLog::new(log);
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = [0u8; 8192];
        // QEMU's own messages go to the log and the tail as they are; its guest-error lines
        // only into the summary, written at the end.
        let take = |line: &[u8], log: &mut LimitedLog| {
            let text = String::from_utf8_lossy(line);
            if is_guest_error(&text) {
                if let Ok(mut g) = guest_errors.lock() {
                    g.add(&text, started.elapsed());
                }
                return;
            }
            log.write_bytes(line);
            if let Ok(mut t) = tail.lock() {
                t.extend_from_slice(line);
                let excess = t.len().saturating_sub(STDERR_TAIL);
                t.drain(..excess);
            }
        };
        loop {
            let n = match source.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            pending.extend_from_slice(&buf[..n]);
            loop {
                let cut = match pending.iter().position(|b| *b == b'\n') {
                    Some(i) => i + 1,
                    None if pending.len() >= MAX_LINE => MAX_LINE,
                    None => break,
                };
                let line: Vec<u8> = pending.drain(..cut).collect();
                take(&line, &mut log);
            }
        }
        if !pending.is_empty() {
            take(&pending, &mut log);
        }
        if let Ok(g) = guest_errors.lock() {
            log.write_bytes(g.text().as_bytes());
        }
        log.flush();
    })
}

/// Follows a file QEMU writes (the debug console) from its first byte until told to stop,
/// then reads what is left.
fn spawn_file_tail(
    path: PathBuf,
    started: Instant,
    tx: SyncSender<Raw>,
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
                    let _ = tx.send(Raw::Line(Console::Debug, text, started.elapsed()));
                }
                return;
            }
            std::thread::sleep(TAIL_EVERY);
        }
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(rx: &Receiver<Raw>) -> Vec<String> {
        rx.try_iter()
            .map(|raw| match raw {
                Raw::Line(_, text, _) => format!("line {text}"),
                Raw::Partial(_, text, _) => format!("partial {text}"),
                Raw::SerialClosed => "closed".into(),
            })
            .collect()
    }

    #[test]
    fn lines_are_cut_at_newlines_and_at_the_longest_line() {
        let (tx, rx) = mpsc::sync_channel(16);
        let mut pending = b"one\r\ntwo\nthr".to_vec();
        send_lines(&mut pending, Console::Serial, Duration::ZERO, &tx).unwrap();
        assert_eq!(lines(&rx), ["line one", "line two"]);
        assert_eq!(pending, b"thr");
        let mut long = vec![b'x'; MAX_LINE + 3];
        send_lines(&mut long, Console::Serial, Duration::ZERO, &tx).unwrap();
        assert_eq!(lines(&rx), [format!("line {}", "x".repeat(MAX_LINE))]);
        assert_eq!(long, b"xxx");
    }

    #[test]
    fn a_reader_shows_the_unfinished_line_and_hands_it_over_at_the_end() {
        let (tx, rx) = mpsc::sync_channel(16);
        let source: &'static [u8] = b"first\nshim box";
        spawn_line_reader(source, Console::Serial, Instant::now(), tx)
            .join()
            .unwrap();
        assert_eq!(
            lines(&rx),
            ["line first", "partial shim box", "line shim box", "closed"]
        );
    }

    #[test]
    fn the_debug_console_never_says_the_serial_one_closed() {
        let (tx, rx) = mpsc::sync_channel(16);
        let source: &'static [u8] = b"debug\n";
        spawn_line_reader(source, Console::Debug, Instant::now(), tx)
            .join()
            .unwrap();
        assert_eq!(lines(&rx), ["line debug"]);
    }

    #[test]
    fn guest_errors_are_summarized_and_kept_out_of_the_log_and_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stderr.log");
        let tail = Arc::new(Mutex::new(Vec::new()));
        let guest = Arc::new(Mutex::new(GuestErrors::default()));
        let mut stderr = String::from("qemu-system-x86_64: warning: one\n");
        for _ in 0..50_000 {
            stderr.push_str(
                "Invalid read at addr 0xFED40000, size 1, region '(null)', reason: rejected\n",
            );
        }
        stderr.push_str("qemu-system-x86_64: terminating on signal 15");
        let source = std::io::Cursor::new(stderr.into_bytes());
        let log = File::create(&path).unwrap();
        spawn_stderr_reader(source, log, tail.clone(), guest.clone(), Instant::now())
            .join()
            .unwrap();
        let g = guest.lock().unwrap().clone();
        assert_eq!(g.total, 50_000);
        assert_eq!(g.distinct.len(), 1);
        let tail = String::from_utf8(tail.lock().unwrap().clone()).unwrap();
        assert_eq!(
            tail,
            "qemu-system-x86_64: warning: one\nqemu-system-x86_64: terminating on signal 15"
        );
        let log = std::fs::read_to_string(&path).unwrap();
        assert!(log.len() < 1024, "{log}");
        assert!(
            log.starts_with("qemu-system-x86_64: warning: one\n"),
            "{log}"
        );
        assert!(log.contains("[50000 time(s),"), "{log}");
    }

    #[test]
    fn logs_stop_at_their_limit_and_say_so_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serial.log");
        let mut log = LimitedLog::new(File::create(&path).unwrap());
        let chunk = vec![b'a'; 1024 * 1024];
        for _ in 0..20 {
            log.write_bytes(&chunk);
        }
        log.write_line("never written");
        log.flush();
        let written = std::fs::read(&path).unwrap();
        let note = b"\n[bootmatrix: log truncated at 16 MiB]\n";
        assert_eq!(written.len() as u64, MAX_LOG + note.len() as u64);
        assert!(written.ends_with(note));
    }
}
