//! The operation families at their edges, through the callback adapter: accept
//! (queued clients, IPv6, descriptor exhaustion), connect (refusals and roles the
//! socket cannot play, all through the result), UDP (senders, truncation, empty
//! datagrams, connected sockets and ICMP errors, sizes) and the send/receive flags.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use asyncresult_callback::prelude::*;
use common::{bounded, is_child, localhost, pattern, secs, tcp_pair, tcp_to_std};

fn v6() -> SocketAddr {
    "[::1]:0".parse().unwrap()
}

fn errno<T>(r: Result<T, Error>) -> Option<i32> {
    match r {
        Ok(_) => None,
        Err(e) => e.error_code(),
    }
}

fn recv(s: &Socket, cap: usize, flags: SocketFlags) -> Result<(usize, Vec<u8>), Error> {
    let ar = s
        .begin_receive(Vec::with_capacity(cap), flags, None, None)
        .unwrap();
    assert!(ar.wait_timeout(secs(5)), "receive did not complete");
    s.end_receive(&ar)
}

fn recv_from(
    s: &Socket,
    cap: usize,
    flags: SocketFlags,
) -> Result<(usize, Vec<u8>, SocketAddr), Error> {
    let ar = s
        .begin_receive_from(Vec::with_capacity(cap), flags, None, None)
        .unwrap();
    assert!(ar.wait_timeout(secs(5)), "receive_from did not complete");
    s.end_receive_from(&ar)
}

fn send_to(s: &Socket, buf: Vec<u8>, to: SocketAddr) -> Result<usize, Error> {
    let ar = s
        .begin_send_to(buf, SocketFlags::NONE, to, None, None)
        .unwrap();
    assert!(ar.wait_timeout(secs(5)), "send_to did not complete");
    s.end_send_to(&ar)
}

fn send(s: &Socket, buf: Vec<u8>, flags: SocketFlags) -> Result<usize, Error> {
    let ar = s.begin_send(buf, flags, None, None).unwrap();
    assert!(ar.wait_timeout(secs(5)), "send did not complete");
    s.end_send(&ar)
}

// ---- accept -------------------------------------------------------------------

#[test]
fn clients_queued_before_accept_begins_are_all_accepted_v4_and_v6() {
    bounded(secs(20), || {
        for any in [localhost(), v6()] {
            if common::no_ipv6_for(any) {
                continue;
            }
            let listener = Socket::listen_tcp(any, 128).unwrap();
            let at = listener.local_addr().unwrap();
            let clients: Vec<std::net::TcpStream> = (0..50)
                .map(|_| std::net::TcpStream::connect(at).unwrap())
                .collect();
            // Half with callbacks, half with blocking ends.
            let (tx, rx) = mpsc::channel();
            let mut peers = Vec::new();
            for i in 0..clients.len() {
                if i % 2 == 0 {
                    let l = listener.clone();
                    let tx = tx.clone();
                    listener
                        .begin_accept(
                            callback(move |ar: AsyncResult<Socket>| {
                                tx.send(l.end_accept(&ar)).unwrap();
                            }),
                            None,
                        )
                        .unwrap();
                } else {
                    let ar = listener.begin_accept(None, None).unwrap();
                    assert!(ar.wait_timeout(secs(5)));
                    peers.push(listener.end_accept(&ar).unwrap());
                }
            }
            for _ in 0..clients.len() / 2 {
                peers.push(rx.recv_timeout(secs(5)).unwrap().unwrap());
            }
            let mut want: Vec<SocketAddr> =
                clients.iter().map(|c| c.local_addr().unwrap()).collect();
            let mut got: Vec<SocketAddr> = peers.iter().map(|p| p.peer_addr().unwrap()).collect();
            want.sort();
            got.sort();
            assert_eq!(want, got);
            // Each accepted socket is usable on its own at once.
            for (i, mut c) in clients.into_iter().enumerate() {
                let p = peers
                    .iter()
                    .find(|p| p.peer_addr().unwrap() == c.local_addr().unwrap())
                    .unwrap();
                c.write_all(&[i as u8]).unwrap();
                let (n, buf) = recv(p, 4, SocketFlags::NONE).unwrap();
                assert_eq!((n, buf[0]), (1, i as u8));
                assert_eq!(send(p, vec![i as u8; 3], SocketFlags::NONE).unwrap(), 3);
                let mut back = [0u8; 3];
                c.read_exact(&mut back).unwrap();
                assert_eq!(back, [i as u8; 3]);
            }
        }
    });
}

