//! The lanes: the counters they share with the monitor ([`Shared`]), and one thread
//! per lane that runs rounds over its adapter pair until the budget is spent or a
//! round fails.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use super::config::Config;
use super::lock;
use super::net::{Net, Nets};
use super::rng::Rng;
use super::round::{one_round, At};

/// Counters shared by the lanes and the monitor.
pub(super) struct Shared {
    pub(super) config: Config,
    pub(super) started: Instant,
    stop: AtomicBool,
    pub(super) sends: AtomicU64,
    pub(super) receives: AtomicU64,
    pub(super) accepts: AtomicU64,
    pub(super) connects: AtomicU64,
    pub(super) rounds: AtomicU64,
    pub(super) clean_rounds: AtomicU64,
    pub(super) closes: AtomicU64,
    pub(super) listener_closes: AtomicU64,
    pub(super) resets: AtomicU64,
    pub(super) cancels: AtomicU64,
    pub(super) records_checked: AtomicU64,
    pub(super) bytes_checked: AtomicU64,
    pub(super) failures: Mutex<Vec<String>>,
    pub(super) statuses: Vec<Mutex<String>>,
}

impl Shared {
    pub(super) fn new(config: Config, lanes: usize) -> Shared {
        Shared {
            config,
            started: Instant::now(),
            stop: AtomicBool::new(false),
            sends: AtomicU64::new(0),
            receives: AtomicU64::new(0),
            accepts: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            rounds: AtomicU64::new(0),
            clean_rounds: AtomicU64::new(0),
            closes: AtomicU64::new(0),
            listener_closes: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            cancels: AtomicU64::new(0),
            records_checked: AtomicU64::new(0),
            bytes_checked: AtomicU64::new(0),
            failures: Mutex::new(Vec::new()),
            statuses: (0..lanes).map(|_| Mutex::new(String::new())).collect(),
        }
    }

    pub(super) fn ops(&self) -> u64 {
        [&self.sends, &self.receives, &self.accepts, &self.connects]
            .iter()
            .map(|n| n.load(Relaxed))
            .sum()
    }

    fn should_stop(&self) -> bool {
        self.stop.load(Relaxed)
            || (self.ops() >= self.config.budget.ops
                && self.started.elapsed() >= self.config.budget.time)
    }

    pub(super) fn fail(&self, what: String) {
        let mut failures = lock(&self.failures);
        if failures.len() < 40 {
            failures.push(what);
        }
        self.stop.store(true, Relaxed);
    }

    pub(super) fn status(&self, lane: usize, what: String) {
        if let Some(status) = self.statuses.get(lane) {
            *lock(status) = what;
        }
    }
}

/// Tells the monitor a lane ended, however it ended.
struct LaneEnded(mpsc::Sender<usize>, usize);

impl Drop for LaneEnded {
    fn drop(&mut self) {
        let _ = self.0.send(self.1);
    }
}

fn spawn_lane<C: Net, S: Net>(
    sh: &Arc<Shared>,
    lane: usize,
    (client, server): (&Arc<C>, &Arc<S>),
    ended: &mpsc::Sender<usize>,
) -> Result<JoinHandle<()>, String> {
    let (sh, client, server) = (Arc::clone(sh), Arc::clone(client), Arc::clone(server));
    let ended = LaneEnded(ended.clone(), lane);
    thread::Builder::new()
        .name(format!("stress-lane-{lane}"))
        .spawn(move || {
            let _ended = ended;
            let mut rng =
                Rng::new(sh.config.seed ^ (lane as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut listener = None;
            let mut round = 0u32;
            while !sh.should_stop() {
                round += 1;
                let at = At { lane, round };
                if let Err(e) = one_round(&sh, at, &mut rng, (&*client, &*server), &mut listener) {
                    sh.fail(format!(
                        "lane {lane} ({} -> {}), round {round}: {e}",
                        client.name(),
                        server.name()
                    ));
                    break;
                }
            }
            sh.status(lane, format!("ended after {round} rounds"));
        })
        .map_err(|e| format!("cannot start lane {lane}: {e}"))
}

pub(super) fn spawn_lanes(
    sh: &Arc<Shared>,
    nets: &Nets,
    ended: &mpsc::Sender<usize>,
) -> Result<Vec<JoinHandle<()>>, String> {
    let mut lanes = Vec::new();
    for _ in 0..sh.config.lanes_per_pair {
        let n = nets;
        let id = lanes.len();
        // In the order of PAIRS.
        lanes.push(spawn_lane(sh, id, (&n.callback, &n.callback), ended)?);
        lanes.push(spawn_lane(sh, id + 1, (&n.tokio_ct, &n.tokio_ct), ended)?);
        lanes.push(spawn_lane(sh, id + 2, (&n.tokio_mt, &n.tokio_mt), ended)?);
        lanes.push(spawn_lane(sh, id + 3, (&n.smol, &n.smol), ended)?);
        lanes.push(spawn_lane(sh, id + 4, (&n.callback, &n.tokio_mt), ended)?);
        lanes.push(spawn_lane(sh, id + 5, (&n.tokio_mt, &n.smol), ended)?);
        lanes.push(spawn_lane(sh, id + 6, (&n.smol, &n.tokio_ct), ended)?);
        lanes.push(spawn_lane(sh, id + 7, (&n.tokio_ct, &n.callback), ended)?);
    }
    Ok(lanes)
}
