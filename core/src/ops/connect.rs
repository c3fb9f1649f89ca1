//! Connects: `begin_connect`/`end_connect` (.NET's `BeginConnect`/`EndConnect`).
//!
//! The connect is issued without blocking and waits on the send side: the kernel
//! reports the socket writable when the handshake ends, and `SO_ERROR` tells how.
//! Sends begun meanwhile queue behind it, in order.

use std::net::SocketAddr;

use socket2::SockAddr;

use super::failed;
use crate::async_result::{AsyncCallback, AsyncResult, AsyncState};
use crate::error::Error;
use crate::op::{Attempt, OpKind, Produces, Work};
use crate::socket::{Socket, SocketCore};

/// A connect in progress.
pub(crate) struct ConnectWork {
    /// A `SocketAddr` (32 bytes), turned into a `sockaddr` at each syscall: a stored
    /// `SockAddr` (a 128-byte `sockaddr_storage`) made a pending connect 264 bytes.
    to: SocketAddr,
    issued: bool,
}

impl ConnectWork {
    /// After the kernel reported the socket writable: how did the handshake end?
    /// A second `connect` answers (and moves the socket to "connected", so that any
    /// later connect fails with `EISCONN`, as a blocking connect would leave it).
    ///
    /// The kernel reports a failed handshake once, to whichever syscall comes first: a
    /// receive begun meanwhile may take it, and the second `connect` then finds only
    /// `ECONNABORTED`; the connect reports what the receive took instead. When the
    /// connect takes it, it is kept for the next read, which would otherwise find a
    /// clean end of stream. Both sides keep what they took under the handshake lock
    /// (see [`crate::reported_once`]), so neither looks in between.
    fn outcome(&self, socket: &SocketCore) -> Attempt<()> {
        let fd = socket.fd();
        let failures = socket.failures();
        let _handshake = failures.handshake();
        let done = |outcome: Result<(), Error>| {
            let outcome = outcome.map_err(|e| failures.keep_connect_failure(e));
            failures.connect_ended();
            Attempt::Done(outcome)
        };
        match fd.take_error() {
            Ok(Some(e)) | Err(e) => return done(Err(Error::Socket(e))),
            Ok(None) => {}
        }
        match fd.connect(&SockAddr::from(self.to)) {
            Ok(()) => done(Ok(())),
            Err(e) => match e.raw_os_error() {
                Some(libc::EISCONN) => done(Ok(())),
                // Not connected yet: the writability was not about us.
                Some(libc::EALREADY) | Some(libc::EINPROGRESS) | Some(libc::EINTR) => {
                    Attempt::WouldBlock
                }
                Some(libc::ECONNABORTED) => {
                    failed(failures.connect_ended().unwrap_or(Error::Socket(e)))
                }
                _ => done(Err(Error::Socket(e))),
            },
        }
    }
}

impl Produces for ConnectWork {
    type Output = ();
    type Spent = ();

    fn spend(self) -> Option<()> {
        None
    }
}

impl Work<SocketCore> for ConnectWork {
    /// Once issued, the kernel runs the handshake on its own: a cancel must dissolve it
    /// (see `SocketCore::cancel_op`), or the socket would connect after all.
    fn has_progress(&self) -> bool {
        self.issued
    }

    fn attempt(&mut self, socket: &SocketCore) -> Attempt<()> {
        if self.issued {
            return self.outcome(socket);
        }
        self.issued = true;
        let failures = socket.failures();
        let _handshake = failures.handshake();
        failures.connect_issued();
        let to = SockAddr::from(self.to);
        let mut issued = socket.fd().connect(&to);
        if issued
            .as_ref()
            .is_err_and(|e| e.raw_os_error() == Some(libc::ECONNABORTED))
        {
            // A socket whose earlier handshake failed, its error taken by `SO_ERROR`
            // (see `outcome`), is still "connecting" to the kernel: the first connect
            // only settles that (`ECONNABORTED`) and leaves it unconnected; the second
            // is the new handshake, as a blocking connect would have left it.
            issued = socket.fd().connect(&to);
        }
        match issued {
            Ok(()) => {
                failures.connect_accepted();
                failures.connect_ended();
                Attempt::Done(Ok(()))
            }
            Err(e) => match e.raw_os_error() {
                // In progress (EINTR: the connect goes on asynchronously, as POSIX says).
                Some(libc::EINPROGRESS) | Some(libc::EINTR) | Some(libc::EAGAIN) => {
                    failures.connect_accepted();
                    Attempt::WouldBlock
                }
                _ => {
                    // Refused at once (the kernel took the refusal in this syscall): kept
                    // for a read, as in `outcome`; the call's own errors are not.
                    let e = failures.keep_connect_failure(Error::Socket(e));
                    failures.connect_ended();
                    failed(e)
                }
            },
        }
    }
}

impl Socket {
    /// Begins connecting to `to` (.NET's `BeginConnect`). On a UDP socket this sets (or
    /// moves) the default peer and completes at once, unless a send begun before it
    /// still waits (connects queue with sends, in order).
    ///
    /// # Errors
    ///
    /// Only [`Error::Disposed`]; OS errors (`ECONNREFUSED`, `ENETUNREACH`, `EISCONN`
    /// for a second connect of a TCP socket, …) come through the result.
    ///
    /// # Examples
    ///
    /// ```
    /// use asyncresult_core::{Domain, Protocol, Socket, Type};
    ///
    /// # fn main() -> Result<(), asyncresult_core::Error> {
    /// // A port nobody listens on: the refusal arrives through the result.
    /// let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    /// let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    /// let ar = s.begin_connect(closed, None, None)?;
    /// let refused = s.end_connect(&ar).unwrap_err();
    /// assert!(refused.error_code().is_some()); // the errno: ECONNREFUSED
    /// let kind = std::io::Error::from(refused).kind();
    /// assert_eq!(kind, std::io::ErrorKind::ConnectionRefused);
    /// # Ok(()) }
    /// ```
    pub fn begin_connect(
        &self,
        to: SocketAddr,
        callback: Option<AsyncCallback<()>>,
        state: Option<AsyncState>,
    ) -> Result<AsyncResult<()>, Error> {
        let work = ConnectWork { to, issued: false };
        self.core().start(OpKind::Connect, work, callback, state)
    }

    /// Ends a connect begun by [`begin_connect`](Socket::begin_connect): blocks until
    /// it completes.
    ///
    /// # Errors
    ///
    /// - [`Error::ForeignResult`]: `ar` was not returned by `begin_connect` on this socket (a
    ///   clone of a `Socket` is the same socket);
    /// - [`Error::AlreadyEnded`]: the result was already ended;
    /// - [`Error::Socket`]: the connect (`ECONNREFUSED`, `ETIMEDOUT`, …) failed (its errno in [`Error::error_code`]);
    /// - [`Error::Disposed`]: the socket was closed while it was pending;
    /// - [`Error::Aborted`]: it was cancelled.
    pub fn end_connect(&self, ar: &AsyncResult<()>) -> Result<(), Error> {
        self.check_origin(ar, &[OpKind::Connect])?;
        ar.finish()
    }
}
