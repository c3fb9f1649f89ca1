//! What a run did and saw ([`Report`]), with the monitor's [`Sample`]s and the
//! completions per adapter ([`AdapterCount`]): the one-line summary, and the checks
//! that turn it into a list of problems.

use std::time::Duration;

use super::MIB;

/// One look at the process during a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Time since the run started.
    pub at: Duration,
    /// Operations started so far.
    pub ops: u64,
    /// Open file descriptors.
    pub fds: usize,
    /// Resident set size, bytes.
    pub rss: u64,
    /// Sockets registered with the engine.
    pub sockets: usize,
}

/// Completions of one adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterCount {
    /// The adapter (and its runtime).
    pub name: &'static str,
    /// Operations started through it.
    pub started: u64,
    /// Completions reported: callbacks run, futures resolved.
    pub completed: u64,
    /// Futures dropped on purpose before they completed (their operations go on).
    pub abandoned: u64,
    /// Completions lost: a callback or a future dropped without reporting.
    pub lost: u64,
    /// Contract breaches seen inside callbacks and futures.
    pub anomalies: Vec<String>,
}

impl AdapterCount {
    /// Completions expected: every start but the futures dropped on purpose.
    pub fn expected(&self) -> u64 {
        self.started.saturating_sub(self.abandoned)
    }
}

/// What a run did and saw.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// What this reports on: `"mix"`, or `"warm-up"` if the warm-up failed (the mix
    /// proper then did not run).
    pub stage: &'static str,
    /// The seed (replay with [`SEED_ENV`](super::SEED_ENV)).
    pub seed: u64,
    /// Operations of the warm-up run before the baselines (not counted below).
    pub warm_up_ops: u64,
    /// How long the mix ran.
    pub elapsed: Duration,
    /// Sends started (batched, dropped, bounded).
    pub sends: u64,
    /// Receives started (probes, bounded, dropped futures included).
    pub receives: u64,
    /// Accepts started.
    pub accepts: u64,
    /// Connects started.
    pub connects: u64,
    /// Rounds (connections) run.
    pub rounds: u64,
    /// Rounds without a close or reset.
    pub clean_rounds: u64,
    /// Sockets closed under pending operations (listeners included).
    pub closes: u64,
    /// Of `closes`, listeners closed under a pending accept.
    pub listener_closes: u64,
    /// Connections reset (`SO_LINGER` 0, then close).
    pub resets: u64,
    /// Operations that ended `Aborted` (timeouts and `cancel()`).
    pub cancels: u64,
    /// Records parsed and checked.
    pub records_checked: u64,
    /// Bytes received and checked.
    pub bytes_checked: u64,
    /// Completions per adapter.
    pub adapters: Vec<AdapterCount>,
    /// Open descriptors before the run (after a warm-up).
    pub fds_before: usize,
    /// Open descriptors after everything was dropped.
    pub fds_after: usize,
    /// The most descriptors seen open.
    pub fds_peak: usize,
    /// RSS before the run, bytes.
    pub rss_before: u64,
    /// RSS after everything was dropped, bytes.
    pub rss_after: u64,
    /// The highest RSS seen, bytes.
    pub rss_peak: u64,
    /// The most sockets registered with the engine at once.
    pub sockets_peak: usize,
    /// The monitor's samples.
    pub samples: Vec<Sample>,
    /// Whether the mix hung (then descriptors and RSS were not measured after it).
    pub hung: bool,
    /// What went wrong.
    pub failures: Vec<String>,
    /// The bounds the run is held to: minimum operations, minimum sockets, RSS growth.
    pub bounds: (u64, usize, u64),
}

pub(super) fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

impl Report {
    /// Operations started, all kinds.
    pub fn ops(&self) -> u64 {
        self.sends + self.receives + self.accepts + self.connects
    }

    /// The one-line summary.
    pub fn summary(&self) -> String {
        let adapters: Vec<String> = self
            .adapters
            .iter()
            .map(|a| format!("{} {}/{}", a.name, a.expected(), a.completed))
            .collect();
        let abandoned: u64 = self.adapters.iter().map(|a| a.abandoned).sum();
        let lost: u64 = self.adapters.iter().map(|a| a.lost).sum();
        format!(
            "stress summary ({}): seed {:#x}; {:.1} s (after a warm-up of {} operations); \
             {} operations (sends {}, receives {}, accepts {}, connects {}) in {} rounds ({} without close/reset); faults injected: \
             {} closes ({} of listeners), {} resets, {} cancels; completions expected/seen: {} \
             (futures dropped on purpose {}, lost {}); fds before/after {}/{} (peak {}); \
             RSS before/after {:.1}/{:.1} MiB (peak {:.1}, bound +{:.0} MiB); sockets peak {}; \
             {} records, {:.1} MiB checked; {} failures",
            self.stage,
            self.seed,
            self.elapsed.as_secs_f64(),
            self.warm_up_ops,
            self.ops(),
            self.sends,
            self.receives,
            self.accepts,
            self.connects,
            self.rounds,
            self.clean_rounds,
            self.closes,
            self.listener_closes,
            self.resets,
            self.cancels,
            adapters.join(", "),
            abandoned,
            lost,
            self.fds_before,
            self.fds_after,
            self.fds_peak,
            mib(self.rss_before),
            mib(self.rss_after),
            mib(self.rss_peak),
            mib(self.bounds.2),
            self.sockets_peak,
            self.records_checked,
            mib(self.bytes_checked),
            self.failures.len(),
        )
    }

