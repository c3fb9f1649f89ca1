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
//! that an enqueuer re-checks. This queue does the same with a lock and a state word:
//!
//! - **Every syscall of a direction runs with that direction's lock held**, the inline
//!   fast path in `begin_*` included. The lock also serializes the bytes: two sends
//!   never interleave, whichever threads started them, because the fast path runs only
//!   when the queue is empty and under the lock.
//! - A thread that holds the lock to attempt operations (a `begin_*`, fast path
//!   included; a future's `try_now`; an edge being served) *announces* it: it sets
//!   `HELD` in the queue's state word.
//! - **An edge does not wait behind an announced holder** ([`OpQueue::edge`]). If the
//!   lock is taken, the edge sets `MISSED` in the same word, in one read-modify-write
//!   that also tells it whether `HELD` was set. If it was, the edge is left to the
//!   holder and the edge's thread moves on: a poller is never stuck behind a receive in
//!   progress, nor made to sleep on its lock. If not (a short section that does not
//!   announce itself: one that only looks at the queue, or cancels, or is just taking
//!   or letting go of the lock), the edge waits for the lock, as any other thread, and
//!   serves the queue itself.
//! - **An announced holder ends its hold with a read-modify-write of the same word**:
//!   if `MISSED` is set and operations wait, it serves the queue again before it lets
//!   go. Both sides change one word, so one of them always sees the other: either the
//!   edge finds `HELD` gone (and waits for the lock), or the holder finds `MISSED`.
//!
//! So an edge that arrives after an `EAGAIN` is served once the operation is queued,
//! by the thread that queued it or by the edge's own; an edge that arrives while the
//! queue is empty finds nothing to do, and the next `begin_*` tries the syscall itself
//! before it ever waits. The loom models at the bottom of this file check it.
//!
//! # Not trying a receive that cannot succeed
//!
//! A receive whose syscall proved the kernel's queue empty (on TCP: a short read, or a
//! full one after which the kernel counts no bytes left; see [`crate::drain_proof`])
//! *notes* it: the holder sets `DRAINED` in the state word, and
//! its hold ends keeping `DRAINED` only if no edge came meanwhile (`MISSED` unset).
//! Every edge that comes later clears it: one that finds the lock free announces
//! itself with a plain store of `HELD`; one that finds `HELD` sets `MISSED`, which
//! the holder sees. While `DRAINED` stands, the next operation of the direction is
//! queued without trying its syscall, which could only say `EAGAIN` (tokio skips the
//! same syscall after a short read). Nothing is lost: data that arrives after the
//! noted syscall raises an edge after it, and that edge serves the queue as above.
//!
//! The note is kept from a receive that was served from the queue (after it waited)
//! and from a future's attempt, not from `begin_*`'s fast path. A receive whose data
//! was already there when it began is reading a stream that keeps coming, and there
//! the next syscall usually finds more: waiting for an edge instead hands the receive
//! to a poller thread. (Measured: the callback adapter's 1 KiB bulk transfer lost 22%
//! when the fast path kept the note, and ping-pong with 4 KiB reads gains 0.6–0.7 µs
//! per round trip from the note kept after a wait.) A future keeps the note from every
//! attempt: its wait is cheap, on the thread that drains the poller, and keeping it
//! only after a wait gave back the 15% it gains on tokio's multi-thread fan-in.
//!
//! # A future's turn
//!
//! A future's try ([`try_now`](OpQueue::try_now) with a [`Turn`] other than a plain
//! call's) that cannot run leaves a readiness operation that *keeps its place*: when
//! it is reached (an edge, or the operations before it completed), it completes and
//! wakes the future but stays in the queue, done, and no operation behind it that is
//! not a readiness one runs. The future's next try finds its own operation there and
//! runs its syscall in its place: if that takes something (or fails), the place goes
//! and an operation it leaves at the head is served before the lock goes (as for a
//! missed edge); if it finds nothing, a fresh readiness operation takes the same
//! place, pending, and waits for the next edge.
//! A future that goes away instead (dropped, cancelled, timed out) gives its place up
//! through `cancel`, which then serves the queue. So an operation begun after a
//! future started never takes what the future was woken for, and nothing is taken
//! that the future does not return. A future whose first poll the runtime's budget
//! puts off takes its place without a try (`Hold`), and tries in it at its next poll.
//!
//! Tries are ordered only after the operations queued before them, not among
//! themselves, as the tries of tokio's and async-io's sockets race for the data: a
//! try runs its syscall when only readiness operations are ahead of it (its own place,
//! or the back of the queue), and an edge wakes every readiness operation at the front
//! of the queue, reached places staying where they are. So a future kept but not
//! polled holds up the operations begun behind it, never another future's try; and a
//! plain `try_*` call's readiness gives its place up when it completes, since nothing
//! obliges its caller to try again.
//!
//! # A parked half
//!
//! A stream half's read or write (`AsyncRead`/`AsyncWrite`) keeps no place in the
//! queue, so it need not wait as an operation: a try of it that would block
//! ([`try_or_park`](OpQueue::try_or_park)) *parks* its task's waker in the queue
//! instead, which allocates nothing (an idle connection with a read pending costs its
//! future and nothing else, as with tokio's and async-io's sockets). One waker is
//! parked per direction; a second half, or a try behind an operation that is not a
//! readiness one, waits with a readiness operation as above.
//!
//! A parked waker counts as a waiting operation for the hand-over above: a hold that
//! ends with a half parked looks at `MISSED` as it would with operations queued, so an
//! edge that comes while the half parks is not dropped. An edge that serves the queue
//! takes the waker out and wakes it once no operation other than a readiness one is
//! left waiting (what is left after those is the half's to try); so does a close.
//! The half knows it was woken because its waker is no longer parked (by
//! `Waker::will_wake`), and only then tries again: a try of a half whose waker is
//! still parked ([`Parking::StillParked`]) makes no syscall, and a half that has just
//! parked looks once more after draining the engine inline
//! ([`is_parked`](OpQueue::is_parked)). (A waker that does not
//! recognize its own clones, which `will_wake` allows, makes the half try again and
//! then wait with a readiness operation: slower, never lost.) A half that goes away
//! takes its waker out ([`unpark`](OpQueue::unpark)).
//!
//! # A parked future
//!
//! A receive future keeps a place in the queue, yet it need not allocate a readiness
//! operation for it either: its try that would block
//! ([`try_in_place`](OpQueue::try_in_place)) parks its task's waker as a *place* in the
//! same slot, when no operation other than a readiness one is queued and nothing else is
//! parked. A place stands ahead of every operation queued after it, as a reached
//! readiness operation does: a `begin_*` finds it and queues behind it instead of taking
//! the fast path, and serving the queue stops at the first such operation while the
//! place is there. An edge that serves the queue takes the waker out and wakes it, but
//! leaves the place (*reached*), so the operations behind it still wait for the
//! future's try. That try runs in the place: if it takes something (or fails), the place
//! goes and an operation it leaves at the head is served before the lock goes, as for a
//! missed edge; if it finds nothing, the waker is parked in the same place again. A
//! future that goes away gives its place up ([`leave_place`](OpQueue::leave_place)),
//! which serves what waited behind it. There is one place per direction, so a future
//! knows the place is its own by its own note that it parked: unlike a half, a future
//! polled again with another waker, before any edge, just swaps the waker. Tries race
//! as before: another future's try or a half's runs beside a place (a future's falls
//! back to a readiness operation behind it), and a close wakes the future to find the
//! socket closed.
//!
//! The syscalls are non-blocking, so the lock is held for microseconds. The two
//! directions have separate locks and progress independently.

