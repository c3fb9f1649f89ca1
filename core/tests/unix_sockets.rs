//! Unix domain sockets adopted through `TryFrom<socket2::Socket>`: streams, datagrams
//! and sequenced packets, through the core's Begin/End API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::thread;
use std::time::Duration;

use asyncresult_core::{Domain, Error, Socket, SocketFlags, Type};
use common::{bounded, pattern, secs};

fn errno<T: std::fmt::Debug>(r: Result<T, Error>) -> Option<i32> {
    r.err().and_then(|e| e.error_code())
}

/// Our socket on one end of a Unix pair of `ty`, a plain socket2 on the other.
fn pair(ty: Type) -> (Socket, socket2::Socket) {
    let (ours, theirs) = socket2::Socket::pair(Domain::UNIX, ty, None).unwrap();
    (Socket::try_from(ours).unwrap(), theirs)
}

fn receive(s: &Socket, cap: usize) -> Result<(usize, Vec<u8>), Error> {
    s.end_receive(
        &s.begin_receive(Vec::with_capacity(cap), SocketFlags::NONE, None, None)
            .unwrap(),
    )
}

fn send(s: &Socket, data: Vec<u8>) -> Result<usize, Error> {
    s.end_send(&s.begin_send(data, SocketFlags::NONE, None, None).unwrap())
}

/// Reads from a Unix stream socket2 until end of stream.
fn read_to_end(theirs: socket2::Socket) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut s = UnixStream::from(std::os::fd::OwnedFd::from(theirs));
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        all
    })
}

#[test]
fn unix_stream_whole_sends_vectored_sends_and_order() {
    bounded(secs(30), || {
        let (s, theirs) = pair(Type::STREAM);
        let reader = read_to_end(theirs);
        let big = pattern(8 << 20, 3);
        let a = s
            .begin_send(big.clone(), SocketFlags::NONE, None, None)
            .unwrap();
        let parts = vec![
            pattern(100_000, 1),
            Vec::new(),
            pattern(3, 2),
            pattern(1 << 20, 9),
        ];
        let expect_v: Vec<u8> = parts.concat();
        let v = s
            .begin_send_vectored(parts, SocketFlags::NONE, None, None)
            .unwrap();
        assert_eq!(s.end_send(&a).unwrap(), 8 << 20);
        assert_eq!(s.end_send(&v).unwrap(), expect_v.len());
        s.shutdown(Shutdown::Write).unwrap();
        let got = reader.join().unwrap();
        assert_eq!(got.len(), big.len() + expect_v.len());
        assert!(got[..big.len()] == big[..], "first send intact");
        assert!(got[big.len()..] == expect_v[..], "vectored send intact");
    });
}

