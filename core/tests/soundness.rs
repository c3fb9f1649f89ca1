//! Soundness from safe user code: what the library's `unsafe` relies on (the receive
//! area initialized by the kernel up to the count it reports, a send buffer's bytes)
//! must hold whatever a safe caller does: adopt a socket through a std type that does
//! not match it, use a send buffer that lies about its bytes, receive into huge or
//! zero-capacity buffers, truncate datagrams.
//!
//! A receive that claims bytes the kernel never wrote shows up here as stale bytes (the
//! buffer's memory is pre-filled with a marker, then cleared, so the area the engine
//! hands to the kernel holds old, initialized bytes), and under valgrind, for the tests
//! that receive into fresh memory, as a use of uninitialised values.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};

use asyncresult_core::{IoBuf, Socket, SocketFlags, TryIo};
use common::*;

/// A `Vec` of `capacity` whose memory holds `0xAA` but whose length is 0.
fn stale_vec(capacity: usize) -> Vec<u8> {
    let mut v = vec![0xAAu8; capacity];
    v.clear();
    v
}

/// A connected std TCP pair.
fn std_tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(localhost()).unwrap();
    let a = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (b, _) = listener.accept().unwrap();
    (a, b)
}

/// A TCP stream seen, through safe std conversions only, as a `UdpSocket`.
fn tcp_as_udp(stream: TcpStream) -> UdpSocket {
    UdpSocket::from(OwnedFd::from(stream))
}

/// `Socket::try_from(UdpSocket)` of a descriptor that is really a TCP stream: a receive
/// must hand back the bytes the peer sent, not claim bytes the kernel never wrote.
#[test]
fn a_tcp_stream_adopted_as_a_udp_socket_receives_real_bytes() {
    bounded(secs(10), || {
        let (ours, mut theirs) = std_tcp_pair();
        let ours = Socket::try_from(tcp_as_udp(ours)).unwrap();
        theirs.write_all(b"hello").unwrap();
        let ar = ours
            .begin_receive(stale_vec(64), SocketFlags::NONE, None, None)
            .unwrap();
        let (n, buf) = ours.end_receive(&ar).unwrap();
        assert_eq!(n, 5);
        assert_eq!(
            buf, b"hello",
            "the buffer claims bytes the kernel never wrote"
        );
    });
}

/// As above with `try_receive` and fresh (never initialized) memory: under valgrind a
/// claimed-but-unwritten byte is a use of an uninitialised value.
#[test]
fn a_tcp_stream_adopted_as_a_udp_socket_try_receives_into_fresh_memory() {
    bounded(secs(10), || {
        let (ours, mut theirs) = std_tcp_pair();
        let ours = Socket::try_from(tcp_as_udp(ours)).unwrap();
        theirs.write_all(b"hello").unwrap();
        let mut buf: Vec<u8> = Vec::with_capacity(64);
        loop {
            match ours.try_receive(&mut buf, SocketFlags::NONE).unwrap() {
                TryIo::Done(n) => {
                    assert_eq!(n, 5);
                    break;
                }
                TryIo::WouldBlock(ready) => assert!(ready.wait_timeout(secs(5)), "nothing arrived"),
            }
        }
        // Branch on every byte: valgrind reports a claimed byte the kernel never wrote.
        let sum: u32 = buf.iter().map(|&b| u32::from(b)).sum();
        if sum != b"hello".iter().map(|&b| u32::from(b)).sum::<u32>() {
            panic!("the buffer claims bytes the kernel never wrote: {buf:?}");
        }
    });
}

/// A listener adopted as a `UdpSocket`: what it accepts is a TCP stream, and must
/// receive like one.
#[test]
fn a_tcp_listener_adopted_as_a_udp_socket_accepts_streams_that_receive_real_bytes() {
    bounded(secs(10), || {
        let listener = TcpListener::bind(localhost()).unwrap();
        let addr = listener.local_addr().unwrap();
        let listener = Socket::try_from(UdpSocket::from(OwnedFd::from(listener))).unwrap();
        // Refusing to accept on a "UDP" socket is sound too.
        let Ok(ar) = listener.begin_accept(None, None) else {
            return;
        };
        let mut theirs = TcpStream::connect(addr).unwrap();
        let ours = listener.end_accept(&ar).unwrap();
        theirs.write_all(b"hello").unwrap();
        let ar = ours
            .begin_receive(stale_vec(64), SocketFlags::NONE, None, None)
            .unwrap();
        let (n, buf) = ours.end_receive(&ar).unwrap();
        assert_eq!((n, &buf[..]), (5, &b"hello"[..]));
    });
}

