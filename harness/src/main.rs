//! The `bootmatrix` command line: list, plan, run, explain, lint (and the completions and man pages
//! of that command line). What it accepts is defined in `cli::args`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use bootmatrix::boot;
use bootmatrix::discover::descriptor::{Descriptor, Feature, Mapping};
use bootmatrix::discover::qemu::QemuProblem;
use bootmatrix::discover::{discover, DiscoverOptions, Inventory};
use bootmatrix::plan::layout::Layout;
use bootmatrix::plan::{self, Action, PlanOptions};
use bootmatrix::prepare::default_run_dir;
use bootmatrix::report::{expect, explain};
use bootmatrix::scenario::Scenarios;
use bootmatrix::tools::{shell_line, shown, shown_name};

mod cli;

use cli::args::{Cli, Command, Options, Verb};
use cli::pages;

fn main() -> ExitCode {
    // Usage errors exit with 2 (clap's own status), --help and --version with 0.
    let args = match Cli::parse().command {
        Command::Completions { shell } => {
            pages::completions(shell, &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Man { out } => return man(out.as_deref()),
        Command::Keys(keys) => return ExitCode::from(cli::keys::keys(&keys)),
        Command::Report(cli::args::ReportCommand::Merge { reports, out }) => {
            return ExitCode::from(cli::merge::merge(&reports, &out))
        }
        Command::Lint(lint) => return ExitCode::from(cli::lint::lint(&lint)),
        Command::Table { reports, readme } => {
            return match table(&reports, readme.as_deref()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("bootmatrix: {e}");
                    ExitCode::from(2)
                }
            }
        }
        command => command
            .into_options()
            .expect("every other command discovers and plans"),
    };
    boot::install_signal_handlers();
    match execute(&args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("bootmatrix: {e}");
            ExitCode::from(2)
        }
    }
}

/// `bootmatrix table REPORT... [--readme FILE]`.
fn table(reports: &[PathBuf], readme: Option<&Path>) -> Result<(), String> {
    let mut all = bootmatrix::report::record::Report::new(&[]);
    for path in reports {
        let report = bootmatrix::report::record::Report::read(path)?;
        // A cell run again in a later report replaces the earlier one.
        for cell in report.cells {
            match all.cells.iter_mut().find(|c| c.id == cell.id) {
                Some(old) => *old = cell,
                None => all.cells.push(cell),
            }
        }
    }
    let text = bootmatrix::report::table::markdown(&all);
    let Some(file) = readme else {
        print!("{text}");
        return Ok(());
    };
    let old = bootmatrix::tools::read_input(file, bootmatrix::tools::SCENARIO_LIMIT)
        .map_err(|e| format!("--readme {}: {e}", file.display()))?;
    let old =
        String::from_utf8(old).map_err(|_| format!("--readme {}: not UTF-8", file.display()))?;
    let new = bootmatrix::report::table::replace_in(&old, &text)
        .map_err(|e| format!("--readme {}: {e}", file.display()))?;
    // Next to the file, then renamed over it: a reader never sees half a README.
    let tmp = file.with_extension("table-tmp");
    std::fs::write(&tmp, new)
        .and_then(|()| std::fs::rename(&tmp, file))
        .map_err(|e| format!("--readme {}: cannot write: {e}", file.display()))
}

