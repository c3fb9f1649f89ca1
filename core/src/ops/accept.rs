//! Accepts: `begin_accept`/`end_accept` (.NET's `BeginAccept`/`EndAccept`).
//!
//! An accepted socket is non-blocking, registered with the same engine and usable at
//! once. Pending accepts are served in the order they were begun.

use std::net::SocketAddr;

use super::nonblocking;
use crate::async_result::{AsyncCallback, AsyncResult, AsyncState};
use crate::error::Error;
use crate::op::{Attempt, OpKind, Produces, Work};
use crate::socket::{Socket, SocketCore};

/// Accepts one pending connection and registers it with the listener's engine;
/// `None` if none is pending. For a socket that [`check_listener`] accepted (every
/// accept begins with it, and a socket's role does not change).
pub(crate) fn accept_one(socket: &SocketCore) -> Result<Option<(Socket, SocketAddr)>, Error> {
    loop {
        match nonblocking(|| socket.fd().accept()) {
            Ok(Some((accepted, addr))) => {
                let peer = addr.as_socket().ok_or(Error::os(libc::EAFNOSUPPORT))?;
                let core = socket.engine_arc().register(accepted, socket.transport())?;
                return Ok(Some((Socket::from_core(core), peer)));
            }
            Ok(None) => return Ok(None),
            // The peer gave up before we took it: wait for the next one.
            Err(e) if e.error_code() == Some(libc::ECONNABORTED) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Checks that `socket` can accept at all (a role it could never play fails `begin_*`).
pub(crate) fn check_listener(socket: &SocketCore) -> Result<(), Error> {
    if socket.is_closed() {
        return Err(Error::Disposed);
    }
    if !socket.is_stream() {
        return Err(Error::os(libc::EOPNOTSUPP));
    }
    if !socket.fd().is_listener()? {
        return Err(Error::os(libc::EINVAL));
    }
    // A connection's address could not be reported (a Unix listener).
    socket.check_ip_addresses()
}

/// An accept waiting for a connection.
pub(crate) struct AcceptWork;

impl Produces for AcceptWork {
    type Output = Socket;
    type Spent = ();

    fn spend(self) -> Option<()> {
        None
    }
}

impl Work<SocketCore> for AcceptWork {
    fn attempt(&mut self, socket: &SocketCore) -> Attempt<Socket> {
        match accept_one(socket) {
            Ok(Some((accepted, _))) => Attempt::Done(Ok(accepted)),
            Ok(None) => Attempt::WouldBlock,
            Err(e) => Attempt::Done(Err(e)),
        }
    }
}

impl Socket {
    /// Begins accepting a connection on a listening socket (.NET's `BeginAccept`).
    ///
    /// # Errors
    ///
    /// [`Error::Disposed`] if closed; [`Error::Socket`] with `EINVAL` if the socket is
    /// not listening, `EOPNOTSUPP` if it is not a stream socket, `EAFNOSUPPORT` if its
    /// addresses are not IP ones (a Unix listener: a peer's address could not be
    /// reported as a `SocketAddr`) — roles it cannot play. Errors met while accepting
    /// (`EMFILE`, …) come through the result.
    ///
    /// A process out of descriptors (`EMFILE`, `ENFILE`) leaves the connection queued in
    /// the kernel and fails this accept at once, as .NET's `EndAccept` throws: the
    /// listener reports no new readiness for a connection already waiting, so begin
    /// another accept once descriptors are free, and it takes that connection.
    ///
    /// # Examples
    ///
    /// ```
    /// use asyncresult_core::Socket;
    ///
    /// # fn main() -> Result<(), asyncresult_core::Error> {
    /// let listener = Socket::listen_tcp("127.0.0.1:0".parse().unwrap(), 16)?;
    /// let accepting = listener.begin_accept(None, None)?;
    /// let client = Socket::connect_tcp(listener.local_addr()?)?;
    /// let server = listener.end_accept(&accepting)?;
    /// assert_eq!(server.peer_addr()?, client.local_addr()?);
    /// # Ok(()) }
    /// ```
    pub fn begin_accept(
        &self,
        callback: Option<AsyncCallback<Socket>>,
        state: Option<AsyncState>,
    ) -> Result<AsyncResult<Socket>, Error> {
        let core = self.core();
        check_listener(core)?;
        core.start(OpKind::Accept, AcceptWork, callback, state)
    }

    /// Ends an accept begun by [`begin_accept`](Socket::begin_accept) (.NET's
    /// `EndAccept`): blocks until a connection arrives and returns its socket.
    ///
    /// # Errors
    ///
    /// - [`Error::ForeignResult`]: `ar` was not returned by `begin_accept` on this socket (a
    ///   clone of a `Socket` is the same socket);
    /// - [`Error::AlreadyEnded`]: the result was already ended;
    /// - [`Error::Socket`]: the accept (`EMFILE`, …) failed (its errno in [`Error::error_code`]);
    /// - [`Error::Disposed`]: the socket was closed while it was pending;
    /// - [`Error::Aborted`]: it was cancelled.
    pub fn end_accept(&self, ar: &AsyncResult<Socket>) -> Result<Socket, Error> {
        self.check_origin(ar, &[OpKind::Accept])?;
        ar.finish()
    }
}
