//! Addresses and address families through the tokio adapter: dual-stack sockets and
//! the v4-mapped addresses their futures report, addresses of the wrong family (the
//! future resolves to the OS error, the socket stays usable), roles a socket cannot
//! play, and cancel safety of `receive_from` under timeouts, `select!` and drops (no
//! datagram lost or doubled, order kept).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV6};
use std::sync::mpsc;
use std::time::Duration;

use asyncresult_tokio::{
    Domain, Error, Socket, SocketFlags, TcpListener, TcpStream, Type, UdpSocket,
};

fn v4() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn v6() -> SocketAddr {
    "[::1]:0".parse().unwrap()
}

fn mapped(port: u16) -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(
        Ipv4Addr::LOCALHOST.to_ipv6_mapped(),
        port,
        0,
        0,
    ))
}

fn errno<T>(r: Result<T, Error>) -> Option<i32> {
    match r {
        Ok(_) => None,
        Err(e) => e.error_code(),
    }
}

fn dual_stack(ty: Type) -> Socket {
    let s = Socket::new(Domain::IPV6, ty, None).unwrap();
    s.as_socket2().set_only_v6(false).unwrap();
    s
}

/// Runs `body` on a runtime of its own, on a thread of its own, failing if it does not
/// finish within `limit` (a hang inside a blocking call fails too).
fn bounded<F>(limit: Duration, multi: bool, body: impl FnOnce() -> F + Send + 'static)
where
    F: std::future::Future<Output = ()>,
{
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
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
        rt.block_on(body());
        let _ = tx.send(());
    });
    match rx.recv_timeout(limit) {
        Ok(()) => t.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(p) = t.join() {
                std::panic::resume_unwind(p)
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test hung ({limit:?})"),
    }
}

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(5), f)
        .await
        .expect("operation hung")
}

#[test]
fn dual_stack_listener_and_udp_report_v4_mapped_addresses() {
    for multi in [false, true] {
        bounded(Duration::from_secs(20), multi, || async {
            let l = dual_stack(Type::STREAM);
            l.bind(mapped(0)).unwrap();
            l.listen(8).unwrap();
            let l = TcpListener::from(l);
            let port = l.local_addr().unwrap().port();
            let (c, accepted) = tokio::join!(
                TcpStream::connect((Ipv4Addr::LOCALHOST, port).into()),
                within(l.accept())
            );
            let c = c.unwrap();
            let (s, peer) = accepted.unwrap();
            let want = mapped(c.local_addr().unwrap().port());
            assert_eq!((peer, s.peer_addr().unwrap()), (want, want));
            assert_eq!(s.local_addr().unwrap(), mapped(port));

            let d = dual_stack(Type::DGRAM);
            d.bind(mapped(0)).unwrap();
            let d = UdpSocket::from(d);
            let u4 = UdpSocket::bind(v4()).await.unwrap();
            let to: SocketAddr = (Ipv4Addr::LOCALHOST, d.local_addr().unwrap().port()).into();
            u4.send_to(b"four".to_vec(), to).await.unwrap();
            let (n, buf, from) = within(d.receive_from(Vec::with_capacity(8))).await.unwrap();
            assert_eq!(
                (&buf[..n], from),
                (&b"four"[..], mapped(u4.local_addr().unwrap().port()))
            );
            d.send_to(b"back".to_vec(), from).await.unwrap();
            let (n, buf, from4) = within(u4.receive_from(Vec::with_capacity(8)))
                .await
                .unwrap();
            assert_eq!((&buf[..n], from4), (&b"back"[..], to));
            d.send_to(b"plain".to_vec(), u4.local_addr().unwrap())
                .await
                .unwrap();
            let (n, buf, _) = within(u4.receive_from(Vec::with_capacity(8)))
                .await
                .unwrap();
            assert_eq!(&buf[..n], b"plain");
            within(d.connect(from)).await.unwrap();
            assert_eq!(d.peer_addr().unwrap(), from);
            d.send(b"conn".to_vec()).await.unwrap();
            let (n, buf, _) = within(u4.receive_from(Vec::with_capacity(8)))
                .await
                .unwrap();
            assert_eq!(&buf[..n], b"conn");
        });
    }
}

