//! One direction (send or receive) of one socket: a FIFO of pending operations.
//!
//! # Why no wake-up is ever lost
//!
//! The socket is registered once, edge-triggered, for both directions: the kernel
//! reports a direction again only after its readiness changes. The classic race is an
//! edge that arrives between "the syscall said `EAGAIN`" and "the operation is queued",
//! which an edge-triggered poller never repeats.
//!
//! .NET's engine closes it with a per-queue sequence number that every event bumps and
//! that an enqueuer re-checks. This queue uses a simpler invariant of the same
//! strength: **every syscall of a direction runs with that direction's lock held**, the
//! inline fast path in `begin_*` included, and an event handler takes the same lock
//! before it looks at the queue. So an edge that arrives after an `EAGAIN` is handled
//! by a thread that blocks on the lock until the operation is queued, then finds it
//! and retries; an edge that arrives while the queue is empty finds nothing to do, and
//! the next `begin_*` tries the syscall itself before it ever waits. The lock also
//! serializes the bytes: two sends never interleave, whichever threads started them,
//! because the fast path runs only when the queue is empty and under the lock.
//!
//! The syscalls are non-blocking, so the lock is held for microseconds. The two
//! directions have separate locks and progress independently.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::async_result::{AsyncCallback, AsyncResult, AsyncState};
use crate::context;
use crate::error::Error;
use crate::op::{Attempt, Op, OpKind, QueuedOp, Work};
use crate::ops::try_io::{ReadyWork, TryIo};
use crate::socket::SocketCore;

/// Operations completed under a lock, to be notified once it is released.
pub(crate) type Completed = Vec<Arc<dyn QueuedOp>>;

/// What [`OpQueue::stop`] found.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Stopped {
    /// Pending operations completed with `Disposed`.
    pub(crate) aborted: usize,
}

/// What [`OpQueue::cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cancelled {
    /// The operation was no longer queued (it had completed).
    NotFound,
    /// Removed before any of its bytes moved.
    Clean,
    /// Removed after some of its bytes had gone out.
    Torn,
}

#[derive(Default)]
struct Inner {
    ops: VecDeque<Arc<dyn QueuedOp>>,
    stopped: bool,
}

/// The FIFO of one direction of one socket.
#[derive(Default)]
pub(crate) struct OpQueue {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for OpQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.lock();
        f.debug_struct("OpQueue")
            .field("pending", &inner.ops.len())
            .field("stopped", &inner.stopped)
            .finish()
    }
}

impl OpQueue {
    /// Starts an operation: `Disposed` if the socket is closed; otherwise, if nothing
    /// is queued, tries the syscall right here (the fast path) and completes
    /// synchronously if it finishes; else queues it behind the others.
    pub(crate) fn start<W: Work>(
        &self,
        socket: &Arc<SocketCore>,
        kind: OpKind,
        mut work: W,
        callback: Option<AsyncCallback<W::Output>>,
        state: Option<AsyncState>,
    ) -> Result<AsyncResult<W::Output>, Error> {
        let mut inner = self.inner.lock();
        if inner.stopped {
            return Err(Error::Disposed);
        }
        if inner.ops.is_empty() {
            if let Attempt::Done(result) = work.attempt(socket) {
                drop(inner);
                drop(work);
                let op = Arc::new(Op::<W>::completed(kind, socket, result, callback, state));
                if op.has_callback() {
                    context::deliver(op.clone(), socket.engine());
                }
                return Ok(AsyncResult::from_op(op));
            }
        }
        let op = Arc::new(Op::pending(kind, socket, work, callback, state));
        inner.ops.push_back(op.clone());
        drop(inner);
        Ok(AsyncResult::from_op(op))
    }

    /// Runs `now` right here if nothing is queued (with the lock held, like a fast
    /// path); if it would block, or if operations are queued, queues a readiness
    /// operation of `ready_kind` instead, which completes when this direction is worth
    /// trying again: at its next readiness edge once it reaches the head of the queue.
    /// Nothing is consumed unless `now` returns a value.
    pub(crate) fn try_now<T>(
        &self,
        socket: &Arc<SocketCore>,
        ready_kind: OpKind,
        now: impl FnOnce(&SocketCore) -> Result<Option<T>, Error>,
    ) -> Result<TryIo<T>, Error> {
        let mut inner = self.inner.lock();
        if inner.stopped {
            return Err(Error::Disposed);
        }
        if inner.ops.is_empty() {
            if let Some(value) = now(socket)? {
                return Ok(TryIo::Done(value));
            }
        }
        let op = Arc::new(Op::pending(ready_kind, socket, ReadyWork, None, None));
        inner.ops.push_back(op.clone());
        Ok(TryIo::WouldBlock(AsyncResult::from_op(op)))
    }

    /// Runs queued operations in order until one would block; completed ones go to
    /// `completed` for notification after the lock is released.
    pub(crate) fn process(&self, socket: &SocketCore, completed: &mut Completed) {
        let mut inner = self.inner.lock();
        while let Some(head) = inner.ops.front() {
            if !head.attempt(socket) {
                break;
            }
            if let Some(op) = inner.ops.pop_front() {
                completed.push(op);
            }
        }
    }

    /// Stops the queue for good: later starts fail with `Disposed`, and every pending
    /// operation completes with `Disposed` (moved to `completed` for notification).
    pub(crate) fn stop(&self, completed: &mut Completed) -> Stopped {
        let mut inner = self.inner.lock();
        inner.stopped = true;
        let mut stopped = Stopped::default();
        for op in inner.ops.drain(..) {
            if op.fail(Error::Disposed) {
                stopped.aborted += 1;
                completed.push(op);
            }
        }
        stopped
    }

    /// Removes the operation at `addr` and completes it with `Aborted` (moved to
    /// `completed`). If it had already moved some bytes, `on_torn` runs before the lock
    /// is released, so no other operation of this direction can run in between.
    pub(crate) fn cancel(
        &self,
        addr: *const (),
        completed: &mut Completed,
        on_torn: impl FnOnce(),
    ) -> Cancelled {
        let mut inner = self.inner.lock();
        let Some(pos) = inner
            .ops
            .iter()
            .position(|op| std::ptr::eq(op.addr(), addr))
        else {
            return Cancelled::NotFound;
        };
        let torn = inner.ops[pos].has_progress();
        if torn {
            on_torn();
        }
        let Some(op) = inner.ops.remove(pos) else {
            return Cancelled::NotFound;
        };
        if !op.fail(Error::Aborted) {
            return Cancelled::NotFound;
        }
        completed.push(op);
        if torn {
            Cancelled::Torn
        } else {
            Cancelled::Clean
        }
    }
}
