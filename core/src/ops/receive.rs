//! Receives: `begin_receive`/`end_receive` and `begin_receive_from`/`end_receive_from`.
//!
//! A receive completes when at least one byte (stream) or one datagram is available.
//! On a stream, 0 means the peer shut down (and stays 0). A zero-capacity buffer makes
//! `receive` a readiness probe: it completes when data is readable, returns 0 and
//! consumes nothing (at end of stream it also returns 0), as in .NET.
//!
//! A datagram longer than the buffer is truncated: the buffer holds its head, the rest
//! is dropped, and the count returned is the datagram's full length (`MSG_TRUNC`), so
//! `count > len` tells the caller it was truncated. A zero-capacity `receive_from`
//! therefore consumes one datagram and reports its length and sender.

use std::mem::MaybeUninit;
use std::net::SocketAddr;

use super::{failed, nonblocking};
use crate::async_result::{AsyncCallback, AsyncResult, AsyncState};
use crate::buf::{take_filled, IoBufMut};
use crate::error::Error;
use crate::flags::SocketFlags;
use crate::op::{Attempt, OpKind, Produces, Work};
use crate::socket::{Socket, SocketCore};

/// Receives into `buf` from index 0; returns the count to report (for a datagram, its
/// full length), `None` if nothing is there yet.
pub(crate) fn receive_into<B: IoBufMut>(
    socket: &SocketCore,
    buf: &mut B,
    flags: libc::c_int,
) -> Result<Option<usize>, Error> {
    let fd = socket.fd();
    let capacity = buf.recv_capacity();
    if capacity == 0 {
        // Readiness probe: look at one byte without taking it (nor a connection
        // failure, which the kernel reports once: it is kept for the next read).
        let mut probe = [MaybeUninit::<u8>::uninit(); 1];
        let window = socket.failures().read();
        let peeked = nonblocking(|| fd.recv_with_flags(&mut probe, flags | libc::MSG_PEEK))
            .map_err(|e| window.failed(e, true))?;
        if peeked == Some(0) && socket.is_stream() {
            window.end_of_stream(true, || socket.wait_for_sends())?;
        }
        return Ok(peeked.map(|_| 0).or_else(|| socket.datagram_end()));
    }
    let received = if socket.is_stream() {
        // SAFETY: `recv` writes only initialized bytes into the area.
        let area = unsafe { buf.recv_area() };
        socket.read_stream(area, flags)?
    } else {
        let area = datagram_area(buf, flags);
        nonblocking(|| fd.recv_with_flags(area, flags | libc::MSG_TRUNC))?
            .or_else(|| socket.datagram_end())
    };
    if let Some(n) = received {
        // SAFETY: a stream's `recv` (no `MSG_TRUNC`) initialized the first `n` bytes;
        // a datagram's initialized the first `min(n, capacity)`, except a peek's, whose
        // area was initialized before (see `datagram_area`).
        unsafe { buf.set_received(n.min(capacity)) };
    }
    Ok(received)
}

/// The receive area of `buf` for a datagram receive with `flags` (which the caller
/// completes with `MSG_TRUNC`), initialized first for a peek.
///
/// With `MSG_TRUNC` the kernel returns a datagram's full length `n` and, as a rule,
/// copies its first `min(n, capacity)` bytes, so that many are initialized. A peek
/// breaks the rule on a UDP socket with a peek offset (`SO_PEEK_OFF`, set by a plain
/// `setsockopt`): it copies only the bytes past the offset, yet still returns the full
/// length. A peek's area is therefore made initialized memory first where it is not
/// already (a `Vec`'s spare capacity: zeroed, a cost only peeks pay).
fn datagram_area<B: IoBufMut>(buf: &mut B, flags: libc::c_int) -> &mut [MaybeUninit<u8>] {
    let zero = flags & libc::MSG_PEEK != 0 && !buf.recv_area_is_initialized();
    // SAFETY: only `recv`/`recvfrom`, which write initialized bytes, and the zeroing
    // below write into the area.
    let area = unsafe { buf.recv_area() };
    if zero {
        area.fill(MaybeUninit::new(0));
    }
    area
}

