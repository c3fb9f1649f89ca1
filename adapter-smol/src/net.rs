//! smol's shapes of the engine's sockets: newtypes over the runtime-generic types of
//! `asyncresult_core::net` (whose methods they expose through `Deref`), plus
//! `futures_io::{AsyncRead, AsyncWrite}` for the stream and for `&TcpStream`.

use std::io::{self, IoSlice};
use std::ops::Deref;
use std::pin::Pin;
use std::task::{Context, Poll};

use asyncresult_core::{net, Socket};
use futures_io::{AsyncRead, AsyncWrite};

use crate::Smol;

/// A TCP connection driven by the asyncresult engine, for smol.
///
/// Its operations are its own methods (`connect`, `send`, whole buffer, `receive`,
/// `set_nodelay`, `local_addr`, `peer_addr`) and, through `Deref`, those of
/// [`asyncresult_core::net::TcpStream`] (`send_timeout`, `receive_timeout`, `nodelay`,
/// `socket`). It also implements
/// `futures_io::{AsyncRead, AsyncWrite}` (for `TcpStream` and `&TcpStream`), so
/// `futures::io::copy`, `AsyncReadExt`, `AsyncWriteExt::write_all` work unchanged;
/// reads are cancel safe.
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
/// use asyncresult_smol::{TcpListener, TcpStream};
/// use futures::io::{AsyncReadExt, AsyncWriteExt};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// smol::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0".parse()?).await?;
///     let mut client = TcpStream::connect(listener.local_addr()?).await?;
///     let (mut server, _) = listener.accept().await?;
///
///     client.send(b"hello").await?;           // whole send
///     client.write_all(b", world").await?;    // AsyncWrite
///     let mut got = [0u8; 12];
///     server.read_exact(&mut got).await?;     // AsyncRead
///     assert_eq!(&got, b"hello, world");
///     Ok(())
/// })
/// # }
/// ```
#[derive(Debug)]
pub struct TcpStream(net::TcpStream<Smol>);

impl Deref for TcpStream {
    type Target = net::TcpStream<Smol>;
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
    asyncresult_core::adapter_tcp_stream_methods!(Smol, "async-io's timer");
}

/// Reads go straight from the kernel into the caller's buffer: cancel safe, no byte is
/// held anywhere a dropped read future could lose it.
impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_read(cx, buf)
    }
}

/// As for `TcpStream`. Several tasks may read through `&TcpStream` at once: each gets
/// woken in turn (they take turns while all wait), so give each direction one task.
impl AsyncRead for &TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_read(cx, buf)
    }
}

/// `poll_write` reports only bytes the kernel took; `poll_flush` waits for sends still
/// queued (those of dropped `send` futures); `poll_close` flushes, then shuts the
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

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_shutdown(cx)
    }
}

/// As for `TcpStream`, from any number of tasks (see `AsyncRead for &TcpStream`).
impl AsyncWrite for &TcpStream {
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

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_shutdown(cx)
    }
}

/// A listening TCP socket driven by the asyncresult engine, for smol.
///
/// `socket` comes from [`asyncresult_core::net::TcpListener`] through `Deref`.
///
/// # Examples
///
/// An echo server that serves each connection in a task of its own.
///
/// ```
/// use asyncresult_smol::{TcpListener, TcpStream};
///
/// # fn main() -> Result<(), asyncresult_smol::Error> { smol::block_on(async {
/// let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).await?;
/// let addr = listener.local_addr()?;
/// let server = smol::spawn(async move {
///     let (stream, _peer) = listener.accept().await?;
///     loop {
///         let (n, buf) = stream.receive(Vec::with_capacity(1024)).await?;
///         if n == 0 {
///             return Ok::<_, asyncresult_smol::Error>(());
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
/// server.await?;
/// # Ok(()) }) }
/// ```
#[derive(Debug)]
pub struct TcpListener(net::TcpListener<Smol>);

impl Deref for TcpListener {
    type Target = net::TcpListener<Smol>;
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
    asyncresult_core::adapter_tcp_listener_methods!("async-io's timer", TcpStream);
}

/// A UDP socket driven by the asyncresult engine, for smol.
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
/// use asyncresult_smol::UdpSocket;
///
/// # fn main() -> Result<(), asyncresult_smol::Error> {
/// smol::block_on(async {
///     let a = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).await?;
///     let b = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).await?;
///     a.send_to(b"ping", b.local_addr()?).await?;
///     let (n, buf, from) = b.receive_from(Vec::with_capacity(64)).await?;
///     assert_eq!((n, &buf[..], from), (4, &b"ping"[..], a.local_addr()?));
///     Ok(())
/// })
/// # }
/// ```
#[derive(Debug)]
pub struct UdpSocket(net::UdpSocket<Smol>);

impl Deref for UdpSocket {
    type Target = net::UdpSocket<Smol>;
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
    asyncresult_core::adapter_udp_socket_methods!(Smol);
}
