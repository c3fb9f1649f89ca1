//! Non-blocking attempts that take their turn in the socket's queues: the building
//! blocks of cancel-safe futures and of the runtimes' I/O traits.
//!
//! A `try_*` call runs its syscall right away only when nothing is queued in its
//! direction (so it never jumps ahead of a pending operation) and returns
//! [`TryIo::Done`]. Otherwise, or if the syscall would block, it consumes nothing and
//! returns [`TryIo::WouldBlock`] with a readiness operation: an `AsyncResult<()>` that
//! completes when the direction is worth trying again (at the next readiness edge once
//! it reaches the head of the queue, or with `Disposed` when the socket closes, or
//! `Aborted` if cancelled). A future built on these loses nothing when dropped: data
//! is only taken when it is handed straight back.
//!
//! Whether the readiness operation keeps its place once it completes depends on whose
//! try left it (a [`Turn`]). A plain `try_*` call's gives its place up: the queue goes
//! on to the operations behind it, since nothing obliges the caller to try again. A
//! future's ([`ReadinessFuture`](crate::future::ReadinessFuture): the adapters'
//! receive, `receive_from` and accept futures) keeps it: once reached, it stays in its
//! place until the future tries again, and a try that finds nothing waits in the same
//! place again, so an operation begun after the future started cannot take what the
//! future was woken for (order, semantics §2). Dropping or cancelling the future
//! gives its turn up. Tries are not ordered among themselves: one runs whenever only
//! readiness operations are queued ahead of it.

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::task::Waker;

use super::accept::{accept_one, check_listener};
use super::receive::{receive_from_into, receive_into, tries_when_drained};
use super::send::send_datagram;
use super::{nonblocking, send_flags, MAX_IOV};
use crate::async_result::AsyncResult;
use crate::buf::{uninit_view, IoBufMut};
use crate::error::Error;
use crate::flags::SocketFlags;
use crate::op::{Attempt, OpKind, Produces, Work};
use crate::queue::{InPlace, Park, Parking};
use crate::socket::{Socket, SocketCore};
use crate::sys;

/// The outcome of a non-blocking attempt (`Socket::try_*`).
#[derive(Debug)]
pub enum TryIo<T> {
    /// The syscall ran and produced this.
    Done(T),
    /// Nothing was done: wait for this readiness operation, then try again.
    WouldBlock(AsyncResult<()>),
}

/// Whose try a `try_*` runs, and so what the readiness operation it may leave does once
/// it completes (see the module docs). Made by the futures of
/// [`future`](crate::future), handed to [`TryAttempt::try_once`](crate::future::TryAttempt::try_once).
#[derive(Clone, Copy, Debug)]
pub struct Turn<'a>(pub(crate) TurnKind<'a>);

/// What a [`Turn`] is.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TurnKind<'a> {
    /// A plain `try_*` call: its readiness operation gives its place up once complete.
    Once,
    /// A future's first try, or its try after its wait was given up: its readiness
    /// operation keeps its place once reached.
    Future,
    /// A future's try after its wait (`AsyncResult<()>`) was reached, or after it took
    /// its place without a try (`Hold`): it runs in that place once only readiness
    /// operations are ahead of it.
    Reached(&'a AsyncResult<()>),
    /// A future's first poll, put off by the runtime's budget: no try, only a place
    /// taken (a readiness operation queued) for the next poll's try.
    Hold,
}

impl Turn<'_> {
    /// A plain `try_*` call's.
    pub(crate) const ONCE: Turn<'static> = Turn(TurnKind::Once);
}

/// The work of a readiness operation: by the time the queue runs it (at the head,
/// after a readiness edge or after the operation before it completed), the direction
/// is worth trying again.
pub(crate) struct ReadyWork;

impl Produces for ReadyWork {
    type Output = ();
    type Spent = ();

    fn spend(self) -> Option<()> {
        None
    }
}

impl<C> Work<C> for ReadyWork {
    fn attempt(&mut self, _socket: &C) -> Attempt<()> {
        Attempt::Done(Ok(()))
    }
}