/// Whether a receive with `flags` tries its syscall even after a read proved the
/// receive queue empty: an urgent-data one (see `Work::tries_when_drained`).
pub(crate) fn tries_when_drained(flags: libc::c_int) -> bool {
    flags & libc::MSG_OOB != 0
}

/// A receive from the connected peer.
pub(crate) struct ReceiveWork<B> {
    buf: Option<B>,
    flags: libc::c_int,
}

impl<B: IoBufMut> Produces for ReceiveWork<B> {
    type Output = (usize, B);
    type Spent = B;

    /// The buffer, unless the result took it.
    fn spend(self) -> Option<B> {
        self.buf
    }
}

impl<B: IoBufMut> Work<SocketCore> for ReceiveWork<B> {
    fn tries_when_drained(&self) -> bool {
        tries_when_drained(self.flags)
    }

    fn attempt(&mut self, socket: &SocketCore) -> Attempt<(usize, B)> {
        let Some(buf) = self.buf.as_mut() else {
            return failed(Error::AlreadyEnded);
        };
        match receive_into(socket, buf, self.flags) {
            Ok(Some(n)) => Attempt::Done(take_filled(&mut self.buf).map(|buf| (n, buf))),
            Ok(None) => Attempt::WouldBlock,
            Err(e) => failed(e),
        }
    }
}

/// Receives one datagram (or, on a stream, what is there) into `buf` and reports the
/// sender; `None` if nothing is there yet.
pub(crate) fn receive_from_into<B: IoBufMut>(
    socket: &SocketCore,
    buf: &mut B,
    flags: libc::c_int,
) -> Result<Option<(usize, SocketAddr)>, Error> {
    socket.check_ip_addresses()?;
    let fd = socket.fd();
    if socket.is_stream() {
        // A stream has one peer; the kernel reports no address with its data. Asked
        // before the read, so that if it cannot be had (`ENOTCONN`: the connection is
        // gone, reset or closed by both sides) nothing is taken: `receive` still reads
        // what is left.
        let peer = fd
            .peer_addr()?
            .as_socket()
            .ok_or(Error::os(libc::EAFNOSUPPORT))?;
        return Ok(receive_into(socket, buf, flags)?.map(|n| (n, peer)));
    }
    let capacity = buf.recv_capacity();
    let flags = flags | libc::MSG_TRUNC;
    let received = if capacity == 0 {
        nonblocking(|| fd.recv_from_with_flags(&mut [], flags))?
    } else {
        let area = datagram_area(buf, flags);
        let received = nonblocking(|| fd.recv_from_with_flags(area, flags))?;
        if let Some((n, _)) = &received {
            // SAFETY: the kernel initialized the first `min(n, capacity)` bytes, except
            // for a peek, whose area was initialized before (see `datagram_area`).
            unsafe { buf.set_received((*n).min(capacity)) };
        }
        received
    };
    match received {
        None => match socket.datagram_end() {
            Some(n) => Ok(Some((n, shut_sender(fd)?))),
            None => Ok(None),
        },
        Some((n, from)) => {
            let from = from.as_socket().ok_or(Error::os(libc::EAFNOSUPPORT))?;
            Ok(Some((n, from)))
        }
    }
}