#[test]
fn wrong_families_and_impossible_roles_resolve_to_errors() {
    bounded(Duration::from_secs(20), false, || async {
        // A v4 address given to IPv6 TCP: EINVAL from the kernel, through the future.
        let l4 = TcpListener::bind(v4()).await.unwrap();
        let c6 = dual_stack(Type::STREAM);
        let code = errno(
            within(
                asyncresult_core::future::connect::<asyncresult_tokio::Tokio>(
                    &c6,
                    l4.local_addr().unwrap(),
                ),
            )
            .await,
        );
        assert!(
            [libc::EINVAL, libc::EAFNOSUPPORT].map(Some).contains(&code),
            "{code:?}"
        );
        // TcpStream::connect to a v4-mapped address opens an IPv6 socket and works.
        let port = l4.local_addr().unwrap().port();
        let (c, a) = tokio::join!(TcpStream::connect(mapped(port)), within(l4.accept()));
        let c = c.unwrap();
        let (_s, peer) = a.unwrap();
        assert_eq!(peer.port(), c.local_addr().unwrap().port());
        assert_eq!(c.peer_addr().unwrap(), mapped(port));

        // send_to / connect of the wrong family on UDP, both ways; then usable.
        let u4 = UdpSocket::bind(v4()).await.unwrap();
        if common::ipv6_loopback() {
            let u6 = UdpSocket::bind(v6()).await.unwrap();
            assert_eq!(
                errno(u4.send_to(b"x".to_vec(), u6.local_addr().unwrap()).await),
                Some(libc::EAFNOSUPPORT)
            );
            assert_eq!(
                errno(within(u4.connect(u6.local_addr().unwrap())).await),
                Some(libc::EAFNOSUPPORT)
            );
            assert_eq!(errno(u4.peer_addr()), Some(libc::ENOTCONN));
            let code = errno(u6.send_to(b"x".to_vec(), u4.local_addr().unwrap()).await);
            common::assert_v6_to_v4_send_failed(code, "send_to");
        } else {
            eprintln!("skipped: no IPv6 loopback (the IPv6 UDP socket)");
        }
        u4.send_to(b"ok".to_vec(), u4.local_addr().unwrap())
            .await
            .unwrap();
        let (n, _, from) = within(u4.receive_from(Vec::with_capacity(4)))
            .await
            .unwrap();
        assert_eq!((n, from), (2, u4.local_addr().unwrap()));

        // Bind in use / wrong family come back as errors.
        assert_eq!(
            errno(UdpSocket::bind(u4.local_addr().unwrap()).await),
            Some(libc::EADDRINUSE)
        );

        // A listener made of a UDP socket, or of an unlistening TCP one: accept fails.
        let bad = TcpListener::from(Socket::bind_udp(v4()).unwrap());
        assert_eq!(errno(within(bad.accept()).await), Some(libc::EOPNOTSUPP));
        assert_eq!(
            errno(within(bad.accept_timeout(Duration::from_secs(1))).await),
            Some(libc::EOPNOTSUPP)
        );
        let idle = TcpListener::from(Socket::new(Domain::IPV4, Type::STREAM, None).unwrap());
        assert_eq!(errno(within(idle.accept()).await), Some(libc::EINVAL));
        // A stream made of a listener: receive says ENOTCONN; send fails.
        let l = TcpListener::bind(v4()).await.unwrap();
        let as_stream = TcpStream::from(l.into_inner());
        assert_eq!(
            errno(within(as_stream.receive(Vec::with_capacity(4))).await),
            Some(libc::ENOTCONN)
        );
        assert!(errno(as_stream.send(b"x".to_vec()).await).is_some());
        assert_eq!(errno(as_stream.peer_addr()), Some(libc::ENOTCONN));
        // After close: addresses are Disposed.
        as_stream.socket().close();
        assert!(matches!(as_stream.local_addr(), Err(Error::Disposed)));
        assert!(matches!(as_stream.peer_addr(), Err(Error::Disposed)));
    });
}

