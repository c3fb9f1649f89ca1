//! One asynchronous operation: its lifecycle state, its work (buffer and progress),
//! its result, and its notifiers.
//!
//! An operation lives in a single allocation (`Arc<Op<W>>`) that three parties share
//! through three views: the socket's queue sees it as a [`QueuedOp`] (try the syscall,
//! fail it, notify), the user sees it as an [`AsyncResult<T>`](crate::AsyncResult)
//! (through [`Completion<T>`]), and the callback threads see it as a [`Task`].
//!
//! Lifecycle, stored in one atomic byte:
//!
//! ```text
//!   PENDING ──attempt succeeds / fail(err)──▶ COMPLETED ──end_*──▶ ENDED
//!   (or born COMPLETED when the fast path finished it inside begin_*)
//! ```
//!
//! Every `PENDING → COMPLETED` transition happens under the lock of the queue that
//! holds the operation (attempt, close and cancel all take it), so an operation
//! completes exactly once. The result is stored before the state flips (release), and
//! read only by the one `end_*` that wins `COMPLETED → ENDED` (acquire). Notification
//! (blocked waiters, the waker, the callback) happens after every lock is released, and
//! so does the drop of the operation's buffer, which is user code (see `user_drop`).

use std::any::Any;
use std::fmt;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use event_listener::{Event, Listener};

use crate::async_result::{AsyncCallback, AsyncResult, AsyncState};
use crate::context;
use crate::error::Error;
use crate::sync::{fence, AtomicBool, AtomicU8, AtomicWaker, Mutex, MutexGuard};
use crate::user_drop::drop_user;

const PENDING: u8 = 0;
const COMPLETED: u8 = 1;
const ENDED: u8 = 2;

/// Which `begin_*` started an operation; `end_*` accepts only its own kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpKind {
    /// `begin_send` or `begin_send_vectored`.
    Send,
    /// `begin_send_to`.
    SendTo,
    /// `begin_receive`.
    Receive,
    /// `begin_receive_from`.
    ReceiveFrom,
    /// `begin_connect`.
    Connect,
    /// `begin_accept`.
    Accept,
    /// A wait for the send side to be worth trying again (see `TryIo`).
    SendReady,
    /// A wait for the receive side to be worth trying again (see `TryIo`).
    ReceiveReady,
}

impl OpKind {
    /// Whether it is a readiness operation (a wait left by a `try_*`, see `TryIo`).
    pub(crate) fn is_readiness(self) -> bool {
        matches!(self, OpKind::SendReady | OpKind::ReceiveReady)
    }

    /// Whether the operation waits on the send side (writability) of its socket.
    pub(crate) fn is_send_side(self) -> bool {
        matches!(
            self,
            OpKind::Send | OpKind::SendTo | OpKind::Connect | OpKind::SendReady
        )
    }
}

/// What one try at an operation's syscall produced.
#[derive(Debug)]
pub(crate) enum Attempt<T> {
    /// The kernel has no room or no data yet; wait for readiness.
    WouldBlock,
    /// The operation is over, successfully or not.
    Done(Result<T, Error>),
}

/// Where completed operations' callbacks go to run (the engine's worker pool).
pub(crate) trait TaskSink {
    /// Queues `task` for a callback thread.
    fn post(&self, task: Arc<dyn Task>);
    /// Queues `tasks`, in order, for callback threads.
    fn post_all(&self, tasks: Vec<Arc<dyn Task>>) {
        for task in tasks {
            self.post(task);
        }
    }
    /// Queues `tasks`, in order, for the thread that polls, if one does (else as
    /// [`post_all`](TaskSink::post_all)).
    fn give_to_leader(&self, tasks: Vec<Arc<dyn Task>>) {
        self.post_all(tasks);
    }
}

