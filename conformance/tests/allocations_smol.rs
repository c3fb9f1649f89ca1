//! Heap allocations per operation in steady state through the smol adapter (see
//! `alloc_count`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod alloc_count;

use alloc_count::{echo, pair, ping, thread_allocations, LIMIT, ROUND_TRIPS, WARM_UP};
use asyncresult_conformance::adapters::SmolFlavor;
use asyncresult_conformance::bounded;

/// On a local executor under `block_on`, so that every future runs on one thread
/// and only that thread's allocations count. The slack, one per round trip, is
/// async-io's: each reactor turn that wakes a task collects the wakers in a new list
/// (66 allocations in all here when the machine is quiet, up to 426 beside two busy
/// loops, when more waits go through the reactor).
#[test]
fn a_round_trip_allocates_nothing_in_steady_state() {
    let spent = bounded(LIMIT, "the smol ping-pong hung", || {
        let executor = async_executor::LocalExecutor::new();
        smol::block_on(executor.run(async {
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
        spent <= ROUND_TRIPS,
        "{spent} allocations for {ROUND_TRIPS} round trips (4 operations each)"
    );
}
