//! The state behind a runtime's `AsyncRead`/`AsyncWrite` for a stream socket, shared
//! by the tokio and smol adapters.
//!
//! Reads and writes go straight between the caller's buffer and the kernel
//! (`try_read`/`try_send`): no copy, no owned buffer, and nothing is accepted that is
//! not in the kernel when `poll_write` says so, so `poll_flush` only has to wait for
//! operations queued through other paths (for example a dropped `send` future, whose
//! bytes go out first). When the kernel would block, the half parks its task's waker in
//! the socket's queue until the next edge (the queue's "A parked half": no allocation,
//! so an idle connection with a read pending costs only the read's future), or, when it
//! cannot park (another half or task is parked there, or an operation of the same
//! direction waits), keeps one readiness wait and reuses it across polls. Either way a
//! read future dropped by `select!` or a timeout leaves nothing behind and loses no
//! byte: **cancel safe**. The wait keeps no place in the socket's order (a half cannot
//! tell whether the future that polled it is still there): a `begin_*` of the same
//! direction begun while a read or write waits may go first.
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
use crate::buf::uninit_view;
use crate::driver;
use crate::error::Error;
use crate::flags::SocketFlags;
use crate::future::{poll_try, ReadyWait, Runtime};
use crate::op::OpKind;
use crate::ops::try_io::TryIo;
use crate::queue::{Park, Parking};
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

/// A half's wait: parked in the socket's queue (no allocation), or, when it could not
/// park, one readiness operation reused across polls (cancelled when the half goes);
/// and the task that polled it last (see the module docs).
#[derive(Debug, Default)]
struct HalfWait {
    ready: ReadyWait,
    /// The last poll parked its waker in the queue (`OpQueue::try_or_park`).
    parked: bool,
    last_poller: Option<Waker>,
}

impl HalfWait {
    /// Takes the wait over for `cx`'s task; returns the task that polled last, if
    /// another, to be woken to poll again.
    fn note_poller(&mut self, cx: &Context<'_>) -> Option<Waker> {
        match &self.last_poller {
            Some(last) if last.will_wake(cx.waker()) => None,
            _ => self.last_poller.replace(cx.waker().clone()),
        }
    }

    /// [`poll_try`] on the half's wait, for `cx`'s task, with no parking (a flush).
    fn poll<R: Runtime, T>(
        &mut self,
        cx: &mut Context<'_>,
        attempt: impl FnMut() -> Result<TryIo<T>, Error>,
    ) -> Poll<Result<T, Error>> {
        if let Some(displaced) = self.note_poller(cx) {
            displaced.wake();
        }
        poll_try::<R, _>(&mut self.ready.0, cx, attempt)
    }

