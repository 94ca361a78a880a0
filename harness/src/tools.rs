//! External tools, found at run time. A missing tool is one clear message naming the package.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

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

impl Tool {
    /// The tool's path in `PATH`, or a message naming the package to install.
    pub fn find(&self) -> Result<PathBuf, String> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|dir| dir.join(self.name))
            .find(|p| is_executable(p))
            .ok_or_else(|| {
                format!(
                    "`{}` not found in PATH: install the {}",
                    self.name, self.package
                )
            })
    }

    /// Runs the tool to completion (bounded to two minutes); the error carries its stderr.
    pub fn run(&self, args: &[&std::ffi::OsStr]) -> Result<(), String> {
        let program = self.find()?;
        let mut cmd = Command::new(&program);
        cmd.args(args);
        let what = std::iter::once(self.name.into())
            .chain(args.iter().map(|a| a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ");
        run_bounded(&mut cmd, Duration::from_secs(120), &what).map(|_| ())
    }
}

/// Runs `cmd` (stdin closed) to completion within `limit` and returns its stdout. The error
/// names `what` and carries its stderr (or stdout, when stderr is empty).
pub fn run_bounded(cmd: &mut Command, limit: Duration, what: &str) -> Result<String, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{what}`: {e}"))?;
    // Read while waiting: a chatty child must not block on a full pipe.
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let status = match child.wait_timeout(limit) {
        Ok(Some(status)) => status,
        Ok(None) | Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("`{what}` did not finish within {limit:?}"));
        }
    };
    let out = String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).into_owned();
    let err = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    if status.success() {
        return Ok(out);
    }
    let text = if err.trim().is_empty() { out } else { err };
    Err(format!("`{what}` failed ({status}): {}", text.trim()))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tool_names_its_package() {
        let tool = Tool {
            name: "bootmatrix-no-such-tool",
            package: "Debian package `nothing`",
        };
        let e = tool.find().unwrap_err();
        assert!(e.contains("bootmatrix-no-such-tool"), "{e}");
        assert!(e.contains("Debian package `nothing`"), "{e}");
    }
}
