//! Sends: `begin_send`/`end_send` (.NET's `BeginSend`/`EndSend`), `begin_send_to`/
//! `end_send_to` and `begin_send_vectored` (ended by `end_send`).
//!
//! On a stream socket a send completes only when every byte is in the kernel (or an
//! error occurs) and its count is the whole length; on a datagram socket it completes
//! when the one datagram is handed to the kernel. Every send carries `MSG_NOSIGNAL`, so
//! a closed peer gives `EPIPE`, never `SIGPIPE`.

use std::io::IoSlice;
use std::net::{Shutdown, SocketAddr};

use socket2::SockAddr;

use super::{failed, nonblocking, send_flags, MAX_IOV};
use crate::async_result::{AsyncCallback, AsyncResult, AsyncState};
use crate::buf::IoBuf;
use crate::error::Error;
use crate::flags::SocketFlags;
use crate::op::{Attempt, OpKind, Produces, Work};
use crate::queue::Started;
use crate::socket::{Socket, SocketCore};
use crate::sys;

/// Slices per `sendmsg` on a stream (the rest go in the next call), and the most a
/// datagram gathers without allocating.
const STREAM_IOV: usize = 64;

/// One buffer, to the connected peer or to `to`.
pub(crate) struct SendWork<B> {
    buf: B,
    sent: usize,
    flags: libc::c_int,
    /// A `SocketAddr` (32 bytes), turned into a `sockaddr` at each syscall: a stored
    /// `SockAddr` (a 128-byte `sockaddr_storage`) would be copied with every send
    /// operation, datagram or not.
    to: Option<SocketAddr>,
    stream: bool,
}

impl<B: IoBuf> Produces for SendWork<B> {
    type Output = usize;
    type Spent = B;

    fn spend(self) -> Option<B> {
        Some(self.buf)
    }
}

impl<B: IoBuf> Work<SocketCore> for SendWork<B> {
    fn attempt(&mut self, socket: &SocketCore) -> Attempt<usize> {
        let bytes = self.buf.as_bytes();
        let fd = socket.fd();
        loop {
            if self.stream && self.sent >= bytes.len() {
                return Attempt::Done(Ok(bytes.len()));
            }
            let rest = &bytes[self.sent.min(bytes.len())..];
            let sent = match self.to {
                Some(to) => {
                    nonblocking(|| fd.send_to_with_flags(rest, &SockAddr::from(to), self.flags))
                }
                None => sys::send(fd, rest, self.flags),
            };
            match sent {
                Ok(Some(n)) if !self.stream => return Attempt::Done(Ok(n)),
                // A stream that takes nothing has no room: wait for the next edge.
                Ok(Some(0)) | Ok(None) => return Attempt::WouldBlock,
                Ok(Some(n)) => self.sent += n,
                Err(e) => return failed(socket.failures().keep_connection_failure(e)),
            }
        }
    }

    fn has_progress(&self) -> bool {
        self.stream && self.sent > 0
    }

    fn abandon(&mut self, socket: &SocketCore) {
        tear_if_started(self.has_progress(), socket);
    }
}

/// Several buffers as one operation (gather): one `sendmsg` per attempt where possible.
pub(crate) struct SendVectoredWork<B> {
    bufs: Vec<B>,
    /// The first buffer not yet fully sent, and how much of it is.
    index: usize,
    offset: usize,
    sent: usize,
    flags: libc::c_int,
    stream: bool,
}

impl<B: IoBuf> SendVectoredWork<B> {
    /// Moves the cursor past `n` sent bytes.
    fn advance(&mut self, mut n: usize) {
        self.sent += n;
        while n > 0 && self.index < self.bufs.len() {
            let left = self.bufs[self.index]
                .as_bytes()
                .len()
                .saturating_sub(self.offset);
            if n >= left {
                n -= left;
                self.index += 1;
                self.offset = 0;
            } else {
                self.offset += n;
                n = 0;
            }
        }
    }

    /// Skips buffers that are fully sent (or empty).
    fn skip_done(&mut self) {
        while self.index < self.bufs.len() && self.offset >= self.bufs[self.index].as_bytes().len()
        {
            self.index += 1;
            self.offset = 0;
        }
    }

    fn attempt_datagram(&mut self, socket: &SocketCore) -> Attempt<usize> {
        let parts = self.bufs.iter().map(|b| b.as_bytes());
        match send_datagram(socket.fd(), parts, self.flags) {
            Ok(Some(n)) => Attempt::Done(Ok(n)),
            Ok(None) => Attempt::WouldBlock,
            Err(e) => failed(e),
        }
    }
}