use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::task::Waker;

use crate::async_result::{AsyncCallback, AsyncResult, AsyncState};
use crate::context;
use crate::error::Error;
use crate::fifo::InlineFifo;
use crate::op::{Attempt, Op, OpContext, OpKind, Produces, QueuedOp, TaskSink, Work};
use crate::ops::try_io::{ReadyWork, TryIo, Turn, TurnKind};
use crate::sync::{AtomicU8, Mutex, MutexGuard};
// Not loom's: `place` is touched only under the lock, which orders it.
use std::sync::atomic::{AtomicBool, Ordering};

/// [`OpQueue::state`]: a thread holds the lock to attempt operations and will look at
/// [`MISSED`] before it lets go.
const HELD: u8 = 1;
/// [`OpQueue::state`]: an edge came while the lock was held.
const MISSED: u8 = 2;
/// [`OpQueue::state`]: a syscall of this direction proved the kernel's queue empty and
/// no edge has come since, so the next operation waits for an edge without trying.
const DRAINED: u8 = 4;

/// Ends an announced hold if the attempt in it unwinds (a panicking buffer; declared
/// after the lock's guard, so dropped while the lock is still held): with `HELD` left
/// set, an edge that found the lock taken by a section that does not announce itself
/// would leave its work to a holder that is gone. Forgotten when the attempt returns.
struct EndHoldOnUnwind<'a>(&'a AtomicU8);

impl Drop for EndHoldOnUnwind<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Release);
    }
}

/// Abandons the work of a fast path's attempt that unwinds (a panicking buffer), with
/// the lock still held, so that a stream send torn part-way leaves the socket as a
/// cancel would ([`Work::abandon`]) before any other operation of the direction runs.
/// Forgotten when the attempt returns.
struct AbandonOnUnwind<'a, C, W: Work<C>> {
    work: &'a mut W,
    socket: &'a C,
}

impl<C, W: Work<C>> Drop for AbandonOnUnwind<'_, C, W> {
    fn drop(&mut self) {
        self.work.abandon(self.socket);
    }
}

/// What serving a queue completed under its lock, to be notified once it is released:
/// operations, and the wakers of parked stream halves (see "A parked half").
pub(crate) struct Completed<C> {
    ops: Vec<Arc<dyn QueuedOp<C>>>,
    /// The first parked half to wake, inline: a queue has one, so a thread that ends
    /// its hold on one queue (`let_go`) wakes it without an allocation.
    unparked: Option<Waker>,
    /// The others (a poller serving both directions, or several sockets).
    more_unparked: Vec<Waker>,
}

impl<C> Completed<C> {
    /// Nothing yet (no allocation until an operation, or a second waker, is added).
    pub(crate) fn new() -> Self {
        Completed {
            ops: Vec::new(),
            unparked: None,
            more_unparked: Vec::new(),
        }
    }

    /// An operation completed.
    pub(crate) fn push(&mut self, op: Arc<dyn QueuedOp<C>>) {
        self.ops.push(op);
    }

    /// A parked half to wake.
    fn unpark(&mut self, waker: Waker) {
        match self.unparked {
            None => self.unparked = Some(waker),
            Some(_) => self.more_unparked.push(waker),
        }
    }

    /// Whether nothing was completed.
    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.unparked.is_none()
    }

    /// Notifies everything completed (through `sink`, for callbacks), leaving this empty
    /// with its capacity; returns how many there were.
    pub(crate) fn notify(&mut self, sink: &dyn TaskSink) -> usize {
        let count =
            self.ops.len() + usize::from(self.unparked.is_some()) + self.more_unparked.len();
        for op in self.ops.drain(..) {
            op.notify(sink);
        }
        for waker in self
            .unparked
            .take()
            .into_iter()
            .chain(self.more_unparked.drain(..))
        {
            // A panicking waker must not take the notifying thread down (as
            // `QueuedOp::notify` does for an operation's).
            let _ = catch_unwind(AssertUnwindSafe(|| waker.wake()));
        }
        count
    }

    /// Gives back what the buffers grew to beyond `kept` entries.
    pub(crate) fn trim(&mut self, kept: usize) {
        if self.ops.capacity() > kept {
            self.ops.shrink_to(kept);
        }
        if self.more_unparked.capacity() > kept {
            self.more_unparked.shrink_to(kept);
        }
    }
}