/// One `sendmsg` of `bufs` (see [`Socket::try_send_vectored`]); `None` if it would
/// block.
fn send_vectored_now(
    core: &SocketCore,
    bufs: &[IoSlice<'_>],
    flags: libc::c_int,
) -> Result<Option<usize>, Error> {
    if !core.is_stream() {
        return send_datagram(core.fd(), bufs.iter().map(|b| &b[..]), flags);
    }
    let first = bufs
        .iter()
        .position(|b| !b.is_empty())
        .unwrap_or(bufs.len());
    let bufs = &bufs[first..];
    let bufs = &bufs[..bufs.len().min(MAX_IOV)];
    nonblocking(|| core.fd().send_vectored_with_flags(bufs, flags))
}

impl Socket {
    /// Runs `now` on the direction of readiness kind `ready_kind` (`SendReady` or
    /// `ReceiveReady`), or queues a readiness operation of that kind.
    fn try_side<T>(
        &self,
        ready_kind: OpKind,
        turn: Turn<'_>,
        tries_when_drained: bool,
        now: impl FnOnce(&SocketCore) -> Result<Option<T>, Error>,
    ) -> Result<TryIo<T>, Error> {
        let core = self.core();
        core.queue(ready_kind)
            .try_now(core, ready_kind, turn, tries_when_drained, now)
    }

    /// [`try_side`](Self::try_side) for a stream half, which parks its task's waker when
    /// it can instead of queueing a readiness operation (see `OpQueue::try_or_park`).
    fn park_side<T>(
        &self,
        ready_kind: OpKind,
        tries_when_drained: bool,
        park: Park<'_>,
        now: impl FnOnce(&SocketCore) -> Result<Option<T>, Error>,
    ) -> Result<Parking<T>, Error> {
        let core = self.core();
        core.queue(ready_kind)
            .try_or_park(core, ready_kind, tries_when_drained, park, now)
    }

    /// Whether `waker` is still parked on the direction of readiness kind `ready_kind`
    /// (see [`park_side`](Self::park_side)).
    pub(crate) fn is_parked(&self, ready_kind: OpKind, waker: &Waker) -> bool {
        let core = self.core();
        core.queue(ready_kind).is_parked(core, waker)
    }

    /// Takes `waker` out of the direction of readiness kind `ready_kind` if it is still
    /// parked there (its half is going away).
    pub(crate) fn unpark(&self, ready_kind: OpKind, waker: &Waker) {
        let core = self.core();
        core.queue(ready_kind).unpark(core, waker);
    }

    /// [`try_side`](Self::try_side) for a receive future, which parks its task's waker
    /// as its place in the queue when it can, instead of queueing a readiness operation
    /// (see `OpQueue::try_in_place`).
    fn receive_side_in_place<T>(
        &self,
        flags: libc::c_int,
        place: InPlace<'_>,
        now: impl FnOnce(&SocketCore) -> Result<Option<T>, Error>,
    ) -> Result<Parking<T>, Error> {
        let core = self.core();
        core.queue(OpKind::ReceiveReady).try_in_place(
            core,
            OpKind::ReceiveReady,
            tries_when_drained(flags),
            place,
            now,
        )
    }

    /// [`try_receive`](Socket::try_receive), for a future that keeps its place in the
    /// queue by parking its waker there (see
    /// [`receive_side_in_place`](Self::receive_side_in_place)).
    pub(crate) fn receive_in_place<B: IoBufMut>(
        &self,
        buf: &mut B,
        flags: SocketFlags,
        place: InPlace<'_>,
    ) -> Result<Parking<usize>, Error> {
        let flags = flags.to_msg_flags();
        self.receive_side_in_place(flags, place, |core| receive_into(core, buf, flags))
    }

    /// [`try_receive_from`](Socket::try_receive_from), for a future that keeps its
    /// place in the queue by parking its waker there.
    pub(crate) fn receive_from_in_place<B: IoBufMut>(
        &self,
        buf: &mut B,
        flags: SocketFlags,
        place: InPlace<'_>,
    ) -> Result<Parking<(usize, SocketAddr)>, Error> {
        let flags = flags.to_msg_flags();
        self.receive_side_in_place(flags, place, |core| receive_from_into(core, buf, flags))
    }

    /// [`try_accept_in_turn`](Self::try_accept_in_turn), for a future that keeps its
    /// place in the queue by parking its waker there.
    pub(crate) fn accept_in_place(
        &self,
        place: InPlace<'_>,
    ) -> Result<Parking<(Socket, SocketAddr)>, Error> {
        self.receive_side_in_place(0, place, accept_one)
    }

    /// Whether a receive future's place parked on this socket still waits for an edge.
    pub(crate) fn receive_place_waits(&self) -> bool {
        let core = self.core();
        core.queue(OpKind::ReceiveReady).place_waits(core)
    }

    /// Gives up the place a receive future parked on this socket (it is going away).
    pub(crate) fn leave_receive_place(&self) {
        let core = self.core();
        core.queue(OpKind::ReceiveReady).leave_place(core);
    }

    /// [`try_send`](Socket::try_send) with no flags, for a stream half that parks
    /// its task's waker when it would block (see [`park_side`](Self::park_side)).
    pub(crate) fn park_send(&self, buf: &[u8], park: Park<'_>) -> Result<Parking<usize>, Error> {
        let flags = send_flags(SocketFlags::NONE);
        self.park_send_side(park, |core| sys::send(core.fd(), buf, flags))
    }

    /// [`try_send_vectored`](Socket::try_send_vectored) with no flags, for a stream half
    /// that parks its task's waker when it would block.
    pub(crate) fn park_send_vectored(
        &self,
        bufs: &[IoSlice<'_>],
        park: Park<'_>,
    ) -> Result<Parking<usize>, Error> {
        let flags = send_flags(SocketFlags::NONE);
        self.park_send_side(park, |core| send_vectored_now(core, bufs, flags))
    }

    /// [`try_read_uninit`](Socket::try_read_uninit), for a stream half that parks its
    /// task's waker when it would block.
    pub(crate) fn park_read_uninit(
        &self,
        buf: &mut [MaybeUninit<u8>],
        park: Park<'_>,
    ) -> Result<Parking<usize>, Error> {
        self.park_side(OpKind::ReceiveReady, tries_when_drained(0), park, |core| {
            core.read_stream(buf, 0)
        })
    }

    /// [`park_side`](Self::park_side) for sends, whose errors go through
    /// `keep_connection_failure` as [`try_send_side`](Self::try_send_side)'s do.
    fn park_send_side<T>(
        &self,
        park: Park<'_>,
        now: impl FnOnce(&SocketCore) -> Result<Option<T>, Error>,
    ) -> Result<Parking<T>, Error> {
        self.park_side(OpKind::SendReady, false, park, |core| {
            now(core).map_err(|e| core.failures().keep_connection_failure(e))
        })
    }

    /// [`try_side`](Self::try_side) for sends: a send's error goes through
    /// [`ReportedOnce::keep_connection_failure`](crate::reported_once::ReportedOnce::keep_connection_failure), which keeps a connection failure for the next read.
    fn try_send_side<T>(
        &self,
        now: impl FnOnce(&SocketCore) -> Result<Option<T>, Error>,
    ) -> Result<TryIo<T>, Error> {
        self.try_side(OpKind::SendReady, Turn::ONCE, false, |core| {
            now(core).map_err(|e| core.failures().keep_connection_failure(e))
        })
    }

    /// [`try_side`](Self::try_side) for receives with `flags` (an urgent-data one tries
    /// even after a read proved the receive queue empty).
    fn try_receive_side<T>(
        &self,
        turn: Turn<'_>,
        flags: libc::c_int,
        now: impl FnOnce(&SocketCore) -> Result<Option<T>, Error>,
    ) -> Result<TryIo<T>, Error> {
        self.try_side(OpKind::ReceiveReady, turn, tries_when_drained(flags), now)
    }

    /// Sends what the kernel takes of `buf` now, with one syscall, if no send is
    /// queued. Unlike [`begin_send`](Socket::begin_send), a stream may take only part
    /// of the buffer (the count says how much), as with `write(2)`.
    ///
    /// # Errors
    ///
    /// [`Error::Disposed`] after close; [`Error::Socket`] from the OS.
    pub fn try_send(&self, buf: &[u8], flags: SocketFlags) -> Result<TryIo<usize>, Error> {
        let flags = send_flags(flags);
        self.try_send_side(|core| sys::send(core.fd(), buf, flags))
    }

    /// Like [`try_send`](Socket::try_send), gathering several buffers in one `sendmsg`.
    /// On a stream it gathers from at most the first 1,024 non-empty buffers (the
    /// kernel refuses more in one call; std and tokio cap a vectored write the same
    /// way); on a datagram socket `bufs` form one datagram, however many there are (past
    /// 1,024 they are copied into one first).
    ///
    /// # Errors
    ///
    /// [`Error::Disposed`] after close; [`Error::Socket`] from the OS.
    pub fn try_send_vectored(
        &self,
        bufs: &[IoSlice<'_>],
        flags: SocketFlags,
    ) -> Result<TryIo<usize>, Error> {
        let flags = send_flags(flags);
        self.try_send_side(|core| send_vectored_now(core, bufs, flags))
    }

    /// Sends `buf` as one datagram to `to` now, if no send is queued.
    ///
    /// # Errors
    ///
    /// [`Error::Disposed`] after close; [`Error::Socket`] from the OS.
    pub fn try_send_to(
        &self,
        buf: &[u8],
        flags: SocketFlags,
        to: SocketAddr,
    ) -> Result<TryIo<usize>, Error> {
        let flags = send_flags(flags);
        let to = to.into();
        self.try_send_side(|core| nonblocking(|| core.fd().send_to_with_flags(buf, &to, flags)))
    }

    /// Receives into `buf` now, if data is there and no receive is queued; the buffer
    /// convention and the count are those of [`begin_receive`](Socket::begin_receive).
    ///
    /// # Errors
    ///
    /// [`Error::Disposed`] after close; [`Error::Socket`] from the OS.
    pub fn try_receive<B: IoBufMut>(
        &self,
        buf: &mut B,
        flags: SocketFlags,
    ) -> Result<TryIo<usize>, Error> {
        self.try_receive_in_turn(buf, flags, Turn::ONCE)
    }

    /// [`try_receive`](Socket::try_receive) as a future's `turn`.
    pub(crate) fn try_receive_in_turn<B: IoBufMut>(
        &self,
        buf: &mut B,
        flags: SocketFlags,
        turn: Turn<'_>,
    ) -> Result<TryIo<usize>, Error> {
        let flags = flags.to_msg_flags();
        self.try_receive_side(turn, flags, |core| receive_into(core, buf, flags))
    }

    /// Reads into `buf` now (as `read(2)`), if data is there and no receive is queued.
    ///
    /// # Errors
    ///
    /// [`Error::Disposed`] after close; [`Error::Socket`] from the OS.
    pub fn try_read(&self, buf: &mut [u8]) -> Result<TryIo<usize>, Error> {
        // SAFETY: a read writes only initialized bytes.
        self.try_read_uninit(unsafe { uninit_view(buf) })
    }

    /// [`try_read`](Socket::try_read) into memory that may be uninitialized; only
    /// initialized bytes are written, the first `n` of them.
    ///
    /// # Errors
    ///
    /// [`Error::Disposed`] after close; [`Error::Socket`] from the OS.
    pub fn try_read_uninit(&self, buf: &mut [MaybeUninit<u8>]) -> Result<TryIo<usize>, Error> {
        self.try_receive_side(Turn::ONCE, 0, |core| core.read_stream(buf, 0))
    }

    /// Receives one datagram and its sender now, if one is there and no receive is
    /// queued; conventions of [`begin_receive_from`](Socket::begin_receive_from).
    ///
    /// # Errors
    ///
    /// [`Error::Disposed`] after close; [`Error::Socket`] from the OS.
    pub fn try_receive_from<B: IoBufMut>(
        &self,
        buf: &mut B,
        flags: SocketFlags,
    ) -> Result<TryIo<(usize, SocketAddr)>, Error> {
        self.try_receive_from_in_turn(buf, flags, Turn::ONCE)
    }

    /// [`try_receive_from`](Socket::try_receive_from) as a future's `turn`.
    pub(crate) fn try_receive_from_in_turn<B: IoBufMut>(
        &self,
        buf: &mut B,
        flags: SocketFlags,
        turn: Turn<'_>,
    ) -> Result<TryIo<(usize, SocketAddr)>, Error> {
        let flags = flags.to_msg_flags();
        self.try_receive_side(turn, flags, |core| receive_from_into(core, buf, flags))
    }

    /// Accepts a pending connection now, if one is there and no accept is queued.
    ///
    /// # Errors
    ///
    /// [`Error::Disposed`] after close; [`Error::Socket`] for a socket that is not
    /// listening (`EINVAL`, or `EOPNOTSUPP` on UDP), whose addresses are not IP ones
    /// (`EAFNOSUPPORT`, a Unix listener), and for the OS errors of `accept(2)`
    /// (`EMFILE`, …).
    pub fn try_accept(&self) -> Result<TryIo<(Socket, SocketAddr)>, Error> {
        check_listener(self.core())?;
        self.try_accept_in_turn(Turn::ONCE)
    }

    /// [`try_accept`](Socket::try_accept) as a future's `turn`, on a socket already
    /// checked to be a listener (a role does not change: retries skip the
    /// `getsockopt`).
    pub(crate) fn try_accept_in_turn(
        &self,
        turn: Turn<'_>,
    ) -> Result<TryIo<(Socket, SocketAddr)>, Error> {
        self.try_receive_side(turn, 0, accept_one)
    }

    /// Checks, once, that the socket can accept (see [`try_accept`](Socket::try_accept)).
    pub(crate) fn check_can_accept(&self) -> Result<(), Error> {
        check_listener(self.core())
    }

    /// `Done` if no send is queued; otherwise a readiness operation that completes
    /// once every send queued before it has completed (a flush barrier).
    ///
    /// # Errors
    ///
    /// [`Error::Disposed`] after close.
    pub fn sends_flushed(&self) -> Result<TryIo<()>, Error> {
        self.try_send_side(|_| Ok(Some(())))
    }
}
