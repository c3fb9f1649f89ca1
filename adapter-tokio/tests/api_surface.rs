//! The tokio adapter's public surface exactly as API.md writes it: root re-exports,
//! method signatures and `Send` futures (for any buffer type), `From<Socket>` and
//! `into_inner`, every send-buffer kind, and `Error` through tokio's I/O utilities.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use asyncresult_tokio::{
    AsyncCallback, AsyncResult, AsyncState, Domain, Error, IoBuf, IoBufMut, Protocol, Socket,
    SocketFlags, TcpListener, TcpStream, Type, UdpSocket,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::{loopback, pair};

/// Runs `f` on a fresh runtime of the given flavour, on its own thread, and fails if it
/// does not finish in time (a blocked runtime thread fails too, not only a pending
/// future).
fn run<F, T>(multi: bool, f: impl FnOnce() -> F + Send + 'static) -> T
where
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = if multi {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        }
        .unwrap();
        let out = rt.block_on(f());
        let _ = tx.send(out);
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("test hung or panicked")
}

fn out<O, F: Future<Output = O> + Send>(_: &F) {}
fn send_sync_debug<T: Send + Sync + std::fmt::Debug>() {}

/// Every signature of API.md's tokio section, for any buffer type, with `Send` futures.
/// Never run: it only has to compile.
#[allow(dead_code)]
fn signatures<B: IoBuf, M: IoBufMut>(
    s: &TcpStream,
    l: &TcpListener,
    u: &UdpSocket,
    b: impl Fn() -> B,
    m: impl Fn() -> M,
    to: SocketAddr,
) {
    send_sync_debug::<TcpStream>();
    send_sync_debug::<TcpListener>();
    send_sync_debug::<UdpSocket>();
    send_sync_debug::<asyncresult_tokio::OwnedReadHalf>();
    send_sync_debug::<asyncresult_tokio::OwnedWriteHalf>();
    let _: fn(Socket) -> TcpStream = TcpStream::from;
    let _: fn(Socket) -> TcpListener = TcpListener::from;
    let _: fn(Socket) -> UdpSocket = UdpSocket::from;
    let _: fn(TcpStream) -> Socket = TcpStream::into_inner;
    let _: fn(TcpListener) -> Socket = TcpListener::into_inner;
    let _: fn(UdpSocket) -> Socket = UdpSocket::into_inner;

    let f = TcpStream::connect(to);
    out::<Result<TcpStream, Error>, _>(&f);
    let f = s.send(b());
    out::<Result<usize, Error>, _>(&f);
    let f = s.receive(m());
    out::<Result<(usize, M), Error>, _>(&f);
    let _: fn(&TcpStream, bool) -> Result<(), Error> = TcpStream::set_nodelay;
    let _: fn(&TcpStream) -> Result<SocketAddr, Error> = TcpStream::local_addr;
    let _: fn(&TcpStream) -> Result<SocketAddr, Error> = TcpStream::peer_addr;
    let _: fn(
        TcpStream,
    ) -> (
        asyncresult_tokio::OwnedReadHalf,
        asyncresult_tokio::OwnedWriteHalf,
    ) = TcpStream::into_split;
    fn io<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Sync + Unpin>() {}
    io::<TcpStream>();
    fn r<T: tokio::io::AsyncRead + Send + Unpin>() {}
    fn w<T: tokio::io::AsyncWrite + Send + Unpin>() {}
    r::<asyncresult_tokio::OwnedReadHalf>();
    w::<asyncresult_tokio::OwnedWriteHalf>();
    fn halves<B: IoBuf, M: IoBufMut>(
        rd: &asyncresult_tokio::OwnedReadHalf,
        wr: &asyncresult_tokio::OwnedWriteHalf,
        b: B,
        m: M,
    ) {
        let f = rd.receive(m);
        out::<Result<(usize, M), Error>, _>(&f);
        let f = wr.send(b);
        out::<Result<usize, Error>, _>(&f);
        let _: &Socket = rd.socket();
        let _: &Socket = wr.socket();
    }
    let _ = halves::<B, M>;

    let f = TcpListener::bind(to);
    out::<Result<TcpListener, Error>, _>(&f);
    let f = l.accept();
    out::<Result<(TcpStream, SocketAddr), Error>, _>(&f);
    let _: fn(&TcpListener) -> Result<SocketAddr, Error> = TcpListener::local_addr;

    let f = UdpSocket::bind(to);
    out::<Result<UdpSocket, Error>, _>(&f);
    let f = u.connect(to);
    out::<Result<(), Error>, _>(&f);
    let f = u.send(b());
    out::<Result<usize, Error>, _>(&f);
    let f = u.receive(m());
    out::<Result<(usize, M), Error>, _>(&f);
    let f = u.send_to(b(), to);
    out::<Result<usize, Error>, _>(&f);
    let f = u.receive_from(m());
    out::<Result<(usize, M, SocketAddr), Error>, _>(&f);
    let _: fn(&UdpSocket) -> Result<SocketAddr, Error> = UdpSocket::local_addr;

    // The timeout forms are Send too.
    let f = s.send_timeout(b(), Duration::MAX);
    out::<Result<usize, Error>, _>(&f);
    let f = s.receive_timeout(m(), Duration::MAX);
    out::<Result<(usize, M), Error>, _>(&f);
    let f = l.accept_timeout(Duration::MAX);
    out::<Result<(TcpStream, SocketAddr), Error>, _>(&f);
    let f = TcpStream::connect_timeout(to, Duration::MAX);
    out::<Result<TcpStream, Error>, _>(&f);
    let f = u.send_to_timeout(b(), to, Duration::MAX);
    out::<Result<usize, Error>, _>(&f);
    let f = u.receive_from_timeout(m(), Duration::MAX);
    out::<Result<(usize, M, SocketAddr), Error>, _>(&f);

    // The other re-exports.
    let _: Option<AsyncCallback<usize>> = None;
    let _: Option<AsyncState> = None;
    let _: Option<AsyncResult<usize>> = None;
    let _ = (SocketFlags::NONE, Domain::IPV4, Type::STREAM, Protocol::TCP);
}