/// How [`OpQueue::start_inline`] went.
#[derive(Debug)]
pub(crate) enum Started<T> {
    /// The fast path finished the operation inside the call.
    Finished(Result<T, Error>),
    /// It waits in the queue.
    Queued(AsyncResult<T>),
}

/// What travels with a `begin_*` operation besides its work: moved into the operation
/// only if it is queued (a fast-path finish hands them back untouched).
struct Extras<T> {
    callback: Option<AsyncCallback<T>>,
    state: Option<AsyncState>,
}

/// Where [`OpQueue::begin`] finds the callback and state of an operation it queues.
trait TakeExtras<T> {
    /// Moves them out (into the operation being queued).
    fn take(&mut self) -> (Option<AsyncCallback<T>>, Option<AsyncState>);
}

impl<T> TakeExtras<T> for Extras<T> {
    fn take(&mut self) -> (Option<AsyncCallback<T>>, Option<AsyncState>) {
        (self.callback.take(), self.state.take())
    }
}

/// A future's operation has neither: nothing to build, move or drop on its fast path.
struct NoExtras;

impl<T> TakeExtras<T> for NoExtras {
    fn take(&mut self) -> (Option<AsyncCallback<T>>, Option<AsyncState>) {
        (None, None)
    }
}

/// How [`OpQueue::try_or_park`] went.
#[derive(Debug)]
pub(crate) enum Parking<T> {
    /// The syscall ran and produced this.
    Done(T),
    /// It would block: the caller's waker is parked in the queue until the next edge.
    Parked,
    /// The caller's waker was parked already (it said so) and no edge has come since:
    /// nothing was tried (it could only have found nothing).
    StillParked,
    /// It would block, and the queue could not park the caller (operations wait ahead
    /// of it, or another half is parked): wait for this readiness operation instead.
    Queued(AsyncResult<()>),
}

impl<T> Parking<T> {
    /// The same outcome with a value made from what was produced.
    pub(crate) fn and_then<U>(
        self,
        f: impl FnOnce(T) -> Result<U, Error>,
    ) -> Result<Parking<U>, Error> {
        Ok(match self {
            Parking::Done(value) => Parking::Done(f(value)?),
            Parking::Parked => Parking::Parked,
            Parking::StillParked => Parking::StillParked,
            Parking::Queued(ready) => Parking::Queued(ready),
        })
    }
}

/// Who parks, for a stream half's try ([`OpQueue::try_or_park`]): its task's waker,
/// and whether this half parked it last time (so that a waker found still parked is
/// known to be its own, not another half's polled by the same task).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Park<'a> {
    pub(crate) waker: &'a Waker,
    pub(crate) parked: bool,
}

/// How [`OpQueue::begin`] went.
enum Begun<W: Produces> {
    Inline(Result<W::Output, Error>),
    Queued(Arc<Op<W>>),
}

/// What [`OpQueue::stop`] found.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Stopped {
    /// Pending operations completed with `Disposed`.
    pub(crate) aborted: usize,
}

struct Inner<C> {
    /// Pending operations, oldest first (the first one inline: no allocation).
    ops: InlineFifo<Arc<dyn QueuedOp<C>>>,
    /// The last readiness operation, kept to be re-armed by the next `try_now` that
    /// has to wait once nothing else holds it (a wait per would-block, without an
    /// allocation per wait).
    spare_ready: Option<Arc<Op<ReadyWork>>>,
    /// The waker parked here, if any: a stream half's, or a future's as its place
    /// until an edge reaches it ([`OpQueue::place`] says which; see "A parked half",
    /// "A parked future").
    parked: Option<Waker>,
}

/// Who parks, in [`OpQueue::try_then_park_held`]: a stream half (no place), or a
/// future (its waker as its place).
#[derive(Clone, Copy)]
enum Parker<'a> {
    Half(&'a Waker),
    Place(&'a Waker),
}

/// Who tries in place, for a future's try ([`OpQueue::try_in_place`]): its task's
/// waker, and whether the future holds the queue's place (it parked there last time).
#[derive(Clone, Copy, Debug)]
pub(crate) struct InPlace<'a> {
    pub(crate) waker: &'a Waker,
    pub(crate) holds: bool,
}

/// The FIFO of one direction of one socket (of context `C`).
pub(crate) struct OpQueue<C> {
    inner: Mutex<Inner<C>>,
    /// [`HELD`] and [`MISSED`]: how an edge and the lock's holder hand over; and
    /// [`DRAINED`] (see the module docs).
    state: AtomicU8,
    /// A future's place is parked here (see "A parked future"): its waker in
    /// `Inner::parked` until an edge reaches it, none after. Read and written only with
    /// the lock held; an atomic beside `state` only to sit in the padding there rather
    /// than grow each of a socket's two queues by 8 bytes.
    place: AtomicBool,
    /// The queue holds something (an operation or a parked waker), as last counted in
    /// the engine's waits ([`Held`] keeps it). Under the lock only, as `place`.
    waits: AtomicBool,
}

/// The queue's lock, held. Letting go of it settles the queue's part in the engine's
/// count of waits (see `engine::wait_gate`): what the queue holds changes only under
/// this guard, so the count follows every change, whatever made it. A queue that
/// starts to wait may have to re-arm a gated runtime driver: that hook runs once the
/// lock is released.
struct Held<'a, C: OpContext> {
    socket: &'a C,
    waits: &'a AtomicBool,
    inner: ManuallyDrop<MutexGuard<'a, Inner<C>>>,
}

impl<C: OpContext> Deref for Held<'_, C> {
    type Target = Inner<C>;

    fn deref(&self) -> &Inner<C> {
        &self.inner
    }
}

impl<C: OpContext> DerefMut for Held<'_, C> {
    fn deref_mut(&mut self) -> &mut Inner<C> {
        &mut self.inner
    }
}

