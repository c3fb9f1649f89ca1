//! tokio's shapes of the engine's sockets: newtypes over the runtime-generic types of
//! `asyncresult_core::net` (whose methods they expose through `Deref`), plus tokio's
//! `AsyncRead`/`AsyncWrite` and `into_split`.

use std::io::{self, IoSlice};
use std::ops::Deref;
use std::pin::Pin;
use std::task::{Context, Poll};

use asyncresult_core::future::{ReadinessFuture, ReceiveAttempt};
use asyncresult_core::{net, stream_io, Error, IoBuf, IoBufMut, Socket};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::Tokio;

/// A TCP connection driven by the asyncresult engine, for tokio.
///
/// Its operations are its own methods (`connect`, `send`, whole buffer, `receive`,
/// `set_nodelay`, `local_addr`, `peer_addr`) and, through `Deref`, those of
/// [`asyncresult_core::net::TcpStream`] (`send_timeout`, `receive_timeout`, `nodelay`,
/// `socket`). It also implements
/// `tokio::io::{AsyncRead, AsyncWrite}`, so `tokio::io::copy`, `AsyncReadExt`,
/// `AsyncWriteExt::write_all` and codecs work unchanged; reads are cancel safe.
///
/// Dropping the stream closes it behind any send still queued (a dropped `send`
/// future's bytes go out whole first, then the peer reads end of stream); to abort
/// such sends, `close()` its socket. A `receive` future owns a handle to the socket
/// rather than borrowing the stream, so while one lives, dropping the stream leaves
/// the connection open; `close()` the socket to end it (the future then resolves to
/// [`Error::Disposed`](crate::Error::Disposed)).
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
pub struct TcpStream(net::TcpStream<Tokio>);

impl Deref for TcpStream {
    type Target = net::TcpStream<Tokio>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl From<Socket> for TcpStream {
    fn from(socket: Socket) -> Self {
        TcpStream(net::TcpStream::from(socket))
    }
}

impl TcpStream {
    asyncresult_core::adapter_tcp_stream_methods!(Tokio, "tokio's timer");

    /// Splits the stream into halves that can move to different tasks. Dropping the
    /// write half shuts the write side down behind the sends still queued (the peer
    /// reads end of stream after their bytes); there is no `reunite`, but each half's
    /// `socket()` is the same [`Socket`], which `TcpStream::from` wraps again.
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
    /// let client = TcpStream::connect(listener.local_addr()?).await?;
    /// let (server, _) = listener.accept().await?;
    ///
    /// // An echo server: its read half feeds its write half from another task.
    /// let (mut from, mut to) = server.into_split();
    /// let echo = tokio::spawn(async move { tokio::io::copy(&mut from, &mut to).await });
    ///
    /// let (mut reader, mut writer) = client.into_split();
    /// writer.write_all(b"ping").await?;
    /// drop(writer); // end of stream for the server, after "ping"
    /// let mut back = Vec::new();
    /// reader.read_to_end(&mut back).await?;
    /// assert_eq!(back, b"ping");
    /// assert_eq!(echo.await??, 4);
    /// # Ok(()) }
    /// ```
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        let (read, write) = self.0.into_halves();
        let write = write.shut_down_when_dropped();
        (OwnedReadHalf { read }, OwnedWriteHalf { write })
    }
}

fn read_into(
    read: impl FnOnce(&mut Context<'_>, &mut [std::mem::MaybeUninit<u8>]) -> Poll<io::Result<usize>>,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    // SAFETY: the engine's reads write only initialized bytes and never de-initialize
    // any, so the unfilled part is only ever made initialized.
    let unfilled = unsafe { buf.unfilled_mut() };
    read(cx, unfilled).map_ok(|n| {
        // SAFETY: the read initialized the first `n` unfilled bytes.
        unsafe { buf.assume_init(n) };
        buf.advance(n);
    })
}

/// Reads go straight from the kernel into the caller's buffer: cancel safe, no byte is
/// held anywhere a dropped read future could lose it.
impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        read_into(|cx, b| self.0.poll_read_uninit(cx, b), cx, buf)
    }
}

/// `poll_write` reports only bytes the kernel took; `poll_flush` waits for sends still
/// queued (those of dropped `send` futures); `poll_shutdown` flushes, then shuts the
/// write side down, and reads keep working.
impl AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_shutdown(cx)
    }
}

/// The read half of a [`TcpStream`] ([`TcpStream::into_split`]).
#[derive(Debug)]
pub struct OwnedReadHalf {
    read: stream_io::ReadHalf<Tokio>,
}

