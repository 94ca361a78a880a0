//! Prints how long real cells take to decide: min / median / max of `decided_ms`, of the whole
//! boot (QEMU start to reaped), and, for refused cells, of what confirming the refusal costs
//! (from the refusal line to the line that confirms it, or to the stop after the grace
//! window), per cell, over several rounds.
//!
//!     cargo bench --features qemu --bench cell_timing -- [ROUNDS] [FILTER]
//!
//! Defaults: 3 rounds over the sev-off cells of the machine's descriptors. Cells run one at a
//! time so the figures are not skewed by each other.

use std::time::Duration;

use bootmatrix::discover::{discover, DiscoverOptions};
use bootmatrix::plan::layout::Layout;
use bootmatrix::plan::{plan, Action, PlanOptions};
use bootmatrix::prepare::prepare;
use bootmatrix::run::run_cell;
use bootmatrix::scenario::Scenarios;

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
    let dir = tempfile::tempdir().expect("temp folder");
    let scenarios = Scenarios::builtin();
    let inventory = discover(&DiscoverOptions {
        scratch: dir.path().to_path_buf(),
        ..DiscoverOptions::default()
    });
    let mut options = PlanOptions::new(Layout::new(dir.path()));
    options.filter = Some(regex::Regex::new(&filter).expect("valid filter"));
    // kernel-boot cells use the kernel ./ci/setup fetched (or /boot's).
    options.kernel = bootmatrix::discover::find_kernel(None);
    let plan = plan(&inventory, &scenarios, &options);
    let prepared = prepare(&plan.artifacts, &options.layout);
    let cells: Vec<_> = plan
        .cells
        .iter()
        .filter(|c| matches!(c.action, Action::Run(_)))
        .collect();
    if cells.is_empty() {
        eprintln!("no runnable cells match {filter:?}");
        std::process::exit(2);
    }
    println!(
        "{} cells x {rounds} rounds, one at a time (filter {filter:?})\n",
        cells.len()
    );
    println!(
        "{:<104} {:>6} {:>22} {:>22} {:>22}",
        "cell", "accel", "decided ms min/med/max", "boot ms min/med/max", "confirm ms min/med/max"
    );
    let mut total = Duration::ZERO;
    for cell in cells {
        let mut decided = Vec::new();
        let mut elapsed = Vec::new();
        let mut confirm = Vec::new();
        for _ in 0..rounds {
            // Each round needs a fresh cell folder: the private varstore copy is rewritten.
            if let Action::Run(spec) = &cell.action {
                let _ = std::fs::remove_dir_all(&spec.dir);
            }
            let result = run_cell(cell, &prepared, &scenarios);
            if let Some(o) = result.verdict.observation() {
                if o.outcome == bootmatrix::matrix::Outcome::Refused {
                    let lines = o.evidence.lines();
                    let refused_at = lines[0].at;
                    // Confirmed by a later line, or by the grace window (the boot's end).
                    let confirmed_at = match lines.last() {
                        Some(last) if lines.len() > 1 => last.at,
                        _ => result.elapsed.unwrap_or(refused_at),
                    };
                    confirm.push(confirmed_at.saturating_sub(refused_at).as_millis());
                }
            }
            if let Some(d) = result.decided {
                decided.push(d.as_millis());
            }
            if let Some(e) = result.elapsed {
                elapsed.push(e.as_millis());
                total += e;
            }
        }
        println!(
            "{:<104} {:>6} {:>22} {:>22} {:>22}",
            cell.id,
            cell.accel.to_string(),
            stats(&mut decided),
            stats(&mut elapsed),
            stats(&mut confirm)
        );
    }
    println!("\ntotal boot time: {:.1} s", total.as_secs_f64());
}

fn stats(values: &mut [u128]) -> String {
    if values.is_empty() {
        return "-".into();
    }
    values.sort_unstable();
    format!(
        "{}/{}/{}",
        values[0],
        values[values.len() / 2],
        values[values.len() - 1]
    )
}
