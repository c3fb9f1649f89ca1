//! The run plan: every workload for every contender, run after run. Contenders are
//! interleaved — all of them run once before any runs a second time — so that drift
//! of the machine (frequency, other load) hits all of them alike.
//!
//! Their order rotates by one place each run ([`order`]), so that no contender holds
//! one position in every run. A fixed order measured a position effect on this 2-core
//! VM: in fan-in, the smol adapter, fourth in the order, trailed async-io, seventh, in
//! 12 of 13 rounds (0.72–0.92×), and with the two swapped, async-io trailed in all 3
//! rounds (0.283, 0.345 and 0.296 M msg/s against 0.383, 0.360 and 0.302). Whatever
//! makes a slot slow, a rotating order spreads it over the contenders instead of
//! charging it to one.

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
        let contenders = order(&plan.contenders, run - 1);
        for &workload in &plan.workloads {
            for &contender in contenders.iter().filter(|c| c.runs(workload)) {
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

/// The contenders' order in run `run` (from 0): `contenders` rotated left by `run`
/// places, so that over as many runs as there are contenders each holds every
/// position once (see the module docs).
pub fn order(contenders: &[Contender], run: usize) -> Vec<Contender> {
    let mut order = contenders.to_vec();
    if !order.is_empty() {
        let by = run % order.len();
        order.rotate_left(by);
    }
    order
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_run_rotates_the_order_by_one_place() {
        let all = Contender::ALL.to_vec();
        assert_eq!(order(&all, 0), all);
        let second = order(&all, 1);
        assert_eq!(second[0], all[1]);
        assert_eq!(second[all.len() - 1], all[0]);
        // Over as many runs as contenders, each holds every position exactly once.
        for contender in &all {
            let mut positions: Vec<usize> = (0..all.len())
                .map(|run| {
                    order(&all, run)
                        .iter()
                        .position(|c| c == contender)
                        .expect("every contender runs")
                })
                .collect();
            positions.sort_unstable();
            assert_eq!(positions, (0..all.len()).collect::<Vec<_>>());
        }
        assert!(order(&[], 3).is_empty());
    }
}
