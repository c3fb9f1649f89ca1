//! One suite of scenarios, written once and run through every asyncresult adapter:
//! the callback adapter, the tokio adapter (current-thread and multi-thread runtimes)
//! and the smol adapter. `cargo xtask test` prints the scenario × adapter matrix.
//!
//! - [`harness`]: what a scenario may ask of an adapter;
//! - [`adapters`]: the adapters behind that interface;
//! - [`scenarios`]: the behaviours, each a function generic over the harness;
//! - [`stress`]: the stress mix, every adapter at once;
//! - `exec`: the runtimes the async adapters run on, shared by the last two.

pub mod adapters;
mod exec;
pub mod harness;
pub mod scenarios;
pub mod stress;

use std::net::SocketAddr;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

/// A loopback address with a free port.
pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A tokio runtime with I/O and time: multi-thread with 2 workers, or current-thread.
///
/// # Errors
///
/// The OS error if the runtime's threads or reactor cannot be made.
pub fn tokio_runtime(multi_thread: bool) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if multi_thread {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(2);
        builder
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build()
}

/// Locks `mutex`, whether or not a thread panicked while holding it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Bytes with a recognisable pattern.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Runs `body` on a thread of its own and returns what it returns, re-raising its
/// panic if it panics.
///
/// # Panics
///
/// With `hung` if `body` has not returned within `limit` (its thread is then left
/// behind), or with `body`'s own panic.
pub fn bounded<T: Send + 'static>(
    limit: Duration,
    hung: &str,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let out = body();
        let _ = tx.send(());
        out
    });
    match rx.recv_timeout(limit) {
        Err(RecvTimeoutError::Timeout) => panic!("{hung}"),
        // Returned (the signal came) or panicked (the sender was dropped unsent).
        Ok(()) | Err(RecvTimeoutError::Disconnected) => handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
    }
}

/// The tests of one test binary, one at a time, while the guard lives. For tests that
/// measure something process-wide (a counting global allocator, the live heap, open
/// descriptors): another test of the same binary running beside them would be counted
/// too. A test that failed poisons the lock; the others still run.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