#[test]
fn every_send_buffer_kind_goes_through_send_and_send_to() {
    for multi in [false, true] {
        run(multi, || async {
            let (client, mut server) = pair().await;
            let mut want = Vec::new();
            macro_rules! send {
                ($b:expr, $bytes:expr) => {
                    assert_eq!(client.send($b).await.unwrap(), $bytes.len());
                    want.extend_from_slice($bytes);
                };
            }
            send!(b"vec".to_vec(), b"vec");
            send!(b"boxed".to_vec().into_boxed_slice(), b"boxed");
            send!(&b"slice"[..], b"slice");
            send!(b"array", b"array");
            send!("str", b"str");
            send!(String::from("string"), b"string");
            send!(Arc::<[u8]>::from(&b"arc"[..]), b"arc");
            send!(bytes::Bytes::from_static(b"bytes"), b"bytes");
            let mut got = vec![0u8; want.len()];
            server.read_exact(&mut got).await.unwrap();
            assert_eq!(got, want);

            let a = UdpSocket::bind(loopback()).await.unwrap();
            let b = UdpSocket::bind(loopback()).await.unwrap();
            let to = b.local_addr().unwrap();
            for (n, bytes) in [
                (a.send_to("str", to).await.unwrap(), &b"str"[..]),
                (
                    a.send_to(String::from("string"), to).await.unwrap(),
                    b"string",
                ),
                (
                    a.send_to(Arc::<[u8]>::from(&b"arc"[..]), to).await.unwrap(),
                    b"arc",
                ),
                (a.send_to(b"array", to).await.unwrap(), b"array"),
            ] {
                assert_eq!(n, bytes.len());
                let (m, buf, from) = b.receive_from(Vec::with_capacity(16)).await.unwrap();
                assert_eq!((m, &buf[..], from), (n, bytes, a.local_addr().unwrap()));
            }
            a.connect(to).await.unwrap();
            assert_eq!(a.send(vec![1u8, 2]).await.unwrap(), 2);
            let (m, buf) = b.receive(vec![0u8; 4].into_boxed_slice()).await.unwrap();
            assert_eq!((m, &buf[..]), (2, &[1u8, 2, 0, 0][..]));
        });
    }
}

#[test]
fn receive_buffers_behave_as_documented() {
    run(false, || async {
        let (client, server) = pair().await;
        client.send(b"new").await.unwrap();
        let mut old = Vec::with_capacity(32);
        old.extend_from_slice(b"OLD OLD OLD");
        let (n, buf) = server.receive(old).await.unwrap();
        assert_eq!((n, &buf[..]), (3, &b"new"[..]));
        // A probe consumes nothing.
        client.send(b"abc").await.unwrap();
        let (n, buf) = server.receive(Vec::new()).await.unwrap();
        assert_eq!((n, buf.len()), (0, 0));
        let (n, buf) = server.receive(Vec::with_capacity(8)).await.unwrap();
        assert_eq!(&buf[..n], b"abc");
    });
}

