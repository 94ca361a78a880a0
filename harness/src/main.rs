//! The `bootmatrix` command line: list, plan, run, explain.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use regex::Regex;

use bootmatrix::discover::descriptor::{Descriptor, Feature, Mapping};
use bootmatrix::discover::host::Accel;
use bootmatrix::discover::qemu;
use bootmatrix::discover::{discover, DiscoverOptions, Inventory};
use bootmatrix::matrix::Profile;
use bootmatrix::plan::{self, Action, Layout, PlanOptions};
use bootmatrix::prepare::{default_run_dir, shell_line};
use bootmatrix::report::explain;
use bootmatrix::scenario::Scenarios;
use bootmatrix::{boot, prepare, report, run};

const USAGE: &str = "\
bootmatrix: boot QEMU/OVMF guests for every firmware descriptor and check that the firmware
keeps the security promises its descriptor makes: Secure Boot enforcement (secure-boot),
option-ROM rejection (option-rom) and direct-kernel-boot policy (kernel-boot).

USAGE:
    bootmatrix list [OPTIONS]          what was found, and why anything was left out
    bootmatrix plan [OPTIONS]          every cell with its exact argv or its skip reason
    bootmatrix run  [OPTIONS]          boot every cell, judge it, print a summary
    bootmatrix explain CELL [OPTIONS]  a cell's expectation, where it comes from, what was
                                       observed (from the run folder) and the verdict

