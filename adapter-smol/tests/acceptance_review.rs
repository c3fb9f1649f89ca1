//! An independent reviewer's probes of issue 4 through the smol adapter's public API
//! only: futures-io traits on `TcpStream` and `&TcpStream` as async-net's behave (empty
//! reads and writes, writes after close, errors as io kinds), a multi-threaded
//! `async_executor`, timeouts, dropped futures, and executors that go away.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use asyncresult_smol::{Error, Socket, SocketFlags, TcpListener, TcpStream, UdpSocket};
use futures::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::{bounded, loopback, pair, pattern};

#[test]
fn empty_reads_and_writes_return_at_once() {
    bounded(Duration::from_secs(20), || {
        smol::block_on(async {
            let (mut a, _b) = pair().await;
            let r = smol::future::or(async { Some(a.read(&mut []).await) }, async {
                async_io::Timer::after(Duration::from_secs(2)).await;
                None
            })
            .await;
            assert_eq!(r.expect("read into an empty buffer waited").unwrap(), 0);
            let w = smol::future::or(async { Some(a.write(&[]).await) }, async {
                async_io::Timer::after(Duration::from_secs(2)).await;
                None
            })
            .await;
            assert_eq!(w.expect("empty write waited").unwrap(), 0);
        });
    });
}

/// `&TcpStream` implements both traits: one stream read and written at once through
/// shared references, from two tasks of a multi-threaded executor.
#[test]
fn shared_reference_io_on_a_multithreaded_executor() {
    bounded(Duration::from_secs(60), || {
        let ex = Arc::new(async_executor::Executor::new());
        let (stop_tx, stop_rx) = async_channel_pair();
        let mut threads = Vec::new();
        for _ in 0..2 {
            let ex = ex.clone();
            let stop_rx = stop_rx.clone();
            threads.push(std::thread::spawn(move || {
                smol::block_on(ex.run(async move {
                    let _ = stop_rx.recv().await;
                }))
            }));
        }
        let out = smol::block_on(ex.run(async {
            let (a, b) = pair().await;
            let (a, b) = (Arc::new(a), Arc::new(b));
            let payload = pattern(4 << 20, 8);
            // Echo on b through &TcpStream, read and write halves in separate tasks.
            let b2 = b.clone();
            let echo = ex.spawn(async move {
                let mut r: &TcpStream = &b2;
                let mut w: &TcpStream = &b2;
                let n = futures::io::copy(&mut r, &mut w).await.unwrap();
                w.close().await.unwrap();
                n
            });
            let a2 = a.clone();
            let p2 = payload.clone();
            let writer = ex.spawn(async move {
                let mut w: &TcpStream = &a2;
                w.write_all(&p2).await.unwrap();
                w.close().await.unwrap();
            });
            let mut r: &TcpStream = &a;
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.unwrap();
            writer.await;
            (got == payload, echo.await as usize == payload.len())
        }));
        for _ in 0..2 {
            stop_tx.send(()).unwrap();
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(out, (true, true));
    });
}

/// A tiny multi-consumer stop signal.
fn async_channel_pair() -> (std::sync::mpsc::Sender<()>, Arc<StopRx>) {
    let (tx, rx) = std::sync::mpsc::channel();
    (tx, Arc::new(StopRx(std::sync::Mutex::new(rx))))
}

struct StopRx(std::sync::Mutex<std::sync::mpsc::Receiver<()>>);

impl StopRx {
    async fn recv(&self) -> Option<()> {
        loop {
            if let Ok(rx) = self.0.try_lock() {
                if rx.try_recv().is_ok() {
                    return Some(());
                }
            }
            async_io::Timer::after(Duration::from_millis(5)).await;
        }
    }
}

#[test]
fn write_after_close_is_an_error_and_reads_work() {
    bounded(Duration::from_secs(20), || {
        smol::block_on(async {
            let (mut a, mut b) = pair().await;
            a.close().await.unwrap();
            let mut buf = [0u8; 4];
            assert_eq!(b.read(&mut buf).await.unwrap(), 0);
            let e = a.write_all(b"late").await.unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e:?}");
            b.write_all(b"back").await.unwrap();
            a.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"back");
            a.close().await.unwrap();
        });
    });
}