/// A socket made in the core (or another adapter) becomes a tokio stream, listener or
/// UDP socket, and goes back with every unread byte still in it.
#[test]
fn from_socket_and_into_inner_round_trip() {
    run(true, || async {
        let core_listener = Socket::listen_tcp(loopback(), 16).unwrap();
        let addr = core_listener.local_addr().unwrap();
        let listener = TcpListener::from(core_listener);
        let client = TcpStream::from(Socket::connect_tcp(addr).unwrap());
        let (mut server, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        assert_eq!(client.peer_addr().unwrap(), addr);
        client.set_nodelay(true).unwrap();
        assert!(client.socket().nodelay().unwrap());

        client.send(b"0123456789").await.unwrap();
        let mut head = [0u8; 4];
        server.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"0123");
        // The rest goes with the socket.
        let socket = server.into_inner();
        let (n, buf) = socket
            .end_receive(
                &socket
                    .begin_receive(Vec::with_capacity(64), SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(&buf[..n], b"456789");
        // And back into tokio.
        let mut server = TcpStream::from(socket);
        client.send(b"more").await.unwrap();
        let mut more = [0u8; 4];
        server.read_exact(&mut more).await.unwrap();
        assert_eq!(&more, b"more");

        let listener_socket = listener.into_inner();
        assert!(!listener_socket.is_closed());
        let udp = UdpSocket::from(Socket::bind_udp(loopback()).unwrap());
        let udp_socket = udp.into_inner();
        assert!(!udp_socket.is_closed() && !udp_socket.is_stream());
    });
}

/// Wrapping the wrong kind of socket gives errors, never a panic or a hang.
#[test]
fn wrong_kinds_of_socket_fail_cleanly() {
    run(false, || async {
        let udp_as_listener = TcpListener::from(Socket::bind_udp(loopback()).unwrap());
        assert!(matches!(
            udp_as_listener.accept().await,
            Err(Error::Socket(_))
        ));
        let (client, _server) = pair().await;
        let stream_as_listener = TcpListener::from(client.into_inner());
        assert!(matches!(
            stream_as_listener.accept().await,
            Err(Error::Socket(_))
        ));
        let unconnected = TcpStream::from(Socket::new(Domain::IPV4, Type::STREAM, None).unwrap());
        let e = unconnected.send(b"x").await.unwrap_err();
        assert!(e.error_code().is_some(), "{e:?}");
        let e = unconnected.peer_addr().unwrap_err();
        assert_eq!(e.error_code(), Some(libc::ENOTCONN));
    });
}

/// How our errors look to tokio's I/O utilities: a closed stream's reads and writes
/// fail (NotConnected) instead of looping; `Aborted` maps to a kind no utility retries.
#[test]
fn errors_through_tokio_io_utilities() {
    run(false, || async {
        let (mut client, _server) = pair().await;
        client.socket().close();
        let mut buf = [0u8; 4];
        let e = client.read_exact(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotConnected);
        assert!(matches!(Error::from(e), Error::Disposed));
        let e = client.write_all(b"abcd").await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotConnected);
        let aborted = io::Error::from(Error::Aborted);
        assert!(!matches!(
            aborted.kind(),
            io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
        ));
        // A tokio utility reading from a source that fails with it stops at once.
        struct Failing(usize);
        impl tokio::io::AsyncRead for Failing {
            fn poll_read(
                mut self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
                _buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<io::Result<()>> {
                self.0 += 1;
                std::task::Poll::Ready(Err(Error::Aborted.into()))
            }
        }
        let mut src = Failing(0);
        let mut sink = Vec::new();
        assert!(tokio::io::copy(&mut src, &mut sink).await.is_err());
        let mut tmp = [0u8; 1];
        assert!(src.read_exact(&mut tmp).await.is_err());
        assert_eq!(src.0, 2, "each utility tried once");
        // A receive timeout is Aborted, and the stream stays usable.
        let (client, server) = pair().await;
        let e = server
            .receive_timeout(Vec::with_capacity(4), Duration::from_millis(10))
            .await
            .unwrap_err();
        assert!(e.is_aborted());
        client.send(b"ok").await.unwrap();
        let (n, buf) = server.receive(Vec::with_capacity(4)).await.unwrap();
        assert_eq!(&buf[..n], b"ok");
    });
}

/// The split halves work from separate tasks and give back the same socket.
#[test]
fn split_halves_and_their_socket() {
    run(true, || async {
        let (client, server) = pair().await;
        let id = format!("{:?}", server.socket().local_addr());
        let (mut rd, wr) = server.into_split();
        assert_eq!(format!("{:?}", wr.socket().local_addr()), id);
        let t = tokio::spawn(async move {
            wr.send(b"from the write half").await.unwrap();
            wr
        });
        let mut got = vec![0u8; 19];
        let mut c = client;
        c.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"from the write half");
        c.send(b"back").await.unwrap();
        let (n, buf) = rd.receive(Vec::with_capacity(8)).await.unwrap();
        assert_eq!(&buf[..n], b"back");
        let wr = t.await.unwrap();
        drop(wr);
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "dropping the write half shuts it down");
        c.send(b"still reading").await.unwrap();
        let mut got = [0u8; 13];
        rd.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"still reading");
    });
}

/// API.md writes `receive` as `async fn receive(&self, buf)`, whose future borrows the
/// stream; this one owns a handle to the socket instead, so it can outlive its stream,
/// and then it keeps the connection open (the docs say so). Closing the socket ends
/// it: the future resolves to `Disposed` and the peer reads end of stream.
#[test]
fn a_receive_future_that_outlives_its_stream() {
    run(true, || async {
        let (mut client, server) = pair().await;
        let socket = server.socket().clone();
        let task = tokio::spawn(server.receive(Vec::with_capacity(8)));
        drop(server);
        let mut one = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(100), client.read(&mut one)).await;
        assert!(read.is_err(), "still open: the future holds a handle");
        assert!(!socket.is_closed());
        socket.close();
        let outcome = task.await.unwrap();
        assert!(matches!(outcome, Err(Error::Disposed)), "{outcome:?}");
        assert_eq!(client.read(&mut one).await.unwrap(), 0);
    });
}
