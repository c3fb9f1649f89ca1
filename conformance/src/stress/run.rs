//! A run: the warm-up, the descriptor and RSS baselines, then the mix itself (the
//! adapters, the lanes and the monitor), and afterwards the wait for everything to
//! settle before the report is filled in.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use super::config::{Budget, Config, PAIRS};
use super::lanes::{spawn_lanes, Shared};
use super::lock;
use super::monitor::monitor;
use super::net::Nets;
use super::probes::{open_fds, settle, steady_fds, trimmed_rss};
use super::report::Report;

/// Runs the mix as `config` says and reports what it saw: first a warm-up of
/// [`Config::warm_up_ops`] operations, then the baselines, then the mix itself.
pub fn run(config: &Config) -> Report {
    let mut report = Report {
        stage: "mix",
        seed: config.seed,
        bounds: (config.min_ops, config.min_sockets, config.rss_growth_limit),
        ..Report::default()
    };
    let warm = Config {
        budget: Budget {
            ops: config.warm_up_ops,
            time: Duration::ZERO,
        },
        print_every: None,
        seed: config.seed ^ 0x5741_524D,
        ..config.clone()
    };
    let mut warmed = Report {
        stage: "warm-up",
        ..report.clone()
    };
    mix(&warm, &mut warmed, None);
    let trouble = warmed.accounting_problems();
    if warmed.hung || !trouble.is_empty() {
        // What the warm-up saw is the report: the mix proper never ran.
        warmed.failures = trouble
            .into_iter()
            .map(|t| format!("warm-up: {t}"))
            .collect();
        warmed.adapters.clear();
        return warmed;
    }
    report.warm_up_ops = warmed.ops();
    report.fds_before = steady_fds();
    report.rss_before = trimmed_rss();
    let baseline = report.fds_before;
    mix(config, &mut report, Some(baseline));
    report
}

/// One run of the mix; afterwards (unless it hung), waits for what finishes in the
/// background and for the descriptor count to come down to `fds_baseline`.
fn mix(config: &Config, report: &mut Report, fds_baseline: Option<usize>) {
    let nets = match Nets::new() {
        Ok(nets) => nets,
        Err(e) => {
            report.failures.push(e);
            return;
        }
    };
    let tallies = nets.tallies();
    let sh = Arc::new(Shared::new(
        config.clone(),
        config.lanes_per_pair * PAIRS.len(),
    ));
    let (ended_tx, ended) = mpsc::channel();
    let lanes = spawn_lanes(&sh, &nets, &ended_tx);
    drop(ended_tx);
    let hung = match &lanes {
        Ok(_) => monitor(&sh, &tallies, &ended, report),
        Err(e) => {
            sh.fail(e.clone());
            settle(config.round_limit, || Arc::strong_count(&sh) == 1);
            false
        }
    };
    report.elapsed = sh.started.elapsed();
    report.hung = hung;
    if !hung {
        for lane in lanes.into_iter().flatten() {
            if lane.join().is_err() {
                sh.fail("a lane panicked".into());
            }
        }
        // Stop the runtimes; then wait for what still finishes in the background.
        for stuck in nets.shut_down() {
            sh.fail(stuck);
        }
        drop(nets);
        if !settle(Duration::from_secs(10), || {
            tallies.iter().all(|(_, t)| t.settled())
        }) {
            sh.fail("operations still pending 10 s after the mix ended".into());
        }
        if let Some(baseline) = fds_baseline {
            settle(Duration::from_secs(10), || open_fds() <= baseline);
            report.fds_after = open_fds();
            report.rss_after = trimmed_rss();
        }
    }
    report.sends = sh.sends.load(Relaxed);
    report.receives = sh.receives.load(Relaxed);
    report.accepts = sh.accepts.load(Relaxed);
    report.connects = sh.connects.load(Relaxed);
    report.rounds = sh.rounds.load(Relaxed);
    report.clean_rounds = sh.clean_rounds.load(Relaxed);
    report.closes = sh.closes.load(Relaxed);
    report.listener_closes = sh.listener_closes.load(Relaxed);
    report.resets = sh.resets.load(Relaxed);
    report.cancels = sh.cancels.load(Relaxed);
    report.records_checked = sh.records_checked.load(Relaxed);
    report.bytes_checked = sh.bytes_checked.load(Relaxed);
    report.adapters = tallies.iter().map(|(name, t)| t.count(name)).collect();
    report.failures.extend(lock(&sh.failures).iter().cloned());
}