impl<C: OpContext> Drop for Held<'_, C> {
    fn drop(&mut self) {
        let waits = !self.inner.ops.is_empty() || self.inner.parked.is_some();
        let mut rearm = None;
        if waits != self.waits.load(Ordering::Relaxed) {
            self.waits.store(waits, Ordering::Relaxed);
            if waits {
                rearm = self.socket.wait_began();
            } else {
                self.socket.wait_ended();
            }
        }
        // SAFETY: the guard is dropped here, once, and `inner` is not used after.
        unsafe { ManuallyDrop::drop(&mut self.inner) };
        if let Some(rearm) = rearm {
            rearm();
        }
    }
}

impl<C> Default for OpQueue<C> {
    fn default() -> Self {
        OpQueue {
            inner: Mutex::new(Inner {
                ops: InlineFifo::default(),
                spare_ready: None,
                parked: None,
            }),
            state: AtomicU8::new(0),
            place: AtomicBool::new(false),
            waits: AtomicBool::new(false),
        }
    }
}

impl<C> std::fmt::Debug for OpQueue<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(inner) = self.inner.try_lock() else {
            return f.write_str("OpQueue { <in use> }");
        };
        f.debug_struct("OpQueue")
            .field("pending", &inner.ops.len())
            .field("parked", &inner.parked.is_some())
            .field("place", &self.place.load(Ordering::Relaxed))
            .finish()
    }
}

impl<C: OpContext> OpQueue<C> {
    /// Takes the lock (see [`Held`]).
    fn lock<'a>(&'a self, socket: &'a C) -> Held<'a, C> {
        Held {
            socket,
            waits: &self.waits,
            inner: ManuallyDrop::new(self.inner.lock()),
        }
    }

    /// Takes the lock if it is free (see [`Held`]).
    fn try_lock<'a>(&'a self, socket: &'a C) -> Option<Held<'a, C>> {
        Some(Held {
            socket,
            waits: &self.waits,
            inner: ManuallyDrop::new(self.inner.try_lock()?),
        })
    }

    /// Starts an operation: `Disposed` if the socket is closed; otherwise, if nothing
    /// is queued, tries the syscall right here (the fast path) and completes
    /// synchronously if it finishes; else queues it behind the others.
    pub(crate) fn start<W: Work<C>>(
        &self,
        socket: &Arc<C>,
        kind: OpKind,
        work: W,
        callback: Option<AsyncCallback<W::Output>>,
        state: Option<AsyncState>,
    ) -> Result<AsyncResult<W::Output>, Error> {
        let mut extras = Extras { callback, state };
        match self.begin(socket, kind, work, &mut extras)? {
            Begun::Inline(result) => {
                let Extras { callback, state } = extras;
                let op = Arc::new(Op::<W>::completed(kind, socket, result, callback, state));
                if op.has_callback() {
                    context::deliver(op.clone(), socket.sink());
                }
                Ok(AsyncResult::from_op(op))
            }
            Begun::Queued(op) => Ok(AsyncResult::from_op(op)),
        }
    }

    /// [`start`](OpQueue::start) for futures, which need no result handle when the
    /// fast path finishes the operation: no allocation then.
    pub(crate) fn start_inline<W: Work<C>>(
        &self,
        socket: &Arc<C>,
        kind: OpKind,
        work: W,
    ) -> Result<Started<W::Output>, Error> {
        Ok(match self.begin(socket, kind, work, &mut NoExtras)? {
            Begun::Inline(result) => Started::Finished(result),
            Begun::Queued(op) => Started::Queued(AsyncResult::from_op(op)),
        })
    }

    /// The fast path, or the queue.
    fn begin<W: Work<C>>(
        &self,
        socket: &Arc<C>,
        kind: OpKind,
        mut work: W,
        extras: &mut impl TakeExtras<W::Output>,
    ) -> Result<Begun<W>, Error> {
        if let Some(e) = socket.unusable_here() {
            return Err(e);
        }
        let mut inner = self.lock(socket);
        if socket.is_closed() {
            return Err(Error::Disposed);
        }
        let drained = self.announce() && !work.tries_when_drained();
        // A future's parked place is ahead of this operation (see "A parked future").
        if inner.ops.is_empty() && !self.has_place() && !drained {
            // The buffer is user code: should it panic, the panic is the caller's, and
            // the queue is left as if the hold had ended.
            let unwinding = EndHoldOnUnwind(&self.state);
            // Dropped first if the attempt unwinds: a stream send torn part-way is left
            // as a cancel leaves it (see `Work::abandon`), as when a worker runs it.
            let abandoning = AbandonOnUnwind {
                work: &mut work,
                socket: &**socket,
            };
            let attempted = abandoning.work.attempt(socket);
            std::mem::forget(abandoning);
            std::mem::forget(unwinding);
            if let Attempt::Done(result) = attempted {
                // The queue is still empty, so the hold ends with a plain store (what
                // `end_hold` would do, except that a `DRAINED` noted by this attempt
                // goes too; see the module docs).
                self.state.store(0, Ordering::Relaxed);
                drop(inner);
                drop(work);
                return Ok(Begun::Inline(result));
            }
        }
        let (callback, state) = extras.take();
        let op = Arc::new(Op::pending(kind, socket, work, callback, state));
        inner.ops.push_back(op.clone());
        self.let_go(inner, socket);
        Ok(Begun::Queued(op))
    }

    /// Whether operations wait in this direction (`Disposed` once it is stopped or its
    /// socket closed), without queueing anything.
    pub(crate) fn has_queued(&self, socket: &C) -> Result<bool, Error> {
        if let Some(e) = socket.unusable_here() {
            return Err(e);
        }
        let inner = self.lock(socket);
        if socket.is_closed() {
            return Err(Error::Disposed);
        }
        Ok(!inner.ops.is_empty())
    }

