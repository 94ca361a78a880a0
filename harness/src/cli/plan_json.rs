//! `bootmatrix plan --json`: every cell as JSON, with its argv or why it does not run, and for
//! every SEV-SNP cell the launch measurement predicted offline by `sev-snp-measure` (labelled
//! as predicted, never observed).

use serde::Serialize;

use super::run::Whole;

use bootmatrix::matrix::{Check, Confidential};
use bootmatrix::plan::admission::AdmissionRule;
use bootmatrix::plan::confidential::snp_launch;
use bootmatrix::plan::shard::{Costs, Shard};
use bootmatrix::plan::{Action, Plan, PlanOptions};
use bootmatrix::prepare::measure::{find_tool, predict, Prediction};

#[derive(Debug, Serialize)]
struct CellJson<'a> {
    id: &'a str,
    descriptor: &'a str,
    executable: &'a std::path::Path,
    qemu_version: String,
    machine: &'a str,
    confidential: Confidential,
    check: Check,
    variant: String,
    /// `run`, `skip`, `refused` or `error`.
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<AdmissionRule>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    argv: Option<&'a [String]>,
    /// What the cell is expected to cost (ms of one slot), as shards are balanced by.
    expected_cost_ms: u64,
    /// SEV-SNP cells: see [`Prediction`].
    #[serde(skip_serializing_if = "Option::is_none")]
    predicted_measurement: Option<Prediction>,
}

/// The plan as JSON: `{"cells": [...], "shard": ..., "plan_fingerprint": ..., ...}`: the
/// cells of the shard (all cells without one), and the whole plan's fingerprint and size.
pub fn plan_json(
    plan: &Plan,
    options: &PlanOptions,
    sharding: Option<&(Option<Shard>, Costs, Whole)>,
) -> serde_json::Value {
    let default = (None, Costs::default(), None);
    let (shard, costs, whole) = match sharding {
        Some((shard, costs, whole)) => (*shard, costs, Some(whole)),
        None => (default.0, &default.1, default.2),
    };
    let needs_tool = plan.cells.iter().any(|c| snp_launch(c, options).is_some());
    let tool = if needs_tool {
        find_tool().map_err(|e| e.to_string())
    } else {
        Err(String::new())
    };
    let cells: Vec<CellJson> = plan
        .cells
        .iter()
        .map(|c| {
            let (action, argv) = match &c.action {
                Action::Run(spec) => ("run", Some(spec.argv.as_slice())),
                Action::Skip(_) => ("skip", None),
                Action::Refused(_) => ("refused", None),
                Action::Error(_) => ("error", None),
            };
            let denial = c.action.denial();
            CellJson {
                id: &c.id,
                descriptor: &c.descriptor,
                executable: &c.executable,
                qemu_version: c.qemu_version.to_string(),
                machine: &c.machine,
                confidential: c.confidential,
                check: c.check,
                variant: c.variant.to_string(),
                action,
                rule: denial.map(|d| d.rule),
                reason: denial.map(|d| d.reason.as_str()),
                argv,
                expected_cost_ms: costs.of(c),
                predicted_measurement: snp_launch(c, options).map(|l| predict(&tool, l)),
            }
        })
        .collect();
    serde_json::json!({
        "cells": cells,
        "shard": shard,
        "plan_fingerprint": whole.map(|w| &w.fingerprint),
        "planned_cells": whole.map(|w| w.planned.len()),
        "planned_cost_ms": whole.map(|w| w.cost_ms),
    })
}
