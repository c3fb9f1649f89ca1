//! The misuse table of the README, one test per row: what each misuse returns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;

use asyncresult_core::{Domain, Error, Protocol, Socket, SocketFlags, Type};
use common::*;

fn errno<T>(r: Result<T, Error>) -> Option<i32> {
    r.err().and_then(|e| e.error_code())
}

#[test]
fn double_end_is_already_ended() {
    bounded(secs(10), || {
        let (a, _b) = tcp_to_std();
        let ar = a.begin_send(b"x", SocketFlags::NONE, None, None).unwrap();
        a.end_send(&ar).unwrap();
        assert!(matches!(a.end_send(&ar), Err(Error::AlreadyEnded)));
    });
}

#[test]
fn a_result_of_another_socket_is_foreign() {
    bounded(secs(10), || {
        let (a, _ta) = tcp_to_std();
        let (b, _tb) = tcp_to_std();
        let ar = a.begin_send(b"x", SocketFlags::NONE, None, None).unwrap();
        assert!(matches!(b.end_send(&ar), Err(Error::ForeignResult)));
    });
}

#[test]
fn a_result_of_another_kind_is_foreign() {
    bounded(secs(10), || {
        let u = Socket::bind_udp(localhost()).unwrap();
        let to = u.local_addr().unwrap();
        let ar = u
            .begin_send_to(b"x", SocketFlags::NONE, to, None, None)
            .unwrap();
        assert!(matches!(u.end_send(&ar), Err(Error::ForeignResult)));
        assert_eq!(u.end_send_to(&ar).unwrap(), 1);
    });
}

#[test]
fn begin_after_close_is_disposed() {
    bounded(secs(10), || {
        let (a, _b) = tcp_to_std();
        a.close();
        assert!(matches!(
            a.begin_send(b"x", SocketFlags::NONE, None, None),
            Err(Error::Disposed)
        ));
        assert!(matches!(
            a.begin_receive(Vec::with_capacity(1), SocketFlags::NONE, None, None),
            Err(Error::Disposed)
        ));
    });
}

#[test]
fn end_after_close_gives_the_operations_own_outcome() {
    bounded(secs(10), || {
        let (a, _b) = tcp_to_std();
        let done = a.begin_send(b"x", SocketFlags::NONE, None, None).unwrap();
        let pending = a
            .begin_receive(Vec::with_capacity(1), SocketFlags::NONE, None, None)
            .unwrap();
        a.close();
        assert_eq!(a.end_send(&done).unwrap(), 1, "completed before close");
        assert!(matches!(a.end_receive(&pending), Err(Error::Disposed)));
    });
}

