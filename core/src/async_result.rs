//! `AsyncResult<T>`, the handle to one operation (.NET's `IAsyncResult`), with the
//! `AsyncState` and `AsyncCallback` types that travel with it.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::error::Error;
use crate::op::{downcast_state, Completion, OpHeader, OpKind};

/// The caller's object that travels with an operation (.NET's `AsyncState`), handed
/// back by [`AsyncResult::async_state`] and [`AsyncResult::state`].
pub type AsyncState = Arc<dyn Any + Send + Sync>;

/// The method to call when an operation completes (.NET's `AsyncCallback`).
///
/// It runs exactly once, on a callback thread, never inside the `begin_*` call that
/// started the operation, and receives that operation's [`AsyncResult`]. It runs on
/// another thread, so it may start before `begin_*` has returned to its caller.
///
/// Callbacks make no promise of order between operations, but a chain runs as you
/// would hope: when a callback begins operations that complete at once (its next send,
/// say), their callbacks run next on the same thread, in the order begun, ahead of
/// other waiting callbacks, which get their turn after a few dozen such steps. (If the
/// callback that began them then blocks in `end_*` or [`AsyncResult::wait`] for an
/// operation still pending, they move to other callback threads at once, in order, as
/// they may be what that operation waits for.)
pub type AsyncCallback<T> = Box<dyn FnOnce(AsyncResult<T>) + Send + 'static>;

/// The status of one asynchronous operation (.NET's `IAsyncResult`).
///
/// `T` is what the matching `end_*` returns on success. An `AsyncResult` is a cheap
/// handle: clones refer to the same operation, and dropping every handle before the
/// operation completes neither cancels it nor leaks it (it finishes in the
/// background and its buffer is freed afterwards).
///
/// | .NET `IAsyncResult` | here |
/// |---|---|
/// | `IsCompleted` | [`is_completed`](AsyncResult::is_completed) |
/// | `CompletedSynchronously` | [`completed_synchronously`](AsyncResult::completed_synchronously) |
/// | `AsyncState` | [`async_state`](AsyncResult::async_state), [`state`](AsyncResult::state) |
/// | `AsyncWaitHandle.WaitOne()` | [`wait`](AsyncResult::wait), [`wait_timeout`](AsyncResult::wait_timeout) |
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use asyncresult_core::{Socket, SocketFlags};
///
/// # fn main() -> Result<(), asyncresult_core::Error> {
/// let listener = Socket::listen_tcp("127.0.0.1:0".parse().unwrap(), 16)?;
/// let client = Socket::connect_tcp(listener.local_addr()?)?;
///
/// let ar = client.begin_send(b"hello", SocketFlags::NONE, None, Some(Arc::new("tag")))?;
/// assert!(ar.wait_timeout(Duration::from_secs(5)));
/// assert!(ar.is_completed());
/// assert_eq!(ar.state::<&str>(), Some(&"tag"));
/// assert_eq!(client.end_send(&ar)?, 5);
/// # Ok(()) }
/// ```
pub struct AsyncResult<T> {
    op: Arc<dyn Completion<T>>,
}

impl<T> Clone for AsyncResult<T> {
    fn clone(&self) -> Self {
        AsyncResult {
            op: Arc::clone(&self.op),
        }
    }
}

impl<T> AsyncResult<T> {
    pub(crate) fn from_op(op: Arc<dyn Completion<T>>) -> AsyncResult<T> {
        AsyncResult { op }
    }

    fn header(&self) -> &OpHeader {
        self.op.header()
    }

    /// The operation's address, as its queue knows it (`QueuedOp::addr`).
    pub(crate) fn op_addr(&self) -> *const () {
        Arc::as_ptr(&self.op).cast()
    }

    /// Whether the operation has completed, successfully or not (`IsCompleted`).
    pub fn is_completed(&self) -> bool {
        self.header().is_completed()
    }

    /// Whether the operation finished inside the `begin_*` call that started it, with no
    /// waiting (`CompletedSynchronously`). Its callback still runs on a callback thread.
    pub fn completed_synchronously(&self) -> bool {
        self.header().completed_synchronously()
    }

