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
//! only step in if events sit undrained for a monitor period.
//!
//! [`drain_ready`] is the opportunistic extra: a future that just met `WouldBlock` can
//! drain right there, because on loopback the peer's event is usually already queued.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;

use crate::engine::EngineShared;
use crate::error::Error;

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

    /// Serves every ready event without blocking; returns how many were taken (0 means
    /// the poller had nothing: wait for readability again).
    ///
    /// # Errors
    ///
    /// The OS error of `epoll_wait` (not expected).
    pub fn drain(&self) -> io::Result<usize> {
        self.engine.drain(0)
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
        Ok(engine) => engine.drain(0).unwrap_or(0),
        Err(_) => 0,
    }
}

/// The most would-block waits an inline drain that keeps finding nothing is skipped for.
const MAX_INLINE_BACKOFF: u32 = 32;

thread_local! {
    /// (waits left to skip, current backoff) of this thread's inline drains.
    static INLINE_BACKOFF: Cell<(u32, u32)> = const { Cell::new((0, 0)) };
}

/// [`drain_ready`], but only when a runtime driver is attached (otherwise an engine
/// worker is blocked in `epoll_wait` and takes every event first, so looking would
/// only cost a syscall). What adapter futures call before they return `Pending`.
///
/// Each thread backs off when its drains keep finding nothing (a peer on another
/// thread has not answered yet, as on a multi-thread runtime): after an empty drain it
/// skips the next 1, 2, 4, … (up to 32) calls, and any drain that finds events resets
/// that. A same-thread exchange, where the peer's event is usually already there,
/// keeps draining every time.
pub fn drain_if_driven() -> usize {
    let engine = match EngineShared::started() {
        Some(engine) if engine.driver_count() > 0 => engine,
        _ => return 0,
    };
    INLINE_BACKOFF.with(|backoff| {
        let (skip, current) = backoff.get();
        if skip > 0 {
            backoff.set((skip - 1, current));
            return 0;
        }
        let found = engine.drain(0).unwrap_or(0);
        if found > 0 {
            backoff.set((0, 0));
        } else {
            let next = (current * 2).clamp(1, MAX_INLINE_BACKOFF);
            backoff.set((next, next));
        }
        found
    })
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
    })
}
