//! The smol adapter's public surface exactly as API.md writes it: root re-exports,
//! method signatures and `Send` futures (for any buffer type), `From<Socket>` and
//! `into_inner`, every send-buffer kind, `&TcpStream` I/O, and the README's example.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use asyncresult_smol::{
    AsyncCallback, AsyncResult, AsyncState, Domain, Error, IoBuf, IoBufMut, Protocol, Socket,
    SocketFlags, TcpListener, TcpStream, Type, UdpSocket,
};
use futures::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::{loopback, pair};

/// Runs `f` under `smol::block_on` on its own thread; fails if it does not finish in
/// time (a blocked thread fails too, not only a pending future).
fn run<F, T>(f: impl FnOnce() -> F + Send + 'static) -> T
where
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(smol::block_on(f()));
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("test hung or panicked")
}

fn out<O, F: Future<Output = O> + Send>(_: &F) {}
fn send_sync_debug<T: Send + Sync + std::fmt::Debug>() {}

/// Every signature of API.md's smol section, for any buffer type, with `Send` futures.
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
    fn io<T: futures_io::AsyncRead + futures_io::AsyncWrite + Send + Sync + Unpin>() {}
    io::<TcpStream>();
    io::<&TcpStream>();

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

    let _: Option<AsyncCallback<usize>> = None;
    let _: Option<AsyncState> = None;
    let _: Option<AsyncResult<usize>> = None;
    let _ = (SocketFlags::NONE, Domain::IPV4, Type::STREAM, Protocol::TCP);
}

#[test]
fn every_send_buffer_kind_goes_through_send_and_send_to() {
    run(|| async {
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
                a.send_to(bytes::Bytes::from_static(b"bytes"), to)
                    .await
                    .unwrap(),
                b"bytes",
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

#[test]
fn from_socket_and_into_inner_round_trip() {
    run(|| async {
        let core_listener = Socket::listen_tcp(loopback(), 16).unwrap();
        let addr = core_listener.local_addr().unwrap();
        let listener = TcpListener::from(core_listener);
        let client = TcpStream::from(Socket::connect_tcp(addr).unwrap());
        let (mut server, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());

        client.send(b"0123456789").await.unwrap();
        let mut head = [0u8; 4];
        server.read_exact(&mut head).await.unwrap();
        let socket = server.into_inner();
        let (n, buf) = socket
            .end_receive(
                &socket
                    .begin_receive(Vec::with_capacity(64), SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(&buf[..n], b"456789");
        let server = TcpStream::from(socket);
        client.send(b"more").await.unwrap();
        let mut more = [0u8; 4];
        (&server).read_exact(&mut more).await.unwrap();
        assert_eq!(&more, b"more");
        (&server).write_all(b"via &").await.unwrap();
        (&server).close().await.unwrap();
        let mut back = Vec::new();
        (&client).read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"via &");
    });
}

#[test]
fn errors_through_futures_io_utilities() {
    run(|| async {
        let (mut client, _server) = pair().await;
        client.socket().close();
        let mut buf = [0u8; 4];
        let e = client.read_exact(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotConnected);
        assert!(matches!(Error::from(e), Error::Disposed));
        let e = client.write_all(b"abcd").await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotConnected);
        let (client, server) = pair().await;
        let e = server
            .receive_timeout(Vec::with_capacity(4), Duration::from_millis(10))
            .await
            .unwrap_err();
        assert!(e.is_aborted());
        assert!(!matches!(
            io::Error::from(e).kind(),
            io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
        ));
        client.send(b"ok").await.unwrap();
        let (n, buf) = server.receive(Vec::with_capacity(4)).await.unwrap();
        assert_eq!(&buf[..n], b"ok");
    });
}

/// The README's example, as written (its `?`s typed by the surrounding function).
#[test]
fn readme_example_runs() {
    fn main() -> Result<(), asyncresult_smol::Error> {
        smol::block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).await?;
            let client = TcpStream::connect(listener.local_addr()?).await?;
            let (server, _) = listener.accept().await?;
            client.send(b"ping").await?;
            let (n, buf) = server.receive(Vec::with_capacity(64)).await?;
            assert_eq!(&buf[..n], b"ping");
            Ok::<(), asyncresult_smol::Error>(())
        })?;
        Ok(())
    }
    run(|| async { main().unwrap() });
}

/// A `receive_from` future owns a handle to its socket (it does not borrow the
/// `UdpSocket`): spawned and left waiting, it keeps the socket open and its port bound
/// after the `UdpSocket` is dropped, as the docs say; closing the socket ends it, and
/// once it is gone the port is free again.
#[test]
fn a_receive_future_that_outlives_its_udp_socket() {
    run(|| async {
        let udp = UdpSocket::bind(loopback()).await.unwrap();
        let addr = udp.local_addr().unwrap();
        let socket = udp.socket().clone();
        let task = smol::spawn(udp.receive_from(Vec::with_capacity(8)));
        drop(udp);
        let again = Socket::bind_udp(addr);
        assert_eq!(
            again.unwrap_err().error_code(),
            Some(libc::EADDRINUSE),
            "the pending future keeps the port bound"
        );
        socket.close();
        let outcome = task.await;
        assert!(matches!(outcome, Err(Error::Disposed)), "{outcome:?}");
        drop(socket);
        Socket::bind_udp(addr).expect("the port is free once the future is gone");
    });
}
