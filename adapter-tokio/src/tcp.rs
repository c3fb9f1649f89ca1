//! TCP for tokio: [`TcpStream`] (with its split halves) and [`TcpListener`].

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use asyncresult_core::future::{self, Timeout};
use asyncresult_core::stream_io;
use asyncresult_core::{Domain, Error, IoBuf, IoBufMut, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::Tokio;

/// A TCP connection driven by the asyncresult engine, for tokio.
///
/// Two ways to move bytes, which can be mixed:
///
/// - [`send`](TcpStream::send) / [`receive`](TcpStream::receive): whole-buffer
///   operations with owned buffers, .NET style (a send completes when every byte is in
///   the kernel);
/// - `tokio::io::{AsyncRead, AsyncWrite}`, so `tokio::io::copy`, `AsyncReadExt`,
///   `AsyncWriteExt::write_all`, codecs and friends work unchanged.
///
/// # Examples
///
/// ```
/// use asyncresult_tokio::{TcpListener, TcpStream};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = TcpListener::bind("127.0.0.1:0".parse()?).await?;
/// let mut client = TcpStream::connect(listener.local_addr()?).await?;
/// let (mut server, _) = listener.accept().await?;
///
/// client.send(b"hello").await?;                 // whole send
/// client.write_all(b", world").await?;          // AsyncWrite
/// let mut got = [0u8; 12];
/// server.read_exact(&mut got).await?;           // AsyncRead
/// assert_eq!(&got, b"hello, world");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TcpStream {
    read: stream_io::ReadHalf<Tokio>,
    write: stream_io::WriteHalf<Tokio>,
}

impl From<Socket> for TcpStream {
    fn from(socket: Socket) -> Self {
        TcpStream {
            read: stream_io::ReadHalf::new(socket.clone()),
            write: stream_io::WriteHalf::new(socket),
        }
    }
}

impl TcpStream {
    /// Opens a TCP connection to `addr`.
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] with the OS's error (`ECONNREFUSED`, …).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future closes the half-made socket.
    pub async fn connect(addr: SocketAddr) -> Result<TcpStream, Error> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        future::connect::<Tokio>(&socket, addr).await?;
        Ok(TcpStream::from(socket))
    }

    /// [`connect`](TcpStream::connect), bounded by tokio's timer: at expiry the connect
    /// is cancelled and the result is [`Error::Aborted`].
    ///
    /// # Errors
    ///
    /// As [`connect`](TcpStream::connect), plus [`Error::Aborted`] on timeout.
    pub async fn connect_timeout(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, Error> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        Timeout::new(
            future::connect::<Tokio>(&socket, addr),
            tokio::time::sleep(timeout),
        )
        .await?;
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
    /// Not cancellable by dropping: once polled, the send is under way, and dropping
    /// the future lets it finish in the background; its bytes still go out whole,
    /// before any later send. Use [`send_timeout`](TcpStream::send_timeout) to stop it.
    pub async fn send<B: IoBuf>(&self, buf: B) -> Result<usize, Error> {
        future::send::<Tokio, B>(self.socket(), buf).await
    }

    /// [`send`](TcpStream::send), bounded by tokio's timer: at expiry the send is
    /// cancelled (API semantics §9) and the result is [`Error::Aborted`]. A send that
    /// had already put some bytes on the wire also shuts the write side down.
    ///
    /// # Errors
    ///
    /// As [`send`](TcpStream::send), plus [`Error::Aborted`] on timeout.
    pub async fn send_timeout<B: IoBuf>(&self, buf: B, timeout: Duration) -> Result<usize, Error> {
        Timeout::new(
            future::send::<Tokio, B>(self.socket(), buf),
            tokio::time::sleep(timeout),
        )
        .await
    }

    /// Receives into `buf` (filled from index 0; a `Vec` comes back with `len()` = the
    /// count). Completes when at least one byte is there; `0` means the peer shut
    /// down. A zero-capacity buffer waits for data without taking it.
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] (`ECONNRESET`, …), [`Error::Disposed`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: bytes are taken only when the future returns them, so dropping it
    /// (in `select!`, on a timeout) loses nothing.
    pub async fn receive<B: IoBufMut>(&self, buf: B) -> Result<(usize, B), Error> {
        future::receive::<Tokio, B>(self.socket(), buf).await
    }

    /// [`receive`](TcpStream::receive), bounded by tokio's timer: at expiry the result
    /// is [`Error::Aborted`] and nothing was taken.
    ///
    /// # Errors
    ///
    /// As [`receive`](TcpStream::receive), plus [`Error::Aborted`] on timeout.
    pub async fn receive_timeout<B: IoBufMut>(
        &self,
        buf: B,
        timeout: Duration,
    ) -> Result<(usize, B), Error> {
        Timeout::new(
            future::receive::<Tokio, B>(self.socket(), buf),
            tokio::time::sleep(timeout),
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

    /// The core socket, for everything else (`begin_*`/`end_*`, options).
    pub fn socket(&self) -> &Socket {
        self.write.socket()
    }

    /// Hands back the core socket. The stream never holds received bytes of its own
    /// (reads go straight from the kernel to the caller's buffer), so every byte not
    /// yet read is still in the socket, to be read through it.
    pub fn into_inner(self) -> Socket {
        let TcpStream { read, write } = self;
        drop(read);
        write.into_socket()
    }

    /// Splits the stream into halves that can move to different tasks.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        let TcpStream { read, write } = self;
        (
            OwnedReadHalf { read },
            OwnedWriteHalf { write: Some(write) },
        )
    }
}

fn read_into(
    read: &stream_io::ReadHalf<Tokio>,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    // SAFETY: `poll_read_uninit` writes only initialized bytes and never
    // de-initializes any, so the unfilled part is only ever made initialized.
    let unfilled = unsafe { buf.unfilled_mut() };
    match read.poll_read_uninit(cx, unfilled) {
        Poll::Ready(Ok(n)) => {
            // SAFETY: `poll_read_uninit` initialized the first `n` unfilled bytes.
            unsafe { buf.assume_init(n) };
            buf.advance(n);
            Poll::Ready(Ok(()))
        }
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        Poll::Pending => Poll::Pending,
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        read_into(&self.read, cx, buf)
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.write.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.write.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.write.poll_shutdown(cx)
    }
}

/// The read half of a [`TcpStream`] ([`TcpStream::into_split`]).
#[derive(Debug)]
pub struct OwnedReadHalf {
    read: stream_io::ReadHalf<Tokio>,
}

impl OwnedReadHalf {
    /// [`TcpStream::receive`] on this half.
    ///
    /// # Errors
    ///
    /// As [`TcpStream::receive`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`TcpStream::receive`].
    pub async fn receive<B: IoBufMut>(&self, buf: B) -> Result<(usize, B), Error> {
        future::receive::<Tokio, B>(self.read.socket(), buf).await
    }

    /// The core socket.
    pub fn socket(&self) -> &Socket {
        self.read.socket()
    }
}

impl AsyncRead for OwnedReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        read_into(&self.read, cx, buf)
    }
}