/// receive_from under tight tokio::time::timeout and receive_from_timeout, while a
/// sender thread sends numbered datagrams: every datagram is received exactly once,
/// in order (the timeouts that fire lose nothing).
#[test]
fn receive_from_timeouts_lose_and_double_no_datagram() {
    for multi in [false, true] {
        for use_own_timeout in [false, true] {
            bounded(Duration::from_secs(60), multi, move || async move {
                const N: u32 = 2000;
                let b = UdpSocket::bind(v4()).await.unwrap();
                b.socket()
                    .as_socket2()
                    .set_recv_buffer_size(4 << 20)
                    .unwrap();
                let to = b.local_addr().unwrap();
                let sender = std::thread::spawn(move || {
                    let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                    for i in 0..N {
                        a.send_to(&i.to_le_bytes(), to).unwrap();
                        // Pauses around the timer's 1 ms tick, so that timeouts fire
                        // often, some as a datagram arrives.
                        let pause = Duration::from_micros(u64::from(i % 7) * 250);
                        let until = std::time::Instant::now() + pause;
                        while std::time::Instant::now() < until {
                            std::hint::spin_loop();
                        }
                    }
                });
                let mut next = 0u32;
                let mut timeouts = 0u32;
                let deadline = std::time::Instant::now() + Duration::from_secs(40);
                while next < N {
                    assert!(std::time::Instant::now() < deadline, "stuck at {next}");
                    let got = if use_own_timeout {
                        b.receive_from_timeout(Vec::with_capacity(8), Duration::from_micros(50))
                            .await
                    } else {
                        match tokio::time::timeout(
                            Duration::from_micros(50),
                            b.receive_from(Vec::with_capacity(8)),
                        )
                        .await
                        {
                            Ok(r) => r,
                            Err(_) => Err(Error::Aborted),
                        }
                    };
                    match got {
                        Ok((n, buf, _)) => {
                            assert_eq!(n, 4);
                            let i = u32::from_le_bytes(buf[..4].try_into().unwrap());
                            assert_eq!(i, next, "lost or reordered");
                            next += 1;
                        }
                        Err(Error::Aborted) => timeouts += 1,
                        Err(e) => panic!("{e:?}"),
                    }
                }
                sender.join().unwrap();
                // Nothing left over (nothing doubled).
                let extra = tokio::time::timeout(
                    Duration::from_millis(50),
                    b.receive_from(Vec::with_capacity(8)),
                )
                .await;
                assert!(extra.is_err(), "a datagram too many: {extra:?}");
                eprintln!("multi={multi} own={use_own_timeout}: {timeouts} timeouts");
            });
        }
    }
}

