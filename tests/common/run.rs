//! `bootmatrix run` as a user runs it: the binary, a run folder of its own, the JSON report.

use std::process::Command;

use serde_json::Value;

pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub report: Value,
    pub dir: tempfile::TempDir,
}

impl Run {
    pub fn cells(&self) -> &Vec<Value> {
        self.report["cells"].as_array().expect("cells array")
    }

    /// The one sev-off cell whose id starts with `prefix` and ends with `suffix`.
    pub fn cell(&self, prefix: &str, suffix: &str) -> &Value {
        let matching: Vec<&Value> = self
            .cells()
            .iter()
            .filter(|c| {
                let id = c["id"].as_str().unwrap();
                id.starts_with(prefix) && id.ends_with(suffix) && id.contains("/sev-off/")
            })
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "cells matching {prefix}..{suffix}: {matching:#?}"
        );
        matching[0]
    }
}

/// Runs `bootmatrix run ARGS` into a temporary run folder and reads its JSON report.
pub fn bootmatrix(args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let report = dir.path().join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_bootmatrix"))
        .arg("run")
        .arg("--out")
        .arg(&out)
        .arg("--report-json")
        .arg(&report)
        .args(args)
        .output()
        .expect("bootmatrix runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let text = std::fs::read_to_string(&report)
        .unwrap_or_else(|e| panic!("no report ({e}); stdout:\n{stdout}\nstderr:\n{stderr}"));
    println!("{stdout}");
    Run {
        status: output.status.code().unwrap_or(-1),
        stdout,
        report: serde_json::from_str(&text).unwrap(),
        dir,
    }
}
