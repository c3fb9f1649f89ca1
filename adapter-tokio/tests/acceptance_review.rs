//! An independent reviewer's probes of issue 4 through the tokio adapter's public API
//! only: I/O-trait edge cases as tokio's own TcpStream behaves (empty reads and writes,
//! writes after shutdown, errors as io kinds), runtime shutdown with work in flight,
//! futures polled across runtimes, and dropped futures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::mpsc;
use std::time::Duration;

use asyncresult_tokio::{Error, Socket, SocketFlags, TcpListener, TcpStream, UdpSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::{bounded, loopback, pair, park_block_on, pattern};

fn current() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn multi() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// tokio's own TcpStream returns at once from a read into an empty buffer and from a
/// write of an empty buffer (Ok(0)); utilities rely on that.
#[test]
fn empty_reads_and_writes_return_at_once() {
    bounded(Duration::from_secs(20), || {
        current().block_on(async {
            let (mut a, _b) = pair().await;
            let r = tokio::time::timeout(Duration::from_secs(2), a.read(&mut [])).await;
            assert_eq!(
                r.expect("read into an empty buffer waited for data")
                    .unwrap(),
                0
            );
            let w = tokio::time::timeout(Duration::from_secs(2), a.write(&[])).await;
            assert_eq!(w.expect("empty write waited").unwrap(), 0);
        });
    });
}

/// A write after shutdown is an error (as on tokio's TcpStream: BrokenPipe), not a
/// panic or a hang; reads keep working.
#[test]
fn write_after_shutdown_is_an_error_and_reads_work() {
    bounded(Duration::from_secs(20), || {
        current().block_on(async {
            let (mut a, mut b) = pair().await;
            a.shutdown().await.unwrap();
            let mut buf = [0u8; 4];
            assert_eq!(b.read(&mut buf).await.unwrap(), 0);
            let e = a.write_all(b"late").await.unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e:?}");
            b.write_all(b"back").await.unwrap();
            a.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"back");
            // A second shutdown is fine (tokio's is idempotent).
            a.shutdown().await.unwrap();
        });
    });
}

/// A reset peer: reads fail with ConnectionReset; errors from core through io are
/// the documented kinds.
#[test]
fn reset_reaches_reads_as_connection_reset() {
    bounded(Duration::from_secs(20), || {
        current().block_on(async {
            let l = TcpListener::bind(loopback()).await.unwrap();
            let std = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (mut s, peer) = l.accept().await.unwrap();
            assert_eq!(peer, std.local_addr().unwrap());
            set_linger_zero(&std);
            drop(std);
            let mut buf = [0u8; 4];
            let e = s.read(&mut buf).await.unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
            // After close: NotConnected through the io traits; Disposed through the API.
            s.socket().close();
            let e = s.read(&mut buf).await.unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::NotConnected, "{e:?}");
            assert!(matches!(s.send(&b"x"[..]).await, Err(Error::Disposed)));
            assert!(matches!(
                s.receive(Vec::with_capacity(1)).await,
                Err(Error::Disposed)
            ));
        });
    });
}

/// A multi-thread runtime dropped while a spawned task waits on a receive and another
/// has a large send in flight: the drop does not hang or panic, the send still
/// completes in the background (§8), and the sockets work from a new runtime.
#[test]
fn runtime_shutdown_with_work_in_flight() {
    bounded(Duration::from_secs(60), || {
        let rt = multi();
        let (a, b) = rt.block_on(pair());
        let (a_sock, b_sock) = (a.socket().clone(), b.socket().clone());
        const LEN: usize = 16 << 20;
        let data = pattern(LEN, 4);
        let d2 = data.clone();
        let (started_tx, started_rx) = mpsc::channel();
        rt.spawn(async move {
            let fut = a.send(d2);
            started_tx.send(()).unwrap();
            let _ = fut.await;
        });
        let (rstart_tx, rstart_rx) = mpsc::channel();
        let waiting_receive_socket = {
            let (c, d) = rt.block_on(pair());
            let d_sock = d.socket().clone();
            rt.spawn(async move {
                let f = d.receive(Vec::with_capacity(8));
                rstart_tx.send(()).unwrap();
                let _ = f.await;
            });
            (c, d_sock)
        };
        started_rx.recv().unwrap();
        rstart_rx.recv().unwrap();
        drop(rt);
        // The send completes in the background: read it all from a new runtime.
        let rt2 = current();
        rt2.block_on(async {
            let mut got = Vec::with_capacity(LEN);
            let b2 = TcpStream::from(b_sock);
            while got.len() < LEN {
                let (n, buf) = tokio::time::timeout(
                    Duration::from_secs(20),
                    b2.receive(Vec::with_capacity(1 << 16)),
                )
                .await
                .expect("the background send stalled after the runtime dropped")
                .unwrap();
                assert!(n > 0);
                got.extend_from_slice(&buf);
            }
            assert!(got == data);
            let a2 = TcpStream::from(a_sock);
            a2.send(&b"more"[..]).await.unwrap();
            let (n, buf) = b2.receive(Vec::with_capacity(8)).await.unwrap();
            assert_eq!(&buf[..n], b"more");
            // The other socket, whose receive task died with the runtime, still works.
            let (c, d_sock) = waiting_receive_socket;
            c.send(&b"late"[..]).await.unwrap();
            let d = TcpStream::from(d_sock);
            let mut all = Vec::new();
            while all.len() < 4 {
                let (n, buf) =
                    tokio::time::timeout(Duration::from_secs(10), d.receive(Vec::with_capacity(8)))
                        .await
                        .expect("receive after runtime shutdown hung")
                        .unwrap();
                assert!(n > 0);
                all.extend_from_slice(&buf);
            }
            assert_eq!(all, b"late");
        });
    });
}

