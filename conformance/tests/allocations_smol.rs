//! Heap allocations per operation in steady state through the smol adapter (see
//! `alloc_count`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod alloc_count;

use alloc_count::{
    check_idle_waits, echo, idle_read_allocations, idle_receive_allocations, pair, ping,
    thread_allocations, LIMIT, ROUND_TRIPS, WARM_UP,
};
use asyncresult_conformance::adapters::SmolFlavor;
use asyncresult_conformance::{bounded, serial};

/// On a local executor under `futures::executor::block_on`, so that every future runs
/// on one thread and only that thread's allocations count, and that thread never turns
/// async-io's reactor: async-io's own thread does, and a turn that wakes a task collects
/// the wakers in a new list. Under `smol::block_on` that thread's count is async-io's
/// as much as the adapter's: 66 in a quiet run, about 865 once it turns the reactor
/// every ninth hop (the smol driver's inline-drain cap). Under `smol::block_on` a run on
/// a loaded machine also counted over 4,000, once in a stressed run of the whole suite
/// and once in 6 runs of this test beside two busy loops (then in none of 28 runs of an
/// instrumented copy):
/// about one per wait, as when a receive's wait cannot reuse its direction's readiness
/// operation (the count with reuse turned off: 4,014). Here the count stayed at 66 or
/// under beside two busy loops, over 48 windows of this ping-pong; one allocation per
/// operation would add four per round trip (8,000).
#[test]
fn a_round_trip_allocates_nothing_in_steady_state() {
    let _serial = serial();
    let spent = bounded(LIMIT, "the smol ping-pong hung", || {
        let executor = async_executor::LocalExecutor::new();
        futures::executor::block_on(executor.run(async {
            let (client, server) = pair::<SmolFlavor>().await;
            let echoing = executor.spawn(async move {
                echo(&server, WARM_UP + ROUND_TRIPS).await;
                server
            });
            ping(&client, WARM_UP).await;
            let before = thread_allocations();
            ping(&client, ROUND_TRIPS).await;
            let spent = thread_allocations() - before;
            drop(echoing.await);
            spent
        }))
    });
    eprintln!("{spent} allocations for {ROUND_TRIPS} round trips");
    assert!(
        spent <= ROUND_TRIPS / 4,
        "{spent} allocations for {ROUND_TRIPS} round trips (4 operations each)"
    );
}

/// A read waiting through `AsyncRead` on an idle socket allocates nothing (its waker is
/// parked in the socket's queue): 0 here, where a readiness operation per waiting read
/// counted one each.
#[test]
fn a_waiting_read_allocates_nothing() {
    let _serial = serial();
    let spent = bounded(LIMIT, "the idle smol reads hung", || {
        futures::executor::block_on(idle_read_allocations::<SmolFlavor>())
    });
    check_idle_waits(spent, "reads");
}

/// A `receive` future waiting on an idle socket allocates nothing (its waker is parked
/// in the socket's queue as its place): 0 here, where a readiness operation per waiting
/// receive counted one each.
#[test]
fn a_waiting_receive_allocates_nothing() {
    let _serial = serial();
    let spent = bounded(LIMIT, "the idle smol receives hung", || {
        futures::executor::block_on(idle_receive_allocations::<SmolFlavor>())
    });
    check_idle_waits(spent, "receives");
}
