//! Runs the planned cells: prepare each, boot it, judge it, record it. Cells run in parallel,
//! `jobs` at a time; results come back in plan order.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::boot;
use crate::judge::{self, Case, Verdict};
use crate::matrix::Check;
use crate::observe::Watcher;
use crate::plan::admission::Denial;
use crate::plan::layout::Layout;
use crate::plan::verify::Target;
use crate::plan::{Action, Artifact, Cell, Plan, RunSpec};
use crate::prepare::{self, Prepared};
use crate::scenario::Scenarios;

#[derive(Debug, Clone, PartialEq)]
pub struct CellResult {
    pub cell: Cell,
    /// The verdict, with the observation (and its evidence) it was judged on.
    pub verdict: Verdict,
    /// From QEMU start to the last console line the verdict rests on.
    pub decided: Option<Duration>,
    /// From QEMU start to QEMU reaped.
    pub elapsed: Option<Duration>,
    /// The guest ran until its deadline and was killed.
    pub deadline: bool,
}

/// Judges a cell that never boots (skipped or unplannable).
fn not_booted(cell: &Cell, verdict: Verdict) -> CellResult {
    CellResult {
        cell: cell.clone(),
        verdict,
        decided: None,
        elapsed: None,
        deadline: false,
    }
}

/// The reason of a cell a signal kept from booting.
pub const NOT_BOOTED: &str = "interrupted: not booted";
/// The reason of a cell whose guest a signal stopped before it was decided.
pub const STOPPED_MID_BOOT: &str = "interrupted: stopped mid-boot";

/// Runs one cell from its plan to its verdict.
pub fn run_cell(cell: &Cell, prepared: &Prepared, scenarios: &Scenarios) -> CellResult {
    let spec = match &cell.action {
        Action::Skip(why) | Action::Refused(why) => {
            return not_booted(cell, Verdict::skip(&why.reason))
        }
        Action::Error(why) => return not_booted(cell, Verdict::error(&why.reason)),
        Action::Run(spec) => spec,
    };
    let Some(rule) = &cell.rule else {
        return not_booted(cell, Verdict::error("no expectation for this cell"));
    };
    if boot::interrupted().is_some() {
        return not_booted(cell, Verdict::error(NOT_BOOTED));
    }
    if let Some(why) = prepared.blocker(spec) {
        return not_booted(cell, Verdict::error(why));
    }
    if let Err(why) = prepare::cell(spec) {
        return not_booted(cell, Verdict::error(why.to_string()));
    }
    if cell.check == Check::KeyHealth {
        return key_health(cell, spec, rule, scenarios);
    }
    let mut watcher = Watcher::for_spec(spec);
    let outcome = boot::boot(spec, &mut watcher);
    let deadline = matches!(outcome.end, boot::BootEnd::Deadline { .. });
    if boot::interrupted().is_some() && outcome.end != boot::BootEnd::Stopped {
        // Whatever the guest showed, it did not get to show enough.
        return CellResult {
            elapsed: Some(outcome.elapsed),
            deadline,
            ..not_booted(cell, Verdict::error(STOPPED_MID_BOOT))
        };
    }
    let verdict = judge::judge(
        &case_of(cell),
        rule,
        watcher.finish(&outcome.end),
        scenarios,
    );
    CellResult {
        cell: cell.clone(),
        // When the last line the verdict rests on was read.
        decided: verdict
            .evidence()
            .last()
            .map(|e| e.at)
            .or(outcome.stopped_after),
        verdict,
        elapsed: Some(outcome.elapsed),
        deadline,
    }
}

/// What the judge needs to know of a cell.
fn case_of(cell: &Cell) -> Case<'_> {
    Case {
        check: cell.check,
        tweak: cell.variant.tweak,
        qemu: cell.qemu_version,
        executable_sha256: cell.executable_sha256.as_deref(),
        secure_boot_support: cell.secure_boot_support,
        build: &cell.descriptor,
        machine: &cell.machine,
        machine_globs: &cell.machine_globs,
        edk2: cell.edk2,
        accel: cell.accel,
    }
}