OPTIONS:
    --descriptors DIR      search DIR for descriptors instead of the default folders
                           (repeatable, general to specific)
    --qemu PATH[=DATADIR]  also use this QEMU binary (repeatable); DATADIR is passed as -L
    --no-path-qemu         do not use qemu-system-x86_64 from PATH
    --accel kvm|tcg        force the accelerator (default: KVM where it really works)
    --filter REGEX         only cells whose id matches
    --scenarios DIR        expectations from DIR instead of the built-in scenarios/
    --profile P            strict (default: no unsigned code under enforcing Secure Boot)
                           or upstream (what edk2 documents for the firmware's release)
    --kernel FILE          Linux bzImage for kernel-boot cells (default: the one ./ci/setup
                           fetched into ~/.cache/bootmatrix, else the newest /boot/vmlinuz-*)
    --shim FILE            shim for the -shim kernel-boot cells (QEMU >= 10.0)
    --out DIR              run folder (default: ./bootmatrix-runs/<UTC time>; for explain,
                           the newest run there)
    --jobs N               cells booted at once (default: number of CPUs)
    --timeout-scale F      multiply every cell deadline by F
    --report-json FILE     also write the JSON report to FILE (run)
    --junit FILE           also write a JUnit XML report to FILE (run)
    -h, --help             this text

Exit status of `run`: 0 when no cell failed or errored, 1 otherwise, 2 on bad usage.";

#[derive(Debug, Default)]
struct Args {
    command: String,
    descriptor_dirs: Vec<PathBuf>,
    qemus: Vec<(PathBuf, Option<PathBuf>)>,
    no_path_qemu: bool,
    accel: Option<Accel>,
    filter: Option<Regex>,
    scenarios: Option<PathBuf>,
    profile: Profile,
    kernel: Option<PathBuf>,
    shim: Option<PathBuf>,
    /// explain: the cell id.
    cell: Option<String>,
    out: Option<PathBuf>,
    jobs: Option<usize>,
    timeout_scale: f64,
    report_json: Option<PathBuf>,
    junit: Option<PathBuf>,
}

fn parse_args(raw: Vec<String>) -> Result<Args, String> {
    let mut args = Args {
        timeout_scale: 1.0,
        ..Args::default()
    };
    let mut it = raw.into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => args.command = "help".into(),
            "--descriptors" => args.descriptor_dirs.push(value(&flag)?.into()),
            "--qemu" => args.qemus.push(qemu::parse_qemu_arg(&value(&flag)?)),
            "--no-path-qemu" => args.no_path_qemu = true,
            "--accel" => args.accel = Some(value(&flag)?.parse()?),
            "--filter" => {
                let re = value(&flag)?;
                args.filter = Some(Regex::new(&re).map_err(|e| format!("--filter {re:?}: {e}"))?);
            }
            "--scenarios" => args.scenarios = Some(value(&flag)?.into()),
            "--profile" => args.profile = value(&flag)?.parse()?,
            "--kernel" => args.kernel = Some(value(&flag)?.into()),
            "--shim" => args.shim = Some(value(&flag)?.into()),
            "--out" => args.out = Some(value(&flag)?.into()),
            "--report-json" => args.report_json = Some(value(&flag)?.into()),
            "--junit" => args.junit = Some(value(&flag)?.into()),
            "--jobs" => {
                let v = value(&flag)?;
                args.jobs = Some(
                    v.parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or(format!("--jobs {v:?}: expected a positive number"))?,
                );
            }
            "--timeout-scale" => {
                let v = value(&flag)?;
                args.timeout_scale = v
                    .parse()
                    .ok()
                    .filter(|f: &f64| *f > 0.0)
                    .ok_or(format!("--timeout-scale {v:?}: expected a positive number"))?;
            }
            "list" | "plan" | "run" | "explain" if args.command.is_empty() => args.command = flag,
            cell if args.command == "explain" && args.cell.is_none() && !cell.starts_with('-') => {
                args.cell = Some(cell.to_string())
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.command.is_empty() {
        return Err("missing command: list, plan, run or explain".into());
    }
    if args.command == "explain" && args.cell.is_none() {
        return Err("explain needs a cell id (see `bootmatrix plan`)".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1).collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bootmatrix: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.command == "help" {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    boot::install_signal_handlers();
    match execute(&args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("bootmatrix: {e}");
            ExitCode::from(2)
        }
    }
}

fn execute(args: &Args) -> Result<u8, String> {
    let scenarios = match &args.scenarios {
        Some(dir) => Scenarios::load_dir(dir).map_err(|e| e.to_string())?,
        None => Scenarios::builtin(),
    };
    // list and plan write nothing that outlives them; run keeps everything in its folder.
    let scratch = tempfile::tempdir().map_err(|e| format!("cannot make a temp folder: {e}"))?;
    let run_dir = match (&args.out, args.command.as_str()) {
        (Some(dir), _) => dir.clone(),
        // explain reads what the newest run recorded.
        (None, "explain") => explain::latest_run(Path::new("bootmatrix-runs"))
            .unwrap_or_else(|| PathBuf::from("bootmatrix-runs")),
        (None, _) => default_run_dir(),
    };
    let host_scratch = if args.command == "run" {
        let dir = run_dir.join("host");
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        dir
    } else {
        scratch.path().to_path_buf()
    };
    if let (Some(shim), true) = (&args.shim, args.command == "run") {
        std::fs::File::open(shim).map_err(|e| format!("--shim {}: {e}", shim.display()))?;
    }
    let kernel = bootmatrix::discover::find_kernel(args.kernel.as_deref());
    if let (Some(_), Err(why)) = (&args.kernel, &kernel) {
        return Err(why.clone());
    }
    let inventory = discover(&DiscoverOptions {
        descriptor_dirs: args.descriptor_dirs.clone(),
        qemus: args.qemus.clone(),
        no_path_qemu: args.no_path_qemu,
        scratch: host_scratch,
    });
    // Absolute, so the argv printed by `plan` and stored in argv.txt works from anywhere.
    let run_dir = std::path::absolute(&run_dir).unwrap_or(run_dir);
    let mut options = PlanOptions::new(Layout::new(&run_dir));
    options.forced_accel = args.accel;
    options.filter = args.filter.clone();
    options.timeout_scale = args.timeout_scale;
    options.profile = args.profile;
    options.kernel = kernel;
    options.shim = args.shim.clone();
    let plan = plan::plan(&inventory, &scenarios, &options);
    match args.command.as_str() {
        "list" => {
            print_inventory(&inventory, &plan);
            match &options.kernel {
                Ok(k) => println!("kernel for kernel-boot cells: {}", k.display()),
                Err(why) => println!("kernel-boot cells are skipped: {why}"),
            }
            Ok(0)
        }
        "explain" => {
            let id = args.cell.as_deref().unwrap_or_default();
            let cell = explain::find_cell(&plan, id)?;
            let firmware = inventory
                .firmware
                .iter()
                .find(|f| f.descriptor.name == cell.descriptor);
            let recorded = explain::recorded(&run_dir, &cell.id);
            print!(
                "{}",
                explain::explain(cell, firmware, &scenarios, &run_dir, recorded.as_ref())
            );
            Ok(0)
        }
        "plan" => {
            print_plan(&plan);
            Ok(0)
        }
        _ => run_all(args, &run_dir, &inventory, &plan, &scenarios),
    }
}

fn run_all(
    args: &Args,
    run_dir: &std::path::Path,
    inventory: &Inventory,
    plan: &plan::Plan,
    scenarios: &Scenarios,
) -> Result<u8, String> {
    print_found(inventory);
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
    let runnable = plan
        .cells
        .iter()
        .filter(|c| matches!(c.action, Action::Run(_)))
        .count();
    println!(
        "{} cells ({} to boot, {} skipped or unplannable); run folder {}",
        plan.cells.len(),
        runnable,
        plan.cells.len() - runnable,
        run_dir.display()
    );
    if !plan.artifacts.is_empty() {
        println!(
            "preparing {} artifacts (test keys, probe images, option ROMs, kernels, varstores)...",
            plan.artifacts.len()
        );
    }
    let prepared = prepare::prepare(&plan.artifacts, &Layout::new(run_dir));
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
    let results = run::execute(plan, &prepared, scenarios, jobs, &|result, done, total| {
        // Each booted cell's verdict.json as soon as it is judged, beside its logs.
        if let plan::Action::Run(spec) = &result.cell.action {
            if let Err(e) = report::write_cell_verdict(&spec.dir, result) {
                eprintln!("bootmatrix: {e}");
            }
        }
        println!("{}", report::progress_line(result, done, total));
    });
    println!(
        "\n{}",
        report::summary_table(&results).trim_end_matches('\n')
    );
    println!(
        "\nfinished in {:.1} s; logs and verdicts under {}",
        started.elapsed().as_secs_f64(),
        run_dir.join("cells").display()
    );
    let json = report::report_json(&results);
    report::write_json(&run_dir.join("report.json"), &json)?;
    if let Some(path) = &args.report_json {
        report::write_json(path, &json)?;
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, report::junit_xml(&results))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(report::exit_code(&results) as u8)
}

fn mapping_summary(d: &Descriptor) -> String {
    match &d.mapping {
        Mapping::Flash(f) => {
            let mut s = format!(
                "flash {}: {} ({})",
                f.mode,
                f.executable.filename.display(),
                f.executable.format
            );
            if let Some(t) = &f.nvram_template {
                s.push_str(&format!(
                    ", nvram-template {} ({})",
                    t.filename.display(),
                    t.format
                ));
            }
            s
        }
        Mapping::Memory { filename } => format!("memory: {}", filename.display()),
        Mapping::Kernel { filename } => format!("kernel: {}", filename.display()),
        Mapping::Igvm { filename } => format!("igvm: {}", filename.display()),
    }
}

fn print_found(inventory: &Inventory) {
    println!(
        "descriptors: {} usable, {} broken, {} masked (searched {})",
        inventory.firmware.len(),
        inventory.descriptor_errors.len(),
        inventory.masked.len(),
        inventory
            .search_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for e in &inventory.descriptor_errors {
        println!("  skipped broken descriptor {e}");
    }
    for q in &inventory.qemus {
        println!(
            "qemu: {} ({}); KVM: {}; SEV: {}",
            q.binary.path.display(),
            q.binary.banner,
            match (&q.kvm.usable, &q.kvm.smm) {
                (Ok(()), Ok(())) => "works, with SMM".to_string(),
                (Ok(()), Err(why)) => format!("works, no SMM ({why})"),
                (Err(why), _) => format!("unusable ({why})"),
            },
            match &q.sev {
                Ok(p) => format!("yes (cbitpos {})", p.cbitpos),
                Err(why) => format!("no ({why})"),
            }
        );
    }
    for e in &inventory.qemu_errors {
        println!("  skipped QEMU {e}");
    }
}

fn print_inventory(inventory: &Inventory, plan: &plan::Plan) {
    print_found(inventory);
    println!();
    for f in &inventory.firmware {
        let d = &f.descriptor;
        let left_out = plan.left_out.iter().find(|l| l.what == d.name);
        println!(
            "{}  [{}]",
            d.name,
            left_out.map_or("tested".to_string(), |l| format!("left out: {}", l.reason))
        );
        println!("    {}", d.description);
        println!("    {}", mapping_summary(d));
        let features: Vec<String> = d
            .features
            .iter()
            .map(|feat| match feat {
                Feature::Other(_) => format!("{feat} (unknown)"),
                known => known.to_string(),
            })
            .collect();
        println!("    features: {}", features.join(", "));
        match (&f.executable_sha256, &f.package) {
            (Ok(sha), Some(pkg)) => println!("    executable sha256 {sha} ({pkg})"),
            (Ok(sha), None) => println!("    executable sha256 {sha}"),
            (Err(why), _) => println!("    executable: {why}"),
        }
        println!("    from {}", d.path.display());
    }
    for masked in &inventory.masked {
        println!("{}  [masked by an empty file]", masked.display());
    }
    for l in plan.left_out.iter().filter(|l| {
        !inventory
            .firmware
            .iter()
            .any(|f| f.descriptor.name == l.what)
    }) {
        println!("{}: {}", l.what, l.reason);
    }
}

fn print_plan(plan: &plan::Plan) {
    for cell in &plan.cells {
        let expectation = cell
            .rule
            .as_ref()
            .map(|r| format!("expect {} (rule {})", r.expect.payload, r.id))
            .unwrap_or_default();
        match &cell.action {
            Action::Run(spec) => {
                println!(
                    "RUN   {}  [{}: {}]  {}",
                    cell.id, cell.accel, cell.accel_reason, expectation
                );
                println!("      {}", shell_line(&spec.argv));
            }
            Action::Skip(why) => println!("SKIP  {}  {}", cell.id, why),
            Action::Refused(why) => println!("REFUSED {}  {}", cell.id, why),
            Action::Error(why) => println!("ERROR {}  {}", cell.id, why),
        }
    }
    for l in &plan.left_out {
        println!("LEFT OUT {}: {}", l.what, l.reason);
    }
    if plan.cells.is_empty() {
        println!("no cells (see `bootmatrix list`)");
    }
}
