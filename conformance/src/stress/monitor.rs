//! The monitor: while the lanes run, it samples descriptors, RSS, engine sockets and
//! progress, prints the soak's progress lines, and reports a hang (with what every
//! lane was doing) if no operation starts for twice the operation limit.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::PAIRS;
use super::lanes::Shared;
use super::lock;
use super::probes::{open_fds, rss_bytes, sockets_registered};
use super::report::{mib, Report, Sample};
use super::tally::Tally;

/// Samples until every lane has ended; `true` if the mix hung.
pub(super) fn monitor(
    sh: &Shared,
    tallies: &[(&'static str, Arc<Tally>)],
    ended: &mpsc::Receiver<usize>,
    report: &mut Report,
) -> bool {
    let mut remaining = sh.statuses.len();
    let config = &sh.config;
    let mut next_sample = Instant::now();
    let mut next_print = config.print_every.map(|every| Instant::now() + every);
    let (mut last_ops, mut last_progress) = (u64::MAX, Instant::now());
    let stall = config.op_limit * 2;
    while remaining > 0 {
        match ended.recv_timeout(next_sample.saturating_duration_since(Instant::now())) {
            Ok(_) => {
                remaining -= 1;
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        next_sample = (next_sample + config.sample_every).max(now);
        let sample = Sample {
            at: sh.started.elapsed(),
            ops: sh.ops(),
            fds: open_fds(),
            rss: rss_bytes(),
            sockets: sockets_registered(),
        };
        report.fds_peak = report.fds_peak.max(sample.fds);
        report.rss_peak = report.rss_peak.max(sample.rss);
        report.sockets_peak = report.sockets_peak.max(sample.sockets);
        report.samples.push(sample);
        if let (Some(at), Some(every)) = (next_print, config.print_every) {
            if now >= at {
                next_print = Some(at + every);
                println!(
                    "soak {:>6.0} s  ops {:>10}  rounds {:>8}  fds {:>5}  rss {:>7.1} MiB  \
                     sockets {:>4}  closes {} resets {} cancels {}",
                    sample.at.as_secs_f64(),
                    sample.ops,
                    sh.rounds.load(Relaxed),
                    sample.fds,
                    mib(sample.rss),
                    sample.sockets,
                    sh.closes.load(Relaxed),
                    sh.resets.load(Relaxed),
                    sh.cancels.load(Relaxed),
                );
            }
        }
        if sample.ops != last_ops {
            (last_ops, last_progress) = (sample.ops, now);
            continue;
        }
        if now.duration_since(last_progress) < stall {
            continue;
        }
        let lanes: Vec<String> = sh
            .statuses
            .iter()
            .enumerate()
            .map(|(i, s)| {
                format!(
                    "    lane {i} ({} -> {}): {}",
                    PAIRS[i % 8].0,
                    PAIRS[i % 8].1,
                    lock(s)
                )
            })
            .collect();
        let counts: Vec<String> = tallies
            .iter()
            .map(|(name, t)| {
                let c = t.count(name);
                format!(
                    "{name} started {} completed {} abandoned {} lost {}",
                    c.started, c.completed, c.abandoned, c.lost
                )
            })
            .collect();
        sh.fail(format!(
            "hang: no operation started for {stall:?}\n  lanes:\n{}\n  adapters: {}",
            lanes.join("\n"),
            counts.join("; ")
        ));
        // The lanes' own bounded waits end them soon after the stop flag; wait that long.
        let grace = Instant::now() + config.op_limit + Duration::from_secs(5);
        while remaining > 0 {
            match ended.recv_timeout(grace.saturating_duration_since(Instant::now())) {
                Ok(_) => remaining -= 1,
                Err(_) => break,
            }
        }
        return remaining > 0;
    }
    false
}
