//! Dropping what user code owns (a buffer) where the engine runs: the drop must neither
//! unwind into the engine nor wait for a lock its thread holds.
//!
//! A buffer is user code: `IoBuf` is open to user types, whose `Drop` may do anything:
//! drop the last handle of the very socket it was sent on (a frame that keeps its
//! connection alive while it is in flight), or begin the next send, on that socket or
//! another. An operation completes or fails under its queue's lock, so it keeps its
//! buffer until the lock is released and drops it when the completion is notified (or
//! when `end_*` takes the result first; see `op`): no queue lock is held then, and a
//! `Drop` that begins or cancels operations on any socket takes that socket's locks as
//! any caller would. Such drops run through [`drop_user`]: a panic in them is caught
//! (and the operation completes all the same), and a last handle dropped inside one
//! closes its socket at once but leaves completing that socket's operations to an
//! engine worker, a moment later ([`closes_deferred`]), so that they are not notified
//! from inside the notification that dropped the buffer.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    /// Set while this thread drops an operation's buffer.
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
