//! `bootmatrix report merge`: the reports of the shards of one matrix put back together into
//! one report, in plan order. It refuses, naming the cells or the files, shards planned from
//! different inputs (their plan fingerprints differ), shards that overlap, and cells missing
//! from, or foreign to, the planned matrix: a merged report is the whole matrix or nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::record::{CellRecord, Report, RunRecord};
use crate::run::Figures;

/// How many cell ids a refusal names before it says how many more there are.
const NAMED: usize = 20;

/// A shard's report, read from `path`.
pub struct Input {
    pub path: PathBuf,
    pub report: Report,
}

/// `ids` as a refusal names them: the first [`NAMED`], then the count of the rest.
fn named(ids: &[String]) -> String {
    let mut text = ids
        .iter()
        .take(NAMED)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > NAMED {
        text.push_str(&format!(" and {} more", ids.len() - NAMED));
    }
    text
}

/// The reports of the shards of one matrix as one report, or why they are not that.
pub fn merge(inputs: &[Input]) -> Result<Report, String> {
    let Some(first) = inputs.first() else {
        return Err("no reports to merge".into());
    };
    let mut runs: Vec<(&Input, &RunRecord)> = Vec::new();
    for input in inputs {
        let run = input.report.run.as_ref().ok_or_else(|| {
            format!(
                "{}: has no plan fingerprint (a report of a bootmatrix without shards, or not \
                 a run's report.json): it cannot be merged",
                input.path.display()
            )
        })?;
        runs.push((input, run));
    }
    let reference = runs[0].1;
    let strangers: Vec<String> = runs
        .iter()
        .filter(|(_, r)| r.plan_fingerprint != reference.plan_fingerprint)
        .map(|(i, r)| describe(i, r))
        .collect();
    if !strangers.is_empty() {
        return Err(format!(
            "the shards were planned from different inputs (descriptors, QEMUs, scenarios, \
             filter or options): {} differs from {}",
            strangers.join("; "),
            describe(first, reference)
        ));
    }
    // Two reports of the same shard, or a whole run with a shard of it.
    let mut by_shard: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (input, run) in &runs {
        let key = run
            .shard
            .map_or("the whole matrix".to_string(), |s| format!("shard {s}"));
        by_shard
            .entry(key)
            .or_default()
            .push(input.path.display().to_string());
    }
    let mut owner: BTreeMap<&str, Vec<&Path>> = BTreeMap::new();
    for input in inputs {
        for cell in &input.report.cells {
            owner.entry(&cell.id).or_default().push(&input.path);
        }
    }
    let twice: Vec<String> = owner
        .iter()
        .filter(|(_, files)| files.len() > 1)
        .map(|(id, files)| {
            let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            format!("{id} (in {})", files.join(" and "))
        })
        .collect();
    if !twice.is_empty() {
        let repeated: Vec<String> = by_shard
            .iter()
            .filter(|(_, files)| files.len() > 1)
            .map(|(shard, files)| format!("{shard} is given twice ({})", files.join(", ")))
            .collect();
        return Err(format!(
            "the shards overlap: {} cells are in more than one report{}: {}",
            twice.len(),
            if repeated.is_empty() {
                String::new()
            } else {
                format!(" ({})", repeated.join("; "))
            },
            named(&twice)
        ));
    }
    let planned = &reference.planned;
    let foreign: Vec<String> = owner
        .keys()
        .filter(|id| !planned.iter().any(|p| p == *id))
        .map(|id| id.to_string())
        .collect();
    if !foreign.is_empty() {
        return Err(format!(
            "{} cells are not in the planned matrix: {}",
            foreign.len(),
            named(&foreign)
        ));
    }
    let missing: Vec<String> = planned
        .iter()
        .filter(|id| !owner.contains_key(id.as_str()))
        .cloned()
        .collect();
    if !missing.is_empty() {
        let given: Vec<&str> = by_shard.keys().map(String::as_str).collect();
        return Err(format!(
            "{} of the planned matrix's {} cells are in none of the reports (given: {}): {}",
            missing.len(),
            planned.len(),
            given.join(", "),
            named(&missing)
        ));
    }
    let mut cells: BTreeMap<String, CellRecord> = BTreeMap::new();
    for (input, run) in &runs {
        for cell in &input.report.cells {
            let mut cell = cell.clone();
            cell.log_dir = cell.log_dir.map(|d| rebased(&d, &run.run_dir, &input.path));
            cells.insert(cell.id.clone(), cell);
        }
    }
    let ordered: Vec<CellRecord> = planned.iter().filter_map(|id| cells.remove(id)).collect();
    let mut shards: Vec<RunRecord> = runs.iter().map(|(_, r)| (*r).clone()).collect();
    shards.sort_by_key(|r| r.shard.map(|s| s.index));
    Ok(Report {
        run: Some(RunRecord {
            plan_fingerprint: reference.plan_fingerprint.clone(),
            planned: planned.clone(),
            shard: None,
            run_dir: PathBuf::new(),
            started: shards
                .iter()
                .map(|r| r.started.clone())
                .min()
                .unwrap_or_default(),
            figures: combined(&shards),
        }),
        shards,
        cells: ordered,
    })
}

