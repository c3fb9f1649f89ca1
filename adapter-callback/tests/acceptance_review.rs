//! An independent reviewer's probes of issues 2 and 3 through the callback adapter's
//! public API only (API.md's names and signatures), written as an acceptance test
//! would: the seed's pattern, callback threads, AsyncState, whole sends and a blocking
//! end_send, misuse errors, cancel, close, receive semantics, connect, accept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use asyncresult_callback::prelude::*;
use common::{bounded, localhost, pattern, reset, secs, tcp_pair, tcp_to_std};

fn is_send_sync_clone_debug<T: Send + Sync + Clone + std::fmt::Debug>() {}

#[test]
fn public_types_have_the_traits_api_md_lists() {
    is_send_sync_clone_debug::<Socket>();
    is_send_sync_clone_debug::<AsyncResult<usize>>();
    is_send_sync_clone_debug::<AsyncResult<(usize, Vec<u8>)>>();
    is_send_sync_clone_debug::<AsyncResult<Socket>>();
    fn err<E: Send + Sync + 'static + std::fmt::Debug + std::error::Error>() {}
    err::<Error>();
    assert_eq!(SocketFlags::default(), SocketFlags::NONE);
    let both = SocketFlags::PEEK | SocketFlags::DONT_ROUTE;
    assert_ne!(both, SocketFlags::PEEK);
    let mut set = std::collections::HashSet::new();
    set.insert(SocketFlags::OUT_OF_BAND);
    assert!(set.contains(&SocketFlags::OUT_OF_BAND));
    // Error → io::Error kinds.
    let k = |e: Error| std::io::Error::from(e).kind();
    assert_eq!(k(Error::Disposed), std::io::ErrorKind::NotConnected);
    assert_eq!(k(Error::AlreadyEnded), std::io::ErrorKind::InvalidInput);
    assert_eq!(k(Error::ForeignResult), std::io::ErrorKind::InvalidInput);
    let aborted = k(Error::Aborted);
    assert_ne!(aborted, std::io::ErrorKind::Interrupted);
    assert_ne!(aborted, std::io::ErrorKind::WouldBlock);
    let reset_io = std::io::Error::from_raw_os_error(libc::ECONNRESET);
    let e = Error::from(reset_io);
    assert_eq!(e.error_code(), Some(libc::ECONNRESET));
    assert!(matches!(e, Error::Socket(_)));
    assert_eq!(
        std::io::Error::from(e).raw_os_error(),
        Some(libc::ECONNRESET)
    );
    assert_eq!(Error::Disposed.error_code(), None);
    assert_eq!(Error::Aborted.error_code(), None);
}

/// The seed's example, checked the way a reviewer would: the callback runs on a thread
/// other than the caller's, gets the same operation (the very state object passed in),
/// ends it there with the full count, and the peer receives exactly those bytes.
#[test]
fn seed_pattern_callback_thread_state_identity_and_count() {
    bounded(secs(10), || {
        let (s, mut peer) = tcp_to_std();
        s.set_nodelay(true).unwrap();
        assert!(s.nodelay().unwrap());
        struct StateObject {
            work_socket: Socket,
        }
        let st: AsyncState = Arc::new(StateObject {
            work_socket: s.clone(),
        });
        let (tx, rx) = mpsc::channel();
        let st2 = st.clone();
        let caller = thread::current().id();
        let msg = b"This is a test<EOF>";
        let ar = s
            .begin_send(
                &msg[..],
                SocketFlags::NONE,
                callback(move |ar: AsyncResult<usize>| {
                    let same_state = Arc::ptr_eq(ar.async_state().unwrap(), &st2);
                    let so = ar.state::<StateObject>().unwrap();
                    let wrong = ar.state::<String>().is_none();
                    let n = so.work_socket.end_send(&ar);
                    tx.send((thread::current().id(), same_state, wrong, n, ar.cancel()))
                        .unwrap();
                }),
                Some(st),
            )
            .unwrap();
        let (tid, same_state, wrong, n, cancelled) = rx.recv_timeout(secs(5)).unwrap();
        assert_ne!(tid, caller, "the callback ran on the caller's thread");
        assert!(same_state, "async_state is not the state object passed in");
        assert!(wrong, "state::<WrongType>() should be None");
        assert_eq!(n.unwrap(), msg.len());
        assert!(!cancelled, "cancel of a completed operation must be false");
        assert!(ar.is_completed());
        assert!(ar.completed_synchronously());
        // Ended in the callback: ending the returned handle again is AlreadyEnded.
        assert!(matches!(s.end_send(&ar), Err(Error::AlreadyEnded)));
        let mut got = vec![0; msg.len()];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, msg);
    });
}

/// No state: `async_state()` is None and `state::<S>()` is None.
#[test]
fn no_state_is_none() {
    bounded(secs(10), || {
        let (s, _peer) = tcp_to_std();
        let ar = s.begin_send(b"x", SocketFlags::NONE, None, None).unwrap();
        assert!(ar.async_state().is_none());
        assert!(ar.state::<u32>().is_none());
        assert_eq!(s.end_send(&ar).unwrap(), 1);
        assert!(ar.wait_timeout(Duration::ZERO));
        ar.wait();
    });
}

