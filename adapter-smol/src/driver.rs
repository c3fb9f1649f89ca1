//! The engine's poller descriptor registered once with async-io's reactor, the one
//! smol and every async-io user share. The registration's waker is the driver itself:
//! when the reactor reports the descriptor readable, the waker drains the engine right
//! there, on the reactor's thread (the thread inside `smol::block_on`, or async-io's
//! own thread when nobody blocks), and re-arms. Futures completed by the drain are
//! woken from that thread, as async-io wakes its own.
//!
//! The driver is *gated* (core's `Driver::gate`): after a drain, it registers for the
//! next readiness only if something waits for an event (an operation queued, a waker
//! parked). A stream read back to back never waits, yet each send of its peer makes
//! the engine's descriptor readable; a driver that always listened was woken for each,
//! mostly on async-io's own thread on the other CPU (16,636 reactor turns against
//! async-io's 502 in the bench's 1 KiB bulk transfer). Once gated, the first wait
//! re-registers it (the gate's hook, `rearm`), and the events that came meanwhile are
//! served by the drain that follows.
//!
//! async-io's reactor lives as long as the process, so the driver does too: once a
//! smol future has waited, async-io drives the engine for good (the engine's workers
//! still step in if it ever stops draining).
//!
//! A thread that drives the reactor caps its futures' inline drains (core's
//! `drain_if_driven`) at [`INLINE_HANDOFFS`] in a row that wake another task, until it
//! drains through the reactor again (`set_inline_handoff_limit`). Without the cap, a
//! ping-pong whose two ends share an executor thread is served by inline drains
//! alone: the executor never runs out of tasks, so it never turns the reactor (only
//! every 200 tasks, when async-executor yields), and async-io's own thread, which takes
//! the reactor whenever nobody has turned it for 50 µs, sits in `epoll_wait` on a set
//! holding the engine's descriptor. Every send then wakes that thread on the other CPU
//! (a context switch per hop, even when the inline drain has already taken the event),
//! and when it does take an event first the task is woken across threads: about one
//! round trip in twenty took twice the median. With the cap, every ninth hop or so
//! waits for the reactor on the executor's own thread, which keeps async-io's thread
//! asleep. The cap is set only on threads that drain through the reactor, so a thread
//! that polls these futures under an executor that never turns async-io's reactor
//! (its events all come from async-io's thread) keeps draining inline uncapped.

use std::cell::Cell;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};

use async_io::Async;
use asyncresult_core::driver::{self, Driver, MAX_EVENTS_PER_DRAIN};

/// Inline drains in a row that may wake another task on a thread that drives async-io's
/// reactor, before it drains through the reactor again (see the module docs). Measured
/// on ping-pong (both ends on one executor thread): 8 and 16 both kept async-io's
/// thread asleep. 8 is the safer, because that thread takes the reactor when it sees no
/// turn for 50 µs (its first wait after a turn of its own), about what 8 hops take.
const INLINE_HANDOFFS: u32 = 8;

thread_local! {
    /// Whether this thread has capped its inline drains (it drove the reactor once).
    static CAPPED: Cell<bool> = const { Cell::new(false) };
}

/// The registration.
struct SmolDriver {
    source: Async<Driver>,
}

static DRIVER: OnceLock<Option<Arc<SmolDriver>>> = OnceLock::new();

/// Makes sure async-io's reactor drives the engine.
pub(crate) fn ensure() {
    DRIVER.get_or_init(|| {
        let driver = Driver::attach().ok()?;
        // Gated: see the module docs. (Should another driver of the engine be gated
        // already, this one listens all the time, as it did before gating.)
        driver.gate(rearm);
        let source = Async::new(driver).ok()?;
        let driver = Arc::new(SmolDriver { source });
        arm(&driver);
        Some(driver)
    });
}

/// Drains while the descriptor is readable, then registers for the next readiness,
/// unless nothing waits for one (the gate's `rearm` registers when something does).
fn arm(driver: &Arc<SmolDriver>) {
    let waker = Waker::from(Arc::clone(driver));
    let mut cx = Context::from_waker(&waker);
    loop {
        match driver.source.poll_readable(&mut cx) {
            Poll::Ready(Ok(())) => {
                // A drain that fails (in a child forked after the engine started, whose
                // epoll set is the parent's: not expected otherwise) stops the driving
                // rather than re-arming for events it may not take; where the engine
                // is the process's own, its monitor drains what is left.
                let Ok(taken) = driver.source.get_ref().drain() else {
                    return;
                };
                if taken < MAX_EVENTS_PER_DRAIN && driver.source.get_ref().disarm_if_idle() {
                    return;
                }
            }
            // The reactor failed us (not expected): the engine's monitor notices the
            // undrained events and drains them itself.
            Poll::Ready(Err(_)) => return,
            Poll::Pending => return,
        }
    }
}

/// The gate's hook: something started to wait while the driver did not listen.
/// Registers for readiness, without draining (this may run inside a task's poll or a
/// `begin_*` call): the events that came meanwhile are still in the engine's epoll
/// set, so the reactor reports the descriptor at its next turn, and the driver's waker
/// drains there.
fn rearm() {
    let Some(Some(driver)) = DRIVER.get() else {
        // Not registered yet: `ensure` registers it right after gating.
        return;
    };
    let waker = Waker::from(Arc::clone(driver));
    let mut cx = Context::from_waker(&waker);
    // Ready: the reactor reported the descriptor since the last registration (the
    // driver's waker, woken by it, is about to drain), and this poll took that report.
    // Register again, so that the reactor reports it once more and the waker drains.
    while let Poll::Ready(Ok(())) = driver.source.poll_readable(&mut cx) {}
}

/// Caps this thread's inline drains, once: it is turning async-io's reactor (the
/// registration's waker runs only there), so its drains reset the cap's count.
fn cap_inline_drains() {
    CAPPED.with(|capped| {
        if !capped.replace(true) {
            driver::set_inline_handoff_limit(Some(INLINE_HANDOFFS));
        }
    });
}

impl Wake for SmolDriver {
    fn wake(self: Arc<Self>) {
        cap_inline_drains();
        arm(&self);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        cap_inline_drains();
        arm(self);
    }
}