#[test]
fn zero_length_buffers() {
    bounded(secs(10), || {
        // A zero-length stream send completes at once with 0.
        let (a, _b) = tcp_to_std();
        assert_eq!(
            a.end_send(
                &a.begin_send(Vec::new(), SocketFlags::NONE, None, None)
                    .unwrap()
            )
            .unwrap(),
            0
        );
        // A zero-length datagram is a real (empty) datagram.
        let u = Socket::bind_udp(localhost()).unwrap();
        let to = u.local_addr().unwrap();
        assert_eq!(
            u.end_send_to(
                &u.begin_send_to(Vec::new(), SocketFlags::NONE, to, None, None)
                    .unwrap()
            )
            .unwrap(),
            0
        );
        let (n, _, _) = u
            .end_receive_from(
                &u.begin_receive_from(Vec::with_capacity(8), SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(n, 0);
        // A zero-capacity receive is a readiness probe (see the operations tests).
    });
}

#[test]
fn an_oversize_datagram_is_emsgsize() {
    bounded(secs(10), || {
        let u = Socket::bind_udp(localhost()).unwrap();
        let to = u.local_addr().unwrap();
        let ar = u
            .begin_send_to(vec![0u8; 70_000], SocketFlags::NONE, to, None, None)
            .unwrap();
        assert_eq!(errno(u.end_send_to(&ar)), Some(libc::EMSGSIZE));
    });
}

#[test]
fn a_send_on_an_unconnected_socket_fails_through_the_result() {
    bounded(secs(10), || {
        let t = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        let ar = t.begin_send(b"x", SocketFlags::NONE, None, None).unwrap();
        let code = errno(t.end_send(&ar));
        assert!(
            code == Some(libc::ENOTCONN) || code == Some(libc::EPIPE),
            "{code:?}"
        );
        let u = Socket::bind_udp(localhost()).unwrap();
        let ar = u.begin_send(b"x", SocketFlags::NONE, None, None).unwrap();
        assert_eq!(errno(u.end_send(&ar)), Some(libc::EDESTADDRREQ));
    });
}

#[test]
fn a_wrong_address_family_fails_through_the_result() {
    bounded(secs(10), || {
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        let u = Socket::bind_udp(localhost()).unwrap();
        let ar = u
            .begin_send_to(b"x", SocketFlags::NONE, v6, None, None)
            .unwrap();
        let code = errno(u.end_send_to(&ar));
        assert!(
            code == Some(libc::EAFNOSUPPORT) || code == Some(libc::EINVAL),
            "{code:?}"
        );
        // From IPv6 to IPv4 the kernel's IPv4 path answers (no route from `::1` on Linux 6).
        if common::ipv6_loopback() {
            let u6 = Socket::bind_udp("[::1]:0".parse().unwrap()).unwrap();
            let ar = u6
                .begin_send_to(
                    b"x",
                    SocketFlags::NONE,
                    "127.0.0.1:9".parse().unwrap(),
                    None,
                    None,
                )
                .unwrap();
            let code = errno(u6.end_send_to(&ar));
            common::assert_v6_to_v4_send_failed(code, "send_to");
        } else {
            eprintln!("skipped: no IPv6 loopback (the IPv6 sender)");
        }
        let t = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        let ar = t.begin_connect(v6, None, None).unwrap();
        let code = errno(t.end_connect(&ar));
        assert!(
            code == Some(libc::EAFNOSUPPORT) || code == Some(libc::EINVAL),
            "{code:?}"
        );
    });
}

#[test]
fn connecting_twice_is_eisconn() {
    bounded(secs(10), || {
        let l = Socket::listen_tcp(localhost(), 4).unwrap();
        let c = Socket::connect_tcp(l.local_addr().unwrap()).unwrap();
        assert_eq!(
            errno(c.connect(l.local_addr().unwrap())),
            Some(libc::EISCONN)
        );
    });
}

#[test]
fn accept_on_a_socket_that_is_not_listening_fails_at_begin() {
    bounded(secs(10), || {
        let t = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        assert_eq!(errno(t.begin_accept(None, None)), Some(libc::EINVAL));
        let u = Socket::bind_udp(localhost()).unwrap();
        assert_eq!(errno(u.begin_accept(None, None)), Some(libc::EOPNOTSUPP));
    });
}

#[test]
fn address_reporting_operations_refuse_non_ip_sockets_before_taking_anything() {
    bounded(secs(10), || {
        // A Unix datagram socket and a Unix stream: `receive_from` could not report
        // the sender as a `SocketAddr`, so it fails without consuming anything, and
        // what was sent stays for `receive`.
        for (ty, sent) in [(Type::DGRAM, &b"first"[..]), (Type::STREAM, &b"bytes"[..])] {
            let (ours, theirs) = socket2::Socket::pair(Domain::UNIX, ty, None).unwrap();
            let s = Socket::try_from(ours).unwrap();
            theirs.send(sent).unwrap();
            let ar = s
                .begin_receive_from(Vec::with_capacity(16), SocketFlags::NONE, None, None)
                .unwrap();
            assert_eq!(errno(s.end_receive_from(&ar)), Some(libc::EAFNOSUPPORT));
            let ar = s
                .begin_receive(Vec::with_capacity(16), SocketFlags::NONE, None, None)
                .unwrap();
            let (n, buf) = s.end_receive(&ar).unwrap();
            assert_eq!(&buf[..n], sent);
        }

        // A Unix listener: accepting could not report the peer, so it is refused at
        // begin, and the pending connection stays in the kernel's queue.
        let path =
            std::env::temp_dir().join(format!("asyncresult-misuse-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let _client = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let l =
            Socket::try_from(socket2::Socket::from(std::os::fd::OwnedFd::from(listener))).unwrap();
        assert_eq!(errno(l.begin_accept(None, None)), Some(libc::EAFNOSUPPORT));
        assert!(l.as_socket2().accept().is_ok(), "the connection was taken");
        let _ = std::fs::remove_file(&path);
    });
}
