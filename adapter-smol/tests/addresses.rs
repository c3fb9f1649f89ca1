//! Addresses and address families through the smol adapter: dual-stack sockets and
//! the v4-mapped addresses their futures report, addresses of the wrong family and
//! roles a socket cannot play (the future resolves to the OS error), and cancel safety
//! of `receive_from` under timeouts and drops (no datagram lost or doubled).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV6};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use asyncresult_smol::{Domain, Error, Socket, TcpListener, TcpStream, Type, UdpSocket};

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

/// `f`, or `None` after `limit`.
async fn timeout<T>(limit: Duration, f: impl std::future::Future<Output = T>) -> Option<T> {
    let timer = async_io::Timer::after(limit);
    match futures::future::select(Box::pin(f), Box::pin(timer)).await {
        futures::future::Either::Left((v, _)) => Some(v),
        futures::future::Either::Right(_) => None,
    }
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    timeout(Duration::from_secs(5), f)
        .await
        .expect("operation hung")
}

/// Runs `body` under `smol::block_on` on a thread of its own; fails after `limit`.
fn bounded<F>(limit: Duration, body: impl FnOnce() -> F + Send + 'static)
where
    F: std::future::Future<Output = ()>,
{
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        smol::block_on(body());
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

#[test]
fn dual_stack_listener_and_udp_report_v4_mapped_addresses() {
    bounded(Duration::from_secs(20), || async {
        let l = dual_stack(Type::STREAM);
        l.bind(mapped(0)).unwrap();
        l.listen(8).unwrap();
        let l = TcpListener::from(l);
        let port = l.local_addr().unwrap().port();
        let (c, accepted) = futures::join!(
            TcpStream::connect((Ipv4Addr::LOCALHOST, port).into()),
            within(l.accept())
        );
        let c = c.unwrap();
        let (s, peer) = accepted.unwrap();
        let want = mapped(c.local_addr().unwrap().port());
        assert_eq!((peer, s.peer_addr().unwrap()), (want, want));

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
    });
}

#[test]
fn wrong_families_and_impossible_roles_resolve_to_errors() {
    bounded(Duration::from_secs(20), || async {
        let u4 = UdpSocket::bind(v4()).await.unwrap();
        let has_v6 = common::ipv6_loopback();
        if has_v6 {
            let u6 = UdpSocket::bind(v6()).await.unwrap();
            assert_eq!(
                errno(u4.send_to(b"x".to_vec(), u6.local_addr().unwrap()).await),
                Some(libc::EAFNOSUPPORT)
            );
            assert_eq!(
                errno(within(u4.connect(u6.local_addr().unwrap())).await),
                Some(libc::EAFNOSUPPORT)
            );
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

        let bad = TcpListener::from(Socket::bind_udp(v4()).unwrap());
        assert_eq!(errno(within(bad.accept()).await), Some(libc::EOPNOTSUPP));
        let idle = TcpListener::from(Socket::new(Domain::IPV4, Type::STREAM, None).unwrap());
        assert_eq!(errno(within(idle.accept()).await), Some(libc::EINVAL));
        if !has_v6 {
            eprintln!("skipped: no IPv6 loopback (a stream made of an IPv6 listener)");
            return;
        }
        let l = TcpListener::bind(v6()).await.unwrap();
        let as_stream = TcpStream::from(l.into_inner());
        assert_eq!(
            errno(within(as_stream.receive(Vec::with_capacity(4))).await),
            Some(libc::ENOTCONN)
        );
        as_stream.socket().close();
        assert!(matches!(as_stream.local_addr(), Err(Error::Disposed)));
    });
}

/// receive_from under tight timeouts (the adapter's own, and a dropped future under
/// `select`), while a thread sends numbered datagrams with pauses: each one arrives
/// exactly once, in order.
#[test]
fn receive_from_timeouts_lose_and_double_no_datagram() {
    if common::no_ipv6() {
        return;
    }
    for own in [false, true] {
        bounded(Duration::from_secs(60), move || async move {
            const N: u32 = 2000;
            let b = UdpSocket::bind(v6()).await.unwrap();
            b.socket()
                .as_socket2()
                .set_recv_buffer_size(4 << 20)
                .unwrap();
            let to = b.local_addr().unwrap();
            let sender = std::thread::spawn(move || {
                let a = std::net::UdpSocket::bind("[::1]:0").unwrap();
                for i in 0..N {
                    a.send_to(&i.to_le_bytes(), to).unwrap();
                    let until = Instant::now() + Duration::from_micros(u64::from(i % 7) * 60);
                    while Instant::now() < until {
                        std::hint::spin_loop();
                    }
                }
            });
            let mut next = 0u32;
            let mut timeouts = 0u32;
            let deadline = Instant::now() + Duration::from_secs(40);
            while next < N {
                assert!(Instant::now() < deadline, "stuck at {next}");
                let got = if own {
                    b.receive_from_timeout(Vec::with_capacity(8), Duration::from_micros(100))
                        .await
                } else {
                    timeout(
                        Duration::from_micros(100),
                        b.receive_from(Vec::with_capacity(8)),
                    )
                    .await
                    .unwrap_or(Err(Error::Aborted))
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
            let extra = timeout(
                Duration::from_millis(50),
                b.receive_from(Vec::with_capacity(8)),
            )
            .await;
            assert!(extra.is_none(), "a datagram too many: {extra:?}");
            eprintln!("own={own}: {timeouts} timeouts");
        });
    }
}

/// A receive_from future pending on a UDP socket whose read side is then shut down
/// resolves (to 0 from the peer), as `Socket::shutdown` promises.
#[test]
fn shutdown_read_resolves_pending_udp_receive_futures() {
    bounded(Duration::from_secs(20), || async {
        let a = UdpSocket::bind(v4()).await.unwrap();
        let b = UdpSocket::bind(v4()).await.unwrap();
        within(a.connect(b.local_addr().unwrap())).await.unwrap();
        let shut = async {
            async_io::Timer::after(Duration::from_millis(20)).await;
            a.socket().shutdown(std::net::Shutdown::Read).unwrap();
        };
        let (got, ()) = futures::join!(within(a.receive_from(Vec::with_capacity(8))), shut);
        let (n, _, from) = got.unwrap();
        assert_eq!((n, from), (0, b.local_addr().unwrap()));
    });
}
