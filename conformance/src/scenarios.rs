//! The scenarios: each one a behaviour every adapter must show, written once against
//! [`Harness`]. A scenario panics (with what it saw) when the adapter misbehaves.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use asyncresult_core::Error;

use crate::harness::{Harness, HarnessExt, WAIT};
use crate::{loopback, pattern};

fn errno<T>(r: &Result<T, Error>) -> Option<i32> {
    r.as_ref().err().and_then(Error::error_code)
}

/// A stream of ours connected to a plain std stream (an independent witness).
fn to_std<H: Harness>(h: &H) -> (H::Stream, std::net::TcpStream) {
    let listener = TcpListener::bind(loopback()).expect("std listener");
    let ours = h
        .connect(listener.local_addr().expect("addr"))
        .expect("connect");
    let (theirs, _) = listener.accept().expect("accept");
    (ours, theirs)
}

fn read_all(mut s: std::net::TcpStream) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut all = Vec::new();
        s.read_to_end(&mut all).expect("read_to_end");
        all
    })
}

/// A send on a stream completes only when the whole buffer is sent, and reports its
/// full length; the peer gets exactly those bytes.
pub fn whole_sends<H: Harness>(h: &H) {
    let (ours, theirs) = to_std(h);
    let reader = read_all(theirs);
    let big = pattern(4 << 20, 1);
    let small = pattern(100, 2);
    assert_eq!(
        h.send(&ours, big.clone()).map_err(|e| e.to_string()),
        Ok(big.len())
    );
    assert_eq!(
        h.send(&ours, small.clone()).map_err(|e| e.to_string()),
        Ok(100)
    );
    h.socket(&ours).close();
    let got = reader.join().expect("reader");
    assert_eq!(got.len(), big.len() + small.len());
    assert!(got[..big.len()] == big[..] && got[big.len()..] == small[..]);
}

/// Sends started concurrently from several threads never interleave, and each
/// thread's sends arrive in the order it started them.
pub fn ordering<H: Harness>(h: &H) {
    const THREADS: u32 = 4;
    const RECORDS: u32 = 40;
    let (ours, theirs) = to_std(h);
    let reader = read_all(theirs);
    thread::scope(|scope| {
        for t in 0..THREADS {
            let ours = &ours;
            scope.spawn(move || {
                let records: Vec<Vec<u8>> = (0..RECORDS)
                    .map(|seq| {
                        let len = ((seq * 7919 + t * 104_729) % 60_000) as usize;
                        let mut rec = Vec::with_capacity(12 + len);
                        rec.extend_from_slice(&t.to_le_bytes());
                        rec.extend_from_slice(&seq.to_le_bytes());
                        rec.extend_from_slice(&(len as u32).to_le_bytes());
                        rec.extend((0..len).map(|i| (i as u8) ^ (t as u8) ^ (seq as u8)));
                        rec
                    })
                    .collect();
                let lens: Vec<usize> = records.iter().map(Vec::len).collect();
                let sent = h
                    .start_sends(ours, records)
                    .wait(WAIT * 3)
                    .expect("sends complete");
                assert_eq!(sent.map_err(|e| e.to_string()), Ok(lens));
            });
        }
    });
    h.socket(&ours).close();
    let data = reader.join().expect("reader");
    let mut next = [0u32; THREADS as usize];
    let mut at = 0;
    while at < data.len() {
        let word =
            |o: usize| u32::from_le_bytes(data[at + o..at + o + 4].try_into().expect("4 bytes"));
        let (t, seq, len) = (word(0), word(4), word(8) as usize);
        assert!(t < THREADS, "garbage at {at}: records interleaved");
        assert_eq!(seq, next[t as usize], "thread {t} out of order");
        let body = &data[at + 12..at + 12 + len];
        assert!(
            body.iter()
                .enumerate()
                .all(|(i, &b)| b == (i as u8) ^ (t as u8) ^ (seq as u8)),
            "record {t}/{seq} torn"
        );
        next[t as usize] += 1;
        at += 12 + len;
    }
    assert!(
        next.iter().all(|&n| n == RECORDS),
        "records missing: {next:?}"
    );
}