    /// The state object passed to `begin_*` (`AsyncState`).
    pub fn async_state(&self) -> Option<&AsyncState> {
        self.header().async_state()
    }

    /// The state object passed to `begin_*`, if it is an `S` (the cast that .NET code
    /// writes as `(StateObject) ar.AsyncState`).
    pub fn state<S: Any>(&self) -> Option<&S> {
        self.async_state().and_then(downcast_state::<S>)
    }

    /// Blocks the calling thread until the operation completes
    /// (`AsyncWaitHandle.WaitOne()`). It returns once the result is there, which may be
    /// before the operation's callback has run (or finished) on its callback thread.
    pub fn wait(&self) {
        self.header().wait();
    }

    /// Blocks until the operation completes or `timeout` passes; `true` if it completed.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.header().wait_timeout(timeout)
    }

    /// Cancels the operation if it is still pending: it completes with
    /// [`Error::Aborted`], its callback runs once, and the socket stays usable. Returns
    /// `true` if this call cancelled it, `false` if it had already completed (its result
    /// is kept).
    ///
    /// A stream send that has already put some of its bytes on the wire cannot be
    /// taken back: cancelling it also shuts the send side down, so no later send can
    /// splice into the torn stream (they fail with `EPIPE`). A datagram send is atomic:
    /// cancellable while queued, otherwise already complete. A cancelled connect leaves
    /// the socket unusable for data; close it: the handshake is dissolved (the socket is
    /// shut down both ways), so the peer never gets the connection, and later sends and
    /// receives fail at once (the first with `ECONNRESET`, then `EPIPE` and `ENOTCONN`).
    ///
    /// # Examples
    ///
    /// ```
    /// use asyncresult_core::{Error, Socket, SocketFlags};
    ///
    /// # fn main() -> Result<(), asyncresult_core::Error> {
    /// let listener = Socket::listen_tcp("127.0.0.1:0".parse().unwrap(), 16)?;
    /// let client = Socket::connect_tcp(listener.local_addr()?)?;
    /// // Nothing is coming: the receive waits until cancelled.
    /// let ar = client.begin_receive(Vec::with_capacity(64), SocketFlags::NONE, None, None)?;
    /// assert!(ar.cancel());
    /// assert!(matches!(client.end_receive(&ar), Err(Error::Aborted)));
    /// assert!(!ar.cancel(), "already completed");
    /// # Ok(()) }
    /// ```
    pub fn cancel(&self) -> bool {
        self.op.cancel()
    }

    /// Whether `end_*` has already taken this operation's result.
    pub fn is_ended(&self) -> bool {
        self.header().is_ended()
    }

    /// Registers `cx`'s waker to be woken when the operation completes: the building
    /// block of futures (the tokio and smol adapters). Ready once completed.
    ///
    /// The result keeps one waker, the last registered (as `AtomicWaker` does): poll
    /// it from one task at a time. An adapter's future over this result is such a
    /// task, and when it is dropped it forgets the waker, so a clone of the result is
    /// best polled only once that future is gone.
    pub fn poll_completed(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.header().poll_completed(cx)
    }

    /// Drops the waker that [`poll_completed`](AsyncResult::poll_completed) registered,
    /// so that an operation left to finish in the background by a dropped future does
    /// not keep that future's task (and its memory) alive until it completes.
    pub(crate) fn forget_waker(&self) {
        self.header().forget_waker();
    }

    /// The kind and socket this result belongs to.
    pub(crate) fn origin(&self) -> (OpKind, u64) {
        (self.header().kind(), self.header().socket_id())
    }

    /// Takes the result now if the operation has completed and nobody ended it yet.
    pub(crate) fn take_ready_result(&self) -> Result<T, Error> {
        if !self.header().claim() {
            return Err(Error::AlreadyEnded);
        }
        self.op.take()
    }

    /// Waits for completion and takes the result, once.
    pub(crate) fn finish(&self) -> Result<T, Error> {
        if self.is_ended() {
            return Err(Error::AlreadyEnded);
        }
        self.wait();
        self.take_ready_result()
    }
}

impl<T> fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.header(), f)
    }
}