/// shutdown_background: the runtime's tasks (its engine driver among them) go on
/// another thread, later; the process's other sockets must keep being served.
#[test]
fn shutdown_background_leaves_the_engine_served() {
    bounded(Duration::from_secs(60), || {
        for _ in 0..5 {
            let rt = multi();
            let (a, b) = rt.block_on(pair());
            rt.spawn(async move {
                let _ = b.receive(Vec::with_capacity(8)).await;
            });
            rt.shutdown_background();
            // Blocking use of the core right after.
            let l = Socket::listen_tcp(loopback(), 4).unwrap();
            let c = Socket::connect_tcp(l.local_addr().unwrap()).unwrap();
            let s = l.end_accept(&l.begin_accept(None, None).unwrap()).unwrap();
            let r = s
                .begin_receive(Vec::with_capacity(4), SocketFlags::NONE, None, None)
                .unwrap();
            c.end_send(
                &c.begin_send(b"ping", SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
            assert!(
                r.wait_timeout(Duration::from_secs(10)),
                "receive not served"
            );
            assert_eq!(s.end_receive(&r).unwrap().0, 4);
            drop(a);
        }
    });
}

/// A future made in one runtime and polled to completion in another (tokio allows
/// moving futures between runtimes); also under a non-tokio executor.
#[test]
fn futures_move_between_runtimes_and_executors() {
    bounded(Duration::from_secs(30), || {
        let rt1 = current();
        let rt2 = multi();
        let (a, b) = rt1.block_on(pair());
        let fut = b.receive(Vec::with_capacity(8));
        // Poll once in rt1 so that it waits there.
        let mut fut = Box::pin(fut);
        rt1.block_on(async {
            let w = std::task::Waker::noop();
            let mut cx = std::task::Context::from_waker(w);
            assert!(fut.as_mut().poll(&mut cx).is_pending());
        });
        drop(rt1);
        let a_sock = a.socket().clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            a_sock
                .end_send(
                    &a_sock
                        .begin_send(b"x", SocketFlags::NONE, None, None)
                        .unwrap(),
                )
                .unwrap();
        });
        let (n, _) = rt2
            .block_on(async { tokio::time::timeout(Duration::from_secs(10), fut).await })
            .expect("a future moved to another runtime was never woken")
            .unwrap();
        assert_eq!(n, 1);
        // Under a plain executor with no tokio context at all.
        let got = park_block_on(async {
            let send = a.send(&b"yz"[..]);
            let recv = b.receive(Vec::with_capacity(8));
            send.await.unwrap();
            recv.await.unwrap()
        });
        assert_eq!(&got.1[..got.0], b"yz");
    });
}

/// Dropping a send future mid-flight: no panic, the bytes go out whole and before any
/// later send; the runtime keeps working. Both flavours.
#[test]
fn dropped_send_future_mid_flight() {
    for rt in [current(), multi()] {
        bounded(Duration::from_secs(60), move || {
            rt.block_on(async {
                let (a, mut b) = pair().await;
                let big = pattern(8 << 20, 2);
                {
                    let mut f = Box::pin(a.send(big.clone()));
                    let w = std::task::Waker::noop();
                    let mut cx = std::task::Context::from_waker(w);
                    assert!(f.as_mut().poll(&mut cx).is_pending());
                }
                let mut got = vec![0; big.len() + 5];
                let (sent, read) = tokio::join!(a.send(&b"after"[..]), b.read_exact(&mut got));
                assert_eq!(sent.unwrap(), 5);
                read.unwrap();
                assert!(got[..big.len()] == big[..]);
                assert_eq!(&got[big.len()..], b"after");
            });
        });
    }
}

