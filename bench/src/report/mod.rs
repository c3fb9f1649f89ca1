//! From outcomes to the report: medians per cell, the adapter ÷ peer ratios with
//! their targets, rendered as markdown ([`markdown`]) and as an SVG bar chart
//! ([`svg`]).

pub mod markdown;
pub mod svg;
pub mod targets;

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::cell::Outcome;
use crate::contenders::Contender;
use crate::runner::{Plan, Results};
use crate::stats;
use crate::workload::{Metric, Values, Workload};
use targets::{Target, PAIRINGS};

/// One cell over all its runs.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// The median of each metric over the runs that measured.
    pub medians: Values,
    /// Runs that measured.
    pub measured: usize,
    /// Runs in all.
    pub runs: usize,
    /// What went wrong in the others (`timeout` or the error), one per run.
    pub problems: Vec<String>,
    /// Every measured value of each metric, in run order.
    pub samples: BTreeMap<Metric, Vec<f64>>,
}

impl Summary {
    fn of(workload: Workload, outcomes: &[Outcome]) -> Summary {
        let mut summary = Summary {
            runs: outcomes.len(),
            ..Summary::default()
        };
        let mut samples: BTreeMap<Metric, Vec<f64>> = BTreeMap::new();
        for outcome in outcomes {
            match outcome {
                Outcome::Measured(values) => {
                    summary.measured += 1;
                    for (metric, value) in &values.0 {
                        samples.entry(*metric).or_default().push(*value);
                    }
                }
                Outcome::Timeout => summary.problems.push("timeout".into()),
                Outcome::Failed(message) => summary.problems.push(message.clone()),
            }
        }
        for &metric in workload.metrics() {
            if let Some(median) = samples.get(&metric).and_then(|v| stats::median(v)) {
                summary.medians = std::mem::take(&mut summary.medians).with(metric, median);
            }
        }
        summary.samples = samples;
        summary
    }

    /// The smallest and largest value of `metric` over the runs that measured it.
    pub fn range(&self, metric: Metric) -> Option<(f64, f64)> {
        let values = self.samples.get(&metric).filter(|v| !v.is_empty())?;
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some((min, max))
    }

    /// max ÷ min of `metric` over the runs, when there are at least two.
    pub fn spread(&self, metric: Metric) -> Option<f64> {
        if self.samples.get(&metric).is_none_or(|v| v.len() < 2) {
            return None;
        }
        let (min, max) = self.range(metric)?;
        (min > 0.0).then(|| max / min)
    }

    /// How a metric of this cell reads in a table: the median, `timeout`, `error`, or
    /// `—` when not measured; a `*` when some runs failed.
    pub fn cell(&self, metric: Metric) -> String {
        match self.medians.get(metric) {
            Some(value) if self.measured < self.runs => format!("{}*", metric.format(value)),
            Some(value) => metric.format(value),
            None if self.problems.iter().all(|p| p == "timeout") && !self.problems.is_empty() => {
                "timeout".into()
            }
            None if !self.problems.is_empty() => "error".into(),
            None => "—".into(),
        }
    }
}

/// The share of the machine's CPU time (0 to 1) that was busy during `window`, from
/// `/proc/stat`; `None` if it cannot be read. Taken while the bench itself sleeps, it
/// tells how much other processes compete for the CPUs right now (a load average
/// would still carry the last minute's build or bench).
pub fn busy_share(window: std::time::Duration) -> Option<f64> {
    let first = cpu_times()?;
    std::thread::sleep(window);
    let second = cpu_times()?;
    let total = second.0.checked_sub(first.0)?;
    let idle = second.1.checked_sub(first.1)?;
    (total > 0).then(|| (total - idle.min(total)) as f64 / total as f64)
}

/// (all, idle + iowait) jiffies of the aggregate `cpu` line of `/proc/stat`.
fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    Some((fields.iter().sum(), idle))
}

/// Whether two (min, max) ranges share a point.
fn overlaps((a_min, a_max): (f64, f64), (b_min, b_max): (f64, f64)) -> bool {
    a_min <= b_max && b_min <= a_max
}