/// `path (shard K/N, fingerprint ...)`.
fn describe(input: &Input, run: &RunRecord) -> String {
    format!(
        "{} ({}, fingerprint {})",
        input.path.display(),
        run.shard
            .map_or("the whole matrix".to_string(), |s| format!("shard {s}")),
        run.plan_fingerprint
            .get(..16)
            .unwrap_or(&run.plan_fingerprint)
    )
}

/// A cell's log folder, moved with its report: the run wrote it under `run_dir`; the report is
/// now at `report`, in what was the run folder (an artifact downloaded elsewhere). Unchanged
/// when it is not under `run_dir` or not found there.
pub fn rebased(log_dir: &Path, run_dir: &Path, report: &Path) -> PathBuf {
    let (Ok(inside), Some(folder)) = (log_dir.strip_prefix(run_dir), report.parent()) else {
        return log_dir.to_path_buf();
    };
    let moved = folder.join(inside);
    if moved.is_dir() {
        std::path::absolute(&moved).unwrap_or(moved)
    } else {
        log_dir.to_path_buf()
    }
}

/// The figures of the shards together: sums, the largest overhead, the mean overhead over all
/// booted cells, and as wall time the span from the first shard's start to the last one's end
/// (on parallel jobs about the slowest shard; one after the other, about their sum).
pub fn combined(shards: &[RunRecord]) -> Figures {
    let sum = |f: fn(&Figures) -> u64| shards.iter().map(|r| f(&r.figures)).sum::<u64>();
    let booted = sum(|f| f.booted as u64);
    // Each shard's start and end; all of them, or the sum of the shards' times.
    let spans: Option<Vec<(jiff::Timestamp, jiff::Timestamp)>> = shards
        .iter()
        .map(|r| {
            let start: jiff::Timestamp = r.started.parse().ok()?;
            let ms = i64::try_from(r.figures.prepare_ms + r.figures.wall_ms).ok()?;
            let end = start
                .checked_add(jiff::SignedDuration::from_millis(ms))
                .ok()?;
            Some((start, end))
        })
        .collect();
    let wall_ms = match spans.as_deref() {
        Some(spans @ [_, ..]) => {
            let first = spans.iter().map(|s| s.0).min().expect("not empty");
            let last = spans.iter().map(|s| s.1).max().expect("not empty");
            u64::try_from(last.duration_since(first).as_millis()).unwrap_or(0)
        }
        _ => sum(|f| f.prepare_ms + f.wall_ms),
    };
    Figures {
        wall_ms,
        prepare_ms: sum(|f| f.prepare_ms),
        slots: sum(|f| f.slots as u64) as usize,
        cells: sum(|f| f.cells as u64) as usize,
        booted: booted as usize,
        sum_decided_ms: sum(|f| f.sum_decided_ms),
        sum_elapsed_ms: sum(|f| f.sum_elapsed_ms),
        overhead_mean_ms: sum(|f| f.overhead_mean_ms * f.booted as u64)
            .checked_div(booted)
            .unwrap_or(0),
        overhead_max_ms: shards
            .iter()
            .map(|r| r.figures.overhead_max_ms)
            .max()
            .unwrap_or(0),
        deadline_cells: sum(|f| f.deadline_cells as u64) as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::shard::Shard;
    use crate::report::fixtures::every_shape;
    use crate::report::records;

    /// The fixture cells, split into `total` shards round-robin, each a report of a run in
    /// `/runs/K` started a minute after the one before, lasting 50 s.
    fn shards(total: usize) -> (Vec<String>, Vec<Input>) {
        let cells = records(&every_shape());
        let planned: Vec<String> = cells.iter().map(|c| c.id.clone()).collect();
        let inputs = (1..=total)
            .map(|k| {
                let mine: Vec<CellRecord> = cells
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % total == k - 1)
                    .map(|(_, c)| c.clone())
                    .collect();
                let run = RunRecord {
                    plan_fingerprint: "f".repeat(64),
                    planned: planned.clone(),
                    shard: Some(Shard::new(k, total).unwrap()),
                    run_dir: PathBuf::from(format!("/runs/{k}")),
                    started: format!("2026-12-02T08:0{k}:00Z"),
                    figures: Figures {
                        wall_ms: 45_000,
                        prepare_ms: 5_000,
                        slots: 2,
                        cells: mine.len(),
                        booted: 2,
                        sum_decided_ms: 1_000 * k as u64,
                        sum_elapsed_ms: 2_000 * k as u64,
                        overhead_mean_ms: 10 * k as u64,
                        overhead_max_ms: 100 * k as u64,
                        deadline_cells: 1,
                    },
                };
                Input {
                    path: PathBuf::from(format!("/a/shard-{k}/report.json")),
                    report: crate::report::report_json(Some(run), &mine),
                }
            })
            .collect();
        (planned, inputs)
    }

    #[test]
    fn shards_merge_into_the_whole_plan_in_plan_order_with_combined_figures() {
        let (planned, mut inputs) = shards(3);
        // Given in any order.
        inputs.reverse();
        let merged = merge(&inputs).unwrap();
        let ids: Vec<&String> = merged.cells.iter().map(|c| &c.id).collect();
        assert_eq!(ids, planned.iter().collect::<Vec<_>>());
        let run = merged.run.as_ref().unwrap();
        assert_eq!(run.shard, None);
        assert_eq!(run.planned, planned);
        let order: Vec<usize> = merged
            .shards
            .iter()
            .map(|r| r.shard.unwrap().index)
            .collect();
        assert_eq!(order, [1, 2, 3]);
        let f = &run.figures;
        // 08:01:00 to 08:03:00 + 50 s.
        assert_eq!(f.wall_ms, 170_000);
        assert_eq!(f.prepare_ms, 15_000);
        assert_eq!((f.slots, f.booted, f.deadline_cells), (6, 6, 3));
        assert_eq!(f.cells, planned.len());
        assert_eq!((f.sum_decided_ms, f.sum_elapsed_ms), (6_000, 12_000));
        assert_eq!((f.overhead_mean_ms, f.overhead_max_ms), (20, 300));
        assert_eq!(run.started, "2026-12-02T08:01:00Z");
    }

    #[test]
    fn without_start_times_the_wall_time_is_the_sum_of_the_shards() {
        let (_, mut inputs) = shards(2);
        inputs[1].report.run.as_mut().unwrap().started = "yesterday".into();
        let merged = merge(&inputs).unwrap();
        assert_eq!(merged.run.unwrap().figures.wall_ms, 100_000);
    }

    #[test]
    fn overlapping_shards_are_refused_naming_the_cells_and_the_files() {
        let (_, mut inputs) = shards(3);
        let stolen = inputs[0].report.cells[0].clone();
        inputs[1].report.cells.push(stolen.clone());
        let err = merge(&inputs).err().unwrap();
        assert!(err.contains("overlap"), "{err}");
        assert!(err.contains(&stolen.id), "{err}");
        assert!(
            err.contains("/a/shard-1/report.json and /a/shard-2/report.json"),
            "{err}"
        );
        // The same shard twice.
        let (_, mut inputs) = shards(3);
        let again = Input {
            path: "/b/report.json".into(),
            report: inputs[1].report.clone(),
        };
        inputs.push(again);
        let err = merge(&inputs).err().unwrap();
        assert!(err.contains("shard 2/3 is given twice"), "{err}");
    }

    #[test]
    fn missing_and_foreign_cells_are_refused_by_name() {
        let (_, inputs) = shards(3);
        let missing: Vec<String> = inputs[2]
            .report
            .cells
            .iter()
            .map(|c| c.id.clone())
            .collect();
        let err = merge(&inputs[..2]).err().unwrap();
        assert!(err.contains("in none of the reports"), "{err}");
        for id in &missing {
            assert!(err.contains(id.as_str()), "{id}: {err}");
        }
        assert!(err.contains("shard 1/3, shard 2/3"), "{err}");
        let (_, mut inputs) = shards(3);
        inputs[0].report.cells[0].id = "not/planned".into();
        let err = merge(&inputs).err().unwrap();
        assert!(
            err.contains("not in the planned matrix: not/planned"),
            "{err}"
        );
    }

    #[test]
    fn shards_of_different_plans_or_without_one_are_refused() {
        let (_, mut inputs) = shards(2);
        inputs[1].report.run.as_mut().unwrap().plan_fingerprint = "e".repeat(64);
        let err = merge(&inputs).err().unwrap();
        assert!(err.contains("planned from different inputs"), "{err}");
        assert!(
            err.contains("/a/shard-2/report.json (shard 2/2, fingerprint eeee"),
            "{err}"
        );
        let (_, mut inputs) = shards(2);
        inputs[0].report.run = None;
        let err = merge(&inputs).err().unwrap();
        assert!(
            err.contains("/a/shard-1/report.json: has no plan fingerprint"),
            "{err}"
        );
        assert!(merge(&[]).is_err());
    }

    #[test]
    fn a_refusal_names_twenty_cells_and_counts_the_rest() {
        let ids: Vec<String> = (0..25).map(|i| format!("c{i}")).collect();
        let text = named(&ids);
        assert!(text.contains("c19") && !text.contains("c20"), "{text}");
        assert!(text.ends_with(" and 5 more"), "{text}");
    }

    #[test]
    fn log_folders_move_with_their_report() {
        let dir = tempfile::tempdir().unwrap();
        let cell = dir.path().join("shard-2/cells/a/b");
        std::fs::create_dir_all(&cell).unwrap();
        let report = dir.path().join("shard-2/report.json");
        let moved = rebased(
            Path::new("/runs/2/cells/a/b"),
            Path::new("/runs/2"),
            &report,
        );
        assert_eq!(moved, cell);
        // Not under the run folder, or not there: unchanged.
        let other = Path::new("/elsewhere/cells/a/b");
        assert_eq!(rebased(other, Path::new("/runs/2"), &report), other);
        let gone = Path::new("/runs/2/cells/x");
        assert_eq!(rebased(gone, Path::new("/runs/2"), &report), gone);
    }
}