#[test]
fn accept_reports_the_peer_address_v4_and_v6() {
    bounded(secs(10), || {
        for any in [localhost(), v6()] {
            if common::no_ipv6_for(any) {
                continue;
            }
            let listener = Socket::listen_tcp(any, 8).unwrap();
            let (tx, rx) = mpsc::channel();
            let l = listener.clone();
            listener
                .begin_accept(
                    callback(move |ar: AsyncResult<Socket>| {
                        tx.send(l.end_accept(&ar)).unwrap();
                    }),
                    None,
                )
                .unwrap();
            let client = Socket::connect_tcp(listener.local_addr().unwrap()).unwrap();
            let server = rx.recv_timeout(secs(5)).unwrap().unwrap();
            assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());
            assert_eq!(server.local_addr().unwrap(), client.peer_addr().unwrap());
            assert!(server.is_stream());
        }
    });
}

#[test]
fn a_pending_accept_completes_with_disposed_when_the_listener_closes() {
    bounded(secs(10), || {
        for any in [localhost(), v6()] {
            if common::no_ipv6_for(any) {
                continue;
            }
            let listener = Socket::listen_tcp(any, 8).unwrap();
            let calls = Arc::new(AtomicUsize::new(0));
            let c = calls.clone();
            let ar = listener
                .begin_accept(
                    callback(move |_| {
                        c.fetch_add(1, Ordering::SeqCst);
                    }),
                    None,
                )
                .unwrap();
            listener.close();
            assert!(ar.wait_timeout(secs(5)));
            assert!(matches!(listener.end_accept(&ar), Err(Error::Disposed)));
            let deadline = Instant::now() + secs(5);
            while calls.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
                std::thread::yield_now();
            }
            assert_eq!(calls.load(Ordering::SeqCst), 1);
        }
    });
}

/// Sets the soft descriptor limit; returns the old one.
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

/// The highest descriptor number open now.
fn highest_fd() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap()
}

/// CPU time of this whole process.
fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn run_child_bounded(name: &str) {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            name,
            "--ignored",
            "--test-threads=1",
            "--nocapture",
        ])
        .env("ASYNCRESULT_CHILD", "1")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "child {name}: {status:?}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child {name} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn accept_out_of_descriptors_reports_emfile_and_recovers() {
    run_child_bounded("child_accept_out_of_descriptors");
}

/// With no descriptor to spare, a pending accept and a new one both get `EMFILE`
/// through the result; nothing spins; the queued connections stay in the kernel and are
/// accepted once descriptors are free again.
#[test]
#[ignore = "runs in a child process"]
fn child_accept_out_of_descriptors() {
    if !is_child() {
        return;
    }
    bounded(secs(30), || {
        let listener = Socket::listen_tcp(localhost(), 16).unwrap();
        let at = listener.local_addr().unwrap();
        // Warm the engine (its threads and descriptors exist before the limit drops).
        let (_a, _b) = tcp_pair();
        let pending = listener.begin_accept(None, None).unwrap();
        // Make the client sockets first, then leave no descriptor free.
        let c1 = socket2::Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let c2 = socket2::Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let old = set_nofile(highest_fd() + 1);
        // Fill every hole below the limit too.
        let mut fillers = Vec::new();
        while let Ok(f) = std::fs::File::open("/dev/null") {
            fillers.push(f);
        }
        c1.connect(&at.into()).unwrap();
        assert!(pending.wait_timeout(secs(5)), "the pending accept hung");
        assert_eq!(errno(listener.end_accept(&pending)), Some(libc::EMFILE));
        // A new accept meets the same, through the result.
        let again = listener.begin_accept(None, None).unwrap();
        assert!(again.wait_timeout(secs(5)), "accept at EMFILE hung");
        assert_eq!(errno(listener.end_accept(&again)), Some(libc::EMFILE));
        // Nothing spins while the connection waits in the kernel's queue: the engine
        // does not retry on its own (a measurement window, not synchronisation).
        let cpu0 = process_cpu();
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_millis(300));
        let elapsed = t0.elapsed();
        let spent = process_cpu() - cpu0;
        assert!(
            spent < elapsed / 4,
            "spent {spent:?} of CPU in {elapsed:?} at EMFILE"
        );
        // Free descriptors: the queued connection is still there.
        drop(fillers);
        set_nofile(old);
        let ar = listener.begin_accept(None, None).unwrap();
        assert!(ar.wait_timeout(secs(5)), "accept after recovery hung");
        let first = listener.end_accept(&ar).unwrap();
        assert_eq!(
            first.peer_addr().unwrap(),
            c1.local_addr().unwrap().as_socket().unwrap()
        );
        c2.connect(&at.into()).unwrap();
        let ar = listener.begin_accept(None, None).unwrap();
        assert!(ar.wait_timeout(secs(5)));
        let second = listener.end_accept(&ar).unwrap();
        assert_eq!(
            second.peer_addr().unwrap(),
            c2.local_addr().unwrap().as_socket().unwrap()
        );
    });
}