/// What operations run against: a socket (in tests, a model of one). `C` in
/// [`Work<C>`] and [`QueuedOp<C>`].
pub(crate) trait OpContext: Send + Sync + 'static {
    /// A process-unique id (results remember it to detect foreign ends).
    fn id(&self) -> u64;
    /// Where callbacks of its operations go.
    fn sink(&self) -> &dyn TaskSink;
    /// Whether it has been closed (from the first instant of `close`, so that no
    /// `begin_*` succeeds after any `close` call has returned).
    fn is_closed(&self) -> bool;
    /// Cancels the pending operation of `kind` at `addr` (see `AsyncResult::cancel`).
    fn cancel(&self, kind: OpKind, addr: *const ()) -> bool;
    /// Whether its queues stop running the operations they hold: a close has begun,
    /// and what is still queued is about to complete with `Disposed` (a close left to
    /// a worker runs a moment after it is called; see `SocketCore::close_deferred`).
    fn stops_serving(&self) -> bool {
        false
    }
    /// Why no operation of it can run in this process at all, if so: checked before
    /// any of its queues' locks is taken, which a thread that does not exist in this
    /// process may hold (a child forked after the engine started, see the crate docs'
    /// `fork()` section).
    fn unusable_here(&self) -> Option<Error> {
        None
    }
    /// One of its queues started to wait (it holds an operation or a parked waker; see
    /// `engine::wait_gate`), under that queue's lock. Returns a hook to call once the
    /// lock is released, if a gated runtime driver must listen again.
    fn wait_began(&self) -> Option<fn()> {
        None
    }
    /// One of its queues stopped waiting (empty, nothing parked), under its lock.
    fn wait_ended(&self) {}
}

/// What an operation produces: the success value of its `end_*`, whatever context it
/// runs in.
pub(crate) trait Produces: Send + 'static {
    /// What `end_*` returns on success.
    type Output: Send + 'static;
    /// What of the work is user code (its buffer), which the operation keeps after it
    /// completes until no queue lock is held (see `user_drop`); `()` if none.
    type Spent: Send + 'static;

    /// The work's user part, once the operation has completed: the buffer that the
    /// result did not take.
    fn spend(self) -> Option<Self::Spent>;
}

/// The I/O an operation performs on context `C`: its buffer, its progress, its
/// syscall.
pub(crate) trait Work<C>: Produces {
    /// Runs the syscall(s) until the operation completes or would block. Called with
    /// the lock of the operation's queue held, so at most one thread runs it at a time.
    fn attempt(&mut self, socket: &C) -> Attempt<Self::Output>;

    /// Whether the operation already acted on the socket, so that cancelling it tears
    /// the socket: a stream send with some of its bytes in the kernel, a connect whose
    /// handshake the kernel is running (see `SocketCore::cancel_op`).
    fn has_progress(&self) -> bool {
        false
    }

    /// Whether the operation tries its syscall even when the queue's last read proved
    /// the kernel's receive queue empty (`DRAINED`): an urgent-data receive, which the
    /// note says nothing about and which never waits.
    fn tries_when_drained(&self) -> bool {
        false
    }

    /// The operation failed part-way because its buffer (user code) panicked: leave
    /// the socket as cancelling it would (see [`Work::has_progress`]).
    fn abandon(&mut self, _socket: &C) {}
}

/// The queue's view of an operation.
pub(crate) trait QueuedOp<C>: Send + Sync {
    /// Tries the syscall; `true` once the operation has completed.
    fn attempt(&self, socket: &C) -> bool;
    /// Completes a pending operation with `err`; `false` if it had already completed.
    fn fail(&self, err: Error) -> bool;
    /// See [`Work::has_progress`].
    fn has_progress(&self) -> bool;
    /// Wakes whoever waits for the completion; call with no lock held.
    fn notify(self: Arc<Self>, sink: &dyn TaskSink);
    /// The address of the operation, to find it in a queue.
    fn addr(&self) -> *const ();
    /// Whether it has completed.
    fn is_done(&self) -> bool;
    /// Whether it is a readiness operation ([`OpKind::is_readiness`]).
    fn is_readiness(&self) -> bool;
    /// Whether, once completed, it keeps its place in its queue for its future's next
    /// try (a future's readiness operation; see `queue`'s "A future's turn").
    fn keeps_place(&self) -> bool;
}