    /// Runs `now` right here if nothing is queued (with the lock held, like a fast
    /// path); if it would block, or if operations are queued, queues a readiness
    /// operation of `ready_kind` instead, which completes when this direction is worth
    /// trying again: at its next readiness edge once it reaches the head of the queue.
    /// Nothing is consumed unless `now` returns a value.
    /// Whether that readiness operation keeps its place once reached, and whether this
    /// try takes a place kept for it, is `turn`'s (see "A future's turn"). A try runs
    /// `now` after a read proved the kernel's queue empty only if `tries_when_drained`
    /// (see [`Work::tries_when_drained`]).
    pub(crate) fn try_now<T>(
        &self,
        socket: &Arc<C>,
        ready_kind: OpKind,
        turn: Turn<'_>,
        tries_when_drained: bool,
        now: impl FnOnce(&C) -> Result<Option<T>, Error>,
    ) -> Result<TryIo<T>, Error> {
        self.hold_for_try(socket, tries_when_drained, |queue, inner, drained| {
            queue.try_held(inner, socket, ready_kind, turn, drained, now)
        })
    }

    /// Runs `attempt` with the lock held and announced, as a try: `Disposed` if the
    /// socket is closed; `attempt` is told whether the try is to be skipped because a
    /// read proved the kernel's queue empty (see [`DRAINED`]; never if
    /// `tries_when_drained`). The hold ends as for any thread that is not a poller.
    fn hold_for_try<T>(
        &self,
        socket: &Arc<C>,
        tries_when_drained: bool,
        attempt: impl FnOnce(&Self, &mut Inner<C>, bool) -> Result<T, Error>,
    ) -> Result<T, Error> {
        if let Some(e) = socket.unusable_here() {
            return Err(e);
        }
        let mut inner = self.lock(socket);
        if socket.is_closed() {
            return Err(Error::Disposed);
        }
        let drained = self.announce() && !tries_when_drained;
        let unwinding = EndHoldOnUnwind(&self.state);
        let outcome = attempt(self, &mut inner, drained);
        std::mem::forget(unwinding);
        self.let_go(inner, socket);
        outcome
    }

    /// Ends an announced hold and lets go of the lock, for a thread that is not a
    /// poller: what serving a missed edge completes is notified right here.
    fn let_go(&self, mut inner: Held<'_, C>, socket: &C) {
        let mut completed = Completed::new();
        self.end_hold(&mut inner, socket, &mut completed);
        drop(inner);
        if completed.is_empty() {
            return;
        }
        completed.notify(socket.sink());
    }

    /// A stream half's try (`AsyncRead`/`AsyncWrite`): [`try_now`](OpQueue::try_now)
    /// with a plain call's turn, except that a try that would block *parks* the half's
    /// waker here instead of queueing a readiness operation, so a waiting half costs no
    /// allocation (see "A parked half"). It parks only if no operation other than a
    /// readiness one is queued and no other half is parked; otherwise it waits with a
    /// readiness operation, as `try_now` does. A waker the half parked last time and
    /// still parked here means that no edge has come: nothing is tried.
    pub(crate) fn try_or_park<T>(
        &self,
        socket: &Arc<C>,
        ready_kind: OpKind,
        tries_when_drained: bool,
        park: Park<'_>,
        now: impl FnOnce(&C) -> Result<Option<T>, Error>,
    ) -> Result<Parking<T>, Error> {
        self.hold_for_try(socket, tries_when_drained, |queue, inner, drained| {
            queue.park_held(inner, socket, ready_kind, drained, park, now)
        })
    }

    /// [`try_or_park`](OpQueue::try_or_park)'s work, with the lock held and announced.
    fn park_held<T>(
        &self,
        inner: &mut Inner<C>,
        socket: &Arc<C>,
        ready_kind: OpKind,
        drained: bool,
        park: Park<'_>,
        now: impl FnOnce(&C) -> Result<Option<T>, Error>,
    ) -> Result<Parking<T>, Error> {
        // Only the caller's own: another half polled by the same task has a waker
        // that looks the same, and must not take this one's wait for its own.
        if park.parked
            && self.is_parked_held(inner, park.waker)
            && inner.ops.iter().all(|op| op.is_readiness())
        {
            return Ok(Parking::StillParked);
        }
        let half = Parker::Half(park.waker);
        self.try_then_park_held(inner, socket, ready_kind, drained, half, now)
    }

    /// A half's try, or a future's first one, with the lock held and announced: runs
    /// `now` if only readiness operations are queued (unless `drained`); if that would
    /// block, parks the waker of `who` when nothing is parked here (a future's as its
    /// place), or else queues a readiness operation (that keeps its place, for a
    /// future).
    fn try_then_park_held<T>(
        &self,
        inner: &mut Inner<C>,
        socket: &Arc<C>,
        ready_kind: OpKind,
        drained: bool,
        who: Parker<'_>,
        now: impl FnOnce(&C) -> Result<Option<T>, Error>,
    ) -> Result<Parking<T>, Error> {
        let (waker, as_place) = match who {
            Parker::Half(waker) => (waker, false),
            Parker::Place(waker) => (waker, true),
        };
        if inner.ops.iter().all(|op| op.is_readiness()) {
            if !drained {
                if let Some(value) = now(socket)? {
                    return Ok(Parking::Done(value));
                }
            }
            if inner.parked.is_none() && !self.has_place() {
                inner.parked = Some(waker.clone());
                self.place.store(as_place, Ordering::Relaxed);
                return Ok(Parking::Parked);
            }
            // Another half's (or another task's, or a future's place): this one waits
            // with an operation.
        }
        let op = self.ready_op(inner, socket, ready_kind, as_place);
        inner.ops.push_back(op.clone());
        Ok(Parking::Queued(AsyncResult::from_op(op)))
    }

    /// Whether `waker` is still parked here (no edge has come for it since it parked).
    /// Not where no operation can run (the half then tries, and finds out why).
    pub(crate) fn is_parked(&self, socket: &C, waker: &Waker) -> bool {
        if socket.unusable_here().is_some() {
            return false;
        }
        self.is_parked_held(&self.lock(socket), waker)
    }

