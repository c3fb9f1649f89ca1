//! The engine's poller descriptor registered once with async-io's reactor, the one
//! smol and every async-io user share. The registration's waker is the driver itself:
//! when the reactor reports the descriptor readable, the waker drains the engine right
//! there, on the reactor's thread (the thread inside `smol::block_on`, or async-io's
//! own thread when nobody blocks), and re-arms. Futures completed by the drain are
//! woken from that thread, as async-io wakes its own.
//!
//! async-io's reactor lives as long as the process, so the driver does too: once a
//! smol future has waited, async-io drives the engine for good (the engine's workers
//! still step in if it ever stops draining).

use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};

use async_io::Async;
use asyncresult_core::driver::Driver;

/// The registration.
struct SmolDriver {
    source: Async<Driver>,
}

static DRIVER: OnceLock<Option<Arc<SmolDriver>>> = OnceLock::new();

/// Makes sure async-io's reactor drives the engine.
pub(crate) fn ensure() {
    DRIVER.get_or_init(|| {
        let driver = Driver::attach().ok()?;
        let source = Async::new(driver).ok()?;
        let driver = Arc::new(SmolDriver { source });
        arm(&driver);
        Some(driver)
    });
}

/// Drains while the descriptor is readable, then registers for the next readiness.
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
                if driver.source.get_ref().drain().is_err() {
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

impl Wake for SmolDriver {
    fn wake(self: Arc<Self>) {
        arm(&self);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        arm(self);
    }
}
