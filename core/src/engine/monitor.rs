//! The engine's monitor thread: it keeps the engine moving when user code does not.
//!
//! Every [`PERIOD`] while there is something to watch, it compares a few counters with
//! their values one period earlier:
//!
//! - a leader out of `epoll_wait` that made no progress (it is blocked in a callback or
//!   a waker): polling goes to another worker;
//! - posted callbacks that no worker took: the pool grows by one;
//! - a runtime driver attached, events ready, and no drain: the runtime is not running
//!   its driver (say a current-thread runtime that nobody is blocking on), so the
//!   monitor drains once itself.
//!
//! With nothing to watch for [`QUIET_PERIODS`] it sleeps until woken, so an idle
//! engine costs no wake-ups.

use std::io;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::EngineShared;
use crate::sys;

/// How often the monitor looks while the engine is active.
pub(crate) const PERIOD: Duration = Duration::from_millis(2);
/// Periods without anything to watch before the monitor sleeps until woken.
const QUIET_PERIODS: u32 = 50;

#[derive(Clone, Copy)]
struct Sample {
    busy_leader: u64,
    progress: u64,
    posted: usize,
    taken: u64,
    drains: u64,
}

impl Sample {
    fn take(engine: &EngineShared) -> Sample {
        let workers = engine.workers();
        Sample {
            busy_leader: workers.busy_leader(),
            progress: workers.progress(),
            posted: workers.posted(),
            taken: workers.taken(),
            drains: engine.drain_count(),
        }
    }
}

fn needs_watch(engine: &EngineShared) -> bool {
    let workers = engine.workers();
    workers.busy_leader() != 0 || workers.posted() > 0 || engine.driver_count() > 0
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
    let mut last = Sample::take(&engine);
    let mut quiet = 0;
    loop {
        if quiet >= QUIET_PERIODS {
            workers.set_monitor_parked(true);
            if !needs_watch(&engine) {
                thread::park();
            }
            workers.set_monitor_parked(false);
            quiet = 0;
            last = Sample::take(&engine);
        }
        thread::park_timeout(PERIOD);
        let now = Sample::take(&engine);
        let mut watching = false;
        if now.busy_leader != 0 {
            watching = true;
            if now.busy_leader == last.busy_leader && now.progress == last.progress {
                workers.replace_leader(&engine, now.busy_leader);
            }
        }
        if now.posted > 0 {
            watching = true;
            if last.posted > 0 && now.taken == last.taken {
                workers.add_worker_unless_idle(&engine);
            }
        }
        if engine.driver_count() > 0 {
            watching = true;
            if now.drains == last.drains && sys::has_ready_events(engine.epoll_fd()) {
                let _ = engine.drain(0);
            }
        }
        quiet = if watching { 0 } else { quiet + 1 };
        last = now;
    }
}