// ---- connect and roles ----------------------------------------------------------

#[test]
fn connect_refused_comes_through_the_result_v4_and_v6() {
    bounded(secs(10), || {
        for any in [localhost(), v6()] {
            if common::no_ipv6_for(any) {
                continue;
            }
            let to = common::refusing_port(any);
            let s = Socket::new(Domain::for_address(to), Type::STREAM, None).unwrap();
            let (tx, rx) = mpsc::channel();
            let c = s.clone();
            s.begin_connect(
                to,
                callback(move |ar: AsyncResult<()>| tx.send(c.end_connect(&ar)).unwrap()),
                None,
            )
            .unwrap();
            assert_eq!(
                errno(rx.recv_timeout(secs(5)).unwrap()),
                Some(libc::ECONNREFUSED)
            );
            // connect_tcp reports the same.
            assert_eq!(errno(Socket::connect_tcp(to)), Some(libc::ECONNREFUSED));
        }
    });
}

/// A receive begun while a connect is under way (the APM pattern of waiting for the
/// server's greeting) must not change what the connect reports: the kernel reports a
/// refusal once, to whichever syscall comes first. The connect always reports the
/// refusal (not `ECONNABORTED`); the receive reports it too, not a clean end of a
/// connection that never was.
#[test]
fn a_receive_begun_during_a_refused_connect_does_not_hide_the_refusal() {
    bounded(secs(20), || {
        let mut outcomes = std::collections::BTreeMap::new();
        for _ in 0..200 {
            let to = common::refusing_port(localhost());
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            let c = s.begin_connect(to, None, None).unwrap();
            let r = s
                .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
                .unwrap();
            assert!(c.wait_timeout(secs(5)), "connect hung");
            if s.peer_addr().is_ok() {
                // Connected, to itself: the kernel picked the closed port as this socket's
                // own (a TCP self-connect, about 1 in 20,000 here), so nothing refused it.
                continue;
            }
            assert!(r.wait_timeout(secs(5)), "receive hung");
            let connect = errno(s.end_connect(&c));
            let receive = s
                .end_receive(&r)
                .map(|(n, _)| n)
                .map_err(|e| e.error_code());
            *outcomes.entry((connect, receive)).or_insert(0) += 1;
        }
        // Every time: the connect reports the refusal, and so does the receive (the
        // two keep what they took under one lock while the connect is under way);
        // before, the connect said `ECONNABORTED`, or the receive 0, in 5–95% of the
        // runs, and in a window of a few instructions a few times in 200.
        assert!(
            outcomes
                .keys()
                .all(|k| *k == (Some(libc::ECONNREFUSED), Err(Some(libc::ECONNREFUSED)))),
            "outcomes (connect, receive): {outcomes:?}"
        );
    });
}

#[test]
fn connect_then_data_flows_v4_and_v6() {
    bounded(secs(10), || {
        for any in [localhost(), v6()] {
            if common::no_ipv6_for(any) {
                continue;
            }
            let l = TcpListener::bind(any).unwrap();
            let s = Socket::new(Domain::for_address(any), Type::STREAM, None).unwrap();
            let c = s
                .begin_connect(l.local_addr().unwrap(), None, None)
                .unwrap();
            // A send begun during the connect waits for it.
            let sent = s
                .begin_send(b"early", SocketFlags::NONE, None, None)
                .unwrap();
            let (mut peer, _) = l.accept().unwrap();
            assert!(c.wait_timeout(secs(5)));
            s.end_connect(&c).unwrap();
            assert!(sent.wait_timeout(secs(5)));
            assert_eq!(s.end_send(&sent).unwrap(), 5);
            let mut got = [0u8; 5];
            peer.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"early");
            peer.write_all(b"back").unwrap();
            let (n, buf) = recv(&s, 16, SocketFlags::NONE).unwrap();
            assert_eq!(&buf[..n], b"back");
            assert_eq!(s.peer_addr().unwrap(), l.local_addr().unwrap());
        }
    });
}

#[test]
fn connect_across_families_fails_through_the_result() {
    bounded(secs(10), || {
        if common::ipv6_loopback() {
            let l6 = TcpListener::bind(v6()).unwrap();
            let s4 = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            let code = errno(s4.connect(l6.local_addr().unwrap()));
            assert!(
                [libc::EAFNOSUPPORT, libc::EINVAL].map(Some).contains(&code),
                "{code:?}"
            );
        } else {
            eprintln!("skipped: no IPv6 loopback (the IPv6 listener)");
        }
        let u4 = Socket::bind_udp(localhost()).unwrap();
        let ar = u4
            .begin_connect("[::1]:9".parse().unwrap(), None, None)
            .unwrap();
        assert!(ar.wait_timeout(secs(5)));
        let code = errno(u4.end_connect(&ar));
        assert!(
            [libc::EAFNOSUPPORT, libc::EINVAL].map(Some).contains(&code),
            "{code:?}"
        );
        // Still usable after the failed connect.
        let to = u4.local_addr().unwrap();
        assert_eq!(send_to(&u4, b"ok".to_vec(), to).unwrap(), 2);
        let (n, _, from) = recv_from(&u4, 8, SocketFlags::NONE).unwrap();
        assert_eq!((n, from), (2, to));
    });
}