/// The sender that a `receive_from` reports for the end of input of a datagram socket
/// whose read side was shut down: the connected peer, or else the unspecified address
/// (port 0) of the socket's family.
fn shut_sender(fd: &socket2::Socket) -> Result<SocketAddr, Error> {
    if let Some(peer) = fd.peer_addr().ok().and_then(|a| a.as_socket()) {
        return Ok(peer);
    }
    let local = fd
        .local_addr()?
        .as_socket()
        .ok_or(Error::os(libc::EAFNOSUPPORT))?;
    let unspecified: std::net::IpAddr = match local {
        SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    Ok(SocketAddr::new(unspecified, 0))
}

/// A receive that also reports the sender.
pub(crate) struct ReceiveFromWork<B> {
    buf: Option<B>,
    flags: libc::c_int,
}

impl<B: IoBufMut> Produces for ReceiveFromWork<B> {
    type Output = (usize, B, SocketAddr);
    type Spent = B;

    /// The buffer, unless the result took it.
    fn spend(self) -> Option<B> {
        self.buf
    }
}

impl<B: IoBufMut> Work<SocketCore> for ReceiveFromWork<B> {
    fn tries_when_drained(&self) -> bool {
        tries_when_drained(self.flags)
    }

    fn attempt(&mut self, socket: &SocketCore) -> Attempt<(usize, B, SocketAddr)> {
        let Some(buf) = self.buf.as_mut() else {
            return failed(Error::AlreadyEnded);
        };
        match receive_from_into(socket, buf, self.flags) {
            Ok(Some((n, from))) => {
                Attempt::Done(take_filled(&mut self.buf).map(|buf| (n, buf, from)))
            }
            Ok(None) => Attempt::WouldBlock,
            Err(e) => failed(e),
        }
    }
}

impl Socket {
    /// Begins receiving into `buf` (.NET's `BeginReceive`).
    ///
    /// Completes when at least one byte (stream) or one datagram is available; `0` on a
    /// stream means the peer shut down. The buffer is filled from index 0 (a `Vec<u8>`
    /// up to its capacity, handed back with `len()` = bytes stored); a zero-capacity
    /// buffer makes this a readiness probe that consumes nothing (on a datagram socket
    /// too: the datagram stays queued, whereas a zero-capacity `begin_receive_from`
    /// consumes one and reports its length and sender). Receives on one socket
    /// complete in the order they were begun.
    ///
    /// # Errors
    ///
    /// Only [`Error::Disposed`]; OS errors (`ECONNRESET`, …) come through the result.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use asyncresult_core::{AsyncResult, Socket, SocketFlags};
    ///
    /// # fn main() -> Result<(), asyncresult_core::Error> {
    /// let listener = Socket::listen_tcp("127.0.0.1:0".parse().unwrap(), 16)?;
    /// let client = Socket::connect_tcp(listener.local_addr()?)?;
    /// let server = listener.end_accept(&listener.begin_accept(None, None)?)?;
    ///
    /// let (tx, rx) = mpsc::channel();
    /// let s = server.clone();
    /// server.begin_receive(
    ///     Vec::with_capacity(1024),
    ///     SocketFlags::NONE,
    ///     Some(Box::new(move |ar: AsyncResult<(usize, Vec<u8>)>| {
    ///         tx.send(s.end_receive(&ar)).unwrap();
    ///     })),
    ///     None,
    /// )?;
    /// client.end_send(&client.begin_send(b"hi", SocketFlags::NONE, None, None)?)?;
    /// let (n, buf) = rx.recv().unwrap()?;
    /// assert_eq!((n, &buf[..]), (2, &b"hi"[..]));
    /// # Ok(()) }
    /// ```
    pub fn begin_receive<B: IoBufMut>(
        &self,
        buf: B,
        flags: SocketFlags,
        callback: Option<AsyncCallback<(usize, B)>>,
        state: Option<AsyncState>,
    ) -> Result<AsyncResult<(usize, B)>, Error> {
        let work = ReceiveWork {
            buf: Some(buf),
            flags: flags.to_msg_flags(),
        };
        self.core().start(OpKind::Receive, work, callback, state)
    }

    /// Ends a receive begun by [`begin_receive`](Socket::begin_receive) (.NET's
    /// `EndReceive`): blocks until it completes and returns the count and the buffer.
    ///
    /// For a datagram longer than the buffer the count is the datagram's full length
    /// (greater than what the buffer holds).
    ///
    /// # Errors
    ///
    /// [`Error::ForeignResult`], [`Error::AlreadyEnded`], [`Error::Socket`],
    /// [`Error::Disposed`] or [`Error::Aborted`], as for
    /// [`end_send`](Socket::end_send). The buffer of a failed receive is dropped.
    pub fn end_receive<B: IoBufMut>(
        &self,
        ar: &AsyncResult<(usize, B)>,
    ) -> Result<(usize, B), Error> {
        self.check_origin(ar, &[OpKind::Receive])?;
        ar.finish()
    }

    /// Begins receiving one datagram and its sender (.NET's `BeginReceiveFrom`). On a
    /// stream socket it receives like [`begin_receive`](Socket::begin_receive) and
    /// reports the peer's address; once the connection is gone (reset, or closed by
    /// both sides) the kernel no longer knows that address, and the receive fails with
    /// `ENOTCONN`, taking nothing: [`begin_receive`](Socket::begin_receive) still reads
    /// what is left.
    ///
    /// # Errors
    ///
    /// Only [`Error::Disposed`]; OS errors come through the result.
    ///
    /// # Examples
    ///
    /// ```
    /// use asyncresult_core::{Socket, SocketFlags};
    ///
    /// # fn main() -> Result<(), asyncresult_core::Error> {
    /// let a = Socket::bind_udp("127.0.0.1:0".parse().unwrap())?;
    /// let b = Socket::bind_udp("127.0.0.1:0".parse().unwrap())?;
    /// let pending = b.begin_receive_from(Vec::with_capacity(16), SocketFlags::NONE, None, None)?;
    /// a.end_send_to(&a.begin_send_to(b"a long datagram", SocketFlags::NONE, b.local_addr()?, None, None)?)?;
    /// let (n, buf, from) = b.end_receive_from(&pending)?;
    /// assert_eq!((n, from), (15, a.local_addr()?));
    ///
    /// // Truncated: the count is the datagram's full length, the buffer holds its head.
    /// let small = b.begin_receive_from(vec![0u8; 4].into_boxed_slice(), SocketFlags::NONE, None, None)?;
    /// a.end_send_to(&a.begin_send_to(b"0123456789", SocketFlags::NONE, b.local_addr()?, None, None)?)?;
    /// let (n, head, _) = b.end_receive_from(&small)?;
    /// assert_eq!((n, &head[..]), (10, &b"0123"[..]));
    /// # let _ = buf;
    /// # Ok(()) }
    /// ```
    pub fn begin_receive_from<B: IoBufMut>(
        &self,
        buf: B,
        flags: SocketFlags,
        callback: Option<AsyncCallback<(usize, B, SocketAddr)>>,
        state: Option<AsyncState>,
    ) -> Result<AsyncResult<(usize, B, SocketAddr)>, Error> {
        let work = ReceiveFromWork {
            buf: Some(buf),
            flags: flags.to_msg_flags(),
        };
        self.core()
            .start(OpKind::ReceiveFrom, work, callback, state)
    }

    /// Ends a receive begun by [`begin_receive_from`](Socket::begin_receive_from):
    /// blocks until it completes and returns the count, the buffer and the sender.
    ///
    /// # Errors
    ///
    /// - [`Error::ForeignResult`]: `ar` was not returned by `begin_receive_from` on this socket (a
    ///   clone of a `Socket` is the same socket);
    /// - [`Error::AlreadyEnded`]: the result was already ended;
    /// - [`Error::Socket`]: the receive failed (its errno in [`Error::error_code`]);
    ///   on a socket whose addresses are not IP ones (a Unix socket), whose sender a
    ///   `SocketAddr` cannot hold, `EAFNOSUPPORT`, before anything is received;
    /// - [`Error::Disposed`]: the socket was closed while it was pending;
    /// - [`Error::Aborted`]: it was cancelled.
    ///
    /// The buffer of a failed receive is dropped.
    pub fn end_receive_from<B: IoBufMut>(
        &self,
        ar: &AsyncResult<(usize, B, SocketAddr)>,
    ) -> Result<(usize, B, SocketAddr), Error> {
        self.check_origin(ar, &[OpKind::ReceiveFrom])?;
        ar.finish()
    }
}
