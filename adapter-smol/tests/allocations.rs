//! Heap allocations per operation in steady state through the smol adapter, counted by
//! a global allocator on the thread that runs the futures (its own test binary).
//!
//! Only that thread's allocations count: async-io's own thread, when it holds the
//! reactor, allocates a list of wakers per reactor turn
//! (`async_io::reactor::Direction::drain_into`), as it does for any async-io source.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use asyncresult_smol::{TcpListener, TcpStream};

struct Counting;

thread_local! {
    /// Allocations by this thread (no destructor, so readable at any time).
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the contract;
// the counter has no effect on the memory returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded with the caller's layout (see the impl).
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout (see the impl).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: `ptr` came from `System` with this layout (see the impl).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const ROUND_TRIPS: usize = 2_000;
const WARM_UP: usize = 200;

/// Receives one 64-byte message into `buf` (taken and given back).
async fn receive_message(stream: &TcpStream, buf: &mut Vec<u8>) {
    let mut got = 0;
    while got < 64 {
        let (n, back) = stream.receive(std::mem::take(buf)).await.unwrap();
        assert!(n > 0, "the peer closed");
        *buf = back;
        buf.resize(64, 0);
        got += n;
    }
}

/// The echo end: answers `rounds` messages.
async fn echo(server: TcpStream, rounds: usize) -> TcpStream {
    let mut buf = vec![0u8; 64];
    let msg: &'static [u8] = &[7u8; 64];
    for _ in 0..rounds {
        receive_message(&server, &mut buf).await;
        assert_eq!(server.send(msg).await.unwrap(), 64);
    }
    server
}

/// The ping end: `rounds` requests, each waiting for its answer (so that every
/// receive of both ends waits for readiness and is woken).
async fn ping(client: &TcpStream, rounds: usize) {
    let mut buf = vec![0u8; 64];
    let msg: &'static [u8] = &[9u8; 64];
    for _ in 0..rounds {
        assert_eq!(client.send(msg).await.unwrap(), 64);
        receive_message(client, &mut buf).await;
    }
}

/// Runs the ping-pong on a local executor under `block_on`, so that every future runs
/// on this thread, after a warm-up; returns the allocations this thread made.
fn measure() -> usize {
    let executor = async_executor::LocalExecutor::new();
    smol::block_on(executor.run(async {
        let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) =
            futures::future::join(TcpStream::connect(addr), listener.accept()).await;
        let client = client.unwrap();
        let (server, _) = accepted.unwrap();
        client.set_nodelay(true).unwrap();
        server.set_nodelay(true).unwrap();
        let echoing = executor.spawn(echo(server, WARM_UP + ROUND_TRIPS));
        ping(&client, WARM_UP).await;
        let before = allocations();
        ping(&client, ROUND_TRIPS).await;
        let spent = allocations() - before;
        drop(echoing.await);
        spent
    }))
}

/// Sends that finish at once and receives that wait and are woken allocate nothing in
/// steady state: a fast-path send is no operation at all, and a receive's wait reuses
/// its direction's readiness operation. One allocation per future would add four per
/// round trip. The slack, one per round trip, is async-io's: each reactor turn that
/// wakes a task collects the wakers in a new list (66 allocations in all here when the
/// machine is quiet, up to 426 beside two busy loops, when more waits go through the
/// reactor).
#[test]
fn a_round_trip_allocates_nothing_in_steady_state() {
    // Bounded from outside: an async-io timer would itself allocate at every reactor
    // turn (its timer map), and the count is this executor thread's.
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(measure());
    });
    let spent = finished
        .recv_timeout(Duration::from_secs(60))
        .expect("the ping-pong finished in time");
    eprintln!("{spent} allocations for {ROUND_TRIPS} round trips");
    assert!(
        spent <= ROUND_TRIPS,
        "{spent} allocations for {ROUND_TRIPS} round trips (4 operations each)"
    );
}