#[test]
fn operations_a_listener_cannot_do_fail_through_the_result() {
    bounded(secs(10), || {
        let l = Socket::listen_tcp(localhost(), 8).unwrap();
        let other = TcpListener::bind(localhost()).unwrap();
        // connect on a listening socket
        let ar = l
            .begin_connect(other.local_addr().unwrap(), None, None)
            .unwrap();
        assert!(ar.wait_timeout(secs(5)));
        assert!(errno(l.end_connect(&ar)).is_some());
        // send on a listening socket
        let code = errno(send(&l, b"x".to_vec(), SocketFlags::NONE));
        assert!(
            [libc::EPIPE, libc::ENOTCONN].map(Some).contains(&code),
            "{code:?}"
        );
        // receive / receive_from on a listening socket
        let code = errno(recv(&l, 8, SocketFlags::NONE));
        assert_eq!(code, Some(libc::ENOTCONN));
        let code = errno(recv_from(&l, 8, SocketFlags::NONE));
        assert_eq!(code, Some(libc::ENOTCONN));
        // The listener still accepts.
        let client = Socket::connect_tcp(l.local_addr().unwrap()).unwrap();
        let ar = l.begin_accept(None, None).unwrap();
        assert!(ar.wait_timeout(secs(5)));
        let s = l.end_accept(&ar).unwrap();
        assert_eq!(s.peer_addr().unwrap(), client.local_addr().unwrap());
    });
}

#[test]
fn unconnected_tcp_operations_fail_through_the_result() {
    bounded(secs(10), || {
        let t = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        assert!(errno(recv(&t, 8, SocketFlags::NONE)).is_some());
        assert!(errno(recv(&t, 0, SocketFlags::NONE)).is_some());
        assert!(errno(recv_from(&t, 8, SocketFlags::NONE)).is_some());
        let code = errno(send_to(&t, b"x".to_vec(), "127.0.0.1:9".parse().unwrap()));
        assert!(code.is_some(), "{code:?}");
    });
}

#[test]
fn send_to_on_a_connected_tcp_socket_is_answered_through_the_result() {
    bounded(secs(10), || {
        let (ours, mut theirs) = tcp_to_std();
        let elsewhere: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let ar = ours
            .begin_send_to(b"abc", SocketFlags::NONE, elsewhere, None, None)
            .unwrap();
        assert!(ar.wait_timeout(secs(5)));
        match ours.end_send_to(&ar) {
            // Linux ignores the address on a connected TCP socket.
            Ok(n) => {
                assert_eq!(n, 3);
                let mut got = [0u8; 3];
                theirs.read_exact(&mut got).unwrap();
                assert_eq!(&got, b"abc");
            }
            Err(e) => assert_eq!(e.error_code(), Some(libc::EISCONN)),
        }
    });
}

// ---- UDP ----------------------------------------------------------------------------

#[test]
fn receive_from_reports_the_sender_v4_and_v6() {
    bounded(secs(10), || {
        for any in [localhost(), v6()] {
            if common::no_ipv6_for(any) {
                continue;
            }
            let a = Socket::bind_udp(any).unwrap();
            let b = Socket::bind_udp(any).unwrap();
            let pending = b
                .begin_receive_from(Vec::with_capacity(16), SocketFlags::NONE, None, None)
                .unwrap();
            send_to(&a, b"hi".to_vec(), b.local_addr().unwrap()).unwrap();
            assert!(pending.wait_timeout(secs(5)));
            let (n, buf, from) = b.end_receive_from(&pending).unwrap();
            assert_eq!(
                (n, &buf[..], from),
                (2, &b"hi"[..], a.local_addr().unwrap())
            );
        }
    });
}

