//! Heap allocations per operation in steady state through the tokio adapter (see
//! `alloc_count`): every thread's allocations count, since on a multi-thread runtime a
//! wait may begin on one worker while another still completes the last one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod alloc_count;

use alloc_count::{
    allocations, check_idle_waits, echo, idle_read_allocations, idle_receive_allocations, pair,
    ping, LIMIT, ROUND_TRIPS, WARM_UP,
};
use asyncresult_conformance::adapters::TokioFlavor;
use asyncresult_conformance::{bounded, serial, tokio_runtime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The echo end through tokio's `AsyncRead`/`AsyncWrite`.
async fn echo_io(mut server: asyncresult_tokio::TcpStream, rounds: usize) {
    let mut buf = [0u8; 64];
    for _ in 0..rounds {
        server.read_exact(&mut buf).await.unwrap();
        server.write_all(&buf).await.unwrap();
    }
}

/// The ping end through tokio's `AsyncRead`/`AsyncWrite`.
async fn ping_io(client: &mut asyncresult_tokio::TcpStream, rounds: usize) {
    let mut buf = [0u8; 64];
    for _ in 0..rounds {
        client.write_all(&[9u8; 64]).await.unwrap();
        client.read_exact(&mut buf).await.unwrap();
    }
}

/// The ping-pongs on `rt`, as futures and through the I/O traits (`poll_read` waits,
/// `poll_write`), after a warm-up each; the allocations of every thread meanwhile.
fn tokio_round_trips(rt: &tokio::runtime::Runtime) -> usize {
    rt.block_on(async {
        let (client, server) = pair::<TokioFlavor>().await;
        let echoing = tokio::spawn(async move {
            echo(&server, WARM_UP + ROUND_TRIPS).await;
            server
        });
        ping(&client, WARM_UP).await;
        let before = allocations();
        ping(&client, ROUND_TRIPS).await;
        let mut spent = allocations() - before;
        drop(echoing.await.unwrap());

        let (mut client, server) = pair::<TokioFlavor>().await;
        let echoing = tokio::spawn(echo_io(server, WARM_UP + ROUND_TRIPS));
        ping_io(&mut client, WARM_UP).await;
        let before = allocations();
        ping_io(&mut client, ROUND_TRIPS).await;
        spent += allocations() - before;
        echoing.await.unwrap();
        spent
    })
}

/// On a current-thread and on a multi-thread runtime. The slack is the runtime's own
/// bookkeeping, for both ping-pongs together.
#[test]
fn a_round_trip_allocates_nothing_in_steady_state() {
    let _serial = serial();
    bounded(LIMIT, "the tokio ping-pongs hung", || {
        let runtimes = [
            (
                "current-thread",
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap(),
            ),
            (
                "multi-thread",
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap(),
            ),
        ];
        for (flavor, rt) in &runtimes {
            let spent = tokio_round_trips(rt);
            eprintln!("{flavor}: {spent} allocations for 2 × {ROUND_TRIPS} round trips");
            assert!(
                spent <= ROUND_TRIPS / 8,
                "{flavor}: {spent} allocations for 2 × {ROUND_TRIPS} round trips (4 operations each)"
            );
        }
    });
}

/// A read waiting through `AsyncRead` on an idle socket allocates nothing (its waker is
/// parked in the socket's queue), on a current-thread runtime, whose one thread is the
/// one counted.
#[test]
fn a_waiting_read_allocates_nothing() {
    let _serial = serial();
    let spent = bounded(LIMIT, "the idle tokio reads hung", || {
        tokio_runtime(false)
            .unwrap()
            .block_on(idle_read_allocations::<TokioFlavor>())
    });
    check_idle_waits(spent, "reads");
}

/// A `receive` future waiting on an idle socket allocates nothing (its waker is parked
/// in the socket's queue as its place), on a current-thread runtime, whose one thread is
/// the one counted: 0 here, where a readiness operation per waiting receive counted one
/// each.
#[test]
fn a_waiting_receive_allocates_nothing() {
    let _serial = serial();
    let spent = bounded(LIMIT, "the idle tokio receives hung", || {
        tokio_runtime(false)
            .unwrap()
            .block_on(idle_receive_allocations::<TokioFlavor>())
    });
    check_idle_waits(spent, "receives");
}