/// Many small writes by the peer, read with exact-size receives: nothing is missed,
/// including when a read fills its buffer exactly (no TCP drain proof on Unix).
#[test]
fn unix_stream_exact_size_reads_never_miss_data() {
    bounded(secs(30), || {
        let (s, theirs) = pair(Type::STREAM);
        const N: usize = 20_000;
        let writer = thread::spawn(move || {
            let mut w = UnixStream::from(std::os::fd::OwnedFd::from(theirs));
            for i in 0..N {
                w.write_all(&(i as u32).to_le_bytes()).unwrap();
            }
            w
        });
        for i in 0..N {
            let mut got = Vec::with_capacity(4);
            while got.len() < 4 {
                let want = 4 - got.len();
                let buf: Box<[u8]> = vec![0u8; want].into_boxed_slice();
                let ar = s.begin_receive(buf, SocketFlags::NONE, None, None).unwrap();
                let (n, buf) = s.end_receive(&ar).unwrap();
                assert!(n > 0, "unexpected end of stream at {i}");
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(u32::from_le_bytes(got.try_into().unwrap()), i as u32);
        }
        // A read that filled its buffer, then the peer writes once more: the next
        // read still gets it.
        let mut w = writer.join().unwrap();
        let ar = s
            .begin_receive(
                vec![0u8; 1].into_boxed_slice(),
                SocketFlags::NONE,
                None,
                None,
            )
            .unwrap();
        assert!(!ar.wait_timeout(Duration::from_millis(20)));
        w.write_all(b"xy").unwrap();
        assert_eq!(s.end_receive(&ar).unwrap().0, 1);
        let (n, buf) = receive(&s, 8).unwrap();
        assert_eq!(&buf[..n], b"y");
    });
}

#[test]
fn unix_stream_peek_probe_end_of_stream_stays_zero() {
    bounded(secs(20), || {
        let (s, theirs) = pair(Type::STREAM);
        // A probe waits for data and consumes nothing.
        let probe = s
            .begin_receive(Vec::new(), SocketFlags::NONE, None, None)
            .unwrap();
        assert!(!probe.wait_timeout(Duration::from_millis(20)));
        theirs.send(b"hello").unwrap();
        assert_eq!(s.end_receive(&probe).unwrap().0, 0);
        let ar = s
            .begin_receive(Vec::with_capacity(3), SocketFlags::PEEK, None, None)
            .unwrap();
        let (n, buf) = s.end_receive(&ar).unwrap();
        assert_eq!((n, &buf[..]), (3, &b"hel"[..]));
        let (n, buf) = receive(&s, 16).unwrap();
        assert_eq!(&buf[..n], b"hello");
        // End of stream: 0, and it stays 0, for a receive, a probe and a peek.
        let pending = s
            .begin_receive(Vec::with_capacity(16), SocketFlags::NONE, None, None)
            .unwrap();
        theirs.shutdown(Shutdown::Write).unwrap();
        assert_eq!(s.end_receive(&pending).unwrap().0, 0);
        for _ in 0..3 {
            assert_eq!(receive(&s, 16).unwrap().0, 0);
            assert_eq!(receive(&s, 0).unwrap().0, 0);
            let ar = s
                .begin_receive(Vec::with_capacity(4), SocketFlags::PEEK, None, None)
                .unwrap();
            assert_eq!(s.end_receive(&ar).unwrap().0, 0);
        }
        // The send side still works.
        assert_eq!(send(&s, b"back".to_vec()).unwrap(), 4);
        let mut back = [std::mem::MaybeUninit::new(0u8); 8];
        assert_eq!(theirs.recv(&mut back).unwrap(), 4);
    });
}

#[test]
fn unix_stream_peer_gone_errors_and_pending_send() {
    bounded(secs(20), || {
        let (s, theirs) = pair(Type::STREAM);
        // A send that cannot finish (nobody reads), then the peer goes away: the send
        // fails (EPIPE or ECONNRESET), it does not hang.
        let ar = s
            .begin_send(vec![7u8; 16 << 20], SocketFlags::NONE, None, None)
            .unwrap();
        assert!(!ar.wait_timeout(Duration::from_millis(50)));
        drop(theirs);
        let e = errno(s.end_send(&ar));
        assert!(
            e == Some(libc::EPIPE) || e == Some(libc::ECONNRESET),
            "{e:?}"
        );
        assert_eq!(errno(send(&s, b"x".to_vec())), Some(libc::EPIPE));
        // The receive side reports the reset the kernel set (the peer went with unread
        // bytes), once, then end of stream, which stays.
        let first = receive(&s, 8);
        assert!(
            matches!(first, Ok((0, _))) || errno(first) == Some(libc::ECONNRESET),
            "reset or end"
        );
        assert_eq!(receive(&s, 8).unwrap().0, 0);
        assert_eq!(receive(&s, 8).unwrap().0, 0);
    });
}

#[test]
fn unix_stream_close_and_cancel_with_pending_operations() {
    bounded(secs(20), || {
        let (s, theirs) = pair(Type::STREAM);
        let r1 = s
            .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        let r2 = s
            .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        assert!(r1.cancel());
        assert!(matches!(s.end_receive(&r1), Err(Error::Aborted)));
        theirs.send(b"ok").unwrap();
        let (n, buf) = s.end_receive(&r2).unwrap();
        assert_eq!(&buf[..n], b"ok");
        let r3 = s
            .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        let big = s
            .begin_send(vec![1u8; 16 << 20], SocketFlags::NONE, None, None)
            .unwrap();
        let queued = s
            .begin_send(b"tail".to_vec(), SocketFlags::NONE, None, None)
            .unwrap();
        s.close();
        assert!(matches!(s.end_receive(&r3), Err(Error::Disposed)));
        assert!(matches!(s.end_send(&big), Err(Error::Disposed)));
        assert!(matches!(s.end_send(&queued), Err(Error::Disposed)));
        assert!(matches!(
            s.begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None),
            Err(Error::Disposed)
        ));
    });
}

