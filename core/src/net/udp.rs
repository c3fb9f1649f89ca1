//! [`UdpSocket`], generic over the runtime.

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::Duration;

use crate::buf::{IoBuf, IoBufMut};
use crate::error::Error;
use crate::future::{self, ReadinessFuture, ReceiveAttempt, ReceiveFromAttempt, Runtime, Timeout};
use crate::socket::Socket;

/// A UDP socket driven by the asyncresult engine, for runtime `R`.
///
/// A [`receive`](UdpSocket::receive) or [`receive_from`](UdpSocket::receive_from)
/// future owns a handle to the socket rather than borrowing it, so while one lives,
/// dropping the `UdpSocket` leaves the socket open (and its port bound);
/// [`close`](Socket::close) it to end such a future (it resolves to
/// [`Error::Disposed`]).
#[derive(Debug)]
pub struct UdpSocket<R> {
    socket: Socket,
    _runtime: PhantomData<fn() -> R>,
}

impl<R: Runtime> From<Socket> for UdpSocket<R> {
    fn from(socket: Socket) -> Self {
        UdpSocket {
            socket,
            _runtime: PhantomData,
        }
    }
}

impl<R: Runtime> UdpSocket<R> {
    /// A UDP socket bound to `addr` (port 0 picks one).
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] if the address cannot be bound.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the future never waits; its first poll binds and completes.
    /// Dropped before that poll, it has bound nothing.
    pub async fn bind(addr: SocketAddr) -> Result<Self, Error> {
        Ok(UdpSocket::from(Socket::bind_udp(addr)?))
    }

    /// Sets the default peer for [`send`](UdpSocket::send) and
    /// [`receive`](UdpSocket::receive) (and filters what arrives to it).
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] from the OS, [`Error::Disposed`].
    ///
    /// # Cancel safety
    ///
    /// On UDP the connect completes in its first poll, unless a send begun before it
    /// still waits for room (it then waits behind that send, in order): once it has
    /// completed, the default peer is set, and dropping the future does not undo it.
    /// Dropped before that poll, it has set nothing.
    pub async fn connect(&self, addr: SocketAddr) -> Result<(), Error> {
        future::connect::<R>(&self.socket, addr).await
    }

    /// Sends `buf` as one datagram to the connected peer.
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] (`EMSGSIZE`, `EDESTADDRREQ` if not connected, …),
    /// [`Error::Disposed`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future after its first poll does not stop the datagram.
    pub async fn send<B: IoBuf>(&self, buf: B) -> Result<usize, Error> {
        future::send::<R, B>(&self.socket, buf).await
    }

    /// [`send`](UdpSocket::send), bounded by the runtime's timer (a datagram still
    /// queued at expiry is cancelled: [`Error::Aborted`]).
    ///
    /// # Errors
    ///
    /// As [`send`](UdpSocket::send), plus [`Error::Aborted`].
    ///
    /// # Cancel safety
    ///
    /// Only expiry cancels a datagram still queued. Dropping the future after its
    /// first poll does not stop the datagram, as with [`send`](UdpSocket::send).
    pub async fn send_timeout<B: IoBuf>(&self, buf: B, timeout: Duration) -> Result<usize, Error> {
        Timeout::new(future::send::<R, B>(&self.socket, buf), R::sleep(timeout)).await
    }

    /// Receives one datagram from the connected peer into `buf`. A datagram longer than
    /// the buffer is truncated and the count is its full length (count > len; a `Vec`
    /// comes back with `len()` = the bytes stored). A zero-capacity buffer is a
    /// readiness probe: it completes with 0 when a datagram is there and takes nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] (`ECONNREFUSED` after an ICMP unreachable, …),
    /// [`Error::Disposed`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a datagram is taken only when the future returns it.
    ///
    /// The future resolves to `Result<(usize, B), Error>`; it owns a handle to the
    /// socket (no borrow) and does nothing until polled.
    pub fn receive<B: IoBufMut>(&self, buf: B) -> ReadinessFuture<ReceiveAttempt<B>, R> {
        future::receive::<R, B>(&self.socket, buf)
    }

    /// [`receive`](UdpSocket::receive), bounded by the runtime's timer.
    ///
    /// # Errors
    ///
    /// As [`receive`](UdpSocket::receive), plus [`Error::Aborted`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a datagram is taken only when the future returns it, so dropping
    /// it, like expiry, loses nothing.
    pub async fn receive_timeout<B: IoBufMut>(
        &self,
        buf: B,
        timeout: Duration,
    ) -> Result<(usize, B), Error> {
        Timeout::new(
            future::receive::<R, B>(&self.socket, buf),
            R::sleep(timeout),
        )
        .await
    }

    /// Sends `buf` as one datagram to `to`.
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] (wrong address family, `EMSGSIZE`, …), [`Error::Disposed`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future after its first poll does not stop the datagram.
    pub async fn send_to<B: IoBuf>(&self, buf: B, to: SocketAddr) -> Result<usize, Error> {
        future::send_to::<R, B>(&self.socket, buf, to).await
    }

    /// [`send_to`](UdpSocket::send_to), bounded by the runtime's timer.
    ///
    /// # Errors
    ///
    /// As [`send_to`](UdpSocket::send_to), plus [`Error::Aborted`].
    ///
    /// # Cancel safety
    ///
    /// Only expiry cancels a datagram still queued. Dropping the future after its
    /// first poll does not stop the datagram, as with [`send_to`](UdpSocket::send_to).
    pub async fn send_to_timeout<B: IoBuf>(
        &self,
        buf: B,
        to: SocketAddr,
        timeout: Duration,
    ) -> Result<usize, Error> {
        Timeout::new(
            future::send_to::<R, B>(&self.socket, buf, to),
            R::sleep(timeout),
        )
        .await
    }

    /// Receives one datagram and its sender. A datagram longer than the buffer is
    /// truncated and the count is its full length (count > len; a `Vec` comes back with
    /// `len()` = the bytes stored), so a zero-capacity buffer consumes one datagram and
    /// reports its length and sender.
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] (`ECONNREFUSED` after an ICMP unreachable, …),
    /// [`Error::Disposed`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a datagram is taken only when the future returns it.
    ///
    /// The future resolves to `Result<(usize, B, SocketAddr), Error>`; it owns a handle
    /// to the socket (no borrow) and does nothing until polled.
    pub fn receive_from<B: IoBufMut>(&self, buf: B) -> ReadinessFuture<ReceiveFromAttempt<B>, R> {
        future::receive_from::<R, B>(&self.socket, buf)
    }

    /// [`receive_from`](UdpSocket::receive_from), bounded by the runtime's timer
    /// ([`Error::Aborted`] at expiry; no datagram is lost).
    ///
    /// # Errors
    ///
    /// As [`receive_from`](UdpSocket::receive_from), plus [`Error::Aborted`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a datagram is taken only when the future returns it, so dropping
    /// it, like expiry, loses nothing.
    pub async fn receive_from_timeout<B: IoBufMut>(
        &self,
        buf: B,
        timeout: Duration,
    ) -> Result<(usize, B, SocketAddr), Error> {
        Timeout::new(
            future::receive_from::<R, B>(&self.socket, buf),
            R::sleep(timeout),
        )
        .await
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// [`Error::Disposed`] after close; [`Error::Socket`] from the OS.
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        self.socket.local_addr()
    }

    /// The connected peer's address.
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] (`ENOTCONN`) if not connected.
    pub fn peer_addr(&self) -> Result<SocketAddr, Error> {
        self.socket.peer_addr()
    }

    /// The core socket.
    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// Hands back the core socket.
    pub fn into_inner(self) -> Socket {
        self.socket
    }
}
