//! The live progress of `run`: one line per finished cell (as always), and a status of the
//! whole run: done/total, failures and errors so far, and an ETA from the cost model scaled by
//! how fast the cells so far went. On a terminal the status is an `indicatif` bar under the
//! cell lines; otherwise (CI logs, pipes) it is a plain line, at most every
//! [`PLAIN_EVERY`] and once at the end.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use bootmatrix::judge::VerdictKind;
use bootmatrix::plan::shard::Costs;
use bootmatrix::plan::Plan;
use bootmatrix::report;
use bootmatrix::run::CellResult;

/// How often a plain status line is printed when stdout is not a terminal.
pub const PLAIN_EVERY: Duration = Duration::from_secs(30);

/// What the status line says, at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    pub done: usize,
    pub total: usize,
    pub failed: usize,
    pub errors: usize,
    /// Expected cost (ms of one slot) of the cells done, and of all cells.
    pub done_cost: u64,
    pub total_cost: u64,
    pub slots: usize,
}

impl Status {
    /// Time left: the cost not yet done, over the slots, at the pace of the cells done so far
    /// (`spent` since the first cell); the cost model's own pace before any cost is done.
    pub fn eta(&self, spent: Duration) -> Duration {
        let left = self.total_cost.saturating_sub(self.done_cost) as f64;
        let slots = self.slots.max(1) as f64;
        let pace = if self.done_cost > 0 {
            // Real slot-milliseconds per expected millisecond.
            spent.as_secs_f64() * 1000.0 * slots / self.done_cost as f64
        } else {
            1.0
        };
        Duration::from_millis((left * pace / slots) as u64)
    }

    /// `12/40 cells, 1 failed, 0 errors, ETA 3m10s`.
    pub fn line(&self, spent: Duration) -> String {
        let eta = if self.done == self.total {
            "done".to_string()
        } else {
            format!("ETA {}", minutes(self.eta(spent)))
        };
        format!(
            "{}/{} cells, {} failed, {} errors, {eta}",
            self.done, self.total, self.failed, self.errors
        )
    }
}

/// `3m10s`, `45s`, `1h02m`.
pub fn minutes(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

struct State {
    status: Status,
    last_plain: Instant,
}

pub struct Progress {
    costs: BTreeMap<String, u64>,
    state: Mutex<State>,
    started: Instant,
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(plan: &Plan, costs: &Costs, slots: usize) -> Progress {
        let costs: BTreeMap<String, u64> = plan
            .cells
            .iter()
            .map(|c| (c.id.clone(), costs.of(c)))
            .collect();
        let status = Status {
            total: plan.cells.len(),
            total_cost: costs.values().sum(),
            slots,
            ..Status::default()
        };
        let bar = std::io::stdout().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(plan.cells.len() as u64),
                ProgressDrawTarget::stdout(),
            );
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {msg}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar.set_message(status.line(Duration::ZERO));
            bar.enable_steady_tick(Duration::from_secs(1));
            bar
        });
        Progress {
            costs,
            state: Mutex::new(State {
                status,
                last_plain: Instant::now(),
            }),
            started: Instant::now(),
            bar,
        }
    }

    /// A finished cell: its line, then the status.
    pub fn cell_done(&self, result: &CellResult, done: usize, total: usize) {
        let line = report::progress_line(result, done, total);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let s = &mut state.status;
        s.done = done;
        s.done_cost += self.costs.get(&result.cell.id).copied().unwrap_or(0);
        match result.verdict.kind() {
            VerdictKind::Fail => s.failed += 1,
            VerdictKind::Error => s.errors += 1,
            _ => {}
        }
        let spent = self.started.elapsed();
        let status = s.line(spent);
        match &self.bar {
            Some(bar) => {
                bar.println(line);
                bar.set_position(done as u64);
                bar.set_message(status);
            }
            None => {
                println!("{line}");
                if state.last_plain.elapsed() >= PLAIN_EVERY && done < total {
                    state.last_plain = Instant::now();
                    println!("progress: {status}");
                }
            }
        }
    }

    /// A message that is not a cell's line (to stderr, above the bar on a terminal).
    pub fn error(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    /// The run is over: the bar goes, the last status stays as a plain line.
    pub fn finish(&self) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        println!("progress: {}", state.status.line(self.started.elapsed()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eta_is_the_cost_left_at_the_pace_so_far() {
        let mut s = Status {
            done: 0,
            total: 10,
            total_cost: 100_000,
            slots: 2,
            ..Status::default()
        };
        // Before anything is done: the model's own pace, over two slots.
        assert_eq!(s.eta(Duration::ZERO), Duration::from_secs(50));
        // A quarter of the cost done in 25 s on two slots: twice as slow as the model.
        s.done = 3;
        s.done_cost = 25_000;
        assert_eq!(s.eta(Duration::from_secs(25)), Duration::from_secs(75));
        s.failed = 1;
        assert_eq!(
            s.line(Duration::from_secs(25)),
            "3/10 cells, 1 failed, 0 errors, ETA 1m15s"
        );
        s.done = 10;
        s.done_cost = 100_000;
        assert_eq!(
            s.line(Duration::from_secs(99)),
            "10/10 cells, 1 failed, 0 errors, done"
        );
    }

    #[test]
    fn durations_read_as_minutes_or_hours() {
        assert_eq!(minutes(Duration::from_secs(45)), "45s");
        assert_eq!(minutes(Duration::from_secs(190)), "3m10s");
        assert_eq!(minutes(Duration::from_secs(3720)), "1h02m");
    }
}