/// A key-health cell boots nothing: its private varstore copy is read through virt-fw-vars
/// and judged on today's date (UTC). A store that cannot be read is an error, never a verdict
/// on the firmware.
fn key_health(
    cell: &Cell,
    spec: &RunSpec,
    rule: &crate::scenario::Rule,
    scenarios: &Scenarios,
) -> CellResult {
    let started = std::time::Instant::now();
    let Some((_, copy)) = spec.copies.last() else {
        return not_booted(
            cell,
            Verdict::error("key-health: the cell has no varstore copy"),
        );
    };
    let mut store = match crate::discover::varstore::read(copy) {
        Ok(store) => store,
        Err(e) => return not_booted(cell, Verdict::error(e.to_string())),
    };
    store.recognize(&scenarios.well_known);
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let findings = judge::keyhealth::key_health(
        &store,
        cell.edk2,
        cell.profile,
        &scenarios.well_known,
        today,
    );
    let what = format!("{}, judged on {today}", cell.variant.vars.as_str());
    let observation = judge::keyhealth::observation(&findings, &what);
    let verdict = judge::judge(&case_of(cell), rule, Ok(observation), scenarios);
    CellResult {
        cell: cell.clone(),
        decided: Some(Duration::ZERO),
        verdict,
        elapsed: Some(started.elapsed()),
        deadline: false,
    }
}

/// How a run went, in figures: what the report records and the benchmark reads.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Figures {
    /// From the first cell started to the last one finished (the shared preparation before
    /// is `prepare_ms`).
    pub wall_ms: u64,
    /// The shared preparation: test keys, signed payloads, option ROMs, varstores.
    pub prepare_ms: u64,
    /// Cells run at once (`--jobs`).
    pub slots: usize,
    pub cells: usize,
    /// Cells that started a guest (or read a varstore, key-health).
    pub booted: usize,
    /// Sum over the cells of QEMU start to the last line the verdict rests on.
    pub sum_decided_ms: u64,
    /// Sum over the cells of QEMU start to QEMU reaped.
    pub sum_elapsed_ms: u64,
    /// The harness's own time per booted cell (the cell's copies, logs and judging: its whole
    /// time in a slot less QEMU's), mean and largest.
    pub overhead_mean_ms: u64,
    pub overhead_max_ms: u64,
    /// Cells whose guest ran until its deadline and was killed.
    pub deadline_cells: usize,
}

impl Figures {
    /// The figures of `results`, each with its whole time in a slot, over `wall`.
    pub fn of(results: &[(CellResult, Duration)], wall: Duration, slots: usize) -> Figures {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let booted: Vec<&(CellResult, Duration)> = results
            .iter()
            .filter(|(r, _)| r.elapsed.is_some())
            .collect();
        let overheads: Vec<u64> = booted
            .iter()
            .map(|(r, spent)| ms(spent.saturating_sub(r.elapsed.unwrap_or_default())))
            .collect();
        Figures {
            wall_ms: ms(wall),
            prepare_ms: 0,
            slots,
            cells: results.len(),
            booted: booted.len(),
            sum_decided_ms: results.iter().filter_map(|(r, _)| r.decided).map(ms).sum(),
            sum_elapsed_ms: results.iter().filter_map(|(r, _)| r.elapsed).map(ms).sum(),
            overhead_mean_ms: overheads
                .iter()
                .sum::<u64>()
                .checked_div(overheads.len() as u64)
                .unwrap_or(0),
            overhead_max_ms: overheads.iter().copied().max().unwrap_or(0),
            deadline_cells: results.iter().filter(|(r, _)| r.deadline).count(),
        }
    }
}

/// Runs every cell; `on_done` sees each result as it finishes (progress lines, the cell's own
/// verdict file), from the worker that ran it. After a signal (see [`boot::interrupted`]) no
/// cell starts: the ones left come back as errors, [`NOT_BOOTED`], without `on_done`. The
/// figures are the run's, but for `prepare_ms`, which the caller knows.
pub fn execute(
    plan: &Plan,
    prepared: &Prepared,
    scenarios: &Scenarios,
    jobs: usize,
    on_done: &(dyn Fn(&CellResult, usize, usize) + Sync),
) -> (Vec<CellResult>, Figures) {
    let total = plan.cells.len();
    let next = AtomicUsize::new(0);
    let finished = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<(CellResult, Duration)>>> = Mutex::new(vec![None; total]);
    // Skipped cells first and at once, so the progress shows them without waiting for boots.
    let order: Vec<usize> = (0..total)
        .filter(|&i| !matches!(plan.cells[i].action, Action::Run(_)))
        .chain((0..total).filter(|&i| matches!(plan.cells[i].action, Action::Run(_))))
        .collect();
    let slots = jobs.max(1);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..slots {
            scope.spawn(|| loop {
                if boot::interrupted().is_some() {
                    break;
                }
                let n = next.fetch_add(1, Ordering::SeqCst);
                let Some(&i) = order.get(n) else { break };
                let cell_started = Instant::now();
                let result = run_cell(&plan.cells[i], prepared, scenarios);
                let spent = cell_started.elapsed();
                let done = finished.fetch_add(1, Ordering::SeqCst) + 1;
                on_done(&result, done, total);
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some((result, spent));
            });
        }
    });
    let wall = started.elapsed();
    let timed: Vec<(CellResult, Duration)> = results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .zip(&plan.cells)
        .map(|(result, cell)| {
            result.unwrap_or_else(|| (not_booted(cell, Verdict::error(NOT_BOOTED)), Duration::ZERO))
        })
        .collect();
    let figures = Figures::of(&timed, wall, slots);
    (timed.into_iter().map(|(r, _)| r).collect(), figures)
}