/// end_send blocks until a large send to a slow reader is done: it must not return
/// while the peer has read too little for the rest to fit in the kernel's buffers.
#[test]
fn end_send_blocks_until_a_large_send_is_whole() {
    bounded(secs(60), || {
        let (s, mut peer) = tcp_to_std();
        const LEN: usize = 32 << 20;
        let data = pattern(LEN, 3);
        let ar = s
            .begin_send(data.clone(), SocketFlags::NONE, None, None)
            .unwrap();
        assert!(!ar.is_completed());
        assert!(!ar.completed_synchronously());
        assert!(!ar.wait_timeout(Duration::from_millis(100)));
        assert!(!ar.is_completed(), "completed while the peer read nothing");
        let read = Arc::new(AtomicUsize::new(0));
        let (s2, ar2, read2) = (s.clone(), ar.clone(), read.clone());
        let ender = thread::spawn(move || {
            let n = s2.end_send(&ar2);
            (n, read2.load(Ordering::SeqCst))
        });
        let mut got = Vec::with_capacity(LEN);
        let mut chunk = vec![0; 1 << 16];
        while got.len() < LEN {
            let n = peer.read(&mut chunk).unwrap();
            assert!(n > 0);
            got.extend_from_slice(&chunk[..n]);
            read.store(got.len(), Ordering::SeqCst);
        }
        let (n, read_when_ended) = ender.join().unwrap();
        assert_eq!(n.unwrap(), LEN);
        // Kernel buffers on loopback are at most a few MiB each way.
        assert!(
            read_when_ended + (16 << 20) >= LEN,
            "end_send returned when the peer had read only {read_when_ended}"
        );
        assert!(got == data, "bytes differ");
        assert!(matches!(s.end_send(&ar), Err(Error::AlreadyEnded)));
    });
}

/// Misuse: a result from another socket is ForeignResult and is not consumed; a clone of
/// the socket is the same socket; another kind is ForeignResult.
#[test]
fn foreign_results_and_clones() {
    bounded(secs(10), || {
        let (a, _pa) = tcp_to_std();
        let (b, _pb) = tcp_to_std();
        let ar = a.begin_send(b"abc", SocketFlags::NONE, None, None).unwrap();
        assert!(matches!(b.end_send(&ar), Err(Error::ForeignResult)));
        assert!(matches!(b.end_send_to(&ar), Err(Error::ForeignResult)));
        assert!(matches!(a.end_send_to(&ar), Err(Error::ForeignResult)));
        let a2 = a.clone();
        assert_eq!(a2.end_send(&ar.clone()).unwrap(), 3);
        assert!(matches!(a.end_send(&ar), Err(Error::AlreadyEnded)));
        // Vectored is ended by end_send, and only by it.
        let v = a
            .begin_send_vectored(vec![&b"12"[..], &b"345"[..]], SocketFlags::NONE, None, None)
            .unwrap();
        assert!(matches!(a.end_send_to(&v), Err(Error::ForeignResult)));
        assert_eq!(a.end_send(&v).unwrap(), 5);

        let u = Socket::bind_udp(localhost()).unwrap();
        let to = Socket::bind_udp(localhost()).unwrap();
        let st = u
            .begin_send_to(
                b"d",
                SocketFlags::NONE,
                to.local_addr().unwrap(),
                None,
                None,
            )
            .unwrap();
        assert!(matches!(u.end_send(&st), Err(Error::ForeignResult)));
        assert_eq!(u.end_send_to(&st).unwrap(), 1);

        // Accept results across listeners; connect results across sockets.
        let l1 = Socket::listen_tcp(localhost(), 8).unwrap();
        let l2 = Socket::listen_tcp(localhost(), 8).unwrap();
        let acc = l1.begin_accept(None, None).unwrap();
        let _c = Socket::connect_tcp(l1.local_addr().unwrap()).unwrap();
        assert!(acc.wait_timeout(secs(5)));
        assert!(matches!(l2.end_accept(&acc), Err(Error::ForeignResult)));
        let accepted = l1.end_accept(&acc).unwrap();
        assert!(matches!(l1.end_accept(&acc), Err(Error::AlreadyEnded)));
        // The accepted socket is usable at once.
        assert_eq!(
            accepted
                .end_send(
                    &accepted
                        .begin_send(b"z", SocketFlags::NONE, None, None)
                        .unwrap()
                )
                .unwrap(),
            1
        );

        let c1 = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let c2 = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let con = c1
            .begin_connect(l2.local_addr().unwrap(), None, None)
            .unwrap();
        assert!(con.wait_timeout(secs(5)));
        assert!(matches!(c2.end_connect(&con), Err(Error::ForeignResult)));
        c1.end_connect(&con).unwrap();
        assert!(matches!(c1.end_connect(&con), Err(Error::AlreadyEnded)));
    });
}

/// Receive results across sockets.
#[test]
fn foreign_receive_results() {
    bounded(secs(10), || {
        let (a, mut pa) = tcp_to_std();
        let (b, _pb) = tcp_to_std();
        let ar = a
            .begin_receive(Vec::with_capacity(16), SocketFlags::NONE, None, None)
            .unwrap();
        pa.write_all(b"hi").unwrap();
        assert!(ar.wait_timeout(secs(5)));
        assert!(matches!(b.end_receive(&ar), Err(Error::ForeignResult)));
        let (n, buf) = a.end_receive(&ar).unwrap();
        assert_eq!((n, &buf[..]), (2, &b"hi"[..]));
        assert!(matches!(a.end_receive(&ar), Err(Error::AlreadyEnded)));
    });
}

