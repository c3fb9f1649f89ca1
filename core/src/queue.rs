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

use std::sync::Arc;

use crate::async_result::{AsyncCallback, AsyncResult, AsyncState};
use crate::context;
use crate::error::Error;
use crate::fifo::InlineFifo;
use crate::op::{Attempt, Op, OpContext, OpKind, Produces, QueuedOp, Work};
use crate::ops::try_io::{ReadyWork, TryIo};
use crate::sync::Mutex;

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
}

impl<C> Default for OpQueue<C> {
    fn default() -> Self {
        OpQueue {
            inner: Mutex::new(Inner {
                ops: InlineFifo::default(),
                stopped: false,
                spare_ready: None,
            }),
        }
    }
}

impl<C> std::fmt::Debug for OpQueue<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.lock();
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
        if inner.ops.is_empty() {
            if let Attempt::Done(result) = work.attempt(socket) {
                drop(inner);
                drop(work);
                return Ok(Begun::Inline(result));
            }
        }
        let (callback, state) = extras.take();
        let op = Arc::new(Op::pending(kind, socket, work, callback, state));
        inner.ops.push_back(op.clone());
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
    pub(crate) fn try_now<T>(
        &self,
        socket: &Arc<C>,
        ready_kind: OpKind,
        now: impl FnOnce(&C) -> Result<Option<T>, Error>,
    ) -> Result<TryIo<T>, Error> {
        let mut inner = self.inner.lock();
        if inner.stopped || socket.is_closed() {
            return Err(Error::Disposed);
        }
        if inner.ops.is_empty() {
            if let Some(value) = now(socket)? {
                return Ok(TryIo::Done(value));
            }
        }
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
        inner.spare_ready = Some(Arc::clone(&op));
        inner.ops.push_back(op.clone());
        Ok(TryIo::WouldBlock(AsyncResult::from_op(op)))
    }

    /// Runs queued operations in order until one would block; completed ones go to
    /// `completed` for notification after the lock is released.
    pub(crate) fn process(&self, socket: &C, completed: &mut Completed<C>) {
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
    pub(crate) fn cancel(
        &self,
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

/// Model checks of the lifecycle with loom: every interleaving of readiness edges,
/// `begin_*`, cancel, close and `end_*` on one queue. Run by `cargo xtask test`
/// (`RUSTFLAGS="--cfg loom" cargo test -p asyncresult-core --lib model`).
#[cfg(all(test, loom))]
mod model {
    use std::sync::Arc;

    use loom::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::op::{OpContext, Produces, Task, TaskSink};

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
        data: AtomicUsize,
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
            false
        }
        fn cancel(&self, _kind: OpKind, addr: *const ()) -> bool {
            let mut completed = Completed::new();
            let cancelled = self.queue.cancel(addr, &mut completed, || {});
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
                data: AtomicUsize::new(0),
                sink: Sink,
            })
        }

        /// The kernel delivers one unit of data, then the poller reports the edge.
        fn deliver(self: &Arc<Self>) {
            self.data.fetch_add(1, Ordering::SeqCst);
            self.edge();
        }

        /// A readiness edge: the queue runs its operations.
        fn edge(self: &Arc<Self>) {
            let mut completed = Completed::new();
            self.queue.process(self, &mut completed);
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

        fn receive(self: &Arc<Self>) -> AsyncResult<()> {
            match self.queue.start(self, OpKind::Receive, Take, None, None) {
                Ok(ar) => ar,
                Err(e) => panic!("begin failed: {e}"),
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
            let taken = m
                .data
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
            match taken {
                Ok(_) => Attempt::Done(Ok(())),
                Err(_) => Attempt::WouldBlock,
            }
        }
    }

    /// An edge racing with `begin`: data that arrives is never left unclaimed by a
    /// waiting operation (no lost wake-up).
    #[test]
    fn no_lost_wake_up() {
        loom::model(|| {
            let m = Model::new();
            let kernel = {
                let m = m.clone();
                loom::thread::spawn(move || m.deliver())
            };
            let ar = m.receive();
            join(kernel);
            assert!(
                ar.is_completed(),
                "data arrived but the receive still waits"
            );
        });
    }

    /// Operations complete in the order they were begun, whatever the interleaving.
    #[test]
    fn fifo_under_concurrent_edges() {
        loom::model(|| {
            let m = Model::new();
            let kernel = {
                let m = m.clone();
                loom::thread::spawn(move || m.deliver())
            };
            let first = m.receive();
            let second = m.receive();
            join(kernel);
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
            let kernel = {
                let m = m.clone();
                loom::thread::spawn(move || m.deliver())
            };
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
            let kernel = {
                let m = m.clone();
                loom::thread::spawn(move || m.deliver())
            };
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