    /// Failures, and adapters whose completions do not add up.
    pub fn accounting_problems(&self) -> Vec<String> {
        let mut out = self.failures.clone();
        for a in &self.adapters {
            if a.completed != a.expected() || a.lost > 0 {
                out.push(format!(
                    "{}: {} completions expected, {} seen, {} lost",
                    a.name,
                    a.expected(),
                    a.completed,
                    a.lost
                ));
            }
            out.extend(a.anomalies.iter().map(|x| format!("{}: {x}", a.name)));
        }
        out
    }

    /// Everything that is wrong with the run (empty if it passed): the accounting,
    /// descriptors back to their baseline, RSS growth within its bound, and (if nothing
    /// failed) the size of the run and that every fault kind was injected.
    pub fn problems(&self) -> Vec<String> {
        let mut out = self.accounting_problems();
        if self.hung {
            // Descriptors and RSS were not measured: operations are still stuck.
            return out;
        }
        let (min_ops, min_sockets, rss_growth) = self.bounds;
        if self.fds_after > self.fds_before {
            out.push(format!(
                "open descriptors did not return to their baseline: {} before, {} after",
                self.fds_before, self.fds_after
            ));
        }
        if self.rss_after > self.rss_before + rss_growth {
            out.push(format!(
                "RSS grew from {:.1} MiB to {:.1} MiB (bound +{:.0} MiB)",
                mib(self.rss_before),
                mib(self.rss_after),
                mib(rss_growth)
            ));
        }
        if !self.failures.is_empty() {
            // The mix stopped at the first failure: its size says nothing more.
            return out;
        }
        if self.ops() < min_ops {
            out.push(format!(
                "only {} operations ran (at least {min_ops})",
                self.ops()
            ));
        }
        if self.sockets_peak < min_sockets {
            out.push(format!(
                "at most {} sockets were open at once (at least {min_sockets})",
                self.sockets_peak
            ));
        }
        if self.closes == 0 || self.resets == 0 || self.cancels == 0 {
            out.push(format!(
                "a fault kind was never injected: {} closes, {} resets, {} cancels",
                self.closes, self.resets, self.cancels
            ));
        }
        out
    }

    /// The soak's trend check: the median descriptor count and RSS of the last third
    /// of the samples against those of the middle third. Descriptors may rise by 16
    /// (connections in flight vary), RSS by a quarter or 32 MiB, whichever is more.
    ///
    /// Not against the first third: RSS is still settling there, as the allocator's
    /// per-thread arenas fill up under the mix's threads (on the 2-core development VM
    /// it rose from 83 to about 125 MiB over the first 30 s, then stayed between 114
    /// and 139 MiB for the rest of a 3-minute soak of 7 million operations). Something
    /// that keeps rising rises between the middle third and the last as well, and the
    /// run's own bound on RSS growth ([`Config::rss_growth_limit`]) covers the whole.
    ///
    /// [`Config::rss_growth_limit`]: super::Config::rss_growth_limit
    pub fn growth_problems(&self) -> Vec<String> {
        let n = self.samples.len();
        if n < 6 {
            return Vec::new();
        }
        let third = n / 3;
        let median = |samples: &[Sample], key: fn(&Sample) -> u64| {
            let mut values: Vec<u64> = samples.iter().map(key).collect();
            values.sort_unstable();
            values[values.len() / 2]
        };
        let (middle, last) = (&self.samples[third..2 * third], &self.samples[n - third..]);
        let mut out = Vec::new();
        let fds = |s: &Sample| s.fds as u64;
        let (fds_middle, fds_last) = (median(middle, fds), median(last, fds));
        if fds_last > fds_middle + 16 {
            out.push(format!(
                "the descriptor count kept growing: median {fds_middle} in the middle third, \
                 {fds_last} in the last"
            ));
        }
        let rss = |s: &Sample| s.rss;
        let (rss_middle, rss_last) = (median(middle, rss), median(last, rss));
        if rss_last > rss_middle + (rss_middle / 4).max(32 * MIB) {
            out.push(format!(
                "RSS kept growing: median {:.1} MiB in the middle third, {:.1} MiB in the last",
                mib(rss_middle),
                mib(rss_last)
            ));
        }
        out
    }
}
