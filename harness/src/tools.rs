//! External tools, found at run time and run bounded. A missing tool is one clear message naming
//! the package. Also how an argv is shown to people ([`shell_line`]).

use std::fmt;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wait_timeout::ChildExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tool {
    pub name: &'static str,
    /// Where to get it, for the error message.
    pub package: &'static str,
}

pub const OPENSSL: Tool = Tool {
    name: "openssl",
    package: "Debian package `openssl`",
};
pub const SBSIGN: Tool = Tool {
    name: "sbsign",
    package: "Debian package `sbsigntool`",
};
pub const VIRT_FW_VARS: Tool = Tool {
    name: "virt-fw-vars",
    package: "PyPI package `virt-firmware` (pip install virt-firmware), or Debian `python3-virt-firmware` from bookworm-backports",
};

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// Why a tool did not do its job.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("`{}` not found in PATH: install the {}", .0.name, .0.package)]
    Missing(Tool),
    #[error(transparent)]
    Run(#[from] RunError),
}

impl Tool {
    /// The tool's path in `PATH`, or an error naming the package to install.
    pub fn find(&self) -> Result<PathBuf, ToolError> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|dir| dir.join(self.name))
            .find(|p| is_executable(p))
            .ok_or(ToolError::Missing(*self))
    }

    /// Runs the tool to completion (bounded to two minutes); the error carries its stderr.
    pub fn run(&self, args: &[&std::ffi::OsStr]) -> Result<(), ToolError> {
        let program = self.find()?;
        let mut cmd = Command::new(&program);
        cmd.args(args);
        let what = std::iter::once(self.name.into())
            .chain(args.iter().map(|a| a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ");
        run_bounded(&mut cmd, Duration::from_secs(120), &what)?;
        Ok(())
    }
}

/// Why a bounded process gave no output to use.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot run `{what}`: {source}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// It was killed at its time limit.
    #[error("`{what}` did not finish within {limit:?}")]
    Timeout {
        what: String,
        limit: Duration,
        /// What it had written to stderr by then.
        stderr: String,
    },
    /// It exited unsuccessfully ([`run_bounded`] only).
    #[error("`{what}` failed ({status}){}", said(.text))]
    Failed {
        what: String,
        status: ExitStatus,
        /// Its stderr (or stdout, when stderr is empty), trimmed.
        text: String,
    },
}

/// `: text`, or nothing when the process said nothing.
fn said(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// Runs `cmd` (stdin closed) to completion within `limit` and returns its stdout. The error
/// names `what` and carries its stderr (or stdout, when stderr is empty).
pub fn run_bounded(cmd: &mut Command, limit: Duration, what: &str) -> Result<String, RunError> {
    let out = Bounded::new(cmd, what, limit).run()?;
    match out.ended {
        Ended::Exited(status) if status.success() => Ok(out.stdout),
        Ended::Exited(status) | Ended::Stopped(status) => {
            let text = if out.stderr.trim().is_empty() {
                out.stdout
            } else {
                out.stderr
            };
            Err(RunError::Failed {
                what: what.to_string(),
                status,
                text: text.trim().to_string(),
            })
        }
    }
}

/// An external process that is given a time limit and killed when it passes, with what it
/// reads on stdin, and optionally a test of its stderr that says it has shown enough (QEMU
/// does not exit when a guest fails, it waits). Every process bootmatrix starts goes through
/// here, except the guests themselves (`boot`).
///
/// It runs in its own process group, and whatever ends it early (the time limit, enough
/// stderr, a signal to bootmatrix through [`kill_groups`]) kills the whole group: a script
/// that hangs cannot leave its children behind, orphaned. Should bootmatrix itself be killed,
/// the process gets SIGKILL too (`PR_SET_PDEATHSIG`).
pub struct Bounded<'a> {
    cmd: &'a mut Command,
    what: String,
    limit: Duration,
    stdin: Option<Vec<u8>>,
    enough: Option<fn(&str) -> bool>,
}

/// How a bounded process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Exited(ExitStatus),
    /// Its stderr showed enough ([`Bounded::stop_when_stderr`]), so it was killed.
    Stopped(ExitStatus),
}

/// What a bounded process did and wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub ended: Ended,
    pub stdout: String,
    pub stderr: String,
}