/// What `plan --verify` found for one cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Verified {
    /// Its argv was started. `host`: the host-capability denial it has here, when it was
    /// planned as on a capable host.
    Started {
        verdict: boot::verify::Verdict,
        host: Option<Denial>,
    },
    /// Its argv could not be started: what it names could not be made.
    NotStarted(String),
    /// It has no argv (see [`Target::NoArgv`]).
    NoArgv(Denial),
}

impl Verified {
    /// Whether the cell makes `plan --verify` fail: a rejected argv, or one not started.
    pub fn fails(&self) -> bool {
        matches!(
            self,
            Verified::NotStarted(_)
                | Verified::Started {
                    verdict: boot::verify::Verdict::Rejected { .. },
                    ..
                }
        )
    }
}

/// `plan --verify`: starts the argv of every target paused on its own QEMU (`jobs` at a time),
/// after making stand-ins of what the argv name (`prepare::standin`) under `layout`, which the
/// targets were planned into (a scratch folder). `machine_property`: test-only, appended to
/// every argv's `-machine` (a property QEMU must reject). Results in target order.
pub fn verify(
    targets: &[(&str, Target)],
    layout: &Layout,
    jobs: usize,
    machine_property: Option<&str>,
) -> Vec<Verified> {
    let specs: Vec<&RunSpec> = targets
        .iter()
        .filter_map(|(_, t)| match t {
            Target::Argv { spec, .. } => Some(spec.as_ref()),
            Target::NoArgv(_) => None,
        })
        .collect();
    let artifacts: BTreeSet<Artifact> = specs.iter().flat_map(|s| s.needs.clone()).collect();
    let made = prepare::standin::stand_ins(&artifacts.into_iter().collect::<Vec<_>>(), layout);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Verified>>> = Mutex::new(vec![None; targets.len()]);
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((_, target)) = targets.get(i) else {
                    break;
                };
                let verified = match target {
                    Target::NoArgv(denial) => Verified::NoArgv(denial.clone()),
                    Target::Argv { spec, host } => {
                        // Short: a unix socket path has at most 107 bytes.
                        let socket = layout.root.join(format!("qmp{i}.sock"));
                        verify_one(spec, &made, &socket, machine_property, host)
                    }
                };
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(verified);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|v| v.unwrap_or_else(|| Verified::NotStarted(NOT_BOOTED.into())))
        .collect()
}

fn verify_one(
    spec: &RunSpec,
    made: &Prepared,
    socket: &Path,
    machine_property: Option<&str>,
    host: &Option<Denial>,
) -> Verified {
    if boot::interrupted().is_some() {
        return Verified::NotStarted(NOT_BOOTED.into());
    }
    if let Some(why) = made.blocker(spec) {
        return Verified::NotStarted(why);
    }
    if let Err(why) = prepare::cell(spec) {
        return Verified::NotStarted(why.to_string());
    }
    let mut argv = spec.argv.clone();
    if let Some(property) = machine_property {
        if let Some(i) = argv.iter().position(|a| a == "-machine") {
            if let Some(value) = argv.get_mut(i + 1) {
                value.push(',');
                value.push_str(property);
            }
        }
    }
    let start = boot::verify::start_paused(&argv, socket, boot::verify::VERIFY_LIMIT);
    Verified::Started {
        verdict: boot::verify::classify(&argv, &start, host.is_some()),
        host: host.clone(),
    }
}