/// A receive_from future woken for a datagram (its place reached) and then dropped
/// without being polled again: the datagram stays, and an operation begun behind it
/// (a callback-style receive) gets it.
#[test]
fn a_woken_receive_from_future_dropped_unpolled_hands_its_datagram_on() {
    if common::no_ipv6() {
        return;
    }
    bounded(Duration::from_secs(20), false, || async {
        let a = UdpSocket::bind(v6()).await.unwrap();
        let b = UdpSocket::bind(v6()).await.unwrap();
        let mut fut = Box::pin(b.receive_from(Vec::with_capacity(8)));
        // First poll: pending, place taken.
        assert!(futures_poll_once(fut.as_mut()).await.is_none());
        let behind = b
            .socket()
            .begin_receive_from(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        a.send_to(b"woken".to_vec(), b.local_addr().unwrap())
            .await
            .unwrap();
        // The begun receive waits behind the future's place.
        assert!(!behind.wait_timeout(Duration::from_millis(200)));
        drop(fut);
        assert!(
            behind.wait_timeout(Duration::from_secs(5)),
            "datagram stuck"
        );
        let (n, buf, from) = b.socket().end_receive_from(&behind).unwrap();
        assert_eq!((&buf[..n], from), (&b"woken"[..], a.local_addr().unwrap()));
    });
}

async fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
    let mut f = f;
    std::future::poll_fn(move |cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

/// select! between receive_from on two sockets (v4 and v6) in a loop: the loser is
/// dropped each round; all datagrams on both arrive once.
#[test]
fn select_between_two_receive_froms_loses_nothing() {
    if common::no_ipv6() {
        return;
    }
    bounded(Duration::from_secs(30), true, || async {
        const N: u32 = 1000;
        let b4 = UdpSocket::bind(v4()).await.unwrap();
        let b6 = UdpSocket::bind(v6()).await.unwrap();
        for b in [&b4, &b6] {
            // Room for every datagram: a kernel drop must not pass for a lost one.
            b.socket()
                .as_socket2()
                .set_recv_buffer_size(4 << 20)
                .unwrap();
        }
        let (to4, to6) = (b4.local_addr().unwrap(), b6.local_addr().unwrap());
        // The sender keeps at most a window ahead of what arrived: where `rmem_max`
        // caps the buffers (the stock 208 KiB), a loaded machine's burst overflows them.
        let arrived = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let arrived2 = arrived.clone();
        let sender = std::thread::spawn(move || {
            let a4 = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let a6 = std::net::UdpSocket::bind("[::1]:0").unwrap();
            for i in 0..N {
                while 2 * i - arrived2.load(std::sync::atomic::Ordering::SeqCst) >= 128 {
                    std::thread::yield_now();
                }
                a4.send_to(&i.to_le_bytes(), to4).unwrap();
                a6.send_to(&(i + N).to_le_bytes(), to6).unwrap();
            }
        });
        let (mut next4, mut next6) = (0u32, N);
        while next4 < N || next6 < 2 * N {
            let got = within(async {
                tokio::select! {
                    r = b4.receive_from(Vec::with_capacity(8)) => r,
                    r = b6.receive_from(Vec::with_capacity(8)) => r,
                }
            })
            .await
            .unwrap();
            let i = u32::from_le_bytes(got.1[..4].try_into().unwrap());
            if i < N {
                assert_eq!(i, next4);
                assert!(got.2.is_ipv4());
                next4 += 1;
            } else {
                assert_eq!(i, next6);
                assert!(got.2.is_ipv6());
                next6 += 1;
            }
            arrived.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        sender.join().unwrap();
    });
}

/// A receive_from future pending on a UDP socket whose read side is then shut down
/// resolves (to 0 from the peer), as `Socket::shutdown` promises; a new one too.
#[test]
fn shutdown_read_resolves_pending_udp_receive_futures() {
    if common::no_ipv6() {
        return;
    }
    bounded(Duration::from_secs(20), true, || async {
        let a = std::sync::Arc::new(UdpSocket::bind(v6()).await.unwrap());
        let b = UdpSocket::bind(v6()).await.unwrap();
        within(a.connect(b.local_addr().unwrap())).await.unwrap();
        let waiting = {
            let a = a.clone();
            tokio::spawn(async move { a.receive_from(Vec::with_capacity(8)).await })
        };
        tokio::task::yield_now().await;
        a.socket().shutdown(std::net::Shutdown::Read).unwrap();
        let (n, _, from) = within(waiting).await.unwrap().unwrap();
        assert_eq!((n, from), (0, b.local_addr().unwrap()));
        let (n, _) = within(a.receive(Vec::with_capacity(8))).await.unwrap();
        assert_eq!(n, 0);
    });
}
