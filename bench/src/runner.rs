//! The run plan: every workload for every contender, run after run. Contenders are
//! interleaved — all of them run once before any runs a second time — so that drift
//! of the machine (frequency, other load) hits all of them alike.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::cell::{self, Outcome};
use crate::contenders::Contender;
use crate::scale::Scale;
use crate::workload::{Metric, Workload};

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Sizes and time limits.
    pub scale: Scale,
    /// Runs per cell.
    pub runs: usize,
    /// Contenders, in order.
    pub contenders: Vec<Contender>,
    /// Workloads, in order.
    pub workloads: Vec<Workload>,
}

/// Every outcome, by workload and contender, in run order.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// The outcomes of each cell.
    pub cells: BTreeMap<(Workload, Contender), Vec<Outcome>>,
}

/// Runs `plan`, reporting progress on stderr.
pub fn run(plan: &Plan) -> Results {
    let mut results = Results::default();
    let cells: usize = plan
        .workloads
        .iter()
        .map(|w| plan.contenders.iter().filter(|c| c.runs(*w)).count())
        .sum();
    for run in 1..=plan.runs {
        let mut done = 0;
        for &workload in &plan.workloads {
            for &contender in plan.contenders.iter().filter(|c| c.runs(workload)) {
                done += 1;
                let started = Instant::now();
                let outcome = cell::run_in_child(contender, workload, &plan.scale);
                eprintln!(
                    "[run {run}/{runs} {done:>2}/{cells}] {workload:<10} {contender:<17} {:<28} {:>6.1} s",
                    describe(workload, &outcome),
                    started.elapsed().as_secs_f64(),
                    runs = plan.runs,
                );
                results
                    .cells
                    .entry((workload, contender))
                    .or_default()
                    .push(outcome);
            }
        }
    }
    results
}

/// A one-line summary of an outcome, for progress.
fn describe(workload: Workload, outcome: &Outcome) -> String {
    match outcome {
        Outcome::Timeout => "TIMEOUT".into(),
        Outcome::Failed(message) => format!("FAILED: {message}"),
        Outcome::Measured(values) => workload
            .metrics()
            .iter()
            .filter_map(|m: &Metric| Some(format!("{} {}", m.format(values.get(*m)?), m.label())))
            .collect::<Vec<_>>()
            .join(", "),
    }
}
