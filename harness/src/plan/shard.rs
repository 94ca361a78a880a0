//! Splitting a plan across the parallel jobs of a CI engine (GitLab `parallel:`, a GitHub
//! Actions matrix, a Kubernetes indexed Job): shard K of N is a deterministic slice of the
//! planned cells, the N slices together are the whole plan with no cell twice, and the slices
//! are balanced by expected cost. Every shard of one matrix carries the same
//! [`fingerprint`], so that reports planned from different inputs are never merged.

use std::collections::BTreeMap;
use std::fmt;
#[cfg(test)]
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::matrix::{Check, Tweak};

use super::spec::artifacts_for;
use super::{Action, Cell, Plan};

/// Shard `index` of `total` (1-based: `1/3`, `2/3`, `3/3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub total: usize,
}

impl Shard {
    /// Shard `index` of `total`, or why that is no shard.
    pub fn new(index: usize, total: usize) -> Result<Shard, String> {
        if total == 0 {
            return Err("the number of shards must be at least 1".into());
        }
        if index == 0 || index > total {
            return Err(format!(
                "shard {index} of {total}: the index counts from 1 to {total}"
            ));
        }
        Ok(Shard { index, total })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.total)
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `K/N`, as `--shard` takes it.
    fn from_str(s: &str) -> Result<Shard, String> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not K/N (for example 2/3)"))?;
        let number = |t: &str| {
            t.trim()
                .parse::<usize>()
                .map_err(|_| format!("{s:?} is not K/N: {t:?} is not a number"))
        };
        Shard::new(number(k)?, number(n)?)
    }
}

/// The shard the CI engine's own variables name, when no `--shard` is given: GitLab's
/// `CI_NODE_INDEX`/`CI_NODE_TOTAL` (1-based), else Kubernetes' `JOB_COMPLETION_INDEX`
/// (0-based) with `total` given by the caller (`--shard-total`). `var` reads a variable.
pub fn from_engine(
    var: &dyn Fn(&str) -> Option<String>,
    total: Option<usize>,
) -> Result<Option<Shard>, String> {
    let number = |name: &str, text: String| {
        text.trim()
            .parse::<usize>()
            .map_err(|_| format!("{name}={text:?} is not a number"))
    };
    match (var("CI_NODE_INDEX"), var("CI_NODE_TOTAL")) {
        (Some(k), Some(n)) => {
            let (k, n) = (number("CI_NODE_INDEX", k)?, number("CI_NODE_TOTAL", n)?);
            return Shard::new(k, n)
                .map(Some)
                .map_err(|e| format!("CI_NODE_INDEX/CI_NODE_TOTAL: {e}"));
        }
        (Some(_), None) => return Err("CI_NODE_INDEX is set but CI_NODE_TOTAL is not".into()),
        (None, Some(_)) => return Err("CI_NODE_TOTAL is set but CI_NODE_INDEX is not".into()),
        (None, None) => {}
    }
    match (var("JOB_COMPLETION_INDEX"), total) {
        (Some(k), Some(n)) => {
            let k = number("JOB_COMPLETION_INDEX", k)?;
            Shard::new(k + 1, n)
                .map(Some)
                .map_err(|e| format!("JOB_COMPLETION_INDEX={k} with --shard-total {n}: {e}"))
        }
        (Some(_), None) => Err(
            "JOB_COMPLETION_INDEX is set (a Kubernetes indexed Job): give the Job's completions \
             as --shard-total N"
                .into(),
        ),
        (None, Some(n)) => Err(format!(
            "--shard-total {n} needs JOB_COMPLETION_INDEX (a Kubernetes indexed Job) or --shard"
        )),
        (None, None) => Ok(None),
    }
}

/// What a cell is expected to cost, in milliseconds of one slot: its time in a previous run
/// where one was recorded, else [`model_cost`].
#[derive(Debug, Clone, Default)]
pub struct Costs {
    /// Cell id to milliseconds, from a previous report (`--timings`).
    pub measured: BTreeMap<String, u64>,
}

impl Costs {
    pub fn of(&self, cell: &Cell) -> u64 {
        match (&cell.action, self.measured.get(&cell.id)) {
            // A cell that does not boot costs nothing, whatever an older run did with it.
            (Action::Skip(_) | Action::Refused(_) | Action::Error(_), _) => 0,
            (Action::Run(_), Some(&ms)) => ms,
            (Action::Run(_), None) => model_cost(cell),
        }
    }
}

/// A probe cell under TCG: about what one takes on a 2-core machine (QEMU start to reaped).
pub const PROBE_COST_MS: u64 = 8_000;