/// The write half of a [`TcpStream`] ([`TcpStream::into_split`]). As with tokio's
/// own halves, dropping it shuts the write side down.
#[derive(Debug)]
pub struct OwnedWriteHalf {
    write: Option<stream_io::WriteHalf<Tokio>>,
}

impl OwnedWriteHalf {
    fn half(&self) -> Result<&stream_io::WriteHalf<Tokio>, Error> {
        self.write.as_ref().ok_or(Error::Disposed)
    }

    /// [`TcpStream::send`] on this half.
    ///
    /// # Errors
    ///
    /// As [`TcpStream::send`].
    ///
    /// # Cancel safety
    ///
    /// As [`TcpStream::send`]: dropping the future does not stop the send.
    pub async fn send<B: IoBuf>(&self, buf: B) -> Result<usize, Error> {
        future::send::<Tokio, B>(self.half()?.socket(), buf).await
    }

    /// The core socket.
    pub fn socket(&self) -> Option<&Socket> {
        self.write.as_ref().map(|w| w.socket())
    }
}

impl Drop for OwnedWriteHalf {
    fn drop(&mut self) {
        if let Some(write) = self.write.take() {
            let _ = write.socket().shutdown(std::net::Shutdown::Write);
        }
    }
}

fn gone() -> io::Error {
    Error::Disposed.into()
}

impl AsyncWrite for OwnedWriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.write.as_ref() {
            Some(w) => w.poll_write(cx, buf),
            None => Poll::Ready(Err(gone())),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.write.as_ref() {
            Some(w) => w.poll_write_vectored(cx, bufs),
            None => Poll::Ready(Err(gone())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.write.as_ref() {
            Some(w) => w.poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.write.as_ref() {
            Some(w) => w.poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

/// A listening TCP socket driven by the asyncresult engine, for tokio.
#[derive(Debug, Clone)]
pub struct TcpListener {
    socket: Socket,
}

impl From<Socket> for TcpListener {
    fn from(socket: Socket) -> Self {
        TcpListener { socket }
    }
}

impl TcpListener {
    /// Binds to `addr` and listens (backlog 1024, `SO_REUSEADDR`).
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] if the address cannot be bound.
    pub async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
        Ok(TcpListener {
            socket: Socket::listen_tcp(addr, 1024)?,
        })
    }

    /// Accepts a connection.
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] (`EMFILE`, …), [`Error::Disposed`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a connection is taken from the kernel only when the future
    /// returns it.
    pub async fn accept(&self) -> Result<(TcpStream, SocketAddr), Error> {
        let (socket, peer) = future::accept::<Tokio>(&self.socket).await?;
        Ok((TcpStream::from(socket), peer))
    }

    /// [`accept`](TcpListener::accept), bounded by tokio's timer ([`Error::Aborted`]
    /// at expiry; no connection is lost).
    ///
    /// # Errors
    ///
    /// As [`accept`](TcpListener::accept), plus [`Error::Aborted`] on timeout.
    pub async fn accept_timeout(
        &self,
        timeout: Duration,
    ) -> Result<(TcpStream, SocketAddr), Error> {
        let (socket, peer) = Timeout::new(
            future::accept::<Tokio>(&self.socket),
            tokio::time::sleep(timeout),
        )
        .await?;
        Ok((TcpStream::from(socket), peer))
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
