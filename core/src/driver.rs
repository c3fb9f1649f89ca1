//! Letting a runtime drive the engine, so that futures complete on the runtime's own
//! threads.
//!
//! The engine's poller is an epoll set; its descriptor becomes readable when any
//! registered socket has an event. A runtime adapter registers that one descriptor
//! with its runtime's reactor (tokio's `AsyncFd`, async-io's `Async`) through a
//! [`Driver`], and calls [`Driver::drain`] whenever it is readable: the events are
//! served on the runtime's thread and the futures they complete are woken there, with
//! no cross-thread hand-off. While at least one driver is attached, the engine's own
//! workers stop polling (a thread blocked in `epoll_wait` would win every event) and
//! only step in if events sit undrained for a monitor period. If the drivers keep
//! leaving a trickle of events undrained (the only runtime attached exists but is not
//! running, say a current-thread runtime that nobody is blocking on), the workers take
//! polling back until a driver drains again, so that no socket of the process waits
//! for the monitor meanwhile.
//!
//! A driver may also be *gated* ([`Driver::gate`]): it then listens for the
//! descriptor only while something waits for an event, by the engine's exact count of
//! waits, and is re-armed by the first wait that begins while it does not listen. For
//! a reactor that runs on another thread than the tasks (async-io's), this spares it a
//! wake-up for every event of a stream that is read back to back and never waits.
//!
//! [`drain_ready`] is the opportunistic extra: a future that just met `WouldBlock` can
//! drain right there, because on loopback the peer's event is usually already queued.
//! Such an *inline* drain wakes the peer's task from inside this task's poll, which a
//! scheduler may treat differently from a wake by its reactor. Two brakes keep it from
//! costing more than it saves ([`drain_if_driven`]): a per-thread backoff when inline
//! drains find nothing, and an optional per-thread cap on inline drains in a row that
//! complete something ([`set_inline_handoff_limit`]), reset by each drain of the
//! runtime's driver on that thread. tokio's multi-thread runtime needs the cap: it runs
//! a task woken from inside another task from its LIFO slot only three times per tick,
//! then queues the next one and wakes an idle worker to steal it, so an uncapped chain
//! moved a ping-pong between workers about once every three round trips (p99 2.3× the
//! p50). Under load the cap also leaves most events to the driver's batches, which is
//! cheaper than many small inline drains that wake receivers before much has arrived.
//! async-io needs it too, more loosely: an executor kept busy by inline drains never
//! turns the reactor, so async-io's own thread takes it and is woken by every event
//! (the smol adapter caps the threads that turn the reactor at eight).

use std::cell::Cell;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;

use crate::engine::EngineShared;
use crate::error::Error;

/// The most events one [`Driver::drain`] takes; a drain that returns fewer emptied the
/// poller.
pub const MAX_EVENTS_PER_DRAIN: usize = crate::engine::EVENTS_PER_WAIT;

/// A runtime's hold on the engine's poller (see the module docs). Dropping it gives
/// polling back to the engine's workers once no driver is left.
#[derive(Debug)]
pub struct Driver {
    engine: Arc<EngineShared>,
}

impl Driver {
    /// Attaches a driver to the process-wide engine.
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] if the engine cannot be started.
    pub fn attach() -> Result<Driver, Error> {
        let engine = EngineShared::global()?;
        engine.attach_driver();
        Ok(Driver { engine })
    }

    /// Serves every ready event without blocking; returns how many were taken. Fewer
    /// than [`MAX_EVENTS_PER_DRAIN`] means the poller was emptied (0: it had nothing):
    /// wait for readability again; exactly that many means more may be ready.
    ///
    /// # Errors
    ///
    /// The OS error of `epoll_wait` (not expected).
    pub fn drain(&self) -> io::Result<usize> {
        // A drain by the runtime's driver starts a fresh chain of inline hand-offs on
        // this thread (see `set_inline_handoff_limit`).
        update_inline(|inline| inline.handoffs = 0);
        self.engine.driver_drained();
        self.engine.drain(0).map(|(events, _)| events)
    }
}

impl Driver {
    /// Gates this driver: it listens for the engine's events only while something
    /// waits for one. Call [`disarm_if_idle`](Driver::disarm_if_idle) after each
    /// drain that emptied the poller; while it says so, do not register for the next
    /// readiness. The first operation or parked waker that starts to wait afterwards
    /// (on any thread, once its queue's lock is released) calls `rearm`, which must
    /// register for readiness again without draining (the events that came meanwhile
    /// are still in the poller, so the registration fires at once). Returns `false`,
    /// changing nothing, if a driver of this engine is gated already (one may be).
    ///
    /// For a runtime whose reactor may sit on another thread than the one that runs
    /// the tasks (async-io's own thread): a driver that always listens is woken there
    /// for every event of a socket whose reader is busy reading anyway, each a
    /// cross-CPU wake-up that serves nobody. `rearm` may run on any thread, inside a
    /// task's poll or a `begin_*` call, and must not block.
    pub fn gate(&self, rearm: fn()) -> bool {
        self.engine.wait_gate().gate(rearm)
    }

    /// For a gated driver ([`gate`](Driver::gate)), after a drain that emptied the
    /// poller: `true` if nothing waits, and the driver stops listening (do not
    /// register for readiness; the gate's `rearm` hook runs when something starts to
    /// wait); `false` if something waits: register as usual. Always `false` for a
    /// driver that is not gated.
    pub fn disarm_if_idle(&self) -> bool {
        let gate = self.engine.wait_gate();
        gate.is_gated() && gate.disarm_if_idle()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.engine.detach_driver();
    }
}

