//! [`TcpStream`] and [`TcpListener`], generic over the runtime.

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::buf::{IoBuf, IoBufMut};
use crate::error::Error;
use crate::future::{self, ReadinessFuture, ReceiveAttempt, Runtime, Timeout};
use crate::socket::Socket;
use crate::stream_io::{ReadHalf, WriteHalf};
use crate::{Domain, Protocol, Type};

/// A TCP connection driven by the asyncresult engine, for runtime `R`.
///
/// Two ways to move bytes, which can be mixed:
///
/// - [`send`](TcpStream::send) / [`receive`](TcpStream::receive): whole-buffer
///   operations with owned buffers, .NET style (a send completes when every byte is in
///   the kernel);
/// - the runtime's `AsyncRead`/`AsyncWrite` (implemented by the adapters on top of
///   [`poll_read`](TcpStream::poll_read) and friends), so copy utilities, `write_all`,
///   `read_to_end` and codecs work unchanged.
///
/// Dropping the stream closes it behind the sends still queued (a dropped `send`
/// future's): their bytes go out whole, then the peer reads end of stream, as with a
/// tokio or std stream whose bytes sit in the kernel. Until they complete or fail, the
/// socket stays open (a peer that never reads keeps it so). To abort them instead,
/// [`close`](Socket::close) the socket (`stream.socket().close()`): the peer then sees
/// a reset. A [`receive`](TcpStream::receive) future owns a handle to the socket too,
/// so while one lives, dropping the stream leaves the connection open; closing the
/// socket ends it (the future resolves to [`Error::Disposed`]).
#[derive(Debug)]
pub struct TcpStream<R> {
    read: ReadHalf<R>,
    write: WriteHalf<R>,
}

impl<R: Runtime> From<Socket> for TcpStream<R> {
    fn from(socket: Socket) -> Self {
        TcpStream {
            read: ReadHalf::new(socket.clone()),
            write: WriteHalf::new(socket),
        }
    }
}