/// Work for a callback thread: run an operation's callback.
pub(crate) trait Task: Send + Sync {
    /// Runs the callback (at most once; panics are contained).
    fn run(self: Arc<Self>);
}

/// The user's view of an operation (behind `AsyncResult<T>`).
pub(crate) trait Completion<T>: Send + Sync {
    /// The type-independent part.
    fn header(&self) -> &OpHeader;
    /// Takes the result; called once, by the `end_*` that won `COMPLETED → ENDED`.
    fn take(&self) -> Result<T, Error>;
    /// Cancels the operation if it is still pending.
    fn cancel(&self) -> bool;
}

/// The part of an operation that does not depend on its buffer or result type.
pub(crate) struct OpHeader {
    state: AtomicU8,
    sync: bool,
    has_callback: bool,
    kind: OpKind,
    socket_id: u64,
    socket: Weak<dyn OpContext>,
    async_state: Option<AsyncState>,
    waker: AtomicWaker,
    /// Blocked `wait`ers. Notified only once `listening` is set: event-listener
    /// allocates its list on an event's first `notify` and locks it on every one, which
    /// an operation that nobody waits for (nearly all of them) need not pay.
    done: Event,
    /// Set, for good, by the first thread that listens on `done`.
    listening: AtomicBool,
    /// A future's readiness operation, which once completed keeps its place in its
    /// queue until the future tries again or gives its turn up (see `queue`). Written
    /// under the queue's lock, before the operation is queued.
    keeps_place: AtomicBool,
    /// The completed operation still holds its buffer (see [`Op::drop_spent`]): set by
    /// the completion, before the state flips, so that a completion whose result took
    /// the buffer (a receive's, nearly always) skips the slot's lock to look for it.
    holds_spent: AtomicBool,
}

impl OpHeader {
    fn new<C: OpContext>(
        kind: OpKind,
        socket: &Arc<C>,
        pending: bool,
        has_callback: bool,
        async_state: Option<AsyncState>,
    ) -> OpHeader {
        OpHeader {
            state: AtomicU8::new(if pending { PENDING } else { COMPLETED }),
            sync: !pending,
            has_callback,
            kind,
            socket_id: socket.id(),
            socket: if pending {
                Arc::downgrade(socket) as Weak<dyn OpContext>
            } else {
                Weak::<C>::new() as Weak<dyn OpContext>
            },
            async_state,
            waker: AtomicWaker::new(),
            done: Event::new(),
            listening: AtomicBool::new(false),
            keeps_place: AtomicBool::new(false),
            holds_spent: AtomicBool::new(false),
        }
    }

    /// See [`QueuedOp::keeps_place`].
    pub(crate) fn keeps_place(&self) -> bool {
        self.keeps_place.load(Ordering::Relaxed)
    }

    fn set_keeps_place(&self, on: bool) {
        self.keeps_place.store(on, Ordering::Relaxed);
    }

    pub(crate) fn kind(&self) -> OpKind {
        self.kind
    }

    pub(crate) fn socket_id(&self) -> u64 {
        self.socket_id
    }

    pub(crate) fn is_completed(&self) -> bool {
        self.state.load(Ordering::Acquire) != PENDING
    }

    pub(crate) fn is_ended(&self) -> bool {
        self.state.load(Ordering::Acquire) == ENDED
    }

    pub(crate) fn completed_synchronously(&self) -> bool {
        self.sync
    }

    pub(crate) fn async_state(&self) -> Option<&AsyncState> {
        self.async_state.as_ref()
    }