    /// A read or write of the half (the direction of readiness kind `ready_kind`) on
    /// `io` (its buffer): `park` tries and parks the waker it is given when it would
    /// block; should it fall back to a readiness operation, the wait goes on as
    /// [`poll`](Self::poll)'s, with `attempt`.
    fn poll_parking<R: Runtime, T, B>(
        &mut self,
        socket: &Socket,
        ready_kind: OpKind,
        cx: &mut Context<'_>,
        mut io: B,
        park: impl FnMut(&mut B, Park<'_>) -> Result<Parking<T>, Error>,
        mut attempt: impl FnMut(&mut B) -> Result<TryIo<T>, Error>,
    ) -> Poll<Result<T, Error>> {
        if let Some(displaced) = self.note_poller(cx) {
            if self.parked {
                // Its waker is parked for this half: out with it, so that this task
                // may park in its place.
                socket.unpark(ready_kind, &displaced);
                self.parked = false;
            }
            displaced.wake();
        }
        if self.ready.0.is_none() {
            if let Some(polled) = self.try_parked::<R, T, B>(socket, ready_kind, cx, &mut io, park)
            {
                return polled;
            }
        }
        poll_try::<R, _>(&mut self.ready.0, cx, || attempt(&mut io))
    }

    /// The parked part of [`poll_parking`](Self::poll_parking): `None` once the wait
    /// has fallen back to a readiness operation (in `self.ready`).
    fn try_parked<R: Runtime, T, B>(
        &mut self,
        socket: &Socket,
        ready_kind: OpKind,
        cx: &mut Context<'_>,
        io: &mut B,
        mut park: impl FnMut(&mut B, Park<'_>) -> Result<Parking<T>, Error>,
    ) -> Option<Poll<Result<T, Error>>> {
        let Poll::Ready(budget) = R::poll_budget(cx) else {
            return Some(Poll::Pending);
        };
        let mut drained = false;
        let polled = loop {
            let parked = std::mem::take(&mut self.parked);
            let waker = cx.waker();
            match park(io, Park { waker, parked }) {
                Err(e) => break Poll::Ready(Err(e)),
                Ok(Parking::Done(value)) => break Poll::Ready(Ok(value)),
                Ok(Parking::Queued(ready)) => {
                    self.ready.0 = Some(ready);
                    return None;
                }
                // No edge since it parked (the runtime told already): nothing to try.
                Ok(Parking::StillParked) => {
                    self.parked = true;
                    break Poll::Pending;
                }
                Ok(Parking::Parked) => {
                    if !drained {
                        // As a waiting future does: the peer's edge may be there for
                        // this thread to drain; if the drain unparked this half, it
                        // tries again at once.
                        drained = true;
                        driver::drain_if_driven();
                        if !socket.is_parked(ready_kind, cx.waker()) {
                            continue;
                        }
                    }
                    self.parked = true;
                    R::will_wait();
                    break Poll::Pending;
                }
            }
        };
        if polled.is_ready() {
            R::made_progress(budget);
        }
        Some(polled)
    }

    /// Takes this half's waker out of the queue if it is still parked there (the half
    /// is going away).
    fn leave(&mut self, socket: &Socket, ready_kind: OpKind) {
        if self.parked {
            if let Some(waker) = &self.last_poller {
                socket.unpark(ready_kind, waker);
            }
        }
    }
}

fn ready<T>(poll: Poll<Result<T, Error>>) -> Poll<io::Result<T>> {
    poll.map(|r| r.map_err(io::Error::from))
}

impl<R: Runtime> ReadHalf<R> {
    /// The read side of `socket`. A TCP socket's reads then prove its receive queue
    /// empty by the runtime's rule ([`Runtime::READ_DRAIN`]).
    pub fn new(socket: Socket) -> Self {
        socket.core().set_read_drain(R::READ_DRAIN);
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
        // SAFETY: a read writes only initialized bytes.
        let area = unsafe { uninit_view(buf) };
        self.poll_read_area(cx, area)
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
        self.poll_read_area(cx, buf)
    }

    /// A read into `buf` (not empty), parking the waker when it would block.
    fn poll_read_area(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        let socket = &self.socket;
        ready(self.waiting.lock().poll_parking::<R, _, _>(
            socket,
            OpKind::ReceiveReady,
            cx,
            buf,
            |buf, park| socket.park_read_uninit(buf, park),
            |buf| socket.try_read_uninit(buf),
        ))
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
        let socket = &self.socket;
        ready(self.waiting.lock().poll_parking::<R, _, _>(
            socket,
            OpKind::SendReady,
            cx,
            buf,
            |buf, park| socket.park_send(buf, park),
            |buf| socket.try_send(buf, SocketFlags::NONE),
        ))
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
        let socket = &self.socket;
        ready(self.waiting.lock().poll_parking::<R, _, _>(
            socket,
            OpKind::SendReady,
            cx,
            bufs,
            |bufs, park| socket.park_send_vectored(bufs, park),
            |bufs| socket.try_send_vectored(bufs, SocketFlags::NONE),
        ))
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

/// A read half parked in the socket's queue takes its waker out as it goes (no stale
/// waker is left to hold the task).
impl<R> Drop for ReadHalf<R> {
    fn drop(&mut self) {
        self.waiting
            .get_mut()
            .leave(&self.socket, OpKind::ReceiveReady);
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
        self.waiting
            .get_mut()
            .leave(&self.socket, OpKind::SendReady);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::future::ReadDrain;
    use crate::{Domain, Protocol, Type};

    /// A runtime that asks for the kernel's count; nothing here waits or sleeps.
    struct Counting;

    impl Runtime for Counting {
        type Sleep = std::future::Pending<()>;
        fn will_wait() {}
        fn sleep(_duration: std::time::Duration) -> Self::Sleep {
            std::future::pending()
        }
        type Budget = ();
        fn poll_budget(_cx: &mut Context<'_>) -> Poll<()> {
            Poll::Ready(())
        }
        fn made_progress(_budget: ()) {}
        const READ_DRAIN: ReadDrain = ReadDrain::KernelCount;
    }

    /// A read half applies its runtime's rule to the socket; a socket nobody wrapped
    /// keeps the default.
    #[test]
    fn a_read_half_applies_its_runtimes_read_drain_rule() -> Result<(), Error> {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        assert_eq!(socket.core().read_drain(), ReadDrain::ShortRead);
        let _half = ReadHalf::<Counting>::new(socket.clone());
        assert_eq!(socket.core().read_drain(), ReadDrain::KernelCount);
        Ok(())
    }
}