/// begin_* after close: Disposed at once, for every kind; close is idempotent.
#[test]
fn every_begin_after_close_is_disposed() {
    bounded(secs(10), || {
        let (s, _p) = tcp_to_std();
        s.close();
        s.close();
        assert!(s.is_closed());
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert!(matches!(
            s.begin_send(b"x", SocketFlags::NONE, None, None),
            Err(Error::Disposed)
        ));
        assert!(matches!(
            s.begin_send_vectored(vec![&b"x"[..]], SocketFlags::NONE, None, None),
            Err(Error::Disposed)
        ));
        assert!(matches!(
            s.begin_send_to(b"x", SocketFlags::NONE, to, None, None),
            Err(Error::Disposed)
        ));
        assert!(matches!(
            s.begin_receive(Vec::with_capacity(4), SocketFlags::NONE, None, None),
            Err(Error::Disposed)
        ));
        assert!(matches!(
            s.begin_receive_from(Vec::with_capacity(4), SocketFlags::NONE, None, None),
            Err(Error::Disposed)
        ));
        assert!(matches!(
            s.begin_connect(to, None, None),
            Err(Error::Disposed)
        ));
        assert!(matches!(s.begin_accept(None, None), Err(Error::Disposed)));
        assert!(matches!(s.set_nodelay(true), Err(Error::Disposed)));
        // as_socket2 after close must not panic.
        let _ = s.as_socket2().r#type();
        let l = Socket::listen_tcp(localhost(), 4).unwrap();
        l.close();
        assert!(matches!(l.begin_accept(None, None), Err(Error::Disposed)));
    });
}

/// Close while each kind is pending: each callback runs once, end → Disposed; an
/// operation completed before close keeps its own result.
#[test]
fn close_completes_every_pending_kind_once_with_disposed() {
    bounded(secs(20), || {
        let runs = Arc::new(AtomicUsize::new(0));
        let counting = |runs: &Arc<AtomicUsize>, tx: mpsc::Sender<()>| {
            let runs = runs.clone();
            move || {
                runs.fetch_add(1, Ordering::SeqCst);
                tx.send(()).unwrap();
            }
        };
        let (tx, rx) = mpsc::channel();
        let (s, _peer) = tcp_to_std();
        let done = s
            .begin_send(b"before", SocketFlags::NONE, None, None)
            .unwrap();
        assert!(done.wait_timeout(secs(5)));
        let f = counting(&runs, tx.clone());
        let big = s
            .begin_send(
                pattern(64 << 20, 1),
                SocketFlags::NONE,
                callback(move |_ar: AsyncResult<usize>| f()),
                None,
            )
            .unwrap();
        let f = counting(&runs, tx.clone());
        let rcv = s
            .begin_receive(
                Vec::with_capacity(8),
                SocketFlags::NONE,
                callback(move |_ar: AsyncResult<(usize, Vec<u8>)>| f()),
                None,
            )
            .unwrap();
        let l = Socket::listen_tcp(localhost(), 4).unwrap();
        let f = counting(&runs, tx.clone());
        let acc = l
            .begin_accept(callback(move |_ar: AsyncResult<Socket>| f()), None)
            .unwrap();
        let u = Socket::bind_udp(localhost()).unwrap();
        let f = counting(&runs, tx.clone());
        let rf = u
            .begin_receive_from(
                Vec::with_capacity(8),
                SocketFlags::NONE,
                callback(move |_ar: AsyncResult<(usize, Vec<u8>, SocketAddr)>| f()),
                None,
            )
            .unwrap();
        assert!(!big.is_completed() && !rcv.is_completed() && !acc.is_completed());
        s.close();
        l.close();
        u.close();
        for _ in 0..4 {
            rx.recv_timeout(secs(5)).unwrap();
        }
        assert!(matches!(s.end_send(&big), Err(Error::Disposed)));
        assert!(matches!(s.end_receive(&rcv), Err(Error::Disposed)));
        assert!(matches!(l.end_accept(&acc), Err(Error::Disposed)));
        assert!(matches!(u.end_receive_from(&rf), Err(Error::Disposed)));
        assert_eq!(s.end_send(&done).unwrap(), 6);
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        assert_eq!(runs.load(Ordering::SeqCst), 4);
    });
}

/// Cancel a queued send: Aborted, its bytes never sent, socket still usable; cancel of
/// a completed one is false and keeps its result; a second cancel is false.
#[test]
fn cancel_queued_send_and_completed_send() {
    bounded(secs(30), || {
        let (s, mut peer) = tcp_to_std();
        let first = pattern(16 << 20, 5);
        let a = s
            .begin_send(first.clone(), SocketFlags::NONE, None, None)
            .unwrap();
        let b = s
            .begin_send(vec![0xEEu8; 1000], SocketFlags::NONE, None, None)
            .unwrap();
        assert!(!b.is_completed());
        assert!(b.cancel());
        assert!(!b.cancel());
        assert!(b.is_completed());
        assert!(matches!(s.end_send(&b), Err(Error::Aborted)));
        let c = s
            .begin_send(&b"tail"[..], SocketFlags::NONE, None, None)
            .unwrap();
        let reader = thread::spawn(move || {
            let mut got = vec![0; (16 << 20) + 4];
            peer.read_exact(&mut got).unwrap();
            got
        });
        assert_eq!(s.end_send(&a).unwrap(), 16 << 20);
        assert_eq!(s.end_send(&c).unwrap(), 4);
        assert!(!c.cancel());
        let got = reader.join().unwrap();
        assert!(got[..16 << 20] == first[..]);
        assert_eq!(&got[16 << 20..], b"tail");
    });
}