    /// Claims the result for one `end_*`: `false` if another already did.
    pub(crate) fn claim(&self) -> bool {
        self.state
            .compare_exchange(COMPLETED, ENDED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Blocks until the operation completes (`AsyncWaitHandle.WaitOne()`).
    pub(crate) fn wait(&self) {
        while !self.is_completed() {
            let listener = self.listen();
            if self.is_completed() {
                return;
            }
            context::before_blocking();
            listener.wait();
        }
    }

    /// Blocks until the operation completes or `timeout` passes; `true` if completed.
    pub(crate) fn wait_timeout(&self, timeout: Duration) -> bool {
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            self.wait();
            return true;
        };
        while !self.is_completed() {
            let listener = self.listen();
            if self.is_completed() {
                return true;
            }
            if Instant::now() >= deadline {
                // Nothing to wait for (a zero timeout is a look, `WaitOne(0)`): this
                // thread does not block, so it keeps its callbacks and polling.
                return false;
            }
            context::before_blocking();
            if listener.wait_deadline(deadline).is_none() {
                return self.is_completed();
            }
        }
        true
    }

    /// Listens on `done`, then tells completers that someone does. Check the state
    /// after this and before waiting: with the fence in
    /// [`release_waiters`](Self::release_waiters) (store, fence, load on both sides), either
    /// that check sees the completion or the completer sees `listening` and notifies,
    /// after this listener was inserted.
    fn listen(&self) -> event_listener::EventListener {
        let listener = self.done.listen();
        self.listening.store(true, Ordering::Release);
        fence(Ordering::SeqCst);
        listener
    }

    /// Registers `cx`'s waker to be woken at completion.
    pub(crate) fn poll_completed(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_completed() {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        if self.is_completed() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Drops the registered waker, if any: its future went away before completion.
    pub(crate) fn forget_waker(&self) {
        drop(self.waker.take());
    }

    /// Marks the operation completed (its result is already stored).
    fn set_completed(&self) {
        self.state.store(COMPLETED, Ordering::Release);
    }

    /// Marks a completed operation pending again (see [`Op::rearm`]).
    fn set_pending(&self) {
        self.state.store(PENDING, Ordering::Release);
    }

    /// Wakes blocked waiters and hands back the registered waker, for the caller to
    /// wake once it no longer needs the operation (see `QueuedOp::notify`).
    fn release_waiters(&self) -> Option<std::task::Waker> {
        // Pairs with the fence in `listen` (see there); call after the state is stored.
        fence(Ordering::SeqCst);
        if self.listening.load(Ordering::Acquire) {
            self.done.notify(usize::MAX);
        }
        self.waker.take()
    }
}

impl fmt::Debug for OpHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state.load(Ordering::Acquire) {
            PENDING => "pending",
            COMPLETED => "completed",
            _ => "ended",
        };
        f.debug_struct("AsyncResult")
            .field("kind", &self.kind)
            .field("state", &state)
            .field("completed_synchronously", &self.sync)
            .field("socket", &self.socket_id)
            .field("has_async_state", &self.async_state.is_some())
            .finish()
    }
}

enum Stage<W: Produces> {
    Pending(W),
    /// Completed. `spent` is the work's user part (its buffer, unless the result took
    /// it) until it is dropped: after the queue's lock, when the completion is notified
    /// or taken, whichever comes first (see [`Op::drop_spent`]).
    Done {
        result: Result<W::Output, Error>,
        spent: Option<W::Spent>,
    },
    Taken,
}

struct Slot<W: Produces> {
    stage: Stage<W>,
    callback: Option<AsyncCallback<W::Output>>,
}

/// An operation with its work `W`.
pub(crate) struct Op<W: Produces> {
    header: OpHeader,
    slot: Mutex<Slot<W>>,
}

impl<W: Produces> Op<W> {
    /// An operation that the fast path already finished inside `begin_*`.
    pub(crate) fn completed<C: OpContext>(
        kind: OpKind,
        socket: &Arc<C>,
        result: Result<W::Output, Error>,
        callback: Option<AsyncCallback<W::Output>>,
        state: Option<AsyncState>,
    ) -> Op<W> {
        Op {
            header: OpHeader::new(kind, socket, false, callback.is_some(), state),
            slot: Mutex::new(Slot {
                stage: Stage::Done {
                    result,
                    spent: None,
                },
                callback,
            }),
        }
    }