/// The cost model for a cell no previous run timed: a kernel boot costs about twice a probe
/// boot, the distro chain (shim, grub, kernel) three times, a key-health cell (a varstore read,
/// no boot) a twentieth; cells that do not boot cost nothing.
pub fn model_cost(cell: &Cell) -> u64 {
    if !matches!(cell.action, Action::Run(_)) {
        return 0;
    }
    match cell.check {
        Check::KeyHealth => PROBE_COST_MS / 20,
        Check::DistroChain => 3 * PROBE_COST_MS,
        _ if cell.variant.tweak == Tweak::Kernel || cell.check == Check::KernelBoot => {
            2 * PROBE_COST_MS
        }
        _ => PROBE_COST_MS,
    }
}

/// Which shard (0-based) each cell of `cells` goes to: the cells, costliest first (then by id),
/// each to the shard with the least cost so far (then the lowest index); the cells that cost
/// nothing to the shard with the fewest cells. Deterministic for the
/// same cells and costs, and no shard exceeds the mean by more than the costliest cell.
pub fn assign(cells: &[Cell], total: usize, costs: &Costs) -> Vec<usize> {
    let total = total.max(1);
    let mut order: Vec<(u64, &str, usize)> = cells
        .iter()
        .enumerate()
        .map(|(i, c)| (costs.of(c), c.id.as_str(), i))
        .collect();
    order.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let mut load = vec![(0u64, 0usize); total];
    let mut shard_of = vec![0; cells.len()];
    for (cost, _, i) in order {
        // The least cost so far, then the fewest cells, then the lowest index; cells that
        // cost nothing (they come last) go to the shard with the fewest cells, so that they
        // spread too.
        let s = (0..total)
            .min_by_key(|&s| match cost {
                0 => (load[s].1 as u64, 0, s),
                _ => (load[s].0, load[s].1 as u64, s),
            })
            .expect("at least one shard");
        load[s].0 += cost;
        load[s].1 += 1;
        shard_of[i] = s;
    }
    shard_of
}

/// Shard `shard` of `plan`: its cells, in plan order, and only the artifacts they need (the
/// shared preparation is made once per shard). `left_out` is kept: it is about the whole plan.
pub fn select(plan: Plan, shard: Shard, costs: &Costs) -> Plan {
    let assigned = assign(&plan.cells, shard.total, costs);
    let cells: Vec<Cell> = plan
        .cells
        .into_iter()
        .zip(assigned)
        .filter(|(_, s)| *s + 1 == shard.index)
        .map(|(c, _)| c)
        .collect();
    Plan {
        artifacts: artifacts_for(&cells),
        cells,
        left_out: plan.left_out,
    }
}

