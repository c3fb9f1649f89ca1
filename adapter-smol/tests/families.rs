//! The operation families at their edges, through the smol adapter's futures: connect
//! and bind failures, accept (queued clients, IPv6, close, descriptor exhaustion), UDP
//! (senders, truncation, empty datagrams, connected sockets and ICMP errors, sizes).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use asyncresult_smol::{Error, TcpListener, TcpStream, UdpSocket};
use futures::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::pattern;

fn v4() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn v6() -> SocketAddr {
    "[::1]:0".parse().unwrap()
}

fn errno<T>(r: Result<T, Error>) -> Option<i32> {
    match r {
        Ok(_) => None,
        Err(e) => e.error_code(),
    }
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

/// Runs a test body under `smol::block_on` with a hard time limit.
fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    smol::block_on(async {
        timeout(Duration::from_secs(30), f)
            .await
            .expect("test hung")
    })
}

#[test]
fn connect_refused_and_bind_in_use_come_back_as_errors() {
    bounded(async {
        for any in [v4(), v6()] {
            if common::no_ipv6_for(any) {
                continue;
            }
            let dead = common::refusing_port(any);
            assert_eq!(
                errno(within(TcpStream::connect(dead)).await),
                Some(libc::ECONNREFUSED)
            );
            let r = within(TcpStream::connect_timeout(dead, Duration::from_secs(5))).await;
            assert_eq!(errno(r), Some(libc::ECONNREFUSED));
            let l = TcpListener::bind(any).await.unwrap();
            assert_eq!(
                errno(TcpListener::bind(l.local_addr().unwrap()).await),
                Some(libc::EADDRINUSE)
            );
            let u = UdpSocket::bind(any).await.unwrap();
            assert_eq!(
                errno(UdpSocket::bind(u.local_addr().unwrap()).await),
                Some(libc::EADDRINUSE)
            );
        }
    });
}

#[test]
fn clients_queued_before_accept_are_all_accepted_v4_and_v6() {
    bounded(async {
        for any in [v4(), v6()] {
            if common::no_ipv6_for(any) {
                continue;
            }
            let listener = TcpListener::bind(any).await.unwrap();
            let at = listener.local_addr().unwrap();
            let mut clients: Vec<std::net::TcpStream> = (0..40)
                .map(|_| std::net::TcpStream::connect(at).unwrap())
                .collect();
            let mut accepted = Vec::new();
            for _ in 0..clients.len() {
                let (s, peer) = within(listener.accept()).await.unwrap();
                assert_eq!(s.peer_addr().unwrap(), peer);
                accepted.push((s, peer));
            }
            for (i, c) in clients.iter_mut().enumerate() {
                let me = c.local_addr().unwrap();
                let (s, _) = accepted.iter_mut().find(|(_, p)| *p == me).unwrap();
                std::io::Write::write_all(c, &[i as u8; 4]).unwrap();
                let mut got = [0u8; 4];
                within(s.read_exact(&mut got)).await.unwrap();
                assert_eq!(got, [i as u8; 4]);
                within(s.write_all(b"ok")).await.unwrap();
                within(s.flush()).await.unwrap();
                let mut back = [0u8; 2];
                std::io::Read::read_exact(c, &mut back).unwrap();
                assert_eq!(&back, b"ok");
            }
        }
    });
}

#[test]
fn a_pending_accept_resolves_disposed_when_the_listener_closes() {
    if common::no_ipv6() {
        return;
    }
    bounded(async {
        let ex = Arc::new(async_executor::Executor::new());
        ex.run(async {
            let listener = Arc::new(TcpListener::bind(v6()).await.unwrap());
            let l = listener.clone();
            let pending = ex.spawn(async move { l.accept().await.map(|(_, p)| p) });
            futures::future::poll_fn(|cx| {
                // One turn for the spawned accept to take its place.
                cx.waker().wake_by_ref();
                std::task::Poll::Ready(())
            })
            .await;
            smol::future::yield_now().await;
            listener.socket().close();
            let r = within(pending).await;
            assert!(matches!(r, Err(Error::Disposed)), "{r:?}");
        })
        .await;
    });
}