/// §7: "A connected stream is shut down at once (the peer sees FIN, or RST when
/// pending sends were aborted)". With unread received bytes the core tries the TCP
/// abort (`connect(AF_UNSPEC)`), which a Unix stream refuses: the peer must still see
/// the end at close, not when the last handle goes.
#[test]
fn unix_stream_close_with_unread_bytes_ends_the_peer_at_once() {
    bounded(secs(20), || {
        let (s, theirs) = pair(Type::STREAM);
        let keep = s.clone(); // another handle: the descriptor outlives close()
        theirs.send(b"never read").unwrap();
        let peer = Socket::try_from(theirs).unwrap();
        let ar = peer
            .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        s.close();
        assert!(
            ar.wait_timeout(Duration::from_secs(5)),
            "the peer did not see the closed Unix stream end"
        );
        let r = peer.end_receive(&ar);
        assert!(
            matches!(r, Ok((0, _))) || errno(r) == Some(libc::ECONNRESET),
            "end of stream or reset"
        );
        drop(keep);
    });
}

/// Same with an aborted pending send.
#[test]
fn unix_stream_close_with_aborted_send_ends_the_peer_at_once() {
    bounded(secs(20), || {
        let (s, theirs) = pair(Type::STREAM);
        let keep = s.clone();
        let big = s
            .begin_send(vec![1u8; 16 << 20], SocketFlags::NONE, None, None)
            .unwrap();
        let reader = read_to_end(theirs);
        // Let the reader drain at least some, then close with the send pending.
        s.close();
        assert!(matches!(s.end_send(&big), Err(Error::Disposed) | Ok(_)));
        // The reader must finish (EOF) while `keep` still holds the descriptor.
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(reader.join().is_ok());
        });
        let done = rx.recv_timeout(Duration::from_secs(5));
        assert!(
            done.is_ok(),
            "the peer did not see the closed Unix stream end"
        );
        drop(keep);
    });
}

#[test]
fn seqpacket_boundaries_truncation_and_whole_messages() {
    bounded(secs(20), || {
        let (s, theirs) = pair(Type::SEQPACKET);
        assert!(
            !s.is_stream(),
            "a SEQPACKET socket keeps message boundaries"
        );
        for m in [&b"one"[..], b"two!", b"three"] {
            theirs.send(m).unwrap();
        }
        for m in [&b"one"[..], b"two!", b"three"] {
            let (n, buf) = receive(&s, 64).unwrap();
            assert_eq!(&buf[..n], m);
        }
        // Longer than the buffer: truncated, count is the full length.
        theirs.send(&pattern(1000, 5)).unwrap();
        let (n, buf) = s
            .end_receive(
                &s.begin_receive(
                    vec![0u8; 10].into_boxed_slice(),
                    SocketFlags::NONE,
                    None,
                    None,
                )
                .unwrap(),
            )
            .unwrap();
        assert_eq!(n, 1000);
        assert_eq!(&buf[..], &pattern(1000, 5)[..10]);
        // A zero-length message: 0, and the next message still comes.
        theirs.send(b"").unwrap();
        theirs.send(b"after").unwrap();
        assert_eq!(receive(&s, 16).unwrap().0, 0);
        let (n, buf) = receive(&s, 16).unwrap();
        assert_eq!(&buf[..n], b"after");
        // Vectored send: one message.
        let v = s
            .begin_send_vectored(
                vec![b"ab".to_vec(), b"cd".to_vec()],
                SocketFlags::NONE,
                None,
                None,
            )
            .unwrap();
        assert_eq!(s.end_send(&v).unwrap(), 4);
        let mut got = [std::mem::MaybeUninit::new(0u8); 16];
        assert_eq!(theirs.recv(&mut got).unwrap(), 4);
        // A large message goes out whole (or fails with EMSGSIZE), never split.
        let big = pattern(100_000, 7);
        let r = send(&s, big.clone());
        match r {
            Ok(n) => {
                assert_eq!(n, big.len());
                let mut got = vec![std::mem::MaybeUninit::new(0u8); 200_000];
                assert_eq!(theirs.recv(&mut got).unwrap(), big.len());
            }
            Err(e) => assert_eq!(e.error_code(), Some(libc::EMSGSIZE)),
        }
        // The peer goes: receive reports 0 (like a zero-length message) and stays 0;
        // a send fails with EPIPE.
        let pending = s
            .begin_receive(Vec::with_capacity(16), SocketFlags::NONE, None, None)
            .unwrap();
        drop(theirs);
        assert_eq!(s.end_receive(&pending).unwrap().0, 0);
        assert_eq!(receive(&s, 16).unwrap().0, 0);
        assert_eq!(receive(&s, 0).unwrap().0, 0);
        assert_eq!(errno(send(&s, b"x".to_vec())), Some(libc::EPIPE));
    });
}

