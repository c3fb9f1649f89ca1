//! Receives at the edges: a peek or a probe that meets a reset, urgent data after a
//! read that proved the receive queue empty, and `receive_from` on a stream whose
//! connection is gone, reads racing a refused connect. Each case lost or hid something
//! before (an adversarial audit found them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;

use asyncresult_core::{Domain, Error, Protocol, Socket, SocketFlags, TryIo, Type};
use common::*;

/// A receive of up to `capacity` bytes, ended.
fn receive(s: &Socket, capacity: usize, flags: SocketFlags) -> Result<Vec<u8>, Error> {
    let ar = s.begin_receive(Vec::with_capacity(capacity), flags, None, None)?;
    assert!(ar.wait_timeout(secs(5)), "the receive waited");
    s.end_receive(&ar).map(|(_, buf)| buf)
}

fn errno<T>(r: &Result<T, Error>) -> Option<i32> {
    r.as_ref().err().and_then(Error::error_code)
}

/// A peek and a zero-capacity probe consume nothing, a reset included: the kernel
/// reports it once, and the receive after them still reports it, not a clean end of
/// stream.
#[test]
fn a_peek_or_a_probe_that_meets_a_reset_leaves_it_for_the_next_receive() {
    bounded(secs(20), || {
        for (capacity, flags) in [(0, SocketFlags::NONE), (8, SocketFlags::PEEK)] {
            let (ours, theirs) = tcp_to_std();
            reset(theirs);
            let peeked = receive(&ours, capacity, flags);
            assert_eq!(errno(&peeked), Some(libc::ECONNRESET), "{peeked:?}");
            let received = receive(&ours, 8, SocketFlags::NONE);
            assert_eq!(errno(&received), Some(libc::ECONNRESET), "{received:?}");
            assert_eq!(receive(&ours, 8, SocketFlags::NONE).unwrap(), b"");
        }
    });
}

/// Our socket after a receive served from its queue read less than it asked for,
/// which proves the kernel's receive queue empty (the next receive waits for an edge).
fn after_a_short_read() -> (Socket, std::net::TcpStream) {
    let (ours, mut theirs) = tcp_to_std();
    let ar = ours
        .begin_receive(Vec::with_capacity(64), SocketFlags::NONE, None, None)
        .unwrap();
    theirs.write_all(b"abc").unwrap();
    assert!(ar.wait_timeout(secs(5)));
    assert_eq!(ours.end_receive(&ar).unwrap().1, b"abc");
    (ours, theirs)
}

/// Urgent data is not in the queue that a short read proved empty, and an urgent-data
/// receive never waits: with none there it fails with `EINVAL` at once.
#[test]
fn an_urgent_receive_after_a_short_read_does_not_wait() {
    bounded(secs(20), || {
        let (ours, _theirs) = after_a_short_read();
        let urgent = receive(&ours, 4, SocketFlags::OUT_OF_BAND);
        assert_eq!(errno(&urgent), Some(libc::EINVAL), "{urgent:?}");

        let (ours, _theirs) = after_a_short_read();
        let mut buf = Vec::with_capacity(4);
        match ours.try_receive(&mut buf, SocketFlags::OUT_OF_BAND) {
            Err(e) => assert_eq!(e.error_code(), Some(libc::EINVAL), "{e}"),
            Ok(TryIo::Done(n)) => panic!("{n} urgent bytes from nowhere"),
            Ok(TryIo::WouldBlock(_)) => panic!("an urgent try waited for an edge"),
        }
    });
}

/// On a stream whose connection is gone (a reset), the peer's address cannot be had:
/// `receive_from` fails with `ENOTCONN` and takes nothing, so `receive` still reads
/// what arrived before the reset.
#[test]
fn receive_from_on_a_stream_whose_connection_is_gone_takes_nothing() {
    bounded(secs(20), || {
        let (ours, mut theirs) = tcp_to_std();
        theirs.write_all(b"hello").unwrap();
        // The data is in our kernel before the reset (a probe completes when it is).
        assert_eq!(receive(&ours, 0, SocketFlags::NONE).unwrap(), b"");
        reset(theirs);
        let ar = ours
            .begin_receive_from(Vec::with_capacity(16), SocketFlags::NONE, None, None)
            .unwrap();
        let from = ours.end_receive_from(&ar);
        assert_eq!(errno(&from), Some(libc::ENOTCONN), "{from:?}");
        assert_eq!(receive(&ours, 16, SocketFlags::NONE).unwrap(), b"hello");
    });
}

/// A reader polls a socket (`try_read` in a loop, as a runtime's read half would) while
/// a connect on another thread is refused. Its reads fail with `ENOTCONN` until the
/// connect's syscall runs, then wait, then one of them may take the refusal (the kernel
/// reports it once). The connect still reports the refusal: a read's `ENOTCONN`, which
/// came from before the handshake, is not kept for it (it was, in a third of the runs,
/// when a read ran between the connect's flag and its syscall).
#[test]
fn a_read_polling_during_a_refused_connect_leaves_the_refusal_to_the_connect() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc};
    bounded(secs(60), || {
        let mut outcomes = std::collections::BTreeMap::new();
        for _ in 0..300 {
            let closed = std::net::TcpListener::bind(localhost())
                .unwrap()
                .local_addr()
                .unwrap();
            let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let (reader, stopped) = (s.clone(), Arc::clone(&stop));
            let (started, polling) = mpsc::channel();
            let poller = std::thread::spawn(move || {
                let mut buf = [0u8; 8];
                started.send(()).unwrap();
                while !stopped.load(Ordering::Relaxed) {
                    let _ = reader.try_read(&mut buf);
                }
            });
            polling.recv().unwrap();
            let ar = s.begin_connect(closed, None, None).unwrap();
            assert!(ar.wait_timeout(secs(10)), "the connect hung");
            if s.peer_addr().is_ok() {
                // Connected, to itself: the kernel picked the closed port as this socket's
                // own (a TCP self-connect, about 1 in 20,000 here), so nothing refused it.
                stop.store(true, Ordering::Relaxed);
                poller.join().unwrap();
                continue;
            }
            let connect = errno(&s.end_connect(&ar));
            stop.store(true, Ordering::Relaxed);
            poller.join().unwrap();
            *outcomes.entry(connect).or_insert(0) += 1;
        }
        // Always the refusal: never the read's own `ENOTCONN`, nor `ECONNABORTED` (the
        // reader's `recv` took the refusal; it keeps it for the connect under the
        // handshake lock, which the connect takes to look).
        assert!(
            outcomes.keys().all(|k| *k == Some(libc::ECONNREFUSED)),
            "what the connects reported: {outcomes:?}"
        );
    });
}