/// Timeouts: receive_timeout → Aborted and no byte lost; send_to on UDP; the UDP API.
#[test]
fn timeouts_and_udp_api() {
    bounded(Duration::from_secs(30), || {
        current().block_on(async {
            let (a, b) = pair().await;
            let e = b
                .receive_timeout(Vec::with_capacity(4), Duration::from_millis(20))
                .await
                .unwrap_err();
            assert!(matches!(e, Error::Aborted));
            a.send(&b"data"[..]).await.unwrap();
            let (n, buf) = b.receive(Vec::with_capacity(4)).await.unwrap();
            assert_eq!(&buf[..n], b"data");

            let u1 = UdpSocket::bind(loopback()).await.unwrap();
            let u2 = UdpSocket::bind(loopback()).await.unwrap();
            assert!(matches!(
                u1.send(&b"x"[..]).await.unwrap_err().error_code(),
                Some(libc::EDESTADDRREQ)
            ));
            assert_eq!(
                u1.send_to(Vec::new(), u2.local_addr().unwrap())
                    .await
                    .unwrap(),
                0
            );
            let (n, _b, from) = u2.receive_from(Vec::with_capacity(8)).await.unwrap();
            assert_eq!((n, from), (0, u1.local_addr().unwrap()));
            u1.connect(u2.local_addr().unwrap()).await.unwrap();
            u2.connect(u1.local_addr().unwrap()).await.unwrap();
            assert_eq!(u1.send(&b"hello"[..]).await.unwrap(), 5);
            let (n, buf) = u2.receive(Vec::with_capacity(2)).await.unwrap();
            assert_eq!((n, buf.len()), (5, buf.capacity().min(5)));
            let e = u1.send(vec![0u8; 70_000]).await.unwrap_err();
            assert_eq!(e.error_code(), Some(libc::EMSGSIZE));
            let t = u2
                .receive_from_timeout(Vec::with_capacity(8), Duration::from_millis(10))
                .await;
            assert!(matches!(t, Err(Error::Aborted)));
        });
    });
}

/// Unpin where reasonable: the receive future is Unpin (usable in select! by &mut).
#[test]
fn receive_futures_are_unpin_and_send() {
    fn unpin_send<F: Future + Unpin + Send + 'static>(_: &F) {}
    bounded(Duration::from_secs(10), || {
        current().block_on(async {
            let (a, b) = pair().await;
            let mut r = b.receive(Vec::with_capacity(4));
            unpin_send(&r);
            let u = UdpSocket::bind(loopback()).await.unwrap();
            let rf = u.receive_from(Vec::with_capacity(4));
            unpin_send(&rf);
            drop(rf);
            a.send(&b"ab"[..]).await.unwrap();
            tokio::select! {
                got = &mut r => assert_eq!(got.unwrap().0, 2),
                _ = tokio::time::sleep(Duration::from_secs(5)) => panic!("no data"),
            }
        });
    });
}

/// `tokio::io::split` and `into_split`: the halves work from different tasks; a write
/// half's shutdown gives EOF while the read half keeps going.
#[test]
fn split_and_copy_bidirectional() {
    bounded(Duration::from_secs(30), || {
        multi().block_on(async {
            let (mut a, mut b) = pair().await;
            let echo = tokio::spawn(async move {
                let (mut r, mut w) = tokio::io::split(&mut b);
                let n = tokio::io::copy(&mut r, &mut w).await.unwrap();
                w.shutdown().await.unwrap();
                n
            });
            let payload = pattern(1 << 20, 6);
            let (mut r, mut w) = a.split_io();
            let p2 = payload.clone();
            let writer = async move {
                w.write_all(&p2).await.unwrap();
                w.shutdown().await.unwrap();
            };
            let reader = async move {
                let mut got = Vec::new();
                r.read_to_end(&mut got).await.unwrap();
                got
            };
            let ((), got) = tokio::join!(writer, reader);
            assert!(got == payload);
            assert_eq!(echo.await.unwrap(), payload.len() as u64);
            let _ = &mut a;
        });
    });
}

trait SplitIo {
    fn split_io(
        &mut self,
    ) -> (
        tokio::io::ReadHalf<&mut TcpStream>,
        tokio::io::WriteHalf<&mut TcpStream>,
    );
}
impl SplitIo for TcpStream {
    fn split_io(
        &mut self,
    ) -> (
        tokio::io::ReadHalf<&mut TcpStream>,
        tokio::io::WriteHalf<&mut TcpStream>,
    ) {
        tokio::io::split(self)
    }
}

fn set_linger_zero(s: &std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid descriptor and a valid linger struct of the given size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}