/// §7 again, for a connected SEQPACKET socket (which the core counts as datagrams):
/// close() with another handle alive must end the connection for the peer.
#[test]
fn seqpacket_close_ends_the_peer_at_once() {
    bounded(secs(20), || {
        let (s, theirs) = pair(Type::SEQPACKET);
        let keep = s.clone();
        let peer = Socket::try_from(theirs).unwrap();
        let ar = peer
            .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        s.close();
        assert!(
            ar.wait_timeout(Duration::from_secs(5)),
            "the peer did not see the closed SEQPACKET connection end"
        );
        assert_eq!(peer.end_receive(&ar).unwrap().0, 0);
        drop(keep);
    });
}

#[test]
fn unix_datagram_connected_backpressure_and_peer_gone() {
    bounded(secs(30), || {
        let (s, theirs) = pair(Type::DGRAM);
        let theirs = UnixDatagram::from(std::os::fd::OwnedFd::from(theirs));
        // Fill the peer's queue: sends wait (EAGAIN) and complete as it reads.
        const N: usize = 3000;
        let ars: Vec<_> = (0..N)
            .map(|i| {
                s.begin_send(
                    (i as u32).to_le_bytes().to_vec(),
                    SocketFlags::NONE,
                    None,
                    None,
                )
                .unwrap()
            })
            .collect();
        let mut buf = [0u8; 16];
        for i in 0..N {
            let n = theirs.recv(&mut buf).unwrap();
            assert_eq!(n, 4);
            assert_eq!(u32::from_le_bytes(buf[..4].try_into().unwrap()), i as u32);
        }
        for ar in &ars {
            assert_eq!(s.end_send(ar).unwrap(), 4);
        }
        // send_to with an IP address on a Unix socket: an error through the result.
        let ar = s
            .begin_send_to(
                b"ip".to_vec(),
                SocketFlags::NONE,
                "127.0.0.1:9".parse().unwrap(),
                None,
                None,
            )
            .unwrap();
        assert!(matches!(s.end_send_to(&ar), Err(Error::Socket(_))));
        // receive_from refused, nothing lost.
        theirs.send(b"kept").unwrap();
        let ar = s
            .begin_receive_from(Vec::with_capacity(16), SocketFlags::NONE, None, None)
            .unwrap();
        assert_eq!(errno(s.end_receive_from(&ar)), Some(libc::EAFNOSUPPORT));
        let (n, buf) = receive(&s, 16).unwrap();
        assert_eq!(&buf[..n], b"kept");
        // A pending send blocked on a full queue, then the peer goes away.
        let mut i = 0;
        let blocked = loop {
            let ar = s
                .begin_send(vec![1u8; 64], SocketFlags::NONE, None, None)
                .unwrap();
            i += 1;
            if !ar.wait_timeout(Duration::from_millis(5)) {
                break ar;
            }
            assert!(i < 100_000);
        };
        drop(theirs);
        let e = errno(s.end_send(&blocked));
        assert!(
            e == Some(libc::ECONNREFUSED) || e == Some(libc::ECONNRESET) || e == Some(libc::EPIPE),
            "{e:?}"
        );
        let e = errno(send(&s, b"x".to_vec()));
        assert!(e.is_some(), "{e:?}");
        assert!(s.local_addr().is_err() && s.peer_addr().is_err());
    });
}

#[test]
fn unix_connect_with_an_ip_address_is_an_error_through_the_result() {
    bounded(secs(20), || {
        for ty in [Type::STREAM, Type::DGRAM, Type::SEQPACKET] {
            let s = Socket::new(Domain::UNIX, ty, None).unwrap();
            let ar = s
                .begin_connect("127.0.0.1:9".parse().unwrap(), None, None)
                .unwrap();
            let r = s.end_connect(&ar);
            assert!(matches!(r, Err(Error::Socket(_))), "{ty:?}: {r:?}");
            assert!(matches!(s.local_addr(), Err(Error::Socket(_))));
            assert!(matches!(s.peer_addr(), Err(Error::Socket(_))));
        }
    });
}

