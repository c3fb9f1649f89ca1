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
//! The syscalls are non-blocking, so the lock is held for microseconds. The two
//! directions have separate locks and progress independently.

use std::sync::Arc;

use crate::async_result::{AsyncCallback, AsyncResult, AsyncState};
use crate::context;
use crate::error::Error;
use crate::fifo::InlineFifo;
use crate::op::{Attempt, Op, OpContext, OpKind, Produces, QueuedOp, Work};
use crate::ops::try_io::{ReadyWork, TryIo, Turn, TurnKind};
use crate::sync::{AtomicU8, Mutex, MutexGuard};
use std::sync::atomic::Ordering;

/// [`OpQueue::state`]: a thread holds the lock to attempt operations and will look at
/// [`MISSED`] before it lets go.
const HELD: u8 = 1;
/// [`OpQueue::state`]: an edge came while the lock was held.
const MISSED: u8 = 2;
/// [`OpQueue::state`]: a syscall of this direction proved the kernel's queue empty and
/// no edge has come since, so the next operation waits for an edge without trying.
const DRAINED: u8 = 4;

/// Operations completed under a lock, to be notified once it is released.
pub(crate) type Completed<C> = Vec<Arc<dyn QueuedOp<C>>>;

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
    stopped: bool,
    /// The last readiness operation, kept to be re-armed by the next `try_now` that
    /// has to wait once nothing else holds it (a wait per would-block, without an
    /// allocation per wait).
    spare_ready: Option<Arc<Op<ReadyWork>>>,
}

/// The FIFO of one direction of one socket (of context `C`).
pub(crate) struct OpQueue<C> {
    inner: Mutex<Inner<C>>,
    /// [`HELD`] and [`MISSED`]: how an edge and the lock's holder hand over; and
    /// [`DRAINED`] (see the module docs).
    state: AtomicU8,
}

