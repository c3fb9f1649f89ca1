//! A receive after a TCP read that proved the kernel's queue empty (a short read, or
//! a full one after which the kernel counts no bytes left): the next receive waits for
//! an edge without a `recv` that could only say `EAGAIN`, and still completes when
//! data comes. Its own test binary, because the tracer waits for any child of this
//! process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::net::TcpStream;

use asyncresult_core::{Socket, SocketFlags, TryIo};
use common::trace;
use common::*;

/// Connections in the traced section.
const CONNS: usize = 50;

/// A receive with room for more than any message here.
fn room() -> Vec<u8> {
    Vec::with_capacity(4096)
}

/// A receive as a future makes it: try now, and after each readiness wait, again.
fn receive_now_or_after_waits(socket: &Socket, buf: &mut Vec<u8>) -> usize {
    loop {
        match socket.try_receive(buf, SocketFlags::NONE).unwrap() {
            TryIo::Done(n) => return n,
            TryIo::WouldBlock(ready) => ready.wait(),
        }
    }
}

/// A first attempt while nothing has been sent: its readiness wait, so that the reads
/// after it follow a readiness edge (where a read's proof is noted).
fn wait_before_sending(socket: &Socket, buf: &mut Vec<u8>) -> asyncresult_core::AsyncResult<()> {
    match socket.try_receive(buf, SocketFlags::NONE).unwrap() {
        TryIo::WouldBlock(ready) => ready,
        TryIo::Done(n) => panic!("nothing was sent yet, but {n} bytes came"),
    }
}

/// Waits for a 5-byte message with room for `room` bytes, then sends it.
fn receive_hello(ours: &Socket, theirs: &mut TcpStream, room: usize) {
    let ar = ours
        .begin_receive(Vec::with_capacity(room), SocketFlags::NONE, None, None)
        .unwrap();
    theirs.write_all(b"hello").unwrap();
    let (n, buf) = ours.end_receive(&ar).unwrap();
    assert_eq!(&buf[..n], b"hello");
}

/// Connections whose last receive waited, then read what was there: half with room to
/// spare (a short read), half with room for exactly the message, twice (a full read,
/// then a full read that asked the kernel what is left). The state the traced section
/// starts from.
fn drained_connections() -> Vec<(Socket, TcpStream)> {
    (0..CONNS)
        .map(|i| {
            let (ours, mut theirs) = tcp_to_std();
            if i % 2 == 0 {
                receive_hello(&ours, &mut theirs, 4096);
            } else {
                receive_hello(&ours, &mut theirs, 5);
                receive_hello(&ours, &mut theirs, 5);
            }
            (ours, theirs)
        })
        .collect()
}

/// The traced section (runs in a child process): a receive begun on each connection.
#[test]
#[ignore = "child scenario of a_receive_after_a_short_read_waits_without_a_syscall"]
fn child_receive_after_a_short_read() {
    let mut conns = drained_connections();
    trace::marker();
    let pending: Vec<_> = conns
        .iter()
        .map(|(ours, _)| {
            ours.begin_receive(room(), SocketFlags::NONE, None, None)
                .unwrap()
        })
        .collect();
    trace::marker();
    for ((ours, theirs), ar) in conns.iter_mut().zip(pending) {
        assert!(!ar.completed_synchronously());
        theirs.write_all(b"world").unwrap();
        let (n, buf) = ours.end_receive(&ar).unwrap();
        assert_eq!(&buf[..n], b"world", "the receive completes when data comes");
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn a_receive_after_a_short_read_waits_without_a_syscall() {
    let section = trace::traced_section("child_receive_after_a_short_read");
    let receives = section.count_any(&[libc::SYS_recvfrom, libc::SYS_recvmsg, libc::SYS_read]);
    assert_eq!(receives, 0, "no receive syscall: {:?}", section.names());
}

/// The receive that follows a short read still gets what arrives, in order, whatever
/// the timing: many small request/response exchanges into large buffers.
#[test]
fn request_response_into_large_buffers_loses_nothing() {
    bounded(secs(60), || {
        let (client, server) = tcp_pair();
        let echo = std::thread::spawn(move || {
            for i in 0..2_000u32 {
                let (n, buf) = server
                    .end_receive(
                        &server
                            .begin_receive(room(), SocketFlags::NONE, None, None)
                            .unwrap(),
                    )
                    .unwrap();
                assert_eq!(&buf[..n], &i.to_le_bytes(), "request {i}");
                let reply = server
                    .begin_send(buf, SocketFlags::NONE, None, None)
                    .unwrap();
                server.end_send(&reply).unwrap();
            }
        });
        for i in 0..2_000u32 {
            let sent = client
                .begin_send(i.to_le_bytes().to_vec(), SocketFlags::NONE, None, None)
                .unwrap();
            client.end_send(&sent).unwrap();
            let mut buf = room();
            let n = receive_now_or_after_waits(&client, &mut buf);
            assert_eq!(&buf[..n], &i.to_le_bytes(), "reply {i}");
        }
        echo.join().unwrap();
    });
}

/// A short read may pass the peer's FIN (the data and the FIN were both queued), and
/// no edge follows the end of a stream: the receive after it must still see the end
/// (0) rather than wait for an edge. Many connections, so that the engine has seen
/// the FIN before the read in some of them and after it in others.
#[test]
fn a_short_read_that_passed_the_fin_still_sees_the_end() {
    bounded(secs(60), || {
        for i in 0..300 {
            let (ours, mut theirs) = tcp_to_std();
            // Half the connections read short, half exactly 10 bytes at a time (so the
            // second read asks the kernel how much is left, and the FIN counts).
            let mut buf = Vec::with_capacity(if i % 2 == 0 { 4096 } else { 10 });
            let ready = wait_before_sending(&ours, &mut buf);
            theirs.write_all(b"last words, twice").unwrap();
            theirs.shutdown(std::net::Shutdown::Write).unwrap();
            ready.wait();
            let mut received = Vec::new();
            loop {
                match receive_now_or_after_waits(&ours, &mut buf) {
                    0 => break,
                    n => received.extend_from_slice(&buf[..n]),
                }
            }
            assert_eq!(received, b"last words, twice");
        }
    });
}

/// A full read proves nothing unless the kernel counts no bytes left: reads of exactly
/// one message, with more messages already queued behind it, never wait for an edge
/// that will not come.
#[test]
fn full_reads_with_data_left_behind_do_not_wait() {
    bounded(secs(60), || {
        let (ours, mut theirs) = tcp_to_std();
        for round in 0..200u32 {
            let mut buf = Vec::with_capacity(4);
            let ready = wait_before_sending(&ours, &mut buf);
            let batch: Vec<u8> = (0..3).flat_map(|k| (round * 3 + k).to_le_bytes()).collect();
            theirs.write_all(&batch).unwrap();
            ready.wait();
            let mut received = Vec::new();
            while received.len() < batch.len() {
                let n = receive_now_or_after_waits(&ours, &mut buf);
                received.extend_from_slice(&buf[..n]);
            }
            assert_eq!(received, batch, "round {round}");
        }
    });
}