    /// [`is_parked`](OpQueue::is_parked), with the lock held.
    fn is_parked_held(&self, inner: &Inner<C>, waker: &Waker) -> bool {
        !self.has_place()
            && inner
                .parked
                .as_ref()
                .is_some_and(|parked| parked.will_wake(waker))
    }

    /// Whether a future's place is parked here (the lock held).
    fn has_place(&self) -> bool {
        self.place.load(Ordering::Relaxed)
    }

    /// Takes `waker` out if it is still parked here (its half is going away).
    pub(crate) fn unpark(&self, socket: &C, waker: &Waker) {
        if socket.unusable_here().is_some() {
            return;
        }
        let mut inner = self.lock(socket);
        if self.is_parked_held(&inner, waker) {
            inner.parked = None;
        }
    }

    /// A future's try that keeps its place without an operation when it would block
    /// (see "A parked future"): with `place.holds`, the future parked here last time and
    /// the place is its own: still waiting for an edge, nothing is tried
    /// ([`Parking::StillParked`], the waker swapped if the task's changed); reached, the
    /// try runs in the place, which it keeps (parked again) if it finds nothing.
    /// Otherwise a first try, as [`try_now`](OpQueue::try_now)'s with a future's turn,
    /// except that it parks instead of queueing a readiness operation when it can (no
    /// operation other than a readiness one queued, nothing parked).
    pub(crate) fn try_in_place<T>(
        &self,
        socket: &Arc<C>,
        ready_kind: OpKind,
        tries_when_drained: bool,
        place: InPlace<'_>,
        now: impl FnOnce(&C) -> Result<Option<T>, Error>,
    ) -> Result<Parking<T>, Error> {
        self.hold_for_try(socket, tries_when_drained, |queue, inner, drained| {
            queue.in_place_held(inner, socket, ready_kind, drained, place, now)
        })
    }

    /// [`try_in_place`](OpQueue::try_in_place)'s work, with the lock held and
    /// announced.
    fn in_place_held<T>(
        &self,
        inner: &mut Inner<C>,
        socket: &Arc<C>,
        ready_kind: OpKind,
        drained: bool,
        place: InPlace<'_>,
        now: impl FnOnce(&C) -> Result<Option<T>, Error>,
    ) -> Result<Parking<T>, Error> {
        let waker = place.waker;
        // Only a close takes a place away, and the socket is closed then: this try is
        // not reached. Without its place, a try is a first one.
        if place.holds && self.has_place() {
            match &mut inner.parked {
                Some(parked) => {
                    // No edge since it parked: nothing to try.
                    if !parked.will_wake(waker) {
                        *parked = waker.clone();
                    }
                    return Ok(Parking::StillParked);
                }
                None => {
                    // Reached: the try runs in the place.
                    let taken = if drained { Ok(None) } else { now(socket) };
                    return match taken {
                        Ok(None) => {
                            // Nothing there after all: the same place, for the next edge.
                            inner.parked = Some(waker.clone());
                            Ok(Parking::Parked)
                        }
                        Ok(Some(value)) => {
                            self.give_place_up(inner);
                            Ok(Parking::Done(value))
                        }
                        Err(e) => {
                            self.give_place_up(inner);
                            Err(e)
                        }
                    };
                }
            }
        }
        let place = Parker::Place(waker);
        self.try_then_park_held(inner, socket, ready_kind, drained, place, now)
    }

    /// Removes a future's place (the lock held and announced); an operation it held up
    /// at the head is served before the lock goes, as for a missed edge.
    fn give_place_up(&self, inner: &mut Inner<C>) {
        self.place.store(false, Ordering::Relaxed);
        if inner.ops.front().is_some_and(|op| !op.is_readiness()) {
            self.state.fetch_or(MISSED, Ordering::AcqRel);
        }
    }

    /// Whether a future's place here still waits for an edge (its waker parked).
    pub(crate) fn place_waits(&self, socket: &C) -> bool {
        if socket.unusable_here().is_some() {
            return false;
        }
        let inner = self.lock(socket);
        self.has_place() && inner.parked.is_some()
    }

    /// Gives up the place of a future that parked here and is going away (dropped,
    /// cancelled): an operation it held up at the head is served now (readiness
    /// operations were never held up by it).
    pub(crate) fn leave_place(&self, socket: &C) {
        if socket.unusable_here().is_some() {
            return;
        }
        let mut inner = self.lock(socket);
        if !self.has_place() {
            return;
        }
        inner.parked = None;
        if inner.ops.is_empty() {
            self.place.store(false, Ordering::Relaxed);
            return;
        }
        // As a try that ends its turn: announced, so that an edge that comes meanwhile
        // is left to this hold, which serves for it before it lets go.
        self.announce();
        self.give_place_up(&mut inner);
        self.let_go(inner, socket);
    }

    /// [`try_now`](OpQueue::try_now)'s work, with the lock held and announced
    /// (`drained`: what the announcement found, see [`DRAINED`]).
    fn try_held<T>(
        &self,
        inner: &mut Inner<C>,
        socket: &Arc<C>,
        ready_kind: OpKind,
        turn: Turn<'_>,
        drained: bool,
        now: impl FnOnce(&C) -> Result<Option<T>, Error>,
    ) -> Result<TryIo<T>, Error> {
        let keeps_place = match turn.0 {
            TurnKind::Once => false,
            TurnKind::Future => true,
            TurnKind::Hold => {
                let op = self.ready_op(inner, socket, ready_kind, true);
                inner.ops.push_back(op.clone());
                return Ok(TryIo::WouldBlock(AsyncResult::from_op(op)));
            }
            TurnKind::Reached(reached) => {
                let own = inner
                    .ops
                    .iter()
                    .position(|op| std::ptr::eq(op.addr(), reached.op_addr()));
                if let Some(at) = own {
                    if inner.ops.iter().take(at).all(|op| op.is_readiness()) {
                        return self.take_turn(inner, socket, ready_kind, at, drained, now);
                    }
                    // A place taken without a try (`Hold`), with operations still
                    // ahead of it: it waits for them.
                    return Ok(TryIo::WouldBlock(reached.clone()));
                }
                // Not kept (it was given up): a try like the first.
                true
            }
        };
        // Tries are not ordered among themselves, only after the operations queued
        // before them: another try's wait, reached or not, does not hold this one up.
        if !drained && inner.ops.iter().all(|op| op.is_readiness()) {
            if let Some(value) = now(socket)? {
                return Ok(TryIo::Done(value));
            }
        }
        let op = self.ready_op(inner, socket, ready_kind, keeps_place);
        inner.ops.push_back(op.clone());
        Ok(TryIo::WouldBlock(AsyncResult::from_op(op)))
    }