    /// An operation that waits in its socket's queue.
    pub(crate) fn pending<C: OpContext>(
        kind: OpKind,
        socket: &Arc<C>,
        work: W,
        callback: Option<AsyncCallback<W::Output>>,
        state: Option<AsyncState>,
    ) -> Op<W> {
        Op {
            header: OpHeader::new(kind, socket, true, callback.is_some(), state),
            slot: Mutex::new(Slot {
                stage: Stage::Pending(work),
                callback,
            }),
        }
    }

    pub(crate) fn has_callback(&self) -> bool {
        self.header.has_callback
    }

    /// Makes a completed operation pending again with fresh `work`, so that its
    /// allocation serves another wait. Takes `&mut`: only for an operation that
    /// nothing else holds (`Arc::get_mut`), so it is in no queue and needs no lock;
    /// returns `false`, doing nothing, if it is still pending.
    pub(crate) fn rearm(&mut self, work: W) -> bool {
        if !self.header.is_completed() {
            return false;
        }
        let slot = self.slot.get_mut();
        slot.stage = Stage::Pending(work);
        self.header.set_pending();
        true
    }

    /// Sets whether the operation, once completed, keeps its place (see
    /// [`QueuedOp::keeps_place`]); before it is queued.
    pub(crate) fn set_keeps_place(&self, on: bool) {
        self.header.set_keeps_place(on);
    }

    /// Completes the pending operation with `result`. Its work's user part (the
    /// buffer) is kept, not dropped: this runs under the queue's lock, and the buffer's
    /// `Drop` is user code that may begin operations on this socket or on one whose
    /// buffers begin on this one (see `user_drop`). It goes in
    /// [`drop_spent`](Op::drop_spent).
    fn finish(&self, mut slot: MutexGuard<'_, Slot<W>>, result: Result<W::Output, Error>) {
        let spent = match std::mem::replace(&mut slot.stage, Stage::Taken) {
            // The rest of the work (progress, flags, an address) goes now: not user code.
            Stage::Pending(work) => work.spend(),
            // Not reached: callers finish only a pending operation.
            Stage::Done { .. } | Stage::Taken => None,
        };
        self.header
            .holds_spent
            .store(spent.is_some(), Ordering::Relaxed);
        slot.stage = Stage::Done { result, spent };
        drop(slot);
        self.header.set_completed();
    }

    /// Drops the completed operation's spent buffer, if it is still here. Called
    /// with no queue lock held: when the completion is notified, before anyone is told,
    /// or by the `end_*` that takes the result, if that comes first.
    fn drop_spent(&self) {
        if !std::mem::needs_drop::<W::Spent>() || !self.header.holds_spent.load(Ordering::Relaxed) {
            return;
        }
        let spent = match &mut self.slot.lock().stage {
            Stage::Done { spent, .. } => spent.take(),
            _ => None,
        };
        if let Some(spent) = spent {
            drop_user(spent);
        }
    }

    /// The address of the operation, to find it in a queue.
    pub(crate) fn address(&self) -> *const () {
        (self as *const Self).cast()
    }
}

impl<C, W: Work<C>> QueuedOp<C> for Op<W> {
    fn attempt(&self, socket: &C) -> bool {
        let mut slot = self.slot.lock();
        let Stage::Pending(work) = &mut slot.stage else {
            return true;
        };
        // The buffer is user code: a panic in it fails the operation, not the engine.
        let result = match catch_unwind(AssertUnwindSafe(|| work.attempt(socket))) {
            Ok(Attempt::WouldBlock) => return false,
            Ok(Attempt::Done(result)) => result,
            Err(_) => {
                work.abandon(socket);
                Err(Error::Socket(io::Error::other(
                    "the operation's buffer panicked",
                )))
            }
        };
        self.finish(slot, result);
        true
    }