/// The process groups of the bounded processes running now, for [`kill_groups`].
static GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Kills the process group of every bounded process still running and reaps their leaders:
/// for a signal that ends bootmatrix (the processes lead their own groups, so a Ctrl-C at
/// the terminal does not reach them).
pub fn kill_groups() {
    let groups = GROUPS.lock().map(|g| g.clone()).unwrap_or_default();
    for pgid in &groups {
        // SAFETY: killpg has no memory-safety preconditions.
        unsafe {
            libc::killpg(*pgid, libc::SIGKILL);
        }
    }
    for pid in groups {
        // SAFETY: waitpid with a null status pointer is allowed. A leader its own thread has
        // reaped already gives ECHILD, which is fine.
        unsafe {
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
}

/// A bounded process's group, registered for [`kill_groups`] while it runs. The group has the
/// leader's pid, so it is killed only while the leader is not reaped (its pid not reusable).
struct Group(i32);

impl Group {
    fn kill(&self) {
        // SAFETY: killpg has no memory-safety preconditions.
        unsafe {
            libc::killpg(self.0, libc::SIGKILL);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Ok(mut groups) = GROUPS.lock() {
            groups.retain(|g| *g != self.0);
        }
    }
}

/// How often a process whose stderr is watched is checked.
const POLL: Duration = Duration::from_millis(10);
/// How long its output may still take to arrive once a process is gone (a grandchild that
/// kept a pipe open must not hang the caller).
const LAST_OUTPUT: Duration = Duration::from_secs(1);

impl<'a> Bounded<'a> {
    /// `what` names the process in error messages.
    pub fn new(cmd: &'a mut Command, what: &str, limit: Duration) -> Bounded<'a> {
        Bounded {
            cmd,
            what: what.to_string(),
            limit,
            stdin: None,
            enough: None,
        }
    }

    /// Writes `bytes` to its stdin, then closes it (stdin is empty otherwise).
    pub fn stdin(mut self, bytes: &[u8]) -> Bounded<'a> {
        self.stdin = Some(bytes.to_vec());
        self
    }

    /// Kills it as soon as its stderr so far passes `enough`.
    pub fn stop_when_stderr(mut self, enough: fn(&str) -> bool) -> Bounded<'a> {
        self.enough = Some(enough);
        self
    }

    /// Runs it to its end, or kills it at the time limit (an error, with its stderr so far).
    pub fn run(self) -> Result<Output, RunError> {
        let Bounded {
            cmd,
            what,
            limit,
            stdin,
            enough,
        } = self;
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
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
        // Registered before a signal can look: kill_groups waits for the lock.
        let mut groups = GROUPS.lock().unwrap_or_else(|e| e.into_inner());
        let mut child = cmd.spawn().map_err(|source| RunError::Spawn {
            what: what.clone(),
            source,
        })?;
        let group = Group(child.id() as i32);
        groups.push(group.0);
        drop(groups);
        if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // From a thread: a child that does not read must not block the wait. Dropping the
            // pipe afterwards closes its stdin.
            std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            });
        }
        // Read while waiting: a chatty child must not block on a full pipe.
        let stdout = read_all(child.stdout.take().expect("stdout is piped"), None);
        let saw_enough = Arc::new(AtomicBool::new(false));
        let stderr = read_all(
            child.stderr.take().expect("stderr is piped"),
            enough.map(|test| Enough {
                test,
                seen: saw_enough.clone(),
            }),
        );
        let started = Instant::now();
        let ended = loop {
            let left = limit.saturating_sub(started.elapsed());
            let wait = if enough.is_some() {
                left.min(POLL)
            } else {
                left
            };
            match child.wait_timeout(wait) {
                Ok(Some(status)) => break Ended::Exited(status),
                Ok(None) if saw_enough.load(Ordering::Relaxed) => {
                    group.kill();
                    // Killed by SIGKILL, should its status be lost.
                    let status = child
                        .wait()
                        .unwrap_or_else(|_| ExitStatus::from_raw(libc::SIGKILL));
                    break Ended::Stopped(status);
                }
                Ok(None) if started.elapsed() < limit => {}
                Ok(None) | Err(_) => {
                    // The whole group: a grandchild would hold the pipes open, and outlive us.
                    group.kill();
                    let _ = child.wait();
                    return Err(RunError::Timeout {
                        what,
                        limit,
                        stderr: stderr.take(),
                    });
                }
            }
        };
        Ok(Output {
            ended,
            stdout: stdout.take(),
            stderr: stderr.take(),
        })
    }
}

/// A pipe read to its end by its own thread.
struct ReadAll {
    read: Arc<Mutex<Vec<u8>>>,
    closed: Receiver<()>,
}