/// Cancel a pending receive: Aborted, the socket keeps every byte for the next one.
#[test]
fn cancel_pending_receive_loses_nothing() {
    bounded(secs(10), || {
        let (s, mut peer) = tcp_to_std();
        let (tx, rx) = mpsc::channel();
        let r = s
            .begin_receive(
                Vec::with_capacity(8),
                SocketFlags::NONE,
                callback(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                    tx.send(ar.is_completed()).unwrap()
                }),
                None,
            )
            .unwrap();
        assert!(r.cancel());
        assert!(rx.recv_timeout(secs(5)).unwrap());
        assert!(matches!(s.end_receive(&r), Err(Error::Aborted)));
        peer.write_all(b"kept").unwrap();
        let r2 = s
            .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        let (n, buf) = s.end_receive(&r2).unwrap();
        assert_eq!((n, &buf[..]), (4, &b"kept"[..]));
    });
}

/// Cancel a stream send part-way: shutdown(Write); later sends (queued or new) → EPIPE.
#[test]
fn cancel_a_torn_stream_send_shuts_the_send_side() {
    bounded(secs(30), || {
        let (s, mut peer) = tcp_to_std();
        let a = s
            .begin_send(pattern(32 << 20, 1), SocketFlags::NONE, None, None)
            .unwrap();
        let q = s
            .begin_send(&b"queued"[..], SocketFlags::NONE, None, None)
            .unwrap();
        // Let bytes move so that `a` is torn part-way.
        let mut some = vec![0; 1 << 16];
        peer.read_exact(&mut some).unwrap();
        assert!(a.cancel());
        assert!(matches!(s.end_send(&a), Err(Error::Aborted)));
        let code = |r: Result<usize, Error>| r.err().and_then(|e| e.error_code());
        assert_eq!(code(s.end_send(&q)), Some(libc::EPIPE));
        let n = s
            .begin_send(&b"new"[..], SocketFlags::NONE, None, None)
            .unwrap();
        assert_eq!(code(s.end_send(&n)), Some(libc::EPIPE));
        // The peer reads end of stream, never the queued bytes spliced in.
        let mut rest = Vec::new();
        peer.read_to_end(&mut rest).unwrap();
        assert!(!rest.windows(6).any(|w| w == b"queued"));
    });
}

/// Peer reset: ECONNRESET or EPIPE through end_send, never a panic.
#[test]
fn peer_reset_is_a_socket_error() {
    bounded(secs(10), || {
        let (s, peer) = tcp_to_std();
        reset(peer);
        let mut last = None;
        for _ in 0..100 {
            let ar = s
                .begin_send(vec![1u8; 1 << 16], SocketFlags::NONE, None, None)
                .unwrap();
            match s.end_send(&ar) {
                Ok(_) => continue,
                Err(e) => {
                    last = Some(e);
                    break;
                }
            }
        }
        let e = last.expect("a send to a reset peer never failed");
        assert!(matches!(e, Error::Socket(_)));
        let code = e.error_code().unwrap();
        assert!(code == libc::ECONNRESET || code == libc::EPIPE, "{e:?}");
        // Receive after reset: Socket error (ECONNRESET) or 0, per the kernel's state.
    });
}

/// Receive after a reset: ECONNRESET.
#[test]
fn receive_after_reset_is_econnreset() {
    bounded(secs(10), || {
        let (s, peer) = tcp_to_std();
        reset(peer);
        let r = s
            .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        let e = s.end_receive(&r).unwrap_err();
        assert_eq!(e.error_code(), Some(libc::ECONNRESET), "{e:?}");
    });
}

/// UDP: zero-length send Ok(0) (and the peer gets an empty datagram); oversize →
/// EMSGSIZE; unconnected send → EDESTADDRREQ, all through end_*.
#[test]
fn udp_edges() {
    bounded(secs(10), || {
        let a = Socket::bind_udp(localhost()).unwrap();
        let b = Socket::bind_udp(localhost()).unwrap();
        let e = a.begin_send(b"x", SocketFlags::NONE, None, None).unwrap();
        assert_eq!(
            a.end_send(&e).unwrap_err().error_code(),
            Some(libc::EDESTADDRREQ)
        );
        a.connect(b.local_addr().unwrap()).unwrap();
        let z = a
            .begin_send(Vec::new(), SocketFlags::NONE, None, None)
            .unwrap();
        assert_eq!(a.end_send(&z).unwrap(), 0);
        let r = b
            .begin_receive_from(Vec::with_capacity(16), SocketFlags::NONE, None, None)
            .unwrap();
        let (n, buf, from) = b.end_receive_from(&r).unwrap();
        assert_eq!((n, buf.len(), from), (0, 0, a.local_addr().unwrap()));
        let big = a
            .begin_send(vec![0u8; 70_000], SocketFlags::NONE, None, None)
            .unwrap();
        let err = a.end_send(&big).unwrap_err();
        assert!(matches!(err, Error::Socket(_)));
        assert_eq!(err.error_code(), Some(libc::EMSGSIZE));
        // One datagram per send.
        for i in 0..3u8 {
            let ar = a
                .begin_send(vec![i; 10 + i as usize], SocketFlags::NONE, None, None)
                .unwrap();
            a.end_send(&ar).unwrap();
        }
        for i in 0..3u8 {
            let r = b
                .begin_receive(Vec::with_capacity(100), SocketFlags::NONE, None, None)
                .unwrap();
            let (n, buf) = b.end_receive(&r).unwrap();
            assert_eq!(n, 10 + i as usize);
            assert!(buf.iter().all(|&x| x == i));
        }
    });
}