/// Timeouts with async-io's timer → Aborted, no byte lost; dropped send futures keep
/// order; the UDP API.
#[test]
fn timeouts_dropped_sends_and_udp() {
    bounded(Duration::from_secs(60), || {
        smol::block_on(async {
            let (a, mut b) = pair().await;
            let e = b
                .receive_timeout(Vec::with_capacity(4), Duration::from_millis(20))
                .await
                .unwrap_err();
            assert!(matches!(e, Error::Aborted));
            a.send(&b"data"[..]).await.unwrap();
            let (n, buf) = b.receive(Vec::with_capacity(4)).await.unwrap();
            assert_eq!(&buf[..n], b"data");

            let big = pattern(8 << 20, 3);
            {
                let mut f = Box::pin(a.send(big.clone()));
                let w = std::task::Waker::noop();
                let mut cx = std::task::Context::from_waker(w);
                assert!(f.as_mut().poll(&mut cx).is_pending());
            }
            let mut got = vec![0; big.len() + 5];
            let (sent, read) = futures::join!(a.send(&b"after"[..]), b.read_exact(&mut got));
            assert_eq!(sent.unwrap(), 5);
            read.unwrap();
            assert!(got[..big.len()] == big[..]);
            assert_eq!(&got[big.len()..], b"after");

            let u1 = UdpSocket::bind(loopback()).await.unwrap();
            let u2 = UdpSocket::bind(loopback()).await.unwrap();
            assert_eq!(
                u1.send(&b"x"[..]).await.unwrap_err().error_code(),
                Some(libc::EDESTADDRREQ)
            );
            assert_eq!(
                u1.send_to(Vec::new(), u2.local_addr().unwrap())
                    .await
                    .unwrap(),
                0
            );
            let (n, _b, from) = u2.receive_from(Vec::with_capacity(8)).await.unwrap();
            assert_eq!((n, from), (0, u1.local_addr().unwrap()));
            let t = u2
                .receive_from_timeout(Vec::with_capacity(8), Duration::from_millis(10))
                .await;
            assert!(matches!(t, Err(Error::Aborted)));
        });
    });
}

/// Reset and close through the io traits: ConnectionReset, then NotConnected.
#[test]
fn reset_and_close_through_io() {
    bounded(Duration::from_secs(20), || {
        smol::block_on(async {
            let l = TcpListener::bind(loopback()).await.unwrap();
            let std = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (mut s, _) = l.accept().await.unwrap();
            let sock = Socket::try_from(std).unwrap();
            sock.as_socket2().set_linger(Some(Duration::ZERO)).unwrap();
            drop(sock);
            let mut buf = [0u8; 4];
            let e = s.read(&mut buf).await.unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
            s.socket().close();
            let e = s.read(&mut buf).await.unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::NotConnected, "{e:?}");
            let _ = SocketFlags::NONE;
        });
    });
}

/// An executor dropped with a task waiting on a receive: the socket still works from
/// another executor, and the engine keeps serving blocking users.
#[test]
fn dropped_executor_with_waiting_task() {
    bounded(Duration::from_secs(30), || {
        let ex = async_executor::Executor::new();
        let (a, b) = smol::block_on(pair());
        let b_sock = b.socket().clone();
        let t = ex.spawn(async move {
            let _ = b.receive(Vec::with_capacity(4)).await;
        });
        // Run it until it waits.
        smol::block_on(ex.run(async {
            for _ in 0..10 {
                smol::future::yield_now().await;
            }
        }));
        drop(t);
        drop(ex);
        smol::block_on(async {
            a.send(&b"ok"[..]).await.unwrap();
            let b = TcpStream::from(b_sock);
            let (n, buf) = b.receive(Vec::with_capacity(4)).await.unwrap();
            assert_eq!(&buf[..n], b"ok");
        });
    });
}