#[test]
fn truncation_in_receive_and_receive_from_for_vec_and_box() {
    bounded(secs(10), || {
        for any in [localhost(), v6()] {
            if common::no_ipv6_for(any) {
                continue;
            }
            let a = Socket::bind_udp(any).unwrap();
            let b = Socket::bind_udp(any).unwrap();
            let to = b.local_addr().unwrap();
            let d = pattern(1000, 3);
            for _ in 0..4 {
                send_to(&a, d.clone(), to).unwrap();
            }
            let (n, buf) = recv(&b, 10, SocketFlags::NONE).unwrap();
            assert_eq!(n, 1000);
            assert!(buf.len() < n && buf.len() >= 10);
            assert_eq!(&buf[..], &d[..buf.len()]);
            let (n, buf, from) = recv_from(&b, 10, SocketFlags::NONE).unwrap();
            assert_eq!((n, from), (1000, a.local_addr().unwrap()));
            assert_eq!(&buf[..], &d[..buf.len()]);
            assert!(buf.len() < n);
            let ar = b
                .begin_receive(
                    vec![0u8; 7].into_boxed_slice(),
                    SocketFlags::NONE,
                    None,
                    None,
                )
                .unwrap();
            assert!(ar.wait_timeout(secs(5)));
            let (n, bx) = b.end_receive(&ar).unwrap();
            assert_eq!((n, &bx[..]), (1000, &d[..7]));
            let ar = b
                .begin_receive_from(
                    vec![0u8; 7].into_boxed_slice(),
                    SocketFlags::NONE,
                    None,
                    None,
                )
                .unwrap();
            assert!(ar.wait_timeout(secs(5)));
            let (n, bx, _) = b.end_receive_from(&ar).unwrap();
            assert_eq!((n, &bx[..]), (1000, &d[..7]));
        }
    });
}

#[test]
fn zero_capacity_receive_from_consumes_one_datagram_and_reports_it() {
    bounded(secs(10), || {
        for any in [localhost(), v6()] {
            if common::no_ipv6_for(any) {
                continue;
            }
            let a = Socket::bind_udp(any).unwrap();
            let b = Socket::bind_udp(any).unwrap();
            let to = b.local_addr().unwrap();
            // Pending first, then after the datagram is there.
            let pending = b
                .begin_receive_from(Vec::new(), SocketFlags::NONE, None, None)
                .unwrap();
            send_to(&a, b"first!".to_vec(), to).unwrap();
            assert!(pending.wait_timeout(secs(5)));
            let (n, buf, from) = b.end_receive_from(&pending).unwrap();
            assert_eq!((n, buf.len(), from), (6, 0, a.local_addr().unwrap()));
            send_to(&a, b"second".to_vec(), to).unwrap();
            send_to(&a, b"third".to_vec(), to).unwrap();
            let ar = b
                .begin_receive_from(Box::<[u8]>::from(&[][..]), SocketFlags::NONE, None, None)
                .unwrap();
            assert!(ar.wait_timeout(secs(5)));
            let (n, _, from) = b.end_receive_from(&ar).unwrap();
            assert_eq!((n, from), (6, a.local_addr().unwrap()));
            let (n, buf, _) = recv_from(&b, 16, SocketFlags::NONE).unwrap();
            assert_eq!(&buf[..n], b"third");
        }
    });
}

#[test]
fn zero_length_datagrams_are_datagrams() {
    bounded(secs(10), || {
        let a = Socket::bind_udp(localhost()).unwrap();
        let b = Socket::bind_udp(localhost()).unwrap();
        let to = b.local_addr().unwrap();
        // A pending receive completes for an empty datagram (with 0), not later.
        let pending = b
            .begin_receive(Vec::with_capacity(16), SocketFlags::NONE, None, None)
            .unwrap();
        assert_eq!(send_to(&a, Vec::new(), to).unwrap(), 0);
        assert!(pending.wait_timeout(secs(5)), "empty datagram not received");
        let (n, buf) = b.end_receive(&pending).unwrap();
        assert_eq!((n, buf.len()), (0, 0));
        // Empty, then data: the probe sees the empty one and takes nothing; receives take
        // them in order.
        send_to(&a, Vec::new(), to).unwrap();
        send_to(&a, b"data".to_vec(), to).unwrap();
        let (n, buf) = recv(&b, 0, SocketFlags::NONE).unwrap();
        assert_eq!((n, buf.len()), (0, 0));
        let (n, _, from) = recv_from(&b, 16, SocketFlags::NONE).unwrap();
        assert_eq!((n, from), (0, a.local_addr().unwrap()));
        let (n, buf, _) = recv_from(&b, 16, SocketFlags::NONE).unwrap();
        assert_eq!(&buf[..n], b"data");
        // A zero-capacity receive_from of an empty datagram consumes it.
        send_to(&a, Vec::new(), to).unwrap();
        send_to(&a, b"next".to_vec(), to).unwrap();
        let (n, _, _) = recv_from(&b, 0, SocketFlags::NONE).unwrap();
        assert_eq!(n, 0);
        let (n, buf) = recv(&b, 16, SocketFlags::NONE).unwrap();
        assert_eq!(&buf[..n], b"next");
    });
}

