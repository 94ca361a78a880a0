//! `bootmatrix plan --verify`: every cell's argv started paused by its own QEMU, one line per
//! cell (see the README, "Checking every argv").

use std::collections::BTreeMap;

use bootmatrix::boot::verify::Verdict;
use bootmatrix::discover::Inventory;
use bootmatrix::plan::verify::{capable_inventory, targets};
use bootmatrix::plan::{self, PlanOptions};
use bootmatrix::run::{self, Verified};
use bootmatrix::scenario::Scenarios;
use bootmatrix::tools::shown;

use super::args::Options;

/// The longest reason printed (QEMU's errors quote whole arguments).
const REASON: usize = 800;

/// Plans with `options` (whose run folder is a scratch folder: it receives stand-ins of what
/// the argv name, so the paths differ from `plan`'s; nothing else does), starts every argv
/// paused on the cell's own QEMU and prints one line per cell, then the counts. Returns the
/// exit status: 1 when any argv was rejected or not started.
pub fn verify_plan(
    args: &Options,
    inventory: &Inventory,
    scenarios: &Scenarios,
    options: &PlanOptions,
) -> u8 {
    let planned = plan::plan(inventory, scenarios, options);
    let capable_options = PlanOptions {
        forced_accel: None,
        ..options.clone()
    };
    let capable = plan::plan(&capable_inventory(inventory), scenarios, &capable_options);
    let targets = targets(&planned, &capable);
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let results = run::verify(
        &targets,
        &options.layout,
        jobs,
        args.verify_machine_property.as_deref(),
    );
    let mut counts = BTreeMap::<&str, usize>::new();
    for ((id, _), verified) in targets.iter().zip(&results) {
        let (word, reason) = line(verified);
        *counts.entry(word).or_default() += 1;
        println!("{word:<11} {id}  {}", shown(&reason, REASON));
    }
    let count = |word| counts.get(word).copied().unwrap_or(0);
    println!(
        "{} cells: {} accepted, {} rejected, {} needs-host, {} firmware-refused, {} not started, {} \
         without argv",
        results.len(),
        count(Verdict::Accepted.word()),
        count("rejected"),
        count("needs-host"),
        count("firmware-refused"),
        count("not-started"),
        count("no-argv"),
    );
    u8::from(results.iter().any(Verified::fails))
}

/// A cell's verdict word and its reason.
fn line(verified: &Verified) -> (&'static str, String) {
    match verified {
        Verified::Started { verdict, host } => {
            let mut reason = verdict.reason();
            if let Some(denial) = host {
                let note = format!(
                    "(argv as planned for a host with KVM and SEV; skipped here by {}: {})",
                    denial.rule, denial.reason
                );
                reason = [reason, note].join(" ").trim().to_string();
            }
            (verdict.word(), reason)
        }
        Verified::NotStarted(why) => ("not-started", why.clone()),
        Verified::NoArgv(denial) => ("no-argv", format!("{}: {}", denial.rule, denial.reason)),
    }
}