impl AsRawFd for Driver {
    fn as_raw_fd(&self) -> RawFd {
        self.engine.epoll_fd()
    }
}

impl AsFd for Driver {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the epoll descriptor belongs to the engine, which this driver keeps
        // alive (and the global engine is never dropped) for the borrow's lifetime.
        unsafe { BorrowedFd::borrow_raw(self.engine.epoll_fd()) }
    }
}

/// Serves whatever events are ready right now, on this thread; returns how many were
/// taken. Cheap when nothing is ready (one `epoll_wait` with a zero timeout).
pub fn drain_ready() -> usize {
    match EngineShared::global() {
        Ok(engine) => engine.drain(0).map_or(0, |(events, _)| events),
        Err(_) => 0,
    }
}

/// The most would-block waits an inline drain that keeps finding nothing is skipped for.
const MAX_INLINE_BACKOFF: u32 = 32;

/// This thread's inline drains: their backoff while they find nothing, and their cap
/// on hand-offs in a row.
#[derive(Clone, Copy)]
struct InlineDrains {
    /// Would-block waits left to skip.
    skip: u32,
    /// The current backoff (the skip after the next empty drain is twice it).
    backoff: u32,
    /// Inline drains in a row that woke something.
    handoffs: u32,
    /// The cap on `handoffs` ([`set_inline_handoff_limit`]).
    limit: u32,
}

thread_local! {
    static INLINE: Cell<InlineDrains> = const {
        Cell::new(InlineDrains { skip: 0, backoff: 0, handoffs: 0, limit: u32::MAX })
    };
}

/// Changes this thread's inline-drain state.
fn update_inline(change: impl FnOnce(&mut InlineDrains)) {
    INLINE.with(|cell| {
        let mut inline = cell.get();
        change(&mut inline);
        cell.set(inline);
    });
}

/// Caps, on this thread, how many inline drains in a row ([`drain_if_driven`]) may
/// complete operations (and so wake other tasks from inside a task's poll) before the
/// runtime's driver drains on this thread again ([`Driver::drain`] resets the count).
/// `None` (the default) means no cap. Past the cap, inline drains are skipped and the
/// events wait for the driver, which the runtime runs when this thread would otherwise
/// park. Only speed depends on it: the driver serves every event either way.
///
/// For schedulers that punish long wake chains (see the module docs): tokio's
/// multi-thread scheduler runs a task woken from inside another task's poll from its
/// LIFO slot only three times per tick; the next such wake goes to the run queue and
/// wakes an idle worker, which steals the task, so a request/response exchange would
/// hop between threads.
pub fn set_inline_handoff_limit(limit: Option<u32>) {
    update_inline(|inline| inline.limit = limit.unwrap_or(u32::MAX));
}

/// [`drain_ready`], but only when a runtime driver is attached (otherwise an engine
/// worker is blocked in `epoll_wait` and takes every event first, so looking would
/// only cost a syscall). What adapter futures call before they return `Pending`.
///
/// Each thread backs off when its drains keep finding nothing (a peer on another
/// thread has not answered yet, as on a multi-thread runtime): after an empty drain it
/// skips the next 1, 2, 4, … (up to 32) calls, and any drain that finds events resets
/// that. A same-thread exchange, where the peer's event is usually already there,
/// keeps draining every time, up to the cap that [`set_inline_handoff_limit`] set for
/// this thread, if any.
pub fn drain_if_driven() -> usize {
    let engine = match EngineShared::started() {
        Some(engine) if engine.driver_count() > 0 => engine,
        _ => return 0,
    };
    let inline = INLINE.with(Cell::get);
    if inline.handoffs >= inline.limit {
        return 0;
    }
    if inline.skip > 0 {
        update_inline(|inline| inline.skip = inline.skip.saturating_sub(1));
        return 0;
    }
    let (found, completed) = engine.drain(0).unwrap_or((0, 0));
    update_inline(|inline| {
        if completed > 0 {
            inline.handoffs = inline.handoffs.saturating_add(1);
        }
        if found > 0 {
            (inline.skip, inline.backoff) = (0, 0);
        } else {
            let next = (inline.backoff * 2).clamp(1, MAX_INLINE_BACKOFF);
            (inline.skip, inline.backoff) = (next, next);
        }
    });
    found
}

/// Counters of the process-wide engine, for diagnostics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineStats {
    /// Sockets registered with the poller.
    pub sockets: usize,
    /// Worker threads running (pollers and callback threads).
    pub workers: usize,
    /// Runtime drivers attached.
    pub drivers: usize,
    /// Times the engine's monitor drained because the attached drivers did not (a
    /// runtime that exists but is not running, say): each hands polling back to the
    /// engine's workers until a driver drains again.
    pub monitor_drains: u64,
    /// Directions of sockets that wait: each holds a pending operation or a parked
    /// waker (a stream half's read or write, a receive future's place). 0 once every
    /// operation has completed and nothing is parked.
    pub waits: usize,
    /// A gated driver ([`Driver::gate`]) has stopped listening for the engine's events,
    /// because nothing waited at its last drain; the next wait makes it listen.
    pub gated_driver_idle: bool,
}

/// The process-wide engine's counters (starting the engine if needed).
///
/// # Errors
///
/// [`Error::Socket`] if the engine cannot be started.
pub fn engine_stats() -> Result<EngineStats, Error> {
    let engine = EngineShared::global()?;
    Ok(EngineStats {
        sockets: engine.socket_count(),
        workers: engine.workers().count(),
        drivers: engine.driver_count(),
        monitor_drains: engine.monitor_drains(),
        waits: engine.wait_gate().waits(),
        gated_driver_idle: engine.wait_gate().is_deaf(),
    })
}