#[test]
fn connected_udp_sends_without_an_address_and_filters_senders() {
    bounded(secs(10), || {
        for any in [localhost(), v6()] {
            if common::no_ipv6_for(any) {
                continue;
            }
            let a = Socket::bind_udp(any).unwrap();
            let b = Socket::bind_udp(any).unwrap();
            let stranger = Socket::bind_udp(any).unwrap();
            a.connect(b.local_addr().unwrap()).unwrap();
            assert_eq!(a.peer_addr().unwrap(), b.local_addr().unwrap());
            assert_eq!(send(&a, b"to b".to_vec(), SocketFlags::NONE).unwrap(), 4);
            let (n, buf, from) = recv_from(&b, 16, SocketFlags::NONE).unwrap();
            assert_eq!((&buf[..n], from), (&b"to b"[..], a.local_addr().unwrap()));
            // Only the connected peer's datagrams arrive.
            send_to(&stranger, b"no".to_vec(), a.local_addr().unwrap()).unwrap();
            send_to(&b, b"yes".to_vec(), a.local_addr().unwrap()).unwrap();
            let (n, buf) = recv(&a, 16, SocketFlags::NONE).unwrap();
            assert_eq!(&buf[..n], b"yes");
        }
    });
}

#[test]
fn connected_udp_icmp_refusal_comes_through_the_result_and_the_socket_stays_usable() {
    bounded(secs(20), || {
        for any in [localhost(), v6()] {
            if common::no_ipv6_for(any) {
                continue;
            }
            let dead = common::refusing_port(any);
            let a = Socket::bind_udp(any).unwrap();
            a.connect(dead).unwrap();
            // A pending receive is completed by the ICMP error.
            let pending = a
                .begin_receive(Vec::with_capacity(16), SocketFlags::NONE, None, None)
                .unwrap();
            assert_eq!(send(&a, b"ping".to_vec(), SocketFlags::NONE).unwrap(), 4);
            assert!(pending.wait_timeout(secs(5)), "pending receive hung");
            assert_eq!(errno(a.end_receive(&pending)), Some(libc::ECONNREFUSED));
            // Error reported on a later send instead (no receive pending).
            assert_eq!(send(&a, b"ping".to_vec(), SocketFlags::NONE).unwrap(), 4);
            // Wait until the kernel has it (an error readiness), without taking it.
            let mut pfd = libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&*a.as_socket2()),
                events: 0,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, 5000) };
            assert_ne!(pfd.revents & libc::POLLERR, 0);
            let code = errno(send(&a, b"ping".to_vec(), SocketFlags::NONE));
            assert_eq!(code, Some(libc::ECONNREFUSED));
            // The socket keeps working: a live peer on that port now.
            let b = Socket::bind_udp(dead).unwrap();
            assert_eq!(send(&a, b"alive".to_vec(), SocketFlags::NONE).unwrap(), 5);
            let (n, buf, from) = recv_from(&b, 16, SocketFlags::NONE).unwrap();
            assert_eq!((&buf[..n], from), (&b"alive"[..], a.local_addr().unwrap()));
            send_to(&b, b"back".to_vec(), a.local_addr().unwrap()).unwrap();
            let (n, buf) = recv(&a, 16, SocketFlags::NONE).unwrap();
            assert_eq!(&buf[..n], b"back");
        }
    });
}

#[test]
fn big_datagrams_at_and_over_the_limit() {
    bounded(secs(10), || {
        for (any, max) in [(localhost(), 65_507usize), (v6(), 65_527)] {
            if common::no_ipv6_for(any) {
                continue;
            }
            let a = Socket::bind_udp(any).unwrap();
            let b = Socket::bind_udp(any).unwrap();
            b.as_socket2().set_recv_buffer_size(1 << 20).unwrap();
            let to = b.local_addr().unwrap();
            let d = pattern(max, 9);
            assert_eq!(send_to(&a, d.clone(), to).unwrap(), max);
            let (n, buf, _) = recv_from(&b, max, SocketFlags::NONE).unwrap();
            assert_eq!(n, max);
            assert!(buf == d);
            assert_eq!(
                errno(send_to(&a, pattern(max + 1, 1), to)),
                Some(libc::EMSGSIZE)
            );
            a.connect(to).unwrap();
            assert_eq!(
                errno(send(&a, pattern(max + 1, 1), SocketFlags::NONE)),
                Some(libc::EMSGSIZE)
            );
            let ar = a
                .begin_send_vectored(
                    vec![vec![1u8; max], vec![2u8; 1]],
                    SocketFlags::NONE,
                    None,
                    None,
                )
                .unwrap();
            assert!(ar.wait_timeout(secs(5)));
            assert_eq!(errno(a.end_send(&ar)), Some(libc::EMSGSIZE));
            // Still usable.
            assert_eq!(send(&a, b"small".to_vec(), SocketFlags::NONE).unwrap(), 5);
            let (n, buf) = recv(&b, 16, SocketFlags::NONE).unwrap();
            assert_eq!(&buf[..n], b"small");
        }
    });
}

