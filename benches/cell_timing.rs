//! Prints how long real cells take, from what `bootmatrix run` itself records in report.json:
//! per cell min / median / max of `decided_ms`, of the whole boot (`elapsed_ms`) and, for
//! refused cells, of what confirming the refusal costs (from the refusal line to the line that
//! confirms it, or to the boot's end after the grace window); per round the run's figures
//! (wall time, preparation, QEMU time, the harness's own time per cell, cells that reached
//! their deadline). The benchmark times nothing itself.
//!
//!     cargo bench --features qemu --bench cell_timing -- [ROUNDS] [FILTER] [JOBS]
//!
//! Defaults: 3 rounds over the sev-off cells of the machine's descriptors, one job (cells one
//! at a time, so the figures are not skewed by each other).

use std::collections::BTreeMap;
use std::process::Command;

use bootmatrix::matrix::Outcome;
use bootmatrix::report::record::Report;
use bootmatrix::run::Figures;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let rounds: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(3);
    let filter = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "/sev-off/".to_string());
    let jobs = args.get(2).cloned().unwrap_or_else(|| "1".to_string());
    let dir = tempfile::tempdir().expect("temp folder");
    let mut decided: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut elapsed: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut confirm: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut figures: Vec<Figures> = Vec::new();
    for round in 1..=rounds {
        let out = dir.path().join(format!("round-{round}"));
        let status = Command::new(env!("CARGO_BIN_EXE_bootmatrix"))
            .args(["run", "--filter", &filter, "--jobs", &jobs, "--out"])
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("bootmatrix runs");
        let report = Report::read(&out.join("report.json")).unwrap_or_else(|e| {
            eprintln!("round {round}: no report ({e}; exit status {status})");
            std::process::exit(2)
        });
        let Some(run) = report.run else {
            eprintln!("round {round}: the report has no run figures");
            std::process::exit(2)
        };
        figures.push(run.figures);
        for c in report.cells.iter().filter(|c| c.elapsed_ms.is_some()) {
            decided
                .entry(c.id.clone())
                .or_default()
                .extend(c.decided_ms);
            elapsed
                .entry(c.id.clone())
                .or_default()
                .extend(c.elapsed_ms);
            if c.observed.outcome() == Some(Outcome::Refused) {
                let lines = &c.observed.evidence;
                if let Some(first) = lines.first() {
                    // Confirmed by a later line, or by the grace window (the boot's end).
                    let confirmed = match lines.last() {
                        Some(last) if lines.len() > 1 => last.at_ms,
                        _ => c.elapsed_ms.unwrap_or(first.at_ms),
                    };
                    confirm
                        .entry(c.id.clone())
                        .or_default()
                        .push(confirmed.saturating_sub(first.at_ms));
                }
            }
        }
    }
    if elapsed.is_empty() {
        eprintln!("no cell matching {filter:?} booted");
        std::process::exit(2);
    }
    println!(
        "{} booted cells x {rounds} rounds, {jobs} at a time (filter {filter:?})\n",
        elapsed.len()
    );
    println!(
        "{:<104} {:>22} {:>22} {:>22}",
        "cell", "decided ms min/med/max", "boot ms min/med/max", "confirm ms min/med/max"
    );
    for (id, boot) in &elapsed {
        let none = Vec::new();
        println!(
            "{id:<104} {:>22} {:>22} {:>22}",
            stats(decided.get(id).unwrap_or(&none)),
            stats(boot),
            stats(confirm.get(id).unwrap_or(&none))
        );
    }
    println!("\nper round, from report.json's run figures (min/med/max over the rounds):");
    let column = |f: fn(&Figures) -> u64| stats(&figures.iter().map(f).collect::<Vec<_>>());
    println!("  wall ms               {}", column(|f| f.wall_ms));
    println!("  preparing ms          {}", column(|f| f.prepare_ms));
    println!("  QEMU time ms          {}", column(|f| f.sum_elapsed_ms));
    println!("  decided time ms       {}", column(|f| f.sum_decided_ms));
    println!("  overhead/cell mean ms {}", column(|f| f.overhead_mean_ms));
    println!("  overhead/cell max ms  {}", column(|f| f.overhead_max_ms));
    println!(
        "  deadline cells        {}",
        column(|f| f.deadline_cells as u64)
    );
}

fn stats(values: &[u64]) -> String {
    if values.is_empty() {
        return "-".into();
    }
    let mut values = values.to_vec();
    values.sort_unstable();
    format!(
        "{}/{}/{}",
        values[0],
        values[values.len() / 2],
        values[values.len() - 1]
    )
}
