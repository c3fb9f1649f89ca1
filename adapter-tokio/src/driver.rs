//! One driver task per tokio runtime: the engine's poller descriptor is registered
//! with that runtime's reactor (an `AsyncFd`), and the task drains the engine whenever
//! it is readable. Operations then complete, and their futures are woken, on the
//! runtime's own threads: no cross-thread wake on the hot path.
//!
//! The task drains without blocking and clears the descriptor's readiness as soon as a
//! drain takes less than a full batch, so a wake-up costs one `epoll_wait` on the
//! engine's set.
//!
//! On a multi-thread runtime, each worker caps the inline drains of futures (core's
//! `drain_if_driven`) at two in a row that wake another task, until the driver task
//! drains on that worker again (`set_inline_handoff_limit`): tokio runs a task woken
//! from inside another task from its LIFO slot three times per tick, the driver's own
//! wake being the first, and beyond that wakes an idle worker to steal the next one.
//! With the cap, every third hop of a ping-pong goes through the driver task when the
//! worker would otherwise park, and the exchange stays on one worker.
//!
//! The task is started the first time a future of this crate waits on a runtime. It
//! lives as long as the runtime: when the runtime shuts down the task is dropped, its
//! `Driver` detaches, and the engine's own workers take polling back.
//!
//! A runtime built without I/O (no `enable_io`) has no reactor to register with: tokio
//! panics on the registration, which is caught once per runtime, and that runtime's
//! futures are then woken by the engine's own workers (correct, only slower).

use std::cell::RefCell;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use asyncresult_core::driver::{self, Driver, MAX_EVENTS_PER_DRAIN};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::runtime::{Handle, Id, RuntimeFlavor};

/// Inline drains in a row that may wake another task on a multi-thread runtime's
/// worker (see the module docs): tokio runs a task woken from inside another task from
/// its LIFO slot three times per tick; the driver's own drain is the first wake.
const MT_INLINE_HANDOFFS: u32 = 2;

/// Drivers by runtime, with a flag that drops to false when the driver task goes.
static DRIVERS: Mutex<Vec<(Id, Arc<AtomicBool>)>> = Mutex::new(Vec::new());

thread_local! {
    /// The last runtime this thread saw a live driver for.
    static SEEN: RefCell<Option<(Id, Arc<AtomicBool>)>> = const { RefCell::new(None) };
}

/// Sets `alive` to false when dropped (with the driver task).
struct Alive(Arc<AtomicBool>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Makes sure the current tokio runtime (if any) drives the engine.
pub(crate) fn ensure() {
    let Ok(handle) = Handle::try_current() else {
        // Not on a tokio runtime: the engine's workers wake our futures.
        return;
    };
    let id = handle.id();
    let cached = SEEN.with(|seen| {
        seen.borrow()
            .as_ref()
            .is_some_and(|(seen, alive)| *seen == id && alive.load(Ordering::Acquire))
    });
    if cached {
        return;
    }
    let Ok(mut drivers) = DRIVERS.lock() else {
        return;
    };
    drivers.retain(|(_, alive)| alive.load(Ordering::Acquire));
    let alive = match drivers.iter().find(|(known, _)| *known == id) {
        Some((_, alive)) => Arc::clone(alive),
        None => {
            let Ok(driver) = Driver::attach() else {
                return;
            };
            let alive = Arc::new(AtomicBool::new(true));
            let guard = Alive(Arc::clone(&alive));
            match register(driver) {
                Some(fd) => drop(handle.spawn(drive(fd, guard))),
                // Without a reactor the engine's workers serve this runtime. Its entry
                // stays "alive" while the runtime lives, so that the registration is
                // not tried again, and goes with it: a task that never finishes holds
                // the flag, and the runtime drops the task when it shuts down.
                None => drop(handle.spawn(async move {
                    let _alive = guard;
                    std::future::pending::<()>().await;
                })),
            }
            drivers.push((id, Arc::clone(&alive)));
            alive
        }
    };
    // A thread sees a new runtime here first: set its inline drains to suit the
    // runtime's scheduler (see the module docs).
    let limit = match handle.runtime_flavor() {
        RuntimeFlavor::CurrentThread => None,
        _ => Some(MT_INLINE_HANDOFFS),
    };
    driver::set_inline_handoff_limit(limit);
    SEEN.with(|seen| *seen.borrow_mut() = Some((id, alive)));
}

/// Registers the engine's descriptor with the current runtime's reactor; `None` if the
/// runtime has no reactor (built without `enable_io`: tokio panics, caught here) or
/// the registration failed. Dropping the driver hands polling back to the engine's
/// workers.
fn register(driver: Driver) -> Option<AsyncFd<Driver>> {
    let registered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: the descriptor is the engine's epoll set, owned by the engine that
        // `driver` keeps alive; it stays open, and `as_raw_fd` returns that same
        // number, for as long as the `AsyncFd` (which owns the driver) lives.
        unsafe { AsyncFd::register_with_interest(driver, Interest::READABLE) }
    }));
    registered.ok()?.ok()
}

/// The driver task: drain whenever the engine's descriptor is readable.
async fn drive(fd: AsyncFd<Driver>, _alive: Alive) {
    loop {
        // The task is the descriptor's only reader, so the single-waker slot of
        // `poll_read_ready` serves: cheaper than `readable()`, which links a waiter
        // into a list under the registration's lock on every wait.
        let Ok(mut guard) = std::future::poll_fn(|cx| fd.poll_read_ready(cx)).await else {
            return;
        };
        // A drain that took less than a full batch emptied the poller: clear readiness
        // now rather than spend another `epoll_wait` to learn it. No edge is lost: one
        // that arrives after the drain makes the reactor set readiness again with a new
        // tick, which `try_io`'s clear (tied to the tick this guard saw) leaves alone.
        let drained = guard.try_io(|fd| match fd.get_ref().drain() {
            Ok(n) if n < MAX_EVENTS_PER_DRAIN => Err(io::ErrorKind::WouldBlock.into()),
            other => other,
        });
        match drained {
            // A full batch: more may be ready, go round again (readiness is kept), but
            // let other tasks run if this one has used its budget.
            Ok(Ok(_)) => tokio::task::coop::consume_budget().await,
            // The poller failed (not expected): give polling back to the workers.
            Ok(Err(_)) => return,
            // Emptied: readiness was cleared, wait for the next edge.
            Err(_) => {}
        }
    }
}
