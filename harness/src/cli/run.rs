//! `bootmatrix run`: prepare, boot and judge the planned cells (or one shard of them), with
//! progress, then the summary and the reports. Also the shard selection `plan` shares.

use std::path::Path;

use bootmatrix::discover::Inventory;
use bootmatrix::plan::layout::Layout;
use bootmatrix::plan::shard::{self, Costs, Shard};
use bootmatrix::plan::{self, Action};
use bootmatrix::report::folder::RunFolder;
use bootmatrix::report::record::{Report, RunRecord};
use bootmatrix::scenario::Scenarios;
use bootmatrix::{boot, prepare, report, run};

use super::args::Options;

/// The shard this command runs: `--shard`, else the CI engine's variables (GitLab's, or
/// Kubernetes' with `--shard-total`) where the command takes them; None for the whole matrix.
pub fn shard_of(args: &Options) -> Result<Option<Shard>, String> {
    if let Some(shard) = args.sharding.shard {
        return Ok(Some(shard));
    }
    if !args.sharding.from_engine {
        return Ok(None);
    }
    shard::from_engine(
        &|name| std::env::var(name).ok().filter(|v| !v.is_empty()),
        args.sharding.shard_total,
    )
}

/// The expected cost of each cell: its time in the `--timings` report where it has one.
pub fn costs(args: &Options) -> Result<Costs, String> {
    let mut costs = Costs::default();
    let Some(path) = &args.sharding.timings else {
        return Ok(costs);
    };
    let report = Report::read(path).map_err(|e| format!("--timings: {e}"))?;
    for cell in report.cells {
        if let Some(ms) = cell.elapsed_ms {
            costs.measured.insert(cell.id, ms);
        }
    }
    Ok(costs)
}

/// What every shard of one matrix shares: the fingerprint of the whole plan and its cell ids.
#[derive(Debug, Clone)]
pub struct Whole {
    pub fingerprint: String,
    pub planned: Vec<String>,
    pub cost_ms: u64,
}

/// `plan` cut down to `shard` (whole when None), with what the whole plan was.
pub fn sharded(
    plan: plan::Plan,
    root: &Path,
    shard: Option<Shard>,
    costs: &Costs,
) -> (plan::Plan, Whole) {
    let whole = Whole {
        fingerprint: shard::fingerprint(&plan, root),
        planned: plan.cells.iter().map(|c| c.id.clone()).collect(),
        cost_ms: plan.cells.iter().map(|c| costs.of(c)).sum(),
    };
    let plan = match shard {
        Some(s) => shard::select(plan, s, costs),
        None => plan,
    };
    (plan, whole)
}