/// Receive buffer convention and probes.
#[test]
fn receive_buffer_convention_probe_fin() {
    bounded(secs(10), || {
        let (s, mut peer) = tcp_to_std();
        peer.write_all(b"hello world").unwrap();
        // A zero-capacity Vec is a readiness probe: 0, nothing consumed.
        let p = s
            .begin_receive(Vec::new(), SocketFlags::NONE, None, None)
            .unwrap();
        let (n, buf) = s.end_receive(&p).unwrap();
        assert_eq!((n, buf.len()), (0, 0));
        // A zero-length Box is a probe too.
        let p = s
            .begin_receive(
                Vec::<u8>::new().into_boxed_slice(),
                SocketFlags::NONE,
                None,
                None,
            )
            .unwrap();
        assert_eq!(s.end_receive(&p).unwrap().0, 0);
        // Old contents of a Vec are discarded; filled from index 0.
        let mut old = vec![9u8; 5];
        old.reserve_exact(0);
        let r = s.begin_receive(old, SocketFlags::NONE, None, None).unwrap();
        let (n, buf) = s.end_receive(&r).unwrap();
        assert_eq!(n, buf.len());
        assert_eq!(&buf[..], &b"hello world"[..n]);
        // A Box is filled from index 0 up to its length.
        let r = s
            .begin_receive(
                vec![0u8; 64].into_boxed_slice(),
                SocketFlags::NONE,
                None,
                None,
            )
            .unwrap();
        let (m, boxed) = s.end_receive(&r).unwrap();
        assert_eq!(&boxed[..m], &b"hello world"[n..]);
        assert_eq!(boxed.len(), 64);
        // PEEK leaves the bytes.
        peer.write_all(b"peek").unwrap();
        let r = s
            .begin_receive(Vec::with_capacity(4), SocketFlags::PEEK, None, None)
            .unwrap();
        let (n1, b1) = s.end_receive(&r).unwrap();
        let r = s
            .begin_receive(Vec::with_capacity(4), SocketFlags::NONE, None, None)
            .unwrap();
        let (n2, b2) = s.end_receive(&r).unwrap();
        assert_eq!(&b1[..n1], &b"peek"[..n1]);
        assert_eq!(&b2[..n2], &b"peek"[..n2]);
        // FIN: 0, and stays 0; a probe at end of stream also gives 0.
        peer.shutdown(Shutdown::Write).unwrap();
        for cap in [16, 16, 0] {
            let r = s
                .begin_receive(Vec::with_capacity(cap), SocketFlags::NONE, None, None)
                .unwrap();
            assert_eq!(s.end_receive(&r).unwrap().0, 0);
        }
    });
}

/// Several pending receives complete in order with the bytes in order.
#[test]
fn pending_receives_in_order() {
    bounded(secs(10), || {
        let (s, mut peer) = tcp_to_std();
        let ars: Vec<_> = (0..5)
            .map(|_| {
                s.begin_receive(
                    Box::new([0u8; 3]) as Box<[u8]>,
                    SocketFlags::NONE,
                    None,
                    None,
                )
                .unwrap()
            })
            .collect();
        peer.write_all(b"aaabbbcccdddeee").unwrap();
        let mut all = Vec::new();
        for ar in &ars {
            let (n, b) = s.end_receive(ar).unwrap();
            all.extend_from_slice(&b[..n]);
        }
        while all.len() < 15 {
            let r = s
                .begin_receive(Vec::with_capacity(15), SocketFlags::NONE, None, None)
                .unwrap();
            let (n, b) = s.end_receive(&r).unwrap();
            assert!(n > 0);
            all.extend_from_slice(&b[..n]);
        }
        assert_eq!(&all, b"aaabbbcccdddeee");
    });
}

/// receive_from truncates and says so: count > len.
#[test]
fn receive_from_truncation() {
    bounded(secs(10), || {
        let a = Socket::bind_udp(localhost()).unwrap();
        let b = Socket::bind_udp(localhost()).unwrap();
        let ar = a
            .begin_send_to(
                pattern(100, 1),
                SocketFlags::NONE,
                b.local_addr().unwrap(),
                None,
                None,
            )
            .unwrap();
        assert_eq!(a.end_send_to(&ar).unwrap(), 100);
        let r = b
            .begin_receive_from(
                vec![0u8; 10].into_boxed_slice(),
                SocketFlags::NONE,
                None,
                None,
            )
            .unwrap();
        let (n, buf, from) = b.end_receive_from(&r).unwrap();
        assert_eq!(n, 100);
        assert_eq!(&buf[..], &pattern(100, 1)[..10]);
        assert_eq!(from, a.local_addr().unwrap());
        // With a Vec: len() is what was stored.
        let ar = a
            .begin_send_to(
                pattern(100, 2),
                SocketFlags::NONE,
                b.local_addr().unwrap(),
                None,
                None,
            )
            .unwrap();
        a.end_send_to(&ar).unwrap();
        let v: Vec<u8> = Vec::with_capacity(10);
        let cap = v.capacity();
        let r = b
            .begin_receive_from(v, SocketFlags::NONE, None, None)
            .unwrap();
        let (n, buf, _) = b.end_receive_from(&r).unwrap();
        assert_eq!(n, 100);
        assert_eq!(buf.len(), cap.min(100));
    });
}

