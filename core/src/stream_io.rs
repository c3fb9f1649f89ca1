//! The state behind a runtime's `AsyncRead`/`AsyncWrite` for a stream socket, shared
//! by the tokio and smol adapters.
//!
//! Reads and writes go straight between the caller's buffer and the kernel
//! (`try_read`/`try_send`): no copy, no owned buffer, and nothing is accepted that is
//! not in the kernel when `poll_write` says so, so `poll_flush` only has to wait for
//! operations queued through other paths (for example a dropped `send` future, whose
//! bytes go out first). When the kernel would block, the half keeps one readiness wait
//! and reuses it across polls, so a read future dropped by `select!` or a timeout
//! leaves nothing behind and loses no byte: **cancel safe**. That wait keeps no place
//! in the socket's order once it completes (a half cannot tell whether the future that
//! polled it is still there): a `begin_*` of the same direction begun while a read or
//! write waits may go first.
//!
//! The halves hold their wait behind a mutex so that both `&mut self` (tokio) and
//! `&self` (futures-io's `impl AsyncRead for &TcpStream`) shapes can use them (the
//! write half has a second one for flushing, so that a write waiting for room never
//! holds a flush or a shutdown up). Through `&self`, two tasks may poll one wait at
//! once (two readers, or two writers), and the wait wakes only the task that polled it
//! last: a poll by another task than the last wakes that one, which then polls again,
//! so neither is left waiting (async-io's rule for its one-waker readiness; the two
//! take turns while both wait, so give each direction one task).

use std::io::{self, IoSlice};
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

use crate::async_result::AsyncCallback;
use crate::error::Error;
use crate::flags::SocketFlags;
use crate::future::{poll_try, ReadyWait, Runtime};
use crate::op::OpKind;
use crate::ops::try_io::TryIo;
use crate::socket::Socket;

/// The read half's state.
#[derive(Debug)]
pub struct ReadHalf<R> {
    socket: Socket,
    waiting: Wait,
    _runtime: PhantomData<fn() -> R>,
}

/// The write half's state.
#[derive(Debug)]
pub struct WriteHalf<R> {
    socket: Socket,
    waiting: Wait,
    /// Flushing's own wait: a write left waiting for room in the kernel must not hold
    /// a flush up, which waits only for queued sends.
    flushing: Wait,
    /// Dropping the half also shuts the write side down (behind the queued sends).
    shut_down_on_drop: bool,
    _runtime: PhantomData<fn() -> R>,
}

/// A half's one readiness wait, behind the lock that its pollers take.
type Wait = Mutex<HalfWait>;

/// A half's one readiness wait, reused across polls (cancelled when the half goes), and
/// the task that polled it last (see the module docs).
#[derive(Debug, Default)]
struct HalfWait {
    ready: ReadyWait,
    last_poller: Option<Waker>,
}

impl HalfWait {
    /// [`poll_try`] on the half's wait, for `cx`'s task. If another task polled last,
    /// this poll takes the wait's waker over, so that task is woken to poll again.
    fn poll<R: Runtime, T>(
        &mut self,
        cx: &mut Context<'_>,
        attempt: impl FnMut() -> Result<TryIo<T>, Error>,
    ) -> Poll<Result<T, Error>> {
        match &self.last_poller {
            Some(last) if last.will_wake(cx.waker()) => {}
            _ => {
                if let Some(displaced) = self.last_poller.replace(cx.waker().clone()) {
                    displaced.wake();
                }
            }
        }
        poll_try::<R, _>(&mut self.ready.0, cx, attempt)
    }
}

fn ready<T>(poll: Poll<Result<T, Error>>) -> Poll<io::Result<T>> {
    poll.map(|r| r.map_err(io::Error::from))
}

impl<R: Runtime> ReadHalf<R> {
    /// The read side of `socket`.
    pub fn new(socket: Socket) -> Self {
        ReadHalf {
            socket,
            waiting: Wait::default(),
            _runtime: PhantomData,
        }
    }

    /// The socket.
    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// `AsyncRead::poll_read` into initialized memory; `Ok(0)` means end of stream.
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready(
            self.waiting
                .lock()
                .poll::<R, _>(cx, || self.socket.try_read(buf)),
        )
    }

    /// `AsyncRead::poll_read` into memory that may be uninitialized; only initialized
    /// bytes are written, the first `n`.
    pub fn poll_read_uninit(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready(
            self.waiting
                .lock()
                .poll::<R, _>(cx, || self.socket.try_read_uninit(buf)),
        )
    }

    /// Gives the socket back, cancelling the pending readiness wait (which holds no
    /// data).
    pub fn into_socket(self) -> Socket {
        self.socket.clone()
    }
}

impl<R: Runtime> WriteHalf<R> {
    /// The write side of `socket`.
    pub fn new(socket: Socket) -> Self {
        WriteHalf {
            socket,
            waiting: Wait::default(),
            flushing: Wait::default(),
            shut_down_on_drop: false,
            _runtime: PhantomData,
        }
    }