/// One row of the ratio table.
#[derive(Debug, Clone)]
pub struct RatioRow {
    /// The asyncresult adapter.
    pub adapter: Contender,
    /// Its native peer.
    pub peer: Contender,
    /// The workload.
    pub workload: Workload,
    /// The metric.
    pub metric: Metric,
    /// adapter ÷ peer.
    pub ratio: Option<f64>,
    /// The target, if any.
    pub target: Option<Target>,
    /// PASS (true) / MISS (false); `None` without a target or without the numbers.
    pub pass: Option<bool>,
    /// Whether the adapter's runs and the peer's runs overlap (some run of each lies
    /// within the other's range): then the verdict rests on where the medians fell
    /// within noise, not on a difference every run shows. `None` without both.
    pub overlap: Option<bool>,
    /// Run by run, how often the adapter did better than its peer (see [`Paired`]);
    /// `None` when no run measured both.
    pub paired: Option<Paired>,
}

/// An adapter against its peer run by run. Run *r* of both was measured in the same
/// pass over the contenders, at most a few cells apart, so a drift of the machine
/// that moves every contender's runs (this VM's modes) moves both sides of a pair,
/// where it can move one median and not the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Paired {
    /// Runs where the adapter did better (faster, or less memory).
    pub ahead: usize,
    /// Runs where it did worse.
    pub behind: usize,
    /// Runs where both measured the same.
    pub level: usize,
}

impl Paired {
    /// Pairs the runs of `adapter` and `peer` by their place in the run order (the
    /// same pass); a run that did not measure `metric` on either side pairs with
    /// nothing. `None` if no pair measured.
    fn of(adapter: &[Outcome], peer: &[Outcome], metric: Metric) -> Option<Paired> {
        let value = |outcome: &Outcome| match outcome {
            Outcome::Measured(values) => values.get(metric),
            Outcome::Timeout | Outcome::Failed(_) => None,
        };
        let mut paired = Paired::default();
        for (a, p) in adapter.iter().zip(peer) {
            let (Some(a), Some(p)) = (value(a), value(p)) else {
                continue;
            };
            // Ordered as "higher is better": a latency or memory pair reads reversed.
            let (better, worse) = if metric.higher_is_better() {
                (a, p)
            } else {
                (p, a)
            };
            match better.partial_cmp(&worse) {
                Some(Ordering::Greater) => paired.ahead += 1,
                Some(Ordering::Less) => paired.behind += 1,
                Some(Ordering::Equal) | None => paired.level += 1,
            }
        }
        (paired.pairs() > 0).then_some(paired)
    }

    /// Pairs compared.
    pub fn pairs(&self) -> usize {
        self.ahead + self.behind + self.level
    }
}

impl RatioRow {
    /// `PASS` or `MISS` where there is a verdict, and whether it rests on overlapping
    /// runs (see [`overlap`](RatioRow::overlap)).
    pub fn verdict(&self) -> Option<(&'static str, bool)> {
        let word = if self.pass? { "PASS" } else { "MISS" };
        Some((word, self.overlap == Some(true)))
    }

    /// The ratio as "higher is better" (latency and memory ratios inverted), for the
    /// chart.
    pub fn score(&self) -> Option<f64> {
        let ratio = self.ratio?;
        if self.metric.higher_is_better() {
            Some(ratio)
        } else if ratio > 0.0 {
            Some(1.0 / ratio)
        } else {
            None
        }
    }
}

/// Everything the renderers need.
#[derive(Debug, Clone)]
pub struct Report {
    /// What was run.
    pub plan: Plan,
    /// Each cell over its runs.
    pub summaries: BTreeMap<(Workload, Contender), Summary>,
    /// The ratio table.
    pub ratios: Vec<RatioRow>,
    /// Wall time of the whole run, in seconds.
    pub seconds: f64,
    /// The share of CPU time other processes kept busy just before the run (see
    /// [`busy_share`]).
    pub busy_before: Option<f64>,
}

impl Report {
    /// How `metric` of `contender` on `workload` reads in a table.
    pub fn cell(&self, workload: Workload, contender: Contender, metric: Metric) -> String {
        self.summaries
            .get(&(workload, contender))
            .map_or_else(|| "—".to_string(), |s| s.cell(metric))
    }