/// send_to on an unbound socket binds it implicitly; the reply comes back.
#[test]
fn send_to_binds_implicitly() {
    bounded(secs(10), || {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let (tx, rx) = mpsc::channel();
        let s2 = s.clone();
        s.begin_send_to(
            b"ping",
            SocketFlags::NONE,
            peer.local_addr().unwrap(),
            callback(move |ar: AsyncResult<usize>| tx.send(s2.end_send_to(&ar)).unwrap()),
            None,
        )
        .unwrap();
        assert_eq!(rx.recv_timeout(secs(5)).unwrap().unwrap(), 4);
        let local = s.local_addr().unwrap();
        assert_ne!(local.port(), 0);
        let mut b = [0u8; 8];
        let (n, from) = peer.recv_from(&mut b).unwrap();
        assert_eq!((n, from.port()), (4, local.port()));
        peer.send_to(b"pong", from).unwrap();
        let r = s
            .begin_receive_from(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        let (n, buf, f) = s.end_receive_from(&r).unwrap();
        assert_eq!(
            (n, &buf[..], f),
            (4, &b"pong"[..], peer.local_addr().unwrap())
        );
    });
}

/// connect: refused promptly with ECONNREFUSED through end_connect; connecting twice is
/// a clear error (through the result, per §4).
#[test]
fn connect_refused_and_twice() {
    bounded(secs(20), || {
        let closed = common::refusing_port(localhost());
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let t0 = Instant::now();
        let ar = s.begin_connect(closed, None, None).unwrap();
        let e = s.end_connect(&ar).unwrap_err();
        assert!(t0.elapsed() < secs(3));
        assert!(matches!(e, Error::Socket(_)));
        assert_eq!(e.error_code(), Some(libc::ECONNREFUSED));

        let l = Socket::listen_tcp(localhost(), 4).unwrap();
        let c = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let a1 = c
            .begin_connect(l.local_addr().unwrap(), None, None)
            .unwrap();
        c.end_connect(&a1).unwrap();
        let second = c.begin_connect(l.local_addr().unwrap(), None, None);
        let err = match second {
            Ok(a2) => c.end_connect(&a2).unwrap_err(),
            Err(e) => e,
        };
        assert_eq!(err.error_code(), Some(libc::EISCONN), "{err:?}");
        // Still usable for data.
        let acc = l.end_accept(&l.begin_accept(None, None).unwrap()).unwrap();
        c.end_send(&c.begin_send(b"ok", SocketFlags::NONE, None, None).unwrap())
            .unwrap();
        let (n, b) = acc
            .end_receive(
                &acc.begin_receive(Vec::with_capacity(2), SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(&b[..n], b"ok");
    });
}

/// Two connects begun back to back on one fresh socket (the second while the first may
/// still be pending): each completes exactly once, one succeeds, the other is a clear
/// Socket error (EALREADY / EISCONN), never a hang or a panic.
#[test]
fn connect_twice_while_pending() {
    bounded(secs(20), || {
        for _ in 0..50 {
            let l = Socket::listen_tcp(localhost(), 4).unwrap();
            let c = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            let to = l.local_addr().unwrap();
            let a1 = c.begin_connect(to, None, None).unwrap();
            let r2 = c.begin_connect(to, None, None);
            let r1 = c.end_connect(&a1);
            let r2 = match r2 {
                Ok(a2) => c.end_connect(&a2),
                Err(e) => Err(e),
            };
            assert!(r1.is_ok() || r2.is_ok(), "{r1:?} {r2:?}");
            for r in [r1, r2] {
                if let Err(e) = r {
                    let code = e.error_code();
                    assert!(
                        code == Some(libc::EALREADY) || code == Some(libc::EISCONN),
                        "{e:?}"
                    );
                }
            }
        }
    });
}

/// Several pending accepts are served in order; accepted sockets work at once.
#[test]
fn pending_accepts_in_order() {
    bounded(secs(10), || {
        let l = Socket::listen_tcp(localhost(), 16).unwrap();
        let ars: Vec<_> = (0..4)
            .map(|_| l.begin_accept(None, None).unwrap())
            .collect();
        let mut clients = Vec::new();
        for ar in &ars {
            let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
            // Each accept takes the next connection in the order begun.
            assert!(ar.wait_timeout(secs(5)));
            clients.push(c);
        }
        for (ar, c) in ars.iter().zip(&mut clients) {
            let s = l.end_accept(ar).unwrap();
            assert_eq!(s.peer_addr().unwrap(), c.local_addr().unwrap());
            c.write_all(b"q").unwrap();
            let (n, b) = s
                .end_receive(
                    &s.begin_receive(Vec::with_capacity(1), SocketFlags::NONE, None, None)
                        .unwrap(),
                )
                .unwrap();
            assert_eq!(&b[..n], b"q");
        }
        // Accept on a non-listening socket: Err at begin.
        let (t, _p) = tcp_to_std();
        assert!(matches!(t.begin_accept(None, None), Err(Error::Socket(_))));
    });
}

/// Receive and send queues progress independently on one socket.
#[test]
fn receive_pending_never_blocks_send() {
    bounded(secs(10), || {
        let (s, mut peer) = tcp_to_std();
        let r = s
            .begin_receive(Vec::with_capacity(4), SocketFlags::NONE, None, None)
            .unwrap();
        let w = s.begin_send(b"out", SocketFlags::NONE, None, None).unwrap();
        assert_eq!(s.end_send(&w).unwrap(), 3);
        assert!(!r.is_completed());
        let mut b = [0u8; 3];
        peer.read_exact(&mut b).unwrap();
        peer.write_all(b"in").unwrap();
        assert_eq!(s.end_receive(&r).unwrap().0, 2);
    });
}

/// A panicking callback stops nothing; a dropped, un-ended result still delivers.
#[test]
fn panicking_callback_and_dropped_result() {
    bounded(secs(10), || {
        let (s, mut peer) = tcp_to_std();
        for _ in 0..5 {
            drop(s.begin_send(
                b"a",
                SocketFlags::NONE,
                callback(|_ar: AsyncResult<usize>| panic!("user")),
                None,
            ));
        }
        drop(s.begin_send(b"b", SocketFlags::NONE, None, None).unwrap());
        let (tx, rx) = mpsc::channel();
        let s2 = s.clone();
        s.begin_send(
            b"c",
            SocketFlags::NONE,
            callback(move |ar: AsyncResult<usize>| tx.send(s2.end_send(&ar)).unwrap()),
            None,
        )
        .unwrap();
        assert_eq!(rx.recv_timeout(secs(5)).unwrap().unwrap(), 1);
        let mut b = [0u8; 7];
        peer.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"aaaaabc");
    });
}

/// Dropping every handle of a socket with a pending receive disposes it: the callback
/// runs once.
#[test]
fn dropping_the_last_handle_completes_pending_ops() {
    bounded(secs(10), || {
        let (s, _peer) = tcp_to_std();
        let (tx, rx) = mpsc::channel();
        let ar = s
            .begin_receive(
                Vec::with_capacity(4),
                SocketFlags::NONE,
                callback(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                    tx.send(ar.is_completed()).unwrap()
                }),
                None,
            )
            .unwrap();
        drop(s);
        assert!(rx.recv_timeout(secs(5)).unwrap());
        assert!(ar.is_completed());
    });
}

/// TryFrom a blocking std socket: the engine must make it non-blocking, or begin_*
/// would block the caller.
#[test]
fn try_from_blocking_std_sockets() {
    bounded(secs(10), || {
        let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_l.local_addr().unwrap();
        let l = Socket::try_from(std_l).unwrap();
        let acc = l.begin_accept(None, None).unwrap();
        assert!(!acc.is_completed());
        let _c = std::net::TcpStream::connect(addr).unwrap();
        l.end_accept(&acc).unwrap();
        let std_s = std::net::TcpStream::connect(addr).unwrap();
        let s = Socket::try_from(std_s).unwrap();
        let r = s
            .begin_receive(Vec::with_capacity(4), SocketFlags::NONE, None, None)
            .unwrap();
        assert!(!r.is_completed());
        let u = Socket::try_from(std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
        let ur = u
            .begin_receive_from(Vec::with_capacity(4), SocketFlags::NONE, None, None)
            .unwrap();
        assert!(!ur.is_completed());
        let raw = socket2::Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let _s2 = Socket::try_from(raw).unwrap();
        assert!(r.cancel() && ur.cancel());
    });
}

/// 10,000 request/response round trips through callbacks, every byte checked.
#[test]
fn ten_thousand_round_trips_with_callbacks() {
    bounded(secs(60), || {
        let (a, b) = tcp_pair();
        a.set_nodelay(true).unwrap();
        b.set_nodelay(true).unwrap();
        // Echo server on b, driven by callbacks.
        fn serve(b: Socket) {
            let b2 = b.clone();
            b.begin_receive(
                Vec::with_capacity(64),
                SocketFlags::NONE,
                callback(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                    let Ok((n, buf)) = b2.end_receive(&ar) else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    let _ = b2.begin_send(buf, SocketFlags::NONE, None, None);
                    serve(b2.clone());
                }),
                None,
            )
            .unwrap();
        }
        serve(b.clone());
        let done = Arc::new(Mutex::new(None));
        let (tx, rx) = mpsc::channel();
        for i in 0..10_000u32 {
            let msg = pattern(64, i as u8);
            a.end_send(
                &a.begin_send(msg.clone(), SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
            let mut got = Vec::new();
            while got.len() < 64 {
                let (n, buf) = a
                    .end_receive(
                        &a.begin_receive(
                            Vec::with_capacity(64 - got.len()),
                            SocketFlags::NONE,
                            None,
                            None,
                        )
                        .unwrap(),
                    )
                    .unwrap();
                assert!(n > 0);
                got.extend_from_slice(&buf);
            }
            assert_eq!(got, msg);
        }
        *done.lock().unwrap() = Some(());
        tx.send(()).unwrap();
        rx.recv().unwrap();
        a.shutdown(Shutdown::Write).unwrap();
    });
}

/// Vectored sends beyond the kernel's iovec limit (IOV_MAX, 1024): on a stream the
/// whole lot goes out in order and the count is the total; on UDP it is one datagram
/// (or an OS error), never several datagrams.
#[test]
fn vectored_sends_with_many_buffers() {
    bounded(secs(30), || {
        let (s, mut peer) = tcp_to_std();
        let bufs: Vec<Vec<u8>> = (0..3000u32)
            .map(|i| vec![(i % 251) as u8; 1 + (i % 7) as usize])
            .collect();
        let expected: Vec<u8> = bufs.concat();
        let ar = s
            .begin_send_vectored(bufs, SocketFlags::NONE, None, None)
            .unwrap();
        assert_eq!(s.end_send(&ar).unwrap(), expected.len());
        let mut got = vec![0; expected.len()];
        peer.read_exact(&mut got).unwrap();
        assert!(got == expected);
        // Empty list: Ok(0).
        let e = s
            .begin_send_vectored(Vec::<Vec<u8>>::new(), SocketFlags::NONE, None, None)
            .unwrap();
        assert_eq!(s.end_send(&e).unwrap(), 0);

        let a = Socket::bind_udp(localhost()).unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        let bufs: Vec<Vec<u8>> = (0..2000u32).map(|i| vec![i as u8; 2]).collect();
        let ar = a
            .begin_send_vectored(bufs, SocketFlags::NONE, None, None)
            .unwrap();
        match a.end_send(&ar) {
            Ok(n) => {
                assert_eq!(n, 4000);
                let mut d = vec![0u8; 8000];
                let got = b.recv(&mut d).unwrap();
                assert_eq!(got, 4000, "a vectored UDP send was split into datagrams");
            }
            Err(e) => assert!(matches!(e, Error::Socket(_)), "{e:?}"),
        }
    });
}

/// Cancel a pending accept: Aborted, and no connection is lost to it.
#[test]
fn cancel_pending_accept_loses_no_connection() {
    bounded(secs(10), || {
        let l = Socket::listen_tcp(localhost(), 8).unwrap();
        let a = l.begin_accept(None, None).unwrap();
        assert!(a.cancel());
        assert!(matches!(l.end_accept(&a), Err(Error::Aborted)));
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let s = l.end_accept(&l.begin_accept(None, None).unwrap()).unwrap();
        assert_eq!(s.peer_addr().unwrap(), c.local_addr().unwrap());
    });
}

/// A pending PEEK receive, and a pending zero-capacity probe, leave the bytes for the
/// next receive.
#[test]
fn pending_peek_and_probe_consume_nothing() {
    bounded(secs(10), || {
        let (s, mut peer) = tcp_to_std();
        let probe = s
            .begin_receive(Vec::new(), SocketFlags::NONE, None, None)
            .unwrap();
        let peek = s
            .begin_receive(Vec::with_capacity(8), SocketFlags::PEEK, None, None)
            .unwrap();
        let real = s
            .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        assert!(!probe.is_completed());
        peer.write_all(b"abcd").unwrap();
        assert_eq!(s.end_receive(&probe).unwrap().0, 0);
        let (n, b) = s.end_receive(&peek).unwrap();
        assert_eq!(&b[..n], &b"abcd"[..n]);
        let (n, b) = s.end_receive(&real).unwrap();
        assert_eq!(&b[..n], &b"abcd"[..n]);
    });
}

/// Closing the socket from inside one of its callbacks: the other pending operation
/// completes once with Disposed, begin from the callback is Disposed, nothing hangs.
#[test]
fn close_from_inside_a_callback() {
    bounded(secs(10), || {
        let (s, mut peer) = tcp_to_std();
        let (tx, rx) = mpsc::channel();
        let s2 = s.clone();
        let tx2 = tx.clone();
        let _w = s
            .begin_receive(
                Vec::with_capacity(4),
                SocketFlags::NONE,
                callback(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                    let r = s2.end_receive(&ar).map(|(n, _)| n);
                    s2.close();
                    let again = s2
                        .begin_send(b"x", SocketFlags::NONE, None, None)
                        .map(|_| ());
                    tx2.send(format!("first {r:?} {again:?}")).unwrap();
                }),
                None,
            )
            .unwrap();
        let s3 = s.clone();
        let _second = s
            .begin_receive(
                Vec::with_capacity(4),
                SocketFlags::NONE,
                callback(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                    tx.send(format!("second {:?}", s3.end_receive(&ar).map(|(n, _)| n)))
                        .unwrap();
                }),
                None,
            )
            .unwrap();
        peer.write_all(b"ab").unwrap();
        let mut got = [
            rx.recv_timeout(secs(5)).unwrap(),
            rx.recv_timeout(secs(5)).unwrap(),
        ];
        got.sort();
        assert_eq!(got[0], "first Ok(2) Err(Disposed)");
        assert_eq!(got[1], "second Err(Disposed)");
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        assert!(s.is_closed());
    });
}

/// A cancelled connect completes with Aborted, its callback once; the socket then
/// fails fast for data, as documented.
#[test]
fn cancel_a_pending_connect() {
    bounded(secs(10), || {
        let l = Socket::listen_tcp(localhost(), 8).unwrap();
        let c = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let (tx, rx) = mpsc::channel();
        let ar = c
            .begin_connect(
                l.local_addr().unwrap(),
                callback(move |_ar: AsyncResult<()>| tx.send(()).unwrap()),
                None,
            )
            .unwrap();
        let cancelled = ar.cancel();
        rx.recv_timeout(secs(5)).unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        if cancelled {
            assert!(matches!(c.end_connect(&ar), Err(Error::Aborted)));
        } else {
            c.end_connect(&ar).unwrap();
        }
        assert!(ar.wait_timeout(Duration::MAX));
    });
}