#[test]
fn many_queued_udp_receives_are_served_in_order() {
    bounded(secs(10), || {
        let a = Socket::bind_udp(localhost()).unwrap();
        let b = Socket::bind_udp(localhost()).unwrap();
        let to = b.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        for i in 0..200usize {
            let tx = tx.clone();
            let s = b.clone();
            if i % 2 == 0 {
                b.begin_receive(
                    Vec::with_capacity(8),
                    SocketFlags::NONE,
                    callback(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                        let (n, buf) = s.end_receive(&ar).unwrap();
                        tx.send((i, buf[..n].to_vec())).unwrap();
                    }),
                    None,
                )
                .unwrap();
            } else {
                b.begin_receive_from(
                    Vec::with_capacity(8),
                    SocketFlags::NONE,
                    callback(move |ar: AsyncResult<(usize, Vec<u8>, SocketAddr)>| {
                        let (n, buf, _) = s.end_receive_from(&ar).unwrap();
                        tx.send((i, buf[..n].to_vec())).unwrap();
                    }),
                    None,
                )
                .unwrap();
            }
        }
        for i in 0..200u32 {
            send_to(&a, i.to_le_bytes().to_vec(), to).unwrap();
        }
        let mut got = vec![None; 200];
        for _ in 0..200 {
            let (i, d) = rx.recv_timeout(secs(5)).unwrap();
            got[i] = Some(u32::from_le_bytes(d.try_into().unwrap()));
        }
        for (i, g) in got.into_iter().enumerate() {
            assert_eq!(g, Some(i as u32), "receive {i} got the wrong datagram");
        }
    });
}

// ---- flags -----------------------------------------------------------------------

#[test]
fn peek_then_receive_sees_the_same_bytes_tcp_and_udp() {
    bounded(secs(10), || {
        let (ours, mut theirs) = tcp_to_std();
        theirs.write_all(b"peekaboo").unwrap();
        let (n, peeked) = recv(&ours, 64, SocketFlags::PEEK).unwrap();
        assert!(n > 0);
        let (m, taken) = recv(&ours, n, SocketFlags::NONE).unwrap();
        assert_eq!(&peeked[..n], &taken[..m.min(n)]);
        let mut all = taken[..m].to_vec();
        while all.len() < 8 {
            let (k, more) = recv(&ours, 64, SocketFlags::NONE).unwrap();
            all.extend_from_slice(&more[..k]);
        }
        assert_eq!(&all, b"peekaboo");
        // Then a pending receive still waits for new data (the peek changed nothing).
        let pending = ours
            .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        theirs.write_all(b"z").unwrap();
        assert!(pending.wait_timeout(secs(5)));
        assert_eq!(&ours.end_receive(&pending).unwrap().1[..], b"z");

        let a = Socket::bind_udp(localhost()).unwrap();
        let b = Socket::bind_udp(localhost()).unwrap();
        send_to(&a, b"dgram".to_vec(), b.local_addr().unwrap()).unwrap();
        let (n, p, from) = recv_from(&b, 2, SocketFlags::PEEK).unwrap();
        assert_eq!((n, &p[..], from), (5, &b"dg"[..], a.local_addr().unwrap()));
        let (n, p) = recv(&b, 16, SocketFlags::PEEK).unwrap();
        assert_eq!(&p[..n], b"dgram");
        let (n, p) = recv(&b, 16, SocketFlags::NONE).unwrap();
        assert_eq!(&p[..n], b"dgram");
    });
}

#[test]
fn a_peek_pending_before_data_completes_and_takes_nothing() {
    bounded(secs(10), || {
        let (ours, mut theirs) = tcp_to_std();
        let peek = ours
            .begin_receive(Vec::with_capacity(16), SocketFlags::PEEK, None, None)
            .unwrap();
        let take = ours
            .begin_receive(Vec::with_capacity(16), SocketFlags::NONE, None, None)
            .unwrap();
        theirs.write_all(b"abc").unwrap();
        assert!(peek.wait_timeout(secs(5)));
        assert!(take.wait_timeout(secs(5)));
        let (n, p) = ours.end_receive(&peek).unwrap();
        let (m, t) = ours.end_receive(&take).unwrap();
        assert_eq!(&t[..m], &p[..n]);
    });
}

