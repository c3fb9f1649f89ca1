//! Receives at the edges: a peek or a probe that meets a reset, urgent data after a
//! read that proved the receive queue empty, and `receive_from` on a stream whose
//! connection is gone. Each case lost or hid something before (an adversarial audit
//! found them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;

use asyncresult_core::{Error, Socket, SocketFlags, TryIo};
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