    /// Summarises `results` of `plan`.
    pub fn new(plan: &Plan, results: &Results, seconds: f64, busy_before: Option<f64>) -> Report {
        let summaries: BTreeMap<_, _> = results
            .cells
            .iter()
            .map(|(&(w, c), outcomes)| ((w, c), Summary::of(w, outcomes)))
            .collect();
        let mut ratios = Vec::new();
        for (adapter, peer, workloads) in PAIRINGS {
            for &workload in workloads.iter().filter(|w| plan.workloads.contains(w)) {
                let a = summaries.get(&(workload, adapter));
                let p = summaries.get(&(workload, peer));
                if a.is_none() && p.is_none() {
                    continue;
                }
                for &metric in workload.metrics() {
                    let adapter_value = a.and_then(|s| s.medians.get(metric));
                    let peer_value = p.and_then(|s| s.medians.get(metric));
                    let targets = targets::targets(adapter, peer, workload, metric);
                    if adapter_value.is_none() && peer_value.is_none() && targets.is_empty() {
                        continue;
                    }
                    let ratio = match (adapter_value, peer_value) {
                        (Some(a), Some(p)) if p > 0.0 => Some(a / p),
                        _ => None,
                    };
                    let overlap = match (
                        a.and_then(|s| s.range(metric)),
                        p.and_then(|s| s.range(metric)),
                    ) {
                        (Some(a), Some(p)) => Some(overlaps(a, p)),
                        _ => None,
                    };
                    let paired = match (
                        results.cells.get(&(workload, adapter)),
                        results.cells.get(&(workload, peer)),
                    ) {
                        (Some(a), Some(p)) => Paired::of(a, p, metric),
                        _ => None,
                    };
                    // One row per target (a row without one if there is none).
                    let rows = if targets.is_empty() {
                        vec![None]
                    } else {
                        targets.into_iter().map(Some).collect()
                    };
                    for target in rows {
                        let pass = match target {
                            Some(Target::Ratio(bound)) => ratio.map(|r| bound.holds(r)),
                            Some(Target::Absolute(bound)) => adapter_value.map(|v| bound.holds(v)),
                            None => None,
                        }
                        // An adapter that did not finish misses its target.
                        .or_else(|| {
                            (target.is_some()
                                && adapter_value.is_none()
                                && a.is_some_and(|s| !s.problems.is_empty()))
                            .then_some(false)
                        });
                        ratios.push(RatioRow {
                            adapter,
                            peer,
                            workload,
                            metric,
                            ratio,
                            target,
                            pass,
                            overlap,
                            paired,
                        });
                    }
                }
            }
        }
        Report {
            plan: plan.clone(),
            summaries,
            ratios,
            seconds,
            busy_before,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{overlaps, Paired};
    use crate::cell::Outcome;
    use crate::workload::{Metric, Values};

    fn measured(metric: Metric, value: f64) -> Outcome {
        Outcome::Measured(Values::default().with(metric, value))
    }

    #[test]
    fn runs_pair_by_their_place_and_count_by_what_is_better() {
        let gib = Metric::GibPerSec;
        let adapter = [
            measured(gib, 2.0),
            measured(gib, 1.0),
            Outcome::Timeout,
            measured(gib, 3.0),
        ];
        let peer = [
            measured(gib, 1.5),
            measured(gib, 1.2),
            measured(gib, 9.0),
            measured(gib, 3.0),
        ];
        // The timed-out run pairs with nothing; throughput: more is better.
        assert_eq!(
            Paired::of(&adapter, &peer, gib),
            Some(Paired {
                ahead: 1,
                behind: 1,
                level: 1
            })
        );
        // Latency: less is better, so the same numbers read the other way.
        let p50 = Metric::P50Micros;
        let adapter = [measured(p50, 10.0), measured(p50, 12.0)];
        let peer = [measured(p50, 11.0), measured(p50, 13.0)];
        assert_eq!(
            Paired::of(&adapter, &peer, p50),
            Some(Paired {
                ahead: 2,
                behind: 0,
                level: 0
            })
        );
        assert_eq!(Paired::of(&[Outcome::Timeout], &peer, p50), None);
    }

    #[test]
    fn ranges_overlap_only_when_they_share_a_point() {
        assert!(overlaps((1.0, 3.0), (2.0, 5.0)));
        assert!(overlaps((2.0, 5.0), (1.0, 3.0)));
        assert!(overlaps((1.0, 5.0), (2.0, 3.0)));
        assert!(overlaps((1.0, 2.0), (2.0, 3.0)));
        assert!(!overlaps((10.6, 10.8), (10.9, 11.1)));
        assert!(!overlaps((1.06, 1.2), (0.73, 0.96)));
    }
}