#[test]
fn udp_senders_truncation_and_zero_capacity() {
    bounded(async {
        for any in [v4(), v6()] {
            if common::no_ipv6_for(any) {
                continue;
            }
            let a = UdpSocket::bind(any).await.unwrap();
            let b = UdpSocket::bind(any).await.unwrap();
            let to = b.local_addr().unwrap();
            let d = pattern(1000, 5);
            for _ in 0..5 {
                assert_eq!(a.send_to(d.clone(), to).await.unwrap(), 1000);
            }
            let (n, buf, from) = within(b.receive_from(Vec::with_capacity(10)))
                .await
                .unwrap();
            assert_eq!((n, from), (1000, a.local_addr().unwrap()));
            assert!(buf.len() < n);
            assert_eq!(&buf[..], &d[..buf.len()]);
            let (n, buf) = within(b.receive(Vec::with_capacity(10))).await.unwrap();
            assert!(n == 1000 && buf.len() < n);
            let (n, bx) = within(b.receive(vec![0u8; 3].into_boxed_slice()))
                .await
                .unwrap();
            assert_eq!((n, &bx[..]), (1000, &d[..3]));
            let (n, buf) = within(b.receive(Vec::new())).await.unwrap();
            assert_eq!((n, buf.len()), (0, 0));
            let (n, buf, from) = within(b.receive_from(Vec::new())).await.unwrap();
            assert_eq!((n, buf.len(), from), (1000, 0, a.local_addr().unwrap()));
            let (n, buf, _) = within(b.receive_from(Vec::with_capacity(2000)))
                .await
                .unwrap();
            assert_eq!((n, &buf[..]), (1000, &d[..]));
            let probe = timeout(Duration::from_millis(50), b.receive(Vec::new())).await;
            assert!(probe.is_none(), "a probe completed with nothing queued");
        }
    });
}

#[test]
fn zero_length_datagrams_are_datagrams() {
    bounded(async {
        let a = UdpSocket::bind(v4()).await.unwrap();
        let b = UdpSocket::bind(v4()).await.unwrap();
        let to = b.local_addr().unwrap();
        let pending = b.receive_from(Vec::with_capacity(8));
        let send = async {
            smol::future::yield_now().await;
            a.send_to(Vec::new(), to).await.unwrap()
        };
        let (r, sent) = futures::future::join(within(pending), send).await;
        assert_eq!(sent, 0);
        let (n, buf, from) = r.unwrap();
        assert_eq!((n, buf.len(), from), (0, 0, a.local_addr().unwrap()));
        a.send_to(Vec::new(), to).await.unwrap();
        a.send_to(b"x".to_vec(), to).await.unwrap();
        let (n, _) = within(b.receive(Vec::with_capacity(8))).await.unwrap();
        assert_eq!(n, 0);
        let (n, buf) = within(b.receive(Vec::with_capacity(8))).await.unwrap();
        assert_eq!(&buf[..n], b"x");
    });
}

#[test]
fn connected_udp_refusal_reaches_a_pending_receive_and_the_socket_stays_usable() {
    bounded(async {
        for any in [v4(), v6()] {
            if common::no_ipv6_for(any) {
                continue;
            }
            let dead = common::refusing_port(any);
            let a = UdpSocket::bind(any).await.unwrap();
            within(a.connect(dead)).await.unwrap();
            let r = a.receive(Vec::with_capacity(8));
            let send = async {
                smol::future::yield_now().await;
                a.send(b"ping".to_vec()).await.unwrap()
            };
            let (r, sent) = futures::future::join(within(r), send).await;
            assert_eq!(sent, 4);
            assert_eq!(errno(r), Some(libc::ECONNREFUSED));
            a.send(b"ping".to_vec()).await.unwrap();
            let next = within(a.receive(Vec::with_capacity(8))).await;
            assert_eq!(errno(next), Some(libc::ECONNREFUSED));
            let b = UdpSocket::bind(dead).await.unwrap();
            assert_eq!(a.send(b"alive".to_vec()).await.unwrap(), 5);
            let (n, buf, from) = within(b.receive_from(Vec::with_capacity(8))).await.unwrap();
            assert_eq!((&buf[..n], from), (&b"alive"[..], a.local_addr().unwrap()));
            b.send_to(b"back".to_vec(), a.local_addr().unwrap())
                .await
                .unwrap();
            let (n, buf) = within(a.receive(Vec::with_capacity(8))).await.unwrap();
            assert_eq!(&buf[..n], b"back");
        }
    });
}