/// Closing a socket completes each pending operation exactly once with `Disposed`.
pub fn close_while_pending<H: Harness>(h: &H) {
    let (ours, _theirs) = to_std(h);
    let receive = h.start_receive(&ours, 64);
    let (sender, _idle_peer) = to_std(h);
    let send = h.start_sends(&sender, vec![vec![0u8; 32 << 20]]);
    let listener = h.listen(loopback()).expect("listen");
    let accept = h.start_accept(&listener);
    assert!(
        receive.wait(Duration::from_millis(50)).is_none(),
        "receive did not wait"
    );
    h.socket(&ours).close();
    h.socket(&sender).close();
    h.listener_socket(&listener).close();
    for (what, outcome) in [
        ("receive", receive.wait(WAIT).map(|r| r.map(|_| ()))),
        ("send", send.wait(WAIT).map(|r| r.map(|_| ()))),
        ("accept", accept.wait(WAIT).map(|r| r.map(|_| ()))),
    ] {
        match outcome {
            Some(Err(Error::Disposed)) => {}
            other => panic!("{what} pending at close ended with {other:?}, not Disposed"),
        }
    }
    // Exactly once.
    assert!(!receive.reports_again(Duration::from_millis(50)));
    assert!(!send.reports_again(Duration::from_millis(10)));
    assert!(!accept.reports_again(Duration::from_millis(10)));
}

