//! `bootmatrix run` as a user runs it: the binary, a run folder of its own, the JSON report read
//! back as typed records.

use std::process::Command;

use bootmatrix::report::record::{CellRecord, KernelRecord, Report};

pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub report: Report,
    pub dir: tempfile::TempDir,
}

impl Run {
    pub fn cells(&self) -> &[CellRecord] {
        &self.report.cells
    }

    /// The cell with this id; fails naming the ids there are.
    pub fn by_id(&self, id: &str) -> &CellRecord {
        cell(&self.report, id)
    }

    /// The one sev-off cell whose id starts with `prefix` and ends with `suffix`.
    pub fn cell(&self, prefix: &str, suffix: &str) -> &CellRecord {
        let matching: Vec<&CellRecord> = self
            .cells()
            .iter()
            .filter(|c| {
                c.id.starts_with(prefix) && c.id.ends_with(suffix) && c.id.contains("/sev-off/")
            })
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "{} cells match {prefix}..{suffix}; the report has:\n  {}",
            matching.len(),
            ids(&self.report)
        );
        matching[0]
    }
}

/// The cell with this id in `report`; fails naming the ids there are.
pub fn cell<'a>(report: &'a Report, id: &str) -> &'a CellRecord {
    report
        .cell(id)
        .unwrap_or_else(|| panic!("no cell {id} in the report; it has:\n  {}", ids(report)))
}

/// The report's cell ids, one per line.
fn ids(report: &Report) -> String {
    let ids: Vec<&str> = report.cells.iter().map(|c| c.id.as_str()).collect();
    ids.join("\n  ")
}

/// What a kernel-boot cell saw of the kernel; fails when it saw none.
pub fn kernel(cell: &CellRecord) -> &KernelRecord {
    cell.observed
        .kernel
        .as_ref()
        .unwrap_or_else(|| panic!("no kernel seen: {cell}"))
}

/// The id of the deviation that excused the cell, if one did.
pub fn deviation_id(cell: &CellRecord) -> Option<&str> {
    cell.deviation.as_ref().map(|d| d.id.as_str())
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
    let report = Report::read(&report)
        .unwrap_or_else(|e| panic!("no report ({e}); stdout:\n{stdout}\nstderr:\n{stderr}"));
    // The run folder holds the same report.
    assert_eq!(
        Report::read(&out.join("report.json")).as_ref(),
        Ok(&report),
        "the run folder's report.json differs from --report-json"
    );
    println!("{stdout}");
    Run {
        status: output.status.code().unwrap_or(-1),
        stdout,
        report,
        dir,
    }
}