    /// A future's try in the place (at index `at`, with only readiness operations
    /// ahead of it) that its readiness operation kept (see "A future's turn").
    fn take_turn<T>(
        &self,
        inner: &mut Inner<C>,
        socket: &Arc<C>,
        ready_kind: OpKind,
        at: usize,
        drained: bool,
        now: impl FnOnce(&C) -> Result<Option<T>, Error>,
    ) -> Result<TryIo<T>, Error> {
        let taken = if drained { Ok(None) } else { now(socket) };
        let outcome = match taken {
            Ok(None) => {
                // Nothing there after all: wait in the same place again, for the next
                // edge.
                let op = self.ready_op(inner, socket, ready_kind, true);
                if let Some(place) = inner.ops.get_mut(at) {
                    *place = op.clone();
                }
                return Ok(TryIo::WouldBlock(AsyncResult::from_op(op)));
            }
            Ok(Some(value)) => Ok(TryIo::Done(value)),
            Err(e) => Err(e),
        };
        // The turn is over. If that leaves an operation at the head (not another
        // future's wait: those were woken with this one), it is served before the lock
        // goes, as for a missed edge.
        inner.ops.remove(at);
        if inner.ops.front().is_some_and(|op| !op.is_readiness()) {
            self.state.fetch_or(MISSED, Ordering::AcqRel);
        }
        outcome
    }

    /// A pending readiness operation of `ready_kind` to queue, keeping its place once
    /// reached if `keeps_place`.
    fn ready_op(
        &self,
        inner: &mut Inner<C>,
        socket: &Arc<C>,
        ready_kind: OpKind,
        keeps_place: bool,
    ) -> Arc<Op<ReadyWork>> {
        // Reuse the spare readiness operation if it is done with: the spare slot holds
        // the only reference (`Arc::get_mut`, which also orders the last other
        // holder's drop before this reuse), so it is in no queue and no result handle
        // refers to it.
        let mut spare = inner.spare_ready.take();
        let reusable = spare
            .as_mut()
            .and_then(Arc::get_mut)
            .is_some_and(|spare| spare.rearm(ReadyWork));
        let op = match spare {
            Some(spare) if reusable => spare,
            _ => Arc::new(Op::pending(ready_kind, socket, ReadyWork, None, None)),
        };
        op.set_keeps_place(keeps_place);
        inner.spare_ready = Some(Arc::clone(&op));
        op
    }

    /// A readiness edge of this direction (from a poller): runs the queued operations
    /// in order until one would block (completed ones go to `completed` for
    /// notification after the lock is released). It does not wait behind a thread that
    /// holds the queue to attempt operations: that thread serves the queue again for
    /// this edge before it lets go (see the module docs).
    pub(crate) fn edge(&self, socket: &C, completed: &mut Completed<C>) {
        let mut inner = match self.try_lock(socket) {
            Some(inner) => inner,
            None => {
                if self.state.fetch_or(MISSED, Ordering::AcqRel) & HELD != 0 {
                    return;
                }
                self.lock(socket)
            }
        };
        self.serve_held(&mut inner, socket, completed);
    }

    /// Serves the queue (whose lock the caller holds) as an announced holder.
    fn serve_held(&self, inner: &mut Inner<C>, socket: &C, completed: &mut Completed<C>) {
        self.announce();
        serve(inner, socket, completed, self.has_place());
        self.end_hold(inner, socket, completed);
    }

    /// Announces that the caller, which holds the lock, attempts operations: edges
    /// that come from now on are left to it. Returns whether the state was
    /// [`DRAINED`] (and nothing else) until then.
    ///
    /// A plain store, which also drops a `MISSED` left from before: the previous
    /// announced holder served the edges that found it announced before it let go,
    /// and an edge that found no announcement waits for the lock and serves the
    /// queue itself. It drops `DRAINED` too: the caller attempts for itself, or has
    /// been told by what it found.
    fn announce(&self) -> bool {
        let drained = self.state.load(Ordering::Relaxed) == DRAINED;
        self.state.store(HELD, Ordering::Relaxed);
        drained
    }

    /// Notes, for the announced holder whose syscall just proved the kernel's queue
    /// empty, that the next operation need not try (kept only if no edge comes before
    /// the hold ends; see the module docs).
    pub(crate) fn note_drained(&self) {
        self.state.fetch_or(DRAINED, Ordering::Relaxed);
    }

    /// Ends an announced hold with the queue empty: nothing waits for an edge, so a
    /// `MISSED` is dropped, and `DRAINED` is kept only if no edge came (`MISSED`).
    fn end_hold_empty(&self) {
        let drained = HELD | DRAINED;
        if self.state.load(Ordering::Relaxed) == drained
            && self
                .state
                .compare_exchange(drained, DRAINED, Ordering::Release, Ordering::Relaxed)
                .is_ok()
        {
            return;
        }
        self.state.store(0, Ordering::Relaxed);
    }