/// Unix sockets bound to a path and to an abstract name, connected with socket2.
#[test]
fn unix_bound_path_and_abstract_name() {
    bounded(secs(20), || {
        let dir = std::env::temp_dir().join(format!("asyncresult-unix-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let abs = socket2::SockAddr::unix(format!("\0asyncresult-{}", std::process::id())).unwrap();
        for addr in [socket2::SockAddr::unix(&path).unwrap(), abs] {
            let l = socket2::Socket::new(Domain::UNIX, Type::SEQPACKET, None).unwrap();
            l.bind(&addr).unwrap();
            l.listen(4).unwrap();
            let l = Socket::try_from(l).unwrap();
            // Refused at begin; a SEQPACKET listener counts as "not a stream" first.
            let e = errno(l.begin_accept(None, None));
            assert!(
                e == Some(libc::EAFNOSUPPORT) || e == Some(libc::EOPNOTSUPP),
                "{e:?}"
            );
            let c = socket2::Socket::new(Domain::UNIX, Type::SEQPACKET, None).unwrap();
            c.connect(&addr).unwrap();
            let c = Socket::try_from(c).unwrap();
            let (a, _) = l.as_socket2().accept().unwrap();
            let a = Socket::try_from(a).unwrap();
            assert_eq!(send(&c, b"m1".to_vec()).unwrap(), 2);
            let (n, buf) = receive(&a, 8).unwrap();
            assert_eq!(&buf[..n], b"m1");
            assert!(a.local_addr().is_err() && c.peer_addr().is_err());
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// §9 on a Unix stream: cancelling a send with part of its bytes out shuts the send
/// side down; later sends fail with EPIPE and the peer reads a prefix, then the end.
#[test]
fn unix_stream_cancel_of_a_torn_send() {
    bounded(secs(20), || {
        let (s, theirs) = pair(Type::STREAM);
        let data = pattern(16 << 20, 4);
        let ar = s
            .begin_send(data.clone(), SocketFlags::NONE, None, None)
            .unwrap();
        let queued = s
            .begin_send(b"after".to_vec(), SocketFlags::NONE, None, None)
            .unwrap();
        assert!(!ar.wait_timeout(Duration::from_millis(20)));
        assert!(ar.cancel());
        assert!(matches!(s.end_send(&ar), Err(Error::Aborted)));
        assert_eq!(errno(s.end_send(&queued)), Some(libc::EPIPE));
        assert_eq!(errno(send(&s, b"new".to_vec())), Some(libc::EPIPE));
        let got = read_to_end(theirs).join().unwrap();
        assert!(!got.is_empty() && got.len() < data.len());
        assert!(
            got[..] == data[..got.len()],
            "a prefix of the cancelled send"
        );
        // Receiving still works (nothing to read: the peer is gone, end of stream).
        assert_eq!(receive(&s, 8).unwrap().0, 0);
    });
}

#[test]
fn unix_datagram_truncation_and_probe() {
    bounded(secs(20), || {
        let (s, theirs) = pair(Type::DGRAM);
        theirs.send(&pattern(500, 1)).unwrap();
        theirs.send(b"").unwrap();
        theirs.send(b"z").unwrap();
        // The probe consumes nothing.
        assert_eq!(receive(&s, 0).unwrap().0, 0);
        let ar = s
            .begin_receive(
                vec![0u8; 7].into_boxed_slice(),
                SocketFlags::NONE,
                None,
                None,
            )
            .unwrap();
        let (n, buf) = s.end_receive(&ar).unwrap();
        assert_eq!(n, 500);
        assert_eq!(&buf[..], &pattern(500, 1)[..7]);
        let (n, buf) = receive(&s, 4).unwrap();
        assert_eq!((n, buf.len()), (0, 0), "the empty datagram");
        let (n, buf) = receive(&s, 4).unwrap();
        assert_eq!(&buf[..n], b"z");
        // Shut our read side: a pending receive ends with 0.
        let pending = s
            .begin_receive(Vec::with_capacity(4), SocketFlags::NONE, None, None)
            .unwrap();
        s.shutdown(Shutdown::Read).unwrap();
        assert_eq!(s.end_receive(&pending).unwrap().0, 0);
    });
}

/// Urgent data on a Unix stream (Linux's `AF_UNIX` out-of-band byte, where the kernel
/// has it): the ordinary receives around the mark get every in-band byte and never hang.
#[test]
fn unix_stream_out_of_band_byte_does_not_stall_reads() {
    bounded(secs(20), || {
        use std::os::fd::AsRawFd;
        let (s, theirs) = pair(Type::STREAM);
        theirs.send(b"ab").unwrap();
        // SAFETY: a valid buffer on a descriptor we own.
        let r = unsafe { libc::send(theirs.as_raw_fd(), b"c".as_ptr().cast(), 1, libc::MSG_OOB) };
        if r != 1 {
            eprintln!(
                "no AF_UNIX out-of-band data here: {}",
                std::io::Error::last_os_error()
            );
            return;
        }
        theirs.send(b"de").unwrap();
        theirs.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        loop {
            let (n, buf) = receive(&s, 64).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert!(
            got == b"abde" || got == b"abcde",
            "{:?}",
            String::from_utf8_lossy(&got)
        );
    });
}

/// The seed's pattern through callbacks on a Unix stream: a chain of receives started
/// from each callback reads everything, each callback runs once, and close completes
/// the last pending one with `Disposed`.
#[test]
fn unix_stream_callback_chain_and_close() {
    use std::sync::{mpsc, Arc};
    bounded(secs(20), || {
        let (s, theirs) = pair(Type::STREAM);
        let (tx, rx) = mpsc::channel::<Result<Vec<u8>, Error>>();
        fn start(s: &Socket, tx: mpsc::Sender<Result<Vec<u8>, Error>>) {
            let state: asyncresult_core::AsyncState = Arc::new(s.clone());
            // A close that races the chain refuses the next begin (Disposed): report it.
            let refused = tx.clone();
            let begun = s.begin_receive(
                Vec::with_capacity(3),
                SocketFlags::NONE,
                Some(Box::new(move |ar| {
                    let s = ar.state::<Socket>().unwrap().clone();
                    match s.end_receive(&ar) {
                        Ok((n, buf)) if n > 0 => {
                            let _ = tx.send(Ok(buf));
                            start(&s, tx);
                        }
                        Ok(_) => {
                            let _ = tx.send(Ok(Vec::new()));
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                })),
                Some(state),
            );
            if let Err(e) = begun {
                let _ = refused.send(Err(e));
            }
        }
        start(&s, tx);
        let data = pattern(100_000, 8);
        let writer = {
            let data = data.clone();
            thread::spawn(move || {
                let mut w = UnixStream::from(std::os::fd::OwnedFd::from(theirs));
                for chunk in data.chunks(777) {
                    w.write_all(chunk).unwrap();
                }
                w
            })
        };
        let mut got = Vec::new();
        while got.len() < data.len() {
            got.extend(rx.recv().unwrap().unwrap());
        }
        assert!(got == data);
        let _w = writer.join().unwrap();
        s.close();
        assert!(matches!(rx.recv().unwrap(), Err(Error::Disposed)));
        assert!(
            rx.recv_timeout(Duration::from_millis(50)).is_err(),
            "one callback each"
        );
    });
}

/// Sends that wait on a full SEQPACKET peer queue complete, in order, as the peer reads.
#[test]
fn seqpacket_backpressure_sends_complete_in_order() {
    bounded(secs(30), || {
        let (s, theirs) = pair(Type::SEQPACKET);
        const N: usize = 3000;
        let ars: Vec<_> = (0..N)
            .map(|i| {
                let mut m = vec![0u8; 2000];
                m[..4].copy_from_slice(&(i as u32).to_le_bytes());
                s.begin_send(m, SocketFlags::NONE, None, None).unwrap()
            })
            .collect();
        assert!(!ars[N - 1].is_completed(), "the queue should have filled");
        let mut buf = [std::mem::MaybeUninit::new(0u8); 4096];
        for i in 0..N {
            assert_eq!(theirs.recv(&mut buf).unwrap(), 2000);
            // SAFETY: recv initialized the first 2000 bytes.
            let head: [u8; 4] = std::array::from_fn(|k| unsafe { buf[k].assume_init() });
            assert_eq!(u32::from_le_bytes(head), i as u32);
        }
        for ar in &ars {
            assert_eq!(s.end_send(ar).unwrap(), 2000);
        }
    });
}