/// After close every operation fails with `Disposed`; a connect to a closed port is
/// refused promptly.
pub fn misuse<H: Harness>(h: &H) {
    let (ours, _theirs) = to_std(h);
    h.socket(&ours).close();
    assert!(matches!(h.send(&ours, vec![1]), Err(Error::Disposed)));
    assert!(matches!(h.receive(&ours, 8), Err(Error::Disposed)));
    let listener = h.listen(loopback()).expect("listen");
    h.listener_socket(&listener).close();
    assert!(matches!(h.accept(&listener), Err(Error::Disposed)));
    let udp = h.udp_bind(loopback()).expect("udp");
    h.udp_socket(&udp).close();
    assert!(matches!(
        h.udp_send_to(&udp, vec![1], "127.0.0.1:9".parse().expect("addr")),
        Err(Error::Disposed)
    ));
    let closed_port = TcpListener::bind(loopback())
        .and_then(|l| l.local_addr())
        .expect("port");
    let started = Instant::now();
    let refused = h.connect(closed_port);
    assert_eq!(
        errno(&refused),
        Some(libc::ECONNREFUSED),
        "{:?}",
        refused.err()
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// A reset from the peer arrives as `Error::Socket` with ECONNRESET (receive) or
/// ECONNRESET/EPIPE (send), never as a panic or a signal.
pub fn reset<H: Harness>(h: &H) {
    let (ours, theirs) = to_std(h);
    let pending = h.start_receive(&ours, 64);
    socket2::SockRef::from(&theirs)
        .set_linger(Some(Duration::ZERO))
        .expect("linger");
    drop(theirs);
    let received = pending.wait(WAIT).expect("receive completes");
    assert_eq!(errno(&received), Some(libc::ECONNRESET), "{received:?}");
    let sent = h.send(&ours, vec![0u8; 1024]);
    let code = errno(&sent);
    assert!(
        code == Some(libc::EPIPE) || code == Some(libc::ECONNRESET),
        "send after reset: {sent:?}"
    );
}

/// UDP: datagrams whole, truncation reported, empty datagrams, EMSGSIZE.
pub fn udp<H: Harness>(h: &H) {
    let a = h.udp_bind(loopback()).expect("bind a");
    let b = h.udp_bind(loopback()).expect("bind b");
    let (a_addr, b_addr) = (
        h.udp_socket(&a).local_addr().expect("a"),
        h.udp_socket(&b).local_addr().expect("b"),
    );
    let pending = h.start_receive_from(&b, 2048);
    assert_eq!(h.udp_send_to(&a, pattern(1000, 3), b_addr).ok(), Some(1000));
    let (n, buf, from) = pending.wait(WAIT).expect("datagram").expect("receive_from");
    assert_eq!((n, from), (1000, a_addr));
    assert_eq!(buf, pattern(1000, 3));
    // Truncated: the count is the datagram's full length.
    let pending = h.start_receive_from(&b, 16);
    assert_eq!(h.udp_send_to(&a, pattern(300, 4), b_addr).ok(), Some(300));
    let (n, buf, _) = pending.wait(WAIT).expect("datagram").expect("receive_from");
    assert_eq!(n, 300);
    assert!(buf.len() < n && buf[..] == pattern(300, 4)[..buf.len()]);
    // Connected send; an empty datagram; an oversize one.
    h.udp_connect(&a, b_addr).expect("connect");
    let pending = h.start_receive_from(&b, 64);
    assert_eq!(h.udp_send(&a, Vec::new()).ok(), Some(0));
    let (n, _, _) = pending
        .wait(WAIT)
        .expect("datagram")
        .expect("empty datagram");
    assert_eq!(n, 0);
    let oversize = h.udp_send(&a, vec![0u8; 70_000]);
    assert_eq!(errno(&oversize), Some(libc::EMSGSIZE), "{oversize:?}");
    // The std world sees the same datagrams.
    let std_peer = UdpSocket::bind(loopback()).expect("std udp");
    assert_eq!(
        h.udp_send_to(&a, b"to std".to_vec(), std_peer.local_addr().expect("addr"))
            .ok(),
        Some(6)
    );
    let mut buf = [0u8; 16];
    let (n, from) = std_peer.recv_from(&mut buf).expect("std recv");
    assert_eq!((&buf[..n], from), (&b"to std"[..], a_addr));
}

/// Accepts are served one by one, each with the right peer.
pub fn accept_connect<H: Harness>(h: &H) {
    let listener = h.listen(loopback()).expect("listen");
    let addr = h.listener_socket(&listener).local_addr().expect("addr");
    for _ in 0..4 {
        let accepting = h.start_accept(&listener);
        let client = h.connect(addr).expect("connect");
        let server = accepting.wait(WAIT).expect("accepted").expect("accept");
        assert_eq!(
            h.socket(&server).peer_addr().ok(),
            h.socket(&client).local_addr().ok()
        );
        // Usable at once, both ways.
        assert_eq!(h.send(&server, b"hi".to_vec()).ok(), Some(2));
        assert_eq!(h.receive_exact(&client, 2).ok(), Some(b"hi".to_vec()));
    }
}

/// Receive semantics: a zero-capacity receive waits for data without taking it;
/// after the peer's FIN a receive returns 0, and keeps returning 0.
pub fn receive_semantics<H: Harness>(h: &H) {
    let (ours, mut theirs) = to_std(h);
    let probe = h.start_receive(&ours, 0);
    assert!(
        probe.wait(Duration::from_millis(50)).is_none(),
        "probe did not wait"
    );
    theirs.write_all(b"payload").expect("write");
    assert_eq!(
        probe.wait(WAIT).map(|r| r.map(|b| b.len()).ok()),
        Some(Some(0))
    );
    assert_eq!(h.receive_exact(&ours, 7).ok(), Some(b"payload".to_vec()));
    theirs.shutdown(Shutdown::Write).expect("shutdown");
    for _ in 0..3 {
        assert_eq!(h.receive(&ours, 64).map(|b| b.len()).ok(), Some(0));
    }
}

/// Cancel (through a timeout): a timed-out receive takes nothing and the socket stays
/// usable; a timed-out send that tore the stream shuts the send side down.
pub fn cancel<H: Harness>(h: &H) {
    let (ours, mut theirs) = to_std(h);
    let started = Instant::now();
    let timed_out = h.receive_timeout(&ours, 64, Duration::from_millis(100));
    assert!(matches!(timed_out, Err(Error::Aborted)), "{timed_out:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    theirs.write_all(b"all of it").expect("write");
    assert_eq!(h.receive_exact(&ours, 9).ok(), Some(b"all of it".to_vec()));

    let (sender, theirs2) = to_std(h);
    let torn = h.send_timeout(&sender, vec![b'a'; 32 << 20], Duration::from_millis(100));
    assert!(matches!(torn, Err(Error::Aborted)), "{torn:?}");
    let later = h.send(&sender, vec![b'b'; 10]);
    assert_eq!(errno(&later), Some(libc::EPIPE), "{later:?}");
    let got = read_all(theirs2).join().expect("reader");
    assert!(got.iter().all(|&b| b == b'a'), "a later send spliced in");
    drop(theirs);
}

/// A send abandoned mid-flight (future dropped, result dropped) still goes out whole,
/// before any later send.
pub fn dropped_send<H: Harness>(h: &H) {
    let (ours, theirs) = to_std(h);
    let reader = read_all(theirs);
    let big = pattern(8 << 20, 5);
    h.send_and_forget(&ours, big.clone());
    assert_eq!(h.send(&ours, b"marker".to_vec()).ok(), Some(6));
    h.socket(&ours).close();
    let got = reader.join().expect("reader");
    assert_eq!(got.len(), big.len() + 6);
    assert!(got[..big.len()] == big[..]);
    assert_eq!(&got[big.len()..], b"marker");
}

/// A request/response exchange, both ends on the adapter, every byte checked.
pub fn echo<H: Harness>(h: &H) {
    let (client, server) = h.pair().expect("pair");
    h.socket(&client).set_nodelay(true).expect("nodelay");
    h.socket(&server).set_nodelay(true).expect("nodelay");
    thread::scope(|scope| {
        let server = &server;
        scope.spawn(move || loop {
            match h.receive(server, 4096) {
                Ok(buf) if !buf.is_empty() => {
                    assert_eq!(h.send(server, buf.clone()).ok(), Some(buf.len()));
                }
                _ => return,
            }
        });
        for round in 0..300usize {
            let request = pattern(1 + round * 37 % 3000, round as u8);
            assert_eq!(h.send(&client, request.clone()).ok(), Some(request.len()));
            let reply = h.receive_exact(&client, request.len()).expect("reply");
            assert_eq!(reply, request, "round {round}");
        }
        h.socket(&client)
            .shutdown(Shutdown::Write)
            .expect("shutdown");
    });
}