#[test]
fn udp_sizes_families_and_unconnected_sends() {
    bounded(async {
        for (any, max) in [(v4(), 65_507usize), (v6(), 65_527)] {
            if common::no_ipv6_for(any) {
                continue;
            }
            let a = UdpSocket::bind(any).await.unwrap();
            let b = UdpSocket::bind(any).await.unwrap();
            b.socket()
                .as_socket2()
                .set_recv_buffer_size(1 << 20)
                .unwrap();
            let to = b.local_addr().unwrap();
            assert_eq!(errno(a.send(b"x".to_vec()).await), Some(libc::EDESTADDRREQ));
            let d = pattern(max, 1);
            assert_eq!(a.send_to(d.clone(), to).await.unwrap(), max);
            let (n, buf, _) = within(b.receive_from(Vec::with_capacity(max)))
                .await
                .unwrap();
            assert!(n == max && buf == d);
            assert_eq!(
                errno(a.send_to(vec![0u8; max + 1], to).await),
                Some(libc::EMSGSIZE)
            );
            within(a.connect(to)).await.unwrap();
            assert_eq!(
                errno(a.send(vec![0u8; max + 1]).await),
                Some(libc::EMSGSIZE)
            );
            assert_eq!(a.send(b"fine".to_vec()).await.unwrap(), 4);
            let (n, buf) = within(b.receive(Vec::with_capacity(8))).await.unwrap();
            assert_eq!(&buf[..n], b"fine");
        }
        let u4 = UdpSocket::bind(v4()).await.unwrap();
        let code = errno(u4.send_to(b"x".to_vec(), "[::1]:9".parse().unwrap()).await);
        assert!(
            [libc::EAFNOSUPPORT, libc::EINVAL].map(Some).contains(&code),
            "{code:?}"
        );
        let code = errno(u4.connect("[::1]:9".parse().unwrap()).await);
        assert!(
            [libc::EAFNOSUPPORT, libc::EINVAL].map(Some).contains(&code),
            "{code:?}"
        );
        let me = u4.local_addr().unwrap();
        u4.send_to(b"self".to_vec(), me).await.unwrap();
        let (n, buf, _) = within(u4.receive_from(Vec::with_capacity(8)))
            .await
            .unwrap();
        assert_eq!(&buf[..n], b"self");
    });
}

#[test]
fn many_concurrent_receive_futures_lose_no_datagram() {
    bounded(async {
        let a = UdpSocket::bind(v4()).await.unwrap();
        let b = Arc::new(UdpSocket::bind(v4()).await.unwrap());
        let to = b.local_addr().unwrap();
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let b = b.clone();
                smol::spawn(async move {
                    let (n, buf, _) = b.receive_from(Vec::with_capacity(8)).await.unwrap();
                    u32::from_le_bytes(buf[..n].try_into().unwrap())
                })
            })
            .collect();
        for i in 0..100u32 {
            a.send_to(i.to_le_bytes().to_vec(), to).await.unwrap();
        }
        let mut got = Vec::new();
        for t in tasks {
            got.push(within(t).await);
        }
        got.sort();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
    });
}

// ---- descriptors run out ---------------------------------------------------------

fn set_nofile(soft: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid rlimit out-pointer.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    let old = lim.rlim_cur;
    lim.rlim_cur = soft;
    // SAFETY: a valid rlimit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    old
}

fn highest_fd() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap()
}

fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[test]
fn accept_out_of_descriptors_reports_emfile_and_recovers() {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_accept_out_of_descriptors",
            "--ignored",
            "--test-threads=1",
            "--nocapture",
        ])
        .env("ASYNCRESULT_CHILD", "1")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "child: {status:?}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "runs in a child process"]
fn child_accept_out_of_descriptors() {
    if std::env::var_os("ASYNCRESULT_CHILD").is_none() {
        return;
    }
    bounded(async {
        use asyncresult_smol::{Domain, Socket, Type};
        let listener = TcpListener::bind(v4()).await.unwrap();
        let at = listener.local_addr().unwrap();
        // Warm async-io's reactor and timer before the limit drops.
        async_io::Timer::after(Duration::from_millis(1)).await;
        let s1 = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let s2 = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let pending = listener.accept();
        let connect = async {
            smol::future::yield_now().await;
            let old = set_nofile(highest_fd() + 1);
            let mut fillers = Vec::new();
            while let Ok(f) = std::fs::File::open("/dev/null") {
                fillers.push(f);
            }
            s1.connect(at).unwrap();
            (old, fillers)
        };
        let (r, (old, fillers)) = futures::future::join(within(pending), connect).await;
        assert_eq!(errno(r), Some(libc::EMFILE));
        assert_eq!(errno(within(listener.accept()).await), Some(libc::EMFILE));
        let r = listener.accept_timeout(Duration::from_secs(5)).await;
        assert_eq!(errno(r), Some(libc::EMFILE));
        let cpu0 = process_cpu();
        let t0 = Instant::now();
        async_io::Timer::after(Duration::from_millis(300)).await;
        let (spent, elapsed) = (process_cpu() - cpu0, t0.elapsed());
        assert!(spent < elapsed / 4, "spent {spent:?} in {elapsed:?}");
        drop(fillers);
        set_nofile(old);
        let (_, peer) = within(listener.accept()).await.unwrap();
        assert_eq!(peer, s1.local_addr().unwrap());
        s2.connect(at).unwrap();
        let (_, peer) = within(listener.accept()).await.unwrap();
        assert_eq!(peer, s2.local_addr().unwrap());
    });
}