/// A UDP socket with a peek offset (`SO_PEEK_OFF`, set with a plain, sound
/// `setsockopt`): a peek copies only what lies past the offset but, with `MSG_TRUNC`,
/// returns the datagram's full length. The buffer handed back must hold only bytes the
/// kernel wrote.
#[test]
fn a_peek_past_a_peek_offset_claims_no_unwritten_bytes() {
    bounded(secs(10), || {
        let a = Socket::bind_udp(localhost()).unwrap();
        let b = Socket::bind_udp(localhost()).unwrap();
        let offset: libc::c_int = 40;
        // SAFETY: a valid c_int option value on a live descriptor; the kernel reads it.
        let rc = unsafe {
            libc::setsockopt(
                b.as_socket2().as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEEK_OFF,
                (&offset as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            eprintln!("SO_PEEK_OFF refused on UDP: nothing to check");
            return;
        }
        let datagram = pattern(100, 1);
        let to = b.local_addr().unwrap();
        a.end_send_to(
            &a.begin_send_to(datagram.clone(), SocketFlags::NONE, to, None, None)
                .unwrap(),
        )
        .unwrap();
        // The kernel copies the 60 bytes past the offset and reports 100.
        let ar = b
            .begin_receive_from(stale_vec(100), SocketFlags::PEEK, None, None)
            .unwrap();
        let (n, buf, _) = b.end_receive_from(&ar).unwrap();
        assert_eq!(n, 100);
        assert_eq!(buf[..60], datagram[40..]);
        // What lies past the copy was not written by the kernel: it must not be the
        // buffer's old memory (or, in fresh memory, uninitialized bytes).
        assert!(
            buf[60..].iter().all(|&b| b != 0xAA),
            "the buffer claims bytes the kernel never wrote: {:?}",
            &buf[60..]
        );
    });
}

/// A send buffer that changes its bytes at every call: shorter, longer, elsewhere.
/// Safe code, so the library may send odd bytes, but must neither panic nor read out
/// of bounds.
struct Shifty {
    calls: AtomicUsize,
    a: Vec<u8>,
    b: Vec<u8>,
}

impl IoBuf for Shifty {
    fn as_bytes(&self) -> &[u8] {
        let k = self.calls.fetch_add(1, Ordering::Relaxed);
        match k % 4 {
            0 => &self.a,
            1 => &self.b[..self.b.len() / 3],
            2 => &[],
            _ => &self.b,
        }
    }
}

fn shifty() -> Shifty {
    Shifty {
        calls: AtomicUsize::new(0),
        a: vec![1u8; 3 << 20],
        b: vec![2u8; 5 << 20],
    }
}

#[test]
fn a_send_buffer_whose_bytes_change_between_calls_harms_nothing() {
    bounded(secs(60), || {
        for vectored in [false, true] {
            let (ours, mut theirs) = tcp_to_std();
            ours.as_socket2().set_send_buffer_size(4096).unwrap();
            let reader = std::thread::spawn(move || {
                let mut total = 0usize;
                let mut chunk = vec![0u8; 1 << 16];
                while let Ok(n) = theirs.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    total += n;
                }
                total
            });
            let ar = if vectored {
                ours.begin_send_vectored(
                    vec![shifty(), shifty(), shifty()],
                    SocketFlags::NONE,
                    None,
                    None,
                )
                .unwrap()
            } else {
                ours.begin_send(shifty(), SocketFlags::NONE, None, None)
                    .unwrap()
            };
            let sent = ours.end_send(&ar).unwrap();
            ours.shutdown(std::net::Shutdown::Write).unwrap();
            let got = reader.join().unwrap();
            // A buffer that breaks `as_bytes`' contract may be reported oddly (a plain
            // send reports the length of its last view); a vectored send counts what
            // went out.
            if vectored {
                assert_eq!(got, sent, "the count says what went out");
            }
            // The engine still works.
            let (x, mut y) = tcp_to_std();
            x.end_send(&x.begin_send(b"ok", SocketFlags::NONE, None, None).unwrap())
                .unwrap();
            let mut two = [0u8; 2];
            y.read_exact(&mut two).unwrap();
            assert_eq!(&two, b"ok");
        }
    });
}

/// Datagram sends whose parts change between calls: one datagram of whatever the
/// parts were at the syscall.
#[test]
fn a_vectored_datagram_of_shifting_parts_is_sent_whole() {
    bounded(secs(10), || {
        let a = Socket::bind_udp(localhost()).unwrap();
        let b = UdpSocket::bind(localhost()).unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        let parts = (0..3)
            .map(|_| Shifty {
                calls: AtomicUsize::new(0),
                a: vec![1u8; 100],
                b: vec![2u8; 300],
            })
            .collect();
        let n = a
            .end_send(
                &a.begin_send_vectored(parts, SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        let mut buf = vec![0u8; 2048];
        let (got, _) = b.recv_from(&mut buf).unwrap();
        assert_eq!(got, n);
    });
}

/// Huge and zero capacities, and truncated datagrams, into `Vec` and `Box<[u8]>`.
#[test]
fn receive_buffers_of_extreme_capacities_hold_only_received_bytes() {
    bounded(secs(20), || {
        let a = Socket::bind_udp(localhost()).unwrap();
        let b = Socket::bind_udp(localhost()).unwrap();
        let to = b.local_addr().unwrap();
        let send = |bytes: Vec<u8>| {
            a.end_send_to(
                &a.begin_send_to(bytes, SocketFlags::NONE, to, None, None)
                    .unwrap(),
            )
            .unwrap()
        };
        // Huge: 64 MiB of capacity (never touched beyond the datagram).
        send(pattern(1000, 3));
        let ar = b
            .begin_receive(Vec::with_capacity(64 << 20), SocketFlags::NONE, None, None)
            .unwrap();
        let (n, buf) = b.end_receive(&ar).unwrap();
        assert_eq!((n, buf.len()), (1000, 1000));
        assert_eq!(buf, pattern(1000, 3));
        // Truncated into fresh memory: the head only, the full length reported.
        send(pattern(3000, 4));
        let ar = b
            .begin_receive_from(Vec::with_capacity(7), SocketFlags::NONE, None, None)
            .unwrap();
        let (n, buf, _) = b.end_receive_from(&ar).unwrap();
        assert_eq!(n, 3000);
        assert!(buf.len() <= buf.capacity() && buf.len() < 3000);
        assert_eq!(buf, pattern(3000, 4)[..buf.len()]);
        // Truncated, peeked, then taken, through `receive` into a Box.
        send(pattern(50, 5));
        let ar = b
            .begin_receive(
                vec![0u8; 10].into_boxed_slice(),
                SocketFlags::PEEK,
                None,
                None,
            )
            .unwrap();
        let (n, boxed) = b.end_receive(&ar).unwrap();
        assert_eq!((n, &boxed[..]), (50, &pattern(50, 5)[..10]));
        // Zero capacity: a probe (receive) and a consuming receive_from.
        let ar = b
            .begin_receive(Vec::new(), SocketFlags::NONE, None, None)
            .unwrap();
        let (n, empty) = b.end_receive(&ar).unwrap();
        assert_eq!((n, empty.len()), (0, 0));
        let ar = b
            .begin_receive_from(Box::<[u8]>::from(&[][..]), SocketFlags::NONE, None, None)
            .unwrap();
        let (n, empty, _) = b.end_receive_from(&ar).unwrap();
        assert_eq!((n, empty.len()), (50, 0));
    });
}

/// A stream receive into a `Vec` whose memory held older bytes: only what arrived is
/// handed back, from index 0, and a second receive replaces the first.
#[test]
fn stream_receives_into_reused_vecs_hold_only_new_bytes() {
    bounded(secs(10), || {
        let (ours, mut theirs) = tcp_to_std();
        theirs.write_all(b"first").unwrap();
        let mut buf = stale_vec(4096);
        for expected in [&b"first"[..], &b"second!"[..]] {
            let ar = ours
                .begin_receive(buf, SocketFlags::NONE, None, None)
                .unwrap();
            let (n, back) = ours.end_receive(&ar).unwrap();
            assert_eq!((n, &back[..]), (expected.len(), expected));
            buf = back;
            theirs.write_all(b"second!").unwrap();
        }
    });
}
