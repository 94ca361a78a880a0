//! `bootmatrix report merge REPORT... --out DIR`.

use std::path::{Path, PathBuf};

use bootmatrix::report::merge::{self, Input};
use bootmatrix::report::record::Report;
use bootmatrix::report::{self as reports};

/// Exit status: 0 merged and clean, 1 merged with failed or errored cells, 2 refused.
pub fn merge(paths: &[PathBuf], out: &Path) -> u8 {
    match merged(paths, out) {
        Ok(report) => reports::exit_code(&report.cells) as u8,
        Err(e) => {
            eprintln!("bootmatrix report merge: {e}");
            2
        }
    }
}

fn merged(paths: &[PathBuf], out: &Path) -> Result<Report, String> {
    let mut inputs = Vec::new();
    for path in paths {
        let report = Report::read(path)?;
        inputs.push(Input {
            path: std::path::absolute(path).unwrap_or_else(|_| path.clone()),
            report,
        });
    }
    let mut report = merge::merge(&inputs)?;
    // New or empty: a merge never mixes with what is already there.
    std::fs::create_dir_all(out).map_err(|e| format!("--out {}: {e}", out.display()))?;
    let empty = std::fs::read_dir(out)
        .map_err(|e| format!("--out {}: {e}", out.display()))?
        .next()
        .is_none();
    if !empty {
        return Err(format!("--out {}: not empty", out.display()));
    }
    let out = std::path::absolute(out).unwrap_or_else(|_| out.to_path_buf());
    if let Some(run) = report.run.as_mut() {
        run.run_dir = out.clone();
    }
    reports::write_json(&out.join("report.json"), &report)?;
    reports::junit::write(&out.join("junit.xml"), &report.cells)?;
    let page = out.join("report.html");
    std::fs::write(&page, reports::html::page(&report, &out))
        .map_err(|e| format!("cannot write {}: {e}", page.display()))?;
    println!(
        "merged {} reports: {}",
        inputs.len(),
        reports::totals(&report.cells)
    );
    let seconds = |ms: u64| ms as f64 / 1000.0;
    for shard in &report.shards {
        let f = &shard.figures;
        println!(
            "  {}: {} cells, {:.1} s wall ({:.1} s preparing), {} slots, {:.1} s of QEMU time",
            shard
                .shard
                .map_or("whole matrix".to_string(), |s| format!("shard {s}")),
            f.cells,
            seconds(f.prepare_ms + f.wall_ms),
            seconds(f.prepare_ms),
            f.slots,
            seconds(f.sum_elapsed_ms)
        );
    }
    if let Some(run) = &report.run {
        let sum: u64 = report
            .shards
            .iter()
            .map(|r| r.figures.prepare_ms + r.figures.wall_ms)
            .sum();
        println!(
            "  merged: {:.1} s from the first start to the last end; the shards' times add up \
             to {:.1} s",
            seconds(run.figures.wall_ms),
            seconds(sum)
        );
    }
    println!(
        "wrote {}, {} and {}",
        out.join("report.json").display(),
        out.join("junit.xml").display(),
        page.display()
    );
    Ok(report)
}