impl OwnedReadHalf {
    /// [`receive`](asyncresult_core::net::TcpStream::receive) on this half.
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] (`ECONNRESET`, …), [`Error::Disposed`], as
    /// `TcpStream::receive`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: bytes are taken only when the future returns them.
    pub fn receive<B: IoBufMut>(&self, buf: B) -> ReadinessFuture<ReceiveAttempt<B>, Tokio> {
        asyncresult_core::future::receive::<Tokio, B>(self.read.socket(), buf)
    }

    /// The core socket.
    pub fn socket(&self) -> &Socket {
        self.read.socket()
    }
}

/// As for [`TcpStream`]: cancel safe.
impl AsyncRead for OwnedReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        read_into(|cx, b| self.read.poll_read_uninit(cx, b), cx, buf)
    }
}

/// The write half of a [`TcpStream`] ([`TcpStream::into_split`]). As with tokio's own
/// halves, dropping it shuts the write side down, behind any send still queued (a
/// dropped [`send`](OwnedWriteHalf::send) future's bytes still go out whole first).
#[derive(Debug)]
pub struct OwnedWriteHalf {
    write: stream_io::WriteHalf<Tokio>,
}

impl OwnedWriteHalf {
    /// [`send`](asyncresult_core::net::TcpStream::send) on this half: the whole buffer.
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] (`EPIPE`, `ECONNRESET`, …), [`Error::Disposed`], as
    /// `TcpStream::send`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not stop the send; its bytes still go out whole, even
    /// if the half is dropped too.
    pub async fn send<B: IoBuf>(&self, buf: B) -> Result<usize, Error> {
        asyncresult_core::future::send::<Tokio, B>(self.write.socket(), buf).await
    }

    /// The core socket.
    pub fn socket(&self) -> &Socket {
        self.write.socket()
    }
}

/// As for [`TcpStream`]; `poll_shutdown` shuts the write side down, the read half keeps
/// reading.
impl AsyncWrite for OwnedWriteHalf {
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

/// A listening TCP socket driven by the asyncresult engine, for tokio.
///
/// `socket` comes from [`asyncresult_core::net::TcpListener`] through `Deref`.
///
/// # Examples
///
/// An echo server that serves each connection in a task of its own.
///
/// ```
/// use asyncresult_tokio::{TcpListener, TcpStream};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), asyncresult_tokio::Error> {
/// let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).await?;
/// let addr = listener.local_addr()?;
/// let server = tokio::spawn(async move {
///     let (stream, _peer) = listener.accept().await?;
///     loop {
///         let (n, buf) = stream.receive(Vec::with_capacity(1024)).await?;
///         if n == 0 {
///             return Ok::<_, asyncresult_tokio::Error>(());
///         }
///         stream.send(buf).await?;
///     }
/// });
///
/// let client = TcpStream::connect(addr).await?;
/// client.send(&b"echo"[..]).await?;
/// let (n, buf) = client.receive(Vec::with_capacity(16)).await?;
/// assert_eq!(&buf[..n], b"echo");
/// client.socket().shutdown(std::net::Shutdown::Write)?;
/// assert_eq!(client.receive(Vec::with_capacity(16)).await?.0, 0);
/// server.await.unwrap()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TcpListener(net::TcpListener<Tokio>);

impl Deref for TcpListener {
    type Target = net::TcpListener<Tokio>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl From<Socket> for TcpListener {
    fn from(socket: Socket) -> Self {
        TcpListener(net::TcpListener::from(socket))
    }
}

impl TcpListener {
    asyncresult_core::adapter_tcp_listener_methods!("tokio's timer", TcpStream);
}

/// A UDP socket driven by the asyncresult engine, for tokio.
///
/// Its operations are its own methods (`connect`, `send`, `receive`, `send_to`,
/// `receive_from`, `local_addr`), and those of [`asyncresult_core::net::UdpSocket`]
/// reached through `Deref` (the `*_timeout` forms, `peer_addr`, `socket`).
///
/// A `receive` or `receive_from` future owns a handle to the socket rather than
/// borrowing it, so while one lives, dropping the `UdpSocket` leaves the socket open
/// (and its port bound); `close()` it through `socket()` to end such a future.
///
/// # Examples
///
/// ```
/// use asyncresult_tokio::UdpSocket;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), asyncresult_tokio::Error> {
/// let a = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).await?;
/// let b = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).await?;
/// a.send_to(b"ping", b.local_addr()?).await?;
/// let (n, buf, from) = b.receive_from(Vec::with_capacity(64)).await?;
/// assert_eq!((n, &buf[..], from), (4, &b"ping"[..], a.local_addr()?));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct UdpSocket(net::UdpSocket<Tokio>);

impl Deref for UdpSocket {
    type Target = net::UdpSocket<Tokio>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl From<Socket> for UdpSocket {
    fn from(socket: Socket) -> Self {
        UdpSocket(net::UdpSocket::from(socket))
    }
}

impl UdpSocket {
    asyncresult_core::adapter_udp_socket_methods!(Tokio);
}
