//! Heap allocations per operation in steady state through the tokio adapter, counted by
//! a global allocator (its own test binary, because the count is process-wide).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use asyncresult_tokio::{TcpListener, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`, which upholds the contract;
// the counter has no effect on the memory returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's layout (see the impl).
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout (see the impl).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
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

/// The echo end through `AsyncRead`/`AsyncWrite`: answers `rounds` messages.
async fn echo_io(mut server: TcpStream, rounds: usize) -> TcpStream {
    let mut buf = [0u8; 64];
    for _ in 0..rounds {
        server.read_exact(&mut buf).await.unwrap();
        server.write_all(&buf).await.unwrap();
    }
    server
}

/// The ping end through `AsyncRead`/`AsyncWrite`.
async fn ping_io(client: &mut TcpStream, rounds: usize) {
    let mut buf = [0u8; 64];
    for _ in 0..rounds {
        client.write_all(&[9u8; 64]).await.unwrap();
        client.read_exact(&mut buf).await.unwrap();
    }
}

/// Runs the ping-pong on `rt` after a warm-up; returns the allocations it made.
fn measure(rt: &tokio::runtime::Runtime) -> usize {
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), async {
            let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap())
                .await
                .unwrap();
            let addr = listener.local_addr().unwrap();
            let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
            let client = client.unwrap();
            let (server, _) = accepted.unwrap();
            client.set_nodelay(true).unwrap();
            server.set_nodelay(true).unwrap();
            let echoing = tokio::spawn(echo(server, WARM_UP + ROUND_TRIPS));
            ping(&client, WARM_UP).await;
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            ping(&client, ROUND_TRIPS).await;
            let mut spent = ALLOCATIONS.load(Ordering::Relaxed) - before;
            drop(echoing.await.unwrap());

            // The same through the I/O traits (`poll_read` waits, `poll_write`).
            let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
            let mut client = client.unwrap();
            let (server, _) = accepted.unwrap();
            client.set_nodelay(true).unwrap();
            server.set_nodelay(true).unwrap();
            let echoing = tokio::spawn(echo_io(server, WARM_UP + ROUND_TRIPS));
            ping_io(&mut client, WARM_UP).await;
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            ping_io(&mut client, ROUND_TRIPS).await;
            spent += ALLOCATIONS.load(Ordering::Relaxed) - before;
            drop(echoing.await.unwrap());
            spent
        })
        .await
        .expect("the ping-pong finished in time")
    })
}

/// Sends that finish at once and receives that wait and are woken allocate nothing in
/// steady state, as futures or through the I/O traits: a fast-path send is no operation
/// at all, and a receive's wait reuses its direction's readiness operation. One
/// allocation per operation would add four per round trip, 32 times the slack allowed
/// here for both ping-pongs together (the runtime's own bookkeeping).
fn assert_steady(rt: &tokio::runtime::Runtime, flavor: &str) {
    let spent = measure(rt);
    eprintln!("{flavor}: {spent} allocations for 2 × {ROUND_TRIPS} round trips");
    assert!(
        spent <= ROUND_TRIPS / 8,
        "{flavor}: {spent} allocations for 2 × {ROUND_TRIPS} round trips (4 operations each)"
    );
}

#[test]
fn a_round_trip_allocates_nothing_in_steady_state() {
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_steady(&current, "current-thread");
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    assert_steady(&multi, "multi-thread");
}