impl<C> Default for OpQueue<C> {
    fn default() -> Self {
        OpQueue {
            inner: Mutex::new(Inner {
                ops: InlineFifo::default(),
                stopped: false,
                spare_ready: None,
            }),
            state: AtomicU8::new(0),
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
            .field("stopped", &inner.stopped)
            .finish()
    }
}

impl<C: OpContext> OpQueue<C> {
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
        let mut inner = self.inner.lock();
        if inner.stopped || socket.is_closed() {
            return Err(Error::Disposed);
        }
        let drained = self.announce();
        if inner.ops.is_empty() && !drained {
            if let Attempt::Done(result) = work.attempt(socket) {
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
        let inner = self.inner.lock();
        if inner.stopped || socket.is_closed() {
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
    /// try takes a place kept for it, is `turn`'s (see "A future's turn").
    pub(crate) fn try_now<T>(
        &self,
        socket: &Arc<C>,
        ready_kind: OpKind,
        turn: Turn<'_>,
        now: impl FnOnce(&C) -> Result<Option<T>, Error>,
    ) -> Result<TryIo<T>, Error> {
        let mut inner = self.inner.lock();
        if inner.stopped || socket.is_closed() {
            return Err(Error::Disposed);
        }
        let drained = self.announce();
        let outcome = self.try_held(&mut inner, socket, ready_kind, turn, drained, now);
        self.let_go(inner, socket);
        outcome
    }

    /// Ends an announced hold and lets go of the lock, for a thread that is not a
    /// poller: what serving a missed edge completes is notified right here.
    fn let_go(&self, mut inner: MutexGuard<'_, Inner<C>>, socket: &C) {
        let mut completed = Completed::new();
        self.end_hold(&mut inner, socket, &mut completed);
        drop(inner);
        if completed.is_empty() {
            return;
        }
        for op in completed {
            op.notify(socket.sink());
        }
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

    /// Runs queued operations in order until one would block; completed ones go to
    /// `completed` for notification after the lock is released.
    pub(crate) fn process(&self, socket: &C, completed: &mut Completed<C>) {
        let mut inner = self.inner.lock();
        self.serve_held(&mut inner, socket, completed);
    }

    /// A readiness edge of this direction (from a poller): [`process`](OpQueue::process),
    /// except that it does not wait behind a thread that holds the queue to attempt
    /// operations: that thread serves the queue again for this edge before it lets go
    /// (see the module docs).
    pub(crate) fn edge(&self, socket: &C, completed: &mut Completed<C>) {
        let mut inner = match self.inner.try_lock() {
            Some(inner) => inner,
            None => {
                if self.state.fetch_or(MISSED, Ordering::AcqRel) & HELD != 0 {
                    return;
                }
                self.inner.lock()
            }
        };
        self.serve_held(&mut inner, socket, completed);
    }

    /// Serves the queue (whose lock the caller holds) as an announced holder.
    fn serve_held(&self, inner: &mut Inner<C>, socket: &C, completed: &mut Completed<C>) {
        self.announce();
        serve(inner, socket, completed);
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
            if inner.ops.is_empty() {
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
            serve(inner, socket, completed);
        }
    }

    /// Stops the queue for good: later starts fail with `Disposed`, and every pending
    /// operation completes with `Disposed` (moved to `completed` for notification).
    pub(crate) fn stop(&self, completed: &mut Completed<C>) -> Stopped {
        let mut inner = self.inner.lock();
        inner.stopped = true;
        inner.spare_ready = None;
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
    /// other operation of this direction can run in between.
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
        let mut inner = self.inner.lock();
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
fn serve<C>(inner: &mut Inner<C>, socket: &C, completed: &mut Completed<C>) {
    let mut at = 0;
    while let Some(op) = inner.ops.get(at) {
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
        if at > 0 {
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
}

/// Model checks of the lifecycle with loom: every interleaving of readiness edges,
/// `begin_*`, cancel, close and `end_*` on one queue. Run by `cargo xtask test`
/// (`RUSTFLAGS="--cfg loom" cargo test -p asyncresult-core --lib model`).
#[cfg(all(test, loom))]
mod model {
    use std::sync::Arc;

    use super::*;
    use crate::op::{OpContext, Produces, Task, TaskSink};

    /// Runs `f` on the model `m` in a new model thread.
    fn spawn_on<T: 'static>(
        m: &Arc<Model>,
        f: fn(&Arc<Model>) -> T,
    ) -> loom::thread::JoinHandle<T> {
        let m = Arc::clone(m);
        loom::thread::spawn(move || f(&m))
    }

    /// Runs `f` on this model thread while a delivery (a unit of data, then its edge)
    /// races it on another; returns what `f` returned once the delivery is over.
    fn racing_a_delivery<T>(m: &Arc<Model>, f: impl FnOnce(&Arc<Model>) -> T) -> T {
        let kernel = spawn_on(m, Model::deliver);
        let out = f(m);
        join(kernel);
        out
    }

    /// The wait of a try that found nothing; panics with `why` if it took something.
    fn waiting(attempt: TryIo<()>, why: &str) -> AsyncResult<()> {
        match attempt {
            TryIo::WouldBlock(ready) => ready,
            TryIo::Done(()) => panic!("{why}"),
        }
    }

    /// Joins a model thread, re-raising its panic (with its own message) if it had one.
    fn join<T>(handle: loom::thread::JoinHandle<T>) -> T {
        handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// A socket reduced to what the queue relies on: data the "kernel" holds, and the
    /// rule that a readiness edge (a `process` call) follows every arrival.
    struct Model {
        queue: OpQueue<Model>,
        /// The kernel's receive queue: under a lock, as in the kernel, so a syscall
        /// never reads a stale count.
        data: loom::sync::Mutex<usize>,
        sink: Sink,
    }

    struct Sink;

    impl TaskSink for Sink {
        fn post(&self, task: Arc<dyn Task>) {
            task.run();
        }
    }

    impl OpContext for Model {
        fn id(&self) -> u64 {
            1
        }
        fn sink(&self) -> &dyn TaskSink {
            &self.sink
        }
        fn is_closed(&self) -> bool {
            // A point where another thread may run while this one holds the queue.
            loom::thread::yield_now();
            false
        }
        fn cancel(&self, _kind: OpKind, addr: *const ()) -> bool {
            let mut completed = Completed::new();
            let cancelled = self.queue.cancel(self, addr, &mut completed, || {});
            for op in completed {
                op.notify(&self.sink);
            }
            cancelled
        }
    }

    impl Model {
        fn new() -> Arc<Model> {
            Arc::new(Model {
                queue: OpQueue::default(),
                data: loom::sync::Mutex::new(0),
                sink: Sink,
            })
        }

        /// The kernel's receive queue, locked.
        fn data(&self) -> loom::sync::MutexGuard<'_, usize> {
            self.data.lock().unwrap_or_else(|e| e.into_inner())
        }

        /// The kernel delivers one unit of data, then the poller reports the edge.
        fn deliver(self: &Arc<Self>) {
            *self.data() += 1;
            self.edge();
        }

        /// A readiness edge, as a poller serves it: the queue runs its operations
        /// unless another thread holds it for an attempt (which then serves it for
        /// the edge).
        fn edge(self: &Arc<Self>) {
            let mut completed = Completed::new();
            self.queue.edge(self, &mut completed);
            for op in completed {
                op.notify(&self.sink);
            }
        }

        /// Close: the queue stops and its operations complete with `Disposed`.
        fn close(self: &Arc<Self>) {
            let mut completed = Completed::new();
            self.queue.stop(&mut completed);
            for op in completed {
                op.notify(&self.sink);
            }
        }

        /// Takes one unit if the kernel has one (a receive syscall).
        fn take(&self) -> bool {
            let mut data = self.data();
            let had = *data > 0;
            if had {
                *data -= 1;
            }
            had
        }

        /// Takes every unit the kernel has (a short TCP read); if it took any, the
        /// queue is noted drained, as `SocketCore::read_stream` does.
        fn take_all(&self) -> usize {
            let took = std::mem::take(&mut *self.data());
            if took > 0 {
                self.queue.note_drained();
            }
            took
        }

        /// Units the kernel still holds.
        fn unread(&self) -> usize {
            *self.data()
        }

        /// `begin_*` of a receive doing `work`.
        fn start<W: Work<Model>>(self: &Arc<Self>, work: W) -> AsyncResult<W::Output> {
            match self.queue.start(self, OpKind::Receive, work, None, None) {
                Ok(ar) => ar,
                Err(e) => panic!("begin failed: {e}"),
            }
        }

        /// A receive attempt (`try_now`) in `turn`: what `now` takes, or a
        /// readiness wait.
        fn try_now<T>(self: &Arc<Self>, turn: Turn<'_>, now: fn(&Model) -> Option<T>) -> TryIo<T> {
            match self
                .queue
                .try_now(self, OpKind::ReceiveReady, turn, |m| Ok(now(m)))
            {
                Ok(attempt) => attempt,
                Err(e) => panic!("try_now failed: {e}"),
            }
        }

        fn receive(self: &Arc<Self>) -> AsyncResult<()> {
            self.start(Take)
        }

        /// A future's first attempt to take one unit.
        fn try_receive(self: &Arc<Self>) -> TryIo<()> {
            self.try_now(Turn(TurnKind::Future), |m| m.take().then_some(()))
        }

        /// A future's attempt to take one unit after its wait `reached` completed.
        fn retry_receive(self: &Arc<Self>, reached: &AsyncResult<()>) -> TryIo<()> {
            self.try_now(Turn(TurnKind::Reached(reached)), |m| m.take().then_some(()))
        }

        /// A receive that takes all there is.
        fn receive_all(self: &Arc<Self>) -> AsyncResult<usize> {
            self.start(TakeAll)
        }

        /// A future's attempt to take all there is.
        fn try_receive_all(self: &Arc<Self>) -> TryIo<usize> {
            self.try_now(Turn(TurnKind::Future), |m| {
                Some(m.take_all()).filter(|&took| took > 0)
            })
        }
    }

    /// A receive of all there is: takes it if there is any, else would block.
    struct TakeAll;

    impl Produces for TakeAll {
        type Output = usize;
    }

    impl Work<Model> for TakeAll {
        fn attempt(&mut self, m: &Model) -> Attempt<usize> {
            match m.take_all() {
                0 => Attempt::WouldBlock,
                took => Attempt::Done(Ok(took)),
            }
        }
    }

    /// A receive of one unit: takes it if the kernel has one, else would block.
    struct Take;

    impl Produces for Take {
        type Output = ();
    }

    impl Work<Model> for Take {
        fn attempt(&mut self, m: &Model) -> Attempt<()> {
            if m.take() {
                Attempt::Done(Ok(()))
            } else {
                Attempt::WouldBlock
            }
        }
    }

    /// An edge racing with `begin`: data that arrives is never left unclaimed by a
    /// waiting operation (no lost wake-up).
    #[test]
    fn no_lost_wake_up() {
        loom::model(|| {
            let m = Model::new();
            let ar = racing_a_delivery(&m, Model::receive);
            assert!(
                ar.is_completed(),
                "data arrived but the receive still waits"
            );
        });
    }

    /// A future's receive attempt races a delivery and its edge: the edge that finds
    /// the queue held for the attempt is served by the attempt's thread, so either the
    /// attempt takes the unit or its readiness wait completes.
    #[test]
    fn an_edge_during_an_attempt_is_served_by_the_attempt() {
        loom::model(|| {
            let m = Model::new();
            let attempt = racing_a_delivery(&m, Model::try_receive);
            if let TryIo::WouldBlock(ready) = attempt {
                assert!(ready.is_completed(), "data arrived but the attempt waits");
            }
        });
    }

    /// A future's readiness wait, once reached, keeps its place: a receive begun behind
    /// it while the data arrives does not take the unit the future was woken for; the
    /// future's next try does, and the receive gets the next unit.
    #[test]
    fn a_reached_wait_keeps_its_place_for_the_futures_try() {
        loom::model(|| {
            let m = Model::new();
            let ready = waiting(m.try_receive(), "nothing has arrived yet");
            let behind = racing_a_delivery(&m, Model::receive);
            assert!(ready.is_completed(), "the unit arrived but the wait waits");
            assert!(
                !behind.is_completed(),
                "the receive begun later took the unit"
            );
            assert!(
                matches!(m.retry_receive(&ready), TryIo::Done(())),
                "the future's try found nothing"
            );
            assert!(!behind.is_completed(), "only one unit arrived");
            m.deliver();
            assert!(behind.is_completed(), "the next unit went to nobody");
        });
    }

    /// A future's try that finds nothing in its place (the unit went elsewhere) waits
    /// at the head again: the next unit, whenever its edge comes, is still the
    /// future's, not the receive's begun behind it.
    #[test]
    fn a_try_that_finds_nothing_keeps_the_head() {
        loom::model(|| {
            let m = Model::new();
            let ready = waiting(m.try_receive(), "nothing has arrived yet");
            m.deliver();
            let behind = m.receive();
            assert!(m.take(), "another reader takes the unit");
            let again = waiting(m.retry_receive(&ready), "the unit is gone");
            drop(ready);
            racing_a_delivery(&m, |_| ());
            assert!(again.is_completed(), "the unit arrived but the wait waits");
            assert!(
                !behind.is_completed(),
                "the receive begun later took the unit"
            );
            assert!(matches!(m.retry_receive(&again), TryIo::Done(())));
            m.deliver();
            assert!(behind.is_completed(), "the next unit went to nobody");
        });
    }

    /// Another future's try is not held up by a reached wait (tries are not ordered
    /// among themselves): it takes the unit; the woken future's try finds nothing and
    /// waits at the head again, still ahead of a receive begun after it, racing the
    /// next delivery.
    #[test]
    fn a_try_is_not_held_up_by_another_futures_wait() {
        loom::model(|| {
            let m = Model::new();
            let ready = waiting(m.try_receive(), "nothing has arrived yet");
            m.deliver();
            assert!(ready.is_completed());
            assert!(
                matches!(m.try_receive(), TryIo::Done(())),
                "another future's try waited behind the reached wait"
            );
            let again = waiting(m.retry_receive(&ready), "the unit was taken");
            let behind = racing_a_delivery(&m, Model::receive);
            assert!(again.is_completed(), "the unit arrived but the wait waits");
            assert!(
                !behind.is_completed(),
                "the receive begun later took the unit"
            );
            assert!(matches!(m.retry_receive(&again), TryIo::Done(())));
            m.deliver();
            assert!(behind.is_completed());
        });
    }

    /// A future kept but not polled (its wait reached, its try not coming) holds no
    /// other future up: a later future's wait, queued behind it before the data
    /// arrives, is woken by the same edge, racing it, and its try takes the unit. A
    /// receive begun after both waits for the kept one's turn, and a try begun after
    /// the receive waits behind it; giving the kept place up lets both go on.
    #[test]
    fn a_wait_behind_a_reached_one_is_woken_too() {
        loom::model(|| {
            let m = Model::new();
            let kept = waiting(m.try_receive(), "nothing has arrived yet");
            let later = waiting(m.try_receive(), "nothing has arrived yet");
            let behind = m.receive();
            m.deliver();
            assert!(kept.is_completed(), "the unit arrived but the first waits");
            assert!(later.is_completed(), "the second wait was not woken");
            assert!(matches!(m.retry_receive(&later), TryIo::Done(())));
            m.deliver();
            assert!(!behind.is_completed(), "went ahead of the kept future");
            let last = waiting(
                m.try_receive(),
                "a try went ahead of the receive begun before it",
            );
            let giver = loom::thread::spawn(move || kept.cancel());
            m.deliver();
            join(giver);
            assert!(behind.is_completed(), "the kept place was given up");
            assert!(last.is_completed(), "the next unit's try was not woken");
            assert!(matches!(m.retry_receive(&last), TryIo::Done(())));
        });
    }

    /// A future that goes away after its wait was reached gives its place up, racing
    /// the next delivery: the receive behind it takes the unit the future left, and
    /// nothing is lost or stuck.
    #[test]
    fn a_reached_wait_given_up_lets_the_queue_go_on() {
        loom::model(|| {
            let m = Model::new();
            let ready = waiting(m.try_receive(), "nothing has arrived yet");
            m.deliver();
            let (first, second) = (m.receive(), m.receive());
            assert!(ready.is_completed() && !first.is_completed());
            let giver = loom::thread::spawn(move || ready.cancel());
            m.deliver();
            assert!(!join(giver), "a reached wait has nothing to cancel");
            assert!(first.is_completed(), "the unit left is the first receive's");
            assert!(second.is_completed(), "the next unit went to nobody");
            assert_eq!(m.unread(), 0);
        });
    }

    /// A second poller's edge (with no data) races a delivery and a `begin`: whichever
    /// threads hold the queue when the edges come, the delivered unit is never left
    /// unclaimed while the first receive waits.
    #[test]
    fn an_edge_that_finds_the_queue_held_is_not_lost() {
        loom::model(|| {
            let m = Model::new();
            let first = m.receive();
            let kernel = spawn_on(&m, Model::deliver);
            let poller = spawn_on(&m, Model::edge);
            let second = m.receive();
            join(kernel);
            join(poller);
            assert!(
                first.is_completed(),
                "data arrived but the first receive waits"
            );
            assert!(!second.is_completed(), "only one unit arrived");
        });
    }

    /// A receive served after a wait that drained the kernel's queue lets the next one
    /// wait without trying; a delivery racing the next one (its edge at any point) is
    /// never left unread while it waits.
    #[test]
    fn a_receive_after_a_draining_one_loses_no_data() {
        loom::model(|| {
            let m = Model::new();
            let first = m.receive_all();
            m.deliver();
            assert!(first.is_completed(), "the edge serves the first receive");
            let second = racing_a_delivery(&m, Model::receive_all);
            assert!(
                second.is_completed(),
                "data arrived but the second receive waits"
            );
        });
    }

    /// A delivery whose edge comes while the draining read's hold is on: that read may
    /// have left the new unit behind, so the note goes, and the next receive tries.
    #[test]
    fn a_delivery_during_the_draining_read_is_not_hidden() {
        loom::model(|| {
            let m = Model::new();
            let first = m.receive_all();
            let kernel = spawn_on(&m, Model::deliver);
            m.deliver();
            join(kernel);
            assert!(first.is_completed(), "the edges serve the first receive");
            let second = m.receive_all();
            assert!(
                second.is_completed() || m.unread() == 0,
                "data is there but the second receive waits"
            );
        });
    }

    /// The same for a future's attempts: after one that drained the queue, the next
    /// one's readiness wait completes if data arrives.
    #[test]
    fn an_attempt_after_a_draining_one_loses_no_data() {
        loom::model(|| {
            let m = Model::new();
            m.deliver();
            let (first, second) =
                racing_a_delivery(&m, |m| (m.try_receive_all(), m.try_receive_all()));
            assert!(matches!(first, TryIo::Done(_)), "a unit was there before");
            if let TryIo::WouldBlock(ready) = second {
                assert!(
                    ready.is_completed() || m.unread() == 0,
                    "data arrived but the attempt waits"
                );
            }
        });
    }

    /// Operations complete in the order they were begun, whatever the interleaving.
    #[test]
    fn fifo_under_concurrent_edges() {
        loom::model(|| {
            let m = Model::new();
            let (first, second) = racing_a_delivery(&m, |m| (m.receive(), m.receive()));
            assert!(
                first.is_completed(),
                "the first receive gets the first unit"
            );
            assert!(!second.is_completed(), "only one unit arrived");
            m.deliver();
            assert!(second.is_completed());
        });
    }

    /// Completion, cancel and close race: the operation completes exactly once, with
    /// the outcome of whichever won, and `cancel` says whether it won.
    #[test]
    fn complete_cancel_and_close_race() {
        loom::model(|| {
            let m = Model::new();
            let ar = m.receive();
            let kernel = spawn_on(&m, Model::deliver);
            let canceller = {
                let ar = ar.clone();
                loom::thread::spawn(move || ar.cancel())
            };
            m.close();
            join(kernel);
            let cancelled = join(canceller);
            assert!(ar.is_completed());
            let outcome = ar.finish();
            match &outcome {
                Ok(()) => assert!(!cancelled),
                Err(Error::Aborted) => assert!(cancelled),
                Err(Error::Disposed) => assert!(!cancelled),
                Err(e) => panic!("unexpected outcome {e}"),
            }
            assert!(matches!(ar.finish(), Err(Error::AlreadyEnded)));
        });
    }

    /// `end` blocks until completion and takes the result once, even when two threads
    /// end the same result at the same time.
    #[test]
    fn end_waits_and_takes_once() {
        loom::model(|| {
            let m = Model::new();
            let ar = m.receive();
            let kernel = spawn_on(&m, Model::deliver);
            let other = {
                let ar = ar.clone();
                loom::thread::spawn(move || ar.finish())
            };
            let mine = ar.finish();
            let theirs = join(other);
            join(kernel);
            let oks = [&mine, &theirs].iter().filter(|r| r.is_ok()).count();
            assert_eq!(oks, 1, "exactly one end takes the result");
            assert!(
                matches!(mine, Err(Error::AlreadyEnded))
                    || matches!(theirs, Err(Error::AlreadyEnded))
            );
        });
    }
}
