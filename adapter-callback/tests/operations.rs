//! The whole Begin/End family through the callback adapter, over real loopback
//! sockets: happy paths with AsyncState and end_* in the callback, misuse on every
//! pair, receive semantics, connect, accept, vectored send, cancel, close.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use asyncresult_callback::prelude::*;
use common::{
    bounded, localhost, pattern, read_all_in_background, reset, secs, tcp_pair, tcp_to_std,
};

/// A callback that ends the operation with `end` inside the callback and reports it.
fn ending<T: Send + 'static>(
    tx: mpsc::Sender<Result<T, Error>>,
    end: impl FnOnce(&AsyncResult<T>) -> Result<T, Error> + Send + 'static,
) -> Option<AsyncCallback<T>> {
    callback(move |ar: AsyncResult<T>| {
        assert!(ar.is_completed());
        tx.send(end(&ar)).unwrap();
    })
}

struct Tag(&'static str);

// ---- happy paths -------------------------------------------------------------

#[test]
fn receive_with_callback_and_state() {
    bounded(secs(10), || {
        let (ours, mut theirs) = tcp_to_std();
        let (tx, rx) = mpsc::channel();
        let s = ours.clone();
        let ar = ours
            .begin_receive(
                Vec::with_capacity(1024),
                SocketFlags::NONE,
                callback(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                    assert_eq!(ar.state::<Tag>().map(|t| t.0), Some("rx"));
                    tx.send(s.end_receive(&ar)).unwrap();
                }),
                state(Tag("rx")),
            )
            .unwrap();
        assert!(!ar.is_completed());
        theirs.write_all(b"hello").unwrap();
        let (n, buf) = rx.recv_timeout(secs(5)).unwrap().unwrap();
        assert_eq!((n, &buf[..]), (5, &b"hello"[..]));
        assert_eq!(buf.len(), 5);
    });
}

#[test]
fn receive_from_and_send_to_over_udp() {
    bounded(secs(10), || {
        let a = Socket::bind_udp(localhost()).unwrap();
        let b = Socket::bind_udp(localhost()).unwrap();
        let (tx, rx) = mpsc::channel();
        let b2 = b.clone();
        b.begin_receive_from(
            Vec::with_capacity(100),
            SocketFlags::NONE,
            ending(tx, move |ar| b2.end_receive_from(ar)),
            state(Tag("from")),
        )
        .unwrap();
        let (stx, srx) = mpsc::channel();
        let a2 = a.clone();
        a.begin_send_to(
            &b"datagram"[..],
            SocketFlags::NONE,
            b.local_addr().unwrap(),
            ending(stx, move |ar| a2.end_send_to(ar)),
            None,
        )
        .unwrap();
        assert_eq!(srx.recv_timeout(secs(5)).unwrap().unwrap(), 8);
        let (n, buf, from) = rx.recv_timeout(secs(5)).unwrap().unwrap();
        assert_eq!(
            (n, &buf[..], from),
            (8, &b"datagram"[..], a.local_addr().unwrap())
        );
    });
}

#[test]
fn send_to_binds_an_unbound_socket_implicitly() {
    bounded(secs(10), || {
        let peer = UdpSocket::bind(localhost()).unwrap();
        let ours = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        let ar = ours
            .begin_send_to(
                &b"hi"[..],
                SocketFlags::NONE,
                peer.local_addr().unwrap(),
                None,
                None,
            )
            .unwrap();
        assert_eq!(ours.end_send_to(&ar).unwrap(), 2);
        let mut buf = [0u8; 8];
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hi");
        let local = ours.local_addr().unwrap();
        assert_ne!(local.port(), 0);
        assert_eq!(from.port(), local.port());
    });
}

