//! The smol driver is gated: it stops listening for the engine's events while nothing
//! waits for one, and the first wait makes it listen again. These tests check, on real
//! sockets, that it does stop (a stream read back to back no longer wakes async-io's
//! thread for nothing), that every kind of wait that begins while it is deaf is still
//! served by the driver (not by the engine's monitor, the safety net that would hide a
//! lost re-arm behind a few milliseconds of delay), and that the engine's count of
//! waits comes back to zero however the waits ended.
//!
//! One test: the engine is the process's, and its counters are read as this file's
//! alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::pin::pin;
use std::time::{Duration, Instant};

use asyncresult_core::driver::{engine_stats, EngineStats};
use asyncresult_smol::{Error, SocketFlags};
use futures::{AsyncReadExt, FutureExt};

mod common;
use common::{bounded, pair, pair_with_std};

fn stats() -> EngineStats {
    engine_stats().unwrap()
}

/// Whether `done` holds within `limit`, looking again after each yield of the thread
/// (the driver's drain runs on async-io's thread meanwhile).
fn within(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::yield_now();
    }
    true
}

/// Sends `bytes` from the std peer while nothing of ours waits, and waits until the
/// gated driver has drained their event and stopped listening.
fn arrive_while_idle(peer: &mut std::net::TcpStream, bytes: &[u8]) {
    assert_eq!(stats().waits, 0, "something still waits");
    peer.write_all(bytes).unwrap();
    assert!(
        within(Duration::from_secs(10), || stats().gated_driver_idle),
        "the driver drained with nothing waiting, yet kept listening ({:?}: {:?})",
        String::from_utf8_lossy(bytes),
        stats()
    );
}

#[test]
fn the_gated_driver_stops_listening_and_every_wait_wakes_it() {
    bounded(Duration::from_secs(120), || {
        // A first receive that waits attaches the driver.
        let (ours, mut peer) = smol::block_on(pair_with_std());
        let (n, _) = smol::block_on(async {
            let mut receive = pin!(ours.receive(vec![0u8; 64]));
            assert!(futures::poll!(receive.as_mut()).is_pending());
            peer.write_all(b"hello").unwrap();
            receive.await
        })
        .unwrap();
        assert_eq!(n, 5);
        assert_eq!(stats().drivers, 1);
        let monitor = stats().monitor_drains;

        // A future that proved the kernel's queue empty (a short read) queues its next
        // receive without a syscall: it must wake the deaf driver, which then serves
        // the event that came while it was deaf.
        arrive_while_idle(&mut peer, b"early");
        let (n, buf) = smol::block_on(ours.receive(vec![0u8; 64])).unwrap();
        assert_eq!(&buf[..n], b"early");
        arrive_while_idle(&mut peer, b"while deaf");
        let (n, buf) = smol::block_on(ours.receive(vec![0u8; 64])).unwrap();
        assert_eq!(&buf[..n], b"while deaf");

        // A callback operation begun on a plain thread while the driver is deaf.
        arrive_while_idle(&mut peer, b"x");
        let socket = ours.into_inner();
        let (n, _) = socket
            .end_receive(
                &socket
                    .begin_receive(vec![0u8; 8], SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(n, 1, "the byte was there: the fast path takes it");
        assert!(within(Duration::from_secs(10), || stats().gated_driver_idle));
        let (tx, rx) = std::sync::mpsc::channel();
        let pending = socket
            .begin_receive(
                vec![0u8; 8],
                SocketFlags::NONE,
                Some(Box::new(move |ar| {
                    let _ = tx.send(ar.is_completed());
                })),
                None,
            )
            .unwrap();
        assert!(!pending.is_completed());
        assert_eq!(stats().waits, 1);
        assert!(
            !stats().gated_driver_idle,
            "the wait made the driver listen"
        );
        peer.write_all(b"y").unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(true));
        let (n, buf) = socket.end_receive(&pending).unwrap();
        assert_eq!(&buf[..n], b"y");
        assert_eq!(
            stats().monitor_drains,
            monitor,
            "a wait was served by the monitor: the driver missed its re-arm"
        );
        drop(socket);

        // A stream read back to back never waits: the driver stays deaf throughout.
        let (client, server) = smol::block_on(pair());
        let total = 256 * 1024;
        smol::block_on(async {
            let sender = async {
                for _ in 0..total / 1024 {
                    client.send(vec![7u8; 1024]).await.unwrap();
                }
            };
            let receiver = async {
                let mut got = 0;
                let mut buf = vec![0u8; 64 * 1024];
                while got < total {
                    let (n, back) = server.receive(buf).await.unwrap();
                    assert!(n > 0);
                    got += n;
                    buf = back;
                }
            };
            futures::join!(sender, receiver);
        });
        assert_eq!(stats().monitor_drains, monitor);

        // Waits that end every way there is leave no count behind.
        smol::block_on(async {
            // Timed out (cancelled).
            let quiet = server.receive_timeout(vec![0u8; 8], Duration::from_millis(20));
            assert!(matches!(quiet.await, Err(Error::Aborted)));
            // Polled once, then dropped (its place given up).
            assert!(server.receive(vec![0u8; 8]).now_or_never().is_none());
        });
        assert_eq!(stats().waits, 0, "a wait that ended is still counted");
        // A stream half's read, polled once, then dropped: its waker stays parked, as
        // async-io's stays registered, until the next edge wakes it.
        let mut byte = [0u8; 1];
        assert!((&server).read(&mut byte).now_or_never().is_none());
        assert_eq!(stats().waits, 1, "the parked waker waits");
        assert!(
            !stats().gated_driver_idle,
            "the parked waker made the driver listen"
        );
        smol::block_on(client.send(&b"z"[..])).unwrap();
        assert!(
            within(Duration::from_secs(10), || stats().waits == 0),
            "the edge woke the parked waker: {:?}",
            stats()
        );
        let (n, buf) = smol::block_on(server.receive(vec![0u8; 8])).unwrap();
        assert_eq!(&buf[..n], b"z");
        let socket = server.into_inner();
        let pending = socket
            .begin_receive(vec![0u8; 8], SocketFlags::NONE, None, None)
            .unwrap();
        assert_eq!(stats().waits, 1);
        socket.close();
        assert!(matches!(socket.end_receive(&pending), Err(Error::Disposed)));
        assert_eq!(stats().waits, 0, "a close left a wait counted");
        drop(client);
    });
}