impl<R: Runtime> TcpStream<R> {
    /// Opens a TCP connection to `addr`.
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] with the OS's error (`ECONNREFUSED`, …).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future closes the half-made socket.
    pub async fn connect(addr: SocketAddr) -> Result<Self, Error> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        future::connect::<R>(&socket, addr).await?;
        Ok(TcpStream::from(socket))
    }

    /// [`connect`](TcpStream::connect), bounded by the runtime's timer: at expiry the
    /// connect is cancelled and the result is [`Error::Aborted`].
    ///
    /// # Errors
    ///
    /// As [`connect`](TcpStream::connect), plus [`Error::Aborted`] on timeout.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future closes the half-made socket, as with
    /// [`connect`](TcpStream::connect); so does expiry.
    pub async fn connect_timeout(addr: SocketAddr, timeout: Duration) -> Result<Self, Error> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        Timeout::new(future::connect::<R>(&socket, addr), R::sleep(timeout)).await?;
        Ok(TcpStream::from(socket))
    }

    /// Sends the whole of `buf` (.NET's `BeginSend`/`EndSend`); returns its length.
    /// Sends go out in the order they were started and never interleave.
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] (`EPIPE`, `ECONNRESET`, …), [`Error::Disposed`] if the socket
    /// was closed.
    ///
    /// # Cancel safety
    ///
    /// Not cancelled by dropping: once polled, the send is under way, and dropping the
    /// future lets it finish in the background; its bytes still go out whole, before
    /// any later send. Use [`send_timeout`](TcpStream::send_timeout) to stop it.
    pub async fn send<B: IoBuf>(&self, buf: B) -> Result<usize, Error> {
        future::send::<R, B>(self.socket(), buf).await
    }

    /// [`send`](TcpStream::send), bounded by the runtime's timer: at expiry the send is
    /// cancelled (as [`AsyncResult::cancel`](crate::AsyncResult::cancel) does) and the
    /// result is [`Error::Aborted`]. A send that had already put some bytes on the wire
    /// also shuts the write side down.
    ///
    /// # Errors
    ///
    /// As [`send`](TcpStream::send), plus [`Error::Aborted`] on timeout.
    ///
    /// # Cancel safety
    ///
    /// Only expiry cancels the send. Dropping the future before then does not: once
    /// polled, the send is under way, and its bytes still go out whole, before any
    /// later send, as with [`send`](TcpStream::send).
    pub async fn send_timeout<B: IoBuf>(&self, buf: B, timeout: Duration) -> Result<usize, Error> {
        Timeout::new(future::send::<R, B>(self.socket(), buf), R::sleep(timeout)).await
    }

    /// Receives into `buf` (filled from index 0; a `Vec` comes back with `len()` = the
    /// count). Completes when at least one byte is there; `0` means the peer shut down,
    /// and stays 0. A zero-capacity buffer waits for data without taking it (and
    /// returns 0 at end of stream too).
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] (`ECONNRESET`, …), [`Error::Disposed`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: bytes are taken only when the future returns them, so dropping it
    /// (in `select!`, on a timeout) loses nothing.
    ///
    /// The future resolves to `Result<(usize, B), Error>`. It owns a handle to the
    /// socket rather than borrowing the stream (so it is `'static` when `B` is), and it
    /// does nothing until polled.
    pub fn receive<B: IoBufMut>(&self, buf: B) -> ReadinessFuture<ReceiveAttempt<B>, R> {
        future::receive::<R, B>(self.socket(), buf)
    }

    /// [`receive`](TcpStream::receive), bounded by the runtime's timer: at expiry the
    /// result is [`Error::Aborted`] and nothing was taken.
    ///
    /// # Errors
    ///
    /// As [`receive`](TcpStream::receive), plus [`Error::Aborted`] on timeout.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: bytes are taken only when the future returns them, so dropping it,
    /// like expiry, loses nothing.
    pub async fn receive_timeout<B: IoBufMut>(
        &self,
        buf: B,
        timeout: Duration,
    ) -> Result<(usize, B), Error> {
        Timeout::new(
            future::receive::<R, B>(self.socket(), buf),
            R::sleep(timeout),
        )
        .await
    }

    /// Turns Nagle's algorithm off (`true`) or on.
    ///
    /// # Errors
    ///
    /// [`Error::Disposed`] after close; [`Error::Socket`] from the OS.
    pub fn set_nodelay(&self, on: bool) -> Result<(), Error> {
        self.socket().set_nodelay(on)
    }

    /// Whether Nagle's algorithm is off.
    ///
    /// # Errors
    ///
    /// [`Error::Disposed`] after close; [`Error::Socket`] from the OS.
    pub fn nodelay(&self) -> Result<bool, Error> {
        self.socket().nodelay()
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// [`Error::Disposed`] after close; [`Error::Socket`] from the OS.
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        self.socket().local_addr()
    }

    /// The peer's address.
    ///
    /// # Errors
    ///
    /// [`Error::Disposed`] after close; [`Error::Socket`] (`ENOTCONN`) from the OS.
    pub fn peer_addr(&self) -> Result<SocketAddr, Error> {
        self.socket().peer_addr()
    }

    /// The core socket, for everything else (`begin_*`/`end_*`, options, `close`).
    pub fn socket(&self) -> &Socket {
        self.write.socket()
    }

    /// Hands back the core socket. The stream never holds received bytes of its own
    /// (reads go straight from the kernel to the caller's buffer), so every byte not
    /// yet read is still in the socket, to be read through it. Sends still queued (a
    /// dropped `send` future's) keep the socket open until they complete, as when the
    /// stream is dropped.
    pub fn into_inner(self) -> Socket {
        let TcpStream { read, write } = self;
        drop(read);
        write.into_socket()
    }

    /// The two halves, to move to different tasks.
    pub fn into_halves(self) -> (ReadHalf<R>, WriteHalf<R>) {
        (self.read, self.write)
    }

    /// For `AsyncRead`: reads into `buf` (see [`ReadHalf::poll_read`]).
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.read.poll_read(cx, buf)
    }

    /// For `AsyncRead` over uninitialized memory (see [`ReadHalf::poll_read_uninit`]).
    pub fn poll_read_uninit(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        self.read.poll_read_uninit(cx, buf)
    }

    /// For `AsyncWrite` (see [`WriteHalf::poll_write`]).
    pub fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.write.poll_write(cx, buf)
    }

    /// For `AsyncWrite` (see [`WriteHalf::poll_write_vectored`]).
    pub fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.write.poll_write_vectored(cx, bufs)
    }

    /// For `AsyncWrite` (see [`WriteHalf::poll_flush`]).
    pub fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.write.poll_flush(cx)
    }

    /// For `AsyncWrite` (see [`WriteHalf::poll_shutdown`]).
    pub fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.write.poll_shutdown(cx)
    }
}

/// A listening TCP socket driven by the asyncresult engine, for runtime `R`.
#[derive(Debug)]
pub struct TcpListener<R> {
    socket: Socket,
    _runtime: std::marker::PhantomData<fn() -> R>,
}

impl<R: Runtime> From<Socket> for TcpListener<R> {
    fn from(socket: Socket) -> Self {
        TcpListener {
            socket,
            _runtime: std::marker::PhantomData,
        }
    }
}

impl<R: Runtime> TcpListener<R> {
    /// Binds to `addr` and listens (backlog 1024, `SO_REUSEADDR`).
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] if the address cannot be bound.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the future never waits; its first poll binds, listens and
    /// completes. Dropped before that poll, it has bound nothing.
    pub async fn bind(addr: SocketAddr) -> Result<Self, Error> {
        Ok(TcpListener::from(Socket::listen_tcp(addr, 1024)?))
    }

    /// Accepts a connection: the new socket and its peer's address.
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] (`EMFILE`, …), [`Error::Disposed`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a connection is taken from the kernel only when the future
    /// returns it.
    pub async fn accept(&self) -> Result<(Socket, SocketAddr), Error> {
        future::accept::<R>(&self.socket).await
    }

    /// [`accept`](TcpListener::accept), bounded by the runtime's timer
    /// ([`Error::Aborted`] at expiry; no connection is lost).
    ///
    /// # Errors
    ///
    /// As [`accept`](TcpListener::accept), plus [`Error::Aborted`] on timeout.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a connection is taken from the kernel only when the future
    /// returns it, so dropping it, like expiry, loses no connection.
    pub async fn accept_timeout(&self, timeout: Duration) -> Result<(Socket, SocketAddr), Error> {
        Timeout::new(future::accept::<R>(&self.socket), R::sleep(timeout)).await
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// [`Error::Disposed`] after close; [`Error::Socket`] from the OS.
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        self.socket.local_addr()
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