/// `bootmatrix run`, for the planned (and sharded) cells.
pub fn run_all(
    args: &Options,
    run_dir: &Path,
    inventory: &Inventory,
    plan: plan::Plan,
    scenarios: &Scenarios,
    replan: &dyn Fn(&Path) -> plan::Plan,
) -> Result<u8, String> {
    crate::print_found(inventory);
    for l in &plan.left_out {
        println!("  left out {}: {}", l.what, l.reason);
    }
    if plan.cells.is_empty() {
        return Err(match &args.filter {
            Some(f) => format!(
                "no cell matches --filter {:?} (see `bootmatrix plan`)",
                f.as_str()
            ),
            None => "no cells to run (see `bootmatrix list`)".to_string(),
        });
    }
    let shard = shard_of(args)?;
    let costs = costs(args)?;
    if let Some(path) = &args.report_json {
        report::folder::check_writable("--report-json", path)?;
    }
    if let Some(path) = &args.junit {
        report::folder::check_writable("--junit", path)?;
    }
    // Held to the end: no other run writes into this folder meanwhile.
    let folder = match &args.out {
        Some(_) => RunFolder::claim(run_dir)?,
        // Taken: the same time stamp with a suffix, planned again for it.
        None => RunFolder::create_new(run_dir)?,
    };
    let plan = if folder.path == run_dir {
        plan
    } else {
        replan(&folder.path)
    };
    let (plan, whole) = sharded(plan, &folder.path, shard, &costs);
    let run_dir = folder.path.as_path();
    // From here on a signal stops the guests and the report is still written.
    boot::report_on_signal();
    let runnable = plan
        .cells
        .iter()
        .filter(|c| matches!(c.action, Action::Run(_)))
        .count();
    if let Some(s) = shard {
        let mine: u64 = plan.cells.iter().map(|c| costs.of(c)).sum();
        println!(
            "shard {s}: {} of the matrix's {} cells, expected {:.0} s of {:.0} s one slot \
             (plan fingerprint {})",
            plan.cells.len(),
            whole.planned.len(),
            mine as f64 / 1000.0,
            whole.cost_ms as f64 / 1000.0,
            &whole.fingerprint[..16]
        );
    }
    println!(
        "{} cells ({} to boot, {} skipped or unplannable); run folder {}",
        plan.cells.len(),
        runnable,
        plan.cells.len() - runnable,
        run_dir.display()
    );
    let started_at = jiff::Timestamp::now();
    if !plan.artifacts.is_empty() {
        println!(
            "preparing {} artifacts (test keys, probe images, option ROMs, kernels, varstores)...",
            plan.artifacts.len()
        );
    }
    let preparing = std::time::Instant::now();
    let prepared = prepare::prepare(&plan.artifacts, &Layout::new(run_dir));
    let prepare_ms = u64::try_from(preparing.elapsed().as_millis()).unwrap_or(u64::MAX);
    // One message per cause: a missing tool fails every artifact that needs it.
    let causes: std::collections::BTreeSet<&String> = prepared.failed.values().collect();
    for why in causes {
        eprintln!("bootmatrix: preparing failed, cells that need it are errors: {why}");
    }
    let jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let started = std::time::Instant::now();
    let progress = super::progress::Progress::new(&plan, &costs, jobs);
    let (results, mut figures) =
        run::execute(&plan, &prepared, scenarios, jobs, &|result, done, total| {
            // Each booted cell's verdict.json as soon as it is judged, beside its logs.
            if let (plan::Action::Run(spec), Some(_)) = (&result.cell.action, result.elapsed) {
                if let Err(e) = report::write_cell_verdict(&spec.dir, result) {
                    progress.error(&format!("bootmatrix: {e}"));
                }
            }
            progress.cell_done(result, done, total);
        });
    progress.finish();
    figures.prepare_ms = prepare_ms;
    let results = report::records(&results);
    println!(
        "\n{}",
        report::summary_table(&results).trim_end_matches('\n')
    );
    println!(
        "\nfinished in {:.1} s ({} slots; {} s of QEMU time; {} cells reached their deadline); \
         logs and verdicts under {}; report.json and report.html in the run folder",
        started.elapsed().as_secs_f64(),
        figures.slots,
        figures.sum_elapsed_ms / 1000,
        figures.deadline_cells,
        run_dir.join("cells").display()
    );
    let record = RunRecord {
        plan_fingerprint: whole.fingerprint,
        planned: whole.planned,
        shard,
        run_dir: run_dir.to_path_buf(),
        started: started_at.to_string(),
        figures,
    };
    let json = report::report_json(Some(record), &results);
    report::write_json(&run_dir.join("report.json"), &json)?;
    let page = run_dir.join("report.html");
    std::fs::write(&page, report::html::page(&json, run_dir))
        .map_err(|e| format!("cannot write {}: {e}", page.display()))?;
    if let Some(path) = &args.report_json {
        report::write_json(path, &json)?;
    }
    if let Some(path) = &args.junit {
        report::junit::write(path, &results)?;
    }
    if let Some(sig) = boot::interrupted() {
        eprintln!(
            "bootmatrix: interrupted by signal {sig}: the cells not decided are errors; report \
             written to {}",
            run_dir.join("report.json").display()
        );
        return Ok(u8::try_from(128 + sig).unwrap_or(u8::MAX));
    }
    Ok(report::exit_code(&results) as u8)
}
