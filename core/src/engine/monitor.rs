//! The engine's monitor thread: it keeps the engine moving when user code does not.
//!
//! Every [`PERIOD`] while workers are busy (backing off to 64 ms while only healthy
//! runtime drivers need watching), it compares a few counters with their values one
//! period earlier:
//!
//! - a worker busy for a whole period without progress (blocked in a callback or a
//!   waker): if it is the leader, polling goes to another worker; the callbacks queued
//!   behind it go to the pool;
//! - posted callbacks that no worker took: the pool grows by one;
//! - events waiting with nobody polling (no driver, and no leader because every worker
//!   is busy): the pool grows by one, and the new worker takes up polling;
//! - a runtime driver attached, events ready while something waits, and no drain: the
//!   runtime is not running its driver (say a current-thread runtime that nobody is
//!   blocking on), so the monitor drains once itself; after [`STALLED_LOOKS`] such
//!   looks in a row, each finding only a trickle of events, the workers take polling
//!   back until a driver drains again, as otherwise every later event, of any socket
//!   of the process, would wait a period for the monitor. (A flood of events comes from a runtime too
//!   busy to drain just now: the monitor's batches serve it better than workers
//!   waking its tasks one event at a time.)
//!
//! With nothing to watch for [`QUIET_PERIODS`] it sleeps until woken, so an idle
//! engine costs no wake-ups.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::EngineShared;
use crate::sys;

/// How often the monitor looks while workers are busy or callbacks are queued.
pub(crate) const PERIOD: Duration = Duration::from_millis(2);
/// The longest period between looks at attached runtime drivers that keep draining
/// (the look backs off from [`PERIOD`] while they are healthy).
const DRIVER_PERIOD_MAX: Duration = Duration::from_millis(64);
/// Looks in a row at attached drivers that left events undrained (a period each)
/// before the workers take polling back from them.
const STALLED_LOOKS: u32 = 8;
/// The most events a look may find for it to count towards [`STALLED_LOOKS`].
const TRICKLE: usize = 16;
/// Periods without anything to watch before the monitor sleeps until woken.
const QUIET_PERIODS: u32 = 50;

fn needs_watch(engine: &EngineShared) -> bool {
    let workers = engine.workers();
    workers.any_busy() || workers.posted() > 0 || engine.driver_count() > 0
}

/// Starts the monitor thread of `engine`.
pub(crate) fn start(engine: &Arc<EngineShared>) -> io::Result<()> {
    let watched = Arc::clone(engine);
    let handle = thread::Builder::new()
        .name("asyncresult-monitor".into())
        .spawn(move || run(watched))?;
    engine.workers().set_monitor(handle.thread().clone());
    Ok(())
}

fn run(engine: Arc<EngineShared>) {
    let workers = engine.workers();
    // Each worker's progress, the pool's and the drivers' one period ago (the maps are
    // reused round after round).
    let mut last_progress: HashMap<u64, u64> = HashMap::new();
    let mut progress: HashMap<u64, u64> = HashMap::new();
    let mut last_posted = 0;
    let mut last_taken = workers.taken();
    let mut last_drains = engine.drain_count();
    let mut quiet = 0;
    let mut period = PERIOD;
    let mut leaderless = false;
    // Looks in a row that found the attached drivers not draining.
    let mut missed_looks = 0;
    loop {
        if quiet >= QUIET_PERIODS {
            workers.set_monitor_parked(true);
            if !needs_watch(&engine) {
                thread::park();
            }
            workers.set_monitor_parked(false);
            quiet = 0;
        }
        thread::park_timeout(period);
        let mut watching = false;

        let leader = workers.leader();
        progress.clear();
        for (id, slot) in workers.slots() {
            let now = slot.progress();
            if slot.is_busy() {
                watching = true;
                if last_progress.get(&id) == Some(&now) {
                    // Busy a whole period without progress: stuck in user code.
                    if id == leader {
                        workers.replace_leader(&engine, id);
                    }
                    slot.hand_over(&*engine);
                }
            }
            progress.insert(id, now);
        }
        std::mem::swap(&mut last_progress, &mut progress);

        let (posted, taken) = (workers.posted(), workers.taken());
        if posted > 0 {
            watching = true;
            if last_posted > 0 && taken == last_taken {
                let _ = workers.add_worker_unless_idle(&engine);
            }
        }
        (last_posted, last_taken) = (posted, taken);

        // Nobody polls (no driver, or stalled ones; no leader: every worker is busy in
        // user code) while events wait: add a worker to take up polling. With every
        // worker blocked at the cap, drain here, once a period: callbacks still wait
        // for a thread, but operations without one (a blocked `end_*`, a future)
        // complete, and the pool's blocked callbacks may be waiting for just those.
        if engine.workers_poll()
            && workers.leader() == 0
            && sys::has_ready_events(engine.epoll_fd())
        {
            watching = true;
            if leaderless && !workers.add_worker_unless_idle(&engine) {
                let _ = engine.drain(0);
            }
            leaderless = true;
        } else {
            leaderless = false;
        }

        // Workers need a close watch; healthy drivers a looser one.
        period = if watching {
            PERIOD
        } else {
            (period * 2).min(DRIVER_PERIOD_MAX)
        };

        // Attached drivers that do not drain while events wait (the runtime is not
        // running, or busy): drain once here and look again soon. After
        // `STALLED_LOOKS` such looks in a row, the workers poll until a driver drains
        // again. Only a trickle of events counts: a flood, batched here once a period,
        // comes from a runtime too busy to drain just now, which the workers would only
        // slow with a wake-up per event.
        // Events that nothing waits for are no sign of a stall: a gated driver does not
        // even listen for them (see `wait_gate`).
        let drains = engine.drain_count();
        let drivers_watched = engine.driver_count() > 0 && !engine.drivers_stalled();
        watching |= drivers_watched;
        let missed = drivers_watched
            && drains == last_drains
            && engine.wait_gate().waits() > 0
            && sys::has_ready_events(engine.epoll_fd());
        missed_looks = if missed {
            period = PERIOD;
            let trickle = engine.drain_for_drivers() < TRICKLE;
            if trickle {
                missed_looks + 1
            } else {
                0
            }
        } else {
            0
        };
        if missed_looks >= STALLED_LOOKS {
            engine.stall_drivers();
        }
        last_drains = engine.drain_count();

        quiet = if watching { 0 } else { quiet + 1 };
    }
}