#[test]
fn out_of_band_on_tcp_and_udp() {
    bounded(secs(10), || {
        let (a, b) = tcp_pair();
        // No urgent data: the OS says EINVAL, through the result.
        let code = errno(recv(&b, 1, SocketFlags::OUT_OF_BAND));
        assert_eq!(code, Some(libc::EINVAL));
        // A pending normal receive, then an urgent byte after normal ones.
        assert_eq!(send(&a, b"normal".to_vec(), SocketFlags::NONE).unwrap(), 6);
        assert_eq!(
            send(&a, b"!".to_vec(), SocketFlags::OUT_OF_BAND).unwrap(),
            1
        );
        // The urgent byte arrives (an exceptional edge); wait until it is readable.
        let deadline = Instant::now() + secs(5);
        let urgent = loop {
            match recv(&b, 1, SocketFlags::OUT_OF_BAND) {
                Ok((n, buf)) => break (n, buf),
                Err(e) if e.error_code() == Some(libc::EINVAL) && Instant::now() < deadline => {
                    std::thread::yield_now();
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!((urgent.0, &urgent.1[..]), (1, &b"!"[..]));
        let (n, buf) = recv(&b, 64, SocketFlags::NONE).unwrap();
        assert_eq!(&buf[..n], b"normal");
        // The stream goes on.
        assert_eq!(send(&a, b"more".to_vec(), SocketFlags::NONE).unwrap(), 4);
        let (n, buf) = recv(&b, 64, SocketFlags::NONE).unwrap();
        assert_eq!(&buf[..n], b"more");

        // UDP has no urgent data: through the result.
        let u = Socket::bind_udp(localhost()).unwrap();
        let to = u.local_addr().unwrap();
        let ar = u
            .begin_send_to(b"x", SocketFlags::OUT_OF_BAND, to, None, None)
            .unwrap();
        assert!(ar.wait_timeout(secs(5)));
        assert_eq!(errno(u.end_send_to(&ar)), Some(libc::EOPNOTSUPP));
        // Linux's UDP receive ignores MSG_OOB: the datagram is received as usual.
        send_to(&u, b"y".to_vec(), to).unwrap();
        let (n, buf) = recv(&u, 8, SocketFlags::OUT_OF_BAND).unwrap();
        assert_eq!(&buf[..n], b"y");
        send_to(&u, b"z".to_vec(), to).unwrap();
        let (n, buf, from) = recv_from(&u, 8, SocketFlags::OUT_OF_BAND).unwrap();
        assert_eq!((&buf[..n], from), (&b"z"[..], to));
    });
}

#[test]
fn dont_route_on_loopback_stream_and_datagram() {
    bounded(secs(10), || {
        let (ours, mut theirs) = tcp_to_std();
        assert_eq!(
            send(&ours, b"direct".to_vec(), SocketFlags::DONT_ROUTE).unwrap(),
            6
        );
        let mut got = [0u8; 6];
        theirs.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"direct");
        let a = Socket::bind_udp(localhost()).unwrap();
        let b = Socket::bind_udp(localhost()).unwrap();
        let ar = a
            .begin_send_to(
                b"dr",
                SocketFlags::DONT_ROUTE | SocketFlags::NONE,
                b.local_addr().unwrap(),
                None,
                None,
            )
            .unwrap();
        assert!(ar.wait_timeout(secs(5)));
        assert_eq!(a.end_send_to(&ar).unwrap(), 2);
        let (n, buf) = recv(&b, 8, SocketFlags::NONE).unwrap();
        assert_eq!(&buf[..n], b"dr");
    });
}

// ---- SIGPIPE ------------------------------------------------------------------------

#[test]
fn no_sigpipe_writing_to_a_closed_peer() {
    run_child_bounded("child_no_sigpipe");
}

#[test]
#[ignore = "runs in a child process"]
fn child_no_sigpipe() {
    if !is_child() {
        return;
    }
    // SAFETY: restoring SIGPIPE's default action (terminate).
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    bounded(secs(20), || {
        let (ours, theirs) = tcp_to_std();
        drop(theirs);
        let mut saw_error = false;
        for _ in 0..100 {
            // Fast path (synchronous), queued, vectored and send_to all go through.
            let r = send(&ours, vec![0u8; 100_000], SocketFlags::NONE);
            let v = ours
                .begin_send_vectored(
                    vec![vec![1u8; 10], vec![2u8; 10]],
                    SocketFlags::NONE,
                    None,
                    None,
                )
                .unwrap();
            assert!(v.wait_timeout(secs(5)));
            let v = ours.end_send(&v);
            let t = send_to(&ours, vec![3u8; 10], "127.0.0.1:9".parse().unwrap());
            if r.is_err() && v.is_err() && t.is_err() {
                saw_error = true;
                break;
            }
        }
        assert!(saw_error);
    });
}