impl ReadAll {
    /// What was read, once the pipe closed or [`LAST_OUTPUT`] passed.
    fn take(&self) -> String {
        let _ = self.closed.recv_timeout(LAST_OUTPUT);
        let bytes = self.read.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// A test of what a pipe has shown so far, and the flag it sets once the test passes.
struct Enough {
    test: fn(&str) -> bool,
    seen: Arc<AtomicBool>,
}

/// Reads `pipe` to its end, checking what it has read against `enough`.
fn read_all(mut pipe: impl Read + Send + 'static, enough: Option<Enough>) -> ReadAll {
    let read = Arc::new(Mutex::new(Vec::new()));
    let (done, closed) = mpsc::channel();
    let buf = read.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            let Ok(mut buf) = buf.lock() else {
                break;
            };
            buf.extend_from_slice(&chunk[..n]);
            if let Some(enough) = &enough {
                if (enough.test)(&String::from_utf8_lossy(&buf)) {
                    enough.seen.store(true, Ordering::Relaxed);
                }
            }
        }
        let _ = done.send(());
    });
    ReadAll { read, closed }
}

/// The argv as one line a shell would accept.
pub fn shell_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_=,./:@+%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The most bootmatrix reads of a descriptor file (1 MiB; real ones are under 2 KiB).
pub const DESCRIPTOR_LIMIT: u64 = 1 << 20;
/// The most it reads of a scenario file (4 MiB; the built-in ones are under 64 KiB).
pub const SCENARIO_LIMIT: u64 = 4 << 20;
/// The most it reads (hashes, copies) of a firmware executable or varstore template (256 MiB;
/// flash images are 2-64 MiB).
pub const FIRMWARE_LIMIT: u64 = 256 << 20;
/// The most it reads of a kernel or shim (512 MiB; a distribution kernel is under 16 MiB).
pub const KERNEL_LIMIT: u64 = 512 << 20;
/// The most it reads of a report it wrote (`report.json`, `verdict.json`: 256 MiB; the whole
/// Debian release matrix's report of 1330 cells is about 5 MiB).
pub const REPORT_LIMIT: u64 = 256 << 20;

/// Why an input file was not read. Shown after the file's name (or the option's).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("empty path")]
    EmptyPath,
    #[error("not a regular file but {0}")]
    NotRegular(&'static str),
    #[error("{size} bytes, over the {} limit", size_words(*.limit))]
    TooLarge { size: u64, limit: u64 },
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
}

/// `1 MiB`, or `1000 bytes` for a limit that is not whole MiB.
fn size_words(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b => format!("{b}-byte"),
    }
}

/// What kind of file something that is not a regular file is, for messages.
fn file_kind(kind: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    match kind {
        k if k.is_dir() => "a folder",
        k if k.is_fifo() => "a FIFO",
        k if k.is_char_device() => "a character device",
        k if k.is_block_device() => "a block device",
        k if k.is_socket() => "a socket",
        _ => "a special file",
    }
}

/// Opens `path` for reading if it is a regular file (or a link to one) of at most `limit`
/// bytes; returns it with its size. Checked before opening, and opened without blocking, so a
/// FIFO or a device (`/dev/zero`) is refused, never read or waited on.
pub fn open_input(path: &Path, limit: u64) -> Result<(std::fs::File, u64), InputError> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.as_os_str().is_empty() {
        return Err(InputError::EmptyPath);
    }
    let checked = |meta: std::fs::Metadata| {
        if !meta.is_file() {
            Err(InputError::NotRegular(file_kind(meta.file_type())))
        } else if meta.len() > limit {
            Err(InputError::TooLarge {
                size: meta.len(),
                limit,
            })
        } else {
            Ok(meta.len())
        }
    };
    checked(std::fs::metadata(path)?)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    // Again on what was opened: the path may have been replaced in between.
    let size = checked(file.metadata()?)?;
    Ok((file, size))
}

/// Reads a regular file of at most `limit` bytes (see [`open_input`]).
pub fn read_input(path: &Path, limit: u64) -> Result<Vec<u8>, InputError> {
    let (file, size) = open_input(path, limit)?;
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    // One byte more than the limit tells a file that grew while being read.
    file.take(limit + 1).read_to_end(&mut bytes)?;
    match u64::try_from(bytes.len()).unwrap_or(u64::MAX) {
        read if read > limit => Err(InputError::TooLarge { size: read, limit }),
        _ => Ok(bytes),
    }
}

/// Text from a file, for people: control characters (escape codes, newlines) shown escaped
/// (`\x1b`, `\n`), so a file cannot forge lines or move the cursor; text past `max` characters
/// cut, saying so: `… (52428800 bytes, cut)`.
pub fn shown(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push_str(&format!("… ({} bytes, cut)", text.len()));
            break;
        }
        push_escaped(&mut out, c);
    }
    out
}