/// `bootmatrix man [--out DIR]`.
fn man(out: Option<&Path>) -> ExitCode {
    let written = match out {
        None => pages::man_page(&mut std::io::stdout()).map(|()| Vec::new()),
        Some(dir) => pages::man_pages(dir),
    };
    match written {
        Ok(paths) => {
            for p in paths {
                println!("{}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let place = out.map_or("stdout".into(), |d| d.display().to_string());
            eprintln!("bootmatrix: cannot write the man pages to {place}: {e}");
            ExitCode::from(2)
        }
    }
}

pub(crate) fn execute(args: &Options) -> Result<u8, String> {
    let scenarios = match &args.cells.scenarios {
        Some(dir) => Scenarios::load_dir(dir).map_err(|e| e.to_string())?,
        None => Scenarios::builtin(),
    };
    // list and plan write nothing that outlives them; run keeps what it makes in its folder.
    let scratch = tempfile::tempdir().map_err(|e| format!("cannot make a temp folder: {e}"))?;
    let run_dir = match (&args.out, args.verb) {
        (Some(dir), _) => dir.clone(),
        // explain reads what the newest run recorded.
        (None, Verb::Explain) => explain::latest_run(Path::new("bootmatrix-runs"))
            .unwrap_or_else(|| PathBuf::from("bootmatrix-runs")),
        (None, _) => default_run_dir(),
    };
    if let (Some(shim), Verb::Run) = (&args.cells.shim, args.verb) {
        bootmatrix::discover::input_file("--shim", shim, bootmatrix::tools::KERNEL_LIMIT)?;
    }
    if let Some(root) = &args.found.descriptor_root {
        if !root.is_dir() {
            return Err(format!("--root {}: not a folder", root.display()));
        }
    }
    let kernel = bootmatrix::discover::find_kernel(args.found.kernel.as_deref());
    if let (Some(_), Err(why)) = (&args.found.kernel, &kernel) {
        return Err(why.clone());
    }
    let chains = bootmatrix::discover::chain::find(&args.found.chains);
    if let (false, Err(why)) = (args.found.chains.is_empty(), &chains) {
        return Err(why.clone());
    }
    let mut templates = cli::template::read_all(&args.cells.argv_templates)?;
    templates.extend(args.templates.iter().cloned());
    // The run folder is made only once there is something to run: discovery's files (the KVM
    // probe image) go to a temp folder.
    let inventory = discover(&DiscoverOptions {
        descriptor_dirs: args.found.descriptor_dirs.clone(),
        descriptor_root: args.found.descriptor_root.clone(),
        qemus: args.found.qemus.clone(),
        qemu_roots: args.found.qemu_roots.clone(),
        no_path_qemu: args.found.no_path_qemu,
        scratch: scratch.path().to_path_buf(),
    });
    // A QEMU asked for that cannot be used is a usage error, not an inventory finding: going
    // on without it would test something other than what was asked.
    if !inventory.requested_qemu_errors.is_empty() {
        let why: Vec<String> = inventory
            .requested_qemu_errors
            .iter()
            .map(|e| match e.problem {
                QemuProblem::Root(_) => format!("--qemu-root {e}"),
                _ => format!("--qemu {e}"),
            })
            .collect();
        return Err(why.join("; "));
    }
    // Absolute, so the argv printed by `plan` and stored in argv.txt works from anywhere.
    let run_dir = std::path::absolute(&run_dir).unwrap_or(run_dir);
    let options = plan_options(args, &run_dir, kernel.clone(), chains.clone(), &templates);
    let mut inventory = inventory;
    if let Some(build) = &args.build {
        select_build(&mut inventory, build)?;
    }
    let plan = plan::plan(&inventory, &scenarios, &options);
    // plan: one shard of it, when one is asked for (run cuts its own, for its folder).
    let (plan, sharding) = match args.verb {
        Verb::Plan => {
            let (shard, costs) = (cli::run::shard_of(args)?, cli::run::costs(args)?);
            let (plan, whole) = cli::run::sharded(plan, &run_dir, shard, &costs);
            (plan, Some((shard, costs, whole)))
        }
        _ => (plan, None),
    };
    match args.verb {
        Verb::List => {
            print_inventory(&inventory, &plan);
            match &options.kernel {
                Ok(k) => println!("kernel for kernel-boot cells: {}", k.display()),
                Err(why) => println!("kernel-boot cells are skipped: {why}"),
            }
            match &options.chains {
                Ok(chains) => {
                    for c in chains {
                        println!(
                            "distro chain {}: {} ({}; {}; {})",
                            c.suite,
                            c.dir.display(),
                            c.shim.package,
                            c.grub.package,
                            c.kernel.package
                        );
                    }
                }
                Err(why) => println!("distro-chain cells are skipped: {why}"),
            }
            Ok(0)
        }
        Verb::Explain => {
            let id = args.cell.as_deref().unwrap_or_default();
            let cell = explain::find_cell(&plan, id)?;
            let firmware = inventory
                .firmware
                .iter()
                .find(|f| cell.id.split('/').next() == Some(f.label().as_str()));
            let recorded = explain::recorded(&run_dir, &cell.id);
            print!(
                "{}",
                explain::explain(cell, firmware, &scenarios, &run_dir, recorded.as_ref())
            );
            Ok(0)
        }
        Verb::Plan if args.verify => {
            let scratch = tempfile::Builder::new()
                .prefix("bmv")
                .tempdir()
                .map_err(|e| format!("cannot make a temp folder: {e}"))?;
            let options = plan_options(args, scratch.path(), kernel, chains, &templates);
            let verified = cli::verify::verify_plan(args, &inventory, &scenarios, &options);
            for l in &plan.left_out {
                println!("LEFT OUT {}: {}", l.what, l.reason);
            }
            Ok(verified)
        }
        Verb::Plan if args.json => {
            let json = cli::plan_json::plan_json(&plan, &options, sharding.as_ref());
            println!("{}", serde_json::to_string_pretty(&json).expect("JSON"));
            Ok(0)
        }
        Verb::Plan => {
            print_plan(&plan);
            Ok(0)
        }
        Verb::Expect => {
            let build = args.build.as_ref().expect("expect has a build");
            let firmware: Vec<_> = inventory.firmware.iter().collect();
            print!("{}", expect::render(build, &firmware, &plan, &scenarios));
            Ok(0)
        }
        Verb::Run => {
            // The cells again, for a run folder other than the one planned for.
            let replan = |dir: &Path| {
                plan::plan(
                    &inventory,
                    &scenarios,
                    &plan_options(args, dir, kernel.clone(), chains.clone(), &templates),
                )
            };
            cli::run::run_all(args, &run_dir, &inventory, plan, &scenarios, &replan)
        }
    }
}

fn plan_options(
    args: &Options,
    run_dir: &Path,
    kernel: Result<PathBuf, String>,
    chains: Result<Vec<bootmatrix::discover::chain::DistroChain>, String>,
    templates: &[plan::template::ArgvTemplate],
) -> PlanOptions {
    let mut options = PlanOptions::new(Layout::new(run_dir));
    options.forced_accel = args.cells.accel;
    options.filter = args.filter.clone();
    options.timeout_scale = args.timeout_scale;
    options.profile = args.cells.profile;
    options.kernel = kernel;
    options.chains = chains;
    options.host_suite = bootmatrix::discover::chain::host_suite()
        .and_then(|s| s.parse().ok())
        .unwrap_or(options.host_suite);
    options.shim = args.cells.shim.clone();
    options.templates = templates.to_vec();
    options
}

/// Keeps only the firmware of `build`; an error names what was found instead.
fn select_build(inventory: &mut Inventory, build: &expect::Build) -> Result<(), String> {
    let found: Vec<String> = inventory
        .firmware
        .iter()
        .map(|f| match &f.package {
            Some(p) => format!("{} ({p})", f.descriptor.name),
            None => f.descriptor.name.clone(),
        })
        .collect();
    inventory.firmware.retain(|f| build.selects(f));
    if inventory.firmware.is_empty() {
        let what = match build {
            expect::Build::Package(p) => format!("no descriptor names firmware of package {p:?}"),
            expect::Build::Firmware(f) => {
                format!("no descriptor is, or names, {}", f.display())
            }
        };
        return Err(format!(
            "{what}; descriptors found: {}",
            if found.is_empty() {
                "none".into()
            } else {
                found.join(", ")
            }
        ));
    }
    Ok(())
}

/// How many characters of one value from a file `list` shows.
const FIELD: usize = 200;

/// A value from a file as `list` shows it: control characters escaped, long text cut.
fn field(text: &str) -> String {
    shown(text, FIELD)
}

/// A path from a file or a folder as `list` shows it: bytes that are not UTF-8 and control
/// characters escaped, long paths cut.
fn path(p: &Path) -> String {
    shown(&shown_name(p.as_os_str()), FIELD)
}

/// A message that may quote a file (a broken descriptor, a file that cannot be hashed): one
/// line, escaped, cut at a length no real message reaches.
fn message(text: &str) -> String {
    shown(text, 4 * FIELD)
}

fn mapping_summary(d: &Descriptor) -> String {
    match &d.mapping {
        Mapping::Flash(f) => {
            let mut s = format!(
                "flash {}: {} ({})",
                f.mode,
                path(&f.executable.filename),
                f.executable.format
            );
            if let Some(t) = &f.nvram_template {
                s.push_str(&format!(
                    ", nvram-template {} ({})",
                    path(&t.filename),
                    t.format
                ));
            }
            s
        }
        Mapping::Memory { filename } => format!("memory: {}", path(filename)),
        Mapping::Kernel { filename } => format!("kernel: {}", path(filename)),
        Mapping::Igvm { filename } => format!("igvm: {}", path(filename)),
    }
}

pub(crate) fn print_found(inventory: &Inventory) {
    println!(
        "descriptors: {} usable, {} broken, {} masked, {} overridden (searched {})",
        inventory.firmware.len(),
        inventory.descriptor_errors.len(),
        inventory.masked.len(),
        inventory.overridden.len(),
        inventory
            .search_dirs
            .iter()
            .map(|d| path(d))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for e in &inventory.descriptor_errors {
        println!("  skipped broken descriptor {}", message(&e.to_string()));
    }
    for q in &inventory.qemus {
        println!(
            "qemu: {} ({}; {}); KVM: {}; SEV: {}",
            q.binary.path.display(),
            q.binary.banner,
            q.binary.launch.describe(),
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
        let label = f.label();
        let left_out = plan.left_out.iter().find(|l| l.what == f.shown_name());
        println!(
            "{}  [{}]",
            field(&d.name),
            left_out.map_or("tested".to_string(), |l| format!(
                "left out: {}",
                message(&l.reason)
            ))
        );
        println!("    {}", field(&d.description));
        println!("    {}", mapping_summary(d));
        let features: Vec<String> = d
            .features
            .iter()
            .map(|feat| match feat {
                Feature::Other(name) => format!("{} (unknown)", field(name)),
                known => known.to_string(),
            })
            .collect();
        println!("    features: {}", features.join(", "));
        match (&f.executable_sha256, &f.package) {
            (Ok(sha), Some(pkg)) => println!("    executable sha256 {sha} ({})", field(pkg)),
            (Ok(sha), None) => println!("    executable sha256 {sha}"),
            (Err(why), _) => println!("    executable: {}", message(why)),
        }
        println!("    from {}", path(&d.path));
        if let Some(tree) = &f.tree {
            // Trees of several releases ship descriptors of the same name.
            println!(
                "    in the package tree {}; its cells are {label}/...",
                path(tree)
            );
        }
    }
    for m in &inventory.masked {
        println!("{} masks {}", path(&m.by), path(&m.hidden));
    }
    for m in &inventory.masks_nothing {
        println!(
            "{} masks nothing (an empty file, and no file of its name in less specific folders)",
            path(m)
        );
    }
    for o in &inventory.overridden {
        println!("{} overrides {}", path(&o.by), path(&o.hidden));
    }
    for l in plan
        .left_out
        .iter()
        .filter(|l| !inventory.firmware.iter().any(|f| f.shown_name() == l.what))
    {
        println!("{}: {}", field(&l.what), message(&l.reason));
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