/// Sends `parts` as one datagram with one `sendmsg`. Empty parts add nothing and are
/// left out; more than the kernel takes in one call ([`MAX_IOV`]) are first gathered
/// into one buffer, a copy made only then, so any number of parts forms one datagram.
pub(crate) fn send_datagram<'a>(
    fd: &socket2::Socket,
    parts: impl Iterator<Item = &'a [u8]> + Clone,
    flags: libc::c_int,
) -> Result<Option<usize>, Error> {
    let parts = parts.filter(|p| !p.is_empty());
    let count = parts.clone().count();
    let send = |slices: &[IoSlice<'_>]| nonblocking(|| fd.send_vectored_with_flags(slices, flags));
    if count <= STREAM_IOV {
        let mut iov = [IoSlice::new(&[]); STREAM_IOV];
        for (slot, part) in iov.iter_mut().zip(parts) {
            *slot = IoSlice::new(part);
        }
        send(&iov[..count])
    } else if count <= MAX_IOV {
        send(&parts.map(IoSlice::new).collect::<Vec<_>>())
    } else {
        send(&[IoSlice::new(&parts.collect::<Vec<_>>().concat())])
    }
}

impl<B: IoBuf> Produces for SendVectoredWork<B> {
    type Output = usize;
    type Spent = Vec<B>;

    fn spend(self) -> Option<Vec<B>> {
        Some(self.bufs)
    }
}

impl<B: IoBuf> Work<SocketCore> for SendVectoredWork<B> {
    fn attempt(&mut self, socket: &SocketCore) -> Attempt<usize> {
        if !self.stream {
            return self.attempt_datagram(socket);
        }
        loop {
            self.skip_done();
            if self.index >= self.bufs.len() {
                return Attempt::Done(Ok(self.sent));
            }
            let mut iov = [IoSlice::new(&[]); STREAM_IOV];
            let mut count = 0;
            for (slot, buf) in iov.iter_mut().zip(&self.bufs[self.index..]) {
                let bytes = buf.as_bytes();
                let start = if count == 0 { self.offset } else { 0 };
                *slot = IoSlice::new(&bytes[start.min(bytes.len())..]);
                count += 1;
            }
            let sent = nonblocking(|| {
                socket
                    .fd()
                    .send_vectored_with_flags(&iov[..count], self.flags)
            });
            match sent {
                Ok(Some(0)) | Ok(None) => return Attempt::WouldBlock,
                Ok(Some(n)) => self.advance(n),
                Err(e) => return failed(socket.failures().keep_connection_failure(e)),
            }
        }
    }

    fn has_progress(&self) -> bool {
        self.stream && self.sent > 0
    }

    fn abandon(&mut self, socket: &SocketCore) {
        tear_if_started(self.has_progress(), socket);
    }
}

/// A stream send abandoned with some of its bytes on the wire leaves the stream torn:
/// shut the send side, as a cancel does, so that no later send splices in (they fail
/// with `EPIPE`).
fn tear_if_started(started: bool, socket: &SocketCore) {
    if started {
        let _ = socket.fd().shutdown(Shutdown::Write);
    }
}

impl<B> SendWork<B> {
    /// A send of `buf` on `core`, to the connected peer or to `to`.
    fn new(core: &SocketCore, buf: B, flags: SocketFlags, to: Option<SocketAddr>) -> Self {
        SendWork {
            buf,
            sent: 0,
            flags: send_flags(flags),
            to,
            stream: core.is_stream(),
        }
    }
}

impl Socket {
    /// A whole send for a future: [`begin_send`](Socket::begin_send) without a result
    /// handle when the fast path finishes it.
    pub(crate) fn start_send<B: IoBuf>(&self, buf: B) -> Result<Started<usize>, Error> {
        let core = self.core();
        let work = SendWork::new(core, buf, SocketFlags::NONE, None);
        core.start_inline(OpKind::Send, work)
    }

    /// One datagram to `to` for a future (see [`start_send`](Socket::start_send)).
    pub(crate) fn start_send_to<B: IoBuf>(
        &self,
        buf: B,
        to: SocketAddr,
    ) -> Result<Started<usize>, Error> {
        let core = self.core();
        let work = SendWork::new(core, buf, SocketFlags::NONE, Some(to));
        core.start_inline(OpKind::SendTo, work)
    }

    /// Begins sending `buf` to the connected peer (.NET's `BeginSend`).
    ///
    /// On a stream socket the operation completes only when the whole buffer is in the
    /// kernel, and [`end_send`](Socket::end_send) returns its full length; on a
    /// datagram socket it sends one datagram. When nothing is queued and the kernel has
    /// room, the send happens right here, with one `send` syscall, and the result
    /// reports [`completed_synchronously`](AsyncResult::completed_synchronously).
    /// Sends on one socket go out in the order they were begun and never interleave.
    ///
    /// `callback` runs once on a callback thread when the send completes (never inside
    /// this call, even for a synchronous completion); `state` is handed back by
    /// [`AsyncResult::async_state`].
    ///
    /// # Errors
    ///
    /// Only [`Error::Disposed`] (the socket is closed). Errors met while sending
    /// (`EPIPE`, `ECONNRESET`, `EMSGSIZE`, …) are delivered through the result.
    ///
    /// # Examples
    ///
    /// The seed's pattern: the callback finds the socket in its state and ends the send.
    ///
    /// ```
    /// use std::sync::{mpsc, Arc};
    /// use asyncresult_core::{AsyncResult, Socket, SocketFlags};
    ///
    /// struct StateObject {
    ///     work_socket: Socket,
    ///     done: mpsc::Sender<usize>,
    /// }
    ///
    /// # fn main() -> Result<(), asyncresult_core::Error> {
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = Socket::connect_tcp(listener.local_addr().unwrap())?;
    /// let (done, sent) = mpsc::channel();
    /// let ar = s.begin_send(
    ///     b"Hello, world",
    ///     SocketFlags::NONE,
    ///     Some(Box::new(|ar: AsyncResult<usize>| {
    ///         let so = ar.state::<StateObject>().unwrap();
    ///         let n = so.work_socket.end_send(&ar).unwrap();
    ///         so.done.send(n).unwrap();
    ///     })),
    ///     Some(Arc::new(StateObject { work_socket: s.clone(), done })),
    /// )?;
    /// assert_eq!(sent.recv().unwrap(), 12);
    /// assert!(ar.is_completed());
    /// # Ok(()) }
    /// ```
    pub fn begin_send<B: IoBuf>(
        &self,
        buf: B,
        flags: SocketFlags,
        callback: Option<AsyncCallback<usize>>,
        state: Option<AsyncState>,
    ) -> Result<AsyncResult<usize>, Error> {
        let core = self.core();
        let work = SendWork::new(core, buf, flags, None);
        core.start(OpKind::Send, work, callback, state)
    }

    /// Ends a send begun by [`begin_send`](Socket::begin_send) or
    /// [`begin_send_vectored`](Socket::begin_send_vectored) (.NET's `EndSend`): blocks
    /// until it completes and returns the number of bytes sent. Calling it from the
    /// operation's own callback works (the result is complete by then).
    ///
    /// # Errors
    ///
    /// - [`Error::ForeignResult`]: `ar` was not returned by `begin_send`/
    ///   `begin_send_vectored` on this socket (a clone of a `Socket` is the same
    ///   socket);
    /// - [`Error::AlreadyEnded`]: the result was already ended;
    /// - [`Error::Socket`]: the send failed (its errno in [`Error::error_code`]);
    /// - [`Error::Disposed`]: the socket was closed while the send was pending;
    /// - [`Error::Aborted`]: the send was cancelled.
    ///
    /// # Examples
    ///
    /// Without a callback, `end_send` blocks until every byte is in the kernel, however
    /// long the peer takes to read.
    ///
    /// ```
    /// use std::io::Read;
    /// use asyncresult_core::{Error, Socket, SocketFlags};
    ///
    /// # fn main() -> Result<(), Error> {
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = Socket::connect_tcp(listener.local_addr().unwrap())?;
    /// let (mut peer, _) = listener.accept().unwrap();
    /// let reader = std::thread::spawn(move || {
    ///     let mut all = Vec::new();
    ///     peer.read_to_end(&mut all).map(|_| all.len())
    /// });
    ///
    /// let ar = s.begin_send(vec![7u8; 8 << 20], SocketFlags::NONE, None, None)?;
    /// assert_eq!(s.end_send(&ar)?, 8 << 20); // the whole buffer
    /// assert!(matches!(s.end_send(&ar), Err(Error::AlreadyEnded)));
    /// s.close();
    /// assert_eq!(reader.join().unwrap().unwrap(), 8 << 20);
    /// # Ok(()) }
    /// ```
    pub fn end_send(&self, ar: &AsyncResult<usize>) -> Result<usize, Error> {
        self.check_origin(ar, &[OpKind::Send])?;
        ar.finish()
    }

    /// Begins sending `buf` as one datagram to `to` (.NET's `BeginSendTo`). An unbound
    /// socket is bound implicitly, as the OS does.
    ///
    /// # Errors
    ///
    /// Only [`Error::Disposed`]; every OS error (wrong address family, `EMSGSIZE`, …)
    /// comes through the result.
    ///
    /// # Examples
    ///
    /// ```
    /// use asyncresult_core::{Domain, Socket, SocketFlags, Type};
    ///
    /// # fn main() -> Result<(), asyncresult_core::Error> {
    /// let peer = Socket::bind_udp("127.0.0.1:0".parse().unwrap())?;
    /// let s = Socket::new(Domain::IPV4, Type::DGRAM, None)?; // unbound: bound by the send
    /// let ar = s.begin_send_to(b"ping", SocketFlags::NONE, peer.local_addr()?, None, None)?;
    /// assert_eq!(s.end_send_to(&ar)?, 4);
    ///
    /// let r = peer.begin_receive_from(Vec::with_capacity(64), SocketFlags::NONE, None, None)?;
    /// let (n, datagram, from) = peer.end_receive_from(&r)?;
    /// assert_eq!((n, &datagram[..]), (4, &b"ping"[..]));
    /// assert_eq!(from.port(), s.local_addr()?.port()); // bound to 0.0.0.0:<port>
    /// # Ok(()) }
    /// ```
    pub fn begin_send_to<B: IoBuf>(
        &self,
        buf: B,
        flags: SocketFlags,
        to: SocketAddr,
        callback: Option<AsyncCallback<usize>>,
        state: Option<AsyncState>,
    ) -> Result<AsyncResult<usize>, Error> {
        let core = self.core();
        let work = SendWork::new(core, buf, flags, Some(to));
        core.start(OpKind::SendTo, work, callback, state)
    }

    /// Ends a send begun by [`begin_send_to`](Socket::begin_send_to); blocks until it
    /// completes and returns the number of bytes sent.
    ///
    /// # Errors
    ///
    /// - [`Error::ForeignResult`]: `ar` was not returned by `begin_send_to` on this socket (a
    ///   clone of a `Socket` is the same socket);
    /// - [`Error::AlreadyEnded`]: the result was already ended;
    /// - [`Error::Socket`]: the send failed (its errno in [`Error::error_code`]);
    /// - [`Error::Disposed`]: the socket was closed while it was pending;
    /// - [`Error::Aborted`]: it was cancelled.
    pub fn end_send_to(&self, ar: &AsyncResult<usize>) -> Result<usize, Error> {
        self.check_origin(ar, &[OpKind::SendTo])?;
        ar.finish()
    }

    /// Begins sending several buffers as one whole operation (gather; .NET's
    /// `BeginSend(IList<ArraySegment<byte>>)`), ended by [`end_send`](Socket::end_send)
    /// with the total length. One `sendmsg` carries them where the kernel has room; on
    /// a datagram socket they form one datagram, however many there are (past the
    /// kernel's 1,024 buffers per call they are copied into one first).
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
    /// let listener = Socket::listen_tcp("127.0.0.1:0".parse().unwrap(), 16)?;
    /// let client = Socket::connect_tcp(listener.local_addr()?)?;
    /// let header: &'static [u8] = b"LEN 5\n";
    /// let body: &'static [u8] = b"hello";
    /// let ar = client.begin_send_vectored(vec![header, body], SocketFlags::NONE, None, None)?;
    /// assert_eq!(client.end_send(&ar)?, 11);
    /// # Ok(()) }
    /// ```
    pub fn begin_send_vectored<B: IoBuf>(
        &self,
        bufs: Vec<B>,
        flags: SocketFlags,
        callback: Option<AsyncCallback<usize>>,
        state: Option<AsyncState>,
    ) -> Result<AsyncResult<usize>, Error> {
        let core = self.core();
        let work = SendVectoredWork {
            bufs,
            index: 0,
            offset: 0,
            sent: 0,
            flags: send_flags(flags),
            stream: core.is_stream(),
        };
        core.start(OpKind::Send, work, callback, state)
    }
}
