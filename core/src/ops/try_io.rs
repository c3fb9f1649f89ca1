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
//! The readiness operation holds a place in the queue only until it completes. The
//! queue then goes on to the operations behind it, so an operation begun while a try
//! waited (a `begin_receive` behind a pending `AsyncRead`, say) may take the data the
//! try was woken for, before the try runs again. Holding the place until the retry
//! would need every caller of a `try_*` to retry or cancel the readiness it was given;
//! the tries keep the simpler contract.

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::net::SocketAddr;

use super::accept::{accept_one, check_listener};
use super::receive::{receive_from_into, receive_into};
use super::{nonblocking, send_flags};
use crate::async_result::AsyncResult;
use crate::buf::{uninit_view, IoBufMut};
use crate::error::Error;
use crate::flags::SocketFlags;
use crate::op::{Attempt, OpKind, Produces, Work};
use crate::socket::{Socket, SocketCore};
use crate::sys;

/// The most buffers one `sendmsg` takes (Linux's `UIO_MAXIOV`).
const MAX_IOV: usize = 1024;

/// The outcome of a non-blocking attempt (`Socket::try_*`).
#[derive(Debug)]
pub enum TryIo<T> {
    /// The syscall ran and produced this.
    Done(T),
    /// Nothing was done: wait for this readiness operation, then try again.
    WouldBlock(AsyncResult<()>),
}

/// The work of a readiness operation: by the time the queue runs it (at the head,
/// after a readiness edge or after the operation before it completed), the direction
/// is worth trying again.
pub(crate) struct ReadyWork;

impl Produces for ReadyWork {
    type Output = ();
}

impl<C> Work<C> for ReadyWork {
    fn attempt(&mut self, _socket: &C) -> Attempt<()> {
        Attempt::Done(Ok(()))
    }
}

impl Socket {
    /// Runs `now` on the direction of readiness kind `ready_kind` (`SendReady` or
    /// `ReceiveReady`), or queues a readiness operation of that kind.
    fn try_side<T>(
        &self,
        ready_kind: OpKind,
        now: impl FnOnce(&SocketCore) -> Result<Option<T>, Error>,
    ) -> Result<TryIo<T>, Error> {
        let core = self.core();
        core.queue(ready_kind).try_now(core, ready_kind, now)
    }

    /// [`try_side`](Self::try_side) for sends: a send's error goes through
    /// [`SocketCore::send_failed`], which keeps a connection failure for the next read.
    fn try_send_side<T>(
        &self,
        now: impl FnOnce(&SocketCore) -> Result<Option<T>, Error>,
    ) -> Result<TryIo<T>, Error> {
        self.try_side(OpKind::SendReady, |core| {
            now(core).map_err(|e| core.send_failed(e))
        })
    }

    fn try_receive_side<T>(
        &self,
        now: impl FnOnce(&SocketCore) -> Result<Option<T>, Error>,
    ) -> Result<TryIo<T>, Error> {
        self.try_side(OpKind::ReceiveReady, now)
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
    /// way); a datagram is all of `bufs` or nothing (`EMSGSIZE` if they are too many).
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
        self.try_send_side(|core| {
            let bufs = if core.is_stream() {
                let first = bufs
                    .iter()
                    .position(|b| !b.is_empty())
                    .unwrap_or(bufs.len());
                let bufs = &bufs[first..];
                &bufs[..bufs.len().min(MAX_IOV)]
            } else {
                bufs
            };
            nonblocking(|| core.fd().send_vectored_with_flags(bufs, flags))
        })
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
        let flags = flags.to_msg_flags();
        self.try_receive_side(|core| receive_into(core, buf, flags))
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
        self.try_receive_side(|core| core.read_stream(buf, 0))
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
        let flags = flags.to_msg_flags();
        self.try_receive_side(|core| receive_from_into(core, buf, flags))
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
        self.try_accept_again()
    }

    /// [`try_accept`](Socket::try_accept) on a socket already checked to be a
    /// listener (a role does not change: retries skip the `getsockopt`).
    pub(crate) fn try_accept_again(&self) -> Result<TryIo<(Socket, SocketAddr)>, Error> {
        self.try_receive_side(accept_one)
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
