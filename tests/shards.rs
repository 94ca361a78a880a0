//! Shards and merged reports, as a CI engine uses them: `run --shard K/N` on each parallel job,
//! `report merge` in the last one. The Debian release matrix's plan splits into disjoint,
//! cost-balanced shards that together are the plan; three shards of a real run, merged, give
//! what one unsharded run gives; and merges that would misreport are refused by name.
#![cfg(feature = "qemu")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use bootmatrix::report::record::Report;
use serde_json::Value;

fn plan_json(args: &[String], extra: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_bootmatrix"))
        .arg("plan")
        .arg("--json")
        .args(args)
        .args(extra)
        .output()
        .expect("bootmatrix plan runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("plan --json is JSON")
}

fn ids(plan: &Value) -> Vec<String> {
    plan["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .map(|c| c["id"].as_str().expect("an id").to_string())
        .collect()
}

#[test]
fn the_debian_matrix_splits_into_disjoint_balanced_shards_that_are_the_plan() {
    let args = common::debian_matrix_args();
    let whole = plan_json(&args, &[]);
    let all = ids(&whole);
    assert!(all.len() > 1000, "{} cells", all.len());
    let mut seen: Vec<String> = Vec::new();
    let mut costs = Vec::new();
    for k in 1..=3 {
        let shard = plan_json(&args, &["--shard", &format!("{k}/3")]);
        assert_eq!(shard["shard"]["index"], k);
        assert_eq!(shard["plan_fingerprint"], whole["plan_fingerprint"]);
        assert_eq!(shard["planned_cells"], all.len());
        let cost: u64 = shard["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["expected_cost_ms"].as_u64().expect("a cost"))
            .sum();
        costs.push(cost);
        seen.extend(ids(&shard));
    }
    let distinct: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "a cell is in two shards");
    assert_eq!(
        distinct,
        all.iter().collect(),
        "the shards are not the plan"
    );
    let mean = costs.iter().sum::<u64>() / 3;
    for (k, cost) in costs.iter().enumerate() {
        assert!(
            cost * 100 <= mean * 125,
            "shard {}: expected {cost} ms, mean {mean} ms ({costs:?})",
            k + 1
        );
    }
    println!(
        "{} cells; expected cost per shard (ms): {costs:?}",
        all.len()
    );
}

/// Cells of the machine's own enrolled build on its own QEMU: the secure-boot and option-rom
/// cells of the db-added store (booted) and their SEV twins (skipped on this host).
const SLICE: &str = r"^40-edk2-x86_64-secure-enrolled/[^/]*/sev-(off|on)/(secure-boot|option-rom)/db-added-vars-(un)?signed$";

/// `bootmatrix run --filter SLICE EXTRA... --out DIR`; the exit status and stdout.
fn run(dir: &Path, extra: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_bootmatrix"))
        .args(["run", "--filter", SLICE, "--out"])
        .arg(dir)
        .args(extra)
        .output()
        .expect("bootmatrix run runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code().unwrap_or(-1), stdout)
}

fn merge(reports: &[&Path], out: &Path) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_bootmatrix"))
        .args(["report", "merge"])
        .args(reports)
        .arg("--out")
        .arg(out)
        .output()
        .expect("bootmatrix report merge runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

/// Each cell's verdict and observed outcome.
fn verdicts(report: &Report) -> BTreeMap<String, (String, Option<String>)> {
    report
        .cells
        .iter()
        .map(|c| {
            (
                c.id.clone(),
                (
                    c.verdict.to_string(),
                    c.observed.outcome().map(|o| o.to_string()),
                ),
            )
        })
        .collect()
}

#[test]
fn three_shards_merged_give_what_one_run_gives_and_bad_merges_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (status, stdout) = run(&tmp.path().join("whole"), &[]);
    let whole = Report::read(&tmp.path().join("whole/report.json")).expect(&stdout);
    assert_eq!(status, 0, "{stdout}");
    assert_eq!(whole.cells.len(), 8, "{stdout}");
    // Not a terminal: the status is a plain line, at the end at least.
    assert!(
        stdout.contains("progress: 8/8 cells, 0 failed, 0 errors, done"),
        "{stdout}"
    );
    // The run's own page, beside its report.
    let page = std::fs::read_to_string(tmp.path().join("whole/report.html")).unwrap();
    for c in &whole.cells {
        assert!(
            page.contains(&format!("data-id=\"{}\"", c.id)),
            "{} not on the page",
            c.id
        );
    }
    let shard_dir = |k: usize| tmp.path().join(format!("shard-{k}"));
    for k in 1..=3 {
        let (status, stdout) = run(&shard_dir(k), &["--shard", &format!("{k}/3")]);
        assert_eq!(status, 0, "{stdout}");
        assert!(stdout.contains(&format!("shard {k}/3: ")), "{stdout}");
    }
    let reports: Vec<_> = (1..=3).map(|k| shard_dir(k).join("report.json")).collect();
    let refs: Vec<&Path> = reports.iter().map(|p| p.as_path()).collect();
    let out = tmp.path().join("merged");
    let (status, text) = merge(&refs, &out);
    assert_eq!(status, 0, "{text}");
    let merged = Report::read(&out.join("report.json")).unwrap();
    assert_eq!(verdicts(&merged), verdicts(&whole));
    // Decided, not all skipped: the slice boots.
    assert!(
        merged
            .cells
            .iter()
            .filter(|c| c.decided_ms.is_some())
            .count()
            >= 4,
        "{text}"
    );
    let run = merged.run.as_ref().unwrap();
    assert_eq!(run.planned.len(), 8);
    assert_eq!(run.figures.cells, 8);
    assert_eq!(merged.shards.len(), 3);
    assert!(out.join("junit.xml").is_file());
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    for c in &merged.cells {
        assert!(
            page.contains(&format!("data-id=\"{}\"", c.id)),
            "{} not on the page",
            c.id
        );
    }
    // Every log folder is where the merged report says.
    for c in merged.cells.iter().filter_map(|c| c.log_dir.as_ref()) {
        assert!(c.join("serial.log").is_file(), "{}", c.display());
    }

    // Shard 1 twice: refused, naming its cells.
    let (status, text) = merge(
        &[refs[0], refs[0], refs[1], refs[2]],
        &tmp.path().join("m2"),
    );
    assert_eq!(status, 2, "{text}");
    let one = Report::read(refs[0]).unwrap();
    assert!(text.contains("overlap"), "{text}");
    for c in &one.cells {
        assert!(text.contains(&c.id), "{} not named: {text}", c.id);
    }
    // Shard 3 missing: refused, naming its cells.
    let (status, text) = merge(&refs[..2], &tmp.path().join("m3"));
    assert_eq!(status, 2, "{text}");
    for c in &Report::read(refs[2]).unwrap().cells {
        assert!(text.contains(&c.id), "{} not named: {text}", c.id);
    }
    // A shard of another plan (another filter: only the skipped SEV cells): refused by
    // fingerprint.
    let other = tmp.path().join("other");
    let (_, stdout) = Command::new(env!("CARGO_BIN_EXE_bootmatrix"))
        .args(["run", "--filter", &SLICE.replace("sev-(off|on)", "sev-on")])
        .args(["--shard", "3/3", "--out"])
        .arg(&other)
        .output()
        .map(|o| (o.status, String::from_utf8_lossy(&o.stdout).into_owned()))
        .unwrap();
    let (status, text) = merge(
        &[refs[0], refs[1], &other.join("report.json")],
        &tmp.path().join("m4"),
    );
    assert_eq!(status, 2, "{text}\n{stdout}");
    assert!(text.contains("planned from different inputs"), "{text}");
}