    /// The same half, which when dropped also shuts the write side down behind the
    /// sends still queued (see [`shutdown_behind_sends`](Self::shutdown_behind_sends)):
    /// what dropping a split-off write half does, as tokio's own halves do.
    pub fn shut_down_when_dropped(mut self) -> Self {
        self.shut_down_on_drop = true;
        self
    }

    /// The socket.
    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// `AsyncWrite::poll_write`: what it reports written is in the kernel.
    pub fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready(
            self.waiting
                .lock()
                .poll::<R, _>(cx, || self.socket.try_send(buf, SocketFlags::NONE)),
        )
    }

    /// `AsyncWrite::poll_write_vectored`, one `sendmsg`.
    pub fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if bufs.iter().all(|b| b.is_empty()) {
            return Poll::Ready(Ok(0));
        }
        ready(self.waiting.lock().poll::<R, _>(cx, || {
            self.socket.try_send_vectored(bufs, SocketFlags::NONE)
        }))
    }

    /// `AsyncWrite::poll_flush`: ready once no send of this socket is queued. A write
    /// that returned `Pending` accepted nothing and holds nothing up: with no send
    /// queued, a flush (and so a shutdown) is ready at once, however full the kernel's
    /// buffer, as with tokio's and async-io's streams. The queued sends are a dropped
    /// `send` future's, whose result is discarded: a flush waits for them but does not
    /// report how they ended; if one failed, the next write says so (`EPIPE`).
    ///
    /// With no send queued it is ready without spending the runtime's budget, as
    /// tokio's own streams' flush is (`tokio::io::copy` flushes whenever its reader
    /// waits).
    pub fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut flushing = self.flushing.lock();
        if flushing.ready.0.is_none() {
            match self.socket.sends_flushed() {
                Ok(TryIo::Done(())) | Err(Error::Disposed) => return Poll::Ready(Ok(())),
                // The wait begins here: the runtime is told, as `poll_try` would.
                Ok(TryIo::WouldBlock(ready)) => {
                    flushing.ready.0 = Some(ready);
                    R::will_wait();
                }
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        }
        let flushed = flushing.poll::<R, _>(cx, || self.socket.sends_flushed());
        match flushed {
            // A closed socket has nothing left to flush.
            Poll::Ready(Err(Error::Disposed)) => Poll::Ready(Ok(())),
            other => ready(other),
        }
    }

    /// `AsyncWrite::poll_shutdown` / `poll_close`: flushes, then shuts the write side
    /// down (the peer reads end of stream); reads keep working.
    pub fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.poll_flush(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        match self.socket.shutdown(Shutdown::Write) {
            Ok(()) => Poll::Ready(Ok(())),
            // Already shut down, not connected any more, or closed: the write side is
            // down either way.
            Err(Error::Disposed) => Poll::Ready(Ok(())),
            Err(e) if e.error_code() == Some(libc::ENOTCONN) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(e.into())),
        }
    }

    /// Shuts the write side down behind every send still queued, without waiting:
    /// their bytes go out whole first (a dropped `send` future's too), then the peer
    /// reads end of stream. What dropping a half made with
    /// [`shut_down_when_dropped`](Self::shut_down_when_dropped) does, as tokio's own
    /// halves do. A closed socket's write side is down already.
    pub fn shutdown_behind_sends(&self) {
        behind_sends(&self.socket, |socket| {
            let _ = socket.shutdown(Shutdown::Write);
        });
    }

    /// Gives the socket back, cancelling the pending readiness wait. Sends still
    /// queued keep it open until they complete, as when the half is dropped.
    pub fn into_socket(self) -> Socket {
        self.socket.clone()
    }
}

/// Dropping the write half keeps the socket open behind the sends still queued (a
/// dropped `send` future's): their bytes go out whole, and only then does the half's
/// handle go, so a stream dropped right after a send is closed gracefully, the peer
/// reading every byte and then end of stream, as with a tokio or std stream whose
/// bytes sit in the kernel. A half made with
/// [`shut_down_when_dropped`](WriteHalf::shut_down_when_dropped) then also shuts the
/// write side down. [`close`](Socket::close) still aborts them.
impl<R> Drop for WriteHalf<R> {
    fn drop(&mut self) {
        let shut_down = self.shut_down_on_drop;
        behind_sends(&self.socket, move |socket| {
            if shut_down {
                let _ = socket.shutdown(Shutdown::Write);
            }
        });
    }
}

/// Runs `then` once every send queued on `socket` now has completed: at once if none
/// is queued, else from the callback of an empty send queued behind them (the queue is
/// FIFO), which holds a handle so that the socket stays open until then. Nothing runs
/// on a closed socket.
fn behind_sends(socket: &Socket, then: impl FnOnce(&Socket) + Send + 'static) {
    let core = socket.core();
    match core.queue(OpKind::Send).has_queued(core) {
        Ok(false) => then(socket),
        Ok(true) => {
            let behind = socket.clone();
            let after: AsyncCallback<usize> = Box::new(move |_| then(&behind));
            let _ = socket.begin_send(&[][..], SocketFlags::NONE, Some(after), None);
        }
        Err(_) => {}
    }
}