#[test]
fn connect_and_accept_with_callbacks_and_accepted_sockets_work_at_once() {
    bounded(secs(10), || {
        let listener = Socket::listen_tcp(localhost(), 16).unwrap();
        let (atx, arx) = mpsc::channel();
        let l = listener.clone();
        listener
            .begin_accept(
                ending(atx, move |ar| l.end_accept(ar)),
                state(Tag("accept")),
            )
            .unwrap();
        let client = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        let (ctx, crx) = mpsc::channel();
        let c = client.clone();
        client
            .begin_connect(
                listener.local_addr().unwrap(),
                ending(ctx, move |ar| c.end_connect(ar)),
                state(Tag("connect")),
            )
            .unwrap();
        crx.recv_timeout(secs(5)).unwrap().unwrap();
        let server = arx.recv_timeout(secs(5)).unwrap().unwrap();
        assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());
        // Usable at once, both ways.
        server
            .end_send(
                &server
                    .begin_send(&b"from server"[..], SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        let (n, buf) = client
            .end_receive(
                &client
                    .begin_receive(Vec::with_capacity(64), SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(&buf[..n], b"from server");
    });
}

#[test]
fn vectored_send_is_one_whole_operation() {
    bounded(secs(20), || {
        let (ours, theirs) = tcp_to_std();
        let reader = read_all_in_background(theirs);
        let parts: Vec<Vec<u8>> = (0..200)
            .map(|i| pattern(i * 997 % 20_000, i as u8))
            .collect();
        let total: usize = parts.iter().map(Vec::len).sum();
        let expected: Vec<u8> = parts.concat();
        let (tx, rx) = mpsc::channel();
        let s = ours.clone();
        ours.begin_send_vectored(
            parts,
            SocketFlags::NONE,
            ending(tx, move |ar| s.end_send(ar)),
            None,
        )
        .unwrap();
        assert_eq!(rx.recv_timeout(secs(10)).unwrap().unwrap(), total);
        ours.close();
        assert_eq!(reader.join().unwrap(), expected);
    });
}

#[test]
fn vectored_send_on_udp_is_one_datagram() {
    bounded(secs(10), || {
        let peer = UdpSocket::bind(localhost()).unwrap();
        let ours = Socket::bind_udp(localhost()).unwrap();
        ours.connect(peer.local_addr().unwrap()).unwrap();
        let ar = ours
            .begin_send_vectored(
                vec![&b"ab"[..], &b""[..], &b"cde"[..]],
                SocketFlags::NONE,
                None,
                None,
            )
            .unwrap();
        assert_eq!(ours.end_send(&ar).unwrap(), 5);
        let mut buf = [0u8; 16];
        assert_eq!(peer.recv(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"abcde");
    });
}

#[test]
fn vectored_send_on_udp_is_one_datagram_however_many_buffers() {
    bounded(secs(20), || {
        let peer = UdpSocket::bind(localhost()).unwrap();
        peer.set_read_timeout(Some(secs(5))).unwrap();
        let ours = Socket::bind_udp(localhost()).unwrap();
        ours.connect(peer.local_addr().unwrap()).unwrap();
        // Fewer buffers than gather without allocating, more, and more than the kernel
        // takes in one `sendmsg` (1,024), empty ones mixed in.
        for count in [3usize, 100, 1_024, 1_025, 3_000] {
            let parts: Vec<Vec<u8>> = (0..count)
                .map(|i| {
                    if i % 7 == 3 {
                        Vec::new()
                    } else {
                        vec![(i % 251) as u8; 1 + i % 3]
                    }
                })
                .collect();
            let expected = parts.concat();
            let ar = ours
                .begin_send_vectored(parts, SocketFlags::NONE, None, None)
                .unwrap();
            assert_eq!(
                ours.end_send(&ar).unwrap(),
                expected.len(),
                "{count} buffers"
            );
            let mut buf = vec![0u8; expected.len() + 1];
            assert_eq!(
                peer.recv(&mut buf).unwrap(),
                expected.len(),
                "{count} buffers"
            );
            assert_eq!(&buf[..expected.len()], &expected[..], "{count} buffers");
        }
    });
}

// ---- misuse on every pair -----------------------------------------------------

#[test]
fn second_end_of_every_kind_is_already_ended() {
    bounded(secs(10), || {
        let (c, s) = tcp_pair();
        let r = s
            .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        c.end_send(
            &c.begin_send(&b"x"[..], SocketFlags::NONE, None, None)
                .unwrap(),
        )
        .unwrap();
        s.end_receive(&r).unwrap();
        assert!(matches!(s.end_receive(&r), Err(Error::AlreadyEnded)));

        let u = Socket::bind_udp(localhost()).unwrap();
        let st = u
            .begin_send_to(
                &b"x"[..],
                SocketFlags::NONE,
                u.local_addr().unwrap(),
                None,
                None,
            )
            .unwrap();
        u.end_send_to(&st).unwrap();
        assert!(matches!(u.end_send_to(&st), Err(Error::AlreadyEnded)));
        let rf = u
            .begin_receive_from(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        u.end_receive_from(&rf).unwrap();
        assert!(matches!(u.end_receive_from(&rf), Err(Error::AlreadyEnded)));

        let l = Socket::listen_tcp(localhost(), 4).unwrap();
        let a = l.begin_accept(None, None).unwrap();
        let k = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let cn = k
            .begin_connect(l.local_addr().unwrap(), None, None)
            .unwrap();
        k.end_connect(&cn).unwrap();
        assert!(matches!(k.end_connect(&cn), Err(Error::AlreadyEnded)));
        l.end_accept(&a).unwrap();
        assert!(matches!(l.end_accept(&a), Err(Error::AlreadyEnded)));
    });
}

#[test]
fn results_of_other_sockets_or_other_kinds_are_foreign() {
    bounded(secs(10), || {
        // An accept result ended on another listener.
        let l1 = Socket::listen_tcp(localhost(), 4).unwrap();
        let l2 = Socket::listen_tcp(localhost(), 4).unwrap();
        let a = l1.begin_accept(None, None).unwrap();
        assert!(matches!(l2.end_accept(&a), Err(Error::ForeignResult)));
        let _c = Socket::connect_tcp(l1.local_addr().unwrap()).unwrap();
        assert!(
            l1.end_accept(&a).is_ok(),
            "the foreign end did not consume it"
        );

        // Receive results on another socket.
        let (c1, s1) = tcp_pair();
        let (_c2, s2) = tcp_pair();
        let r = s1
            .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        assert!(matches!(s2.end_receive(&r), Err(Error::ForeignResult)));
        c1.end_send(
            &c1.begin_send(&b"y"[..], SocketFlags::NONE, None, None)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(s1.end_receive(&r).unwrap().0, 1);

        // send and send_to are different kinds; so are connects of other sockets.
        let u1 = Socket::bind_udp(localhost()).unwrap();
        let u2 = Socket::bind_udp(localhost()).unwrap();
        let st = u1
            .begin_send_to(
                &b"z"[..],
                SocketFlags::NONE,
                u2.local_addr().unwrap(),
                None,
                None,
            )
            .unwrap();
        assert!(matches!(u1.end_send(&st), Err(Error::ForeignResult)));
        assert!(matches!(u2.end_send_to(&st), Err(Error::ForeignResult)));
        u2.connect(u1.local_addr().unwrap()).unwrap();
        let sd = u2
            .begin_send(&b"w"[..], SocketFlags::NONE, None, None)
            .unwrap();
        assert!(matches!(u2.end_send_to(&sd), Err(Error::ForeignResult)));
        let cn = u1
            .begin_connect(u2.local_addr().unwrap(), None, None)
            .unwrap();
        assert!(matches!(u2.end_connect(&cn), Err(Error::ForeignResult)));
        let rf = u1
            .begin_receive_from(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        assert!(matches!(
            u2.end_receive_from(&rf),
            Err(Error::ForeignResult)
        ));
    });
}

#[test]
fn every_begin_after_close_is_disposed() {
    bounded(secs(10), || {
        let (c, _s) = tcp_pair();
        let l = Socket::listen_tcp(localhost(), 4).unwrap();
        let u = Socket::bind_udp(localhost()).unwrap();
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        for s in [&c, &l, &u] {
            s.close();
        }
        assert!(matches!(
            c.begin_send(&b"x"[..], SocketFlags::NONE, None, None),
            Err(Error::Disposed)
        ));
        assert!(matches!(
            c.begin_send_vectored(vec![&b"x"[..]], SocketFlags::NONE, None, None),
            Err(Error::Disposed)
        ));
        assert!(matches!(
            c.begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None),
            Err(Error::Disposed)
        ));
        assert!(matches!(
            c.begin_connect(to, None, None),
            Err(Error::Disposed)
        ));
        assert!(matches!(l.begin_accept(None, None), Err(Error::Disposed)));
        assert!(matches!(
            u.begin_send_to(&b"x"[..], SocketFlags::NONE, to, None, None),
            Err(Error::Disposed)
        ));
        assert!(matches!(
            u.begin_receive_from(Vec::with_capacity(8), SocketFlags::NONE, None, None),
            Err(Error::Disposed)
        ));
        assert!(matches!(c.local_addr(), Err(Error::Disposed)));
    });
}

#[test]
fn accept_on_a_socket_that_cannot_accept_fails_at_begin() {
    bounded(secs(10), || {
        let (c, _s) = tcp_pair();
        assert_eq!(
            c.begin_accept(None, None).unwrap_err().error_code(),
            Some(libc::EINVAL)
        );
        let u = Socket::bind_udp(localhost()).unwrap();
        assert_eq!(
            u.begin_accept(None, None).unwrap_err().error_code(),
            Some(libc::EOPNOTSUPP)
        );
    });
}

// ---- receive semantics ----------------------------------------------------------

#[test]
fn receive_after_fin_returns_zero_and_stays_zero() {
    bounded(secs(10), || {
        let (ours, theirs) = tcp_to_std();
        theirs.shutdown(Shutdown::Write).unwrap();
        for _ in 0..3 {
            let ar = ours
                .begin_receive(Vec::with_capacity(16), SocketFlags::NONE, None, None)
                .unwrap();
            assert_eq!(ours.end_receive(&ar).unwrap().0, 0);
        }
    });
}

#[test]
fn receive_after_reset_is_econnreset() {
    bounded(secs(10), || {
        let (ours, theirs) = tcp_to_std();
        let pending = ours
            .begin_receive(Vec::with_capacity(16), SocketFlags::NONE, None, None)
            .unwrap();
        reset(theirs);
        let e = ours.end_receive(&pending).unwrap_err();
        assert_eq!(e.error_code(), Some(libc::ECONNRESET), "{e}");
    });
}

#[test]
fn several_pending_receives_complete_in_order() {
    bounded(secs(20), || {
        let (ours, mut theirs) = tcp_to_std();
        let pending: Vec<_> = (0..20)
            .map(|_| {
                ours.begin_receive(Vec::with_capacity(7), SocketFlags::NONE, None, None)
                    .unwrap()
            })
            .collect();
        let data = pattern(20 * 7, 9);
        // Trickle the bytes so receives complete one after another.
        for chunk in data.chunks(7) {
            theirs.write_all(chunk).unwrap();
        }
        let mut got = Vec::new();
        for ar in &pending {
            let (n, buf) = ours.end_receive(ar).unwrap();
            assert_eq!(buf.len(), n);
            got.extend_from_slice(&buf);
        }
        // Each receive takes what is there when it runs (up to its capacity), and they
        // run in order: the concatenation is the stream.
        assert_eq!(got, data[..got.len()]);
        assert!(got.len() >= 7 * 20 - 7 * 19);
    });
}

#[test]
fn a_zero_capacity_receive_is_a_probe_that_consumes_nothing() {
    bounded(secs(10), || {
        let (ours, mut theirs) = tcp_to_std();
        let probe = ours
            .begin_receive(Vec::new(), SocketFlags::NONE, None, None)
            .unwrap();
        assert!(!probe.is_completed());
        theirs.write_all(b"data").unwrap();
        assert_eq!(ours.end_receive(&probe).unwrap().0, 0);
        let ar = ours
            .begin_receive(Vec::with_capacity(16), SocketFlags::NONE, None, None)
            .unwrap();
        assert_eq!(&ours.end_receive(&ar).unwrap().1[..], b"data");
        theirs.shutdown(Shutdown::Write).unwrap();
        let eof = ours
            .begin_receive(Vec::new(), SocketFlags::NONE, None, None)
            .unwrap();
        assert_eq!(ours.end_receive(&eof).unwrap().0, 0);
    });
}

#[test]
fn buffers_fill_from_index_zero_and_report_their_length() {
    bounded(secs(10), || {
        let (ours, mut theirs) = tcp_to_std();
        theirs.write_all(b"abc").unwrap();
        let mut old = Vec::with_capacity(32);
        old.extend_from_slice(b"old contents");
        let (n, v) = ours
            .end_receive(
                &ours
                    .begin_receive(old, SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        assert_eq!((n, &v[..]), (3, &b"abc"[..]));
        theirs.write_all(b"xy").unwrap();
        let boxed: Box<[u8]> = vec![b'-'; 4].into_boxed_slice();
        let (n, b) = ours
            .end_receive(
                &ours
                    .begin_receive(boxed, SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        assert_eq!((n, &b[..]), (2, &b"xy--"[..]));
    });
}

#[test]
fn a_long_datagram_is_truncated_and_says_so() {
    bounded(secs(10), || {
        let ours = Socket::bind_udp(localhost()).unwrap();
        let peer = UdpSocket::bind(localhost()).unwrap();
        let to = ours.local_addr().unwrap();
        peer.send_to(&pattern(1000, 1), to).unwrap();
        let buf: Box<[u8]> = vec![0; 100].into_boxed_slice();
        let (n, buf, from) = ours
            .end_receive_from(
                &ours
                    .begin_receive_from(buf, SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(n, 1000, "the count is the datagram's full length");
        assert_eq!(&buf[..], &pattern(1000, 1)[..100]);
        assert_eq!(from, peer.local_addr().unwrap());
        // A Vec's len() is what it holds.
        peer.send_to(&pattern(500, 2), to).unwrap();
        let (n, v, _) = ours
            .end_receive_from(
                &ours
                    .begin_receive_from(Vec::with_capacity(64), SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(n, 500);
        assert!(v.len() < n && v.len() >= 64);
        assert_eq!(&v[..], &pattern(500, 2)[..v.len()]);
        // Zero capacity consumes one datagram and reports its length and sender.
        peer.send_to(&pattern(77, 3), to).unwrap();
        peer.send_to(b"next", to).unwrap();
        let (n, _, from) = ours
            .end_receive_from(
                &ours
                    .begin_receive_from(Vec::new(), SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        assert_eq!((n, from), (77, peer.local_addr().unwrap()));
        let (n, v, _) = ours
            .end_receive_from(
                &ours
                    .begin_receive_from(Vec::with_capacity(16), SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        assert_eq!((n, &v[..]), (4, &b"next"[..]));
    });
}

#[test]
fn send_and_receive_progress_independently_on_one_socket() {
    bounded(secs(10), || {
        let (ours, mut theirs) = tcp_to_std();
        let rx = ours
            .begin_receive(Vec::with_capacity(16), SocketFlags::NONE, None, None)
            .unwrap();
        let tx = ours
            .begin_send(&b"ping"[..], SocketFlags::NONE, None, None)
            .unwrap();
        assert_eq!(ours.end_send(&tx).unwrap(), 4);
        assert!(!rx.is_completed());
        let mut got = [0u8; 4];
        theirs.read_exact(&mut got).unwrap();
        theirs.write_all(b"pong").unwrap();
        assert_eq!(&ours.end_receive(&rx).unwrap().1[..], b"pong");
    });
}

// ---- connect and accept -------------------------------------------------------------

#[test]
fn connect_to_a_closed_port_is_refused_promptly() {
    bounded(secs(10), || {
        let port = common::refusing_port(localhost());
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let t = Instant::now();
        let (tx, rx) = mpsc::channel();
        let s2 = s.clone();
        s.begin_connect(port, ending(tx, move |ar| s2.end_connect(ar)), None)
            .unwrap();
        let e = rx.recv_timeout(secs(5)).unwrap().unwrap_err();
        assert_eq!(e.error_code(), Some(libc::ECONNREFUSED), "{e}");
        // Promptly, not after a connect timeout (minutes); generous for a loaded CI.
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "took {:?}",
            t.elapsed()
        );
        assert_eq!(
            Socket::connect_tcp(port).unwrap_err().error_code(),
            Some(libc::ECONNREFUSED)
        );
    });
}

#[test]
fn connecting_twice_is_a_clear_error() {
    bounded(secs(10), || {
        let l = Socket::listen_tcp(localhost(), 4).unwrap();
        let s = Socket::connect_tcp(l.local_addr().unwrap()).unwrap();
        let e = s.connect(l.local_addr().unwrap()).unwrap_err();
        assert_eq!(e.error_code(), Some(libc::EISCONN), "{e}");
    });
}

#[test]
fn several_pending_accepts_are_served_in_order() {
    bounded(secs(10), || {
        let l = Socket::listen_tcp(localhost(), 16).unwrap();
        let pending: Vec<_> = (0..4)
            .map(|_| l.begin_accept(None, None).unwrap())
            .collect();
        let mut clients = Vec::new();
        for ar in &pending {
            let c = Socket::connect_tcp(l.local_addr().unwrap()).unwrap();
            let accepted = l.end_accept(ar).unwrap();
            assert_eq!(accepted.peer_addr().unwrap(), c.local_addr().unwrap());
            clients.push((c, accepted));
        }
    });
}

// ---- cancel ---------------------------------------------------------------------------

#[test]
fn cancel_pending_receive_accept_and_connect() {
    bounded(secs(10), || {
        let (ours, mut theirs) = tcp_to_std();
        let calls = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let (c, s) = (calls.clone(), ours.clone());
        let ar = ours
            .begin_receive(
                Vec::with_capacity(8),
                SocketFlags::NONE,
                callback(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                    c.fetch_add(1, Ordering::SeqCst);
                    tx.send(s.end_receive(&ar).map(|(n, _)| n)).unwrap();
                }),
                None,
            )
            .unwrap();
        assert!(ar.cancel());
        assert!(matches!(
            rx.recv_timeout(secs(5)).unwrap(),
            Err(Error::Aborted)
        ));
        assert!(!ar.cancel());
        // Still usable, and the cancelled receive took nothing.
        theirs.write_all(b"after").unwrap();
        let r = ours
            .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        assert_eq!(&ours.end_receive(&r).unwrap().1[..], b"after");
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let l = Socket::listen_tcp(localhost(), 4).unwrap();
        let a = l.begin_accept(None, None).unwrap();
        assert!(a.cancel());
        assert!(matches!(l.end_accept(&a), Err(Error::Aborted)));
        let _c = Socket::connect_tcp(l.local_addr().unwrap()).unwrap();
        assert!(l.end_accept(&l.begin_accept(None, None).unwrap()).is_ok());
    });
}

/// A connect cancelled while the kernel still runs its handshake leaves the socket
/// unusable for data (semantics §9): the handshake is dissolved, so later sends and
/// receives fail at once instead of waiting for the handshake (during it, a
/// non-blocking send or receive meets `EAGAIN` and would wait).
#[test]
fn cancelled_connect_dissolves_the_handshake() {
    bounded(secs(20), || {
        // A listener whose accept queue is full drops new SYNs: a connect stays in the
        // handshake, retrying, until it is cancelled.
        let l = TcpListener::bind(localhost()).unwrap();
        socket2::SockRef::from(&l).listen(0).unwrap();
        let addr = l.local_addr().unwrap();
        let _fills_the_queue = Socket::connect_tcp(addr).unwrap();

        let c = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let ar = c.begin_connect(addr, None, None).unwrap();
        assert!(!ar.is_completed(), "the SYN is dropped: the connect waits");
        assert!(ar.cancel());
        assert!(matches!(c.end_connect(&ar), Err(Error::Aborted)));

        // Unusable for data, at once: no operation waits for a handshake. The kernel
        // reports the dissolved handshake once (ECONNRESET), then the socket is simply
        // not connected.
        let send = |c: &Socket| {
            let ar = c
                .begin_send(&b"X"[..], SocketFlags::NONE, None, None)
                .unwrap();
            assert!(
                ar.wait_timeout(secs(5)),
                "a send after the cancel must not wait"
            );
            c.end_send(&ar).unwrap_err().error_code()
        };
        assert_eq!(send(&c), Some(libc::ECONNRESET));
        assert_eq!(send(&c), Some(libc::EPIPE));
        let recv = c
            .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        assert!(
            recv.wait_timeout(secs(5)),
            "a receive after the cancel must not wait"
        );
        let err = c.end_receive(&recv).unwrap_err();
        assert_eq!(err.error_code(), Some(libc::ENOTCONN), "{err:?}");
        assert_eq!(
            c.peer_addr().unwrap_err().error_code(),
            Some(libc::ENOTCONN)
        );
    });
}

/// A receive into 8 bytes, begun and ended: its count.
fn receive_count(s: &Socket) -> Result<usize, Error> {
    let ar = s
        .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
        .unwrap();
    s.end_receive(&ar).map(|(n, _)| n)
}

/// A reset that a send meets first still reaches the next receive as `ECONNRESET`,
/// not as a clean end of stream (the kernel reports it once, to the first syscall).
#[test]
fn a_reset_taken_by_a_send_is_reported_by_the_next_receive() {
    bounded(secs(10), || {
        let (ours, theirs) = tcp_to_std();
        reset(theirs);
        let send = ours
            .begin_send(&b"x"[..], SocketFlags::NONE, None, None)
            .unwrap();
        let sent = ours.end_send(&send).unwrap_err();
        assert_eq!(sent.error_code(), Some(libc::ECONNRESET), "{sent:?}");
        let err = receive_count(&ours).expect_err("a reset is not an end of stream");
        assert_eq!(err.error_code(), Some(libc::ECONNRESET), "{err:?}");
        assert_eq!(receive_count(&ours).unwrap(), 0, "reported once");
    });
}

/// End of stream stays the answer once a receive reported it (semantics §10), even if a
/// later send meets a reset.
#[test]
fn end_of_stream_stays_after_a_reset_that_a_send_meets() {
    bounded(secs(10), || {
        let (ours, theirs) = tcp_to_std();
        theirs.shutdown(Shutdown::Write).unwrap();
        assert_eq!(receive_count(&ours).unwrap(), 0);
        reset(theirs);
        let send = ours
            .begin_send(&b"x"[..], SocketFlags::NONE, None, None)
            .unwrap();
        let sent = ours.end_send(&send).unwrap_err();
        assert!(
            matches!(sent.error_code(), Some(libc::ECONNRESET | libc::EPIPE)),
            "{sent:?}"
        );
        assert_eq!(receive_count(&ours).unwrap(), 0, "end of stream stays");
    });
}

// ---- close while every kind is pending ---------------------------------------------------

#[test]
fn close_completes_every_kind_of_pending_operation_once_with_disposed() {
    bounded(secs(20), || {
        let count = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel::<Result<(), String>>();
        let cb = |tag: &'static str| {
            let tx = tx.clone();
            let count = count.clone();
            move |disposed: bool| {
                count.fetch_add(1, Ordering::SeqCst);
                tx.send(if disposed {
                    Ok(())
                } else {
                    Err(tag.to_string())
                })
                .unwrap();
            }
        };
        let (ours, _theirs) = tcp_to_std();
        let (s1, f) = (ours.clone(), cb("receive"));
        ours.begin_receive(
            Vec::with_capacity(8),
            SocketFlags::NONE,
            callback(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                f(matches!(s1.end_receive(&ar), Err(Error::Disposed)))
            }),
            None,
        )
        .unwrap();
        let (s2, f) = (ours.clone(), cb("send"));
        ours.begin_send(
            vec![0u8; 32 << 20],
            SocketFlags::NONE,
            callback(move |ar: AsyncResult<usize>| {
                f(matches!(s2.end_send(&ar), Err(Error::Disposed)))
            }),
            None,
        )
        .unwrap();
        let l = Socket::listen_tcp(localhost(), 4).unwrap();
        let (l1, f) = (l.clone(), cb("accept"));
        l.begin_accept(
            callback(move |ar: AsyncResult<Socket>| {
                f(matches!(l1.end_accept(&ar), Err(Error::Disposed)))
            }),
            None,
        )
        .unwrap();
        let u = Socket::bind_udp(localhost()).unwrap();
        let (u1, f) = (u.clone(), cb("receive_from"));
        u.begin_receive_from(
            Vec::with_capacity(8),
            SocketFlags::NONE,
            callback(move |ar: AsyncResult<(usize, Vec<u8>, SocketAddr)>| {
                f(matches!(u1.end_receive_from(&ar), Err(Error::Disposed)))
            }),
            None,
        )
        .unwrap();
        // A connect that stays pending: the listener's backlog is full.
        let full = Socket::listen_tcp(localhost(), 0).unwrap();
        let addr = full.local_addr().unwrap();
        let mut fillers = Vec::new();
        let k = loop {
            let k = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            let ar = k.begin_connect(addr, None, None).unwrap();
            if !ar.wait_timeout(Duration::from_millis(100)) {
                break k;
            }
            fillers.push(k);
            assert!(fillers.len() < 64, "backlog never filled");
        };
        // `k` has a connect pending; begin another one with a callback behind it.
        let (k1, f) = (k.clone(), cb("connect"));
        k.begin_connect(
            addr,
            callback(move |ar: AsyncResult<()>| {
                f(matches!(k1.end_connect(&ar), Err(Error::Disposed)))
            }),
            None,
        )
        .unwrap();
        for s in [&ours, &l, &u, &k] {
            s.close();
        }
        for _ in 0..5 {
            rx.recv_timeout(secs(5)).unwrap().unwrap();
        }
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        assert_eq!(count.load(Ordering::SeqCst), 5);
    });
}

// ---- a request/response exchange ----------------------------------------------------------

#[test]
fn ten_thousand_round_trips_with_every_byte_checked() {
    const ROUNDS: usize = 10_000;
    bounded(secs(120), || {
        let (client, server) = tcp_pair();
        client.set_nodelay(true).unwrap();
        server.set_nodelay(true).unwrap();
        // Server: echo every request back, byte for byte, from callbacks.
        fn serve(s: Socket) {
            let s2 = s.clone();
            s.begin_receive(
                Vec::with_capacity(256),
                SocketFlags::NONE,
                callback(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                    if let Ok((n, buf)) = s2.end_receive(&ar) {
                        if n > 0 {
                            s2.begin_send(buf, SocketFlags::NONE, None, None).unwrap();
                            serve(s2);
                        }
                    }
                }),
                None,
            )
            .unwrap();
        }
        serve(server.clone());
        // Client: send a request, read until the whole reply is back, check it.
        struct Exchange {
            socket: Socket,
            round: usize,
            want: Vec<u8>,
            got: Vec<u8>,
            done: mpsc::Sender<Result<usize, String>>,
        }
        fn request(mut x: Exchange) {
            if x.round == ROUNDS {
                let _ = x.done.send(Ok(x.round));
                return;
            }
            x.want = pattern(1 + x.round % 200, x.round as u8);
            x.got.clear();
            x.socket
                .begin_send(x.want.clone(), SocketFlags::NONE, None, None)
                .unwrap();
            read_reply(x);
        }
        fn read_reply(x: Exchange) {
            let s = x.socket.clone();
            s.begin_receive(
                Vec::with_capacity(256),
                SocketFlags::NONE,
                callback(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                    let mut x = x;
                    match x.socket.end_receive(&ar) {
                        Ok((n, buf)) if n > 0 => {
                            x.got.extend_from_slice(&buf);
                            if x.got.len() < x.want.len() {
                                return read_reply(x);
                            }
                            if x.got != x.want {
                                let _ = x.done.send(Err(format!("round {} corrupted", x.round)));
                                return;
                            }
                            x.round += 1;
                            request(x);
                        }
                        other => {
                            let _ = x.done.send(Err(format!("round {}: {other:?}", x.round)));
                        }
                    }
                }),
                None,
            )
            .unwrap();
        }
        let (done, finished) = mpsc::channel();
        let t = Instant::now();
        request(Exchange {
            socket: client.clone(),
            round: 0,
            want: Vec::new(),
            got: Vec::new(),
            done,
        });
        let rounds = finished.recv_timeout(secs(100)).unwrap().unwrap();
        let took = t.elapsed();
        assert_eq!(rounds, ROUNDS);
        println!(
            "{ROUNDS} round trips in {took:?}: {:.0} round trips/s",
            ROUNDS as f64 / took.as_secs_f64()
        );
    });
}