/// `c`, or its escape when it is a control character or one that reorders or breaks lines.
fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
        c if c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
        {
            out.push_str(&format!("\\u{{{:x}}}", c as u32))
        }
        c => out.push(c),
    }
}

/// A file name or path for people, telling apart names that differ only in bytes that are not
/// UTF-8: those bytes are shown as `\xff`, a backslash as `\\`, control characters escaped
/// as in [`shown`]. Two different names never look the same.
pub fn shown_name(name: &std::ffi::OsStr) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for chunk in name.as_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c => push_escaped(&mut out, c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_it() {
        let argv = vec![
            "qemu".to_string(),
            "-drive".to_string(),
            "if=none,file=fat:/tmp/a b".to_string(),
            "it's".to_string(),
        ];
        assert_eq!(
            shell_line(&argv),
            r"qemu -drive 'if=none,file=fat:/tmp/a b' 'it'\''s'"
        );
    }

    #[test]
    fn missing_tool_names_its_package() {
        let tool = Tool {
            name: "bootmatrix-no-such-tool",
            package: "Debian package `nothing`",
        };
        let e = tool.find().unwrap_err();
        assert!(matches!(e, ToolError::Missing(t) if t == tool), "{e}");
        assert_eq!(
            e.to_string(),
            "`bootmatrix-no-such-tool` not found in PATH: install the Debian package `nothing`"
        );
        let e = tool.run(&[]).unwrap_err();
        assert!(matches!(e, ToolError::Missing(_)), "{e}");
    }

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    const LIMIT: Duration = Duration::from_secs(20);

    #[test]
    fn success_gives_stdout() {
        let out = run_bounded(&mut sh("echo out; echo err >&2"), LIMIT, "both").unwrap();
        assert_eq!(out, "out\n");
    }

    #[test]
    fn failure_carries_stderr_or_else_stdout() {
        let e = run_bounded(&mut sh("echo out; echo 'it broke' >&2; exit 3"), LIMIT, "x");
        let e = e.unwrap_err();
        assert!(
            matches!(e, RunError::Failed { ref text, .. } if text == "it broke"),
            "{e}"
        );
        assert_eq!(e.to_string(), "`x` failed (exit status: 3): it broke");
        let e = run_bounded(&mut sh("echo 'only out'; exit 1"), LIMIT, "y").unwrap_err();
        assert_eq!(e.to_string(), "`y` failed (exit status: 1): only out");
        // Nothing said: no dangling colon.
        let e = run_bounded(&mut sh("exit 1"), LIMIT, "z").unwrap_err();
        assert_eq!(e.to_string(), "`z` failed (exit status: 1)");
    }

    #[test]
    fn a_missing_program_cannot_run() {
        let mut cmd = Command::new("/nonexistent/bootmatrix-tool");
        let e = run_bounded(&mut cmd, LIMIT, "tool").unwrap_err();
        assert!(matches!(e, RunError::Spawn { .. }), "{e}");
        assert!(e.to_string().starts_with("cannot run `tool`: "), "{e}");
    }

    #[test]
    fn the_time_limit_kills_and_keeps_stderr() {
        let started = Instant::now();
        let e = run_bounded(
            &mut sh("echo waiting >&2; exec sleep 30"),
            Duration::from_millis(300),
            "slow",
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "{e}");
        assert_eq!(e.to_string(), "`slow` did not finish within 300ms");
        match e {
            RunError::Timeout { stderr, .. } => assert_eq!(stderr, "waiting\n"),
            other => panic!("{other}"),
        }
    }

    /// Running, not a zombie (what a killed orphan is until something reaps it).
    fn running(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
    }

    #[test]
    fn the_time_limit_kills_the_whole_group() {
        // A script that starts a sleeping child of its own, says both pids, then hangs.
        let limit = Duration::from_millis(300);
        let started = Instant::now();
        let e = run_bounded(
            &mut sh("sleep 30 & echo $$ $! >&2; exec sleep 30"),
            limit,
            "script",
        )
        .unwrap_err();
        let took = started.elapsed();
        let RunError::Timeout { stderr, .. } = e else {
            panic!("{e}");
        };
        let pids: Vec<i32> = stderr
            .split_whitespace()
            .map(|p| p.parse().expect("the script said its pids"))
            .collect();
        let [script, grandchild] = pids[..] else {
            panic!("{stderr:?}");
        };
        // Its child is gone with it (not left to hold the pipes open until LAST_OUTPUT).
        let until = Instant::now() + Duration::from_millis(500);
        while running(grandchild) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        let orphaned = running(grandchild);
        if orphaned {
            // SAFETY: kill has no memory-safety preconditions. Cleanup after the failure.
            unsafe {
                libc::kill(grandchild, libc::SIGKILL);
            }
        }
        assert!(
            !orphaned,
            "pid {grandchild} outlived its group's time limit"
        );
        assert!(!running(script), "pid {script}");
        assert!(took < limit + Duration::from_millis(700), "{took:?}");
        // Nothing left for a signal to kill.
        assert!(!GROUPS.lock().unwrap().contains(&script));
    }

    #[test]
    fn stdin_is_given_then_closed() {
        let mut cat = Command::new("cat");
        let out = Bounded::new(&mut cat, "cat", LIMIT)
            .stdin(b"one\ntwo\n")
            .run()
            .unwrap();
        assert!(matches!(out.ended, Ended::Exited(s) if s.success()));
        assert_eq!(out.stdout, "one\ntwo\n");
        // Without stdin, it is empty rather than inherited.
        assert_eq!(
            run_bounded(&mut Command::new("cat"), LIMIT, "cat").unwrap(),
            ""
        );
    }

    #[test]
    fn stderr_that_shows_enough_stops_it_early() {
        let started = Instant::now();
        let out = Bounded::new(
            &mut sh("echo 'KVM internal error. Suberror: 1' >&2; exec sleep 30"),
            "guest",
            LIMIT,
        )
        .stop_when_stderr(|text| text.contains("KVM internal error"))
        .run()
        .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(matches!(out.ended, Ended::Stopped(_)), "{out:?}");
        assert!(out.stderr.contains("Suberror: 1"), "{out:?}");
        // A process that never says it exits as usual.
        let out = Bounded::new(&mut sh("echo fine >&2; exit 85"), "guest", LIMIT)
            .stop_when_stderr(|text| text.contains("KVM internal error"))
            .run()
            .unwrap();
        assert!(matches!(out.ended, Ended::Exited(s) if s.code() == Some(85)));
    }

    #[test]
    fn a_grandchild_holding_the_pipe_does_not_hang_the_caller() {
        let started = Instant::now();
        let out = run_bounded(&mut sh("sleep 5 & echo done"), LIMIT, "parent").unwrap();
        assert_eq!(out, "done\n");
        assert!(
            started.elapsed() < LAST_OUTPUT * 3,
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn shown_escapes_controls_and_cuts_long_text() {
        assert_eq!(
            shown("a\x1b[2Jb\nc\td\u{202e}", 200),
            r"a\x1b[2Jb\nc\td\u{202e}"
        );
        assert_eq!(shown("plain ünïcode", 200), "plain ünïcode");
        let long = "x".repeat(1000);
        assert_eq!(shown(&long, 3), "xxx… (1000 bytes, cut)");
        assert_eq!(shown("xxx", 3), "xxx");
    }

    #[test]
    fn shown_names_keep_names_that_differ_in_non_utf8_bytes_apart() {
        use std::os::unix::ffi::OsStrExt;
        let name = |b: &[u8]| shown_name(std::ffi::OsStr::from_bytes(b));
        assert_eq!(name(b"a\xff.json"), r"a\xff.json");
        assert_eq!(name(b"a\xfe.json"), r"a\xfe.json");
        // A literal backslash cannot pass for an escaped byte.
        assert_eq!(name(br"a\xff.json"), r"a\\xff.json");
        assert_eq!(name(b"a\nb"), r"a\nb");
    }

    #[test]
    fn inputs_are_regular_files_within_their_limit() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        std::fs::write(&small, b"12345").unwrap();
        assert_eq!(read_input(&small, 5).unwrap(), b"12345");
        let e = read_input(&small, 4).unwrap_err().to_string();
        assert_eq!(e, "5 bytes, over the 4-byte limit");
        assert_eq!(
            read_input(Path::new(""), 5).unwrap_err().to_string(),
            "empty path"
        );
        let zero = read_input(Path::new("/dev/zero"), DESCRIPTOR_LIMIT).unwrap_err();
        assert_eq!(
            zero.to_string(),
            "not a regular file but a character device"
        );
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo reads a NUL-terminated path and has no other preconditions.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let started = Instant::now();
        let e = open_input(&fifo, DESCRIPTOR_LIMIT).unwrap_err();
        assert_eq!(e.to_string(), "not a regular file but a FIFO");
        assert!(started.elapsed() < Duration::from_secs(1));
        let big = InputError::TooLarge {
            size: 52428800,
            limit: DESCRIPTOR_LIMIT,
        };
        assert_eq!(big.to_string(), "52428800 bytes, over the 1 MiB limit");
    }
}