    fn fail(&self, err: Error) -> bool {
        let slot = self.slot.lock();
        if !matches!(slot.stage, Stage::Pending(_)) {
            return false;
        }
        self.finish(slot, Err(err));
        true
    }

    fn has_progress(&self) -> bool {
        match &self.slot.lock().stage {
            Stage::Pending(work) => work.has_progress(),
            _ => false,
        }
    }

    fn notify(self: Arc<Self>, sink: &dyn TaskSink) {
        self.drop_spent();
        let waker = self.header.release_waiters();
        if self.header.has_callback {
            context::deliver(self, sink);
        } else {
            // Let go of the operation before the wake: the woken task may run at once on
            // another thread and begin its next wait, which reuses this operation's
            // allocation only if nothing else holds it (`OpQueue::try_now`). Its state
            // and buffer may go with it: user code, whose panic must not stop the
            // notifying thread from notifying the operations completed with this one.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(self)));
        }
        if let Some(waker) = waker {
            // A panicking waker must not take the notifying thread down.
            let _ = catch_unwind(AssertUnwindSafe(|| waker.wake()));
        }
    }

    fn addr(&self) -> *const () {
        self.address()
    }

    fn is_done(&self) -> bool {
        self.header.is_completed()
    }

    fn is_readiness(&self) -> bool {
        self.header.kind().is_readiness()
    }

    fn keeps_place(&self) -> bool {
        self.header.keeps_place()
    }
}

impl<W: Produces> Task for Op<W> {
    fn run(self: Arc<Self>) {
        let callback = self.slot.lock().callback.take();
        if let Some(callback) = callback {
            let result = AsyncResult::from_op(self);
            // A panicking callback must not take the callback thread down with it.
            let _ = catch_unwind(AssertUnwindSafe(move || callback(result)));
        }
    }
}

impl<W: Produces> Completion<W::Output> for Op<W> {
    fn header(&self) -> &OpHeader {
        &self.header
    }

    fn take(&self) -> Result<W::Output, Error> {
        let mut slot = self.slot.lock();
        match std::mem::replace(&mut slot.stage, Stage::Taken) {
            Stage::Done { result, spent } => {
                // Taken before the notification dropped the buffer: it goes here,
                // after the operation's lock.
                drop(slot);
                if let Some(spent) = spent {
                    drop_user(spent);
                }
                result
            }
            // Unreachable: `take` follows a successful `claim`, which requires the
            // COMPLETED state, which is set only after the result is stored.
            Stage::Pending(work) => {
                slot.stage = Stage::Pending(work);
                Err(Error::AlreadyEnded)
            }
            Stage::Taken => Err(Error::AlreadyEnded),
        }
    }

    fn cancel(&self) -> bool {
        if self.header.is_completed() {
            if self.header.keeps_place() {
                // A future's readiness, reached, that it will not try on: its place
                // goes (if it still holds it), so the operations behind it go on. The
                // result stays as it is.
                if let Some(socket) = self.header.socket.upgrade() {
                    socket.cancel(self.header.kind, self.address());
                }
            }
            return false;
        }
        match self.header.socket.upgrade() {
            Some(socket) => socket.cancel(self.header.kind, self.address()),
            // The socket is gone, so its queues (and this operation's place in them)
            // are gone too: the operation completed when the socket was closed.
            None => false,
        }
    }
}

/// Whether a type-erased async state holds an `S`.
pub(crate) fn downcast_state<S: Any>(state: &AsyncState) -> Option<&S> {
    (**state).downcast_ref::<S>()
}