/// A digest of what the plan was made from, the same for every shard of one matrix: every
/// cell's id, what it does (its argv with the run folder written `{run}`, or why it does not
/// boot), its rule and its firmware's sha256. Two reports with different fingerprints were
/// planned from different descriptors, QEMUs, scenarios, filters or options. How long a cell
/// may take (`--timeout-scale`) and how many run at once are not part of it: a slower job may
/// wait longer for the same cells.
pub fn fingerprint(plan: &Plan, run_root: &std::path::Path) -> String {
    let root = run_root.to_string_lossy();
    let mut hash = Sha256::new();
    let mut field = |text: &str| {
        hash.update((text.len() as u64).to_le_bytes());
        hash.update(text.as_bytes());
    };
    for cell in &plan.cells {
        field(&cell.id);
        field(cell.executable_sha256.as_deref().unwrap_or("-"));
        field(cell.package.as_deref().unwrap_or("-"));
        field(&format!("{:?}", cell.rule));
        match &cell.action {
            Action::Run(spec) => {
                field("run");
                for word in &spec.argv {
                    // The run folder differs between shards; what is in it does not.
                    field(&word.replace(root.as_ref(), "{run}"));
                }
            }
            Action::Skip(d) => field(&format!("skip {:?} {}", d.rule, d.reason)),
            Action::Refused(d) => field(&format!("refused {:?} {}", d.rule, d.reason)),
            Action::Error(d) => field(&format!("error {:?} {}", d.rule, d.reason)),
        }
    }
    let digest = hash.finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expected cost of each shard, in the plan's cost model.
    fn loads(cells: &[Cell], total: usize, costs: &Costs) -> Vec<u64> {
        let mut load = vec![0; total.max(1)];
        for (cell, s) in cells.iter().zip(assign(cells, total, costs)) {
            load[s] += costs.of(cell);
        }
        load
    }

    #[test]
    fn shards_parse_and_refuse_what_is_no_shard() {
        assert_eq!("2/3".parse::<Shard>(), Ok(Shard { index: 2, total: 3 }));
        assert_eq!(Shard::new(3, 3).unwrap().to_string(), "3/3");
        for bad in ["0/3", "4/3", "1/0", "3", "a/3", "1/b", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn gitlab_and_kubernetes_variables_name_the_shard() {
        let gitlab = vars(&[("CI_NODE_INDEX", "2"), ("CI_NODE_TOTAL", "4")]);
        assert_eq!(
            from_engine(&gitlab, None),
            Ok(Some(Shard::new(2, 4).unwrap()))
        );
        // Kubernetes counts from 0.
        let k8s = vars(&[("JOB_COMPLETION_INDEX", "0")]);
        assert_eq!(
            from_engine(&k8s, Some(3)),
            Ok(Some(Shard::new(1, 3).unwrap()))
        );
        let last = vars(&[("JOB_COMPLETION_INDEX", "2")]);
        assert_eq!(
            from_engine(&last, Some(3)),
            Ok(Some(Shard::new(3, 3).unwrap()))
        );
        assert_eq!(from_engine(&vars(&[]), None), Ok(None));
    }

    #[test]
    fn engine_variables_that_do_not_name_a_shard_are_errors_naming_them() {
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<usize>, &'a str);
        let cases: &[Case] = &[
            (&[("CI_NODE_INDEX", "1")], None, "CI_NODE_TOTAL"),
            (&[("CI_NODE_TOTAL", "3")], None, "CI_NODE_INDEX"),
            (
                &[("CI_NODE_INDEX", "x"), ("CI_NODE_TOTAL", "3")],
                None,
                "CI_NODE_INDEX=\"x\"",
            ),
            (
                &[("CI_NODE_INDEX", "4"), ("CI_NODE_TOTAL", "3")],
                None,
                "CI_NODE_INDEX/CI_NODE_TOTAL",
            ),
            (&[("JOB_COMPLETION_INDEX", "1")], None, "--shard-total"),
            (
                &[("JOB_COMPLETION_INDEX", "3")],
                Some(3),
                "JOB_COMPLETION_INDEX=3",
            ),
            (&[], Some(3), "JOB_COMPLETION_INDEX"),
        ];
        for (pairs, total, named) in cases {
            let err = from_engine(&vars(pairs), *total).unwrap_err();
            assert!(err.contains(named), "{pairs:?}: {err}");
        }
    }

    /// A real plan: two builds (split flash, SMM, Secure Boot; and one without) on three
    /// QEMUs, with a kernel: secure-boot, option-rom, kernel-boot cells and skipped SEV cells.
    fn planned(root: &str) -> Plan {
        use crate::plan::layout::Layout;
        use crate::plan::testkit::{descriptor_text, firmware, qemu_target, SPLIT};
        let mut options = crate::plan::PlanOptions::new(Layout::new(root));
        options.kernel = Ok("/boot/vmlinuz".into());
        let inv = crate::discover::Inventory {
            firmware: vec![
                firmware(
                    "50-secure.json",
                    &descriptor_text(SPLIT, &["requires-smm", "secure-boot", "amd-sev"]),
                ),
                firmware("60-plain.json", &descriptor_text(SPLIT, &[])),
            ],
            qemus: ["7.2.0", "10.0.2", "11.1.0"]
                .iter()
                .map(|v| qemu_target(v, Err("host has no AMD SEV".into())))
                .collect(),
            ..Default::default()
        };
        crate::plan::plan(&inv, &crate::scenario::Scenarios::builtin(), &options)
    }

    #[test]
    fn shards_are_disjoint_cover_the_plan_and_keep_plan_order() {
        let plan = planned("/run");
        assert!(plan.cells.len() > 50, "{}", plan.cells.len());
        let ids: Vec<&str> = plan.cells.iter().map(|c| c.id.as_str()).collect();
        for total in [1, 2, 3, 7] {
            let mut seen: Vec<String> = Vec::new();
            for index in 1..=total {
                let shard = select(
                    plan.clone(),
                    Shard::new(index, total).unwrap(),
                    &Costs::default(),
                );
                // In plan order within the shard.
                let mine: Vec<&str> = shard.cells.iter().map(|c| c.id.as_str()).collect();
                let positions: Vec<usize> = mine
                    .iter()
                    .map(|id| ids.iter().position(|i| i == id).unwrap())
                    .collect();
                assert!(positions.windows(2).all(|w| w[0] < w[1]), "{mine:?}");
                seen.extend(mine.iter().map(|s| s.to_string()));
            }
            let mut sorted = seen.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), seen.len(), "a cell in two of {total} shards");
            let mut all: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
            all.sort();
            assert_eq!(sorted, all, "{total} shards are not the plan");
        }
    }

    #[test]
    fn shards_balance_expected_cost_and_spread_the_free_cells() {
        let plan = planned("/run");
        // Uneven costs: the shards' loads differ when the free cells come to be placed.
        let mut costs = Costs::default();
        for (n, c) in plan.cells.iter().enumerate() {
            costs
                .measured
                .insert(c.id.clone(), 7_000 + (n * n * 131 % 4999) as u64);
        }
        let loads = loads(&plan.cells, 3, &costs);
        let mean = loads.iter().sum::<u64>() / 3;
        let max = *loads.iter().max().unwrap();
        assert!(max * 100 <= mean * 125, "{loads:?}");
        let free = plan.cells.iter().filter(|c| costs.of(c) == 0).count();
        assert!(free > 10, "{free}");
        let assigned = assign(&plan.cells, 3, &costs);
        for s in 0..3 {
            let n = plan
                .cells
                .iter()
                .zip(&assigned)
                .filter(|(c, a)| **a == s && costs.of(c) == 0)
                .count();
            assert!(n * 3 + 3 >= free, "shard {s}: {n} of {free} free cells");
        }
    }

    #[test]
    fn measured_times_replace_the_model_and_move_cells() {
        let plan = planned("/run");
        let runnable: Vec<&Cell> = plan
            .cells
            .iter()
            .filter(|c| matches!(c.action, Action::Run(_)))
            .collect();
        let kernel = runnable
            .iter()
            .find(|c| c.check == Check::KernelBoot)
            .unwrap();
        let probe = runnable
            .iter()
            .find(|c| c.check == Check::SecureBoot)
            .unwrap();
        let skipped = plan
            .cells
            .iter()
            .find(|c| !matches!(c.action, Action::Run(_)))
            .unwrap();
        let model = Costs::default();
        assert_eq!(model.of(kernel), 2 * model.of(probe));
        assert_eq!(model.of(skipped), 0);
        let mut measured = Costs::default();
        measured.measured.insert(probe.id.clone(), 123_456);
        measured.measured.insert(skipped.id.clone(), 99_000);
        assert_eq!(measured.of(probe), 123_456);
        assert_eq!(
            measured.of(skipped),
            0,
            "a cell that does not boot costs nothing"
        );
        // The shard that got the very costly cell holds less of everything else.
        let assigned = assign(&plan.cells, 2, &measured);
        let i = plan.cells.iter().position(|c| c.id == probe.id).unwrap();
        let load = |s: usize| {
            plan.cells
                .iter()
                .zip(&assigned)
                .filter(|(_, a)| **a == s)
                .map(|(c, _)| measured.of(c))
                .sum::<u64>()
        };
        let (mine, other) = (load(assigned[i]), load(1 - assigned[i]));
        assert!(mine - 123_456 < other, "{mine} {other}");
        let unmeasured = loads(&plan.cells, 2, &model);
        assert!(
            unmeasured[0].abs_diff(unmeasured[1]) <= 2 * PROBE_COST_MS,
            "{unmeasured:?}"
        );
    }

    #[test]
    fn the_fingerprint_ignores_the_run_folder_and_sees_every_input() {
        let a = planned("/run/a");
        let b = planned("/elsewhere/b");
        assert_eq!(
            fingerprint(&a, Path::new("/run/a")),
            fingerprint(&b, Path::new("/elsewhere/b"))
        );
        let base = fingerprint(&a, Path::new("/run/a"));
        assert_eq!(base.len(), 64);
        let mut fewer = a.clone();
        fewer.cells.pop();
        assert_ne!(fingerprint(&fewer, Path::new("/run/a")), base);
        let mut other_fw = a.clone();
        other_fw.cells[0].executable_sha256 = Some("11".repeat(32));
        assert_ne!(fingerprint(&other_fw, Path::new("/run/a")), base);
        let mut other_rule = a.clone();
        let i = other_rule
            .cells
            .iter()
            .position(|c| c.rule.is_some())
            .unwrap();
        other_rule.cells[i].rule = None;
        assert_ne!(fingerprint(&other_rule, Path::new("/run/a")), base);
        let mut other_argv = a.clone();
        let Some(Action::Run(spec)) = other_argv
            .cells
            .iter_mut()
            .map(|c| &mut c.action)
            .find(|a| matches!(a, Action::Run(_)))
        else {
            panic!("no runnable cell")
        };
        spec.argv.push("-S".into());
        assert_ne!(fingerprint(&other_argv, Path::new("/run/a")), base);
    }

    #[test]
    fn a_shard_prepares_only_what_its_cells_need() {
        let plan = planned("/run");
        let total: usize = plan.artifacts.len();
        let mut union = std::collections::BTreeSet::new();
        for index in 1..=3 {
            let shard = select(
                plan.clone(),
                Shard::new(index, 3).unwrap(),
                &Costs::default(),
            );
            let need = artifacts_for(&shard.cells);
            assert_eq!(shard.artifacts, need);
            union.extend(shard.artifacts);
        }
        assert_eq!(union.len(), total);
    }
}