    /// Ends an announced hold (the caller still holds the lock): while edges came
    /// meanwhile and operations wait, serves the queue again.
    fn end_hold(&self, inner: &mut Inner<C>, socket: &C, completed: &mut Completed<C>) {
        loop {
            if inner.ops.is_empty() && inner.parked.is_none() && !self.has_place() {
                // Nothing waits for an edge: the next operation tries its syscall
                // before it waits, unless this hold proved the kernel's queue empty.
                self.end_hold_empty();
                return;
            }
            let current = self.state.load(Ordering::Acquire);
            if current & MISSED == 0 {
                // No edge came: operations wait for the next one (a `DRAINED` noted
                // meanwhile goes: that edge serves them anyway). If an edge comes
                // before the exchange, look again.
                if self
                    .state
                    .compare_exchange(current, 0, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return;
                }
                continue;
            }
            // MISSED: keep HELD, clear MISSED (a swap, which takes any edge's MISSED
            // that came since, and with it what the edge saw), and serve for those
            // edges.
            self.state.swap(HELD, Ordering::Acquire);
            serve(inner, socket, completed, self.has_place());
        }
    }

    /// Waits until no thread attempts this queue's operations (whoever holds its lock
    /// lets go): what such an attempt took from the kernel (a send's connection
    /// failure, kept for the next read) is kept by then. Not announced: an edge that
    /// comes meanwhile waits for the lock and serves the queue itself.
    pub(crate) fn wait_for_attempts(&self) {
        drop(self.inner.lock());
    }

    /// Stops the queue for good, once its socket is closed (later starts see that and
    /// fail with `Disposed`): every pending operation completes with `Disposed` (moved
    /// to `completed` for notification), and a parked half is woken to find it.
    pub(crate) fn stop(&self, socket: &C, completed: &mut Completed<C>) -> Stopped {
        let mut inner = self.lock(socket);
        inner.spare_ready = None;
        self.place.store(false, Ordering::Relaxed);
        if let Some(parked) = inner.parked.take() {
            completed.unpark(parked);
        }
        let mut stopped = Stopped::default();
        for op in inner.ops.drain() {
            if op.fail(Error::Disposed) {
                stopped.aborted += 1;
                completed.push(op);
            }
        }
        stopped
    }

    /// Removes the operation at `addr` and completes it with `Aborted` (moved to
    /// `completed`); `false` if it was no longer queued (it had completed). If it had
    /// already moved some bytes, `on_torn` runs before the lock is released, so no
    /// other operation of this direction can run in between. Then the queue is served
    /// under the same lock: what the cancelled operation held up (a readiness wait
    /// behind it that an edge skipped, or sends that now fail on a torn stream) is
    /// looked at now, not at the next edge.
    ///
    /// A future's readiness operation that was reached and kept its place (see "A
    /// future's turn") is removed too, its result untouched: its place goes, and the
    /// operations behind it are served (`false`: nothing was cancelled).
    pub(crate) fn cancel(
        &self,
        socket: &C,
        addr: *const (),
        completed: &mut Completed<C>,
        on_torn: impl FnOnce(),
    ) -> bool {
        if socket.unusable_here().is_some() {
            return false;
        }
        let mut inner = self.lock(socket);
        let Some(pos) = inner
            .ops
            .iter()
            .position(|op| std::ptr::eq(op.addr(), addr))
        else {
            return false;
        };
        let Some(op) = inner.ops.remove(pos) else {
            return false;
        };
        if op.is_done() {
            self.serve_held(&mut inner, socket, completed);
            return false;
        }
        if op.has_progress() {
            on_torn();
        }
        if !op.fail(Error::Aborted) {
            return false;
        }
        completed.push(op);
        self.serve_held(&mut inner, socket, completed);
        true
    }
}

/// Runs the queue's operations from the head while they complete (moving them to
/// `completed` for notification after the lock is released).
///
/// The readiness operations at the front are all served: tries race, so every waiting
/// one is woken. A future's readiness operation, once reached, stays in its place: it
/// is notified but not removed, and the first operation that is not a readiness one
/// waits until no such place is ahead of it (see "A future's turn").
///
/// A future's parked place is reached first (its waker woken, the place kept): while it
/// is there, no operation that is not a readiness one runs (see "A parked future").
/// Then a parked half is woken, unless an operation that is not a readiness one still
/// waits (see "A parked half").
///
/// Once a close has begun ([`OpContext::stops_serving`]) nothing more runs: what is
/// still queued was pending at the close, and completes with `Disposed` when the queue
/// is stopped. (A buffer completed here is dropped only after the lock is released, so a
/// close called from its `Drop` finds this serve over; see `user_drop`.)
fn serve<C: OpContext>(
    inner: &mut Inner<C>,
    socket: &C,
    completed: &mut Completed<C>,
    place: bool,
) {
    if place {
        if let Some(parked) = inner.parked.take() {
            completed.unpark(parked);
        }
    }
    let mut at = 0;
    while let Some(op) = inner.ops.get(at) {
        if socket.stops_serving() {
            break;
        }
        if op.is_readiness() {
            if op.keeps_place() && op.is_done() {
                // Reached already: its future's try has not come yet.
                at += 1;
                continue;
            }
            if !op.attempt(socket) {
                break;
            }
            if op.keeps_place() {
                completed.push(Arc::clone(op));
                at += 1;
            } else if let Some(op) = inner.ops.remove(at) {
                completed.push(op);
            }
            continue;
        }
        if at > 0 || place {
            // Futures' places ahead of it: their turns come first.
            break;
        }
        if !op.attempt(socket) {
            break;
        }
        if let Some(op) = inner.ops.pop_front() {
            completed.push(op);
        }
    }
    // A parked half tries again unless an operation that waits for the data or room
    // is still ahead of it (that operation is served at the next edge, and the half
    // with it).
    if !place && inner.parked.is_some() && inner.ops.iter().all(|op| op.is_readiness()) {
        if let Some(parked) = inner.parked.take() {
            completed.unpark(parked);
        }
    }
}

/// Model checks of the lifecycle with loom: every interleaving of readiness edges,
/// `begin_*`, cancel, close and `end_*` on one queue. Run by `cargo xtask test`
/// (`RUSTFLAGS="--cfg loom" cargo test -p asyncresult-core --lib model`).
#[cfg(all(test, loom))]
mod model;
