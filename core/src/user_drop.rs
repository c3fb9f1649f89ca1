//! Dropping what user code owns (a buffer, an `AsyncState`) where the engine runs: the
//! drop must neither unwind into the engine nor wait for a lock its thread holds.
//!
//! A buffer is user code: `IoBuf` is open to user types, whose `Drop` may do anything,
//! including drop the last handle of the very socket it was sent on (a frame that
//! keeps its connection alive while it is in flight). An operation's buffer goes when
//! the operation completes or fails, and that happens under its queue's lock; a last
//! handle dropped there would close the socket, and closing takes that same lock. So
//! such drops run through [`drop_user`]: a panic in them is caught (and the operation
//! completes all the same), and a last handle dropped inside one closes its socket a
//! moment later, on an engine worker, instead of inline ([`closes_deferred`]).
//!
//! A `Drop` that begins or cancels operations on the same socket would still wait for
//! the lock: don't.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    /// Set while this thread drops user values under a queue's lock.
    static DEFERRING: Cell<bool> = const { Cell::new(false) };
}

/// Drops `value`, catching a panic in its `Drop`; a last socket handle dropped inside
/// closes its socket later, on a worker (see the module docs).
pub(crate) fn drop_user<T>(value: T) {
    let outer = DEFERRING.with(|deferring| deferring.replace(true));
    let _ = catch_unwind(AssertUnwindSafe(move || drop(value)));
    DEFERRING.with(|deferring| deferring.set(outer));
}

/// Whether a last socket handle dropped now must leave its close to a worker (it is
/// being dropped inside [`drop_user`]).
pub(crate) fn closes_deferred() -> bool {
    DEFERRING.with(Cell::get)
}
